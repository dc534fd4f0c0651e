using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using IlgpuTrain.Optimizers;
using Half = ILGPU.Half;

namespace IlgpuTrain.Training;

/// <summary>The dynamic loss scale's state: what a resumed mixed-precision run needs to continue exactly.</summary>
/// <param name="Scale">The current loss scale.</param>
/// <param name="GrowthTracker">Finite steps since the last change of the scale.</param>
public sealed record LossScaleState(float Scale, int GrowthTracker)
{
    /// <summary>The state of <paramref name="scale"/>.</summary>
    /// <param name="scale">A dynamic loss scale.</param>
    /// <returns>Its scale and growth tracker.</returns>
    public static LossScaleState From(DynamicLossScale scale)
    {
        ArgumentNullException.ThrowIfNull(scale);
        return new(scale.Scale, scale.GrowthTracker);
    }

    /// <summary><paramref name="configured"/> (growth factor, backoff, interval) with this scale and tracker.</summary>
    /// <param name="configured">The run's loss-scale configuration.</param>
    /// <returns>The restored loss scale.</returns>
    public DynamicLossScale ApplyTo(DynamicLossScale configured)
    {
        ArgumentNullException.ThrowIfNull(configured);
        return configured with { Scale = Scale, GrowthTracker = GrowthTracker };
    }
}

/// <summary>Everything a training run needs to continue exactly where it stopped.</summary>
/// <param name="Params">The model's parameters (state_dict names, e.g. "0.weight").</param>
/// <param name="State">The model's buffers (BatchNorm running statistics, num_batches_tracked as Int32); may be empty.</param>
/// <param name="Optimizer">The optimizer state, or null (e.g. a checkpoint kept for evaluation only, or loaded without an optimizer).</param>
/// <param name="Seed">The run's seed: shuffles, dropout and augmentation are functions of (seed, epoch, step).</param>
/// <param name="Epoch">The epoch to resume in (0-based).</param>
/// <param name="Step">Optimizer updates done so far (micro-steps with gradient accumulation count too, as the trainer defines).</param>
/// <param name="BatchInEpoch">Batches of <paramref name="Epoch"/> already done (0: at its start).</param>
/// <param name="History">Metrics of the completed epochs.</param>
/// <param name="LossScale">The dynamic loss scale's state, or null without mixed precision.</param>
/// <param name="ModelDescription">The model, as the caller describes it (e.g. its layers and input shape); checked by nothing, shown to people.</param>
/// <param name="Config">The run's configuration as a JSON string, or null.</param>
public sealed record TrainingCheckpoint(
    ParamTree Params,
    ParamTree State,
    OptState? Optimizer,
    ulong Seed,
    int Epoch,
    long Step,
    int BatchInEpoch,
    History History,
    LossScaleState? LossScale,
    string ModelDescription,
    string? Config) : IDisposable
{
    /// <summary>The optimizer, as the caller describes it (null: its state's structure is stored).</summary>
    public string? OptimizerDescription { get; init; }

    /// <summary>The learning-rate schedule (null: the first one in <see cref="Optimizer"/>'s state is stored).</summary>
    public Schedule? Schedule { get; init; }

    /// <summary>The model itself (architecture, input shape, normalization, class names), so that <see cref="ModelFile.Load(string, IlgpuTrain.Functional.ComputeDevice, bool)"/> rebuilds it with no code; null in checkpoints that do not carry it.</summary>
    public SavedModel? Model { get; init; }

    /// <summary>
    /// The run's averaged weights (an EMA or SWA average, <see cref="TrainState.Averaged"/>), or
    /// null; stored under <c>averaged/</c> + the parameter and buffer names, with its count in the metadata.
    /// </summary>
    public AveragedWeights? Averaged { get; init; }

    /// <summary>The number of ranks of the run that wrote it (1 for one process; <see cref="TrainState.WorldSize"/>).</summary>
    public int WorldSize { get; init; } = 1;

    /// <summary>The format version of the file it was loaded from (<see cref="Checkpoint.FormatVersion"/> for new ones).</summary>
    public int FormatVersion { get; init; } = Checkpoint.FormatVersion;

    /// <summary>Disposes the parameters, buffers, optimizer state and averaged weights.</summary>
    public void Dispose()
    {
        Params.Dispose();
        State.Dispose();
        Optimizer?.Dispose();
        Averaged?.Dispose();
    }
}

