using System.Text.Json.Nodes;

namespace IlgpuTrain.Training;

/// <summary>
/// What a checkpoint needs to rebuild and use its model with no code: the architecture, the per-sample input shape,
/// the input normalization or feature standardization the model was trained with, the task its outputs serve, and
/// the names of its outputs and features.
/// </summary>
/// <remarks>
/// Checkpoints written before the task, output names and standardization were recorded load as a classifier with
/// no standardization, their class names as the output names.
/// </remarks>
/// <param name="Layer">The model.</param>
/// <param name="InputShape">Per-sample input shape, e.g. (1, 28, 28).</param>
public sealed record SavedModel(Layer Layer, Shape InputShape)
{
    /// <summary>The metadata member that holds it (beside <see cref="Checkpoint.MetadataKey"/>'s other members).</summary>
    public const string MetadataMember = "architecture";

    /// <summary>Per-channel normalization applied to raw inputs before the model (null: inputs go in as they are).</summary>
    public Normalization? Normalization { get; init; }

    /// <summary>
    /// Per-feature standardization applied to raw inputs before the model, as the csv data set's training rows were
    /// standardized (null: none). Applied after <see cref="Normalization"/>, over each sample's flattened values.
    /// </summary>
    public Standardization? Standardization { get; init; }

    /// <summary>The task the outputs serve (<see cref="ModelTask.Classification"/> unless recorded otherwise).</summary>
    public ModelTask Task { get; init; } = ModelTask.Classification;

    /// <summary>
    /// The name of each output, in output order: the class names of a classifier, the label names of a multi-label
    /// model, the target names of a regression model (null when unknown).
    /// </summary>
    public IReadOnlyList<string>? OutputNames { get; init; }

    /// <summary>The class names of a classifier: another name for <see cref="OutputNames"/>.</summary>
    public IReadOnlyList<string>? ClassNames
    {
        get => OutputNames;
        init => OutputNames = value;
    }

    /// <summary>The name of each input feature of a tabular model, in sample order (null when unknown).</summary>
    public IReadOnlyList<string>? FeatureNames { get; init; }

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
    /// <returns>{"layer": ..., "input_shape": [...], "normalization": {"mean": [...], "std": [...]}, "task": {...},
    /// "output_names": [...], "standardization": {"mean": [...], "std": [...]}, "feature_names": [...]}.</returns>
    public JsonObject ToNode() => new()
    {
        ["layer"] = LayerJson.ToNode(Layer),
        ["input_shape"] = new JsonArray([.. InputShape.Select(d => (JsonNode)d)]),
        ["normalization"] = Normalization is null ? null : new JsonObject
        {
            ["mean"] = new JsonArray([.. Normalization.Mean.Select(v => (JsonNode)v)]),
            ["std"] = new JsonArray([.. Normalization.Std.Select(v => (JsonNode)v)]),
        },
        ["task"] = Task.ToNode(),
        ["output_names"] = Strings(OutputNames),
        ["standardization"] = Standardization is null ? null : new JsonObject
        {
            ["mean"] = new JsonArray([.. Standardization.Mean.Select(v => (JsonNode)v)]),
            ["std"] = new JsonArray([.. Standardization.Std.Select(v => (JsonNode)v)]),
        },
        ["feature_names"] = Strings(FeatureNames),
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
            // Older checkpoints: a classifier with its class names, no standardization.
            var task = o["task"] is { } t ? ModelTask.FromNode(t) : ModelTask.Classification;
            var names = o["output_names"] is { } on ? Names(on, "output_names") : o["class_names"] is { } cn ? Names(cn, "class_names") : null;
            Standardization? scaler = o["standardization"] is JsonObject z
                ? new Standardization(Doubles(z["mean"], "standardization.mean"), Doubles(z["std"], "standardization.std"))
                : null;
            var features = o["feature_names"] is { } fn ? Names(fn, "feature_names") : null;
            var saved = new SavedModel(layer, shape) { Normalization = norm, Task = task, OutputNames = names, Standardization = scaler, FeatureNames = features };
            saved.Validate();
            return saved;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException)
        {
            throw new CheckpointFormatException(source, $"the stored model (metadata \"{MetadataMember}\") is not valid: {e.Message}");
        }
    }

    // What FromNode checks beyond the JSON's types: the counts agree with the shapes, the statistics are usable.
    private void Validate()
    {
        var outputShape = Layer.OutputShape(InputShape);
        long inputs = InputShape.Length, outputs = Task.Kind == ModelTaskKind.LanguageModel ? outputShape[^1] : outputShape.Length;
        if (Task.Thresholds is { } th && th.Count != outputs)
            throw new ArgumentException($"task.thresholds has {th.Count} values for {outputs} outputs");
        if (Task.Kind != ModelTaskKind.Classification && OutputNames is { } names && names.Count != outputs)
            throw new ArgumentException($"output_names has {names.Count} names for {outputs} outputs");
        if (Standardization is { } z && (z.Mean.Count != inputs || z.Std.Count != inputs))
            throw new ArgumentException($"standardization has {z.Mean.Count} means and {z.Std.Count} standard deviations for {inputs} features");
        if (Standardization is { } s && (s.Mean.Any(v => !double.IsFinite(v)) || s.Std.Any(v => !(v > 0 && double.IsFinite(v)))))
            throw new ArgumentException("standardization holds a mean that is not finite or a standard deviation that is not positive and finite");
        if (FeatureNames is { } f && f.Count != inputs)
            throw new ArgumentException($"feature_names has {f.Count} names for {inputs} features");
    }

    private static JsonArray? Strings(IReadOnlyList<string>? names) => names is null ? null : new JsonArray([.. names.Select(v => (JsonNode)v)]);

    private static string[] Names(JsonNode n, string name) =>
        n is JsonArray a ? [.. a.Select((v, i) => v?.GetValue<string>() ?? throw new ArgumentException($"{name}[{i}] is null"))] : throw new ArgumentException($"{name} is not a list of names");

    private static double[] Doubles(JsonNode? n, string name) =>
        n is JsonArray a ? [.. a.Select(v => v?.GetValue<double>() ?? throw new ArgumentException($"{name} holds null"))] : throw new ArgumentException($"{name} is not a list of numbers");

    private static int[] Ints(JsonNode? n, string name) =>
        n is JsonArray a ? [.. a.Select(v => v?.GetValue<int>() ?? throw new ArgumentException($"{name} holds null"))] : throw new ArgumentException($"{name} is not a list of integers");

    private static float[] Floats(JsonNode? n, string name) =>
        n is JsonArray a ? [.. a.Select(v => v?.GetValue<float>() ?? throw new ArgumentException($"{name} holds null"))] : throw new ArgumentException($"{name} is not a list of numbers");
}

