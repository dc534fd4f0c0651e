using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>Adam: PyTorch's numbers, the alias is its chain, the fused step is the chain, scale invariance, consumption, checks.</summary>
public class AdamProperties
{
    /// <summary>
    /// Against PyTorch's float32 optimizers: the same formulas with a different order of
    /// roundings (PyTorch divides lr by bc1 first, we divide m): a few ulp of the O(1) parameters
    /// after 5 steps.
    /// </summary>
    public const double TorchAtol = 2e-6;

    /// <summary>Relative part of the PyTorch comparison.</summary>
    public const double TorchRtol = 2e-6;

    // Fused (p - lr*d, decay folded in) against the chain (u = -lr*d, then p + u): a rounding or
    // two per step on values of order 1, over a few steps.
    private const double PathAtol = 1e-6;
    private const double PathRtol = 1e-5;

    public sealed record Config(double Lr, double B1, double B2, double Eps, double Wd, bool Amsgrad, int Steps)
    {
        public Adam Make(bool fused = true) => new(Lr, B1, B2, Eps, Wd, Amsgrad) { Fused = fused };

        public Chain Explicit() => Wd > 0
            ? new Chain(new AddDecayedWeights(Wd), new ScaleByAdam(B1, B2, Eps, 0, Amsgrad), new ScaleByLearningRate(Lr))
            : new Chain(new ScaleByAdam(B1, B2, Eps, 0, Amsgrad), new ScaleByLearningRate(Lr));
    }

    public static Gen<Config> Configs { get; } =
        from lr in Gen.Elements(1e-3, 0.01, 0.1)
        from b1 in Gens.Beta
        from b2 in Gens.Beta
        from eps in Gen.Elements(1e-8, 1e-3)
        from wd in Gen.Elements(0.0, 0.0, 0.05)
        from amsgrad in Gen.Elements(false, true)
        from steps in Gen.Choose(1, 5)
        select new Config(lr, b1, b2, eps, wd, amsgrad, steps);

    // PyTorch 1.13 (CPU, float32), known.py:
    //   import math, torch
    //   def run(make, steps=5, betas1=None, state_keys=()):
    //       w = torch.tensor([[0.5, -1.0, 2.0], [-0.25, 0.75, -1.5]], requires_grad=True)
    //       b = torch.tensor([0.1, -0.2, 0.3], requires_grad=True)
    //       opt = make(w, b)
    //       for t in range(steps):
    //           if betas1: opt.param_groups[0]['betas'] = (betas1(t), opt.param_groups[0]['betas'][1])
    //           flat = torch.cat([w.detach().flatten(), b.detach()])
    //           g = flat * 0.5 + torch.tensor([0.3 * math.sin(1.3 * i + 0.7 * t) for i in range(9)])
    //           w.grad, b.grad = g[:6].view(2, 3).clone(), g[6:].clone()
    //           opt.step()
    //       out = torch.cat([w.detach().flatten(), b.detach()]).tolist()
    //       st = {k: torch.cat([opt.state[w][k].flatten(), opt.state[b][k]]).tolist() for k in state_keys}
    //       return out, st
    //   def show(name, r):
    //       out, st = r
    //       print(name, ", ".join("%.9gf" % x for x in out))
    //       for k, v in st.items(): print("  ", k, ", ".join("%.9gf" % x for x in v))
    //   O = torch.optim
    //   show("adam_wd", run(lambda w, b: O.Adam([w, b], lr=0.1, weight_decay=0.1, foreach=False)))
    //   show("adam_default", run(lambda w, b: O.Adam([w, b], foreach=False)))
    //   show("adam_ams", run(lambda w, b: O.Adam([w, b], lr=0.1, betas=(0.9, 0.9), amsgrad=True, foreach=False),
    //                       state_keys=("exp_avg", "exp_avg_sq", "max_exp_avg_sq")))
    //   show("adam_noams", run(lambda w, b: O.Adam([w, b], lr=0.1, betas=(0.9, 0.9), foreach=False)))
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Known_values_match_pytorch(bool fused)
    {
        var path = fused ? StepPath.Fused : StepPath.Generic;
        var d = Devices.Cpu;
        using var p = AdaptiveRuns.KnownTree(d);

        AssertKnown("adam_wd", new Adam(0.1, weightDecay: 0.1), p, path,
            [0.00822082907f, -0.5016675f, 1.5161953f, 0.185017228f, 0.256594539f, -1.0149889f, -0.182589069f, 0.252137095f, 0.388183236f]);
        AssertKnown("adam_default", new Adam(), p, path,
            [0.495068759f, -0.995084822f, 1.99511814f, -0.245237738f, 0.745234966f, -1.49508452f, 0.0962601006f, -0.195567399f, 0.302886635f]);
        AssertKnown("adam_noams", new Adam(0.1, 0.9, 0.9), p, path,
            [0.0119342431f, -0.515249729f, 1.5110054f, 0.192470163f, 0.280013621f, -1.01182663f, -0.193963856f, 0.22992003f, 0.475222111f]);

        var (got, s) = AdaptiveRuns.Run(new Adam(0.1, 0.9, 0.9, amsgrad: true), p, 5, AdaptiveRuns.KnownGrad, path);
        using (s)
        {
            var st = s.Find<ScaleByAdamState>();
            Check("adam_ams", got, [0.0143693089f, -0.515249729f, 1.5110054f, 0.187168568f, 0.280013621f, -1.01182663f, -0.190500841f, 0.229086891f, 0.475109249f]);
            Check("exp_avg", st.Mu.Flat(), [0.129148453f, -0.142207816f, 0.302903771f, -0.057676103f, 0.144878685f, -0.193244413f, -0.0163236558f, -0.0696702152f, 0.0572663136f]);
            Check("exp_avg_sq", st.Nu.Flat(), [0.0456557944f, 0.0578341931f, 0.243650943f, 0.0273384582f, 0.0598914959f, 0.0962942317f, 0.0311590899f, 0.0157268755f, 0.0270608868f]);
            Check("max_exp_avg_sq", st.NuMax!.Flat(), [0.0481041707f, 0.0578341931f, 0.243650943f, 0.0289706513f, 0.0598914959f, 0.0962942317f, 0.0311590899f, 0.0160331279f, 0.0270608868f]);
            Assert.Equal(5, st.Count);
            Assert.Equal(0.1, s.Find<ScaleByLearningRateState>().LastLearningRate);
        }
    }

