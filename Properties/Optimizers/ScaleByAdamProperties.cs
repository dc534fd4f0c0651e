using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>ScaleByAdam: bias correction, scale invariance, AMSGrad's running max, a scheduled beta1, state and consumption.</summary>
public class ScaleByAdamProperties
{
    // float32 moments and direction against float64 formulas: a few roundings of 6e-8 each.
    private const double Rtol = 2e-6;

    private static readonly Dictionary<string, (int[] Shape, float[] Data)> One = new() { ["w"] = ([2], [1f, -2f]) };

    [Property(MaxTest = 25)]
    public Property First_update_has_magnitude_lr_abs_g_over_abs_g_plus_eps() =>
        Prop.ForAll(
            (from layout in Trees.Layouts
             from seed in Gen.Choose(0, 10_000)
             from b1 in Gens.Beta
             from b2 in Gens.Beta
             from eps in Gens.Eps
             select (layout, seed, b1, b2, eps)).ToArbitrary(),
            args =>
            {
                var (layout, seed, b1, b2, eps) = args;
                // m1 = (1-b1) g and v1 = (1-b2) g^2, so m1 / (1-b1) = g and sqrt(v1 / (1-b2)) = |g|.
                var d = Devices.Cpu;
                using var p = Trees.Random(d, layout, seed);
                var g = Trees.Random(d, layout, seed + 1);
                var g0 = g.Flat();
                const double lr = 0.01;
                var opt = new Chain(new ScaleByAdam(b1, b2, eps), new ScaleByLearningRate(lr));
                var (u, s) = opt.Update(g, opt.Init(p), p, UpdateContext.None);
                using (u)
                using (s)
                {
                    var expected = g0.Select(x => -lr * x / (Math.Abs(x) + eps)).ToArray();
                    return Close.All(u.Flat(), expected, 1e-30, Rtol, $"b1 {b1}, b2 {b2}, eps {eps}");
                }
            });

