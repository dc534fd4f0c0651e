namespace IlgpuTrain.Training;

/// <summary>
/// Writes checkpoints at the end of every epoch: <c>last.safetensors</c> always, and
/// <c>best.safetensors</c> when the monitored metric improves (Keras' ModelCheckpoint with
/// save_best_only, plus the last one). Each write is atomic, so a crash never damages the previous file.
/// </summary>
/// <remarks>
/// The best value so far carries across a resume: <see cref="OnFitStart"/> takes it from the
/// history the resumed state brings, so best.safetensors is replaced only by an epoch better than
/// every earlier one of the run. Nothing is written before the first epoch ends. A write that fails
/// (a full disk, a folder that became read-only) throws an <see cref="OutputWriteException"/>
/// naming the file, with the previous checkpoint intact.
/// </remarks>
public sealed class CheckpointCallback : TrainingCallback
{
    private readonly string? _config;
    private double _best;
    private ModelTask? _fitTask;

    /// <summary>Creates the callback.</summary>
    /// <param name="directory">Where the checkpoints go (created, if missing, at the first save).</param>
    /// <param name="config">A JSON string describing the run (stored in the checkpoint's metadata), or null.</param>
    /// <param name="saveBest">The metric whose improvement writes best.safetensors (val_loss, val_accuracy, loss, accuracy, or a metric of the task such as val_mae), or null for last only.</param>
    /// <param name="mode">Which way is better (auto: as the task declares; min for losses and errors).</param>
    public CheckpointCallback(string directory, string? config = null, string? saveBest = "val_loss", MonitorMode mode = MonitorMode.Auto)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        if (saveBest is not null)
            ArgumentException.ThrowIfNullOrWhiteSpace(saveBest);
        Directory = directory;
        _config = config;
        Monitor = saveBest;
        Mode = mode != MonitorMode.Auto ? mode : saveBest is null ? MonitorMode.Min : Monitors.Direction(saveBest, null);
        _best = Worst;
    }

    /// <summary>The folder of the checkpoints.</summary>
    public string Directory { get; }

    /// <summary>The metric that selects best.safetensors, or null.</summary>
    public string? Monitor { get; }

    /// <summary>Min or Max (a metric of your own task stays Auto until the fit starts and the task declares it).</summary>
    public MonitorMode Mode { get; private set; }

    /// <summary>The path of the last checkpoint.</summary>
    public string LastPath => Path.Combine(Directory, "last.safetensors");

    /// <summary>The path of the best checkpoint.</summary>
    public string BestPath => Path.Combine(Directory, "best.safetensors");

    /// <summary>The best value of <see cref="Monitor"/> so far (±infinity before any).</summary>
    public double Best => _best;

    /// <summary>The input normalization the model was trained with, stored with the model so that predictions apply it (null: none).</summary>
    public Normalization? Normalization { get; init; }

    /// <summary>
    /// The name of each output, stored with the model so that predictions name them: the class names of a classifier,
    /// the label names of a multi-label model, the target names of a regression model (null: unknown).
    /// </summary>
    public IReadOnlyList<string>? OutputNames { get; init; }

    /// <summary>The class names of a classifier: another name for <see cref="OutputNames"/>.</summary>
    public IReadOnlyList<string>? ClassNames
    {
        get => OutputNames;
        init => OutputNames = value;
    }

    /// <summary>
    /// The per-feature standardization the training rows had (<see cref="RunData.Standardization"/>), stored with the
    /// model so that predictions standardize raw rows alike (null: none).
    /// </summary>
    public Standardization? Standardization { get; init; }

    /// <summary>The name of each input feature of a tabular model, stored so that errors on rows can name them (null: unknown).</summary>
    public IReadOnlyList<string>? FeatureNames { get; init; }

    /// <summary>
    /// The task stored with the model, which decides what predictions mean; null (the default) takes it from the
    /// trainer's task when the fit starts (<see cref="ModelTask.Of"/>), classification when the trainer does not say.
    /// </summary>
    public ModelTask? Task { get; init; }

    // The task the checkpoints record: Task, else the task of the fit.
    private ModelTask RecordedTask => Task ?? _fitTask ?? ModelTask.Classification;

    /// <summary>A test seam: wraps the stream each checkpoint is written to (the identity by default).</summary>
    internal Func<Stream, Stream> WrapStream { get; init; } = s => s;

    private double Worst => Mode == MonitorMode.Min ? double.PositiveInfinity : double.NegativeInfinity;

    /// <summary>The checkpoint content of a run's state.</summary>
    /// <param name="s">The state.</param>
    /// <param name="seed">The run's seed.</param>
    /// <param name="modelDescription">The model.</param>
    /// <param name="config">The run's configuration JSON.</param>
    /// <returns>The checkpoint, sharing the state's trees (do not dispose it).</returns>
    public static TrainingCheckpoint Of(TrainState s, ulong seed, string modelDescription, string? config)
    {
        ArgumentNullException.ThrowIfNull(s);
        return new TrainingCheckpoint(
            s.Params, s.State, s.OptState, seed, s.Epoch, s.Step, s.BatchInEpoch, s.History,
            s.LossScale is DynamicLossScale d ? LossScaleState.From(d) : null, modelDescription, config)
        { Averaged = s.Averaged, WorldSize = s.WorldSize };
    }

    /// <summary>The run state stored in a loaded checkpoint, continuing with <paramref name="lossScale"/>'s settings and the stored scale.</summary>
    /// <param name="c">The loaded checkpoint (its trees move into the state).</param>
    /// <param name="lossScale">The run's configured loss scale, or null.</param>
    /// <returns>The state to pass to <see cref="Trainer.Fit"/>.</returns>
    public static TrainState ToTrainState(TrainingCheckpoint c, ILossScale? lossScale)
    {
        ArgumentNullException.ThrowIfNull(c);
        var scale = lossScale is DynamicLossScale d && c.LossScale is { } stored ? stored.ApplyTo(d) : lossScale;
        var opt = c.Optimizer ?? throw new InvalidDataException("The checkpoint has no optimizer state; it cannot continue a run. Load it for evaluation only.");
        return new TrainState(c.Params, c.State, opt, scale, c.Epoch, c.BatchInEpoch, c.Step, c.History) { Averaged = c.Averaged, WorldSize = c.WorldSize };
    }

    /// <summary>
    /// Takes the best value so far from the history of the state the fit starts from (none for a
    /// fresh run), and removes the temporary files that a run killed during a checkpoint write left
    /// beside last.safetensors and best.safetensors.
    /// </summary>
    /// <param name="info">The starting state.</param>
    public override void OnFitStart(FitStartInfo info)
    {
        ArgumentNullException.ThrowIfNull(info);
        // Temporaries of a killed writer (AtomicFile's own pattern, their process gone) go now.
        AtomicFile.RemoveStale(Directory);
        _fitTask = info.Task is { } t ? ModelTask.Of(t) : null;
        if (Monitor is not null)
        {
            Monitors.Require(nameof(CheckpointCallback), Monitor, info.Task);
            if (Mode == MonitorMode.Auto)
                Mode = Monitors.Direction(Monitor, info.Task);
            if (Mode == MonitorMode.Auto)
                throw new ArgumentException($"CheckpointCallback: which way \"{Monitor}\" improves is unknown; pass mode Min or Max, or declare the metric in the task.", nameof(info));
        }

        _best = Worst;
        foreach (var m in info.State.History.Epochs)
        {
            if (Read(m) is { } v && Better(v))
                _best = v;
        }
    }

    /// <inheritdoc/>
    public override EpochVerdict OnEpochEnd(EpochInfo info)
    {
        ArgumentNullException.ThrowIfNull(info);
        var c = Of(info.State, info.Seed, info.ModelDescription, _config) with
        {
            Model = info.Model is { } m && info.InputShape is { } shape && SavedModel.TryCreate(m, shape) is { } saved
                ? saved with { Normalization = Normalization, Standardization = Standardization, Task = RecordedTask, OutputNames = OutputNames, FeatureNames = FeatureNames }
                : null,
        };
        Save(LastPath, c);
        if (Monitor is not null && Read(info.Metrics) is { } current && Better(current))
        {
            _best = current;
            Save(BestPath, c);
        }

        return EpochVerdict.Continue;
    }

    // NaN never counts as better: a diverged epoch must not replace the best checkpoint.
    private bool Better(double v) => Mode == MonitorMode.Min ? v < _best : v > _best;

    private double? Read(EpochMetrics m) => Monitor is null ? null : m.Value(Monitor);

    // Checkpoint.Save's content and atomic write, through the seam.
    private void Save(string path, TrainingCheckpoint c) =>
        OutputFolder.Writing(path, "checkpoint", () => AtomicFile.Write(path, s => Checkpoint.Write(WrapStream(s), c)), atomic: true);
}

/// <summary>Appends each epoch's metrics to a CSV or JSONL file as it ends (see <see cref="MetricsLog"/>).</summary>
public sealed class MetricsLogger : TrainingCallback
{
    private readonly string _path;

    /// <summary>Creates the logger.</summary>
    /// <param name="path">A .csv or .jsonl file; written at the end of each epoch (nothing is written before the first ends).</param>
    public MetricsLogger(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        _ = MetricsLog.FormatOf(path);
        _path = path;
    }

    /// <summary>A test seam: wraps the stream the log is written to (the identity by default).</summary>
    internal Func<Stream, Stream> WrapStream { get; init; } = s => s;

    /// <inheritdoc/>
    public override EpochVerdict OnEpochEnd(EpochInfo info)
    {
        ArgumentNullException.ThrowIfNull(info);
        // Rewrite the whole history, atomically: a resumed run's file then holds every epoch (those
        // before the resume come from the checkpoint), in order, and a failed write keeps the old file.
        OutputFolder.Writing(_path, "metrics log", () => MetricsLog.Write(_path, info.State.History, WrapStream), atomic: true);
        return EpochVerdict.Continue;
    }
}
