using IlgpuTrain.Properties.Kernels;

namespace IlgpuTrain.Properties.Functional;

/// <summary>
/// Rng: its tensors are exactly the Philox streams of (Seed, Stream, Counter); it is an
/// immutable value; Fold, Split, At and Next give distinct, uncorrelated streams.
/// </summary>
public class RngProperties
{
    // Statistical bounds are 6 standard errors: a correct generator fails one in ~5e8 runs.
    private const double Sigmas = 6;

    // See PhiloxProperties: float Box-Muller versus its float64 reference, scaled by std.
    private const double NormalAtol = 1e-5;
    private const double NormalRtol = 1e-6;

    private static Gen<Rng> AnyRng { get; } = Gens.StreamKey.Select(k => new Rng(k.Seed, k.Stream, k.Counter));

    private static Gen<Shape> SmallShape { get; } = Gen.OneOf(
        Gens.Length.Select(n => new Shape(n)),
        from r in Gens.Dim from c in Gens.Dim select new Shape(r, c),
        Gen.Constant(Shape.Scalar));

    [Property(MaxTest = 30)]
    public Property Uniform_is_the_Philox_stream_of_seed_stream_and_counter() =>
        Prop.ForAll(AnyRng.ToArbitrary(), SmallShape.ToArbitrary(), (rng, shape) =>
        {
            using var t = rng.Uniform(Devices.Cpu, shape);
            var expected = new float[shape.Length];
            PhiloxReference.UniformReference(expected, rng.Seed, rng.Stream, rng.Counter);
            return (t.Shape == shape).Label($"shape {t.Shape} versus {shape}")
                .And((t.DType == DType.Float32).Label("dtype"))
                .And(Close.All(t.ToHost(), expected, 0, 0, $"{rng}, shape {shape}"));
        });

    [Property(MaxTest = 20)]
    public Property Normal_and_Bernoulli_are_the_Philox_streams() =>
        Prop.ForAll(AnyRng.ToArbitrary(), SmallShape.ToArbitrary(), (from p in Gens.Probability from std in Gens.Float(0, 3) select (p, std)).ToArbitrary(), (rng, shape, ps) =>
        {
            var (p, std) = ps;
            using var z = rng.Normal(Devices.Cpu, shape, -1f, std);
            using var b = rng.Bernoulli(Devices.Cpu, shape, p);
            var zr = new float[shape.Length];
            var br = new float[shape.Length];
            PhiloxReference.NormalReference(zr, rng.Seed, rng.Stream, rng.Counter, -1f, std);
            PhiloxReference.BernoulliReference(br, p, rng.Seed, rng.Stream, rng.Counter);
            return Close.All(z.ToHost(), zr, NormalAtol * Math.Max(std, 1e-3), NormalRtol, "normal")
                .And(Close.All(b.ToHost(), br, 0, 0, "bernoulli"))
                .And((z.Shape == shape && b.Shape == shape).Label("shapes"))
                .Label($"{rng}, shape {shape}, p = {p:R}, std = {std:R}");
        });

    [Property(MaxTest = 20)]
    public Property Same_value_same_numbers_on_both_devices() =>
        Prop.ForAll(AnyRng.ToArbitrary(), Gens.Length.ToArbitrary(), (rng, n) =>
        {
            using var a = rng.Uniform(Devices.Cpu, new Shape(n));
            using var b = rng.Uniform(Devices.CpuKernels, new Shape(n));
            using var again = rng.Uniform(Devices.Cpu, new Shape(n));
            var first = a.ToHost();
            return Close.All(b.ToHost(), first, 0, 0, "CpuKernels versus Cpu")
                .And(Close.All(again.ToHost(), first, 0, 0, "drawing twice"));
        });

    [Property(MaxTest = 50)]
    public Property Values_are_immutable_and_derivations_deterministic() =>
        Prop.ForAll(AnyRng.ToArbitrary(), Gens.Word32.ToArbitrary(), (rng, data) =>
        {
            var copy = rng with { };
            var f1 = rng.Fold(data);
            var f2 = rng.Fold(data);
            var s = rng.Split(3);
            var at = rng.At(data);
            return (rng == copy).Label("unchanged by Fold, Split, At")
                .And((f1 == f2).Label("Fold is deterministic"))
                .And(s.SequenceEqual(rng.Split(3)).Label("Split is deterministic"))
                .And((f1.Stream == data && f1.Counter == 0).Label("Fold: stream = data, counter 0"))
                .And((at.Seed == rng.Seed && at.Stream == rng.Stream && at.Counter == data).Label("At sets only the counter"));
        });