    [Property(MaxTest = 20)]
    public Property With_a_constant_gradient_the_bias_corrected_moments_are_g_and_g_squared() =>
        Prop.ForAll(
            (from x in Gens.Vector(-3f, 3f)
             from b1 in Gens.Beta
             from b2 in Gens.Beta
             from steps in Gen.Choose(1, 8)
             select (x, b1, b2, steps)).ToArbitrary(),
            args =>
            {
                var (x, b1, b2, steps) = args;
                var d = Devices.Cpu;
                using var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["x"] = ([x.Length], x) });
                var opt = new ScaleByAdam(b1, b2);
                var s = opt.Init(p);
                var result = true.Label("no steps");
                for (int t = 1; t <= steps; t++)
                {
                    var (u, next) = opt.Update(p.Clone(), s, p, UpdateContext.None);
                    u.Dispose();
                    s = next;
                    var st = s.Find<ScaleByAdamState>();
                    double bc1 = 1 - Math.Pow(b1, t), bc2 = 1 - Math.Pow(b2, t);
                    var mHat = st.Mu.Flat().Select(m => (float)(m / bc1)).ToArray();
                    var vHat = st.Nu.Flat().Select(v => (float)(v / bc2)).ToArray();
                    // Each step adds a rounding of 6e-8 relative; t steps and the division by a small bc amplify nothing else.
                    result = result.And(Close.All(mHat, x.Select(v => (double)v).ToArray(), 1e-30, Rtol * t, $"m/(1-b1^{t})"))
                        .And(Close.All(vHat, x.Select(v => (double)v * v).ToArray(), 1e-30, Rtol * t, $"v/(1-b2^{t})"))
                        .And((st.Count == t).Label($"count {st.Count} after {t} updates"));
                }
                s.Dispose();
                return result.Label($"b1 {b1}, b2 {b2}");
            });

    [Property(MaxTest = 50)]
    public Property Bias_correction_factors_lie_in_zero_one() =>
        Prop.ForAll(Gens.Beta.ToArbitrary(), Gen.OneOf(Gen.Choose(1, 100), Gen.Choose(1, int.MaxValue)).ToArbitrary(), (beta, t) =>
        {
            double bc = AdamScalars.BiasCorrection(beta, t);
            var s = AdamScalars.For(beta, beta, 1e-8, 0, t);
            bool inRange = bc > 0 && bc <= 1 && s.BiasCorrection1 > 0f && s.BiasCorrection1 <= 1f;
            bool grows = AdamScalars.BiasCorrection(beta, t + 1L) >= bc;
            return inRange.Label($"1 - {beta}^{t} = {bc} (float {s.BiasCorrection1})").And(grows.Label("non-decreasing in t"));
        });

    [Property(MaxTest = 20)]
    public Property Direction_is_invariant_to_scaling_g_eps_and_eps_root_together() =>
        Prop.ForAll(
            (from layout in Trees.Layouts
             from seed in Gen.Choose(0, 10_000)
             from c in Gen.Elements(1e-3, 0.5, 7.0, 1e3)
             from amsgrad in Gen.Elements(false, true)
             select (layout, seed, c, amsgrad)).ToArbitrary(),
            args =>
            {
                var (layout, seed, c, amsgrad) = args;
                // d(c g; c eps, c^2 eps_root) = d(g; eps, eps_root) exactly in real arithmetic: m and
                // sqrt(v) scale by c, and so does the denominator. Powers of two would be exact in float;
                // these are not, so allow the roundings.
                var d = Devices.Cpu;
                using var p = Trees.Random(d, layout, seed);
                const int steps = 4;
                var grad = AdaptiveRuns.RandomGrad(seed);
                var baseOpt = new Chain(new ScaleByAdam(0.9, 0.99, 1e-3, 1e-4, amsgrad), new ScaleByLearningRate(0.1));
                var scaledOpt = new Chain(new ScaleByAdam(0.9, 0.99, 1e-3 * c, 1e-4 * c * c, amsgrad), new ScaleByLearningRate(0.1));
                var a = AdaptiveRuns.Final(baseOpt, p, steps, grad, StepPath.Generic);
                var b = AdaptiveRuns.Final(scaledOpt, p, steps, (x, t) => grad(x, t).Select(v => (float)(v * c)).ToArray(), StepPath.Generic);
                return Close.All(b, a, 1e-6, 1e-5, $"scaled by {c}");
            });

    [Property(MaxTest = 20)]
    public Property Amsgrad_keeps_the_running_max_of_the_raw_second_moment() =>
        Prop.ForAll(Gens.Vector(-2f, 2f).ToArbitrary(), Gen.Choose(0, 10_000).ToArbitrary(), Gen.Choose(1, 6).ToArbitrary(), (x, seed, steps) =>
        {
            var d = Devices.Cpu;
            using var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["x"] = ([x.Length], x) });
            var opt = new ScaleByAdam(b2: 0.5, amsgrad: true);
            var s = opt.Init(p);
            var running = new float[x.Length];
            for (int t = 0; t < steps; t++)
            {
                var g = Trees.FromFlat(p, Gens.Random(seed + t, x.Length, -1f, 1f).Select((v, i) => v * (t % 3 == 0 ? 2f : 0.1f)).ToArray());
                var (u, next) = opt.Update(g, s, p, UpdateContext.None);
                u.Dispose();
                s = next;
                var nu = s.Find<ScaleByAdamState>().Nu.Flat();
                for (int i = 0; i < running.Length; i++)
                    running[i] = Math.Max(running[i], nu[i]);
            }
            var st = s.Find<ScaleByAdamState>();
            var got = st.NuMax!.Flat();
            s.Dispose();
            // Exact: the max of stored values is one of them.
            return Close.All(got, running, 0, 0, "v_max = max over steps of the raw v");
        });

    // PyTorch 1.13 with beta1 rewritten before each step, as a scheduler does (known.py, the
    // script above AdamProperties.Known_values_match_pytorch, with):
    // show("adam_b1sched", run(lambda w, b: O.Adam([w, b], lr=0.1, foreach=False), betas1=lambda t: 0.9 / (1 + 0.1 * t)))
    [Fact]
    public void A_scheduled_beta1_enters_the_moment_and_the_bias_correction_as_pytorch()
    {
        float[] expected = [0.0770931542f, -0.545544088f, 1.62339568f, 0.0713817626f, 0.282994807f, -1.11259198f, -0.0500673391f, 0.231677845f, 0.348215491f];
        var d = Devices.Cpu;
        using var p = AdaptiveRuns.KnownTree(d);
        var b1 = new InverseTimeDecay(0.9, 0.1);
        var chain = new Chain(new ScaleByAdam(b1), new ScaleByLearningRate(0.1));
        var got = AdaptiveRuns.Final(chain, p, 5, AdaptiveRuns.KnownGrad, StepPath.Generic);
        Assert.True(Close.Check(got, expected, AdamProperties.TorchAtol, AdamProperties.TorchRtol, "chain").Ok, string.Join(", ", got));
        var alias = AdaptiveRuns.Final(new Adam(0.1, b1), p, 5, AdaptiveRuns.KnownGrad, StepPath.Fused);
        Assert.True(Close.Check(alias, expected, AdamProperties.TorchAtol, AdamProperties.TorchRtol, "fused").Ok, string.Join(", ", alias));
    }

    [Fact]
    public void Update_consumes_grads_and_state_and_moves_the_moments()
    {
        var d = Devices.Cpu;
        using var p = ParamTree.FromHost(d, One);
        var opt = new ScaleByAdam(amsgrad: true);
        var s0 = (ScaleByAdamState)opt.Init(p);
        Assert.Equal(0, s0.Count);
        Assert.NotNull(s0.NuMax);
        var g = p.Clone();
        var (u, s1) = opt.Update(g, s0, p, UpdateContext.None);
        Assert.Throws<ConsumedValueException>(() => g.Flat32);
        Assert.Throws<ConsumedValueException>(() => s0.Mu.Flat32);
        var e = Assert.Throws<ConsumedValueException>(() => opt.Update(u, s0, p, UpdateContext.None));
        Assert.Contains("scale_by_adam.Update", e.Message);
        var st = Assert.IsType<ScaleByAdamState>(s1);
        Assert.Equal(1, st.Count);
        Assert.Equal([0.1f, -0.2f], st.Mu.Flat());
        u.Dispose();
        s1.Dispose();
        Assert.Throws<ConsumedValueException>(() => st.Mu.Flat32);
        Assert.Null(((ScaleByAdamState)new ScaleByAdam().Init(p)).NuMax);
    }

    [Fact]
    public void Hyperparameters_are_checked_with_pytorch_names()
    {
        using var p = ParamTree.FromHost(Devices.Cpu, One);
        Assert.Contains("betas[0]", Assert.Throws<ArgumentOutOfRangeException>(() => new ScaleByAdam(1.0).Init(p)).Message);
        Assert.Contains("betas[1]", Assert.Throws<ArgumentOutOfRangeException>(() => new ScaleByAdam(b2: -0.1).Init(p)).Message);
        Assert.Contains("eps", Assert.Throws<ArgumentOutOfRangeException>(() => new ScaleByAdam(eps: -1e-8).Init(p)).Message);
        Assert.Contains("eps_root", Assert.Throws<ArgumentOutOfRangeException>(() => new ScaleByAdam(epsRoot: double.NaN).Init(p)).Message);

        // A schedule is checked when it is read: 0.5 + 0.25 t leaves [0, 1) at t = 2.
        var opt = new ScaleByAdam(new Ramp(0.5, 0.25));
        var s = opt.Init(p);
        for (int t = 0; t < 2; t++)
        {
            var (u, next) = opt.Update(p.Clone(), s, p, UpdateContext.None);
            u.Dispose();
            s = next;
        }
        using var g = p.Clone();
        var e = Assert.Throws<InvalidOperationException>(() => opt.Update(g, s, p, UpdateContext.None));
        Assert.Contains("betas[0]", e.Message);
        Assert.False(g.IsConsumed);
        Assert.False(s.IsConsumed);
        s.Dispose();
    }
}
