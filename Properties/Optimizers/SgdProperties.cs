using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>Sgd: its chain, its fused step, coupled weight decay, and PyTorch's numbers.</summary>
public class SgdProperties
{
    // The fused kernel does the chain's float operations in the chain's order; the tolerance
    // allows a backend that contracts a*b + c into an FMA (a few ulps per step).
    private const double FusedAtol = 1e-6;
    private const double FusedRtol = 1e-5;

    // PyTorch's CPU kernels may fuse its add-with-alpha into an FMA and order the momentum
    // update differently: a few float32 ulps of O(1) values after five steps.
    private const double TorchAtol = 1e-6;
    private const double TorchRtol = 1e-6;

    private const int Steps = 4;

    private static Gen<(ParamMask Mask, int Seed)> MaskAndSeed { get; } =
        from mask in Gens.ParamMasks
        from seed in Gen.Choose(0, 10_000)
        select (mask, seed);

    private static Gen<(bool Fused, int Seed)> FusedAndSeed { get; } =
        from fused in Gen.Elements(true, false)
        from seed in Gen.Choose(0, 10_000)
        select (fused, seed);

    private static ParamTree Grad(ParamTree like, int seed, int t) => Trees.FromFlat(like, Gens.Random(seed + (31 * t), (int)like.Count, -2f, 2f));

    /// <summary>Runs <paramref name="steps"/> optimizer steps with generated gradients.</summary>
    private static (ParamTree Parameters, OptState State) Train(IGradientTransformation opt, ParamTree p, int seed, int steps, bool viaUpdate = false)
    {
        var s = opt.Init(p);
        for (int t = 0; t < steps; t++)
        {
            var g = Grad(p, seed, t);
            if (viaUpdate)
            {
                var (u, next) = opt.Update(g, s, p, UpdateContext.None);
                using (u)
                    p = p.ApplyUpdates(u);
                s = next;
            }
            else
            {
                (p, s) = opt.Step(p, g, s);
            }
        }
        return (p, s);
    }

    private static IGradientTransformation ExplicitChain(SgdHyper h, ParamMask? mask)
    {
        var list = new List<IGradientTransformation>();
        if (h.WeightDecay > 0)
            list.Add(new AddDecayedWeights(h.WeightDecay, mask));
        if (h.Momentum > 0)
            list.Add(new Trace(h.Momentum, h.Dampening, h.Nesterov));
        list.Add(new ScaleByLearningRate(h.Lr));
        return new Chain([.. list]);
    }