    /// <summary>Runs 5 known-value steps and compares with PyTorch's parameters.</summary>
    internal static void AssertKnown(string what, IGradientTransformation opt, ParamTree start, StepPath path, float[] expected) =>
        Check(what, AdaptiveRuns.Final(opt, start, 5, AdaptiveRuns.KnownGrad, path), expected);

    private static void Check(string what, float[] got, float[] expected)
    {
        var (ok, label) = Close.Check(got, expected, TorchAtol, TorchRtol, what);
        Assert.True(ok, $"{label}; got {string.Join(", ", got.Select(x => x.ToString("R")))}");
    }

    [Property(MaxTest = 25)]
    public Property Alias_equals_its_explicit_chain() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gen.Choose(0, 10_000).ToArbitrary(), Configs.ToArbitrary(), (layout, seed, c) =>
        {
            var d = Devices.Cpu;
            using var p = Trees.Random(d, layout, seed);
            var alias = AdaptiveRuns.Final(c.Make(), p, c.Steps, AdaptiveRuns.RandomGrad(seed), StepPath.Generic);
            var chain = AdaptiveRuns.Final(c.Explicit(), p, c.Steps, AdaptiveRuns.RandomGrad(seed), StepPath.Generic);
            // The same kernels in the same order: bitwise equal.
            return Close.All(alias, chain, 0, 0, c.ToString());
        });

    [Property(MaxTest = 25)]
    public Property Fused_step_equals_the_chain_and_the_cpu_reference() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gen.Choose(0, 10_000).ToArbitrary(), Configs.ToArbitrary(), (layout, seed, c) =>
        {
            var d = Devices.Cpu;
            using var p = Trees.Random(d, layout, seed);
            var grad = AdaptiveRuns.RandomGrad(seed);
            var fused = AdaptiveRuns.Final(c.Make(), p, c.Steps, grad, StepPath.Fused);
            var generic = AdaptiveRuns.Final(c.Make(), p, c.Steps, grad, StepPath.Generic);

            var rp = p.Flat();
            int n = rp.Length;
            float[] m = new float[n], v = new float[n], vmax = c.Amsgrad ? new float[n] : [];
            for (int t = 0; t < c.Steps; t++)
            {
                var s = new AdamStepScalars(AdamScalars.For(c.B1, c.B2, c.Eps, 0, t + 1), (float)c.Lr, (float)c.Wd, 1f);
                AdamUpdateReference.StepReference(rp, grad(rp, t), m, v, vmax, [], s);
            }
            return Close.All(fused, generic, PathAtol, PathRtol, "fused vs chain")
                .And(Close.All(fused, rp, 1e-7, 1e-6, "fused vs StepReference"))
                .Label(c.ToString());
        });

    [Property(MaxTest = 15)]
    public Property A_run_can_switch_between_fused_and_generic_steps() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gen.Choose(0, 10_000).ToArbitrary(), Configs.ToArbitrary(), (layout, seed, c) =>
            AdaptiveRuns.SwitchingEqualsGeneric(c.Make(), layout, seed, c.Steps + 1, PathAtol, PathRtol, (ms, gs) =>
                (ms.Find<ScaleByAdamState>().Count == c.Steps + 1).Label("adam count")
                    .And(Close.All(ms.Find<ScaleByAdamState>().Nu.Flat(), gs.Find<ScaleByAdamState>().Nu.Flat(), PathAtol, PathRtol, "v")))
            .Label(c.ToString()));

    [Property(MaxTest = 20)]
    public Property Update_is_invariant_to_scaling_the_gradient_up_to_eps() =>
        Prop.ForAll(
            (from layout in Trees.Layouts
             from seed in Gen.Choose(0, 10_000)
             from c in Gen.Elements(0.1, 3.0, 1000.0)
             from amsgrad in Gen.Elements(false, true)
             select (layout, seed, c, amsgrad)).ToArbitrary(),
            args =>
            {
                var (layout, seed, c, amsgrad) = args;
                // |g| >= 0.1 keeps sqrt(v_hat) >= 0.1 c, so eps = 1e-8 moves the direction by at most
                // 1e-8 / (0.1 c) relative: far below float rounding.
                var d = Devices.Cpu;
                using var p = Trees.Random(d, layout, seed);
                var rnd = AdaptiveRuns.RandomGrad(seed);
                Func<float[], int, float[]> grad = (x, t) => rnd(x, t).Select(v => MathF.CopySign(0.1f + Math.Abs(v), v)).ToArray();
                var opt = new Adam(0.05, amsgrad: amsgrad);
                var a = AdaptiveRuns.Final(opt, p, 4, grad, StepPath.Fused);
                var b = AdaptiveRuns.Final(opt, p, 4, (x, t) => grad(x, t).Select(v => (float)(v * c)).ToArray(), StepPath.Fused);
                return Close.All(b, a, PathAtol, PathRtol, $"gradient scaled by {c}");
            });

    [Fact]
    public void Step_and_update_consume_the_old_state_grads_and_parameters()
    {
        var d = Devices.Cpu;
        foreach (bool fused in new[] { true, false })
        {
            var opt = new Adam(0.1, weightDecay: 0.01, amsgrad: true) { Fused = fused };
            var p = AdaptiveRuns.KnownTree(d);
            var s0 = opt.Init(p);
            var g = p.Clone();
            var (p1, s1) = opt.Step(p, g, s0);
            Assert.Throws<ConsumedValueException>(() => g.Flat32);
            Assert.Throws<ConsumedValueException>(() => p.Flat32);
            Assert.Throws<ConsumedValueException>(() => s0.Find<ScaleByAdamState>().Mu.Flat32);
            using var g2 = p1.Clone();
            var e = Assert.Throws<ConsumedValueException>(() => opt.Step(p1, g2, s0));
            Assert.Contains(fused ? "adam.FusedStep" : "adam.Update", e.Message);
            Assert.False(g2.IsConsumed);
            Assert.False(p1.IsConsumed);
            Assert.Equal(["add_decayed_weights", "scale_by_adam", "scale_by_learning_rate"], s1.Children.Select(c => c.Name));
            Assert.Equal(1, s1.Find<ScaleByAdamState>().Count);
            Assert.Equal(1, s1.Find<ScaleByLearningRateState>().Count);
            Assert.Same(s1.Find<ScaleByAdamState>(), s1["scale_by_adam"]);
            s1.Dispose();
            p1.Dispose();
        }
    }

    [Fact]
    public void Hyperparameters_are_checked_as_pytorch_does()
    {
        Assert.Contains("lr", Assert.Throws<ArgumentOutOfRangeException>(() => new Adam(-1e-3)).Message);
        Assert.Contains("betas[0]", Assert.Throws<ArgumentOutOfRangeException>(() => new Adam(beta1: 1.0)).Message);
        Assert.Contains("betas[1]", Assert.Throws<ArgumentOutOfRangeException>(() => new Adam(beta2: -0.5)).Message);
        Assert.Contains("eps", Assert.Throws<ArgumentOutOfRangeException>(() => new Adam(eps: -1)).Message);
        Assert.Contains("weight_decay", Assert.Throws<ArgumentOutOfRangeException>(() => new Adam(weightDecay: double.NaN)).Message);
        var adam = new Adam();
        Assert.Equal(("adam", 1e-3, 0.9, 0.999, 1e-8, 0.0, false, true), (adam.Name, adam.LearningRate.At(0), adam.Beta1.At(0), adam.Beta2, adam.Eps, adam.WeightDecay, adam.Amsgrad, adam.Fused));
        Assert.Equal(["scale_by_adam", "scale_by_learning_rate"], adam.Chain.Names);
    }

    [Fact]
    public void A_state_from_another_optimizer_is_a_clear_error()
    {
        var d = Devices.Cpu;
        using var p = AdaptiveRuns.KnownTree(d);
        using var g = p.Clone();
        using var s = new Adam(weightDecay: 0.1).Init(p);
        var opt = new Adam();
        var e = Assert.Throws<ArgumentException>(() => opt.Step(p, g, s));
        Assert.Contains("add_decayed_weights", e.Message);
        Assert.False(s.IsConsumed);
        Assert.False(g.IsConsumed);
    }
}
