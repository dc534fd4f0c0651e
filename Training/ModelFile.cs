using System.Text.Json.Nodes;

namespace IlgpuTrain.Training;

/// <summary>
/// What a checkpoint needs to rebuild and use its model with no code: the architecture, the per-sample input shape,
/// the input normalization the model was trained with, and the class names.
/// </summary>
/// <param name="Layer">The model.</param>
/// <param name="InputShape">Per-sample input shape, e.g. (1, 28, 28).</param>
public sealed record SavedModel(Layer Layer, Shape InputShape)
{
    /// <summary>The metadata member that holds it (beside <see cref="Checkpoint.MetadataKey"/>'s other members).</summary>
    public const string MetadataMember = "architecture";

    /// <summary>Per-channel normalization applied to raw inputs before the model (null: inputs go in as they are).</summary>
    public Normalization? Normalization { get; init; }

    /// <summary>The name of each output class, in class order (null when unknown).</summary>
    public IReadOnlyList<string>? ClassNames { get; init; }

    /// <summary>The model of <paramref name="layer"/> on <paramref name="inputShape"/>, or null when a layer in it cannot be written as JSON.</summary>
    /// <param name="layer">The model.</param>
    /// <param name="inputShape">Per-sample input shape.</param>
    /// <returns>The saved model, or null.</returns>
    public static SavedModel? TryCreate(Layer layer, Shape inputShape)
    {
        ArgumentNullException.ThrowIfNull(layer);
        ArgumentNullException.ThrowIfNull(inputShape);
        try
        {
            _ = LayerJson.ToNode(layer);
            return new SavedModel(layer, inputShape);
        }
        catch (ArgumentException)
        {
            return null;
        }
    }

    /// <summary>The JSON object stored in the checkpoint's metadata.</summary>
    /// <returns>{"layer": ..., "input_shape": [...], "normalization": {"mean": [...], "std": [...]}, "class_names": [...]}.</returns>
    public JsonObject ToNode() => new()
    {
        ["layer"] = LayerJson.ToNode(Layer),
        ["input_shape"] = new JsonArray([.. InputShape.Select(d => (JsonNode)d)]),
        ["normalization"] = Normalization is null ? null : new JsonObject
        {
            ["mean"] = new JsonArray([.. Normalization.Mean.Select(v => (JsonNode)v)]),
            ["std"] = new JsonArray([.. Normalization.Std.Select(v => (JsonNode)v)]),
        },
        ["class_names"] = ClassNames is null ? null : new JsonArray([.. ClassNames.Select(v => (JsonNode)v)]),
    };

    /// <summary>The saved model read back from <see cref="ToNode"/>'s object; <paramref name="source"/> names the file in errors.</summary>
    /// <param name="node">The metadata member.</param>
    /// <param name="source">The file it came from.</param>
    /// <returns>The saved model.</returns>
    /// <exception cref="CheckpointFormatException">The member is malformed.</exception>
    public static SavedModel FromNode(JsonNode? node, string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        try
        {
            if (node is not JsonObject o)
                throw new ArgumentException("it is not an object");
            var layer = LayerJson.FromNode(o["layer"], "$.layer");
            var shape = new Shape([.. Ints(o["input_shape"], "input_shape")]);
            _ = layer.OutputShape(shape);
            Normalization? norm = o["normalization"] is JsonObject n
                ? new Normalization(Floats(n["mean"], "normalization.mean"), Floats(n["std"], "normalization.std"))
                : null;
            var names = o["class_names"] is JsonArray a ? a.Select((v, i) => v?.GetValue<string>() ?? throw new ArgumentException($"class_names[{i}] is null")).ToArray() : null;
            return new SavedModel(layer, shape) { Normalization = norm, ClassNames = names };
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException)
        {
            throw new CheckpointFormatException(source, $"the stored model (metadata \"{MetadataMember}\") is not valid: {e.Message}");
        }
    }

    private static int[] Ints(JsonNode? n, string name) =>
        n is JsonArray a ? [.. a.Select(v => v?.GetValue<int>() ?? throw new ArgumentException($"{name} holds null"))] : throw new ArgumentException($"{name} is not a list of integers");

