// Progress reporting for the trainer: a sink interface called by Fit, and three sinks.
// BatchDone runs once per batch on the training thread, so every sink keeps it to a few field
// writes: the live bar is redrawn by Spectre.Console's own loop on a background thread, ~10 times
// a second, from the latest values; the plain sink formats a line only every ~10% of an epoch.
using System.Diagnostics;
using System.Globalization;
using Spectre.Console;

namespace IlgpuTrain.Training;

/// <summary>Receives a training run's progress. Calls come from the training thread, in order.</summary>
public interface IProgressSink
{
    /// <summary>An epoch begins.</summary>
    /// <param name="epoch">1-based epoch number.</param>
    /// <param name="epochs">Epochs planned for the run.</param>
    /// <param name="batches">Batches in this epoch.</param>
    void EpochStarted(int epoch, int epochs, int batches);

    /// <summary>A batch is done; called every batch, so implementations must be cheap.</summary>
    /// <param name="batch">1-based count of the epoch's batches done so far.</param>
    /// <param name="loss">The batch's training loss.</param>
    /// <param name="lr">The learning rate of the batch's update.</param>
    /// <param name="samplesPerSecond">Training throughput so far in the epoch.</param>
    void BatchDone(int batch, double loss, double lr, double samplesPerSecond);

    /// <summary>An epoch (with its validation) is done.</summary>
    /// <param name="m">The epoch's metrics.</param>
    void EpochDone(EpochMetrics m);

    /// <summary>A free-form message (checkpoint saved, early stop, diagnosis).</summary>
    /// <param name="text">The message; plain text, not markup.</param>
    void Message(string text);
}

/// <summary>A sink that ignores everything.</summary>
public sealed class NullProgress : IProgressSink
{
    /// <summary>The one instance.</summary>
    public static NullProgress Instance { get; } = new();

    private NullProgress()
    {
    }

    /// <inheritdoc/>
    public void EpochStarted(int epoch, int epochs, int batches)
    {
    }

    /// <inheritdoc/>
    public void BatchDone(int batch, double loss, double lr, double samplesPerSecond)
    {
    }

    /// <inheritdoc/>
    public void EpochDone(EpochMetrics m)
    {
    }

    /// <inheritdoc/>
    public void Message(string text)
    {
    }
}

/// <summary>One call received by a <see cref="RecordingProgress"/>.</summary>
public abstract record ProgressEvent;

/// <summary>A recorded <see cref="IProgressSink.EpochStarted"/>.</summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="Epochs">Planned epochs.</param>
/// <param name="Batches">Batches in the epoch.</param>
public sealed record EpochStartedEvent(int Epoch, int Epochs, int Batches) : ProgressEvent;

/// <summary>A recorded <see cref="IProgressSink.BatchDone"/>.</summary>
/// <param name="Batch">1-based batches done.</param>
/// <param name="Loss">Batch loss.</param>
/// <param name="Lr">Learning rate.</param>
/// <param name="SamplesPerSecond">Throughput.</param>
public sealed record BatchDoneEvent(int Batch, double Loss, double Lr, double SamplesPerSecond) : ProgressEvent;

/// <summary>A recorded <see cref="IProgressSink.EpochDone"/>.</summary>
/// <param name="Metrics">The epoch's metrics.</param>
public sealed record EpochDoneEvent(EpochMetrics Metrics) : ProgressEvent;

/// <summary>A recorded <see cref="IProgressSink.Message"/>.</summary>
/// <param name="Text">The message.</param>
public sealed record MessageEvent(string Text) : ProgressEvent;

/// <summary>A sink that records every call, in order, for tests.</summary>
public sealed class RecordingProgress : IProgressSink
{
    private readonly List<ProgressEvent> events = [];

    /// <summary>A snapshot of every call so far, in order.</summary>
    public IReadOnlyList<ProgressEvent> Events
    {
        get
        {
            lock (events)
            {
                return [.. events];
            }
        }
    }

    /// <summary>The recorded batch losses, in order.</summary>
    public IReadOnlyList<double> BatchLosses => [.. Events.OfType<BatchDoneEvent>().Select(b => b.Loss)];

    /// <summary>The recorded epoch metrics, in order.</summary>
    public IReadOnlyList<EpochMetrics> Epochs => [.. Events.OfType<EpochDoneEvent>().Select(e => e.Metrics)];

    /// <summary>The recorded messages, in order.</summary>
    public IReadOnlyList<string> Messages => [.. Events.OfType<MessageEvent>().Select(m => m.Text)];

