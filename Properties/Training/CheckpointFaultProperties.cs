using System.Diagnostics;
using System.Text.Json.Nodes;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// Fault injection for checkpoints: special files are refused before they are read; metadata of the
/// wrong JSON type or out of range, field by field, is a <see cref="CheckpointFormatException"/>
/// naming the field (never another exception); parameters that are not the named model's are
/// refused; stray temporary files of a killed writer are removed at the next start.
/// </summary>
public sealed class CheckpointFaultProperties : IDisposable
{
    // Each run-configuration field with values of a wrong JSON type or out of its range.
    private static readonly (string Field, string[] Bad)[] ConfigFaults =
    [
        ("Model", ["5", "true", "null", "[]", "\"vgg\"", "\"\""]),
        ("Dataset", ["{}", "null", "\"imagenet\""]),
        ("DataDir", ["5", "[\"a\"]", "false"]),
        ("Optimizer", ["1.5", "null", "\"lamb\""]),
        ("LearningRate", ["\"x\"", "\"NaN\"", "null", "true", "0", "-1", "11", "[]"]),
        ("WeightDecay", ["\"0\"", "-0.1", "1", "null"]),
        ("Momentum", ["false", "-1", "1.5"]),
        ("Schedule", ["0", "\"linear\"", "null"]),
        ("WarmupSteps", ["-1", "1.5", "\"3\"", "1e10"]),
        ("Epochs", ["0", "-3", "10001", "2.5", "\"5\"", "null", "1e20"]),
        ("BatchSize", ["0", "-1", "65537", "0.5", "\"128\"", "null", "true"]),
        ("LabelSmoothing", ["-0.1", "1", "1e300", "\"0.1\"", "null"]),
        ("Dropout", ["-0.1", "1", "\"x\"", "true", "1e300"]),
        ("Augment", ["5", "null", "\"blur\"", "\"flip,zoom\"", "\"hue=0.9\""]),
        ("MixedPrecision", ["1", "\"true\"", "null"]),
        ("Accumulate", ["0", "1025", "-4", "1.5", "null"]),
        ("Clip", ["-0.5", "\"1\"", "null"]),
        ("EarlyStopping", ["-2", "0.5", "null"]),
        ("Device", ["\"tpu\"", "5", "\"\"", "[]"]),
        ("Seed", ["-1", "1.5", "\"7\"", "1e30", "null"]),
        ("Output", ["5", "null", "\"\""]),
        ("TrainLimit", ["-1", "1.5", "null"]),
        ("ValSize", ["-1", "\"10\"", "null"]),
    ];

    // Top-level metadata entries with values of a wrong JSON type or out of range.
    private static readonly (string Field, string[] Bad)[] MetadataFaults =
    [
        ("version", ["\"1\"", "99", "0", "1.5", "null"]),
        ("params", ["5", "[5]", "[\"nope\"]", "null", "\"1.weight\""]),
        ("buffers", ["\"x\"", "[null]"]),
        ("seed", ["-1", "\"x\"", "1.5", "null"]),
        ("epoch", ["-1", "\"x\"", "1e20", "null"]),
        ("step", ["-5", "\"x\"", "[]"]),
        ("batch_in_epoch", ["-1", "null", "true"]),
        ("history", ["5", "[5]", "\"x\"", "[{\"epoch\": \"one\"}]"]),
        ("loss_scale", ["5", "{\"scale\": -1, \"growth_tracker\": 0}", "{\"scale\": \"x\"}", "{\"scale\": 2, \"growth_tracker\": -1}"]),
        ("model", ["5", "[]"]),
        ("config", ["5", "[1]", "{}", "true"]),
    ];