/// <summary>
/// Saves and loads <see cref="TrainingCheckpoint"/>s as single safetensors files, written atomically.
/// </summary>
/// <remarks>
/// The file holds the parameters and buffers under their own state_dict names, so
/// <c>model.load_state_dict(safetensors.torch.load_file(path), strict=False)</c> sees the model's keys
/// (strict loading sees the optimizer/... keys too: filter them). The optimizer state is stored under
/// <c>optimizer/...</c> (see <see cref="OptStateCodec"/>). The metadata holds
/// <c>"format": "pt"</c> (which Hugging Face loaders expect) and <c>"ilgpu_train"</c>: a JSON object
/// with the format version, model and optimizer descriptions, the parameter and buffer names in
/// layout order, the optimizer state's structure and scalars, the schedule, seed, epoch, step,
/// batch position, history, loss-scale state and the caller's configuration.
/// A write goes to a temporary file that is flushed and renamed over the target
/// (<see cref="AtomicFile"/>): a crash mid-write leaves the previous checkpoint intact.
/// </remarks>
public static class Checkpoint
{
    /// <summary>The version this code writes; files of a newer version are refused.</summary>
    public const int FormatVersion = 1;

    /// <summary>The prefix of the averaged weights' tensor names (<c>averaged/0.weight</c>).</summary>
    public const string AveragedPrefix = "averaged/";

