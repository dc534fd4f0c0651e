using IlgpuTrain.Optimizers;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>Checkpoints: full round trips, atomic writes under a crash, clean errors on damaged files and other models.</summary>
public sealed class CheckpointProperties : IDisposable
{
    private const string Junk = "{}[]\",:0123456789-.eEtrufalsn \\";

    private readonly string _dir = Directory.CreateTempSubdirectory("ckpt-props").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Property(MaxTest = 15)]
    public Property Save_then_load_restores_everything() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gen.Choose(0, 10_000).ToArbitrary(), (layout, seed) =>
        {
            var d = Devices.Cpu;
            string path = Path.Combine(_dir, $"rt-{seed}.safetensors");
            var original = Make(d, layout, seed);
            Checkpoint.Save(path, original);
            using var loaded = Checkpoint.Load(path, d, new AdamW(new OneCycleLR(0.1, 50)), original.Params.Layout, original.State.Layout);
            var ps = original.Params.Snapshot();
            var ls = loaded.Params.Snapshot();
            var ss = original.State.Snapshot();
            var lss = loaded.State.Snapshot();
            var ea = OptStateCodec.Encode(original.Optimizer!);
            var eb = OptStateCodec.Encode(loaded.Optimizer!);
            var prop = ps.Layout.Equals(ls.Layout).Label("parameter layout")
                .And(OptStateCodecProperties.Bits(ps.Float32).SequenceEqual(OptStateCodecProperties.Bits(ls.Float32)).Label("parameters bitwise"))
                .And(ss.Layout.Equals(lss.Layout).Label("buffer layout"))
                .And(OptStateCodecProperties.Bits(ss.Float32).SequenceEqual(OptStateCodecProperties.Bits(lss.Float32)).Label("running stats bitwise"))
                .And(ss.Int32.SequenceEqual(lss.Int32).Label("num_batches_tracked"))
                .And(OptStateCodecProperties.SameTensors(ea, eb))
                .And((ea.Json.ToJsonString() == eb.Json.ToJsonString()).Label("optimizer scalars"))
                .And((loaded.Seed, loaded.Epoch, loaded.Step, loaded.BatchInEpoch, loaded.ModelDescription, loaded.Config) ==
                     (original.Seed, original.Epoch, original.Step, original.BatchInEpoch, original.ModelDescription, original.Config)).Label("run position and strings")
                .And((loaded.LossScale == original.LossScale).Label($"loss scale {loaded.LossScale} vs {original.LossScale}"))
                .And((loaded.Schedule == new OneCycleLR(0.1, 50)).Label($"schedule {loaded.Schedule}"))
                .And(SameHistory(original.History, loaded.History).Label("history"));
            original.Dispose();
            return prop;
        });

    /// <summary>A save that dies midway (the stream fails after k bytes) leaves the previous checkpoint loadable, bitwise, and no half file.</summary>
    [Property(MaxTest = 10)]
    public Property A_write_killed_midway_leaves_the_previous_checkpoint_intact() =>
        Prop.ForAll(Gen.Choose(0, 4000).ToArbitrary(), kill =>
        {
            var d = Devices.Cpu;
            string path = Path.Combine(_dir, $"kill-{kill}.safetensors");
            (int[] Shape, string Path)[] layout = [([8, 5], "0.weight"), ([8], "0.bias"), ([3, 8], "2.weight")];
            using (var first = Make(d, layout, 1))
                Checkpoint.Save(path, first);
            var before = File.ReadAllBytes(path);
            using var second = Make(d, layout, 2);
            var thrown = Record.Exception(() => AtomicFile.Write(path, s => Checkpoint.Write(new FailingStream(s, kill), second)));
            // A process killed outright leaves its temporary file behind, truncated: it must not matter.
            var full = new MemoryStream();
            Checkpoint.Write(full, second);
            File.WriteAllBytes(path + ".tmp-killed", full.ToArray().AsSpan(0, Math.Min(kill, (int)full.Length)).ToArray());
            using var loaded = Checkpoint.Load(path, d, new AdamW(new OneCycleLR(0.1, 50)));
            using var reference = Make(d, layout, 1);
            var files = Directory.GetFiles(_dir, $"kill-{kill}.*").Select(Path.GetFileName).Order().ToArray();
            return (thrown is IOException).Label($"the write failed: {thrown?.GetType().Name}")
                .And(File.ReadAllBytes(path).SequenceEqual(before).Label("the file at path is byte-identical to the first checkpoint"))
                .And(OptStateCodecProperties.Bits(loaded.Params.Snapshot().Float32).SequenceEqual(OptStateCodecProperties.Bits(reference.Params.Snapshot().Float32)).Label("it loads the first parameters"))
                .And((loaded.Step == reference.Step).Label("and the first step"))
                .And(files.SequenceEqual([$"kill-{kill}.safetensors", $"kill-{kill}.safetensors.tmp-killed"]).Label($"files: {string.Join(", ", files)}"));
        });

    [Property(MaxTest = 150)]
    public Property Damaged_checkpoints_give_only_checkpoint_errors() =>
        Prop.ForAll(Gen.Choose(0, int.MaxValue).ToArbitrary(), seed =>
        {
            var d = Devices.Cpu;
            var bytes = Valid(d).ToArray();
            var r = new Random(seed);
            int headerEnd = 8 + (int)BitConverter.ToUInt64(bytes);
            byte[] damaged;
            if (r.Next(4) == 0)
            {
                damaged = bytes.AsSpan(0, r.Next(bytes.Length)).ToArray();
            }
            else
            {
                damaged = (byte[])bytes.Clone();
                for (int m = r.Next(1, 4); m > 0; m--)
                    damaged[r.Next(8, headerEnd)] = (byte)Junk[r.Next(Junk.Length)];
            }
            string outcome;
            try
            {
                using var c = Checkpoint.Decode(SafeTensors.Read(damaged, "fuzz"), d, new AdamW(new OneCycleLR(0.1, 50)));
                outcome = "ok";
            }
            catch (Exception e) when (e is CheckpointFormatException or CheckpointMismatchException)
            {
                outcome = e.GetType().Name;
            }
            catch (Exception e)
            {
                outcome = $"WRONG {e.GetType().Name}: {e.Message}";
            }
            return (!outcome.StartsWith("WRONG", StringComparison.Ordinal)).Label(outcome).Collect(outcome);
        });

    [Fact]
    public void Another_model_is_refused_naming_the_first_differing_parameter()
    {
        var d = Devices.Cpu;
        string path = Path.Combine(_dir, "model.safetensors");
        using (var c = Make(d, [([4, 3], "0.weight"), ([4], "0.bias")], 1))
            Checkpoint.Save(path, c);
        var other = new ParamLayout([("0.weight", new Shape(5, 3), DType.Float32), ("0.bias", new Shape(5), DType.Float32)]);
        var e = Assert.Throws<CheckpointMismatchException>(() => Checkpoint.Load(path, d, expectedParams: other));
        Assert.Contains("parameter 0 is \"0.weight\" (4, 3) Float32 in the checkpoint but \"0.weight\" (5, 3) Float32 in the model", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_plain_safetensors_file_is_not_a_checkpoint()
    {
        string path = Path.Combine(_dir, "plain.safetensors");
        SafeTensors.Save(path, [SafeTensor.Float32("w", [1], [1f])]);
        var e = Assert.Throws<CheckpointFormatException>(() => Checkpoint.Load(path, Devices.Cpu));
        Assert.Contains("not an IlgpuTrain checkpoint", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Keys_are_the_state_dict_names_and_metadata_is_one_json_entry()
    {
        var d = Devices.Cpu;
        string path = Path.Combine(_dir, "keys.safetensors");
        using (var c = Make(d, [([2, 2], "0.weight")], 1))
            Checkpoint.Save(path, c);
        var file = SafeTensors.Load(path);
        Assert.Equal("0.weight", file.Tensors[0].Name);
        Assert.Equal(SafeTensorDType.I32, file.Find("1.num_batches_tracked")!.DType);
        Assert.Empty(file.Find("1.num_batches_tracked")!.Shape);
        Assert.Contains("optimizer/scale_by_adam/mu/0.weight", file.ByName.Keys);
        Assert.Equal(["format", Checkpoint.MetadataKey], file.Metadata.Keys.Order());
        var meta = System.Text.Json.Nodes.JsonNode.Parse(file.Metadata[Checkpoint.MetadataKey])!;
        Assert.Equal(1, meta["version"]!.GetValue<int>());
        Assert.Equal("one_cycle_lr", meta["schedule"]!["type"]!.GetValue<string>());
    }

    /// <summary>A checkpoint: parameters from <paramref name="layout"/>, BatchNorm-like buffers, a stepped AdamW(one-cycle) state, NaN in the history.</summary>
    private static TrainingCheckpoint Make(Device d, (int[] Shape, string Path)[] layout, int seed)
    {
        var opt = new AdamW(new OneCycleLR(0.1, 50));
        var p = Trees.Random(d, layout, seed);
        var s = opt.Init(p);
        (p, s) = OptStateCodecProperties.Run(opt, p, s, seed, 2);
        var state = ParamTree.FromSnapshot(d, new ParamSnapshot(
            new ParamLayout([("1.running_mean", new Shape(3), DType.Float32), ("1.running_var", new Shape(3), DType.Float32), ("1.num_batches_tracked", Shape.Scalar, DType.Int32)]),
            Gens.Random(seed, 6, 0f, 2f), [], [seed + 5]));
        var history = History.Empty
            .Add(new EpochMetrics(1, 0.5 + seed, 0.8, 0.6, 0.7, 0.95, 5, 1e-3 / 3, 65536, 2, 100, 6400, 1.25))
            .Add(new EpochMetrics(2, double.NaN, 0.1, null, null, null, 5, 0.1, null, 0, 100, 6400, 1.5));
        return new TrainingCheckpoint(p, state, s, (ulong)seed * 0x9E3779B97F4A7C15UL, 2, 200 + seed, 3, history, new LossScaleState(32768f, 17 + seed), "Dense(784->10) on (1, 28, 28)", "{\"lr\": 0.1}");
    }

    private static MemoryStream Valid(Device d)
    {
        var ms = new MemoryStream();
        using var c = Make(d, [([3, 2], "0.weight"), ([3], "0.bias")], 4);
        Checkpoint.Write(ms, c);
        return ms;
    }

    private static bool SameHistory(History a, History b) =>
        a.Epochs.Count == b.Epochs.Count && a.Epochs.Zip(b.Epochs).All(x => x.First.Equals(x.Second));
}