    private readonly string _dir = Directory.CreateTempSubdirectory("ckpt-faults-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static readonly InMemoryDataset Tiny = new("tiny", new float[2 * 784], [0, 1], new Shape(1, 28, 28), 10);

    /// <summary>Every field of the stored run configuration, given a wrong type or range, is refused naming that field.</summary>
    [Property(MaxTest = 120)]
    public Property A_bad_config_field_is_a_format_error_naming_it() =>
        Prop.ForAll(Gen.Elements(ConfigFaults.SelectMany(f => f.Bad.Select(b => (f.Field, b))).ToArray()).ToArbitrary(), fault =>
        {
            var config = JsonNode.Parse(new RunConfig().ToJson())!.AsObject();
            config[fault.Field] = JsonNode.Parse(fault.b);
            string path = Save($"cfg-{Guid.NewGuid():N}", meta => meta["config"] = config.ToJsonString());
            var e = Record.Exception(() => Resuming.ReadConfig(path));
            return (e is CheckpointFormatException && e.Message.Contains($"\"{fault.Field}\"", StringComparison.Ordinal) && e.Message.StartsWith(path, StringComparison.Ordinal))
                .Label($"{fault.Field} = {fault.b}: {e?.GetType().Name ?? "accepted"}: {e?.Message}");
        });

    /// <summary>Every top-level metadata entry, given a wrong type or range, is a format error (for loading and for reading the configuration), never another exception.</summary>
    [Property(MaxTest = 80)]
    public Property A_bad_metadata_entry_is_a_format_error() =>
        Prop.ForAll(Gen.Elements(MetadataFaults.SelectMany(f => f.Bad.Select(b => (f.Field, b))).ToArray()).ToArbitrary(), fault =>
        {
            string path = Save($"meta-{Guid.NewGuid():N}", meta => meta[fault.Field] = JsonNode.Parse(fault.b));
            var load = Record.Exception(() => Resuming.LoadFor(path, Devices.Cpu, new RunConfig(), Tiny).Dispose());
            var config = Record.Exception(() => Resuming.ReadConfig(path));
            bool configOk = fault.Field != "config" || config is CheckpointFormatException;
            return (load is CheckpointFormatException && configOk)
                .Label($"{fault.Field} = {fault.b}: load {load?.GetType().Name ?? "accepted"} {load?.Message}; config {config?.GetType().Name ?? "accepted"} {config?.Message}");
        });

    [Fact]
    public void Metadata_that_is_not_json_or_not_an_object_is_a_format_error()
    {
        foreach (var text in new[] { "{not json", "[1, 2]", "5", string.Empty })
        {
            string path = Path.Combine(_dir, $"text-{Guid.NewGuid():N}.safetensors");
            SafeTensors.Save(path, [], new Dictionary<string, string> { [Checkpoint.MetadataKey] = text });
            Assert.IsType<CheckpointFormatException>(Record.Exception(() => Resuming.ReadConfig(path)));
            Assert.IsType<CheckpointFormatException>(Record.Exception(() => Checkpoint.Load(path, Devices.Cpu)));
        }
    }

    [Fact]
    public void Parameters_of_another_model_than_the_config_names_are_a_format_error()
    {
        string path = Save("mlp-says-cnn", meta => meta["config"] = new RunConfig { Model = "cnn" }.ToJson());
        var config = Resuming.ReadConfig(path);
        var e = Assert.Throws<CheckpointFormatException>(() => Resuming.LoadFor(path, Devices.Cpu, config, Tiny));
        Assert.Contains("\"Model\": \"cnn\"", e.Message);

        string good = Save("mlp", _ => { });
        using var c = Resuming.LoadFor(good, Devices.Cpu, Resuming.ReadConfig(good), Tiny);
        Assert.Equal(4, c.Params.Layout.Count);
    }

    [Fact]
    public void A_checkpoint_that_is_not_a_regular_file_is_refused_by_path()
    {
        string dangling = Path.Combine(_dir, "dangling.safetensors");
        File.CreateSymbolicLink(dangling, Path.Combine(_dir, "gone.safetensors"));
        string directory = Path.Combine(_dir, "dir.safetensors");
        Directory.CreateDirectory(directory);
        foreach (var (path, problem) in new[] { (dangling, "symbolic link to"), (directory, "a directory"), ("/dev/zero", "a device") })
            RefusedByPath(path, problem);
    }

    [FifoFact]
    public void A_checkpoint_that_is_a_named_pipe_is_refused_without_blocking()
    {
        string fifo = Path.Combine(_dir, "pipe.safetensors");
        Faults.MakeFifo(fifo);
        RefusedByPath(fifo, "named pipe (FIFO)");
    }

    [NotRootFact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public void An_unreadable_checkpoint_says_permission_denied()
    {
        string path = Save("locked", _ => { });
        File.SetUnixFileMode(path, UnixFileMode.None);
        RefusedByPath(path, "permission denied");
    }

    [Fact]
    public void Stray_temporary_files_of_dead_writers_are_removed_at_the_next_start()
    {
        string dir = Path.Combine(_dir, "checkpoints");
        Directory.CreateDirectory(dir);
        int dead = DeadPid();
        string Tmp(string tail) => Path.Combine(dir, $"last.safetensors.tmp-{tail}");
        string deadWriter = Tmp($"{dead}-{Guid.NewGuid():N}");
        string liveWriter = Tmp($"{Environment.ProcessId}-{Guid.NewGuid():N}");
        string oldUnnamed = Tmp($"{Guid.NewGuid():N}");
        string youngUnnamed = Path.Combine(dir, $"best.safetensors.tmp-{Guid.NewGuid():N}");
        string notOurs = Tmp("notes");
        string other = Path.Combine(dir, "readme.txt");
        foreach (var f in new[] { deadWriter, liveWriter, oldUnnamed, youngUnnamed, notOurs, other })
            File.WriteAllText(f, "x");
        File.SetLastWriteTimeUtc(oldUnnamed, DateTime.UtcNow - AtomicFile.StaleAge - TimeSpan.FromMinutes(1));

        // What a run's checkpoint callback does at the start of a fit (RunFaultProperties runs that path).
        AtomicFile.RemoveStale(dir);
        var left = Directory.GetFiles(dir).Select(Path.GetFileName).Order().ToArray();
        Assert.Equal(new[] { liveWriter, youngUnnamed, notOurs, other }.Select(Path.GetFileName).Order().ToArray(), left);
    }

    private static int DeadPid()
    {
        using var p = Process.Start(new ProcessStartInfo("true") { UseShellExecute = false })!;
        p.WaitForExit();
        return p.Id;
    }

    private static void RefusedByPath(string path, string problem)
    {
        foreach (var (reader, read) in new (string, Action)[]
        {
            ("SafeTensors.Load", () => SafeTensors.Load(path)),
            ("Checkpoint.Load", () => Checkpoint.Load(path, Devices.Cpu).Dispose()),
            ("Resuming.ReadConfig", () => Resuming.ReadConfig(path)),
        })
        {
            var e = Faults.ThrownWithin(read);
            var io = Assert.IsType<InputFileException>(e, exactMatch: false);
            Assert.True(io.Message.StartsWith(path + ": ", StringComparison.Ordinal) && io.Message.Contains(problem, StringComparison.Ordinal) && !io.Message.Contains('\n'), $"{reader}: {io.Message}");
        }
    }

    // An MLP checkpoint (no optimizer state) as train writes it, its metadata edited by edit.
    private string Save(string name, Action<JsonObject> edit)
    {
        string path = Path.Combine(_dir, name + ".safetensors");
        var (p, s) = Models.Mlp(10).Init(Devices.Cpu, new Shape(1, 28, 28), Rng.Create(1));
        using (var c = new TrainingCheckpoint(p, s, null, 1, 1, 4, 0, History.Empty, null, "mlp", new RunConfig().ToJson()))
            Checkpoint.Save(path, c);
        var file = SafeTensors.Load(path);
        var meta = JsonNode.Parse(file.Metadata[Checkpoint.MetadataKey])!.AsObject();
        edit(meta);
        var metadata = file.Metadata.ToDictionary(kv => kv.Key, kv => kv.Value);
        metadata[Checkpoint.MetadataKey] = meta.ToJsonString();
        SafeTensors.Save(path, file.Tensors, metadata);
        return path;
    }
}
