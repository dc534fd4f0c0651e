using IlgpuTrain.Optimizers;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>The optimizer state codec: exact round trips, resume equals uninterrupted, and clear mismatch errors.</summary>
public class OptStateCodecProperties
{
    /// <summary>The optimizers of the brief, by name.</summary>
    public static IGradientTransformation Optimizer(int which) => which switch
    {
        0 => new Sgd(0.05, momentum: 0.9, weightDecay: 1e-3, nesterov: true),
        1 => new AdamW(1e-2, amsgrad: true),
        2 => new Chain(new ClipByGlobalNorm(0.5), new AdamW(new OneCycleLR(0.05, 12))),
        _ => new MultiSteps(new AdamW(1e-2), 3),
    };

    private static readonly string[] Names = ["sgd+nesterov momentum", "adamw amsgrad", "chain(clip, adamw one-cycle)", "multi_steps(adamw, 3)"];

    [Property(MaxTest = 16)]
    public Property Encode_restore_encode_is_the_identity() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gen.Choose(0, 3).ToArbitrary(), Gen.Choose(0, 5).ToArbitrary(), (layout, which, steps) =>
        {
            var d = Devices.Cpu;
            var opt = Optimizer(which);
            var p = Trees.Random(d, layout, which + 17);
            var s = opt.Init(p);
            (p, s) = Run(opt, p, s, 100, steps);
            var saved = OptStateCodec.Encode(s);
            var restored = OptStateCodec.Restore(opt, p, Bytes(saved), saved.Json);
            var again = OptStateCodec.Encode(restored);
            var prop = (saved.Json.ToJsonString() == again.Json.ToJsonString()).Label($"JSON: {saved.Json.ToJsonString()} vs {again.Json.ToJsonString()}")
                .And(SameTensors(saved, again))
                .And((saved.Tensors.Count > 0).Label("some tensors stored"))
                .Label($"{Names[which]}, {steps} steps");
            s.Dispose();
            restored.Dispose();
            p.Dispose();
            return prop;
        });

    /// <summary>k steps, save to a file, load, k more steps equals 2k steps, bitwise (params and every state tensor).</summary>
    [Property(MaxTest = 12)]
    public Property Resume_equals_uninterrupted_bitwise() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gen.Choose(0, 3).ToArbitrary(), Gen.Choose(1, 4).ToArbitrary(), (layout, which, k) =>
        {
            var d = Devices.Cpu;
            var opt = Optimizer(which);
            var pa = Trees.Random(d, layout, 3);
            var sa = opt.Init(pa);
            (pa, sa) = Run(opt, pa, sa, 0, 2 * k);

            var pb = Trees.Random(d, layout, 3);
            var sb = opt.Init(pb);
            (pb, sb) = Run(opt, pb, sb, 0, k);
            string path = Path.Combine(Path.GetTempPath(), $"resume-{Guid.NewGuid():N}.safetensors");
            try
            {
                using (var state = ParamTree.Zeros(d, new ParamLayout([])))
                    Checkpoint.Save(path, new TrainingCheckpoint(pb, state, sb, 7, 0, k, k, History.Empty, null, "test", null));
                pb.Dispose();
                sb.Dispose();
                var c = Checkpoint.Load(path, d, opt, expectedParams: pa.Layout);
                var (pc, sc) = Run(opt, c.Params, c.Optimizer!, k, k);
                var ea = OptStateCodec.Encode(sa);
                var ec = OptStateCodec.Encode(sc);
                var prop = Bits(pa.Flat()).SequenceEqual(Bits(pc.Flat())).Label("parameters")
                    .And((ea.Json.ToJsonString() == ec.Json.ToJsonString()).Label($"state scalars: {ea.Json.ToJsonString()} vs {ec.Json.ToJsonString()}"))
                    .And(SameTensors(ea, ec))
                    .Label($"{Names[which]}, k = {k}");
                pc.Dispose();
                sc.Dispose();
                c.State.Dispose();
                return prop;
            }
            finally
            {
                File.Delete(path);
                pa.Dispose();
                sa.Dispose();
            }
        });

    [Fact]
    public void Another_optimizer_is_a_mismatch_naming_both_and_the_template_survives()
    {
        var d = Devices.Cpu;
        var p = Trees.Random(d, [([3, 2], "0.weight"), ([3], "0.bias")], 1);
        var saved = OptStateCodec.Encode(Optimizer(2).Init(p));
        var sgd = new Sgd(0.1, momentum: 0.9);
        var template = sgd.Init(p);
        var e = Assert.Throws<CheckpointMismatchException>(() => OptStateCodec.Restore(template, Bytes(saved), saved.Json, "c.safetensors", optimizerName: sgd.Name));
        Assert.Contains("chain(clip_by_global_norm, adamw(scale_by_adam, add_decayed_weights, scale_by_learning_rate))", e.Message, StringComparison.Ordinal);
        Assert.Contains("(sgd) is chain(trace, scale_by_learning_rate)", e.Message, StringComparison.Ordinal);
        Assert.False(template.IsConsumed);
        var (p2, s2) = sgd.Step(p, Trees.FromFlat(p, new float[p.Count]), template);
        s2.Dispose();
        p2.Dispose();
    }

    [Fact]
    public void Amsgrad_on_one_side_only_is_a_mismatch_naming_the_moment()
    {
        var d = Devices.Cpu;
        using var p = Trees.Random(d, [([4], "w")], 1);
        using var s = new AdamW(1e-3, amsgrad: true).Init(p);
        var saved = OptStateCodec.Encode(s);
        var e = Assert.Throws<CheckpointMismatchException>(() => OptStateCodec.Restore(new AdamW(1e-3), p, Bytes(saved), saved.Json));
        Assert.Contains("NuMax", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Another_schedule_is_a_mismatch()
    {
        var d = Devices.Cpu;
        using var p = Trees.Random(d, [([4], "w")], 1);
        using var s = new AdamW(new OneCycleLR(0.1, 10)).Init(p);
        var saved = OptStateCodec.Encode(s);
        var e = Assert.Throws<CheckpointMismatchException>(() => OptStateCodec.Restore(new AdamW(new OneCycleLR(0.1, 20)), p, Bytes(saved), saved.Json));
        Assert.Contains("schedule", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Another_model_is_a_mismatch_naming_the_first_differing_parameter()
    {
        var d = Devices.Cpu;
        using var p = Trees.Random(d, [([3, 2], "0.weight"), ([3], "0.bias"), ([2, 3], "1.weight")], 1);
        using var q = Trees.Random(d, [([3, 2], "0.weight"), ([4], "0.bias"), ([2, 3], "1.weight")], 1);
        using var s = new AdamW(1e-3).Init(p);
        var saved = OptStateCodec.Encode(s);
        var e = Assert.Throws<CheckpointMismatchException>(() => OptStateCodec.Restore(new AdamW(1e-3), q, Bytes(saved), saved.Json));
        Assert.Contains("does not fit this model. First difference at optimizer/scale_by_adam/mu: ScaleByAdamState.Mu: parameter \"0.bias\" is F32 [3] in the checkpoint but F32 [4] in the model", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Tensor_names_follow_state_paths()
    {
        var d = Devices.Cpu;
        using var p = Trees.Random(d, [([2], "0.weight")], 1);
        using var s = Optimizer(2).Init(p);
        var names = OptStateCodec.Encode(s).Tensors.Select(t => t.Name).ToList();
        Assert.Contains("optimizer/adamw/scale_by_adam/mu/0.weight", names);
        Assert.Contains("optimizer/clip_by_global_norm/norm", names);
        using var m = Optimizer(3).Init(p);
        Assert.Contains("optimizer/accumulated/0.weight", OptStateCodec.Encode(m).Tensors.Select(t => t.Name));
        Assert.Contains("optimizer/inner/scale_by_adam/nu/0.weight", OptStateCodec.Encode(m).Tensors.Select(t => t.Name));
    }

    /// <summary>Runs <paramref name="steps"/> optimizer steps with gradients that depend on (seed, step) only.</summary>
    internal static (ParamTree P, OptState S) Run(IGradientTransformation opt, ParamTree p, OptState s, int firstStep, int steps)
    {
        for (int t = firstStep; t < firstStep + steps; t++)
            (p, s) = opt.Step(p, Trees.FromFlat(p, Gens.Random(1000 + t, (int)p.Count, -1f, 1f)), s);
        return (p, s);
    }

    internal static Dictionary<string, SafeTensor> Bytes(EncodedOptState e) =>
        SafeTensors.Read(SafeTensorsProperties.ToBytes(e.Tensors, null), "mem").ByName.ToDictionary(kv => kv.Key, kv => kv.Value);

    internal static Property SameTensors(EncodedOptState a, EncodedOptState b)
    {
        var prop = (a.Tensors.Count == b.Tensors.Count).Label($"{a.Tensors.Count} vs {b.Tensors.Count} tensors");
        foreach (var (x, y) in a.Tensors.Zip(b.Tensors))
            prop = prop.And((x.Name == y.Name && x.Data.Span.SequenceEqual(y.Data.Span)).Label($"tensor {x.Name} vs {y.Name} bitwise"));
        return prop;
    }

    internal static int[] Bits(float[] x) => x.Select(BitConverter.SingleToInt32Bits).ToArray();
}
