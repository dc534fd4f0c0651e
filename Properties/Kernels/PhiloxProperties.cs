namespace IlgpuTrain.Properties.Kernels;

/// <summary>
/// Philox4x32-10: Random123's known answers, kernels equal to their references and to the
/// per-element device functions, bitwise identity across launch layouts, and statistics.
/// </summary>
public class PhiloxProperties
{
    // Kernel and reference compute the same Box-Muller in float and float64. Worst case:
    // theta = 2 pi u2 rounded in float (<= 5.5e-7 absolute) times r <= 5.77, plus one rounding of
    // log, sqrt and cos or sin: about 4e-6, scaled by std. 1e-5 leaves a 2.5x margin.
    private const double NormalAtol = 1e-5;

    // mean + std * z adds one float rounding relative to |y|.
    private const double NormalRtol = 1e-6;

    // Statistical bounds are 6 standard errors: a correct generator fails one in ~5e8 runs.
    private const double Sigmas = 6;

    private const int StatN = 1 << 18;

    // Random123 tests/kat_vectors, lines 27-29 (DEShawResearch/random123 at 9545ff64):
    // "philox4x32 10", counter (4 words), key (2 words), expected (4 words).
    private static readonly (uint[] Counter, uint[] Key, uint[] Expected)[] Kat =
    [
        ([0u, 0u, 0u, 0u], [0u, 0u], [0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u]),
        ([0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu], [0xffffffffu, 0xffffffffu], [0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu]),
        ([0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u], [0xa4093822u, 0x299f31d0u], [0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u]),
    ];

    // The same accelerators under other launch shapes: grid-stride kernels must not care.
    private static readonly Lazy<KernelHost[]> Layouts = new(() =>
    [
        Devices.Cpu.Kernels,
        Devices.CpuKernels.Kernels,
        new KernelHost(Devices.Cpu.Accelerator, Devices.Cpu.Stream, new LaunchPolicy(1, 1, 1, 1)),
        new KernelHost(Devices.Cpu.Accelerator, Devices.Cpu.Stream, new LaunchPolicy(1, 7, 1, 7)),
        new KernelHost(Devices.Cpu.Accelerator, Devices.Cpu.Stream, new LaunchPolicy(2, 3, 2, 3)),
        new KernelHost(Devices.CpuKernels.Accelerator, Devices.CpuKernels.Stream, new LaunchPolicy(16, 1, 16, 1)),
        new KernelHost(Devices.CpuKernels.Accelerator, Devices.CpuKernels.Stream, new LaunchPolicy(16, 5, 16, 5)),
    ]);

    private static Gen<(float Mean, float Std)> MeanStd { get; } =
        from mean in Gens.Float(-3, 3)
        from std in Gen.OneOf(Gen.Constant(0f), Gen.Constant(1f), Gens.Float(0, 3))
        select (mean, std);

    public static TheoryData<int> KatIndices() => new(0, 1, 2);

    // ---------------------------------------------------------------- known answers

    [Theory]
    [MemberData(nameof(KatIndices))]
    public void Reference_matches_Random123_known_answers(int k)
    {
        var (counter, key, expected) = Kat[k];
        var got = new uint[4];
        PhiloxReference.BlockReference(counter, key, got);
        Assert.Equal(Hex(expected), Hex(got));
    }

    [Theory]
    [MemberData(nameof(KatIndices))]
    public void Device_function_matches_Random123_known_answers(int k)
    {
        var (c, key, expected) = Kat[k];
        var w = Philox.Block(new PhiloxWords(c[0], c[1], c[2], c[3]), key[0], key[1]);
        Assert.Equal(Hex(expected), Hex([w.X0, w.X1, w.X2, w.X3]));
    }

    [Fact]
    public void Block_kernel_matches_Random123_known_answers_on_every_layout()
    {
        var counters = Kat.SelectMany(v => v.Counter).ToArray();
        var keys = Kat.SelectMany(v => v.Key).ToArray();
        var expected = Kat.SelectMany(v => v.Expected).ToArray();
        foreach (var host in Layouts.Value)
            Assert.Equal(Hex(expected), Hex(Blocks(host, counters, keys)));
    }

