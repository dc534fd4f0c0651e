using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>RmsProp: PyTorch's numbers, the alias is its chain, the fused step is the chain and its reference.</summary>
public class RmsPropProperties
{
    // Fused (p - lr*d) against the chain (u = -lr*d, then p + u): a rounding or two per step,
    // on directions that the momentum buffer can grow to about 1 / (1 - momentum).
    private const double PathAtol = 2e-6;
    private const double PathRtol = 1e-5;

    public sealed record Config(double Lr, double Alpha, double Eps, double Wd, double Momentum, bool Centered, int Steps)
    {
        public RmsProp Make(bool fused = true) => new(Lr, Alpha, Eps, Wd, Momentum, Centered) { Fused = fused };

        public Chain Explicit() => Wd > 0
            ? new Chain(new AddDecayedWeights(Wd), new ScaleByRms(Alpha, Eps, Centered, Momentum), new ScaleByLearningRate(Lr))
            : new Chain(new ScaleByRms(Alpha, Eps, Centered, Momentum), new ScaleByLearningRate(Lr));
    }

    public static Gen<Config> Configs { get; } =
        from lr in Gen.Elements(1e-3, 0.01)
        from alpha in Gen.Elements(0.5, 0.9, 0.99)
        from eps in Gen.Elements(1e-8, 1e-3)
        from wd in Gen.Elements(0.0, 0.1)
        from momentum in Gen.Elements(0.0, 0.5, 0.9)
        from centered in Gen.Elements(false, true)
        from steps in Gen.Choose(1, 5)
        select new Config(lr, alpha, eps, wd, momentum, centered, steps);

    // PyTorch 1.13 (CPU, float32): known.py, the script above AdamProperties.Known_values_match_pytorch, with
    //   show("rms_cm", run(lambda w, b: O.RMSprop([w, b], lr=0.01, alpha=0.9, centered=True, momentum=0.9, weight_decay=0.1, foreach=False),
    //                      state_keys=("square_avg", "grad_avg", "momentum_buffer")))
    //   show("rms_default", run(lambda w, b: O.RMSprop([w, b], foreach=False)))
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Known_values_match_pytorch(bool fused)
    {
        var path = fused ? StepPath.Fused : StepPath.Generic;
        using var p = AdaptiveRuns.KnownTree(Devices.Cpu);
        AdamProperties.AssertKnown("rms_default", new RmsProp(), p, path,
            [0.16893521f, -0.617226958f, 1.72467172f, -0.0282391943f, 0.34185034f, -1.20783198f, 0.0259527825f, 0.176014751f, 0.286227018f]);

        var (got, s) = AdaptiveRuns.Run(new RmsProp(0.01, alpha: 0.9, weightDecay: 0.1, momentum: 0.9, centered: true), p, 5, AdaptiveRuns.KnownGrad, path);
        using (s)
        {
            var st = s.Find<ScaleByRmsState>();
            Check("rms_cm", got, [0.138085395f, -0.624890089f, 1.68726456f, 0.046119161f, 0.352391809f, -1.18056512f, -0.0874192193f, 0.189359188f, 0.43046546f]);
            Check("square_avg", st.Nu.Flat(), [0.07022506f, 0.104863063f, 0.410568953f, 0.0342918187f, 0.094478704f, 0.184218049f, 0.0273079947f, 0.0219161659f, 0.0263888314f]);
            Check("grad_avg", st.Mu!.Flat(), [0.16288127f, -0.197549105f, 0.401945144f, -0.0834253281f, 0.186430767f, -0.271724999f, 0.00346947787f, -0.0839504004f, 0.0571573526f]);
            // The buffer is about 10x the parameters' displacement per unit lr: compare it relatively.
            Check("momentum_buffer", st.MomentumBuffer!.Flat(), [9.52677059f, -11.3638268f, 8.46149921f, -5.93518209f, 11.6498375f, -9.15487671f, 1.27371478f, -10.3023434f, 1.90055823f], rtol: 2e-5);
        }
    }