    [Property(MaxTest = 30)]
    public Property Sgd_equals_its_explicit_chain() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gens.SgdHypers.ToArbitrary(), MaskAndSeed.ToArbitrary(), (layout, h, ms) =>
        {
            var (mask, seed) = ms;
            var d = Devices.Cpu;
            var (pa, sa) = Train(h.ToSgd(mask), Trees.Random(d, layout, seed), seed, Steps, viaUpdate: true);
            var (pb, sb) = Train(ExplicitChain(h, mask), Trees.Random(d, layout, seed), seed, Steps, viaUpdate: true);
            using (pa)
            using (pb)
            using (sa)
            using (sb)
            {
                // Same kernels on the same data: the same bits.
                return Close.All(pa.Flat(), pb.Flat(), 0, 0, "parameters").Label($"{h} mask {mask}");
            }
        });

    [Property(MaxTest = 30)]
    public Property Fused_step_equals_the_chain_path_over_several_steps() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gens.SgdHypers.ToArbitrary(), MaskAndSeed.ToArbitrary(), (layout, h, ms) =>
        {
            var (mask, seed) = ms;
            var d = Devices.Cpu;
            var fused = h.ToSgd(mask);
            var chain = new Sgd(h.Lr, h.Momentum, h.Dampening, h.WeightDecay, h.Nesterov, mask) { Fused = false };
            var (pa, sa) = Train(fused, Trees.Random(d, layout, seed), seed, Steps);
            var (pb, sb) = Train(chain, Trees.Random(d, layout, seed), seed, Steps);
            using (pa)
            using (pb)
            using (sa)
            using (sb)
            {
                var ca = (ChainState)sa;
                var cb = (ChainState)sb;
                var prop = Close.All(pa.Flat(), pb.Flat(), FusedAtol, FusedRtol, "parameters")
                    .And(ca.States.Select(x => (x.Name, x.State.GetType())).SequenceEqual(cb.States.Select(x => (x.Name, x.State.GetType())))
                        .Label($"same state structure: {string.Join(", ", ca.States.Select(x => x.Name))} vs {string.Join(", ", cb.States.Select(x => x.Name))}"))
                    .And((sa.Find<ScaleByLearningRateState>().Count == Steps && sa.Find<ScaleByLearningRateState>().LastLearningRate == h.Lr).Label("lr count and last lr"));
                if (h.Momentum > 0)
                {
                    var ta = sa.Find<TraceState>();
                    var tb = sb.Find<TraceState>();
                    prop = prop.And(Close.All(ta.MomentumBuffer.Flat(), tb.MomentumBuffer.Flat(), FusedAtol, FusedRtol, "momentum buffer"))
                        .And((ta.Count == Steps && ta.HasBuffer == tb.HasBuffer).Label("trace count"));
                }
                return prop.Label($"{h} mask {mask}");
            }
        });

    [Property(MaxTest = 25)]
    public Property First_momentum_step_equals_plain_sgd() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gens.SgdHypers.ToArbitrary(), FusedAndSeed.ToArbitrary(), (layout, h, fs) =>
        {
            var (fused, seed) = fs;
            var d = Devices.Cpu;
            var withMomentum = new Sgd(h.Lr, Math.Max(h.Momentum, 0.5), h.Nesterov ? 0 : h.Dampening, h.WeightDecay) { Fused = fused };
            var plain = new Sgd(h.Lr, weightDecay: h.WeightDecay) { Fused = fused };
            var (pa, sa) = Train(withMomentum, Trees.Random(d, layout, seed), seed, 1);
            var (pb, sb) = Train(plain, Trees.Random(d, layout, seed), seed, 1);
            using (pa)
            using (pb)
            using (sa)
            using (sb)
                return Close.All(pa.Flat(), pb.Flat(), 0, 0, "parameters after one step").Label($"{h} fused {fused}");
        });

    [Property(MaxTest = 25)]
    public Property Coupled_weight_decay_equals_adding_lambda_theta_to_the_gradient() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gens.SgdHypers.ToArbitrary(), FusedAndSeed.ToArbitrary(), (layout, h, fs) =>
        {
            var (fused, seed) = fs;
            var d = Devices.Cpu;
            double lambda = h.WeightDecay > 0 ? h.WeightDecay : 0.1;
            var decayed = new Sgd(h.Lr, h.Momentum, h.Dampening, lambda, h.Nesterov) { Fused = fused };
            var manual = new Sgd(h.Lr, h.Momentum, h.Dampening, 0, h.Nesterov) { Fused = fused };
            var (pa, sa) = Train(decayed, Trees.Random(d, layout, seed), seed, Steps);
            var pb = Trees.Random(d, layout, seed);
            var sb = manual.Init(pb);
            for (int t = 0; t < Steps; t++)
            {
                var theta = pb.Flat();
                var g = Grad(pb, seed, t).Flat().Select((x, i) => x + ((float)lambda * theta[i])).ToArray();
                (pb, sb) = manual.Step(pb, Trees.FromFlat(pb, g), sb);
            }
            using (pa)
            using (pb)
            using (sa)
            using (sb)
                return Close.All(pa.Flat(), pb.Flat(), FusedAtol, FusedRtol, "parameters").Label($"{h} lambda {lambda} fused {fused}");
        });

    // Values from PyTorch 1.13 (CPU), /usr/bin/python3:
    //   import torch, numpy as np
    //   def run(steps=5, **kw):
    //       w = torch.tensor([((i % 5) - 2) * 0.25 for i in range(6)], dtype=torch.float32).reshape(2, 3).requires_grad_()
    //       b = torch.tensor([((i % 5) - 2) * 0.25 for i in range(6, 9)], dtype=torch.float32).requires_grad_()
    //       opt = torch.optim.SGD([w, b], **kw)
    //       for t in range(steps):
    //           g = torch.tensor([((i * 7 + t * 3) % 11 - 5) / 4.0 for i in range(9)], dtype=torch.float32)
    //           w.grad = g[:6].reshape(2, 3).clone(); b.grad = g[6:].clone()
    //           opt.step()
    //       return [float(x) for x in torch.cat([w.detach().flatten(), b.detach()])]
    //   for name, kw in [("momentum", dict(lr=0.1, momentum=0.9)),
    //                    ("nesterov", dict(lr=0.1, momentum=0.9, nesterov=True)),
    //                    ("dampening", dict(lr=0.05, momentum=0.9, dampening=0.5)),
    //                    ("weight_decay", dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
    //                    ("nesterov_wd", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
    //                    ("plain_wd", dict(lr=0.1, weight_decay=0.1))]:
    //       print(name, ", ".join(f"{np.float32(v)!r}f" for v in run(**kw)))
    public static TheoryData<string, double, double, double, double, bool, float[]> TorchRuns() => new()
    {
        { "momentum", 0.1, 0.9, 0, 0, false, [0.026087496f, -0.7563801f, 0.062779985f, -0.021462504f, 0.3222225f, -0.10861754f, -0.46785998f, 0.15082501f, 0.44748503f] },
        { "nesterov", 0.1, 0.9, 0, 0, true, [0.12347875f, -0.88074195f, 0.10650199f, 0.0056837583f, 0.29000023f, 0.027244234f, -0.59607404f, 0.21074252f, 0.45273647f] },
        { "dampening", 0.05, 0.9, 0.5, 0, false, [-0.24050626f, -0.42778376f, 0.06688375f, 0.05416251f, 0.42996126f, -0.32537127f, -0.40684253f, 0.037706252f, 0.40174878f] },
        { "weight_decay", 0.1, 0.9, 0, 0.01, false, [0.03024318f, -0.7514007f, 0.062427644f, -0.023198f, 0.31659237f, -0.1031878f, -0.46381345f, 0.15097693f, 0.4425803f] },
        { "nesterov_wd", 0.1, 0.9, 0, 0.1, true, [0.15859425f, -0.8061656f, 0.10144288f, -0.005317206f, 0.22656313f, 0.08612056f, -0.5431396f, 0.21124083f, 0.3835268f] },
        { "plain_wd", 0.1, 0, 0, 0.1, false, [-0.33040807f, -0.4085572f, 0.04976233f, 0.24119544f, 0.42721024f, -0.30320778f, -0.38677472f, 0.07424008f, 0.26030958f] },
    };

    [Theory]
    [MemberData(nameof(TorchRuns))]
    public void Five_steps_match_pytorch(string name, double lr, double momentum, double dampening, double weightDecay, bool nesterov, float[] expected)
    {
        foreach (bool fused in new[] { true, false })
        {
            var d = Devices.Cpu;
            var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)>
            {
                ["w"] = ([2, 3], Enumerable.Range(0, 6).Select(i => ((i % 5) - 2) * 0.25f).ToArray()),
                ["b"] = ([3], Enumerable.Range(6, 3).Select(i => ((i % 5) - 2) * 0.25f).ToArray()),
            });
            var opt = new Sgd(lr, momentum, dampening, weightDecay, nesterov) { Fused = fused };
            var s = opt.Init(p);
            for (int t = 0; t < 5; t++)
            {
                var g = Enumerable.Range(0, 9).Select(i => ((((i * 7) + (t * 3)) % 11) - 5) / 4f).ToArray();
                (p, s) = opt.Step(p, Trees.FromFlat(p, g), s);
            }
            var (ok, label) = Close.Check(p.Flat(), expected, TorchAtol, TorchRtol, $"{name} (fused {fused})");
            Assert.True(ok, label);
            p.Dispose();
            s.Dispose();
        }
    }

    [Fact]
    public void The_chain_holds_only_what_the_arguments_ask_for()
    {
        Assert.Equal(["scale_by_learning_rate"], new Sgd(0.1).Chain.Names);
        Assert.Equal(["trace", "scale_by_learning_rate"], Sgd.WithMomentum(0.1).Chain.Names);
        Assert.Equal(["add_decayed_weights", "trace", "scale_by_learning_rate"], Sgd.WithNesterov(0.1, weightDecay: 1e-4).Chain.Names);
        Assert.Equal(["add_decayed_weights", "scale_by_learning_rate"], new Sgd(0.1, momentum: 0.0, weightDecay: 1e-4).Chain.Names);
        Assert.True(Sgd.WithNesterov(0.1).Nesterov);
        Assert.Equal("sgd", new Sgd(0.1).Name);
    }

    [Fact]
    public void Invalid_hyperparameters_are_refused_with_pytorch_names()
    {
        Assert.Contains("lr >= 0", Assert.Throws<ArgumentOutOfRangeException>(() => new Sgd(-0.1)).Message);
        Assert.Contains("momentum >= 0", Assert.Throws<ArgumentOutOfRangeException>(() => new Sgd(0.1, momentum: -0.9)).Message);
        Assert.Contains("weight_decay >= 0", Assert.Throws<ArgumentOutOfRangeException>(() => new Sgd(0.1, weightDecay: -1e-4)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new Sgd(double.NaN));
    }

    [Fact]
    public void Fused_step_consumes_parameters_grads_and_state_and_counts_like_the_chain()
    {
        var d = Devices.Cpu;
        var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([2], [1f, 2f]) });
        var opt = new Sgd(new InverseTimeDecay(0.5, 1), momentum: 0.9);
        var s0 = opt.Init(p);
        var g = p.Clone();
        var (p1, s1) = opt.Step(p, g, s0);
        Assert.Throws<ConsumedValueException>(() => p.Flat32);
        Assert.Throws<ConsumedValueException>(() => g.Flat32);
        using (var again = p1.Clone())
            Assert.Contains("sgd.FusedStep", Assert.Throws<ConsumedValueException>(() => opt.Step(p1, again, s0)).Message);
        Assert.Equal([0.5f, 1f], p1.Flat());
        var (p2, s2) = opt.Step(p1, p1.Clone(), s1);
        // lr(1) = 0.25; b = 0.9*g1 + g2 = 0.9*[1, 2] + [0.5, 1].
        Assert.Equal([0.5f - (0.25f * 1.4f), 1f - (0.25f * 2.8f)], p2.Flat());
        Assert.Equal(0.25, s2.Find<ScaleByLearningRateState>().LastLearningRate);
        Assert.Equal(2, s2.Find<TraceState>().Count);
        p2.Dispose();
        s2.Dispose();
    }
}
