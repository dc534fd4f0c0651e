using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>Training/InMemoryDataset.cs: validation, gather, subsets and seeded splits.</summary>
public class InMemoryDatasetProperties
{
    private static float Id(InMemoryDataset d, int i) => d.Features(i)[0] / 10f;

    [Fact]
    public void Bad_lengths_and_labels_are_rejected_with_the_sizes()
    {
        var e = Assert.Throws<ArgumentException>(() => new InMemoryDataset("d", new float[11], [0, 1], new Shape(2, 3), 2));
        Assert.Contains("need 12 features but x has 11", e.Message);
        e = Assert.Throws<ArgumentException>(() => new InMemoryDataset("d", new float[12], [0, 2], new Shape(2, 3), 2));
        Assert.Contains("label 1 is 2, outside [0, 2)", e.Message);
    }

    [Property(MaxTest = 40)]
    public Property Subset_and_take_see_the_right_samples_and_gather_copies_them() =>
        Prop.ForAll(Gen.Choose(0, 60).ToArbitrary(), Gen.Choose(0, 60).ToArbitrary(), Gen.Choose(0, 60).ToArbitrary(), (n, a, b) =>
        {
            var d = Gens.IndexDataset(n);
            int start = Math.Min(a, n), count = Math.Min(b, n - start);
            var s = d.Subset(start, count);
            var t = s.Take(count / 2 + 1);
            bool subset = Enumerable.Range(0, count).All(i => Id(s, i) == start + i && s.Label(i) == (start + i) % 10);
            bool take = t.Count == Math.Min(count, count / 2 + 1) && Enumerable.Range(0, t.Count).All(i => Id(t, i) == start + i);
            var idx = Enumerable.Range(0, count).Reverse().ToArray();
            var x = new float[count * 6];
            var y = new int[count];
            s.Gather(idx, x, y);
            bool gather = Enumerable.Range(0, count).All(k => x[k * 6] == (start + idx[k]) * 10 && x[(k * 6) + 5] == ((start + idx[k]) * 10) + 5 && y[k] == (start + idx[k]) % 10);
            return subset.Label("subset").And(take.Label("take")).And(gather.Label("gather"));
        });

    [Property(MaxTest = 40)]
    public Property Split_is_a_seeded_disjoint_cover_of_the_right_sizes() =>
        Prop.ForAll(Gen.Choose(0, 200).ToArbitrary(), Gen.Choose(0, 100).ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), (n, pct, seed) =>
        {
            var d = Gens.IndexDataset(n).Subset(0, n);
            var (train, val) = d.Split(pct / 100.0, (ulong)seed);
            var (train2, val2) = d.Split(pct / 100.0, (ulong)seed);
            var ids = Enumerable.Range(0, train.Count).Select(i => Id(train, i)).Concat(Enumerable.Range(0, val.Count).Select(i => Id(val, i))).OrderBy(v => v).ToArray();
            bool cover = ids.SequenceEqual(Enumerable.Range(0, n).Select(i => (float)i));
            bool size = val.Count == (int)Math.Round(pct / 100.0 * n, MidpointRounding.AwayFromZero);
            bool same = Enumerable.Range(0, val.Count).All(i => Id(val, i) == Id(val2, i)) && train.Count == train2.Count;
            // A split of a split still indexes the original arrays.
            var inner = val.Subset(val.Count / 2, val.Count - (val.Count / 2));
            bool nested = Enumerable.Range(0, inner.Count).All(i => Id(inner, i) == Id(val, (val.Count / 2) + i));
            return cover.Label("disjoint cover").And(size.Label($"validation {val.Count} of {n} at {pct}%")).And(same.Label("same seed, same split")).And(nested.Label("subset of split"));
        });

    [Fact]
    public void Another_seed_gives_another_split()
    {
        var d = Gens.IndexDataset(100);
        var a = d.Split(0.5, 1).Validation;
        var b = d.Split(0.5, 2).Validation;
        Assert.NotEqual(Enumerable.Range(0, 50).Select(i => Id(a, i)), Enumerable.Range(0, 50).Select(i => Id(b, i)));
    }
}
