using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>Chain: composition order, named states, Find, donation of grads and state.</summary>
public class ChainProperties
{
    [Property(MaxTest = 25)]
    public Property Chain_applies_children_in_order() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), (layout, seed) =>
        {
            var d = Devices.Cpu;
            using var p = Trees.Random(d, layout, seed);
            var gHost = Trees.Random(d, layout, seed + 1);
            var g0 = gHost.Flat();
            var opt = new Chain(new Scale(2), new AddDecayedWeights(0.5), new ScaleByLearningRate(0.1));
            using var state = opt.Init(p);
            var (u, next) = opt.Update(gHost, state, p, UpdateContext.None);
            using (u)
            using (next)
            {
                var pf = p.Flat();
                var expected = g0.Select((g, i) => (float)(-0.1 * ((2.0 * g) + (0.5 * pf[i])))).ToArray();
                return Close.All(u.Flat(), expected, 1e-6, 1e-5, "updates");
            }
        });

    [Fact]
    public void States_are_named_and_found_by_type_and_path()
    {
        var d = Devices.Cpu;
        using var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([2], [1f, 2f]) });
        var opt = new Chain(new Scale(2), new Scale(3), new ScaleByLearningRate(0.5));
        var state = opt.Init(p);
        Assert.Equal(["0.scale", "1.scale", "scale_by_learning_rate"], opt.Names);
        Assert.IsType<EmptyState>(state["1.scale"]);
        Assert.Equal(0, state.Find<ScaleByLearningRateState>().Count);
        for (int i = 0; i < 3; i++)
        {
            var g = p.Clone();
            var (u, next) = opt.Update(g, state, p, UpdateContext.None);
            u.Dispose();
            state = next;
        }
        var lr = state.Find<ScaleByLearningRateState>();
        Assert.Equal(3, lr.Count);
        Assert.Equal(0.5, lr.LastLearningRate);
        Assert.Same(lr, state["scale_by_learning_rate"]);
        var e = Assert.Throws<KeyNotFoundException>(() => state["nope"]);
        Assert.Contains("scale_by_learning_rate", e.Message);
        state.Dispose();
    }

    [Fact]
    public void Update_consumes_grads_and_the_old_state()
    {
        var d = Devices.Cpu;
        using var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([2], [1f, 2f]) });
        var opt = new Chain(new ScaleByLearningRate(0.1));
        var s0 = opt.Init(p);
        var g = p.Clone();
        var (u, s1) = opt.Update(g, s0, p, UpdateContext.None);
        Assert.Throws<ConsumedValueException>(() => g.Flat32);
        var e = Assert.Throws<ConsumedValueException>(() => opt.Update(u, s0, p, UpdateContext.None));
        Assert.Contains("chain.Update", e.Message);
        Assert.Equal([-0.1f, -0.2f], u.Flat());
        u.Dispose();
        s1.Dispose();
    }

    [Fact]
    public void Wrong_state_type_is_a_clear_error()
    {
        var d = Devices.Cpu;
        using var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([1], [1f]) });
        using var g = p.Clone();
        var e = Assert.Throws<ArgumentException>(() => new ScaleByLearningRate(0.1).Update(g, new EmptyState(), p, UpdateContext.None));
        Assert.Contains("ScaleByLearningRateState", e.Message);
        Assert.False(g.IsConsumed);
    }

    [Fact]
    public void Step_updates_the_parameters_and_consumes_them()
    {
        var d = Devices.Cpu;
        var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([2], [1f, 2f]) });
        var opt = new Chain(new ScaleByLearningRate(0.5));
        var s = opt.Init(p);
        var g = p.Clone();
        var (p2, s2) = opt.Step(p, g, s);
        Assert.Equal([0.5f, 1f], p2.Flat());
        Assert.Throws<ConsumedValueException>(() => p.Flat32);
        p2.Dispose();
        s2.Dispose();
    }

    [Fact]
    public void Step_runs_the_fused_kernel_of_a_chain_tail()
    {
        var d = Devices.Cpu;
        var p = Trees.Random(d, [([4, 3], "0.weight"), ([4], "0.bias")], 3);
        var opt = new Chain(new ClipByGlobalNorm(0.5), new AdamW(0.01));
        var s = opt.Init(p);
        var (p2, s2) = opt.Step(p, Trees.Random(d, [([4, 3], "0.weight"), ([4], "0.bias")], 4), s);
        var e = Assert.Throws<ConsumedValueException>(() => p.Flat32);
        Assert.Contains("FusedStep", e.Message);
        Assert.Equal(1, s2.Find<ScaleByAdamState>().Count);
        Assert.Equal(1, s2.Find<ScaleByLearningRateState>().Count);
        p2.Dispose();
        s2.Dispose();
    }

    [Fact]
    public void A_clip_before_an_adam_tail_is_fused_and_equals_clipping_first()
    {
        var d = Devices.Cpu;
        (string, int[])[] shapes = [("0.weight", [7, 5]), ("0.bias", [7])];
        ParamTree Params() => Trees.Random(d, shapes.Select(x => (x.Item2, x.Item1)).ToArray(), 3);
        ParamTree Grads(int seed) => Trees.Random(d, shapes.Select(x => (x.Item2, x.Item1)).ToArray(), seed);

        // Fused: Optimizer.Step through the chain's fused tail. Two steps, clipping active (0.5)
        // and the stored norm checked.
        var chain = new Chain(new ClipByGlobalNorm(0.5), new AdamW(0.01));
        var p = Params();
        var s = chain.Init(p);
        // Reference: the same transformations one by one, clip in place then AdamW's fused step.
        var clip = new ClipByGlobalNorm(0.5);
        var adamw = new AdamW(0.01);
        var rp = Params();
        var rc = clip.Init(rp);
        var ra = adamw.Init(rp);
        for (int step = 0; step < 2; step++)
        {
            (p, s) = chain.Step(p, Grads(10 + step), s);
            var (clipped, rc2) = clip.Update(Grads(10 + step), rc, rp, UpdateContext.None);
            rc = rc2;
            (rp, ra) = adamw.Step(rp, clipped, ra);
            var fused = p.Flat32;
            var reference = rp.Flat32;
            Assert.Equal(Transfer.ToHost(d.Stream, reference), Transfer.ToHost(d.Stream, fused));
            Assert.Equal(((ClipByGlobalNormState)rc).ReadNorm(), s.Find<ClipByGlobalNormState>().ReadNorm());
        }

        p.Dispose();
        s.Dispose();
        rp.Dispose();
        rc.Dispose();
        ra.Dispose();
    }
}
