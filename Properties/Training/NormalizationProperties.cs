using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>Training/Normalization.cs: Compute then Apply gives mean 0 and std 1 per channel.</summary>
public class NormalizationProperties
{
    // float32 data, float64 statistics: the normalized moments are off by float rounding only.
    private const double MomentTol = 1e-4;

    [Property(MaxTest = 30)]
    public Property Compute_then_apply_gives_zero_mean_and_unit_std_per_channel() =>
        Prop.ForAll(Gen.Choose(1, 20).ToArbitrary(), Gen.Choose(1, 3).ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), (n, channels, seed) =>
        {
            var shape = new Shape(channels, 3, 5);
            var x = Gens.Random(seed, n * (int)shape.Length, 0f, 1f);
            for (int i = 0; i < x.Length; i++)
                x[i] += i / 15 % channels; // a different offset per channel
            var d = new InMemoryDataset("d", (float[])x.Clone(), new int[n], shape, 1);
            var norm = Normalization.Compute(d);
            norm.Apply(x, shape);
            var result = (norm.Channels == channels).Label("channels");
            for (int c = 0; c < channels; c++)
            {
                var v = Enumerable.Range(0, n).SelectMany(s => x.Skip((s * (int)shape.Length) + (c * 15)).Take(15)).Select(f => (double)f).ToArray();
                double mean = v.Average();
                double std = Math.Sqrt(v.Select(t => (t - mean) * (t - mean)).Average());
                result = result.And(Close.Scalar(mean, 0, MomentTol, 0, $"mean of channel {c}"))
                    .And(Close.Scalar(std, 1, MomentTol, MomentTol, $"std of channel {c}"));
            }

            return result;
        });

    [Fact]
    public void A_channel_count_mismatch_is_rejected()
    {
        var e = Assert.Throws<ArgumentException>(() => Normalization.Cifar10.Apply(new float[4], new Shape(1, 2, 2)));
        Assert.Contains("samples of shape (1, 2, 2) have 1", e.Message);
    }
}