    private static void Check(string what, float[] got, float[] expected, double rtol = AdamProperties.TorchRtol)
    {
        var (ok, label) = Close.Check(got, expected, AdamProperties.TorchAtol, rtol, what);
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
            float[] v = new float[n], mu = c.Centered ? new float[n] : [], b = c.Momentum > 0 ? new float[n] : [];
            var s = new RmsStepScalars(RmsScalars.For(c.Alpha, c.Eps, c.Momentum), (float)c.Lr, (float)c.Wd);
            for (int t = 0; t < c.Steps; t++)
                RmsUpdateReference.StepReference(rp, grad(rp, t), v, mu, b, s);
            return Close.All(fused, generic, PathAtol, PathRtol, "fused vs chain")
                .And(Close.All(fused, rp, 1e-7, 1e-6, "fused vs StepReference"))
                .Label(c.ToString());
        });

    [Property(MaxTest = 15)]
    public Property A_run_can_switch_between_fused_and_generic_steps() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gen.Choose(0, 10_000).ToArbitrary(), Configs.ToArbitrary(), (layout, seed, c) =>
            AdaptiveRuns.SwitchingEqualsGeneric(c.Make(), layout, seed, c.Steps + 1, PathAtol, PathRtol).Label(c.ToString()));

    [Fact]
    public void Step_consumes_the_old_state_grads_and_parameters()
    {
        var d = Devices.Cpu;
        foreach (bool fused in new[] { true, false })
        {
            var opt = new RmsProp(weightDecay: 0.1, momentum: 0.9, centered: true) { Fused = fused };
            var p = AdaptiveRuns.KnownTree(d);
            var s0 = opt.Init(p);
            var g = p.Clone();
            var (p1, s1) = opt.Step(p, g, s0);
            Assert.Throws<ConsumedValueException>(() => g.Flat32);
            Assert.Throws<ConsumedValueException>(() => p.Flat32);
            Assert.Throws<ConsumedValueException>(() => s0.Find<ScaleByRmsState>().MomentumBuffer!.Flat32);
            using var g2 = p1.Clone();
            var e = Assert.Throws<ConsumedValueException>(() => opt.Step(p1, g2, s0));
            Assert.Contains(fused ? "rmsprop.FusedStep" : "rmsprop.Update", e.Message);
            Assert.Equal(["add_decayed_weights", "scale_by_rms", "scale_by_learning_rate"], s1.Children.Select(c => c.Name));
            Assert.Equal(1, s1.Find<ScaleByRmsState>().Count);
            Assert.Equal(0.01, s1.Find<ScaleByLearningRateState>().LastLearningRate);
            s1.Dispose();
            p1.Dispose();
        }
    }

    [Fact]
    public void Hyperparameters_are_checked_as_pytorch_does()
    {
        Assert.Contains("lr", Assert.Throws<ArgumentOutOfRangeException>(() => new RmsProp(-0.01)).Message);
        Assert.Contains("alpha", Assert.Throws<ArgumentOutOfRangeException>(() => new RmsProp(alpha: -0.5)).Message);
        Assert.Contains("eps", Assert.Throws<ArgumentOutOfRangeException>(() => new RmsProp(eps: -1)).Message);
        Assert.Contains("weight_decay", Assert.Throws<ArgumentOutOfRangeException>(() => new RmsProp(weightDecay: -1)).Message);
        Assert.Contains("momentum", Assert.Throws<ArgumentOutOfRangeException>(() => new RmsProp(momentum: -0.9)).Message);
        var r = new RmsProp();
        Assert.Equal(("rmsprop", 0.01, 0.99, 1e-8, 0.0, 0.0, false, true), (r.Name, r.LearningRate.At(0), r.Alpha, r.Eps, r.WeightDecay, r.Momentum.At(0), r.Centered, r.Fused));
        Assert.Equal(["scale_by_rms", "scale_by_learning_rate"], r.Chain.Names);
    }
}