/// <summary>What a model's outputs mean, as a checkpoint records it (see <see cref="ModelTask"/>).</summary>
public enum ModelTaskKind
{
    /// <summary>One logit per class; the prediction is the arg-max (<see cref="ClassificationTask"/>).</summary>
    Classification,

    /// <summary>One logit per independent yes/no label; a label is on when σ(logit) is above its threshold (<see cref="MultiLabelTask"/>).</summary>
    MultiLabel,

    /// <summary>One value per regression target, in the targets' own units (<see cref="RegressionTask"/>).</summary>
    Regression,

    /// <summary>A task of your own: only the raw outputs (<see cref="Predictor.Outputs"/>) are defined.</summary>
    Other,

    /// <summary>
    /// Next-token prediction (<see cref="LanguageModelTask"/>): (T, V) logits per sample; the output names are the
    /// vocabulary's V symbols, which <see cref="TextGenerator"/> samples from.
    /// </summary>
    LanguageModel,
}

/// <summary>
/// The task a model was trained for, as its checkpoint records it: what predictions mean, and for a
/// multi-label model the decision thresholds on σ(logit).
/// </summary>
/// <param name="Kind">Classification, multi-label, regression, or a task of your own.</param>
public sealed record ModelTask(ModelTaskKind Kind)
{
    /// <summary>A classifier's task (what checkpoints that do not record their task are taken to be).</summary>
    public static ModelTask Classification { get; } = new(ModelTaskKind.Classification);

    /// <summary>A regression task.</summary>
    public static ModelTask Regression { get; } = new(ModelTaskKind.Regression);

    /// <summary>The threshold on σ(logit) for every multi-label output (0.5), unless <see cref="Thresholds"/> is set.</summary>
    public float Threshold { get; init; } = 0.5f;

    /// <summary>One threshold on σ(logit) per multi-label output, or null to use <see cref="Threshold"/> for all.</summary>
    public IReadOnlyList<float>? Thresholds { get; init; }

    /// <summary>The task of a trainer's <paramref name="task"/>: the kind, and a multi-label task's thresholds.</summary>
    /// <param name="task">The training task.</param>
    /// <returns>Its record; <see cref="ModelTaskKind.Other"/> for a task of your own.</returns>
    public static ModelTask Of(ITrainingTask task)
    {
        ArgumentNullException.ThrowIfNull(task);
        return task switch
        {
            ClassificationTask => Classification,
            RegressionTask => Regression,
            MultiLabelTask m => new ModelTask(ModelTaskKind.MultiLabel) { Threshold = m.Threshold, Thresholds = m.Thresholds is null ? null : [.. m.Thresholds] },
            LanguageModelTask => new ModelTask(ModelTaskKind.LanguageModel),
            _ => new ModelTask(ModelTaskKind.Other),
        };
    }

