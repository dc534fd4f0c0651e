namespace IlgpuTrain.Training;

/// <summary>
/// Everything a run carries from one step to the next: parameters, model state (BatchNorm
/// statistics), optimizer state, loss scale and the position in the run. A value: each step
/// consumes it and returns the next; a checkpoint stores it.
/// </summary>
/// <param name="Params">Parameters (fp32 master weights).</param>
/// <param name="State">Model state: BatchNorm running statistics; an empty tree when the model has none.</param>
/// <param name="OptState">Optimizer state (moments, counts, the schedule's step).</param>
/// <param name="LossScale">The loss scale, or null without loss scaling.</param>
/// <param name="Epoch">Epochs completed.</param>
/// <param name="BatchInEpoch">Batches of the current epoch already trained (0 at an epoch boundary).</param>
/// <param name="Step">Training batches processed since the start of the run (every batch, including skipped and accumulating ones).</param>
/// <param name="History">Per-epoch metrics so far.</param>
public sealed record TrainState(
    ParamTree Params,
    ParamTree State,
    OptState OptState,
    ILossScale? LossScale,
    int Epoch,
    int BatchInEpoch,
    long Step,
    History History) : IDisposable
{
    /// <summary>
    /// The averaged weights when the run averages them (<see cref="TrainerOptions.Averaging"/>: an
    /// EMA or SWA), else null; a checkpoint stores them, so a resumed run continues the average.
    /// </summary>
    public AveragedWeights? Averaged { get; init; }

    /// <summary>
    /// The number of ranks that trained this state (1 for one process): a distributed run resumes
    /// exactly only on as many ranks, since each rank's share of an epoch depends on it.
    /// </summary>
    public int WorldSize { get; init; } = 1;

    /// <summary>The learning rate of the last update (NaN before the first update or without a learning-rate schedule).</summary>
    public double LearningRate => OptState.Find<ScaleByLearningRateState>() is { } s && s.Count > 0 ? s.LastLearningRate : double.NaN;

    /// <summary>The learning rate the next update will use.</summary>
    public double NextLearningRate => OptState.Find<ScaleByLearningRateState>()?.NextLearningRate ?? double.NaN;

    /// <summary>Releases the device memory of the parameters, model state, optimizer state and averaged weights.</summary>
    public void Dispose()
    {
        Params.Dispose();
        State.Dispose();
        OptState.Dispose();
        Averaged?.Dispose();
    }
}
