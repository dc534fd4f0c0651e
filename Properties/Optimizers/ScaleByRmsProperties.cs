using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>ScaleByRms: the float64 recurrence over several updates, which buffers it keeps, consumption and checks.</summary>
public class ScaleByRmsProperties
{
    // float32 against float64 over a few updates; the momentum buffer sums directions of both
    // signs, so the absolute part is relative to the largest value of the array.
    private const double Rtol = 1e-5;

    private static readonly Dictionary<string, (int[] Shape, float[] Data)> One = new() { ["w"] = ([2], [1f, -2f]) };

    [Property(MaxTest = 25)]
    public Property Several_updates_follow_the_float64_recurrence() =>
        Prop.ForAll(
            (from layout in Trees.Layouts
             from seed in Gen.Choose(0, 10_000)
             from alpha in Gen.Elements(0.5, 0.9, 0.99)
             from centered in Gen.Elements(false, true)
             from momentum in Gen.Elements<Schedule>(0.0, 0.9, new Ramp(0.5, 0.1))
             select (layout, seed, alpha, centered, momentum)).ToArbitrary(),
            args =>
            {
                var (layout, seed, alpha, centered, momentum) = args;
                const double eps = 1e-6;
                const int steps = 4;
                var d = Devices.Cpu;
                using var p = Trees.Random(d, layout, seed);
                var opt = new ScaleByRms(alpha, eps, centered, momentum);
                var s = opt.Init(p);
                var grad = AdaptiveRuns.RandomGrad(seed);
                int n = (int)p.Count;
                double[] v = new double[n], mu = new double[n], b = new double[n], dir = new double[n];
                float[] last = [];
                for (int t = 0; t < steps; t++)
                {
                    var g = grad(new float[n], t);
                    var (u, next) = opt.Update(Trees.FromFlat(p, g), s, p, UpdateContext.None);
                    last = u.Flat();
                    u.Dispose();
                    s = next;
                    double mom = momentum.At(t);
                    for (int i = 0; i < n; i++)
                    {
                        v[i] = (alpha * v[i]) + ((1 - alpha) * g[i] * g[i]);
                        mu[i] = (alpha * mu[i]) + ((1 - alpha) * g[i]);
                        double den = Math.Sqrt(v[i] - (centered ? mu[i] * mu[i] : 0)) + eps;
                        b[i] = (mom * b[i]) + (g[i] / den);
                        dir[i] = opt.HasMomentum ? b[i] : g[i] / den;
                    }
                }
                var st = s.Find<ScaleByRmsState>();
                var result = Near(last, dir, "direction")
                    .And(Near(st.Nu.Flat(), v, "v"))
                    .And((st.Count == steps).Label("count"));
                if (centered)
                    result = result.And(Near(st.Mu!.Flat(), mu, "mu"));
                if (opt.HasMomentum)
                    result = result.And(Near(st.MomentumBuffer!.Flat(), b, "momentum buffer"));
                s.Dispose();
                return result.Label($"alpha {alpha}, centered {centered}, momentum {momentum}");
            });

    private static Property Near(float[] got, double[] expected, string what)
    {
        double scale = expected.Length == 0 ? 0 : expected.Max(Math.Abs);
        return Close.All(got, expected, (Rtol * scale) + 1e-30, Rtol, what);
    }

    [Fact]
    public void Buffers_exist_only_for_the_options_that_need_them()
    {
        using var p = ParamTree.FromHost(Devices.Cpu, One);
        using var plain = (ScaleByRmsState)new ScaleByRms().Init(p);
        Assert.Null(plain.Mu);
        Assert.Null(plain.MomentumBuffer);
        using var full = (ScaleByRmsState)new ScaleByRms(centered: true, momentum: 0.9).Init(p);
        Assert.NotNull(full.Mu);
        Assert.NotNull(full.MomentumBuffer);
        using var scheduled = (ScaleByRmsState)new ScaleByRms(momentum: new Ramp(0, 0.1)).Init(p);
        Assert.NotNull(scheduled.MomentumBuffer);
    }

    [Fact]
    public void Update_consumes_grads_and_state_and_moves_the_buffers()
    {
        using var p = ParamTree.FromHost(Devices.Cpu, One);
        var opt = new ScaleByRms(centered: true, momentum: 0.5);
        var s0 = (ScaleByRmsState)opt.Init(p);
        var g = p.Clone();
        var (u, s1) = opt.Update(g, s0, p, UpdateContext.None);
        Assert.Throws<ConsumedValueException>(() => g.Flat32);
        Assert.Throws<ConsumedValueException>(() => s0.Nu.Flat32);
        Assert.Throws<ConsumedValueException>(() => s0.MomentumBuffer!.Flat32);
        Assert.Contains("scale_by_rms.Update", Assert.Throws<ConsumedValueException>(() => opt.Update(u, s0, p, UpdateContext.None)).Message);
        var st = Assert.IsType<ScaleByRmsState>(s1);
        Assert.Equal(1, st.Count);
        // v = 0.01 g^2 and mu = 0.01 g: the first centered direction is g / (sqrt(0.01 g^2 - 1e-4 g^2) + eps).
        Assert.True(Close.Check(u.Flat(), [(float)(1 / Math.Sqrt(0.0099)), (float)(-1 / Math.Sqrt(0.0099))], 0, 1e-6, "first direction").Ok, string.Join(", ", u.Flat()));
        u.Dispose();
        s1.Dispose();
    }

    [Fact]
    public void Hyperparameters_are_checked_with_pytorch_names()
    {
        using var p = ParamTree.FromHost(Devices.Cpu, One);
        Assert.Contains("alpha", Assert.Throws<ArgumentOutOfRangeException>(() => new ScaleByRms(-0.1).Init(p)).Message);
        Assert.Contains("eps", Assert.Throws<ArgumentOutOfRangeException>(() => new ScaleByRms(eps: double.NaN).Init(p)).Message);
        Assert.Contains("momentum", Assert.Throws<ArgumentOutOfRangeException>(() => new ScaleByRms(momentum: -0.5).Init(p)).Message);

        // A momentum schedule is checked when it is read: 0.1 - 0.2 t is negative at t = 1.
        var opt = new ScaleByRms(momentum: new Ramp(0.1, -0.2));
        var s = opt.Init(p);
        var (u, next) = opt.Update(p.Clone(), s, p, UpdateContext.None);
        u.Dispose();
        using var g = p.Clone();
        Assert.Contains("momentum", Assert.Throws<InvalidOperationException>(() => opt.Update(g, next, p, UpdateContext.None)).Message);
        Assert.False(g.IsConsumed);
        next.Dispose();
    }

    // PyTorch accepts alpha > 1; then 1 - alpha < 0 drives v negative and the first step is NaN.
    [Fact]
    public void Alpha_of_one_or_more_is_refused_naming_the_range()
    {
        using var p = ParamTree.FromHost(Devices.Cpu, One);
        foreach (double alpha in new[] { 1.0, 1.5, double.PositiveInfinity })
        {
            Assert.Contains("alpha must be in [0, 1)", Assert.Throws<ArgumentOutOfRangeException>(() => new ScaleByRms(alpha).Init(p)).Message);
            Assert.Contains("alpha must be in [0, 1)", Assert.Throws<ArgumentOutOfRangeException>(() => new RmsProp(1e-2, alpha: alpha)).Message);
        }

        foreach (double alpha in new[] { 0.0, 0.99 })
            new ScaleByRms(alpha).Init(p).Dispose();
    }
}