    /// <inheritdoc/>
    public void EpochStarted(int epoch, int epochs, int batches) => Add(new EpochStartedEvent(epoch, epochs, batches));

    /// <inheritdoc/>
    public void BatchDone(int batch, double loss, double lr, double samplesPerSecond) =>
        Add(new BatchDoneEvent(batch, loss, lr, samplesPerSecond));

    /// <inheritdoc/>
    public void EpochDone(EpochMetrics m) => Add(new EpochDoneEvent(m));

    /// <inheritdoc/>
    public void Message(string text) => Add(new MessageEvent(text));

    private void Add(ProgressEvent e)
    {
        lock (events)
        {
            events.Add(e);
        }
    }
}

/// <summary>
/// Console progress: a live Spectre.Console bar per epoch (ETA, loss, learning rate, samples/s)
/// when the console is interactive, plain log lines otherwise (one per epoch, and one every ~10%
/// of an epoch's batches). Dispose it to stop a live bar left running by an exception.
/// </summary>
public sealed class ConsoleProgress : IProgressSink, IDisposable
{
    /// <summary>Plain mode logs this many batch lines per epoch (one per tenth), fewer if the epoch has fewer batches.</summary>
    public const int PlainLines = 10;

    private readonly IAnsiConsole console;
    private readonly object gate = new();
    private readonly Queue<string> pending = new();
    private readonly Stopwatch epochClock = new();
    private int epoch;
    private int epochs;
    private int batches;
    private int batch;
    private double loss = double.NaN;
    private double lr = double.NaN;
    private double samplesPerSecond;
    private Thread? live;
    private ManualResetEventSlim? stopLive;

    /// <summary>Creates a console sink.</summary>
    /// <param name="console">The console to write to; default <see cref="AnsiConsole.Console"/>.</param>
    /// <param name="interactive">
    /// Force the live bar on or off; default: on when the console reports itself interactive and,
    /// for the default console, standard output is not redirected.
    /// </param>
    public ConsoleProgress(IAnsiConsole? console = null, bool? interactive = null)
    {
        this.console = console ?? AnsiConsole.Create(new AnsiConsoleSettings());
        Interactive = interactive
            ?? (this.console.Profile.Capabilities.Interactive && (console is not null || !Console.IsOutputRedirected));

        // A redirected console reports 80 columns and Spectre wraps there; log lines must stay whole.
        if (console is null && !Interactive)
            this.console.Profile.Width = 1000;
    }

    /// <summary>Whether this sink draws a live bar (else plain lines).</summary>
    public bool Interactive { get; }

    /// <inheritdoc/>
    public void EpochStarted(int epoch, int epochs, int batches)
    {
        StopLive();
        lock (gate)
        {
            this.epoch = epoch;
            this.epochs = epochs;
            this.batches = batches;
            batch = 0;
            loss = double.NaN;
            lr = double.NaN;
            samplesPerSecond = 0;
        }

        epochClock.Restart();
        if (Interactive)
        {
            StartLive();
        }
    }

    /// <inheritdoc/>
    public void BatchDone(int batch, double loss, double lr, double samplesPerSecond)
    {
        lock (gate)
        {
            this.batch = batch;
            this.loss = loss;
            this.lr = lr;
            this.samplesPerSecond = samplesPerSecond;
        }

        // A line each time the epoch crosses a tenth: exactly min(batches, 10) lines, the last at 100%.
        if (!Interactive && batches > 0 && (long)PlainLines * batch / batches > (long)PlainLines * (batch - 1) / batches)
        {
            console.WriteLine(BatchLine());
        }
    }

    /// <inheritdoc/>
    public void EpochDone(EpochMetrics m)
    {
        ArgumentNullException.ThrowIfNull(m);
        StopLive();
        console.WriteLine(FormatEpoch(m, epochs));
    }

    /// <inheritdoc/>
    public void Message(string text)
    {
        if (live is not null)
        {
            // Spectre's live display owns the console while it runs; its loop prints queued lines.
            lock (pending)
            {
                pending.Enqueue(text);
            }
        }
        else
        {
            console.WriteLine(text);
        }
    }

    /// <summary>Stops a live bar, if one runs.</summary>
    public void Dispose() => StopLive();

