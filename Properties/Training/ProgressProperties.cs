using System.Globalization;
using IlgpuTrain.Training;
using Spectre.Console;

namespace IlgpuTrain.Properties.Training;

/// <summary>Progress sinks: recording keeps order, plain lines come once per epoch and every ~10% of batches, the live bar ends with its epoch.</summary>
public class ProgressProperties
{
    private static EpochMetrics Metrics(int epoch) =>
        new(epoch, 0.4321, 0.8765, 0.5, 0.85, 0.99, 5, 1e-3, 1024, 2, 469, 60000, 12.0);

    private static (IAnsiConsole Console, StringWriter Text) Capture(bool interactive)
    {
        var text = new StringWriter();
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(text),
            Ansi = interactive ? AnsiSupport.Yes : AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = interactive ? InteractionSupport.Yes : InteractionSupport.No,
        });

        // Spectre wraps at the profile width (80 without a terminal); epoch lines are longer.
        console.Profile.Width = 400;
        return (console, text);
    }

    private static void Drive(IProgressSink sink, int epochs, int batches)
    {
        for (int e = 1; e <= epochs; e++)
        {
            sink.EpochStarted(e, epochs, batches);
            for (int b = 1; b <= batches; b++)
            {
                sink.BatchDone(b, 1.0 / b, 0.01, 1000);
            }

            sink.Message($"checkpoint {e} saved");
            sink.EpochDone(Metrics(e));
        }
    }

    [Property(MaxTest = 30)]
    public Property Plain_mode_logs_each_epoch_once_and_about_every_tenth_of_its_batches() =>
        Prop.ForAll(Gen.Choose(1, 3).ToArbitrary(), Gen.OneOf(Gen.Elements(0, 1, 2, 9, 10, 11, 16, 17, 255, 256, 257), Gen.Choose(1, 2000)).ToArbitrary(), (epochs, batches) =>
        {
            (IAnsiConsole console, StringWriter text) = Capture(interactive: false);
            var sink = new ConsoleProgress(console);
            Drive(sink, epochs, batches);
            string[] lines = text.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
            int batchLines = lines.Count(l => l.Contains(" batch ", StringComparison.Ordinal));
            int epochLines = lines.Count(l => l.Contains("train loss", StringComparison.Ordinal));
            int perEpoch = batchLines / epochs;

            // One line per tenth of the epoch crossed: min(batches, 10), the last at the epoch's end.
            return (!sink.Interactive).Label("plain")
                .And((epochLines == epochs).Label($"epoch lines {epochLines}"))
                .And((batchLines % epochs == 0 && perEpoch == Math.Min(batches, ConsoleProgress.PlainLines)).Label($"batch lines {batchLines}"))
                .And(lines.Where(l => l.Contains(" batch ", StringComparison.Ordinal)).All(l => l.Contains("loss") && l.Contains("ETA") && l.Contains("samples/s")).Label("batch line fields"))
                .And((lines.Count(l => l.StartsWith("checkpoint", StringComparison.Ordinal)) == epochs).Label("messages"));
        });

    [Fact]
    public void Live_mode_ends_its_bar_with_the_epoch_and_prints_messages_and_epoch_lines()
    {
        (IAnsiConsole console, StringWriter text) = Capture(interactive: true);
        using var sink = new ConsoleProgress(console);
        Assert.True(sink.Interactive);
        for (int e = 1; e <= 2; e++)
        {
            sink.EpochStarted(e, 2, 50);
            for (int b = 1; b <= 50; b++)
            {
                sink.BatchDone(b, 0.5, 0.01, 1000);
                if (b == 25)
                {
                    sink.Message($"halfway through {e}");
                    Thread.Sleep(150);
                }
            }

            sink.EpochDone(Metrics(e));
        }

        string output = text.ToString();
        Assert.Contains("halfway through 1", output);
        Assert.Contains("halfway through 2", output);
        Assert.Contains(ConsoleProgress.FormatEpoch(Metrics(2), 2), output);
        Assert.Contains("epoch 1/2", output);
    }

    [Fact]
    public void Epoch_line_shows_every_metric_in_invariant_culture()
    {
        CultureInfo saved = CultureInfo.CurrentCulture;
        try
        {
            CultureInfo.CurrentCulture = CultureInfo.GetCultureInfo("fr-FR");
            string line = ConsoleProgress.FormatEpoch(Metrics(3), 10);
            Assert.Equal("epoch 3/10  train loss 0.4321 acc 0.8765  val loss 0.5000 acc 0.8500 top5 0.9900  lr 0.001  loss scale 1024 skipped 2  12.0 s (5000 samples/s)", line);
            Assert.Equal("epoch 1  train loss 0.4321 acc 0.8765  lr 0.001  12.0 s (5000 samples/s)",
                ConsoleProgress.FormatEpoch(Metrics(1) with { ValLoss = null, ValAccuracy = null, ValTopK = null, LossScale = null }));
        }
        finally
        {
            CultureInfo.CurrentCulture = saved;
        }
    }

    [Fact]
    public void Recording_keeps_every_call_in_order()
    {
        var rec = new RecordingProgress();
        Drive(rec, 2, 3);
        Assert.Equal(2 * (1 + 3 + 1 + 1), rec.Events.Count);
        Assert.Equal(new EpochStartedEvent(1, 2, 3), rec.Events[0]);
        Assert.Equal(new BatchDoneEvent(2, 0.5, 0.01, 1000), rec.Events[2]);
        Assert.Equal([1.0, 0.5, 1.0 / 3, 1.0, 0.5, 1.0 / 3], rec.BatchLosses);
        Assert.Equal([1, 2], rec.Epochs.Select(m => m.Epoch));
        Assert.Equal(["checkpoint 1 saved", "checkpoint 2 saved"], rec.Messages);
        Assert.IsType<EpochStartedEvent>(rec.Events[6]);
        Drive(NullProgress.Instance, 2, 3);
    }

    // BatchDone runs every batch on the training thread; a live sink must cost well under a microsecond or so.
    [Fact]
    public void Batch_done_is_cheap_while_the_live_bar_runs()
    {
        (IAnsiConsole console, _) = Capture(interactive: true);
        using var sink = new ConsoleProgress(console);
        sink.EpochStarted(1, 1, 1_000_000);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int b = 1; b <= 1_000_000; b++)
        {
            sink.BatchDone(b, 0.5, 0.01, 1000);
        }

        clock.Stop();
        sink.EpochDone(Metrics(1));
        Assert.True(clock.Elapsed.TotalSeconds < 2, $"1e6 BatchDone took {clock.Elapsed.TotalSeconds:F2} s");
    }
}
