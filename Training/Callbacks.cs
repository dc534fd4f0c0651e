using System.Globalization;

namespace IlgpuTrain.Training;

/// <summary>What the trainer tells a callback after each training batch.</summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="Batch">0-based batch in the epoch.</param>
/// <param name="Step">Training batches since the start of the run (after this one).</param>
/// <param name="Loss">This batch's loss (unscaled).</param>
/// <param name="LearningRate">The learning rate of the last update.</param>
/// <param name="Skipped">Whether the update was skipped (non-finite gradients under loss scaling).</param>
public sealed record StepInfo(int Epoch, int Batch, long Step, double Loss, double LearningRate, bool Skipped);

/// <summary>What the trainer tells a callback after each epoch.</summary>
/// <param name="Metrics">This epoch's metrics.</param>
/// <param name="State">The run's state after the epoch (read it; do not dispose it).</param>
/// <param name="ModelDescription">The model, for checkpoints.</param>
/// <param name="Seed">The run's seed, for checkpoints.</param>
public sealed record EpochInfo(EpochMetrics Metrics, TrainState State, string ModelDescription, ulong Seed);

/// <summary>A callback's answer at the end of an epoch: go on, or stop (optionally restoring saved weights).</summary>
/// <param name="Stop">Whether to stop training.</param>
/// <param name="Reason">Why, for the log.</param>
/// <param name="RestoreParams">Parameters to restore when stopping (EarlyStopping's best weights).</param>
/// <param name="RestoreState">Model state (BatchNorm statistics) to restore with them.</param>
public sealed record EpochVerdict(bool Stop, string? Reason = null, ParamSnapshot? RestoreParams = null, ParamSnapshot? RestoreState = null)
{
    /// <summary>Go on.</summary>
    public static EpochVerdict Continue { get; } = new(false);
}

/// <summary>Hooks into <see cref="Trainer.Fit"/>: override what you need.</summary>
public abstract class TrainingCallback
{
    /// <summary>After each training batch. Keep it cheap: it runs on the training thread.</summary>
    /// <param name="info">The step.</param>
    public virtual void OnStep(StepInfo info)
    {
    }

    /// <summary>After each epoch's validation.</summary>
    /// <param name="info">The epoch.</param>
    /// <returns>Whether to stop.</returns>
    public virtual EpochVerdict OnEpochEnd(EpochInfo info) => EpochVerdict.Continue;
}

/// <summary>Which way a monitored metric improves.</summary>
public enum MonitorMode
{
    /// <summary>Min for losses, max for accuracies (Keras' "auto").</summary>
    Auto,

    /// <summary>Lower is better.</summary>
    Min,

    /// <summary>Higher is better.</summary>
    Max,
}

/// <summary>
/// Stops training when a monitored metric stops improving, with Keras' semantics
/// (tf.keras.callbacks.EarlyStopping).
/// </summary>
/// <remarks>
/// <para>improved = current − min_delta &gt; best (max) or current + min_delta &lt; best (min)</para>
/// <para>each epoch: wait += 1; if improved: best = current, remember the weights, wait = 0</para>
/// <para>otherwise, if wait ≥ patience and this is not the first epoch: stop, and with
/// restore_best_weights put back the weights (parameters and BatchNorm statistics) of the best epoch.</para>
/// <para>Defaults (Keras'): monitor val_loss, min_delta 0, patience 0, mode auto, restore_best_weights false.
/// Monitors: val_loss, val_accuracy, val_top_k, loss, accuracy.</para>
/// </remarks>
public sealed class EarlyStopping : TrainingCallback
{
    private double _best;
    private int _wait;
    private ParamSnapshot? _bestParams;
    private ParamSnapshot? _bestState;

    /// <summary>Creates the callback.</summary>
    /// <param name="monitor">The metric: val_loss (default), val_accuracy, val_top_k, loss or accuracy.</param>
    /// <param name="patience">Epochs without improvement to tolerate (0).</param>
    /// <param name="minDelta">Smallest change that counts as an improvement (0).</param>
    /// <param name="mode">Which way is better (auto: min for losses, max for accuracies).</param>
    /// <param name="restoreBestWeights">Restore the best epoch's weights when stopping (false).</param>
    public EarlyStopping(string monitor = "val_loss", int patience = 0, double minDelta = 0, MonitorMode mode = MonitorMode.Auto, bool restoreBestWeights = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(patience);
        if (!(minDelta >= 0 && double.IsFinite(minDelta)))
            throw new ArgumentOutOfRangeException(nameof(minDelta), minDelta, "EarlyStopping: min_delta must be finite and at least 0.");
        _ = Read(monitor, null);
        Monitor = monitor;
        Patience = patience;
        MinDelta = minDelta;
        Mode = mode == MonitorMode.Auto ? (monitor.Contains("loss", StringComparison.Ordinal) ? MonitorMode.Min : MonitorMode.Max) : mode;
        RestoreBestWeights = restoreBestWeights;
        _best = Mode == MonitorMode.Min ? double.PositiveInfinity : double.NegativeInfinity;
    }

