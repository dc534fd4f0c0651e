using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>AdamW: PyTorch's numbers, decoupled decay, masks, the alias is its chain, the fused step is the chain.</summary>
public class AdamWProperties
{
    // Fused (p*(1 - lr*lambda) - lr*d) against the chain (p + (-lr)*(d + lambda*p)): a rounding or
    // two per step on values of order 1, over a few steps.
    private const double PathAtol = 1e-6;
    private const double PathRtol = 1e-5;

    public sealed record Config(double Lr, double B1, double B2, double Eps, double Wd, bool Amsgrad, ParamMask? Mask, int Steps)
    {
        public AdamW Make(bool fused = true) => new(Lr, B1, B2, Eps, Wd, Amsgrad, Mask) { Fused = fused };

        public Chain Explicit() => new(new ScaleByAdam(B1, B2, Eps, 0, Amsgrad), new AddDecayedWeights(Wd, Mask), new ScaleByLearningRate(Lr));

        public override string ToString() => $"lr {Lr} b1 {B1} b2 {B2} eps {Eps} wd {Wd} amsgrad {Amsgrad} mask {Mask?.Description ?? "all"} steps {Steps}";
    }

    public static Gen<Config> Configs { get; } =
        from lr in Gen.Elements(1e-3, 0.01, 0.1)
        from b1 in Gens.Beta
        from b2 in Gens.Beta
        from eps in Gen.Elements(1e-8, 1e-3)
        from wd in Gen.Elements(0.0, 0.01, 0.5)
        from amsgrad in Gen.Elements(false, true)
        from mask in Gens.DecayMask
        from steps in Gen.Choose(1, 5)
        select new Config(lr, b1, b2, eps, wd, amsgrad, mask, steps);

    // PyTorch 1.13 (CPU, float32): known.py, the script above AdamProperties.Known_values_match_pytorch, with
    //   show("adamw_wd", run(lambda w, b: O.AdamW([w, b], lr=0.1, weight_decay=0.1, foreach=False)))
    //   show("adamw_default", run(lambda w, b: O.AdamW([w, b], foreach=False)))
    //   show("adamw_ams", run(lambda w, b: O.AdamW([w, b], lr=0.1, betas=(0.9, 0.9), weight_decay=0.1, amsgrad=True, foreach=False)))
    //   show("adamw_groups", run(lambda w, b: O.AdamW([{'params': [w]}, {'params': [b], 'weight_decay': 0.0}], lr=0.1, weight_decay=0.1, foreach=False)))
    // (the last is a rank >= 2 mask: no decay on the bias).
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Known_values_match_pytorch(bool fused)
    {
        var path = fused ? StepPath.Fused : StepPath.Generic;
        using var p = AdaptiveRuns.KnownTree(Devices.Cpu);
        AdamProperties.AssertKnown("adamw_wd", new AdamW(0.1, weightDecay: 0.1), p, path,
            [-0.00511389971f, -0.467087865f, 1.43379295f, 0.189142525f, 0.239256158f, -0.957695246f, -0.185909674f, 0.240480721f, 0.450320542f]);
        AdamProperties.AssertKnown("adamw_default", new AdamW(), p, path,
            [0.495043784f, -0.995034873f, 1.99501801f, -0.245225325f, 0.745197475f, -1.49500954f, 0.0962551832f, -0.195557475f, 0.302871585f]);
        AdamProperties.AssertKnown("adamw_ams", new AdamW(0.1, 0.9, 0.9, weightDecay: 0.1, amsgrad: true), p, path,
            [-0.000166095793f, -0.475775421f, 1.42424333f, 0.189053252f, 0.252170473f, -0.949560583f, -0.186537921f, 0.230169386f, 0.456270069f]);
        AdamProperties.AssertKnown("adamw_groups", new AdamW(0.1, weightDecay: 0.1, decayMask: ParamMask.ByRank(2)), p, path,
            [-0.00511389971f, -0.467087865f, 1.43379295f, 0.189142525f, 0.239256158f, -0.957695246f, -0.189861983f, 0.239518106f, 0.468575656f]);
    }

