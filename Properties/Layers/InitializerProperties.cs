using IlgpuTrain.Layers;

namespace IlgpuTrain.Properties.Layers;

/// <summary>Initializers: fans as PyTorch computes them, known bounds, the moments of each distribution, and reproducibility.</summary>
public class InitializerProperties
{
    // 65,536 draws: the sample variance of a uniform has relative standard error sqrt(0.8 / n) = 0.35 %,
    // of a normal sqrt(2 / n) = 0.55 %; 3 % is over five standard errors.
    private const int Draws = 256 * 256;
    private const double VarianceRtol = 0.03;

    [Property(MaxTest = 30)]
    public Property Fans_are_computed_as_pytorch_does() =>
        Prop.ForAll((from f in Gen.Choose(1, 9) from d in Gen.Choose(1, 9) from r in Gen.Choose(0, 3) from k in Gen.ArrayOf(Gen.Choose(1, 4), r) select (f, d, k)).ToArbitrary(), c =>
        {
            int receptive = c.k.Aggregate(1, (a, b) => a * b);
            var fans = Fans.Of(new Shape([c.f, c.d, .. c.k]));
            return (fans == new Fans(c.d * receptive, c.f * receptive)).Label($"{fans} for ({c.f}, {c.d}, {string.Join(", ", c.k)})");
        });

    [Fact]
    public void Known_bounds_and_constants()
    {
        Assert.Throws<ArgumentException>(() => Fans.Of(new Shape(3)));
        var fans = new Fans(25, 10);
        AssertUniform(0.2, Initializer.KaimingUniform(fans));
        AssertUniform(0.2, Initializer.FanInBias(fans));
        AssertUniform(Math.Sqrt(6.0 / 25), Initializer.KaimingUniform(fans, a: 0));
        AssertNormal(Math.Sqrt(2.0 / 25), Initializer.KaimingNormal(fans));
        AssertUniform(Math.Sqrt(6.0 / 35), Initializer.XavierUniform(fans));
        AssertNormal(Math.Sqrt(2.0 / 35), Initializer.XavierNormal(fans));
        AssertUniform(2 * Math.Sqrt(6.0 / 35), Initializer.XavierUniform(fans, gain: 2));
        Assert.All(Initializer.Zeros.Sample(new Shape(3, 4), Rng.Create(1)), v => Assert.Equal(0f, v));
        Assert.All(Initializer.Ones.Sample(new Shape(5), Rng.Create(1)), v => Assert.Equal(1f, v));
        Assert.Empty(Initializer.Uniform(1).Sample(new Shape(0, 3), Rng.Create(1)));
    }

    [Property(MaxTest = 10)]
    public Property Uniform_draws_stay_in_bounds_with_variance_bound_squared_over_three() =>
        Prop.ForAll((from b in Gen.Elements(0.01, 0.5, 1.0, 3.0) from seed in Gens.LayerSeed select (b, seed)).ToArbitrary(), c =>
        {
            var v = Initializer.Uniform(c.b).Sample(new Shape(Draws), Rng.Create((ulong)c.seed));
            var (mean, variance) = Moments(v);
            return v.All(x => Math.Abs(x) <= c.b).Label("within [-b, b]")
                .And(Close.Scalar(variance, c.b * c.b / 3, 0, VarianceRtol, "variance"))
                .And((Math.Abs(mean) < 5 * c.b / Math.Sqrt(3 * Draws)).Label($"mean {mean}"))
                .And((v.Max() > 0.99 * c.b && v.Min() < -0.99 * c.b).Label("fills the interval"));
        });

    [Property(MaxTest = 10)]
    public Property Normal_draws_have_the_asked_moments_and_gaussian_mass_within_one_sigma() =>
        Prop.ForAll((from std in Gen.Elements(0.02, 0.5, 1.0, 2.0) from seed in Gens.LayerSeed select (std, seed)).ToArbitrary(), c =>
        {
            var v = Initializer.Normal(c.std).Sample(new Shape(Draws), Rng.Create((ulong)c.seed));
            var (mean, variance) = Moments(v);
            double withinOne = v.Count(x => Math.Abs(x) <= c.std) / (double)Draws;
            return Close.Scalar(variance, c.std * c.std, 0, VarianceRtol, "variance")
                .And((Math.Abs(mean) < 5 * c.std / Math.Sqrt(Draws)).Label($"mean {mean}"))

                // P(|Z| <= 1) = 0.6827; its standard error at this n is 0.0018.
                .And(Close.Scalar(withinOne, 0.6827, 0.01, 0, "mass within one sigma"));
        });

    [Property(MaxTest = 20)]
    public Property Draws_depend_only_on_the_rng() =>
        Prop.ForAll(Gens.LayerSeed.ToArbitrary(), seed =>
        {
            var shape = new Shape(7, 5);
            var init = Initializer.Normal(1);
            var a = init.Sample(shape, Rng.Create((ulong)seed));
            var b = init.Sample(shape, Rng.Create((ulong)seed));
            var other = init.Sample(shape, Rng.Create((ulong)seed).Fold(1));
            return a.SequenceEqual(b).Label("same rng, same values")
                .And((a.Zip(other).Count(t => t.First == t.Second) == 0).Label("another rng, other values"));
        });

    private static void AssertUniform(double bound, Initializer init)
    {
        var u = Assert.IsType<UniformInit>(init);
        Assert.Equal(-bound, u.Low, 12);
        Assert.Equal(bound, u.High, 12);
    }

    private static void AssertNormal(double std, Initializer init) => Assert.Equal(std, Assert.IsType<NormalInit>(init).Std, 12);

    /// <summary>Mean and population variance in float64.</summary>
    /// <param name="v">Values.</param>
    /// <returns>(mean, variance).</returns>
    internal static (double Mean, double Variance) Moments(IReadOnlyCollection<float> v)
    {
        double mean = v.Sum(x => (double)x) / v.Count;
        double variance = v.Sum(x => (x - mean) * (x - mean)) / v.Count;
        return (mean, variance);
    }
}