    [Fact]
    public void Element_mapping_puts_block_stream_counter_and_seed_where_documented()
    {
        // Counter = (block low, block high, stream, counter), key = (seed low, seed high): each
        // known answer, read back through the element mapping.
        foreach (var (c, key, expected) in Kat)
        {
            ulong seed = key[0] | ((ulong)key[1] << 32);
            ulong block = c[0] | ((ulong)c[1] << 32);
            var w = Philox.BlockAt(seed, c[2], c[3], block);
            Assert.Equal(Hex(expected), Hex([w.X0, w.X1, w.X2, w.X3]));
        }

        // Block 0 of (seed 0, stream 0, counter 0) is the all-zero answer, from the production kernel.
        var bits = Bits(Devices.Cpu.Kernels, 6, new StreamKey(0, 0, 0));
        Assert.Equal(Hex(Kat[0].Expected), Hex(bits[..4]));
    }

    // ---------------------------------------------------------------- kernels equal references

    [Property(MaxTest = 30)]
    public Property Block_kernel_equals_reference() =>
        Prop.ForAll(Gens.Length.ToArbitrary(), Gens.StreamKey.ToArbitrary(), (n, k) =>
        {
            int blocks = n / 16;
            var r = new Random(HashCode.Combine(n, k));
            var counters = Enumerable.Range(0, blocks * 4).Select(_ => (uint)r.NextInt64(0, 1L << 32)).ToArray();
            var keys = Enumerable.Range(0, blocks * 2).Select(_ => (uint)r.NextInt64(0, 1L << 32)).ToArray();
            var expected = new uint[blocks * 4];
            for (int b = 0; b < blocks; b++)
                PhiloxReference.BlockReference(counters.AsSpan(b * 4, 4), keys.AsSpan(b * 2, 2), expected.AsSpan(b * 4, 4));
            return Devices.All.Select(d => Blocks(d.Kernels, counters, keys).SequenceEqual(expected).Label($"{d}, {blocks} blocks"))
                .Aggregate((a, b) => a.And(b));
        });

    [Property(MaxTest = 30)]
    public Property Bits_kernel_equals_reference() =>
        Prop.ForAll(Gens.Length.ToArbitrary(), Gens.StreamKey.ToArbitrary(), (n, k) =>
        {
            var expected = new uint[n];
            PhiloxReference.BitsReference(expected, k.Seed, k.Stream, k.Counter);
            return OnAll(d => FirstDifference(Bits(d.Kernels, n, k), expected).Label($"{d}, n = {n}"));
        });

    [Property(MaxTest = 30)]
    public Property Uniform_kernel_equals_reference_bitwise() =>
        Prop.ForAll(Gens.Length.ToArbitrary(), Gens.StreamKey.ToArbitrary(), (n, k) =>
        {
            var expected = new float[n];
            PhiloxReference.UniformReference(expected, k.Seed, k.Stream, k.Counter);
            return OnAll(d => Close.All(Uniform(d.Kernels, n, k), expected, 0, 0, $"{d}, n = {n}"));
        });

    [Property(MaxTest = 30)]
    public Property Bernoulli_kernel_equals_reference_bitwise() =>
        Prop.ForAll(Gens.Length.ToArbitrary(), Gens.StreamKey.ToArbitrary(), Gens.Probability.ToArbitrary(), (n, k, p) =>
        {
            var expected = new float[n];
            PhiloxReference.BernoulliReference(expected, p, k.Seed, k.Stream, k.Counter);
            return OnAll(d => Close.All(Bernoulli(d.Kernels, n, p, k), expected, 0, 0, $"{d}, n = {n}, p = {p:R}"));
        });

    [Property(MaxTest = 30)]
    public Property Normal_kernel_equals_float64_reference() =>
        Prop.ForAll(Gens.Length.ToArbitrary(), Gens.StreamKey.ToArbitrary(), MeanStd.ToArbitrary(), (n, k, ms) =>
        {
            var (mean, std) = ms;
            var expected = new float[n];
            PhiloxReference.NormalReference(expected, k.Seed, k.Stream, k.Counter, mean, std);
            return OnAll(d => Close.All(Normal(d.Kernels, n, k, mean, std), expected, NormalAtol * Math.Max(std, 1e-3), NormalRtol, $"{d}, n = {n}"));
        });

