namespace IlgpuTrain.Training;

/// <summary>The metrics of one epoch of <see cref="Trainer"/>.Fit.</summary>
/// <param name="Epoch">1-based epoch number.</param>
/// <param name="TrainLoss">Mean training loss over the epoch's batches (as computed in Train mode, with label smoothing if any).</param>
/// <param name="TrainAccuracy">Fraction of training samples whose arg-max prediction was right, in Train mode.</param>
/// <param name="ValLoss">Validation loss in Eval mode, null without a validation set.</param>
/// <param name="ValAccuracy">Validation top-1 accuracy.</param>
/// <param name="ValTopK">Validation top-k accuracy (k in <see cref="TopK"/>).</param>
/// <param name="TopK">The k of <see cref="ValTopK"/>.</param>
/// <param name="LearningRate">Learning rate of the last update of the epoch.</param>
/// <param name="LossScale">Loss scale at the end of the epoch (mixed precision), else null.</param>
/// <param name="SkippedSteps">Updates skipped in the epoch because the scaled gradients were not finite.</param>
/// <param name="Steps">Optimizer updates applied in the epoch.</param>
/// <param name="Samples">Training samples seen in the epoch.</param>
/// <param name="Seconds">Wall time of the epoch's training (validation excluded).</param>
public sealed record EpochMetrics(
    int Epoch,
    double TrainLoss,
    double TrainAccuracy,
    double? ValLoss,
    double? ValAccuracy,
    double? ValTopK,
    int TopK,
    double LearningRate,
    double? LossScale,
    int SkippedSteps,
    int Steps,
    long Samples,
    double Seconds)
{
    /// <summary>Validation loss of the averaged weights (EMA or SWA, <see cref="TrainerOptions.Averaging"/>), or null.</summary>
    public double? AveragedValLoss { get; init; }

    /// <summary>Validation top-1 accuracy of the averaged weights, or null.</summary>
    public double? AveragedValAccuracy { get; init; }
}

/// <summary>The per-epoch metrics of a run, in order; an immutable value.</summary>
/// <param name="Epochs">One entry per completed epoch.</param>
public sealed record History(IReadOnlyList<EpochMetrics> Epochs)
{
    /// <summary>An empty history.</summary>
    public static History Empty { get; } = new(Array.Empty<EpochMetrics>());

    /// <summary>This history with one more epoch.</summary>
    /// <param name="m">The epoch's metrics.</param>
    /// <returns>A new history.</returns>
    public History Add(EpochMetrics m) => new([.. Epochs, m]);

    /// <summary>The last epoch, or null.</summary>
    public EpochMetrics? Last => Epochs.Count == 0 ? null : Epochs[^1];
}