    /// <summary>The monitored metric.</summary>
    public string Monitor { get; }

    /// <summary>Patience in epochs.</summary>
    public int Patience { get; }

    /// <summary>Minimum improvement.</summary>
    public double MinDelta { get; }

    /// <summary>Min or Max (resolved from Auto).</summary>
    public MonitorMode Mode { get; }

    /// <summary>Whether the best weights are restored on stopping.</summary>
    public bool RestoreBestWeights { get; }

    /// <summary>The best value seen.</summary>
    public double Best => _best;

    /// <summary>The 1-based epoch of the best value, 0 before any.</summary>
    public int BestEpoch { get; private set; }

    /// <summary>The 1-based epoch at which training stopped, 0 if it did not.</summary>
    public int StoppedEpoch { get; private set; }

    /// <inheritdoc/>
    public override EpochVerdict OnEpochEnd(EpochInfo info)
    {
        ArgumentNullException.ThrowIfNull(info);
        double current = Read(Monitor, info.Metrics);
        _wait++;
        bool improved = Mode == MonitorMode.Min ? current + MinDelta < _best : current - MinDelta > _best;
        if (improved)
        {
            _best = current;
            BestEpoch = info.Metrics.Epoch;
            if (RestoreBestWeights)
            {
                _bestParams = info.State.Params.Snapshot();
                _bestState = info.State.State.Snapshot();
            }

            _wait = 0;
            return EpochVerdict.Continue;
        }

        // Keras never stops after the first epoch ("epoch > 0" with 0-based epochs).
        if (_wait >= Patience && info.Metrics.Epoch > 1)
        {
            StoppedEpoch = info.Metrics.Epoch;
            string reason = string.Create(CultureInfo.InvariantCulture, $"early stopping: {Monitor} has not improved on {_best:G6} (epoch {BestEpoch}) for {_wait} epoch(s)");
            return RestoreBestWeights && _bestParams is not null
                ? new EpochVerdict(true, reason + $"; restoring the weights of epoch {BestEpoch}", _bestParams, _bestState)
                : new EpochVerdict(true, reason);
        }

        return EpochVerdict.Continue;
    }

    private static double Read(string monitor, EpochMetrics? m)
    {
        double? v = monitor switch
        {
            "val_loss" => m?.ValLoss,
            "val_accuracy" => m?.ValAccuracy,
            "val_top_k" => m?.ValTopK,
            "loss" => m?.TrainLoss,
            "accuracy" => m?.TrainAccuracy,
            _ => throw new ArgumentException($"EarlyStopping: unknown monitor \"{monitor}\"; use val_loss, val_accuracy, val_top_k, loss or accuracy.", nameof(monitor)),
        };
        if (m is null)
            return 0;
        return v ?? throw new InvalidOperationException($"EarlyStopping monitors {monitor}, but the run has no validation set; pass one to Fit or monitor \"loss\".");
    }
}

/// <summary>Records the learning rate of every update (and optionally writes it as CSV: step,epoch,learning_rate).</summary>
public sealed class LearningRateLogger : TrainingCallback
{
    private readonly List<(long Step, int Epoch, double LearningRate)> _rows = new();
    private readonly string? _path;

    /// <summary>Creates the logger.</summary>
    /// <param name="csvPath">A CSV file to append to, or null to keep the values in memory only.</param>
    public LearningRateLogger(string? csvPath = null)
    {
        _path = csvPath;
        if (_path is not null)
            File.WriteAllText(_path, "step,epoch,learning_rate\n");
    }

    /// <summary>(step, epoch, learning rate) of every update so far.</summary>
    public IReadOnlyList<(long Step, int Epoch, double LearningRate)> Rows => _rows;

    /// <inheritdoc/>
    public override void OnStep(StepInfo info)
    {
        ArgumentNullException.ThrowIfNull(info);
        _rows.Add((info.Step, info.Epoch, info.LearningRate));
    }

    /// <inheritdoc/>
    public override EpochVerdict OnEpochEnd(EpochInfo info)
    {
        if (_path is not null)
        {
            var lines = _rows.Where(r => r.Epoch == info.Metrics.Epoch).Select(r => string.Create(CultureInfo.InvariantCulture, $"{r.Step},{r.Epoch},{r.LearningRate:R}"));
            File.AppendAllLines(_path, lines);
        }

        return EpochVerdict.Continue;
    }
}
