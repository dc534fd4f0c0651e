using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace IlgpuTrain.Training;

/// <summary>
/// Every choice of a training run, as names and numbers: the model, data set, optimizer recipe,
/// schedule, batch, regularization, precision and where the outputs go. <see cref="Recipes"/> turns it
/// into a model, an optimizer and a <see cref="Trainer"/>; <see cref="ToJson"/> stores it in a
/// checkpoint's metadata, so a checkpoint can be evaluated or resumed with no code
/// (<see cref="Resuming"/>). <c>ilgpu-train train</c> fills one from its options; the defaults are
/// the PyTorch peer's Fashion-MNIST MLP run.
/// </summary>
/// <example>
/// <code>
/// var config = new RunConfig { Model = "cnn", Optimizer = "momentum", LearningRate = 0.05, Schedule = "cosine", Epochs = 10 };
/// var data = Recipes.LoadData(config);
/// using var device = Recipes.CreateDevice(config);
/// var (trainer, _, _) = Recipes.BuildTrainer(config, device, data.Train);
/// var result = trainer.Fit(data.Train, data.Validation);
/// </code>
/// </example>
public sealed record RunConfig
{
    /// <summary>The model, one of <see cref="Models.Names"/> (default mlp).</summary>
    public string Model { get; init; } = "mlp";

    /// <summary>The data set, one of <see cref="Recipes.Datasets"/> (default fashion-mnist).</summary>
    public string Dataset { get; init; } = "fashion-mnist";

    /// <summary>The folder of the data set's files, or null for the data set's default folder; the CSV file for the csv data set (image-folder has no default folder: it needs the folder).</summary>
    public string? DataDir { get; init; }

    /// <summary>What to train for, one of <see cref="Recipes.Tasks"/> (default classification): see <see cref="Recipes.Task"/>.</summary>
    public string Task { get; init; } = "classification";

    /// <summary>The regression loss (mse, huber, l1, smooth-l1), or null for mse; classification and multilabel have theirs.</summary>
    public string? Loss { get; init; }

    /// <summary>Huber's delta and smooth-l1's beta (default 1).</summary>
    public double Delta { get; init; } = 1.0;

    /// <summary>The csv data set's target columns, comma-separated: the values of regression, the 0/1 labels of multilabel, or the one class column of classification.</summary>
    public string? Target { get; init; }

    /// <summary>The csv data set's feature columns, comma-separated, or null for every column that is not a target.</summary>
    public string? Features { get; init; }

    /// <summary>Standardize the csv data set's features with the training split's mean and standard deviation (default true).</summary>
    public bool Standardize { get; init; } = true;
    /// <summary>
    /// For image-folder: resize the shorter side to N then center-crop N × N (torchvision's
    /// Resize(N), CenterCrop(N)); 0 (the default) keeps the images' size, which must then be one.
    /// </summary>
    public int ImageSize { get; init; }

    /// <summary>The text data set and the transformer model: tokens per sample, the model's context (default 128).</summary>
    public int BlockSize { get; init; } = 128;

    /// <summary>The transformer model's width D (default 128); its feed-forward width is 4 D.</summary>
    public int ModelDim { get; init; } = 128;

    /// <summary>The transformer model's blocks (default 4).</summary>
    public int Layers { get; init; } = 4;

    /// <summary>The transformer model's attention heads (default 4); <see cref="ModelDim"/> must be a multiple.</summary>
    public int Heads { get; init; } = 4;

    /// <summary>Threads that gather batches (<see cref="TrainerOptions.Workers"/>), or null for the default; the batches are the same whatever the number.</summary>
    public int? Workers { get; init; }

    /// <summary>The optimizer, one of <see cref="Recipes.Optimizers"/> (default adamw).</summary>
    public string Optimizer { get; init; } = "adamw";

    /// <summary>The peak learning rate (default 3e-3).</summary>
    public double LearningRate { get; init; } = 3e-3;

    /// <summary>Weight decay: decoupled for adamw, coupled L2 otherwise (default 0.01).</summary>
    public double WeightDecay { get; init; } = 0.01;

    /// <summary>Momentum of momentum and Nesterov SGD (default 0.9); one-cycle cycles it instead.</summary>
    public double Momentum { get; init; } = 0.9;

