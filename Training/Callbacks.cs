using System.Globalization;
using System.Text;

namespace IlgpuTrain.Training;

/// <summary>What the trainer tells a callback after each training batch.</summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="Batch">0-based batch in the epoch.</param>
/// <param name="Step">Training batches since the start of the run (after this one).</param>
/// <param name="Loss">This batch's loss (unscaled).</param>
/// <param name="LearningRate">The learning rate of the last update.</param>
/// <param name="Skipped">Whether the update was skipped (non-finite gradients under loss scaling).</param>
public sealed record StepInfo(int Epoch, int Batch, long Step, double Loss, double LearningRate, bool Skipped)
{
    /// <summary>
    /// Whether this batch ended in an optimizer update: false for a skipped step and, with gradient
    /// accumulation, for a micro-batch that only accumulated (then <see cref="LearningRate"/> is the
    /// rate the next update will use).
    /// </summary>
    public bool Updated { get; init; } = !Skipped;
}

/// <summary>What the trainer tells a callback before the first step of a <see cref="Trainer.Fit"/>.</summary>
/// <param name="State">The state the fit starts from: a fresh run (epoch 0, step 0) or a resumed one, whose history holds the epochs before the resume (read it; do not dispose it).</param>
/// <param name="Epochs">The epoch the fit trains to.</param>
public sealed record FitStartInfo(TrainState State, int Epochs)
{
    /// <summary>Whether the fit continues a run (a checkpoint's state) rather than starting one.</summary>
    public bool Resumed => State.Step > 0 || State.Epoch > 0;

    /// <summary>The trainer's task (its metrics and which way each is better), or null when unknown.</summary>
    public ITrainingTask? Task { get; init; }
}

/// <summary>What the trainer tells a callback after each epoch.</summary>
/// <param name="Metrics">This epoch's metrics.</param>
/// <param name="State">The run's state after the epoch (read it; do not dispose it).</param>
/// <param name="ModelDescription">The model, for checkpoints.</param>
/// <param name="Seed">The run's seed, for checkpoints.</param>
public sealed record EpochInfo(EpochMetrics Metrics, TrainState State, string ModelDescription, ulong Seed)
{
    /// <summary>The model being trained (null when the caller does not say).</summary>
    public Layer? Model { get; init; }

    /// <summary>The model's per-sample input shape (null when the caller does not say).</summary>
    public Shape? InputShape { get; init; }
}

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
    /// <summary>
    /// Before the first step of a fit, after the trainer has checked the data and options. A
    /// callback resets its own state here (so one object can serve several fits) and, on a resumed
    /// run, takes up what it tracks from <see cref="FitStartInfo.State"/>'s history.
    /// </summary>
    /// <param name="info">The starting state.</param>
    public virtual void OnFitStart(FitStartInfo info)
    {
    }

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
/// The names a callback can monitor and which way each improves: loss and val_loss, accuracy,
/// val_accuracy and val_top_k, and each metric of the trainer's task on the training set (its name)
/// and on the validation set ("val_" and its name).
/// </summary>
public static class Monitors
{
    // The built-in tasks' metrics, for a direction known before the trainer says which task runs.
    private static readonly Dictionary<string, bool> Known = new(StringComparer.Ordinal)
    {
        ["loss"] = false, ["accuracy"] = true, ["top_k"] = true, ["mae"] = false, ["rmse"] = false,
        ["micro_f1"] = true, ["macro_f1"] = true, ["subset_accuracy"] = true,
    };

    /// <summary>The names a run of <paramref name="task"/> can monitor.</summary>
    /// <param name="task">The task.</param>
    /// <returns>loss, val_loss, then each metric and its val_ form (classification's training top_k excepted: the epoch keeps only its validation value).</returns>
    public static IReadOnlyList<string> Names(ITrainingTask task)
    {
        ArgumentNullException.ThrowIfNull(task);
        var names = new List<string> { "loss", "val_loss" };
        foreach (var m in task.Metrics)
        {
            if (m.Name != "top_k")
                names.Add(m.Name);
            names.Add(m.Name == "top_k" ? "val_top_k" : "val_" + m.Name);
        }

        return names;
    }