    /// <summary>One line summing up an epoch: losses, accuracies, learning rate, loss scale, time.</summary>
    /// <param name="m">The epoch's metrics.</param>
    /// <param name="epochs">Planned epochs, or 0 to leave it out.</param>
    /// <returns>The line, invariant culture.</returns>
    public static string FormatEpoch(EpochMetrics m, int epochs = 0)
    {
        ArgumentNullException.ThrowIfNull(m);
        var s = new System.Text.StringBuilder();
        s.Append(CultureInfo.InvariantCulture, $"epoch {m.Epoch}");
        if (epochs > 0)
        {
            s.Append(CultureInfo.InvariantCulture, $"/{epochs}");
        }

        s.Append(CultureInfo.InvariantCulture, $"  train loss {m.TrainLoss:F4}");
        if (!double.IsNaN(m.TrainAccuracy) || m.Metrics is null)
        {
            s.Append(CultureInfo.InvariantCulture, $" acc {m.TrainAccuracy:F4}");
        }

        foreach (var (name, value) in m.Metrics ?? new MetricSet([]))
        {
            s.Append(CultureInfo.InvariantCulture, $" {name} {value:G4}");
        }
        if (m.ValLoss is double vl)
        {
            s.Append(CultureInfo.InvariantCulture, $"  val loss {vl:F4}");
        }

        if (m.ValAccuracy is double va)
        {
            s.Append(CultureInfo.InvariantCulture, $" acc {va:F4}");
        }

        if (m.ValTopK is double vk)
        {
            s.Append(CultureInfo.InvariantCulture, $" top{m.TopK} {vk:F4}");
        }

        if (m.AveragedValLoss is double al && m.AveragedValAccuracy is double aa)
        {
            s.Append(CultureInfo.InvariantCulture, $"  averaged val loss {al:F4} acc {aa:F4}");
        }

        s.Append(CultureInfo.InvariantCulture, $"  lr {m.LearningRate:G4}");
        if (m.LossScale is double ls)
        {
            s.Append(CultureInfo.InvariantCulture, $"  loss scale {ls:G6} skipped {m.SkippedSteps}");
        }

        double sps = m.Seconds > 0 ? m.Samples / m.Seconds : 0;
        s.Append(CultureInfo.InvariantCulture, $"  {m.Seconds:F1} s ({sps:F0} samples/s)");
        return s.ToString();
    }

    private string BatchLine()
    {
        lock (gate)
        {
            double pct = batches > 0 ? 100.0 * batch / batches : 100;
            return string.Create(CultureInfo.InvariantCulture,
                $"epoch {epoch}/{epochs}  batch {batch}/{batches} ({pct:F0}%)  loss {loss:F4}  lr {lr:G4}  {samplesPerSecond:F0} samples/s  ETA {Eta():mm\\:ss}");
        }
    }

    // Caller holds gate.
    private TimeSpan Eta() => batch <= 0 || batch >= batches
        ? TimeSpan.Zero
        : TimeSpan.FromSeconds(epochClock.Elapsed.TotalSeconds / batch * (batches - batch));

    private string LiveDescription()
    {
        lock (gate)
        {
            return string.Create(CultureInfo.InvariantCulture,
                $"epoch {epoch}/{epochs}  loss {loss:F4}  lr {lr:G4}  {samplesPerSecond:F0} samples/s");
        }
    }

    private void StartLive()
    {
        var stop = new ManualResetEventSlim(false);
        int total = Math.Max(1, batches);
        var thread = new Thread(() =>
        {
            try
            {
                console.Progress()
                    .AutoClear(true)
                    .HideCompleted(true)
                    .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(),
                        new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                    .Start(ctx =>
                    {
                        ProgressTask task = ctx.AddTask(Markup.Escape(LiveDescription()), maxValue: total);
                        while (true)
                        {
                            bool stopping = stop.Wait(100);
                            lock (pending)
                            {
                                while (pending.TryDequeue(out string? line))
                                {
                                    console.WriteLine(line);
                                }
                            }

                            int done;
                            lock (gate)
                            {
                                done = batch;
                            }

                            task.Value = Math.Min(done, total);
                            task.Description = Markup.Escape(LiveDescription());
                            ctx.Refresh();
                            if (stopping)
                            {
                                task.StopTask();
                                return;
                            }
                        }
                    });
            }
            catch (Exception e) when (e is InvalidOperationException or IOException)
            {
                // A console that cannot host a live display must never stop training.
            }
        })
        {
            IsBackground = true,
            Name = "ConsoleProgress",
        };
        stopLive = stop;
        live = thread;
        thread.Start();
    }

    private void StopLive()
    {
        if (live is null)
        {
            return;
        }

        stopLive!.Set();
        live.Join();
        stopLive.Dispose();
        live = null;
        stopLive = null;
        lock (pending)
        {
            while (pending.TryDequeue(out string? line))
            {
                console.WriteLine(line);
            }
        }
    }
}