    [Property(MaxTest = 20)]
    public Property With_weight_decay_zero_it_equals_adam() =>
        Prop.ForAll(
            (from layout in Trees.Layouts
             from seed in Gen.Choose(0, 10_000)
             from c in AdamProperties.Configs
             from fused in Gen.Elements(false, true)
             select (layout, seed, c, fused)).ToArbitrary(),
            args =>
            {
                var (layout, seed, c, fused) = args;
                var d = Devices.Cpu;
                using var p = Trees.Random(d, layout, seed);
                var path = fused ? StepPath.Fused : StepPath.Generic;
                var adamW = AdaptiveRuns.Final(new AdamW(c.Lr, c.B1, c.B2, c.Eps, 0, c.Amsgrad), p, c.Steps, AdaptiveRuns.RandomGrad(seed), path);
                var adam = AdaptiveRuns.Final(new Adam(c.Lr, c.B1, c.B2, c.Eps, 0, c.Amsgrad), p, c.Steps, AdaptiveRuns.RandomGrad(seed), path);
                // Decay by a factor of exactly 1 (fused) or adding 0 * p (chain) changes no bit.
                return Close.All(adamW, adam, 0, 0, $"{c} fused {fused}");
            });

    [Property(MaxTest = 20)]
    public Property The_decay_step_does_not_depend_on_the_gradient_scale() =>
        Prop.ForAll(
            (from layout in Trees.Layouts
             from seed in Gen.Choose(0, 10_000)
             from c in Gen.Elements(1e-4, 1.0, 1e4)
             from mask in Gens.DecayMask
             select (layout, seed, c, mask)).ToArbitrary(),
            args =>
            {
                var (layout, seed, c, mask) = args;
                // u(lambda) - u(0) = -lr * lambda * mask * theta whatever the gradient's scale c; Adam's
                // coupled decay would instead be normalized with the gradient.
                const double lr = 0.1, wd = 0.3;
                var d = Devices.Cpu;
                using var p = Trees.Random(d, layout, seed);
                var theta = p.Flat();
                var g = Gens.Random(seed, theta.Length, -1f, 1f).Select(v => (float)(v * c)).ToArray();
                float[] Update(double lambda)
                {
                    var opt = new AdamW(lr, weightDecay: lambda, decayMask: mask);
                    var (u, s) = opt.Update(Trees.FromFlat(p, g), opt.Init(p), p, UpdateContext.None);
                    using (u)
                    using (s)
                        return u.Flat();
                }
                var decayed = Update(wd);
                var plain = Update(0);
                var expected = new double[theta.Length];
                foreach (var info in p.Layout.Params.Where(x => mask is null || mask.Selects(x)))
                {
                    for (long i = info.Offset; i < info.Offset + info.Length; i++)
                        expected[i] = -lr * wd * theta[i];
                }
                var diff = decayed.Select((x, i) => x - plain[i]).ToArray();
                // The difference of two rounded updates of size up to lr*(1 + wd*|theta|).
                return Close.All(diff, expected, 2e-7 * lr * (1 + wd * 3), 1e-6, $"gradient scale {c}, mask {mask?.Description ?? "all"}");
            });

