using System.Text.RegularExpressions;
using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>
/// The contract every transformation keeps, checked over all of them: snake_case names,
/// Update consumes gradients and the old state, parameters are only read, a foreign state is a
/// clear error, empty trees work, and fused steps equal the generic path.
/// </summary>
public class GradientTransformationProperties
{
    private static Dictionary<string, Func<IGradientTransformation>> All() => new()
    {
        ["scale"] = () => new Scale(0.5),
        ["scale_by_learning_rate"] = () => new ScaleByLearningRate(new CosineAnnealingLR(0.1, 10)),
        ["add_decayed_weights"] = () => new AddDecayedWeights(0.1, ParamMask.ByRank(2)),
        ["scale_by_adam"] = () => new ScaleByAdam(amsgrad: true),
        ["scale_by_rms"] = () => new ScaleByRms(centered: true, momentum: 0.9),
        ["scale_by_adagrad"] = () => new ScaleByAdagrad(0.1),
        ["trace"] = () => new Trace(0.9, Nesterov: true),
        ["clip_by_global_norm"] = () => new ClipByGlobalNorm(1.0),
        ["clip_by_value"] = () => new ClipByValue(-0.5, 0.5),
        ["masked"] = () => new Masked(new ScaleByAdam(), ParamMask.ByName("*.weight")),
        ["freeze"] = () => new Freeze(ParamMask.ByName("0.*")),
        ["apply_if_finite"] = () => new ApplyIfFinite(new Sgd(0.1, momentum: 0.9), 3),
        ["multi_steps"] = () => new MultiSteps(new Adam(0.01), 2),
        ["reduce_on_plateau"] = () => new ReduceOnPlateau(Patience: 1),
        ["sgd"] = () => new Sgd(0.1, momentum: 0.9, weightDecay: 1e-2),
        ["adam"] = () => new Adam(0.01, weightDecay: 1e-2),
        ["adamw"] = () => new AdamW(0.01, decayMask: ParamMask.ByRank(2)),
        ["rmsprop"] = () => new RmsProp(0.01, momentum: 0.5, centered: true),
        ["adagrad"] = () => new Adagrad(0.1, lrDecay: 0.01, weightDecay: 1e-3),
        ["chain_clip_adamw"] = () => new Chain(new ClipByGlobalNorm(0.5), new AdamW(0.01)),
    };

    public static TheoryData<string> Names() => new(All().Keys);

    [Theory]
    [MemberData(nameof(Names))]
    public void Update_consumes_grads_and_state_and_only_reads_parameters(string key)
    {
        var tx = All()[key]();
        Assert.Matches(new Regex("^[a-z][a-z0-9_]*$"), tx.Name);
        var d = Devices.Cpu;
        var layout = new (int[] Shape, string Path)[] { ([3, 2], "0.weight"), ([3], "0.bias"), ([2, 3], "1.weight") };
        using var p = Trees.Random(d, layout, 5);
        var before = p.Flat();
        var state = tx.Init(p);
        for (int step = 0; step < 3; step++)
        {
            var g = Trees.Random(d, layout, 100 + step);
            var (u, next) = tx.Update(g, state, p, new UpdateContext(Loss: 1.0));
            Assert.True(g.IsConsumed, $"{key}: grads not consumed");
            Assert.True(state.IsConsumed, $"{key}: state not consumed");
            Assert.Throws<ConsumedValueException>(() => tx.Update(p.Clone(), state, p, UpdateContext.None));
            Assert.Equal(p.Layout, u.Layout);
            Assert.All(u.Flat(), x => Assert.True(float.IsFinite(x), $"{key}: non-finite update"));
            u.Dispose();
            state = next;
        }
        Assert.Equal(before, p.Flat());
        state.Dispose();
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void A_foreign_state_is_a_clear_error(string key)
    {
        var tx = All()[key]();
        var d = Devices.Cpu;
        using var p = Trees.Random(d, [([2], "w")], 1);
        using var g = p.Clone();
        var e = Assert.ThrowsAny<ArgumentException>(() => tx.Update(g, new CountState(0), p, UpdateContext.None));
        Assert.Contains("State", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Empty_trees_work(string key)
    {
        var tx = All()[key]();
        var d = Devices.Cpu;
        using var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([0, 3], []) });
        var state = tx.Init(p);
        var (p2, next) = tx.Step(p.Clone(), p.Clone(), state);
        Assert.Equal(0, p2.Count);
        p2.Dispose();
        next.Dispose();
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void Fused_step_equals_update_then_apply(string key)
    {
        var d = Devices.Cpu;
        var layout = new (int[] Shape, string Path)[] { ([4, 3], "0.weight"), ([4], "0.bias") };
        var results = new List<float[]>();
        foreach (bool fused in new[] { true, false })
        {
            var tx = All()[key]();
            var p = Trees.Random(d, layout, 9);
            var state = tx.Init(p);
            for (int step = 0; step < 4; step++)
            {
                var g = Trees.Random(d, layout, 200 + step);
                if (fused)
                {
                    (p, state) = tx.Step(p, g, state, new UpdateContext(Loss: 1.0));
                }
                else
                {
                    var (u, next) = tx.Update(g, state, p, new UpdateContext(Loss: 1.0));
                    p = p.ApplyUpdates(u);
                    u.Dispose();
                    state = next;
                }
            }
            results.Add(p.Flat());
            p.Dispose();
            state.Dispose();
        }
        // Fused kernels round differently (FMA, fewer intermediate stores): a few ulp of the values.
        var (ok, label) = Close.Check(results[0], results[1], 1e-6, 1e-5, key);
        Assert.True(ok, label);
    }
}