    /// <summary>The learning-rate schedule, one of <see cref="Recipes.Schedules"/> (default onecycle).</summary>
    public string Schedule { get; init; } = "onecycle";

    /// <summary>Warmup updates of warmup-cosine and wsd; 0 for 5% of the run.</summary>
    public int WarmupSteps { get; init; }

    /// <summary>Epochs (default 5).</summary>
    public int Epochs { get; init; } = 5;

    /// <summary>Samples per batch (default 128).</summary>
    public int BatchSize { get; init; } = 128;

    /// <summary>Label smoothing eps of the cross-entropy (default 0.1).</summary>
    public float LabelSmoothing { get; init; } = 0.1f;

    /// <summary>Dropout probability, or null for the model's default (<see cref="Models.DefaultDropout"/>).</summary>
    public float? Dropout { get; init; }

    /// <summary>On-device augmentation and mixing: none, or a comma list of <see cref="AugmentNames"/>, each optionally name=value (see <see cref="Augmentation(int, Normalization?, Normalization?)"/> and <see cref="Mixing"/>).</summary>
    public string Augment { get; init; } = "none";

    /// <summary>FP16 activations and GEMM operands with fp32 master weights and dynamic loss scaling.</summary>
    public bool MixedPrecision { get; init; }

    /// <summary>
    /// Data-parallel training across the ranks of an <c>mpirun -np N</c> launch (default false):
    /// <see cref="BatchSize"/> is per rank, so the global batch is N × BatchSize.
    /// </summary>
    public bool Distributed { get; init; }

    /// <summary>Synchronized batch normalization in a distributed run (statistics over every rank's batch; <see cref="Distributed.DistributedOptions.SyncBatchNorm"/>); default false.</summary>
    public bool SyncBatchNorm { get; init; }

    /// <summary>
    /// In a distributed run, start each gradient bucket's all-reduce during the backward as soon as
    /// its gradients are final (<see cref="Distributed.DistributedOptions.OverlapBackward"/>); default true.
    /// False: every bucket after the backward (the same gradients).
    /// </summary>
    public bool OverlapBackward { get; init; } = true;

    /// <summary>The gradient bucket size of a distributed run in MiB (<see cref="Distributed.DistributedOptions.BucketBytes"/>, DDP's bucket_cap_mb); default 25.</summary>
    public double BucketMb { get; init; } = 25;

    /// <summary>The collective engine of a distributed run: auto (NCCL when every rank trains on CUDA, else MPI), mpi or nccl.</summary>
    public string Backend { get; init; } = "auto";

    /// <summary>Seconds one collective of a distributed run may take before the job is aborted with a message naming the rank and the collective (default 300).</summary>
    public double CollectiveTimeout { get; init; } = 300;

    /// <summary>Batches per optimizer update (gradient accumulation; default 1).</summary>
    public int Accumulate { get; init; } = 1;

    /// <summary>
    /// Applies the linear scaling rule to <see cref="LearningRate"/> when the effective batch
    /// (<see cref="BatchSize"/> × <see cref="Accumulate"/>) differs from <see cref="BaseBatchSize"/>,
    /// with warmup (<see cref="ScaledLearningRate"/>; off by default).
    /// </summary>
    public bool ScaleLr { get; init; }

    /// <summary>The batch <see cref="LearningRate"/> was tuned for, the reference of <see cref="ScaleLr"/> (default 128, the default batch).</summary>
    public int BaseBatchSize { get; init; } = 128;

    /// <summary>Clip the global gradient norm at this value; 0 turns clipping off (default 1).</summary>
    public double Clip { get; init; } = 1.0;

    /// <summary>Early-stopping patience in epochs on val_loss, or -1 (the default) for none.</summary>
    public int EarlyStopping { get; init; } = -1;

    /// <summary>cpu, cuda or opencl, or null for $ILGPUTRAIN_DEVICE, else the best available.</summary>
    public string? Device { get; init; }

    /// <summary>Seed of initialization, shuffling, dropout and augmentation.</summary>
    public ulong Seed { get; init; }

