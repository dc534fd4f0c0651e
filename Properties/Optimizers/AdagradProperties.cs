using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>Adagrad: PyTorch's numbers (lr_decay, weight decay), the alias is its chain, the fused step is the chain and its reference.</summary>
public class AdagradProperties
{
    // Fused (p - clr*d) against the chain (u = -clr*d, then p + u): a rounding or two per step.
    private const double PathAtol = 1e-6;
    private const double PathRtol = 1e-5;

    public sealed record Config(double Lr, double LrDecay, double Wd, double Init, double Eps, int Steps)
    {
        public Adagrad Make(bool fused = true) => new(Lr, LrDecay, Wd, Init, Eps) { Fused = fused };

        public Chain Explicit()
        {
            Schedule lr = LrDecay > 0 ? new InverseTimeDecay(Lr, LrDecay) : Lr;
            return Wd > 0
                ? new Chain(new AddDecayedWeights(Wd), new ScaleByAdagrad(Init, Eps), new ScaleByLearningRate(lr))
                : new Chain(new ScaleByAdagrad(Init, Eps), new ScaleByLearningRate(lr));
        }
    }

    public static Gen<Config> Configs { get; } =
        from lr in Gen.Elements(0.01, 0.1)
        from lrDecay in Gen.Elements(0.0, 0.5)
        from wd in Gen.Elements(0.0, 0.1)
        from init in Gen.Elements(0.0, 0.1, 2.0)
        from eps in Gen.Elements(1e-10, 1e-3)
        from steps in Gen.Choose(1, 5)
        select new Config(lr, lrDecay, wd, init, eps, steps);

    // PyTorch 1.13 (CPU, float32): known.py, the script above AdamProperties.Known_values_match_pytorch, with
    //   show("adagrad_all", run(lambda w, b: O.Adagrad([w, b], lr=0.1, lr_decay=0.1, weight_decay=0.1, initial_accumulator_value=0.5, foreach=False),
    //                           state_keys=("sum",)))
    //   show("adagrad_default", run(lambda w, b: O.Adagrad([w, b], foreach=False)))
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Known_values_match_pytorch(bool fused)
    {
        var path = fused ? StepPath.Fused : StepPath.Generic;
        using var p = AdaptiveRuns.KnownTree(Devices.Cpu);
        AdamProperties.AssertKnown("adagrad_default", new Adagrad(), p, path,
            [0.46491614f, -0.960424542f, 1.97145224f, -0.223735973f, 0.708486676f, -1.46929479f, 0.0878287852f, -0.160221353f, 0.306556165f]);

        var (got, s) = AdaptiveRuns.Run(new Adagrad(0.1, lrDecay: 0.1, weightDecay: 0.1, initialAccumulatorValue: 0.5), p, 5, AdaptiveRuns.KnownGrad, path);
        using (s)
        {
            float[] expected = [0.320296377f, -0.806314945f, 1.76995754f, -0.123012714f, 0.56461364f, -1.28401744f, 0.0493375286f, -0.0817229748f, 0.27585718f];
            float[] sum = [1.43011141f, 1.8105787f, 5.67683125f, 0.953863919f, 1.7372539f, 2.76776767f, 0.793770969f, 0.885265827f, 0.679305494f];
            Assert.True(Close.Check(got, expected, AdamProperties.TorchAtol, AdamProperties.TorchRtol, "adagrad_all").Ok, string.Join(", ", got));
            var st = s.Find<ScaleByAdagradState>();
            Assert.True(Close.Check(st.Sum.Flat(), sum, AdamProperties.TorchAtol, AdamProperties.TorchRtol, "sum").Ok, string.Join(", ", st.Sum.Flat()));
            var lr = s.Find<ScaleByLearningRateState>();
            Assert.Equal(5, lr.Count);
            Assert.Equal(0.1 / (1 + (4 * 0.1)), lr.LastLearningRate, 15);
        }
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
            var sum = Enumerable.Repeat((float)c.Init, rp.Length).ToArray();
            for (int t = 0; t < c.Steps; t++)
            {
                // PyTorch's clr = lr / (1 + (step - 1) * lr_decay), step 1-based.
                float clr = (float)(c.Lr / (1 + (t * c.LrDecay)));
                AdagradUpdateReference.StepReference(rp, grad(rp, t), sum, clr, (float)c.Wd, (float)c.Eps);
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
    public void Step_consumes_the_old_state_grads_and_parameters()
    {
        var d = Devices.Cpu;
        foreach (bool fused in new[] { true, false })
        {
            var opt = new Adagrad(weightDecay: 0.1, lrDecay: 0.01) { Fused = fused };
            var p = AdaptiveRuns.KnownTree(d);
            var s0 = opt.Init(p);
            var g = p.Clone();
            var (p1, s1) = opt.Step(p, g, s0);
            Assert.Throws<ConsumedValueException>(() => g.Flat32);
            Assert.Throws<ConsumedValueException>(() => p.Flat32);
            Assert.Throws<ConsumedValueException>(() => s0.Find<ScaleByAdagradState>().Sum.Flat32);
            using var g2 = p1.Clone();
            var e = Assert.Throws<ConsumedValueException>(() => opt.Step(p1, g2, s0));
            Assert.Contains(fused ? "adagrad.FusedStep" : "adagrad.Update", e.Message);
            Assert.Equal(["add_decayed_weights", "scale_by_adagrad", "scale_by_learning_rate"], s1.Children.Select(c => c.Name));
            Assert.Equal(1, s1.Find<ScaleByAdagradState>().Count);
            Assert.IsType<InverseTimeDecay>(s1.Find<ScaleByLearningRateState>().Schedule);
            s1.Dispose();
            p1.Dispose();
        }
    }

    [Fact]
    public void Hyperparameters_are_checked_as_pytorch_does()
    {
        Assert.Contains("lr", Assert.Throws<ArgumentOutOfRangeException>(() => new Adagrad(-0.01)).Message);
        Assert.Contains("lr_decay", Assert.Throws<ArgumentOutOfRangeException>(() => new Adagrad(lrDecay: -1)).Message);
        Assert.Contains("weight_decay", Assert.Throws<ArgumentOutOfRangeException>(() => new Adagrad(weightDecay: -1)).Message);
        Assert.Contains("initial_accumulator_value", Assert.Throws<ArgumentOutOfRangeException>(() => new Adagrad(initialAccumulatorValue: -0.1)).Message);
        Assert.Contains("eps", Assert.Throws<ArgumentOutOfRangeException>(() => new Adagrad(eps: -1e-10)).Message);
        Assert.Contains("lr_decay", Assert.Throws<ArgumentException>(() => new Adagrad(new InverseTimeDecay(0.1, 0.01), lrDecay: 0.1)).Message);
        var a = new Adagrad();
        Assert.Equal(("adagrad", 0.01, 0.0, 0.0, 0.0, 1e-10, true), (a.Name, a.LearningRate.At(0), a.LrDecay, a.WeightDecay, a.InitialAccumulatorValue, a.Eps, a.Fused));
        Assert.Equal(["scale_by_adagrad", "scale_by_learning_rate"], a.Chain.Names);
    }
}