    /// <summary>Which way <paramref name="monitor"/> improves: from the task's declaration, else from the built-in metrics' names; <see cref="MonitorMode.Auto"/> when neither knows it.</summary>
    /// <param name="monitor">A monitor name, such as val_mae.</param>
    /// <param name="task">The trainer's task, or null when not known yet.</param>
    /// <returns>Min, Max, or Auto for an unknown name.</returns>
    public static MonitorMode Direction(string monitor, ITrainingTask? task)
    {
        ArgumentNullException.ThrowIfNull(monitor);
        string name = monitor.StartsWith("val_", StringComparison.Ordinal) ? monitor[4..] : monitor;
        if (name == "loss")
            return MonitorMode.Min;
        if (task?.Metrics.FirstOrDefault(m => m.Name == name) is { } declared)
            return declared.HigherIsBetter ? MonitorMode.Max : MonitorMode.Min;
        return Known.TryGetValue(name, out bool higher) ? (higher ? MonitorMode.Max : MonitorMode.Min) : MonitorMode.Auto;
    }

    /// <summary>Throws unless a run of <paramref name="task"/> reports <paramref name="monitor"/>.</summary>
    /// <param name="owner">The callback, for the message.</param>
    /// <param name="monitor">The monitor.</param>
    /// <param name="task">The task, or null (nothing to check).</param>
    internal static void Require(string owner, string monitor, ITrainingTask? task)
    {
        if (task is not null && !Names(task).Contains(monitor))
            throw new ArgumentException($"{owner}: the task {task.Name} has no metric \"{monitor}\"; monitor one of {string.Join(", ", Names(task))}.", nameof(monitor));
    }

    /// <summary>The monitored value of an epoch.</summary>
    /// <param name="owner">The callback, for the message.</param>
    /// <param name="monitor">The monitor.</param>
    /// <param name="m">The epoch.</param>
    /// <returns>The value.</returns>
    internal static double Read(string owner, string monitor, EpochMetrics m) =>
        m.Value(monitor) ?? throw new InvalidOperationException(monitor.StartsWith("val_", StringComparison.Ordinal)
            ? $"{owner} monitors {monitor}, but the run has no validation set; pass one to Fit or monitor \"{monitor[4..]}\"."
            : $"{owner} monitors {monitor}, but epoch {m.Epoch} has no such metric; monitor loss, val_loss or a metric of the trainer's task.");
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
/// Monitors: loss, val_loss, accuracy, val_accuracy, val_top_k, and the task's metrics, such as
/// mae and val_mae (see <see cref="Monitors"/>). Auto takes the direction the task declares for the
/// metric (min for losses and errors, max for accuracies and F1 scores).</para>
/// </remarks>
public sealed class EarlyStopping : TrainingCallback
{
    private double _best;
    private int _wait;
    private ParamSnapshot? _bestParams;
    private ParamSnapshot? _bestState;

    /// <summary>Creates the callback.</summary>
    /// <param name="monitor">The metric: val_loss (default), val_accuracy, val_top_k, loss, accuracy, or a metric of the task such as val_mae.</param>
    /// <param name="patience">Epochs without improvement to tolerate (0).</param>
    /// <param name="minDelta">Smallest change that counts as an improvement (0).</param>
    /// <param name="mode">Which way is better (auto: as the task declares; min for losses and errors, max for accuracies).</param>
    /// <param name="restoreBestWeights">Restore the best epoch's weights when stopping (false).</param>
    public EarlyStopping(string monitor = "val_loss", int patience = 0, double minDelta = 0, MonitorMode mode = MonitorMode.Auto, bool restoreBestWeights = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(patience);
        if (!(minDelta >= 0 && double.IsFinite(minDelta)))
            throw new ArgumentOutOfRangeException(nameof(minDelta), minDelta, "EarlyStopping: min_delta must be finite and at least 0.");
        ArgumentException.ThrowIfNullOrWhiteSpace(monitor);
        Monitor = monitor;
        Patience = patience;
        MinDelta = minDelta;
        Mode = mode == MonitorMode.Auto ? Monitors.Direction(monitor, null) : mode;
        RestoreBestWeights = restoreBestWeights;
        _best = Mode == MonitorMode.Min ? double.PositiveInfinity : double.NegativeInfinity;
    }

    /// <summary>The monitored metric.</summary>
    public string Monitor { get; }

    /// <summary>Patience in epochs.</summary>
    public int Patience { get; }

    /// <summary>Minimum improvement.</summary>
    public double MinDelta { get; }

    /// <summary>Min or Max (resolved from Auto; a metric of your own task stays Auto until the fit starts and the task declares it).</summary>
    public MonitorMode Mode { get; private set; }

    /// <summary>Whether the best weights are restored on stopping.</summary>
    public bool RestoreBestWeights { get; }

    /// <summary>The best value seen.</summary>
    public double Best => _best;

    /// <summary>The 1-based epoch of the best value, 0 before any.</summary>
    public int BestEpoch { get; private set; }

    /// <summary>The 1-based epoch at which training stopped, 0 if it did not.</summary>
    public int StoppedEpoch { get; private set; }

