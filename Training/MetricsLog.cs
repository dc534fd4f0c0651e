// Metrics logs: a History written one epoch at a time, as CSV or JSONL, and read back.
//
// Both formats carry the same columns, in EpochMetrics order, snake_case:
//   epoch, train_loss, train_accuracy, val_loss, val_accuracy, val_topk, top_k, learning_rate,
//   loss_scale, skipped_steps, steps, samples, seconds, averaged_val_loss, averaged_val_accuracy
// CSV: a header, then one line per epoch; invariant culture; round-trip doubles ("R"); an empty
// cell is null; non-finite values are written NaN, Infinity, -Infinity (a diverged loss must stay
// visible in the log). JSONL: one object per line with every key; null for nulls; non-finite
// values as the strings "NaN", "Infinity", "-Infinity" (JSON has no literal for them).
// A task's own metrics (EpochMetrics.Metrics: mae, val_mae, ...) follow as extra columns (CSV) or
// keys (JSONL) named as the metrics; a reader puts every column it does not know into Metrics.
// Each epoch is flushed to the OS as it ends, so a crash keeps every completed epoch; a reader
// skips a final line that a crash cut short (no trailing newline and does not parse).
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace IlgpuTrain.Training;

/// <summary>The file format of a <see cref="MetricsLog"/>, chosen by extension.</summary>
public enum MetricsLogFormat
{
    /// <summary>Comma-separated values with a header line (<c>.csv</c>).</summary>
    Csv,

    /// <summary>One JSON object per line (<c>.jsonl</c>).</summary>
    Jsonl,
}

/// <summary>
/// Writes a <see cref="History"/> incrementally as CSV or JSONL, one line per epoch, flushed as each
/// epoch ends; <see cref="Read"/> parses either back.
/// </summary>
/// <remarks>
/// Columns: epoch, train_loss, train_accuracy, val_loss, val_accuracy, val_topk, top_k,
/// learning_rate, loss_scale, skipped_steps, steps, samples, seconds, averaged_val_loss,
/// averaged_val_accuracy (the EMA's or SWA's weights, empty without averaging). Nulls are empty CSV cells
/// and JSON nulls; doubles round-trip exactly.
/// </remarks>
public sealed class MetricsLog : IDisposable
{
    /// <summary>The column names, in file order.</summary>
    public static IReadOnlyList<string> Columns { get; } =
    [
        "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_topk", "top_k",
        "learning_rate", "loss_scale", "skipped_steps", "steps", "samples", "seconds",
        "averaged_val_loss", "averaged_val_accuracy",
    ];

    private readonly StreamWriter writer;
    private readonly IReadOnlyList<string> extra;

    private MetricsLog(string path, MetricsLogFormat format, StreamWriter writer, IReadOnlyList<string>? extra = null)
    {
        Path = path;
        Format = format;
        this.writer = writer;
        this.extra = extra ?? [];
    }

    /// <summary>The file written.</summary>
    public string Path { get; }

    /// <summary>The file's format.</summary>
    public MetricsLogFormat Format { get; }

    /// <summary>The format for a path: <c>.csv</c> or <c>.jsonl</c> (case-insensitive).</summary>
    /// <param name="path">A file path.</param>
    /// <returns>The format.</returns>
    /// <exception cref="ArgumentException">The extension is neither.</exception>
    public static MetricsLogFormat FormatOf(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string ext = System.IO.Path.GetExtension(path).ToLowerInvariant();
        return ext switch
        {
            ".csv" => MetricsLogFormat.Csv,
            ".jsonl" => MetricsLogFormat.Jsonl,
            _ => throw new ArgumentException(
                $"MetricsLog: cannot tell the format of '{path}' from its extension '{ext}'; use .csv or .jsonl.", nameof(path)),
        };
    }