    private static float[] Floats(JsonNode? n, string name) =>
        n is JsonArray a ? [.. a.Select(v => v?.GetValue<float>() ?? throw new ArgumentException($"{name} holds null"))] : throw new ArgumentException($"{name} is not a list of numbers");
}

/// <summary>A model rebuilt from a checkpoint: its description, and its parameters and buffers on a device.</summary>
/// <param name="Model">The architecture, input shape, normalization and class names.</param>
/// <param name="Params">The trained parameters.</param>
/// <param name="State">The buffers (BatchNorm running statistics).</param>
public sealed record LoadedModel(SavedModel Model, ParamTree Params, ParamTree State) : IDisposable
{
    /// <summary>Frees the parameters and buffers.</summary>
    public void Dispose()
    {
        Params.Dispose();
        State.Dispose();
    }
}

/// <summary>Loads a model from a checkpoint that carries it (see <see cref="SavedModel"/>), with no code that rebuilds the architecture.</summary>
public static class ModelFile
{
    /// <summary>
    /// Rebuilds the checkpoint's model and loads its parameters and buffers onto <paramref name="device"/>.
    /// </summary>
    /// <param name="path">A checkpoint written by <see cref="CheckpointCallback"/> or <see cref="Checkpoint.Save"/> with a <see cref="TrainingCheckpoint.Model"/>.</param>
    /// <param name="device">Where the weights go.</param>
    /// <param name="averaged">Load the averaged weights (a run with EMA or SWA) instead of the trained ones.</param>
    /// <returns>The loaded model; dispose it to free the weights.</returns>
    /// <exception cref="CheckpointFormatException">The file is not a checkpoint, or it does not carry its model (written by an older version or with a custom layer).</exception>
    /// <exception cref="CheckpointMismatchException">The stored weights do not match the stored architecture.</exception>
    public static LoadedModel Load(string path, Device device, bool averaged = false)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(device);
        var file = SafeTensors.Load(path);
        var model = Read(file);
        var (p, s) = model.Layer.Init(device, model.InputShape, Rng.Create(0));
        ParamLayout pl = p.Layout, sl = s.Layout;
        p.Dispose();
        s.Dispose();
        var c = Checkpoint.Decode(file, device, expectedParams: pl, expectedState: sl);
        if (averaged && c.Averaged is null)
        {
            c.Dispose();
            throw new ArgumentException($"ModelFile.Load: {path} holds no averaged weights (its run had no EMA or SWA); load it with averaged false.", nameof(averaged));
        }

        if (averaged && c.Averaged is { } avg)
        {
            c.Params.Dispose();
            c.State.Dispose();
            return new LoadedModel(model, avg.Params, avg.State);
        }

        c.Averaged?.Dispose();
        return new LoadedModel(model, c.Params, c.State);
    }

    /// <summary>The model a checkpoint file carries.</summary>
    /// <param name="file">A loaded safetensors file.</param>
    /// <returns>The saved model.</returns>
    /// <exception cref="CheckpointFormatException">The file is not a checkpoint or does not carry its model.</exception>
    public static SavedModel Read(SafeTensorsFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        if (!file.Metadata.TryGetValue(Checkpoint.MetadataKey, out var text))
            throw new CheckpointFormatException(file.Source, $"no \"{Checkpoint.MetadataKey}\" metadata: a safetensors file, but not an IlgpuTrain checkpoint.");
        JsonObject? meta;
        try
        {
            meta = JsonNode.Parse(text) as JsonObject;
        }
        catch (System.Text.Json.JsonException)
        {
            meta = null;
        }

        if (meta is null)
            throw new CheckpointFormatException(file.Source, $"the \"{Checkpoint.MetadataKey}\" metadata is not a JSON object.");
        if (meta[SavedModel.MetadataMember] is null)
        {
            throw new CheckpointFormatException(
                file.Source,
                $"the checkpoint does not carry its model (no \"{SavedModel.MetadataMember}\" metadata: it was written by an older IlgpuTrain or the model has a custom layer); rebuild the model in code and load the weights with Checkpoint.Load, or retrain to write a checkpoint that carries it.");
        }

        return SavedModel.FromNode(meta[SavedModel.MetadataMember], file.Source);
    }
}