    /// <summary>
    /// Starts counting afresh, then, on a resumed run, replays the rule over the history the run
    /// brings, so best and patience continue across the resume. The weights of an epoch before the
    /// resume are not in memory: stopping on such a best keeps the current weights and says so.
    /// </summary>
    /// <param name="info">The starting state.</param>
    public override void OnFitStart(FitStartInfo info)
    {
        ArgumentNullException.ThrowIfNull(info);
        Monitors.Require(nameof(EarlyStopping), Monitor, info.Task);
        if (Mode == MonitorMode.Auto)
            Mode = Monitors.Direction(Monitor, info.Task);
        if (Mode == MonitorMode.Auto)
            throw new ArgumentException($"EarlyStopping: which way \"{Monitor}\" improves is unknown; pass mode Min or Max, or declare the metric in the task.", nameof(info));
        _best = Mode == MonitorMode.Min ? double.PositiveInfinity : double.NegativeInfinity;
        _wait = 0;
        _bestParams = null;
        _bestState = null;
        BestEpoch = 0;
        StoppedEpoch = 0;
        foreach (var m in info.State.History.Epochs)
        {
            _wait++;
            if (Improves(Read(m)))
            {
                _best = Read(m);
                BestEpoch = m.Epoch;
                _wait = 0;
            }
        }
    }

    /// <inheritdoc/>
    public override EpochVerdict OnEpochEnd(EpochInfo info)
    {
        ArgumentNullException.ThrowIfNull(info);
        double current = Read(info.Metrics);
        _wait++;
        if (Improves(current))
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
            if (RestoreBestWeights && _bestParams is not null)
                return new EpochVerdict(true, reason + $"; restoring the weights of epoch {BestEpoch}", _bestParams, _bestState);
            return RestoreBestWeights
                ? new EpochVerdict(true, reason + $"; the weights of epoch {BestEpoch} (before the resume) are not in memory, so the current ones are kept (best.safetensors holds the best checkpoint)")
                : new EpochVerdict(true, reason);
        }

        return EpochVerdict.Continue;
    }

    private bool Improves(double current) => Mode == MonitorMode.Min ? current + MinDelta < _best : current - MinDelta > _best;

    private double Read(EpochMetrics m) => Monitors.Read(nameof(EarlyStopping), Monitor, m);
}

/// <summary>
/// Records the learning rate of every optimizer update (not of micro-batches that only accumulate,
/// nor of skipped steps) and optionally writes it as CSV: step,epoch,learning_rate.
/// </summary>
/// <remarks>
/// The file is written at the end of each epoch, never before: a fit that fails before its first
/// epoch ends leaves an earlier run's file as it was. A fresh run replaces the file; a resumed run
/// (<see cref="FitStartInfo.Resumed"/>) continues it, keeping the rows up to the step it resumes
/// from and dropping any later ones (written after that checkpoint by a run that then died), so
/// the file holds each update of the whole run once, in order.
/// </remarks>
public sealed class LearningRateLogger : TrainingCallback
{
    /// <summary>The CSV header.</summary>
    public const string Header = "step,epoch,learning_rate";

    private readonly List<(long Step, int Epoch, double LearningRate)> _rows = new();
    private readonly StepCsv _csv;

    /// <summary>Creates the logger; nothing is written until the first epoch ends.</summary>
    /// <param name="csvPath">A CSV file to write, or null to keep the values in memory only.</param>
    public LearningRateLogger(string? csvPath = null) =>
        _csv = new StepCsv(csvPath, Header, "learning-rate log", cells => cells.Length == 3 && StepCsv.IsNumber(cells[2]));

    /// <summary>(step, epoch, learning rate) of every update of the current fit so far.</summary>
    public IReadOnlyList<(long Step, int Epoch, double LearningRate)> Rows => _rows;

    /// <summary>A test seam: wraps each stream the logger writes to (the identity by default).</summary>
    internal Func<Stream, Stream> WrapStream { get => _csv.WrapStream; init => _csv.WrapStream = value; }

    /// <inheritdoc/>
    public override void OnFitStart(FitStartInfo info)
    {
        ArgumentNullException.ThrowIfNull(info);
        _rows.Clear();
        _csv.Start(info);
    }

    /// <inheritdoc/>
    public override void OnStep(StepInfo info)
    {
        ArgumentNullException.ThrowIfNull(info);
        if (info.Updated && !double.IsNaN(info.LearningRate))
        {
            _rows.Add((info.Step, info.Epoch, info.LearningRate));
            _csv.Add(string.Create(CultureInfo.InvariantCulture, $"{info.Step},{info.Epoch},{info.LearningRate:R}"));
        }
    }