    /// <summary>The folder of the run's metrics, plots and checkpoints (default runs/latest).</summary>
    public string Output { get; init; } = "runs/latest";

    /// <summary>Train on the first N samples only; 0 (the default) for all.</summary>
    public int TrainLimit { get; init; }

    /// <summary>Hold out N training samples for validation; 0 (the default) validates on the test split.</summary>
    public int ValSize { get; init; }

    /// <summary>Decay of an exponential moving average of the weights (<see cref="Optimizers.Ema"/>, timm's ModelEmaV3), or null (the default) for none.</summary>
    public double? Ema { get; init; }

    /// <summary>The epoch (from 1) from whose end stochastic weight averaging (<see cref="Swa"/>) starts, or 0 (the default) for none.</summary>
    public int SwaStart { get; init; }

    /// <summary>
    /// A safetensors file whose weights start the run instead of the seed's initialization (fine-tuning): a
    /// PyTorch state_dict (torchvision's names for resnet18/34/50) or an IlgpuTrain checkpoint; null (the default) for none.
    /// A head whose shape differs from the file's (a new number of classes) starts from initialization.
    /// </summary>
    public string? InitFrom { get; init; }

    /// <summary>With <see cref="InitFrom"/>: every model key must be in the file and every file key in the model (true, the default, as PyTorch's load_state_dict), or load what matches and list the rest (false).</summary>
    public bool InitStrict { get; init; } = true;

    /// <summary>With <see cref="InitFrom"/>: comma-separated globs of parameter paths that keep their initialization (file tensors for them are ignored), such as <c>fc.*</c>; null for none.</summary>
    public string? InitSkip { get; init; }

    /// <summary>
    /// Comma-separated globs of parameter paths that do not train (<c>*</c> within one path segment, <c>**</c> across, as
    /// <see cref="ParamFilter.Glob"/>), such as <c>conv1.*,bn1.*,layer1.**</c>: they get no gradient and no optimizer update,
    /// weight decay included; null (the default) trains every parameter.
    /// </summary>
    public string? Freeze { get; init; }

