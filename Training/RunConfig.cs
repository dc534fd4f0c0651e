using System.Text.Json;

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

    /// <summary>The folder of the data set's files, or null for the data set's default folder.</summary>
    public string? DataDir { get; init; }

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

    /// <summary>On-device augmentation: none, or a comma list of flip, crop, rotate, jitter (see <see cref="Augmentation"/>).</summary>
    public string Augment { get; init; } = "none";

    /// <summary>FP16 activations and GEMM operands with fp32 master weights and dynamic loss scaling.</summary>
    public bool MixedPrecision { get; init; }

    /// <summary>Batches per optimizer update (gradient accumulation; default 1).</summary>
    public int Accumulate { get; init; } = 1;

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

    /// <summary>The dropout the model gets: <see cref="Dropout"/>, else the model's default.</summary>
    public float EffectiveDropout => Dropout ?? Models.DefaultDropout(Model);

    /// <summary>
    /// The augmentation <see cref="Augment"/> names: flip, crop with 4 pixels of padding on 32x32
    /// images and 2 on 28x28, rotation by up to 10 degrees, brightness and contrast jitter 0.2.
    /// </summary>
    /// <param name="side">The image side (the last dimension of a sample).</param>
    /// <returns>The augmentation; <see cref="Training.Augmentation.None"/> for none.</returns>
    /// <exception cref="ArgumentException"><see cref="Augment"/> names something else.</exception>
    public Augmentation Augmentation(int side)
    {
        var parts = Augment.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).ToHashSet();
        if (parts.FirstOrDefault(p => p is not ("none" or "flip" or "crop" or "rotate" or "jitter")) is { } unknown)
            throw new ArgumentException($"RunConfig.Augment {Augment}: unknown augmentation \"{unknown}\"; use none or a comma list of flip, crop, rotate, jitter.");
        if (parts.Count == 0 || parts.SetEquals(["none"]))
            return Training.Augmentation.None;
        return new Augmentation(
            HorizontalFlip: parts.Contains("flip"),
            CropPadding: parts.Contains("crop") ? (side >= 32 ? 4 : 2) : 0,
            RotationDegrees: parts.Contains("rotate") ? 10 : 0,
            Brightness: parts.Contains("jitter") ? 0.2f : 0,
            Contrast: parts.Contains("jitter") ? 0.2f : 0);
    }

    /// <summary>The configuration as one line of JSON, as checkpoints store it.</summary>
    /// <returns>The JSON text.</returns>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Reads a configuration written by <see cref="ToJson"/>.</summary>
    /// <param name="json">The JSON text.</param>
    /// <returns>The configuration.</returns>
    /// <exception cref="InvalidDataException">The JSON is empty (null).</exception>
    public static RunConfig FromJson(string json) =>
        JsonSerializer.Deserialize<RunConfig>(json, JsonOptions) ?? throw new InvalidDataException("The checkpoint's run configuration is empty.");

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = false };
}
