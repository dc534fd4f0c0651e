using IlgpuTrain.Training.Distributed;

namespace IlgpuTrain.Properties.Distributed;

/// <summary>DDP's bucket plan: whole parameters, last first, each bucket within the size unless one parameter is larger, covering the flat buffer exactly once.</summary>
public class GradientBucketsProperties
{
    [Property(MaxTest = 200)]
    public Property Buckets_cover_every_parameter_once_last_first_within_the_size() =>
        Prop.ForAll(Gen.ListOf(Gen.Choose(1, 300)).Where(l => l.Count > 0).SelectMany(l => Gen.Choose(1, 1200).Select(b => (Sizes: l.ToArray(), Bytes: b * 4L))).ToArbitrary(), c =>
        {
            var layout = new ParamLayout(c.Sizes.Select((n, i) => ($"p{i}", new Shape(n), DType.Float32)));
            var buckets = GradientBuckets.Plan(layout, c.Bytes);
            long total = layout.LengthOf(DType.Float32);
            var starts = layout.Params.Select(p => p.Offset).Append(total).ToHashSet();
            bool descending = buckets.Zip(buckets.Skip(1)).All(p => p.Second.Offset + p.Second.Length == p.First.Offset);
            bool covers = buckets.Count > 0 && buckets[0].Offset + buckets[0].Length == total && buckets[^1].Offset == 0;
            bool whole = buckets.All(b => starts.Contains(b.Offset) && starts.Contains(b.Offset + b.Length));
            bool sized = buckets.All(b => b.Length * 4 <= c.Bytes || layout.Params.Any(p => p.Offset == b.Offset && p.Length == b.Length));
            bool full = buckets.Zip(buckets.Skip(1)).All(p => (p.First.Length + layout.Params.Last(q => q.Offset < p.First.Offset).Length) * 4 > c.Bytes);
            return (descending && covers && whole && sized && full).Label($"buckets {string.Join(" ", buckets)} of {total} at {c.Bytes} bytes");
        });
}