    /// <summary>The metadata key holding the JSON metadata.</summary>
    public const string MetadataKey = "ilgpu_train";

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Saves <paramref name="c"/> to <paramref name="path"/> atomically.</summary>
    /// <param name="path">The .safetensors file.</param>
    /// <param name="c">The checkpoint.</param>
    public static void Save(string path, TrainingCheckpoint c)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var (tensors, metadata) = Encode(c);
        AtomicFile.Write(path, s => SafeTensors.Write(s, tensors, metadata));
    }

    /// <summary>Writes <paramref name="c"/> to a stream (not atomic; <see cref="Save"/> is).</summary>
    /// <param name="stream">The destination.</param>
    /// <param name="c">The checkpoint.</param>
    public static void Write(Stream stream, TrainingCheckpoint c)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var (tensors, metadata) = Encode(c);
        SafeTensors.Write(stream, tensors, metadata);
    }

    /// <summary>Loads a checkpoint onto <paramref name="device"/>.</summary>
    /// <param name="path">The .safetensors file.</param>
    /// <param name="device">Where to put the parameters and optimizer state.</param>
    /// <param name="optimizer">The optimizer to restore the state into (its Init on the loaded parameters gives the structure), or null to skip the optimizer state.</param>
    /// <param name="expectedParams">The model's parameter layout, to check the checkpoint against (null: no check).</param>
    /// <param name="expectedState">The model's buffer layout, to check against (null: no check).</param>
    /// <returns>The checkpoint; the caller owns its trees and state.</returns>
    /// <exception cref="CheckpointFormatException">The file is malformed or not an IlgpuTrain checkpoint.</exception>
    /// <exception cref="CheckpointMismatchException">It is of another model or optimizer.</exception>
    public static TrainingCheckpoint Load(string path, Device device, IGradientTransformation? optimizer = null, ParamLayout? expectedParams = null, ParamLayout? expectedState = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        var file = SafeTensors.Load(path);
        return Decode(file, device, optimizer, expectedParams, expectedState);
    }

    /// <summary>Decodes a checkpoint from a parsed safetensors file (see <see cref="Load"/>).</summary>
    /// <param name="file">The parsed file.</param>
    /// <param name="device">The device.</param>
    /// <param name="optimizer">The optimizer, or null.</param>
    /// <param name="expectedParams">The model's parameter layout, or null.</param>
    /// <param name="expectedState">The model's buffer layout, or null.</param>
    /// <returns>The checkpoint.</returns>
    public static TrainingCheckpoint Decode(SafeTensorsFile file, Device device, IGradientTransformation? optimizer = null, ParamLayout? expectedParams = null, ParamLayout? expectedState = null)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(device);
        string src = file.Source;
        if (!file.Metadata.TryGetValue(MetadataKey, out var metaText))
            throw new CheckpointFormatException(src, $"no \"{MetadataKey}\" metadata: a safetensors file, but not an IlgpuTrain checkpoint (it holds {file.Tensors.Count} tensors{(file.Tensors.Count > 0 ? ", e.g. " + file.Tensors[0].Name : string.Empty)}).");
        JsonObject meta;
        try
        {
            meta = JsonNode.Parse(metaText) as JsonObject ?? throw new JsonException("not an object");
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException(src, $"the \"{MetadataKey}\" metadata is not a JSON object: {e.Message}");
        }

        var r = new MetaReader(src, meta);
        int version = r.Int("version");
        if (version < 1 || version > FormatVersion)
            throw new CheckpointFormatException(src, $"format version {version}; this build reads versions 1 to {FormatVersion}. Upgrade IlgpuTrain to load it.");

        var paramLayout = ReadLayout(file, r.Strings("params"), "parameter");
        var stateLayout = ReadLayout(file, r.Strings("buffers"), "buffer");
        if (expectedParams is not null)
            RequireLayout(src, "parameter", expectedParams, paramLayout);
        if (expectedState is not null)
            RequireLayout(src, "buffer", expectedState, stateLayout);

        var history = r.Deserialize<List<EpochMetrics>>("history") ?? [];
        var lossScale = r.Deserialize<LossScaleState>("loss_scale");
        if (lossScale is not null && !(float.IsFinite(lossScale.Scale) && lossScale.Scale > 0 && lossScale.GrowthTracker >= 0))
            throw new CheckpointFormatException(src, $"metadata \"loss_scale\" is scale {lossScale.Scale}, growth tracker {lossScale.GrowthTracker}; allowed: a finite scale above 0 and a tracker of 0 or more.");
        ulong seed = r.UInt64("seed");
        int epoch = r.Int("epoch"), batchInEpoch = r.Int("batch_in_epoch");
        long step = r.Long("step");
        if (epoch < 0 || step < 0 || batchInEpoch < 0)
            throw new CheckpointFormatException(src, $"metadata {(epoch < 0 ? $"\"epoch\" is {epoch}" : step < 0 ? $"\"step\" is {step}" : $"\"batch_in_epoch\" is {batchInEpoch}")}; allowed: an integer of 0 or more.");
        var schedule = meta["schedule"] is JsonObject sj ? ReadSchedule(src, sj) : null;
        int worldSize = meta["world_size"] is null ? 1 : r.Int("world_size");
        if (worldSize < 1)
            throw new CheckpointFormatException(src, $"metadata \"world_size\" is {worldSize}; allowed: an integer of 1 or more.");

        ParamTree? ps = null, ss = null;
        OptState? opt = null;
        AveragedWeights? averaged = null;
        try
        {
            ps = Upload(device, file, paramLayout);
            ss = Upload(device, file, stateLayout);
            averaged = ReadAveraged(src, file, meta, device, paramLayout, stateLayout);
            if (optimizer is not null)
            {
                var saved = meta["optimizer"] as JsonObject;
                if (saved?["state"] is not JsonObject stateJson)
                    throw new CheckpointMismatchException(src, $"the checkpoint holds no optimizer state but an optimizer ({optimizer.Name}) was given to restore it into; load without an optimizer and Init a fresh state instead.");
                opt = OptStateCodec.Restore(optimizer, ps, file.ByName, stateJson, src);
            }
            return new TrainingCheckpoint(
                ps, ss, opt,
                seed, epoch, step, batchInEpoch,
                new History(history), lossScale, r.String("model") ?? string.Empty, r.String("config"))
            {
                OptimizerDescription = (meta["optimizer"] as JsonObject) is { } o && o["description"]?.GetValueKind() == JsonValueKind.String ? o["description"]!.GetValue<string>() : null,
                Schedule = schedule,
                FormatVersion = version,
                Averaged = averaged,
                WorldSize = worldSize,
                Model = meta[SavedModel.MetadataMember] is { } m ? SavedModel.FromNode(m, src) : null,
            };
        }
        catch
        {
            ps?.Dispose();
            ss?.Dispose();
            opt?.Dispose();
            averaged?.Dispose();
            throw;
        }
    }

    private static (List<SafeTensor> Tensors, Dictionary<string, string> Metadata) Encode(TrainingCheckpoint c)
    {
        ArgumentNullException.ThrowIfNull(c);
        ArgumentNullException.ThrowIfNull(c.Params);
        ArgumentNullException.ThrowIfNull(c.State);
        var tensors = new List<SafeTensor>();
        AddTree(tensors, c.Params);
        AddTree(tensors, c.State);
        if (c.Averaged is { } avg)
        {
            c.Params.Layout.RequireSame(avg.Params.Layout, "Checkpoint.Save (averaged parameters)");
            c.State.Layout.RequireSame(avg.State.Layout, "Checkpoint.Save (averaged buffers)");
            AddTree(tensors, avg.Params, AveragedPrefix);
            AddTree(tensors, avg.State, AveragedPrefix);
        }
        JsonObject? optimizer = null;
        if (c.Optimizer is not null)
        {
            var enc = OptStateCodec.Encode(c.Optimizer);
            tensors.AddRange(enc.Tensors);
            optimizer = new JsonObject
            {
                ["description"] = c.OptimizerDescription ?? OptStateCodec.Describe(c.Optimizer),
                ["state"] = enc.Json,
            };
        }
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in tensors)
        {
            if (!names.Add(t.Name))
                throw new ArgumentException($"Checkpoint.Save: the name \"{t.Name}\" is used twice (a parameter, buffer or optimizer tensor); parameters and buffers must have distinct names that do not start with \"{OptStateCodec.DefaultPrefix}/\".", nameof(c));
        }
        var schedule = c.Schedule ?? c.Optimizer?.FindAll<ScaleByLearningRateState>().FirstOrDefault()?.Schedule;
        var meta = new JsonObject
        {
            ["format"] = "ilgpu-train checkpoint",
            ["version"] = FormatVersion,
            ["model"] = c.ModelDescription,
            ["params"] = new JsonArray(c.Params.Layout.Params.Select(p => (JsonNode)p.Path).ToArray()),
            ["buffers"] = new JsonArray(c.State.Layout.Params.Select(p => (JsonNode)p.Path).ToArray()),
            ["optimizer"] = optimizer,
            ["schedule"] = schedule is null ? null : JsonNode.Parse(schedule.ToJson()),
            ["seed"] = c.Seed,
            ["epoch"] = c.Epoch,
            ["step"] = c.Step,
            ["batch_in_epoch"] = c.BatchInEpoch,
            ["history"] = JsonSerializer.SerializeToNode(c.History?.Epochs ?? [], JsonOptions),
            ["loss_scale"] = c.LossScale is null ? null : JsonSerializer.SerializeToNode(c.LossScale, JsonOptions),
            ["config"] = c.Config,
            ["averaged"] = c.Averaged is null ? null : new JsonObject { ["count"] = c.Averaged.Count },
            ["world_size"] = c.WorldSize,
        };
        if (c.Model is not null)
            meta[SavedModel.MetadataMember] = c.Model.ToNode();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["format"] = "pt",
            [MetadataKey] = meta.ToJsonString(),
        };
        return (tensors, metadata);
    }

    private static void AddTree(List<SafeTensor> tensors, ParamTree tree, string prefix = "")
    {
        var snap = tree.Snapshot();
        foreach (var p in snap.Layout.Params)
        {
            var shape = p.Shape.Select(d => (long)d).ToArray();
            int off = (int)p.Offset, len = (int)p.Length;
            string name = prefix + p.Path;
            tensors.Add(p.DType switch
            {
                DType.Float32 => SafeTensor.Float32(name, shape, snap.Float32.AsSpan(off, len)),
                DType.Float16 => SafeTensor.Float16(name, shape, snap.Float16.AsSpan(off, len)),
                _ => SafeTensor.Int32(name, shape, snap.Int32.AsSpan(off, len)),
            });
        }
    }

    // The averaged weights: metadata "averaged" {"count": n} and a tensor averaged/<name> of the
    // same shape and dtype for every parameter and buffer; null when the metadata has none.
    private static AveragedWeights? ReadAveraged(string src, SafeTensorsFile file, JsonObject meta, Device device, ParamLayout paramLayout, ParamLayout stateLayout)
    {
        if (meta["averaged"] is null)
            return null;
        if (meta["averaged"] is not JsonObject o || o["count"] is not JsonValue cv || !cv.TryGetValue(out long count) || count < 0)
            throw new CheckpointFormatException(src, $"metadata \"averaged\" is {meta["averaged"]!.ToJsonString()}; allowed: an object {{\"count\": n}} with n an integer of 0 or more.");
        foreach (var p in paramLayout.Params.Concat(stateLayout.Params))
        {
            var t = file.Find(AveragedPrefix + p.Path)
                ?? throw new CheckpointFormatException(src, $"the metadata says the checkpoint holds averaged weights, but it has no tensor \"{AveragedPrefix}{p.Path}\".");
            if (t.Shape.Count != p.Shape.Rank || t.Shape.Where((d, i) => d != p.Shape[i]).Any() || t.DType != p.DType switch { DType.Float32 => SafeTensorDType.F32, DType.Float16 => SafeTensorDType.F16, _ => SafeTensorDType.I32 })
                throw new CheckpointFormatException(src, $"the averaged tensor \"{t.Name}\" is [{string.Join(", ", t.Shape)}] {SafeTensors.DTypeName(t.DType)}, but \"{p.Path}\" is {p.Shape} {p.DType}; both must agree.");
        }

        var ap = Upload(device, file, paramLayout, AveragedPrefix);
        try
        {
            return new AveragedWeights(ap, Upload(device, file, stateLayout, AveragedPrefix), count);
        }
        catch
        {
            ap.Dispose();
            throw;
        }
    }

    private static ParamLayout ReadLayout(SafeTensorsFile file, IReadOnlyList<string> names, string kind)
    {
        var entries = new List<(string, Shape, DType)>(names.Count);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var name in names)
        {
            if (!seen.Add(name))
                throw new CheckpointFormatException(file.Source, $"the {kind} \"{name}\" is listed twice.");
            var t = file.Find(name) ?? throw new CheckpointFormatException(file.Source, $"the metadata lists the {kind} \"{name}\" but the file has no such tensor.");
            var dtype = t.DType switch
            {
                SafeTensorDType.F32 => DType.Float32,
                SafeTensorDType.F16 => DType.Float16,
                SafeTensorDType.I32 => DType.Int32,
                _ => throw new CheckpointFormatException(file.Source, $"the {kind} \"{name}\" is {SafeTensors.DTypeName(t.DType)}; parameters and buffers are F32, F16 or I32."),
            };
            if (t.Shape.Any(d => d > int.MaxValue) || t.Length > int.MaxValue)
                throw new CheckpointFormatException(file.Source, $"the {kind} \"{name}\" has shape [{string.Join(", ", t.Shape)}], too large for a parameter.");
            entries.Add((name, new Shape(t.Shape.Select(d => (int)d).ToArray()), dtype));
        }
        return new ParamLayout(entries);
    }

    private static void RequireLayout(string src, string kind, ParamLayout expected, ParamLayout found)
    {
        for (int i = 0; i < Math.Max(expected.Count, found.Count); i++)
        {
            var e = i < expected.Count ? expected.Params[i] : null;
            var f = i < found.Count ? found.Params[i] : null;
            if (e is not null && f is not null && e.Path == f.Path && e.Shape == f.Shape && e.DType == f.DType)
                continue;
            string Show(ParamInfo? p) => p is null ? "nothing" : $"\"{p.Path}\" {p.Shape} {p.DType}";
            throw new CheckpointMismatchException(src, $"the model does not match the checkpoint: {kind} {i} is {Show(f)} in the checkpoint but {Show(e)} in the model (the checkpoint has {found.Count} {kind}s, the model {expected.Count}).");
        }
    }

    private static ParamTree Upload(Device device, SafeTensorsFile file, ParamLayout layout, string prefix = "")
    {
        var f32 = new float[layout.LengthOf(DType.Float32)];
        var f16 = new Half[layout.LengthOf(DType.Float16)];
        var i32 = new int[layout.LengthOf(DType.Int32)];
        foreach (var p in layout.Params)
        {
            var bytes = file.Find(prefix + p.Path)!.Data.Span;
            int off = (int)p.Offset, len = (int)p.Length;
            switch (p.DType)
            {
                case DType.Float32: bytes.CopyTo(MemoryMarshal.AsBytes(f32.AsSpan(off, len))); break;
                case DType.Float16: bytes.CopyTo(MemoryMarshal.AsBytes(f16.AsSpan(off, len))); break;
                default: bytes.CopyTo(MemoryMarshal.AsBytes(i32.AsSpan(off, len))); break;
            }
        }
        return ParamTree.FromSnapshot(device, new ParamSnapshot(layout, f32, f16, i32));
    }

    private static Schedule ReadSchedule(string src, JsonObject json)
    {
        try
        {
            return Schedule.FromJson(json.ToJsonString());
        }
        catch (Exception e) when (e is FormatException or ArgumentException)
        {
            throw new CheckpointFormatException(src, $"the stored schedule is not valid: {e.Message}");
        }
    }

    // Typed reads of the metadata object; a missing or mistyped entry is a format error naming it.
    private sealed class MetaReader(string source, JsonObject meta)
    {
        public int Int(string key) => Get(key, n => n.GetValue<int>(), "an int");

        public long Long(string key) => Get(key, n => n.GetValue<long>(), "an integer");

        public ulong UInt64(string key) => Get(key, n => n.GetValue<ulong>(), "a non-negative integer");

        public string? String(string key) => meta[key] is null ? null : Get(key, n => n.GetValue<string>(), "a string");

        public List<string> Strings(string key)
        {
            if (meta[key] is not JsonArray arr)
                throw new CheckpointFormatException(source, $"the metadata has no \"{key}\" list.");
            return arr.Select((n, i) => n is not null && n.GetValueKind() == JsonValueKind.String
                ? n.GetValue<string>()
                : throw new CheckpointFormatException(source, $"\"{key}\"[{i}] is not a string.")).ToList();
        }

        public T? Deserialize<T>(string key)
            where T : class
        {
            var n = meta[key];
            if (n is null)
                return null;
            try
            {
                return n.Deserialize<T>(JsonOptions);
            }
            catch (Exception e) when (e is JsonException or NotSupportedException or ArgumentException or InvalidOperationException)
            {
                throw new CheckpointFormatException(source, $"the metadata's \"{key}\" is not valid: {e.Message}");
            }
        }

        private T Get<T>(string key, Func<JsonNode, T> read, string what)
        {
            var n = meta[key] ?? throw new CheckpointFormatException(source, $"the metadata has no \"{key}\".");
            try
            {
                return read(n);
            }
            catch (Exception e) when (e is FormatException or InvalidOperationException or OverflowException)
            {
                throw new CheckpointFormatException(source, $"the metadata's \"{key}\" should be {what} but is {n.ToJsonString()}.");
            }
        }
    }
}
