namespace IlgpuTrain.Training;

/// <summary>
/// Writes checkpoints at the end of every epoch: <c>last.safetensors</c> always, and
/// <c>best.safetensors</c> when the monitored metric improves (Keras' ModelCheckpoint with
/// save_best_only, plus the last one). Each write is atomic, so a crash never damages the previous file.
/// </summary>
public sealed class CheckpointCallback : TrainingCallback
{
    private readonly string? _config;
    private double _best;

    /// <summary>Creates the callback.</summary>
    /// <param name="directory">Where the checkpoints go (created if missing).</param>
    /// <param name="config">A JSON string describing the run (stored in the checkpoint's metadata), or null.</param>
    /// <param name="saveBest">The metric whose improvement writes best.safetensors (val_loss, val_accuracy, loss, accuracy), or null for last only.</param>
    /// <param name="mode">Which way is better (auto: min for losses).</param>
    public CheckpointCallback(string directory, string? config = null, string? saveBest = "val_loss", MonitorMode mode = MonitorMode.Auto)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        if (saveBest is not (null or "val_loss" or "val_accuracy" or "loss" or "accuracy"))
            throw new ArgumentException($"CheckpointCallback: unknown metric \"{saveBest}\"; use val_loss, val_accuracy, loss or accuracy.", nameof(saveBest));
        Directory = directory;
        _config = config;
        Monitor = saveBest;
        Mode = mode != MonitorMode.Auto ? mode : saveBest?.Contains("loss", StringComparison.Ordinal) != false ? MonitorMode.Min : MonitorMode.Max;
        _best = Mode == MonitorMode.Min ? double.PositiveInfinity : double.NegativeInfinity;
        System.IO.Directory.CreateDirectory(directory);
        AtomicFile.RemoveStale(directory);
    }

    /// <summary>The folder of the checkpoints.</summary>
    public string Directory { get; }

    /// <summary>The metric that selects best.safetensors, or null.</summary>
    public string? Monitor { get; }

    /// <summary>Min or Max.</summary>
    public MonitorMode Mode { get; }

    /// <summary>The path of the last checkpoint.</summary>
    public string LastPath => Path.Combine(Directory, "last.safetensors");

    /// <summary>The path of the best checkpoint.</summary>
    public string BestPath => Path.Combine(Directory, "best.safetensors");

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
            s.LossScale is DynamicLossScale d ? LossScaleState.From(d) : null, modelDescription, config);
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
        return new TrainState(c.Params, c.State, opt, scale, c.Epoch, c.BatchInEpoch, c.Step, c.History);
    }

    /// <inheritdoc/>
    public override EpochVerdict OnEpochEnd(EpochInfo info)
    {
        ArgumentNullException.ThrowIfNull(info);
        var c = Of(info.State, info.Seed, info.ModelDescription, _config);
        Checkpoint.Save(LastPath, c);
        if (Monitor is not null)
        {
            double? v = Monitor switch
            {
                "val_loss" => info.Metrics.ValLoss,
                "val_accuracy" => info.Metrics.ValAccuracy,
                "loss" => info.Metrics.TrainLoss,
                _ => info.Metrics.TrainAccuracy,
            };
            if (v is { } current && (Mode == MonitorMode.Min ? current < _best : current > _best))
            {
                _best = current;
                Checkpoint.Save(BestPath, c);
            }
        }

        return EpochVerdict.Continue;
    }
}

/// <summary>Appends each epoch's metrics to a CSV or JSONL file as it ends (see <see cref="MetricsLog"/>).</summary>
public sealed class MetricsLogger : TrainingCallback
{
    private readonly string _path;
    private bool _started;

    /// <summary>Creates the logger.</summary>
    /// <param name="path">A .csv or .jsonl file; replaced when the run starts.</param>
    public MetricsLogger(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        _path = path;
    }

    /// <inheritdoc/>
    public override EpochVerdict OnEpochEnd(EpochInfo info)
    {
        ArgumentNullException.ThrowIfNull(info);
        // Rewrite the whole history: a resumed run's file then holds every epoch, in order.
        if (!_started || info.State.History.Epochs.Count > 0)
            MetricsLog.Write(_path, info.State.History);
        _started = true;
        return EpochVerdict.Continue;
    }
}