    /// <summary>The threshold of multi-label output <paramref name="label"/>.</summary>
    /// <param name="label">The output's index.</param>
    /// <returns>Thresholds[label], else <see cref="Threshold"/>.</returns>
    public float ThresholdOf(int label) => Thresholds is { } t ? t[label] : Threshold;

    /// <summary>The name of <paramref name="kind"/> in checkpoints and on the command line: classification, multilabel, regression or other.</summary>
    /// <param name="kind">The kind.</param>
    /// <returns>The name.</returns>
    public static string NameOf(ModelTaskKind kind) => kind switch
    {
        ModelTaskKind.Classification => "classification",
        ModelTaskKind.MultiLabel => "multilabel",
        ModelTaskKind.Regression => "regression",
        ModelTaskKind.LanguageModel => "language-model",
        _ => "other",
    };

    /// <summary>The JSON object stored in a checkpoint.</summary>
    /// <returns>{"kind": ..., "threshold": ..., "thresholds": [...]} (the thresholds for a multi-label task only).</returns>
    public JsonObject ToNode()
    {
        var o = new JsonObject { ["kind"] = NameOf(Kind) };
        if (Kind == ModelTaskKind.MultiLabel)
        {
            o["threshold"] = Threshold;
            o["thresholds"] = Thresholds is null ? null : new JsonArray([.. Thresholds.Select(v => (JsonNode)v)]);
        }

        return o;
    }

    /// <summary>The task read back from <see cref="ToNode"/>'s object.</summary>
    /// <param name="node">The object.</param>
    /// <returns>The task.</returns>
    /// <exception cref="ArgumentException">The object is malformed (the message says what is wrong).</exception>
    public static ModelTask FromNode(JsonNode? node)
    {
        if (node is not JsonObject o)
            throw new ArgumentException("task is not an object");
        string kind = o["kind"]?.GetValue<string>() ?? throw new ArgumentException("task.kind is missing");
        var task = kind switch
        {
            "classification" => Classification,
            "regression" => Regression,
            "other" => new ModelTask(ModelTaskKind.Other),
            "language-model" => new ModelTask(ModelTaskKind.LanguageModel),
            "multilabel" => new ModelTask(ModelTaskKind.MultiLabel)
            {
                Threshold = o["threshold"]?.GetValue<float>() ?? 0.5f,
                Thresholds = o["thresholds"] is JsonArray a ? [.. a.Select(v => v?.GetValue<float>() ?? throw new ArgumentException("task.thresholds holds null"))] : null,
            },
            _ => throw new ArgumentException($"task.kind \"{kind}\" is not classification, multilabel, regression, language-model or other"),
        };
        if (!(task.Threshold > 0 && task.Threshold < 1) || (task.Thresholds?.Any(v => !(v > 0 && v < 1)) ?? false))
            throw new ArgumentException("a multi-label threshold is outside (0, 1)");
        return task;
    }
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
        return Load(SafeTensors.Load(path), device, averaged);
    }

    /// <summary>
    /// Rebuilds the model of an already read checkpoint file and loads its parameters and buffers onto <paramref name="device"/>.
    /// </summary>
    /// <param name="file">A checkpoint file (<see cref="SafeTensors.Load"/>) that carries its model (<see cref="Carries"/>).</param>
    /// <param name="device">Where the weights go.</param>
    /// <param name="averaged">Load the averaged weights (a run with EMA or SWA) instead of the trained ones.</param>
    /// <returns>The loaded model; dispose it to free the weights.</returns>
    /// <exception cref="CheckpointFormatException">The file is not a checkpoint, or it does not carry its model.</exception>
    /// <exception cref="CheckpointMismatchException">The stored weights do not match the stored architecture.</exception>
    public static LoadedModel Load(SafeTensorsFile file, Device device, bool averaged = false)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(device);
        string path = file.Source;
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

    /// <summary>
    /// Whether a checkpoint file carries its model (written by this version's <see cref="CheckpointCallback"/> with a
    /// model whose layers are all built in), so that <see cref="Load(SafeTensorsFile, Device, bool)"/> needs no code and no data set.
    /// </summary>
    /// <param name="file">A loaded safetensors file.</param>
    /// <returns>True when its checkpoint metadata holds the model; false for older checkpoints and files that are not checkpoints.</returns>
    public static bool Carries(SafeTensorsFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        if (!file.Metadata.TryGetValue(Checkpoint.MetadataKey, out var text))
            return false;
        try
        {
            return JsonNode.Parse(text) is JsonObject meta && meta[SavedModel.MetadataMember] is not null;
        }
        catch (System.Text.Json.JsonException)
        {
            return false;
        }
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