    [Property(MaxTest = 20)]
    public Property Kernels_equal_the_per_element_device_functions() =>
        Prop.ForAll(Gens.Length.ToArbitrary(), Gens.StreamKey.ToArbitrary(), Gens.Probability.ToArbitrary(), (n, k, p) =>
        {
            // Dropout and augmentation kernels call BitsAt/UniformAt/NormalAt/BernoulliAt one
            // element at a time; they must see exactly what the block-wise kernels write. On the
            // CPU accelerator both run the same float operations, so normals match bitwise too.
            var host = Devices.Cpu.Kernels;
            var idx = Enumerable.Range(0, n).ToArray();
            var bits = idx.Select(i => Philox.BitsAt(k.Seed, k.Stream, k.Counter, i)).ToArray();
            var uniform = idx.Select(i => Philox.UniformAt(k.Seed, k.Stream, k.Counter, i)).ToArray();
            var normal = idx.Select(i => Philox.NormalAt(k.Seed, k.Stream, k.Counter, i)).ToArray();
            var bernoulli = idx.Select(i => Philox.BernoulliAt(k.Seed, k.Stream, k.Counter, i, p) ? 1f : 0f).ToArray();
            return FirstDifference(Bits(host, n, k), bits).Label("bits")
                .And(Close.All(Uniform(host, n, k), uniform, 0, 0, "uniform"))
                .And(Close.All(Normal(host, n, k, 0, 1), normal, 0, 0, "normal"))
                .And(Close.All(Bernoulli(host, n, p, k), bernoulli, 0, 0, "bernoulli"))
                .Label($"n = {n}, p = {p:R}");
        });

    // ---------------------------------------------------------------- layout independence

    [Property(MaxTest = 20)]
    public Property Uniform_is_bitwise_identical_across_launch_layouts() =>
        Prop.ForAll(Gens.Length.ToArbitrary(), Gens.StreamKey.ToArbitrary(), (n, k) =>
        {
            var first = Uniform(Layouts.Value[0], n, k);
            return Layouts.Value.Skip(1)
                .Select((h, i) => Close.All(Uniform(h, n, k), first, 0, 0, $"layout {i + 1} ({h.Launch}, groups of {h.Accelerator.MaxNumThreadsPerGroup} max)"))
                .Aggregate((a, b) => a.And(b))
                .Label($"n = {n}");
        });

    [Property(MaxTest = 10)]
    public Property Bits_normal_and_bernoulli_are_bitwise_identical_across_launch_layouts() =>
        Prop.ForAll(Gens.Length.ToArbitrary(), Gens.StreamKey.ToArbitrary(), (n, k) =>
        {
            var bits = Bits(Layouts.Value[0], n, k);
            var normal = Normal(Layouts.Value[0], n, k, 0.5f, 2f);
            var bern = Bernoulli(Layouts.Value[0], n, 0.3f, k);
            return Layouts.Value.Skip(1)
                .Select((h, i) => FirstDifference(Bits(h, n, k), bits).Label($"bits, layout {i + 1}")
                    .And(Close.All(Normal(h, n, k, 0.5f, 2f), normal, 0, 0, $"normal, layout {i + 1}"))
                    .And(Close.All(Bernoulli(h, n, 0.3f, k), bern, 0, 0, $"bernoulli, layout {i + 1}")))
                .Aggregate((a, b) => a.And(b))
                .Label($"n = {n}");
        });

    // ---------------------------------------------------------------- statistics

    [Fact]
    public void Uniform_moments_range_and_distribution()
    {
        var u = Uniform(Devices.Cpu.Kernels, StatN, new StreamKey(0x5EED, 3, 11));
        Assert.All(u, v => Assert.True(v >= 0f && v < 1f, $"{v} outside [0, 1)"));
        var (mean, variance) = Moments.MeanVariance(u);
        // Var(u) = 1/12; Var((u - 1/2)^2) = 1/80 - 1/144.
        Assert.True(Math.Abs(mean - 0.5) < Sigmas * Math.Sqrt(1.0 / 12 / StatN), $"mean {mean}");
        Assert.True(Math.Abs(variance - (1.0 / 12)) < Sigmas * Math.Sqrt(((1.0 / 80) - (1.0 / 144)) / StatN), $"variance {variance}");
        double d = Moments.KolmogorovSmirnov(u, x => Math.Clamp(x, 0, 1));
        Assert.True(d < Moments.KsBound(StatN), $"Kolmogorov-Smirnov D = {d}");
        Assert.True(u.Min() < 1e-4 && u.Max() > 1 - 1e-4, "the extremes of [0, 1) are reached");
    }