    /// <inheritdoc/>
    public override EpochVerdict OnEpochEnd(EpochInfo info)
    {
        _csv.Flush();
        return EpochVerdict.Continue;
    }
}

/// <summary>
/// Records the training loss of every batch, the per-step curve beside the per-epoch metrics, and
/// optionally writes it as CSV: step,epoch,batch,loss,learning_rate,updated.
/// </summary>
/// <remarks>
/// <para>One row per training batch, micro-batches of gradient accumulation and skipped steps
/// included: <c>loss</c> is the batch's unscaled loss as trained (with label smoothing, in Train
/// mode), <c>learning_rate</c> the rate of the last update, <c>updated</c> 1 when the batch ended
/// in an optimizer update and 0 when it only accumulated or was skipped.</para>
/// <para>Written as <see cref="LearningRateLogger"/> writes: at the end of each epoch, replaced by a
/// fresh run, continued by a resumed one from the step it resumes at.</para>
/// </remarks>
public sealed class StepLossLogger : TrainingCallback
{
    /// <summary>The CSV header.</summary>
    public const string Header = "step,epoch,batch,loss,learning_rate,updated";

    private readonly List<StepInfo> _rows = new();
    private readonly StepCsv _csv;

    /// <summary>Creates the logger; nothing is written until the first epoch ends.</summary>
    /// <param name="csvPath">A CSV file to write (steps.csv beside metrics.csv in the CLI), or null to keep the values in memory only.</param>
    public StepLossLogger(string? csvPath = null) =>
        _csv = new StepCsv(csvPath, Header, "step-loss log", cells => cells.Length == 6 && StepCsv.IsNumber(cells[3]));

    /// <summary>Every batch of the current fit so far.</summary>
    public IReadOnlyList<StepInfo> Rows => _rows;

    /// <inheritdoc/>
    public override void OnFitStart(FitStartInfo info)
    {
        ArgumentNullException.ThrowIfNull(info);
        _rows.Clear();
        _csv.Start(info);
    }

    /// <inheritdoc/>
    public override void OnStep(StepInfo info)
    {
        ArgumentNullException.ThrowIfNull(info);
        _rows.Add(info);
        _csv.Add(string.Create(CultureInfo.InvariantCulture, $"{info.Step},{info.Epoch},{info.Batch},{info.Loss:R},{info.LearningRate:R},{(info.Updated ? 1 : 0)}"));
    }

    /// <inheritdoc/>
    public override EpochVerdict OnEpochEnd(EpochInfo info)
    {
        _csv.Flush();
        return EpochVerdict.Continue;
    }
}

/// <summary>
/// A CSV of per-step rows written as epochs end: a fresh run starts the file with its header; a
/// resumed one keeps the earlier rows up to the step it resumes from (a row cut short by a crash,
/// or past that step, is dropped). The first write of a fit is atomic: a failure leaves the old file.
/// </summary>
internal sealed class StepCsv(string? path, string header, string what, Func<string[], bool> wellFormed)
{
    private readonly List<string> _pending = new();
    private long? _resumedAt;
    private bool _prepared;

    public Func<Stream, Stream> WrapStream { get; set; } = s => s;

    public static bool IsNumber(string cell) =>
        double.TryParse(cell, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && !double.IsNaN(v);

    public void Start(FitStartInfo info)
    {
        if (path is not null)
            ArgumentException.ThrowIfNullOrWhiteSpace(path);
        _pending.Clear();
        _prepared = false;
        _resumedAt = info.Resumed ? info.State.Step : null;
    }

    public void Add(string line)
    {
        if (path is not null)
            _pending.Add(line);
    }

    public void Flush()
    {
        if (path is null)
            return;
        OutputFolder.Writing(path, what, () =>
        {
            if (!_prepared)
            {
                Prepare(path);
                _prepared = true;
            }

            using var file = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read);
            using var w = new StreamWriter(WrapStream(file), new UTF8Encoding(false)) { NewLine = "\n" };
            foreach (var line in _pending)
                w.WriteLine(line);
            _pending.Clear();
        });
    }

    private void Prepare(string file)
    {
        var keep = new List<string> { header };
        if (_resumedAt is { } from && File.Exists(file))
        {
            foreach (var line in File.ReadLines(file).Skip(1))
            {
                var cells = line.Split(',');
                if (wellFormed(cells)
                    && long.TryParse(cells[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out long step) && step <= from
                    && int.TryParse(cells[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out _))
                    keep.Add(line);
            }
        }

        AtomicFile.Write(file, s =>
        {
            using var w = new StreamWriter(WrapStream(s), new UTF8Encoding(false), 1 << 16, leaveOpen: true) { NewLine = "\n" };
            foreach (var line in keep)
                w.WriteLine(line);
        });
    }
}