    /// <summary>
    /// Opens a log. A new file (or <paramref name="append"/> false) starts empty, with the CSV
    /// header; with <paramref name="append"/> true an existing file is continued (a resumed run), less
    /// a last line that a crash cut short.
    /// </summary>
    /// <param name="path">A <c>.csv</c> or <c>.jsonl</c> path; its folder is created if missing.</param>
    /// <param name="append">Continue an existing file rather than replacing it.</param>
    /// <param name="metrics">The task's own metrics to write after the fixed columns (such as mae, val_mae), or null for none.</param>
    /// <returns>The open log; dispose it to close the file.</returns>
    public static MetricsLog Open(string path, bool append = false, IReadOnlyList<string>? metrics = null)
    {
        MetricsLogFormat format = FormatOf(path);
        string? dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir))
        {
            Directory.CreateDirectory(dir);
        }

        if (append && File.Exists(path))
        {
            DropPartialLastLine(path);
        }

        bool continuing = append && File.Exists(path) && new FileInfo(path).Length > 0;

        var stream = new FileStream(path, continuing ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.Read);
        var writer = new StreamWriter(stream, new UTF8Encoding(false)) { NewLine = "\n" };
        var log = new MetricsLog(path, format, writer, metrics);
        if (format == MetricsLogFormat.Csv && !continuing)
        {
            writer.WriteLine(string.Join(',', Columns.Concat(log.extra)));
            writer.Flush();
        }

        return log;
    }

    /// <summary>
    /// Writes a whole history to a new file (replacing any), atomically: a failed write (a full
    /// disk) leaves the previous file as it was.
    /// </summary>
    /// <param name="path">A <c>.csv</c> or <c>.jsonl</c> path.</param>
    /// <param name="history">The epochs to write.</param>
    public static void Write(string path, History history) => Write(path, history, s => s);

    /// <summary><see cref="Write(string, History)"/> through a stream wrapper (a test seam for write faults).</summary>
    internal static void Write(string path, History history, Func<Stream, Stream> wrap)
    {
        ArgumentNullException.ThrowIfNull(history);
        MetricsLogFormat format = FormatOf(path);
        AtomicFile.Write(path, stream =>
        {
            var writer = new StreamWriter(wrap(stream), new UTF8Encoding(false), 1 << 16, leaveOpen: true) { NewLine = "\n" };
            var extra = history.Epochs.SelectMany(m => m.Metrics?.Keys ?? []).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
            using var log = new MetricsLog(path, format, writer, extra);
            if (format == MetricsLogFormat.Csv)
            {
                writer.WriteLine(string.Join(',', Columns.Concat(extra)));
            }

            foreach (EpochMetrics m in history.Epochs)
            {
                log.Append(m);
            }
        });
    }

    /// <summary>Appends one epoch's line and flushes it to the file.</summary>
    /// <param name="m">The epoch's metrics.</param>
    public void Append(EpochMetrics m)
    {
        ArgumentNullException.ThrowIfNull(m);
        writer.WriteLine(Format == MetricsLogFormat.Csv ? CsvLine(m) : JsonLine(m));
        writer.Flush();
    }

    /// <summary>Closes the file.</summary>
    public void Dispose() => writer.Dispose();

    /// <summary>Reads a CSV or JSONL metrics log (format by extension) back into a history.</summary>
    /// <param name="path">The file.</param>
    /// <returns>The epochs in file order.</returns>
    /// <exception cref="FormatException">A line does not parse; the message names the file and line.</exception>
    public static History Read(string path)
    {
        MetricsLogFormat format = FormatOf(path);
        string text = File.ReadAllText(path, Encoding.UTF8);
        string[] lines = text.Split('\n');

        // The segment after the last '\n' is empty for a complete file, a cut-short line after a crash.
        bool lastIsPartial = lines[^1].Length > 0;
        var epochs = new List<EpochMetrics>();
        Dictionary<string, int>? header = null;
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].TrimEnd('\r');
            if (line.Trim().Length == 0)
            {
                continue;
            }

            bool partial = lastIsPartial && i == lines.Length - 1;
            try
            {
                if (format == MetricsLogFormat.Csv && header is null)
                {
                    header = CsvHeader(line);
                    continue;
                }

                epochs.Add(format == MetricsLogFormat.Csv ? ParseCsv(line, header!) : ParseJson(line));
            }
            catch (Exception e) when (e is FormatException or JsonException or InvalidOperationException or OverflowException)
            {
                if (partial)
                {
                    break;
                }

                throw new FormatException($"MetricsLog: {path} line {i + 1}: {e.Message} (line: '{Truncate(line)}')", e);
            }
        }

        return new History(epochs);
    }

    private string CsvLine(EpochMetrics m) => string.Join(',', new[]
    {
        I(m.Epoch), D(m.TrainLoss), D(m.TrainAccuracy), D(m.ValLoss), D(m.ValAccuracy), D(m.ValTopK), I(m.TopK),
        D(m.LearningRate), D(m.LossScale), I(m.SkippedSteps), I(m.Steps), m.Samples.ToString(CultureInfo.InvariantCulture), D(m.Seconds),
        D(m.AveragedValLoss), D(m.AveragedValAccuracy),
    }.Concat(extra.Select(name => D(m.Metrics is not null && m.Metrics.TryGetValue(name, out double v) ? v : null))));

    private static string I(int v) => v.ToString(CultureInfo.InvariantCulture);

    private static string D(double? v) => v is double d ? d.ToString("R", CultureInfo.InvariantCulture) : string.Empty;

    private static string JsonLine(EpochMetrics m)
    {
        var o = JsonFixed(m);
        foreach (var (name, value) in m.Metrics ?? new MetricSet([]))
        {
            o[name] = J(value);
        }

        return o.ToJsonString();
    }

    private static JsonObject JsonFixed(EpochMetrics m)
    {
        var o = new JsonObject
        {
            ["epoch"] = m.Epoch,
            ["train_loss"] = J(m.TrainLoss),
            ["train_accuracy"] = J(m.TrainAccuracy),
            ["val_loss"] = J(m.ValLoss),
            ["val_accuracy"] = J(m.ValAccuracy),
            ["val_topk"] = J(m.ValTopK),
            ["top_k"] = m.TopK,
            ["learning_rate"] = J(m.LearningRate),
            ["loss_scale"] = J(m.LossScale),
            ["skipped_steps"] = m.SkippedSteps,
            ["steps"] = m.Steps,
            ["samples"] = m.Samples,
            ["seconds"] = J(m.Seconds),
            ["averaged_val_loss"] = J(m.AveragedValLoss),
            ["averaged_val_accuracy"] = J(m.AveragedValAccuracy),
        };
        return o;
    }

    // The columns of a line that are none of the fixed ones: the task's own metrics, or null.
    private static MetricSet? Extra(IEnumerable<(string Name, double? Value)> cells)
    {
        var values = cells.Where(c => !Columns.Contains(c.Name) && c.Value is not null).Select(c => new KeyValuePair<string, double>(c.Name, c.Value!.Value)).ToList();
        return values.Count == 0 ? null : new MetricSet(values);
    }

    private static JsonNode? J(double? v) => v switch
    {
        null => null,
        double d when double.IsFinite(d) => JsonValue.Create(d),
        double d => JsonValue.Create(d.ToString(CultureInfo.InvariantCulture)),
    };

    private static Dictionary<string, int> CsvHeader(string line)
    {
        string[] names = line.Split(',');
        var map = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < names.Length; i++)
        {
            map[names[i].Trim()] = i;
        }

        foreach (string required in new[] { "epoch", "train_loss", "train_accuracy" })
        {
            if (!map.ContainsKey(required))
            {
                throw new FormatException($"the CSV header lacks the column '{required}'; expected {string.Join(',', Columns)}");
            }
        }

        return map;
    }

    private static EpochMetrics ParseCsv(string line, Dictionary<string, int> header)
    {
        string[] cells = line.Split(',');
        if (cells.Length != header.Count)
        {
            throw new FormatException($"expected {header.Count} cells, found {cells.Length}");
        }

        string? Cell(string name) =>
            header.TryGetValue(name, out int i) && cells[i].Trim().Length > 0 ? cells[i].Trim() : null;

        double? Nd(string name) => Cell(name) is string s ? ParseDouble(name, s) : null;
        double Rd(string name, double dflt = 0) => Nd(name) ?? dflt;
        long Rl(string name) => Cell(name) is string s
            ? long.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out long v) ? v
                : throw new FormatException($"column {name}: '{s}' is not an integer")
            : 0;

        if (Cell("epoch") is null || Cell("train_loss") is null || Cell("train_accuracy") is null)
        {
            throw new FormatException("epoch, train_loss and train_accuracy must not be empty");
        }

        return new EpochMetrics(
            checked((int)Rl("epoch")), Rd("train_loss"), Rd("train_accuracy"),
            Nd("val_loss"), Nd("val_accuracy"), Nd("val_topk"), checked((int)Rl("top_k")),
            Rd("learning_rate"), Nd("loss_scale"), checked((int)Rl("skipped_steps")), checked((int)Rl("steps")),
            Rl("samples"), Rd("seconds"))
        {
            Metrics = Extra(header.Keys.Select(name => (name, Nd(name)))),
            AveragedValLoss = Nd("averaged_val_loss"),
            AveragedValAccuracy = Nd("averaged_val_accuracy"),
        };
    }

    private static double ParseDouble(string name, string s) =>
        double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double v)
            ? v
            : throw new FormatException($"column {name}: '{s}' is not a number");

    private static EpochMetrics ParseJson(string line)
    {
        JsonObject o = JsonNode.Parse(line) as JsonObject ?? throw new FormatException("not a JSON object");

        double? Nd(string name) => o[name] switch
        {
            null => null,
            JsonValue v when v.TryGetValue(out double d) => d,
            JsonValue v when v.TryGetValue(out string? s) => ParseDouble(name, s),
            var other => throw new FormatException($"key {name}: {other.ToJsonString()} is not a number"),
        };
        double Rd(string name) => Nd(name) ?? throw new FormatException($"key {name} is missing or null");
        long Rl(string name, bool required = false) => o[name] switch
        {
            null when !required => 0,
            JsonValue v when v.TryGetValue(out long l) => l,
            var other => throw new FormatException($"key {name}: {other?.ToJsonString() ?? "null"} is not an integer"),
        };

        return new EpochMetrics(
            checked((int)Rl("epoch", required: true)), Rd("train_loss"), Rd("train_accuracy"),
            Nd("val_loss"), Nd("val_accuracy"), Nd("val_topk"), checked((int)Rl("top_k")),
            Nd("learning_rate") ?? 0, Nd("loss_scale"), checked((int)Rl("skipped_steps")), checked((int)Rl("steps")),
            Rl("samples"), Nd("seconds") ?? 0)
        {
            Metrics = Extra(o.Select(kv => kv.Key).ToList().Select(name => (name, Nd(name)))),
            AveragedValLoss = Nd("averaged_val_loss"),
            AveragedValAccuracy = Nd("averaged_val_accuracy"),
        };
    }

    // A crash can leave a last line cut short; it holds no complete epoch, so a resumed run drops it.
    private static void DropPartialLastLine(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        int end = Array.LastIndexOf(bytes, (byte)'\n') + 1;
        if (end < bytes.Length)
        {
            using var s = new FileStream(path, FileMode.Open, FileAccess.Write);
            s.SetLength(end);
        }
    }

    private static string Truncate(string s) => s.Length <= 120 ? s : s[..120] + "...";
}