    /// <summary>The globs of a comma-separated list (<see cref="Freeze"/>, <see cref="InitSkip"/>), trimmed, empty entries dropped.</summary>
    /// <param name="list">The list, or null.</param>
    /// <returns>The globs; empty for null.</returns>
    public static string[] Globs(string? list) =>
        (list ?? string.Empty).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);

    /// <summary>The weight averaging of <see cref="Ema"/> or <see cref="SwaStart"/>, or null for none.</summary>
    /// <returns>An <see cref="Optimizers.Ema"/>, a <see cref="Swa"/> or null.</returns>
    public WeightAveraging? Averaging() =>
        Ema is { } decay ? new Ema(decay) : SwaStart > 0 ? new Swa(SwaStart) : null;

    /// <summary>The dropout the model gets: <see cref="Dropout"/>, else the model's default.</summary>
    public float EffectiveDropout => Dropout ?? Models.DefaultDropout(Model);

    /// <summary>The names <see cref="Augment"/> accepts, each optionally as name=value (see <see cref="Augmentation(int, Normalization?, Normalization?)"/>).</summary>
    public static IReadOnlyList<string> AugmentNames { get; } =
        ["flip", "vflip", "crop", "rotate", "jitter", "saturation", "hue", "resized-crop", "erasing", "mixup", "cutmix"];

    private static readonly HashSet<string> Valueless = ["flip", "vflip"];

    /// <summary>
    /// What is wrong with an <see cref="Augment"/> text ("none", or a comma list of
    /// <see cref="AugmentNames"/>, each optionally name=value), or null when it is valid.
    /// </summary>
    /// <param name="augment">The text.</param>
    /// <returns>The problem, or null.</returns>
    public static string? AugmentProblem(string? augment)
    {
        if (augment is null)
            return "it is missing";
        foreach (var part in augment.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (part == "none")
                continue;
            var (name, text) = part.IndexOf('=', StringComparison.Ordinal) is int eq and >= 0 ? (part[..eq].Trim(), part[(eq + 1)..].Trim()) : (part, null);
            if (!AugmentNames.Contains(name))
                return $"unknown augmentation \"{name}\"; use none or a comma list of {string.Join(", ", AugmentNames)} (each optionally name=value)";
            if (text is null)
                continue;
            if (Valueless.Contains(name))
                return $"{name} takes no value (got {part})";
            if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || !double.IsFinite(v) || !(v > 0))
                return $"{part}: the value must be a positive number";
            string? range = name switch
            {
                "crop" when v != Math.Floor(v) || v > 64 => "crop=P takes a whole number of pixels of padding, 1 to 64",
                "rotate" when v > 180 => "rotate=D takes degrees up to 180",
                "jitter" or "saturation" when v > 10 => $"{name}=S takes a strength up to 10 (factors in [max(0, 1 - S), 1 + S])",
                "hue" when v > 0.5 => "hue=H takes a shift up to 0.5",
                "resized-crop" when v > 1 => "resized-crop=S takes the smallest area fraction, up to 1",
                "erasing" when v > 1 => "erasing=P takes a probability, up to 1",
                "mixup" or "cutmix" when v > 100 => $"{name}=A takes a Beta concentration up to 100",
                _ => null,
            };
            if (range is not null)
                return $"{part}: {range}";
        }

        return null;
    }

    /// <summary>
    /// The augmentation <see cref="Augment"/> names, with these defaults (name=value overrides the
    /// number): flip and vflip (p 0.5); crop with 4 pixels of padding on 32x32 images and 2 on
    /// 28x28 (crop=P); rotation by up to 10 degrees (rotate=D); brightness and contrast jitter 0.2
    /// (jitter=S); saturation 0.2 (saturation=S); hue 0.1 (hue=H); RandomResizedCrop to the same
    /// size with scale [0.08, 1] (resized-crop=smallest scale); RandomErasing with p 0.5
    /// (erasing=P). mixup and cutmix are <see cref="Mixing"/>.
    /// </summary>
    /// <remarks>
    /// With <paramref name="normalizedWith"/> (the statistics the data set was normalized with when
    /// loaded) and any colour op on, the colour jitter runs on pixels as torchvision's ColorJitter
    /// (random order per sample, clamped to [0, 1]) between x std + mean and Normalize; without it,
    /// it runs on the normalized values in a fixed order without clamping, and hue is refused.
    /// </remarks>
    /// <param name="side">The image side (the last dimension of a sample).</param>
    /// <param name="normalizedWith">How the data set was normalized, or null when unknown.</param>
    /// <param name="pixelsNormalizeWith">For a data set of pixels in [0, 1] (image-folder): the Normalize that
    /// the pipeline applies on the device, in training and evaluation alike, after the colour jitter (which then
    /// runs as torchvision's, clamped).</param>
    /// <returns>The augmentation; <see cref="Training.Augmentation.None"/> for none.</returns>
    /// <exception cref="ArgumentException"><see cref="Augment"/> names something else or has a bad value.</exception>
    public Augmentation Augmentation(int side, Normalization? normalizedWith = null, Normalization? pixelsNormalizeWith = null)
    {
        var parts = ParseAugment();
        if (parts.Count == 0)
            return pixelsNormalizeWith is null ? Training.Augmentation.None : new Augmentation { Normalize = pixelsNormalizeWith };
        float Get(string name, float fallback) => parts.TryGetValue(name, out var v) ? (float)(v ?? fallback) : 0f;
        var a = new Augmentation(
            HorizontalFlip: parts.ContainsKey("flip"),
            CropPadding: (int)Get("crop", side >= 32 ? 4 : 2),
            RotationDegrees: Get("rotate", 10),
            Brightness: Get("jitter", 0.2f),
            Contrast: Get("jitter", 0.2f))
        {
            VerticalFlip = parts.ContainsKey("vflip"),
            Saturation = Get("saturation", 0.2f),
            Hue = Get("hue", 0.1f),
            ResizedCrop = parts.ContainsKey("resized-crop") ? new RandomResizedCrop(ScaleLo: Get("resized-crop", 0.08f)) : null,
            Erasing = parts.ContainsKey("erasing") ? new RandomErasing(P: Get("erasing", 0.5f)) : null,
        };
        bool colour = a.Brightness != 0 || a.Contrast != 0 || a.Saturation != 0 || a.Hue != 0;
        if (pixelsNormalizeWith is not null)
            a = a with { Normalize = pixelsNormalizeWith };
        else if (colour && normalizedWith is not null)
            a = a with { Normalize = normalizedWith, NormalizedInput = true };
        else if (a.Hue != 0)
            throw new ArgumentException($"RunConfig.Augment {Augment}: hue works on pixel values, but the statistics this data set was normalized with are unknown; drop hue.");
        return a;
    }

    /// <summary>The mixing <see cref="Augment"/> names: mixup (alpha 1.0, mixup=A) and cutmix (alpha 1.0, cutmix=A), torchvision's defaults.</summary>
    /// <returns>The mixing; <see cref="Training.Mixing.None"/> when neither is named.</returns>
    /// <exception cref="ArgumentException"><see cref="Augment"/> names something else or has a bad value.</exception>
    public Mixing Mixing()
    {
        var parts = ParseAugment();
        float Alpha(string name) => parts.TryGetValue(name, out var v) ? (float)(v ?? 1.0) : 0f;
        return new Mixing(Alpha("mixup"), Alpha("cutmix"));
    }

    private Dictionary<string, double?> ParseAugment()
    {
        if (AugmentProblem(Augment) is { } problem)
            throw new ArgumentException($"RunConfig.Augment {Augment}: {problem}.");
        var parts = new Dictionary<string, double?>();
        foreach (var part in Augment.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (part == "none")
                continue;
            int eq = part.IndexOf('=', StringComparison.Ordinal);
            parts[eq >= 0 ? part[..eq].Trim() : part] = eq >= 0 ? double.Parse(part[(eq + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture) : null;
        }

        return parts;
    }

    /// <summary>The configuration as one line of JSON, as checkpoints store it.</summary>
    /// <returns>The JSON text.</returns>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Reads a configuration written by <see cref="ToJson"/>, checked against <see cref="Problem"/>'s schema.</summary>
    /// <param name="json">The JSON text.</param>
    /// <returns>The configuration.</returns>
    /// <exception cref="InvalidDataException">The JSON is not an object of fields of the right types and ranges; the message names the field, its value and what is allowed.</exception>
    public static RunConfig FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        return Decode(json, out string? problem) ?? throw new InvalidDataException($"The run configuration is not valid: {problem}");
    }

    /// <summary>Parses and validates a stored configuration: the JSON must be an object, each known field of its JSON type, and the values in range.</summary>
    /// <param name="json">The JSON text.</param>
    /// <param name="problem">Why it is not valid (naming the field, its value and what is allowed), or null.</param>
    /// <returns>The configuration, or null when it is not valid.</returns>
    public static RunConfig? Decode(string json, out string? problem)
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json);
        }
        catch (JsonException e)
        {
            problem = $"it is not valid JSON ({e.Message})";
            return null;
        }

        if (node is not JsonObject obj)
        {
            problem = $"it is {Show(node)}; allowed: a JSON object of the run's options";
            return null;
        }

        foreach (var (name, value) in obj)
        {
            if (!Types.TryGetValue(name, out var type))
                continue;
            if (!Fits(value, type))
            {
                problem = $"field \"{name}\" is {Show(value)}; allowed: {type.Text}";
                return null;
            }
        }

        RunConfig? config;
        try
        {
            config = obj.Deserialize<RunConfig>(JsonOptions);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or OverflowException)
        {
            problem = $"it does not read as a run configuration ({e.Message})";
            return null;
        }

        problem = config is null ? "it is null; allowed: a JSON object of the run's options" : config.Problem();
        return problem is null ? config : null;
    }

    /// <summary>
    /// The first value out of range, as "field \"BatchSize\" is 0; allowed: an integer from 1 to 65536", or null when every field is valid.
    /// </summary>
    /// <returns>The problem, or null.</returns>
    public string? Problem()
    {
        static string F(double v) => v.ToString("R", CultureInfo.InvariantCulture);
        string? Check(bool ok, string field, string value, string allowed) => ok ? null : $"field \"{field}\" is {value}; allowed: {allowed}";
        string Quote(string? v) => v is null ? "null" : $"\"{v}\"";
        return Check(Model is not null && Models.Names.Contains(Model), nameof(Model), Quote(Model), string.Join(", ", Models.Names))
            ?? Check(Dataset is not null && Recipes.Datasets.Contains(Dataset), nameof(Dataset), Quote(Dataset), string.Join(", ", Recipes.Datasets))
            ?? Check(Task is not null && Recipes.Tasks.Contains(Task), nameof(Task), Quote(Task), string.Join(", ", Recipes.Tasks))
            ?? Check(Task is not ("regression" or "multilabel") || Dataset == "csv", nameof(Task), Quote(Task), "classification on this data set; regression and multilabel train on the csv data set")
            ?? Check(Loss is null || (Task == "regression" && Recipes.RegressionLosses.Contains(Loss)), nameof(Loss), Quote(Loss), $"null, or for the regression task one of {string.Join(", ", Recipes.RegressionLosses)}")
            ?? Check(double.IsFinite(Delta) && Delta > 0, nameof(Delta), F(Delta), "a positive number")
            ?? Check(Dataset != "image-folder" || !string.IsNullOrEmpty(DataDir), nameof(DataDir), Quote(DataDir), "the image folder's path (image-folder has no default folder)")
            ?? Check(ImageSize is >= 0 and <= MaxImageSize, nameof(ImageSize), $"{ImageSize}", $"0 (keep the images' size) or a side from 1 to {MaxImageSize} pixels")
            ?? Check(Workers is null or (>= 0 and <= DataLoader.MaxWorkers), nameof(Workers), Workers is { } w ? $"{w}" : "null", $"null (the default) or an integer from 0 to {DataLoader.MaxWorkers}")
            ?? Check(Optimizer is not null && Recipes.Optimizers.Contains(Optimizer), nameof(Optimizer), Quote(Optimizer), string.Join(", ", Recipes.Optimizers))
            ?? Check(Schedule is not null && Recipes.Schedules.Contains(Schedule), nameof(Schedule), Quote(Schedule), string.Join(", ", Recipes.Schedules))
            ?? Check(double.IsFinite(LearningRate) && LearningRate > 0 && LearningRate <= 10, nameof(LearningRate), F(LearningRate), "a number in (0, 10]")
            ?? Check(double.IsFinite(WeightDecay) && WeightDecay >= 0 && WeightDecay < 1, nameof(WeightDecay), F(WeightDecay), "a number in [0, 1)")
            ?? Check(double.IsFinite(Momentum) && Momentum >= 0 && Momentum < 1, nameof(Momentum), F(Momentum), "a number in [0, 1)")
            ?? Check(WarmupSteps >= 0, nameof(WarmupSteps), $"{WarmupSteps}", "an integer of 0 or more")
            ?? Check(Epochs is >= 1 and <= 10000, nameof(Epochs), $"{Epochs}", "an integer from 1 to 10000")
            ?? Check(BatchSize is >= 1 and <= 65536, nameof(BatchSize), $"{BatchSize}", "an integer from 1 to 65536")
            ?? Check(float.IsFinite(LabelSmoothing) && LabelSmoothing >= 0 && LabelSmoothing < 1, nameof(LabelSmoothing), F(LabelSmoothing), "a number in [0, 1)")
            ?? Check(Dropout is null || (float.IsFinite(Dropout.Value) && Dropout >= 0 && Dropout < 1), nameof(Dropout), Dropout is { } d ? F(d) : "null", "null or a number in [0, 1)")
            ?? Check(AugmentProblem(Augment) is null, nameof(Augment), Quote(Augment), $"none or a comma list of {string.Join(", ", AugmentNames)}, each optionally name=value ({AugmentProblem(Augment)})")
            ?? Check(Accumulate is >= 1 and <= 1024, nameof(Accumulate), $"{Accumulate}", "an integer from 1 to 1024")
            ?? Check(BaseBatchSize is >= 1 and <= 65536, nameof(BaseBatchSize), $"{BaseBatchSize}", "an integer from 1 to 65536")
            ?? Check(double.IsFinite(Clip) && Clip >= 0, nameof(Clip), F(Clip), "0 (off) or a positive number")
            ?? Check(EarlyStopping >= -1, nameof(EarlyStopping), $"{EarlyStopping}", "-1 (off) or an integer of 0 or more")
            ?? Check(Device is null or "cpu" or "cpu-kernels" or "cuda" or "opencl", nameof(Device), Quote(Device), "null (the best available), cpu, cpu-kernels, cuda or opencl")
            ?? Check(!string.IsNullOrEmpty(Output), nameof(Output), Quote(Output), "a folder path")
            ?? Check(TrainLimit >= 0, nameof(TrainLimit), $"{TrainLimit}", "0 (all) or more samples")
            ?? Check(ValSize >= 0, nameof(ValSize), $"{ValSize}", "0 (the test split) or more samples")
            ?? Check(Ema is null || (Ema >= 0 && Ema <= 1), nameof(Ema), Ema is { } e ? F(e) : "null", "null (off) or a decay in [0, 1]")
            ?? Check(SwaStart >= 0 && SwaStart <= Epochs, nameof(SwaStart), $"{SwaStart}", $"0 (off) or an epoch from 1 to Epochs ({Epochs})")
            ?? Check(Ema is null || SwaStart == 0, nameof(SwaStart), $"{SwaStart}", "0 when Ema is set (one weight averaging per run)")
            ?? Check(BlockSize is >= 2 and <= 8192, nameof(BlockSize), $"{BlockSize}", "an integer from 2 to 8192")
            ?? Check(ModelDim is >= 1 and <= 16384, nameof(ModelDim), $"{ModelDim}", "an integer from 1 to 16384")
            ?? Check(Layers is >= 0 and <= 256, nameof(Layers), $"{Layers}", "an integer from 0 to 256")
            ?? Check(Heads >= 1 && ModelDim % Heads == 0, nameof(Heads), $"{Heads}", $"a divisor of ModelDim ({ModelDim})")
            ?? Check((Model == "transformer") == (Dataset == "text"), nameof(Model), Quote(Model), "transformer exactly when Dataset is text (a language model on a text file)")
            ?? Check(InitFrom is null || InitFrom.Length > 0, nameof(InitFrom), Quote(InitFrom), "null or a safetensors file's path")
            ?? Check(InitSkip is null || InitFrom is not null, nameof(InitSkip), Quote(InitSkip), "null when InitFrom is null (it names keys not to load)")
            ?? Check(InitStrict || InitFrom is not null, nameof(InitStrict), "false", "true when InitFrom is null (it says how to load)")
            ?? Check(Freeze is null || Globs(Freeze).Length > 0, nameof(Freeze), Quote(Freeze), "null or comma-separated parameter globs such as \"conv1.*,layer1.**\"");
    }

    /// <summary>The largest <see cref="ImageSize"/> (4096).</summary>
    public const int MaxImageSize = 4096;

    private enum JsonType
    {
        String,
        NullableString,
        Number,
        NullableNumber,
        Int,
        NullableInt,
        UInt64,
        Bool,
    }

    private static readonly Dictionary<string, (JsonType Type, string Text)> Types = new(StringComparer.Ordinal)
    {
        [nameof(Model)] = (JsonType.String, "a string"),
        [nameof(Dataset)] = (JsonType.String, "a string"),
        [nameof(DataDir)] = (JsonType.NullableString, "a string or null"),
        [nameof(Task)] = (JsonType.String, "a string"),
        [nameof(Loss)] = (JsonType.NullableString, "a string or null"),
        [nameof(Delta)] = (JsonType.Number, "a number"),
        [nameof(Target)] = (JsonType.NullableString, "a string or null"),
        [nameof(Features)] = (JsonType.NullableString, "a string or null"),
        [nameof(Standardize)] = (JsonType.Bool, "true or false"),
        [nameof(ImageSize)] = (JsonType.Int, "a 32-bit integer"),
        [nameof(Workers)] = (JsonType.NullableInt, "a 32-bit integer or null"),
        [nameof(Optimizer)] = (JsonType.String, "a string"),
        [nameof(LearningRate)] = (JsonType.Number, "a number"),
        [nameof(WeightDecay)] = (JsonType.Number, "a number"),
        [nameof(Momentum)] = (JsonType.Number, "a number"),
        [nameof(Schedule)] = (JsonType.String, "a string"),
        [nameof(WarmupSteps)] = (JsonType.Int, "a 32-bit integer"),
        [nameof(Epochs)] = (JsonType.Int, "a 32-bit integer"),
        [nameof(BatchSize)] = (JsonType.Int, "a 32-bit integer"),
        [nameof(LabelSmoothing)] = (JsonType.Number, "a number"),
        [nameof(Dropout)] = (JsonType.NullableNumber, "a number or null"),
        [nameof(Augment)] = (JsonType.String, "a string"),
        [nameof(MixedPrecision)] = (JsonType.Bool, "true or false"),
        [nameof(Distributed)] = (JsonType.Bool, "true or false"),
        [nameof(Backend)] = (JsonType.String, "a string"),
        [nameof(SyncBatchNorm)] = (JsonType.Bool, "true or false"),
        [nameof(OverlapBackward)] = (JsonType.Bool, "true or false"),
        [nameof(BucketMb)] = (JsonType.Number, "a number"),
        [nameof(CollectiveTimeout)] = (JsonType.Number, "a number"),
        [nameof(Accumulate)] = (JsonType.Int, "a 32-bit integer"),
        [nameof(ScaleLr)] = (JsonType.Bool, "true or false"),
        [nameof(BaseBatchSize)] = (JsonType.Int, "a 32-bit integer"),
        [nameof(Clip)] = (JsonType.Number, "a number"),
        [nameof(EarlyStopping)] = (JsonType.Int, "a 32-bit integer"),
        [nameof(Device)] = (JsonType.NullableString, "a string or null"),
        [nameof(Seed)] = (JsonType.UInt64, "an integer from 0 to 2^64 - 1"),
        [nameof(Output)] = (JsonType.String, "a string"),
        [nameof(TrainLimit)] = (JsonType.Int, "a 32-bit integer"),
        [nameof(ValSize)] = (JsonType.Int, "a 32-bit integer"),
        [nameof(Ema)] = (JsonType.NullableNumber, "a number or null"),
        [nameof(SwaStart)] = (JsonType.Int, "a 32-bit integer"),
        [nameof(BlockSize)] = (JsonType.Int, "a 32-bit integer"),
        [nameof(ModelDim)] = (JsonType.Int, "a 32-bit integer"),
        [nameof(Layers)] = (JsonType.Int, "a 32-bit integer"),
        [nameof(Heads)] = (JsonType.Int, "a 32-bit integer"),
        [nameof(InitFrom)] = (JsonType.NullableString, "a string or null"),
        [nameof(InitStrict)] = (JsonType.Bool, "true or false"),
        [nameof(InitSkip)] = (JsonType.NullableString, "a string or null"),
        [nameof(Freeze)] = (JsonType.NullableString, "a string or null"),
    };

    private static bool Fits(JsonNode? value, (JsonType Type, string Text) type)
    {
        var kind = value?.GetValueKind() ?? JsonValueKind.Null;
        return type.Type switch
        {
            JsonType.String => kind == JsonValueKind.String,
            JsonType.NullableString => kind is JsonValueKind.String or JsonValueKind.Null,
            JsonType.Number => kind == JsonValueKind.Number && value!.AsValue().TryGetValue<double>(out double d) && double.IsFinite(d),
            JsonType.NullableNumber => kind == JsonValueKind.Null || (kind == JsonValueKind.Number && value!.AsValue().TryGetValue<float>(out float f) && float.IsFinite(f)),
            JsonType.Int => kind == JsonValueKind.Number && value!.AsValue().TryGetValue<int>(out _),
            JsonType.NullableInt => kind == JsonValueKind.Null || (kind == JsonValueKind.Number && value!.AsValue().TryGetValue<int>(out _)),
            JsonType.UInt64 => kind == JsonValueKind.Number && value!.AsValue().TryGetValue<ulong>(out _),
            _ => kind is JsonValueKind.True or JsonValueKind.False,
        };
    }

    private static string Show(JsonNode? node)
    {
        string text = node?.ToJsonString() ?? "null";
        return text.Length > 60 ? text[..60] + "..." : text;
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = false };
}