    [Fact]
    public void Normal_moments_distribution_and_pair_independence()
    {
        var z = Normal(Devices.Cpu.Kernels, StatN, new StreamKey(0xC0FFEE, 1, 2), 0, 1);
        Assert.All(z, v => Assert.True(float.IsFinite(v) && Math.Abs(v) <= 5.78f, $"{v} not finite or beyond sqrt(-2 ln 2^-24)"));
        var (mean, variance) = Moments.MeanVariance(z);
        // Var(z) = 1; Var(z^2) = E z^4 - 1 = 2.
        Assert.True(Math.Abs(mean) < Sigmas / Math.Sqrt(StatN), $"mean {mean}");
        Assert.True(Math.Abs(variance - 1) < Sigmas * Math.Sqrt(2.0 / StatN), $"variance {variance}");
        double d = Moments.KolmogorovSmirnov(z, x => MathNet.Numerics.Distributions.Normal.CDF(0, 1, x));
        Assert.True(d < Moments.KsBound(StatN), $"Kolmogorov-Smirnov D = {d}");

        // Neighbours: the cos/sin pair (lag 1), the other pair of the block (lag 2), the next block (lag 4).
        foreach (int lag in new[] { 1, 2, 3, 4 })
        {
            double rho = Moments.Pearson(z.AsSpan(0, StatN - lag), z.AsSpan(lag));
            Assert.True(Math.Abs(rho) < Sigmas / Math.Sqrt(StatN), $"lag-{lag} correlation {rho}");
        }
    }

    [Property(MaxTest = 8)]
    public Property Bernoulli_mean_is_p() =>
        Prop.ForAll(Gens.Probability.ToArbitrary(), Gens.StreamKey.ToArbitrary(), (p, k) =>
        {
            const int n = 1 << 16;
            var y = Bernoulli(Devices.Cpu.Kernels, n, p, k);
            double mean = y.Average(v => (double)v);
            // P(u < p) = ceil(p 2^24) / 2^24, within 2^-24 of p.
            double bound = (Sigmas * Math.Sqrt(p * (1.0 - p) / n)) + (1.0 / 16777216);
            return (y.All(v => v == 0f || v == 1f) && Math.Abs(mean - p) <= bound)
                .Label($"p = {p:R}: mean {mean:R}, bound {bound:E3}");
        });

    [Fact]
    public void Extreme_words_map_to_the_ends_of_each_range()
    {
        // Found by search over seeds (stream 0, counter 0, block 0); the reference confirms them.
        var low = new StreamKey(12121362, 0, 0); // word 0 = 0x0000003a: top 24 bits all zero
        var high = new StreamKey(2871038, 0, 0); // word 2 = 0xffffffa1: top 24 bits all one
        var lowBits = new uint[4];
        var highBits = new uint[4];
        PhiloxReference.BitsReference(lowBits, low.Seed, 0, 0);
        PhiloxReference.BitsReference(highBits, high.Seed, 0, 0);
        Assert.Equal(0x0000003au, lowBits[0]);
        Assert.Equal(0xffffffa1u, highBits[2]);

        var host = Devices.Cpu.Kernels;
        const float ulp24 = 1f / 16777216f;
        Assert.Equal(0f, Uniform(host, 4, low)[0]);
        Assert.Equal(1f - ulp24, Uniform(host, 4, high)[2]);
        // Bernoulli is u < p: never at p = 0, even where u = 0; always at p = 1, even where u = 1 - 2^-24.
        Assert.Equal(0f, Bernoulli(host, 4, 0f, low)[0]);
        Assert.Equal(1f, Bernoulli(host, 4, ulp24, low)[0]);
        Assert.Equal(1f, Bernoulli(host, 4, 1f, high)[2]);
        Assert.Equal(0f, Bernoulli(host, 4, 1f - ulp24, high)[2]);
        // u1 = 2^-24 gives the largest radius sqrt(-2 ln 2^-24); u1 = 1 gives radius 0.
        var zLow = Normal(host, 4, low, 0, 1);
        double radius = Math.Sqrt((zLow[0] * (double)zLow[0]) + (zLow[1] * (double)zLow[1]));
        Assert.True(Math.Abs(radius - Math.Sqrt(-2 * Math.Log(1.0 / 16777216))) < 1e-5, $"radius {radius}");
        var zHigh = Normal(host, 4, high, 0, 1);
        Assert.Equal(0f, zHigh[2]);
        Assert.Equal(0f, zHigh[3]);
    }

