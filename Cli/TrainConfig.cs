using System.Globalization;
using System.Text.Json;
using IlgpuTrain.Training;

namespace IlgpuTrain.Cli;

/// <summary>
/// Every choice of an <c>ilgpu-train train</c> run. Stored in checkpoints, so <c>evaluate</c> and
/// <c>--resume</c> rebuild the same model and optimizer.
/// </summary>
internal sealed record TrainConfig
{
    public string Model { get; init; } = "mlp";

    public string Dataset { get; init; } = "fashion-mnist";

    public string? DataDir { get; init; }

    public string Optimizer { get; init; } = "adamw";

    public double LearningRate { get; init; } = 3e-3;

    public double WeightDecay { get; init; } = 0.01;

    public double Momentum { get; init; } = 0.9;

    public string Schedule { get; init; } = "onecycle";

    public int WarmupSteps { get; init; }

    public int Epochs { get; init; } = 5;

    public int BatchSize { get; init; } = 128;

    public float LabelSmoothing { get; init; } = 0.1f;

    public float? Dropout { get; init; }

    public string Augment { get; init; } = "none";

    public bool MixedPrecision { get; init; }

    public int Accumulate { get; init; } = 1;

    public double Clip { get; init; } = 1.0;

    public int EarlyStopping { get; init; } = -1;

    public string? Device { get; init; }

    public ulong Seed { get; init; }

    public string Output { get; init; } = "runs/latest";

    public int TrainLimit { get; init; }

    public int ValSize { get; init; }

    public static readonly string[] Optimizers = ["sgd", "momentum", "nesterov", "adam", "adamw"];

    public static readonly string[] Schedules = ["onecycle", "cosine", "step", "constant", "warmup-cosine", "wsd", "plateau"];

    public static readonly string[] Datasets = ["fashion-mnist", "mnist", "cifar10"];

    public float EffectiveDropout => Dropout ?? IlgpuTrain.Cli.Models.DefaultDropout(Model);

    /// <summary>Every problem with the options, each naming the option and the fix; empty when valid.</summary>
    public IReadOnlyList<string> Problems()
    {
        var p = new List<string>();
        void Require(bool ok, string message)
        {
            if (!ok)
                p.Add(message);
        }

        Require(IlgpuTrain.Cli.Models.Names.Contains(Model), $"--model {Model}: unknown; use one of {string.Join(", ", IlgpuTrain.Cli.Models.Names)}.");
        Require(Datasets.Contains(Dataset), $"--dataset {Dataset}: unknown; use one of {string.Join(", ", Datasets)}.");
        Require(Optimizers.Contains(Optimizer), $"--optimizer {Optimizer}: unknown; use one of {string.Join(", ", Optimizers)}.");
        Require(Schedules.Contains(Schedule), $"--schedule {Schedule}: unknown; use one of {string.Join(", ", Schedules)}.");
        Require(double.IsFinite(LearningRate) && LearningRate > 0 && LearningRate <= 10, $"--lr {LearningRate.ToString(CultureInfo.InvariantCulture)}: the learning rate must be in (0, 10].");
        Require(double.IsFinite(WeightDecay) && WeightDecay >= 0 && WeightDecay < 1, $"--weight-decay {WeightDecay.ToString(CultureInfo.InvariantCulture)}: must be in [0, 1).");
        Require(double.IsFinite(Momentum) && Momentum >= 0 && Momentum < 1, $"--momentum {Momentum.ToString(CultureInfo.InvariantCulture)}: must be in [0, 1).");
        Require(WarmupSteps >= 0, $"--warmup {WarmupSteps}: must be 0 or more steps.");
        Require(Epochs >= 1 && Epochs <= 10000, $"--epochs {Epochs}: must be between 1 and 10000.");
        Require(BatchSize >= 1 && BatchSize <= 65536, $"--batch-size {BatchSize}: must be between 1 and 65536.");
        Require(LabelSmoothing >= 0 && LabelSmoothing < 1, $"--label-smoothing {LabelSmoothing.ToString(CultureInfo.InvariantCulture)}: must be in [0, 1).");
        Require(Dropout is null || (Dropout >= 0 && Dropout < 1), $"--dropout {Dropout?.ToString(CultureInfo.InvariantCulture)}: must be in [0, 1).");
        Require(Accumulate >= 1 && Accumulate <= 1024, $"--accumulate {Accumulate}: must be between 1 and 1024 batches.");
        Require(double.IsFinite(Clip) && Clip >= 0, $"--clip {Clip.ToString(CultureInfo.InvariantCulture)}: the gradient-norm limit must be 0 (off) or more.");
        Require(EarlyStopping >= -1, $"--early-stopping {EarlyStopping}: the patience must be 0 or more (or leave it out).");
        Require(TrainLimit >= 0, $"--train-limit {TrainLimit}: must be 0 (all) or more.");
        Require(ValSize >= 0, $"--val-size {ValSize}: must be 0 (validate on the test split) or more.");
        Require(Device is null or "cpu" or "cpu-kernels" or "cuda" or "opencl", $"--device {Device}: use cpu, cpu-kernels, cuda or opencl.");
        Require(Augment.Split(',').All(a => a is "none" or "flip" or "crop" or "rotate" or "jitter"), $"--augment {Augment}: use none or a comma list of flip, crop, rotate, jitter.");
        return p;
    }

    /// <summary>The augmentation the --augment option names (flip, crop with 4 pixels of padding on 32x32 and 2 on 28x28, rotation by up to 10 degrees, brightness and contrast jitter 0.2).</summary>
    public Augmentation Augmentation(int side)
    {
        var parts = Augment.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).ToHashSet();
        if (parts.Count == 0 || parts.SetEquals(["none"]))
            return IlgpuTrain.Training.Augmentation.None;
        return new Augmentation(
            HorizontalFlip: parts.Contains("flip"),
            CropPadding: parts.Contains("crop") ? (side >= 32 ? 4 : 2) : 0,
            RotationDegrees: parts.Contains("rotate") ? 10 : 0,
            Brightness: parts.Contains("jitter") ? 0.2f : 0,
            Contrast: parts.Contains("jitter") ? 0.2f : 0);
    }

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    public static TrainConfig FromJson(string json) =>
        JsonSerializer.Deserialize<TrainConfig>(json, JsonOptions) ?? throw new InvalidDataException("The checkpoint's run configuration is empty.");

    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = false };
}
