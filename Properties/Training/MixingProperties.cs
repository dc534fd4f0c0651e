using IlgpuTrain.Layers;
using IlgpuTrain.Optimizers;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// Training/Mixing.cs: Beta draws have the Beta(alpha, alpha) moments and are a pure function of
/// the Rng; CutMix's lambda is 1 - box area / image area; the Trainer trains on mixed batches
/// reproducibly; non-classification batches are refused.
/// </summary>
public class MixingProperties
{
    [Theory]
    [InlineData(0.2)]
    [InlineData(1.0)]
    [InlineData(4.0)]
    public void Beta_draws_have_the_mean_and_variance_of_Beta_alpha_alpha(double alpha)
    {
        // 4000 draws at counters 0..3999: the sample mean of Beta(a, a) has sd sqrt(v / 4000) with
        // v = 1 / (4 (2a + 1)) <= 0.179 (a = 0.2): at most 0.0067, so 5 sd is 0.034. The variance of
        // the sample variance is below (E[(x - 1/2)^4]) / 4000 <= 1/16 / 4000: sd <= 0.004; 5 sd 0.02.
        const int n = 4000;
        var draws = Enumerable.Range(0, n).Select(i => Mixing.Beta(alpha, Rng.Create(17).At((uint)i))).ToArray();
        double mean = draws.Average();
        double variance = draws.Sum(v => (v - mean) * (v - mean)) / (n - 1);
        Assert.All(draws, v => Assert.InRange(v, 0.0, 1.0));
        Assert.InRange(mean, 0.5 - 0.034, 0.5 + 0.034);
        double expected = 1 / (4 * ((2 * alpha) + 1));
        Assert.InRange(variance, expected - 0.02, expected + 0.02);
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(0.5)]
    public void Beta_draws_follow_the_closed_form_distribution_functions(double alpha)
    {
        // Kolmogorov-Smirnov against Beta(1, 1) (F(x) = x) and Beta(1/2, 1/2) (the arcsine law,
        // F(x) = 2/pi asin(sqrt x)) over 4000 fixed draws: the 0.1% critical value is
        // 1.95 / sqrt(4000) = 0.031. Beta(a + 1/3, a + 1/3), a wrong Gamma shape, misses by more.
        const int n = 4000;
        var draws = Enumerable.Range(0, n).Select(i => Mixing.Beta(alpha, Rng.Create(23).At((uint)i))).Order().ToArray();
        Func<double, double> cdf = alpha == 1.0 ? v => v : v => 2 / Math.PI * Math.Asin(Math.Sqrt(v));
        double ks = draws.Select((v, i) => Math.Max(Math.Abs(((i + 1.0) / n) - cdf(v)), Math.Abs((i / (double)n) - cdf(v)))).Max();
        Assert.True(ks < 0.031, $"KS distance {ks:F4} for Beta({alpha}, {alpha})");
    }

    [Property(MaxTest = 50)]
    public Property Draws_are_a_pure_function_of_the_rng() =>
        Prop.ForAll(Gen.Choose(0, 10000).ToArbitrary(), Gen.Choose(1, 40).ToArbitrary(), (seed, side) =>
        {
            var m = new Mixing(0.4f, 1f);
            var rng = Rng.Create((ulong)seed);
            var a = m.Draw(side, side + 1, rng);
            var b = m.Draw(side, side + 1, rng);
            var next = Enumerable.Range(1, 5).Select(i => m.Draw(side, side + 1, rng.At((uint)i))).ToList();
            return (a == b).Label("same rng, same draw")
                .And(next.Any(d => d != a).Label("other counters draw otherwise"));
        });

