using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>ScaleByAdagrad: the float64 recurrence, the 1/sqrt(t) law for a constant gradient, consumption and checks.</summary>
public class ScaleByAdagradProperties
{
    // float32 against float64 over a few updates: sums of non-negative terms and one division.
    private const double Rtol = 2e-6;

    private static readonly Dictionary<string, (int[] Shape, float[] Data)> One = new() { ["w"] = ([2], [1f, -2f]) };

    [Property(MaxTest = 25)]
    public Property Several_updates_follow_the_float64_recurrence() =>
        Prop.ForAll(
            (from layout in Trees.Layouts
             from seed in Gen.Choose(0, 10_000)
             from init in Gen.Elements(0.0, 0.1, 3.0)
             from eps in Gens.Eps
             from steps in Gen.Choose(1, 5)
             select (layout, seed, init, eps, steps)).ToArbitrary(),
            args =>
            {
                var (layout, seed, init, eps, steps) = args;
                var d = Devices.Cpu;
                using var p = Trees.Random(d, layout, seed);
                var opt = new ScaleByAdagrad(init, eps);
                var s = opt.Init(p);
                int n = (int)p.Count;
                var sum = Enumerable.Repeat((double)(float)init, n).ToArray();
                var dir = new double[n];
                float[] last = [];
                for (int t = 0; t < steps; t++)
                {
                    var g = AdaptiveRuns.RandomGrad(seed)(new float[n], t);
                    var (u, next) = opt.Update(Trees.FromFlat(p, g), s, p, UpdateContext.None);
                    last = u.Flat();
                    u.Dispose();
                    s = next;
                    for (int i = 0; i < n; i++)
                    {
                        sum[i] += (double)g[i] * g[i];
                        dir[i] = g[i] / (Math.Sqrt(sum[i]) + eps);
                    }
                }
                var st = s.Find<ScaleByAdagradState>();
                var result = Close.All(last, dir, 1e-30, Rtol, "direction")
                    .And(Close.All(st.Sum.Flat(), sum, 1e-30, Rtol, "sum"))
                    .And((st.Count == steps).Label("count"));
                s.Dispose();
                return result.Label($"init {init}, eps {eps}, steps {steps}");
            });

    [Property(MaxTest = 20)]
    public Property A_constant_gradient_gives_sign_g_over_sqrt_t() =>
        Prop.ForAll(Gens.Vector(-3f, 3f).ToArbitrary(), Gen.Choose(1, 6).ToArbitrary(), (x, steps) =>
        {
            // sum_t = t g^2, so d_t = g / (sqrt(t) |g| + eps) = sign(g) / sqrt(t) up to eps / |g|.
            var d = Devices.Cpu;
            var g = x.Select(v => MathF.CopySign(0.01f + Math.Abs(v), v)).ToArray();
            using var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["x"] = ([g.Length], g) });
            var opt = new ScaleByAdagrad();
            var s = opt.Init(p);
            float[] last = [];
            for (int t = 0; t < steps; t++)
            {
                var (u, next) = opt.Update(p.Clone(), s, p, UpdateContext.None);
                last = u.Flat();
                u.Dispose();
                s = next;
            }
            s.Dispose();
            var expected = g.Select(v => Math.Sign(v) / Math.Sqrt(steps)).ToArray();
            return Close.All(last, expected, 1e-30, Rtol * steps, $"t = {steps}");
        });

    [Fact]
    public void Init_fills_the_initial_accumulator_and_update_consumes()
    {
        using var p = ParamTree.FromHost(Devices.Cpu, One);
        var opt = new ScaleByAdagrad(initialAccumulatorValue: 0.25);
        var s0 = (ScaleByAdagradState)opt.Init(p);
        Assert.Equal([0.25f, 0.25f], s0.Sum.Flat());
        var g = p.Clone();
        var (u, s1) = opt.Update(g, s0, p, UpdateContext.None);
        Assert.Throws<ConsumedValueException>(() => g.Flat32);
        Assert.Throws<ConsumedValueException>(() => s0.Sum.Flat32);
        Assert.Contains("scale_by_adagrad.Update", Assert.Throws<ConsumedValueException>(() => opt.Update(u, s0, p, UpdateContext.None)).Message);
        var st = Assert.IsType<ScaleByAdagradState>(s1);
        Assert.Equal([1.25f, 4.25f], st.Sum.Flat());
        Assert.Equal(1, st.Count);
        u.Dispose();
        s1.Dispose();
    }

    [Fact]
    public void Hyperparameters_are_checked_with_pytorch_names()
    {
        using var p = ParamTree.FromHost(Devices.Cpu, One);
        Assert.Contains("initial_accumulator_value", Assert.Throws<ArgumentOutOfRangeException>(() => new ScaleByAdagrad(-1).Init(p)).Message);
        Assert.Contains("eps", Assert.Throws<ArgumentOutOfRangeException>(() => new ScaleByAdagrad(eps: -1e-10).Init(p)).Message);
    }
}
