using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>Optimizer states: found by type and by path through nested chains and wrappers; consumption.</summary>
public class OptStateProperties
{
    [Fact]
    public void Find_reaches_through_aliases_wrappers_and_nested_chains()
    {
        var d = Devices.Cpu;
        using var p = Trees.Random(d, [([3, 2], "0.weight"), ([3], "0.bias")], 1);
        var tx = new Chain(new ClipByGlobalNorm(1.0), new ApplyIfFinite(new AdamW(new CosineAnnealingLR(0.1, 100)), 2));
        var state = tx.Init(p);
        for (int i = 0; i < 3; i++)
        {
            var (u, next) = tx.Update(Trees.Random(d, [([3, 2], "0.weight"), ([3], "0.bias")], 10 + i), state, p, UpdateContext.None);
            u.Dispose();
            state = next;
        }
        Assert.Equal(3, state.Find<ScaleByAdamState>().Count);
        var lr = state.Find<ScaleByLearningRateState>();
        Assert.Equal(3, lr.Count);
        Assert.Equal(new CosineAnnealingLR(0.1, 100).At(2), lr.LastLearningRate, 12);
        Assert.True(state.Find<ClipByGlobalNormState>().ReadNorm() > 0);
        Assert.Same(state.Find<ClipByGlobalNormState>(), state["clip_by_global_norm"]);
        Assert.Single(state.FindAll<ScaleByAdamState>());
        Assert.Throws<KeyNotFoundException>(() => state.Find<TraceState>());
        state.Dispose();
    }

    [Fact]
    public void Consumed_state_refuses_use_and_names_its_consumer()
    {
        var s = new CountState(3);
        s.MarkConsumed("trace.Update");
        Assert.True(s.IsConsumed);
        var e = Assert.Throws<ConsumedValueException>(s.EnsureAlive);
        Assert.Contains("trace.Update", e.Message);
    }
}
