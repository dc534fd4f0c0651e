using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>ClipByGlobalNorm: bounded norm, unchanged direction, identity below the bound, the stored norm.</summary>
public class ClipByGlobalNormProperties
{
    // The deterministic L2 norm is within a few ulps of the float64 norm (Reductions' bound for
    // these sizes), and scaling adds three roundings: 1e-6 relative covers both with margin.
    private const double NormRtol = 1e-6;

    private static Gen<(float Scale, double MaxNorm)> Bounds { get; } =
        from scale in Gen.Elements(1e-3f, 0.1f, 1f, 10f)
        from maxNorm in Gen.OneOf(Gen.Elements(0.0, 0.5, 1.0, 5.0), Gen.Choose(1, 10_000).Select(k => k / 100.0))
        select (scale, maxNorm);

    private static (ParamTree Grads, float[] Host, double Norm) Grads(Device d, (int[] Shape, string Path)[] layout, int seed, float scale)
    {
        var g = Trees.Random(d, layout, seed, -scale, scale);
        var host = g.Flat();
        return (g, host, Math.Sqrt(host.Sum(x => (double)x * x)));
    }

    [Property(MaxTest = 30)]
    public Property Clipped_norm_is_at_most_max_norm_and_the_direction_is_kept() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Bounds.ToArbitrary(), Gen.Choose(0, 10_000).ToArbitrary(), (layout, b, seed) =>
        {
            var prop = true.Label("start");
            foreach (var d in Devices.All)
            {
                var (g, host, norm) = Grads(d, layout, seed, b.Scale);
                using var p = g.ZerosLike();
                var opt = new ClipByGlobalNorm(b.MaxNorm);
                var (u, s) = opt.Update(g, opt.Init(p), p, UpdateContext.None);
                using (u)
                using (s)
                {
                    var got = u.Flat();
                    double outNorm = Math.Sqrt(got.Sum(x => (double)x * x));
                    double factor = Math.Min(1, b.MaxNorm / (norm + 1e-6));
                    prop = prop
                        .And((outNorm <= (b.MaxNorm * (1 + NormRtol)) + 1e-30).Label($"{Devices.Describe(d)}: norm {outNorm:R} > max {b.MaxNorm}"))
                        .And(Close.All(got, host.Select(x => x * factor).ToArray(), 1e-30, NormRtol, $"{Devices.Describe(d)}: u = g * min(1, max/(|g| + 1e-6)), |g| = {norm:R}"));
                }
            }
            return prop;
        });

    [Property(MaxTest = 30)]
    public Property Below_max_norm_it_is_the_identity() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gen.Elements(1e-3f, 1f, 10f).ToArbitrary(), Gen.Choose(0, 10_000).ToArbitrary(), (layout, scale, seed) =>
        {
            var d = Devices.Cpu;
            var (g, host, norm) = Grads(d, layout, seed, scale);
            using var p = g.ZerosLike();
            var opt = new ClipByGlobalNorm((norm * 1.001) + 1e-5);
            var (u, s) = opt.Update(g, opt.Init(p), p, UpdateContext.None);
            using (u)
            using (s)
                return Close.All(u.Flat(), host, 0, 0, $"unchanged bits below max_norm (|g| = {norm:R})");
        });

    [Property(MaxTest = 30)]
    public Property Stored_norm_is_the_float64_pre_clip_norm() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Bounds.ToArbitrary(), Gen.Choose(0, 10_000).ToArbitrary(), (layout, b, seed) =>
        {
            var prop = true.Label("start");
            foreach (var d in Devices.All)
            {
                var (g, _, norm) = Grads(d, layout, seed, b.Scale);
                using var p = g.ZerosLike();
                var opt = new ClipByGlobalNorm(b.MaxNorm);
                using var s0 = opt.Init(p);
                var (u, s) = opt.Update(g, s0, p, UpdateContext.None);
                using (u)
                using (s)
                    prop = prop.And(Close.Scalar(((ClipByGlobalNormState)s).ReadNorm(), norm, 1e-30, NormRtol, $"{Devices.Describe(d)} stored norm"));
            }
            return prop;
        });

    [Fact]
    public void State_norm_is_NaN_before_the_first_update_moves_with_the_state_and_tracks_each_update()
    {
        var d = Devices.Cpu;
        using var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([2], [0f, 0f]) });
        var opt = new ClipByGlobalNorm(1.0);
        var s0 = (ClipByGlobalNormState)opt.Init(p);
        Assert.True(float.IsNaN(s0.ReadNorm()));
        var (u1, s1) = opt.Update(Trees.FromFlat(p, [3f, 4f]), s0, p, UpdateContext.None);
        Assert.Throws<ConsumedValueException>(() => s0.ReadNorm());
        Assert.Equal(5f, ((ClipByGlobalNormState)s1).ReadNorm());
        Assert.Equal(5f, s1.Find<ClipByGlobalNormState>().ReadNorm());
        var (u2, s2) = opt.Update(Trees.FromFlat(p, [0.3f, 0.4f]), s1, p, UpdateContext.None);
        Assert.Equal(0.5f, ((ClipByGlobalNormState)s2).ReadNorm(), 6);
        Assert.Equal([0.3f, 0.4f], u2.Flat());
        u1.Dispose();
        u2.Dispose();
        s2.Dispose();
    }

    [Fact]
    public void Negative_or_NaN_max_norm_is_refused()
    {
        using var p = ParamTree.FromHost(Devices.Cpu, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([1], [1f]) });
        Assert.Contains("max_norm", Assert.Throws<ArgumentOutOfRangeException>(() => new ClipByGlobalNorm(-1).Init(p)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClipByGlobalNorm(double.NaN).Init(p));
    }
}