    [Fact]
    public void With_both_alphas_about_half_the_batches_use_cutmix()
    {
        // Binomial(2000, 1/2): sd ~ 22; 5 sd is 112.
        var m = new Mixing(1f, 1f);
        int cut = Enumerable.Range(0, 2000).Count(i => m.Draw(8, 8, Rng.Create(3).At((uint)i)).CutMix);
        Assert.InRange(cut, 1000 - 112, 1000 + 112);
        Assert.All(Enumerable.Range(0, 50), i => Assert.True(new Mixing(CutMixAlpha: 0.5f).Draw(8, 8, Rng.Create(4).At((uint)i)).CutMix));
        Assert.All(Enumerable.Range(0, 50), i => Assert.False(new Mixing(MixUpAlpha: 0.5f).Draw(8, 8, Rng.Create(4).At((uint)i)).CutMix));
    }

    [Fact]
    public void Apply_mixes_images_into_soft_targets_and_refuses_what_it_cannot_mix()
    {
        using var step = Devices.Cpu.BeginStep();
        var x = step.Upload(Gens.Random(1, 4 * 3 * 5 * 5), new Shape(4, 3, 5, 5));
        var labels = step.Upload(new[] { 0, 1, 2, 1 }, new Shape(4));
        var rng = Rng.Create(9);
        Assert.Equal((x, labels), Mixing.None.Apply(step, x, labels, 3, rng));

        var m = new Mixing(MixUpAlpha: 0.5f);
        var (mixed, targets) = m.Apply(step, x, labels, 3, rng);
        double lam = m.Draw(5, 5, rng).Lambda;
        var expected = new float[4 * 75];
        IlgpuTrain.Training.Conformance.AugmentReference.MixUpReference(x.ToHost(), expected, 4, lam);
        Assert.Equal(new Shape(4, 3), targets.Shape);
        Assert.True(Close.Check(mixed.ToHost(), expected, 1e-6, 0, "mixup").Ok);
        var t = targets.ToHost();
        Assert.Equal(lam, t[(0 * 3) + 0], 1e-6);
        Assert.Equal(1 - lam, t[(0 * 3) + 1], 1e-6);   // sample 0 is paired with sample 3 (label 1)

        var flat = step.Upload(new float[8], new Shape(4, 2));
        Assert.Equal(new Shape(4, 2), m.Apply(step, flat, labels, 3, rng).X.Shape);
        var e = Assert.Throws<ArgumentException>(() => new Mixing(CutMixAlpha: 1f).Apply(step, flat, labels, 3, rng));
        Assert.Contains("cutmix", e.Message);
        var regression = step.Upload(new float[4], new Shape(4));
        var r = Assert.Throws<ArgumentException>(() => m.Apply(step, x, regression, 3, rng));
        Assert.Contains("classification", r.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new Mixing(MixUpAlpha: -1f).Apply(step, x, labels, 3, rng));
    }

    [Fact]
    public void The_trainer_trains_on_mixed_batches_reproducibly()
    {
        var r = new Random(5);
        var x = Enumerable.Range(0, 96 * 8).Select(_ => (float)r.NextDouble()).ToArray();
        var y = Enumerable.Range(0, 96).Select(i => i % 3).ToArray();
        var data = new InMemoryDataset("mix", x, y, new Shape(2, 2, 2), 3);
        Layer Model() => new Flatten() >> new Dense(8) >> new Tanh() >> new Dense(3);
        TrainerOptions Options(Mixing m) => new() { Epochs = 2, BatchSize = 16, Seed = 7, Mixing = m, Loss = new CrossEntropyOptions { Epsilon = 0.1f } };
        float[] Run(Mixing m)
        {
            var fit = new Trainer(Devices.Cpu, Model(), data.SampleShape, new Sgd(0.1), Options(m)).Fit(data);
            using var s = fit.State;
            Assert.All(s.History.Epochs, e => Assert.True(double.IsFinite(e.TrainLoss)));
            return s.Params.Snapshot().Float32;
        }

        var mixed = Run(new Mixing(0.4f, 1f));
        Assert.Equal(mixed, Run(new Mixing(0.4f, 1f)));
        Assert.NotEqual(mixed, Run(Mixing.None));
    }
}