    [Fact]
    public void NegLog_is_accurate_on_both_sides_of_the_series_switch()
    {
        // Every 24-bit value in the series region (u1 > 1 - 2^-8) and 4096 past it on the log side,
        // against float64 -ln(u1). Four float roundings: 4 * 2^-24 relative.
        const double rtol = 4.0 / 16777216;
        int worst = -1;
        double worstErr = 0;
        for (int t = (1 << 24) - (1 << 16) - 4096; t < 1 << 24; t++)
        {
            uint word = ((uint)t << 8) | 0x5Au;
            double exact = -Math.Log((t + 1) / 16777216.0);
            double err = exact == 0 ? Math.Abs(Philox.NegLogOpenLeft(word)) : Math.Abs(Philox.NegLogOpenLeft(word) - exact) / exact;
            if (err > worstErr)
                (worst, worstErr) = (t, err);
        }
        Assert.True(worstErr <= rtol, $"t = {worst}: relative error {worstErr:E3}");
        Assert.Equal(0f, Philox.NegLogOpenLeft(0xFFFFFFFFu));
        Assert.Equal(-Math.Log(1.0 / 16777216), Philox.NegLogOpenLeft(0u), 5);
    }

    [Fact]
    public void Bernoulli_edges_are_exact()
    {
        var k = new StreamKey(9, 9, 9);
        Assert.All(Bernoulli(Devices.Cpu.Kernels, 4099, 0f, k), v => Assert.Equal(0f, v));
        Assert.All(Bernoulli(Devices.Cpu.Kernels, 4099, 1f, k), v => Assert.Equal(1f, v));
    }

    [Fact]
    public void Neighbouring_seeds_streams_and_counters_are_uncorrelated()
    {
        const int n = 1 << 16;
        var baseKey = new StreamKey(0x0123_4567_89AB_CDEF, 5, 100);
        var neighbours = new[]
        {
            baseKey with { Seed = baseKey.Seed + 1 },
            baseKey with { Seed = baseKey.Seed ^ (1UL << 32) },
            baseKey with { Stream = baseKey.Stream + 1 },
            baseKey with { Counter = baseKey.Counter + 1 },
            new StreamKey(baseKey.Seed, baseKey.Counter, baseKey.Stream),
        };
        var u0 = Uniform(Devices.Cpu.Kernels, n, baseKey);
        var b0 = Bits(Devices.Cpu.Kernels, n, baseKey);
        foreach (var k in neighbours)
        {
            double rho = Moments.Pearson(u0, Uniform(Devices.Cpu.Kernels, n, k));
            Assert.True(Math.Abs(rho) < Sigmas / Math.Sqrt(n), $"{baseKey} versus {k}: correlation {rho}");
            // Equal 32-bit words happen with probability 2^-32 each.
            int same = b0.Zip(Bits(Devices.Cpu.Kernels, n, k)).Count(t => t.First == t.Second);
            Assert.True(same <= 2, $"{baseKey} versus {k}: {same} equal words");
        }
    }

    // ---------------------------------------------------------------- arguments

    [Fact]
    public void Launchers_check_their_arguments()
    {
        var host = Devices.Cpu.Kernels;
        using var y = Devices.Cpu.Poisoned(8);
        foreach (var p in new[] { -0.01f, 1.01f, float.NaN })
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => Philox.Bernoulli(host, y.View<float>(), p, 1, 2, 3));
            Assert.Contains("Bernoulli", e.Message);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => Philox.Normal(host, y.View<float>(), 1, 2, 3, 0, -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Philox.Normal(host, y.View<float>(), 1, 2, 3, float.NaN, 1));