    [Property(MaxTest = 50)]
    public Property Fold_and_Split_give_distinct_seeds() =>
        Prop.ForAll(AnyRng.ToArbitrary(), Gens.Word32.ToArbitrary(), (rng, data) =>
        {
            // Parents that differ only in stream or only in counter must give different children.
            var seeds = new List<ulong>
            {
                rng.Seed,
                rng.Fold(data).Seed,
                rng.Fold(data + 1).Seed,
                rng.At(rng.Counter + 1).Fold(data).Seed,
                (rng with { Stream = rng.Stream + 1 }).Fold(data).Seed,
            };
            seeds.AddRange(rng.Split(8).Select(c => c.Seed));
            seeds.Add(rng.Fold(data).Fold(data + 1).Seed);
            seeds.Add(rng.Fold(data + 1).Fold(data).Seed);
            return (seeds.Distinct().Count() == seeds.Count).Label($"{rng}, data {data}: seeds {string.Join(", ", seeds.Select(x => x.ToString("X16")))}");
        });

    [Fact]
    public void Split_is_prefix_stable_and_differs_from_Fold()
    {
        var rng = Rng.Create(2024);
        var three = rng.Split(3);
        var eight = rng.Split(8);
        Assert.Equal(three, eight.Take(3));
        Assert.Empty(rng.Split(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => rng.Split(-1));
        Assert.NotEqual(rng.Fold(1).Seed, three[1].Seed);
        Assert.Equal(1u, three[1].Stream);
    }

    [Fact]
    public void Create_At_and_Next_move_only_the_counter()
    {
        var rng = Rng.Create(7);
        Assert.Equal(new Rng(7, 0, 0), rng);
        Assert.Equal(new Rng(7, 0, 1), rng.Next());
        Assert.Equal(new Rng(7, 0, 6), rng.At(5).Next());
        var e = Assert.Throws<OverflowException>(() => rng.At(uint.MaxValue).Next());
        Assert.Contains("Next", e.Message);
    }

    [Fact]
    public void Derived_streams_are_uncorrelated()
    {
        const int n = 1 << 15;
        var root = Rng.Create(0xDEADBEEF);
        var streams = new[]
        {
            root,
            root.Next(),
            root.Fold(0),
            root.Fold(1),
            root.Split(2)[0],
            root.Split(2)[1],
            root.Fold(0).Fold(1),
            root.Fold(1).Fold(0),
            root.Next().Fold(0),
            root.Fold(0).Next(),
            Rng.Create(0xDEADBEEF + 1),
        };
        var samples = streams.Select(r =>
        {
            using var t = r.Uniform(Devices.Cpu, new Shape(n));
            return t.ToHost();
        }).ToArray();
        for (int a = 0; a < samples.Length; a++)
        {
            for (int b = a + 1; b < samples.Length; b++)
            {
                double rho = Moments.Pearson(samples[a], samples[b]);
                Assert.True(Math.Abs(rho) < Sigmas / Math.Sqrt(n), $"{streams[a]} versus {streams[b]}: correlation {rho}");
            }
        }
    }

    [Fact]
    public void Normal_with_mean_and_std_has_those_moments()
    {
        const int n = 1 << 18;
        using var t = Rng.Create(11).Fold(3).Normal(Devices.Cpu, new Shape(512, 512), 2f, 3f);
        var (mean, variance) = Moments.MeanVariance(t.ToHost());
        // Var(mean) = std^2 / n; Var(sample variance) ~ 2 std^4 / n.
        Assert.True(Math.Abs(mean - 2) < Sigmas * 3 / Math.Sqrt(n), $"mean {mean}");
        Assert.True(Math.Abs(variance - 9) < Sigmas * Math.Sqrt(2 * 81.0 / n), $"variance {variance}");
    }

    [Fact]
    public void Bernoulli_rejects_p_outside_the_unit_interval()
    {
        var rng = Rng.Create(1);
        foreach (var p in new[] { -0.5f, 1.5f, float.NaN })
            Assert.Throws<ArgumentOutOfRangeException>(() => rng.Bernoulli(Devices.Cpu, new Shape(4), p));
    }
}