    [Property(MaxTest = 25)]
    public Property Alias_equals_its_explicit_chain() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gen.Choose(0, 10_000).ToArbitrary(), Configs.ToArbitrary(), (layout, seed, c) =>
        {
            var d = Devices.Cpu;
            using var p = Trees.Random(d, layout, seed);
            var alias = AdaptiveRuns.Final(c.Make(), p, c.Steps, AdaptiveRuns.RandomGrad(seed), StepPath.Generic);
            var chain = AdaptiveRuns.Final(c.Explicit(), p, c.Steps, AdaptiveRuns.RandomGrad(seed), StepPath.Generic);
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
            var mask = new byte[n];
            foreach (var info in p.Layout.Params.Where(x => c.Mask is null || c.Mask.Selects(x)))
                mask.AsSpan((int)info.Offset, (int)info.Length).Fill(1);
            float[] m = new float[n], v = new float[n], vmax = c.Amsgrad ? new float[n] : [];
            for (int t = 0; t < c.Steps; t++)
            {
                var s = new AdamStepScalars(AdamScalars.For(c.B1, c.B2, c.Eps, 0, t + 1), (float)c.Lr, 0f, (float)(1 - (c.Lr * c.Wd)));
                AdamUpdateReference.StepReference(rp, grad(rp, t), m, v, vmax, mask, s);
            }
            return Close.All(fused, generic, PathAtol, PathRtol, "fused vs chain")
                .And(Close.All(fused, rp, 1e-7, 1e-6, "fused vs StepReference"))
                .Label(c.ToString());
        });

    [Property(MaxTest = 15)]
    public Property A_run_can_switch_between_fused_and_generic_steps() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gen.Choose(0, 10_000).ToArbitrary(), Configs.ToArbitrary(), (layout, seed, c) =>
            AdaptiveRuns.SwitchingEqualsGeneric(c.Make(), layout, seed, c.Steps + 1, PathAtol, PathRtol).Label(c.ToString()));

    [Fact]
    public void Step_consumes_and_the_mask_lives_in_the_newest_state()
    {
        var d = Devices.Cpu;
        var p = AdaptiveRuns.KnownTree(d);
        var opt = new AdamW(decayMask: ParamMask.ByRank(2));
        var s = opt.Init(p);
        var mask = s.Find<AddDecayedWeightsState>().Mask;
        Assert.NotNull(mask);
        for (int t = 0; t < 3; t++)
        {
            var old = s;
            var g = p.Clone();
            (p, s) = opt.Step(p, g, s);
            Assert.Throws<ConsumedValueException>(() => g.Flat32);
            using (var g2 = p.Clone())
                Assert.Throws<ConsumedValueException>(() => opt.Step(p, g2, old));
            old.Dispose();
        }
        Assert.Same(mask, s.Find<AddDecayedWeightsState>().Mask);
        Assert.Equal(new byte[] { 1, 1, 1, 1, 1, 1, 0, 0, 0 }, Transfer.ToHost(d.Stream, mask!.View));
        Assert.Equal(3, s.Find<ScaleByAdamState>().Count);
        Assert.Equal(["scale_by_adam", "add_decayed_weights", "scale_by_learning_rate"], s.Children.Select(c => c.Name));
        s.Dispose();
        p.Dispose();
    }

    [Fact]
    public void Hyperparameters_are_checked_as_pytorch_does()
    {
        Assert.Contains("lr", Assert.Throws<ArgumentOutOfRangeException>(() => new AdamW(double.PositiveInfinity)).Message);
        Assert.Contains("betas[0]", Assert.Throws<ArgumentOutOfRangeException>(() => new AdamW(beta1: -0.1)).Message);
        Assert.Contains("betas[1]", Assert.Throws<ArgumentOutOfRangeException>(() => new AdamW(beta2: 1.0)).Message);
        Assert.Contains("eps", Assert.Throws<ArgumentOutOfRangeException>(() => new AdamW(eps: -1e-8)).Message);
        Assert.Contains("weight_decay", Assert.Throws<ArgumentOutOfRangeException>(() => new AdamW(weightDecay: -0.01)).Message);
        var w = new AdamW();
        Assert.Equal(("adamw", 1e-3, 0.9, 0.999, 1e-8, 0.01, false, true), (w.Name, w.LearningRate.At(0), w.Beta1.At(0), w.Beta2, w.Eps, w.WeightDecay, w.Amsgrad, w.Fused));
    }
}