        using var c = Devices.Cpu.Upload(new int[8]);
        using var k = Devices.Cpu.Upload(new int[3]);
        using var o = Devices.Cpu.Upload(new int[8]);
        var m = Assert.Throws<ArgumentException>(() => Philox.Blocks(host, c.View<int>().Cast<uint>(), k.View<int>().Cast<uint>(), o.View<int>().Cast<uint>()));
        Assert.Contains("Blocks", m.Message);
        Assert.Contains("3", m.Message);
        Assert.Contains("4", m.Message);
    }

    [Fact]
    public void Empty_outputs_launch_nothing()
    {
        var host = Devices.Cpu.Kernels;
        Assert.Empty(Uniform(host, 0, new StreamKey(1, 2, 3)));
        Assert.Empty(Normal(host, 0, new StreamKey(1, 2, 3), 0, 1));
        Assert.Empty(Bernoulli(host, 0, 0.5f, new StreamKey(1, 2, 3)));
        Assert.Empty(Bits(host, 0, new StreamKey(1, 2, 3)));
    }

    // ---------------------------------------------------------------- helpers

    internal static uint[] Bits(KernelHost host, int n, StreamKey k)
    {
        var d = DeviceOf(host);
        using var t = d.Upload(new int[n]);
        var y = t.View<int>().Cast<uint>();
        Philox.Bits(host, y, k.Seed, k.Stream, k.Counter);
        return Transfer.ToHost(host.Stream, y);
    }

    internal static float[] Uniform(KernelHost host, int n, StreamKey k) =>
        Launch(host, n, y => Philox.Uniform(host, y, k.Seed, k.Stream, k.Counter));

    internal static float[] Normal(KernelHost host, int n, StreamKey k, float mean, float std) =>
        Launch(host, n, y => Philox.Normal(host, y, k.Seed, k.Stream, k.Counter, mean, std));

    internal static float[] Bernoulli(KernelHost host, int n, float p, StreamKey k) =>
        Launch(host, n, y => Philox.Bernoulli(host, y, p, k.Seed, k.Stream, k.Counter));

    private static uint[] Blocks(KernelHost host, uint[] counters, uint[] keys)
    {
        var d = DeviceOf(host);
        using var c = d.Upload(counters.Select(v => unchecked((int)v)).ToArray());
        using var k = d.Upload(keys.Select(v => unchecked((int)v)).ToArray());
        using var y = d.Upload(new int[counters.Length]);
        Philox.Blocks(host, c.View<int>().Cast<uint>(), k.View<int>().Cast<uint>(), y.View<int>().Cast<uint>());
        return Transfer.ToHost(host.Stream, y.View<int>().Cast<uint>());
    }

    private static float[] Launch(KernelHost host, int n, Action<ArrayView<float>> launch)
    {
        using var y = DeviceOf(host).Poisoned(n);
        launch(y.View<float>());
        return y.ToHost();
    }

    // Extra layouts share the accelerators (and pools) of the two test devices.
    private static Device DeviceOf(KernelHost host) =>
        Devices.All.First(d => d.Accelerator == host.Accelerator);

    private static Property OnAll(Func<Device, Property> check) =>
        Devices.All.Select(check).Aggregate((a, b) => a.And(b));

    private static Property FirstDifference(uint[] got, uint[] expected)
    {
        if (got.Length != expected.Length)
            return false.Label($"length {got.Length} versus {expected.Length}");
        for (int i = 0; i < got.Length; i++)
        {
            if (got[i] != expected[i])
                return false.Label($"[{i}] = 0x{got[i]:x8} but expected 0x{expected[i]:x8}");
        }
        return true.ToProperty();
    }

    private static string Hex(uint[] words) => string.Join(" ", words.Select(w => w.ToString("x8")));
}

/// <summary>Sample statistics in float64 for the random-number properties.</summary>
internal static class Moments
{
    /// <summary>Sample mean and (biased) variance.</summary>
    public static (double Mean, double Variance) MeanVariance(ReadOnlySpan<float> x)
    {
        double sum = 0;
        foreach (var v in x)
            sum += v;
        double mean = sum / x.Length;
        double ss = 0;
        foreach (var v in x)
            ss += (v - mean) * (v - mean);
        return (mean, ss / x.Length);
    }

    /// <summary>Pearson correlation of two equally long samples.</summary>
    public static double Pearson(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        var (ma, va) = MeanVariance(a);
        var (mb, vb) = MeanVariance(b);
        double c = 0;
        for (int i = 0; i < a.Length; i++)
            c += (a[i] - ma) * (b[i] - mb);
        return c / a.Length / Math.Sqrt(va * vb);
    }

    /// <summary>Kolmogorov-Smirnov statistic sup |F_n(x) - F(x)|.</summary>
    public static double KolmogorovSmirnov(float[] sample, Func<double, double> cdf)
    {
        var s = (float[])sample.Clone();
        Array.Sort(s);
        double d = 0;
        for (int i = 0; i < s.Length; i++)
        {
            double f = cdf(s[i]);
            d = Math.Max(d, Math.Max(((i + 1.0) / s.Length) - f, f - ((double)i / s.Length)));
        }
        return d;
    }

    /// <summary>
    /// The KS bound that a correct generator exceeds with probability about 1e-9:
    /// P(sqrt(n) D &gt; t) ~ 2 exp(-2 t^2), so t = sqrt(ln(2e9) / 2) = 3.27.
    /// </summary>
    public static double KsBound(int n) => 3.27 / Math.Sqrt(n);
}
