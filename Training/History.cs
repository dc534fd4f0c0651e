using System.Collections;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

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
    /// <summary>
    /// The task's metrics that have no member of their own (accuracy and top-k have theirs), on the
    /// training set by name ("mae") and on the validation set with "val_" ("val_mae"); null when
    /// there are none (classification).
    /// </summary>
    public MetricSet? Metrics { get; init; }

    /// <summary>
    /// The value of a monitor: loss, accuracy, val_loss, val_accuracy, val_top_k, or a task metric
    /// such as mae or val_mae; null when this epoch has none (no validation set, or a NaN accuracy of
    /// a task without accuracy).
    /// </summary>
    /// <param name="monitor">The monitor's name.</param>
    /// <returns>The value, or null.</returns>
    public double? Value(string monitor)
    {
        ArgumentNullException.ThrowIfNull(monitor);
        return monitor switch
        {
            "loss" => TrainLoss,
            "accuracy" => double.IsNaN(TrainAccuracy) && Metrics is not null ? null : TrainAccuracy,
            "val_loss" => ValLoss,
            "val_accuracy" => ValAccuracy,
            "val_top_k" => ValTopK,
            _ => Metrics is not null && Metrics.TryGetValue(monitor, out double v) ? v : null,
        };
    }

    /// <summary>Validation loss of the averaged weights (EMA or SWA, <see cref="TrainerOptions.Averaging"/>), or null.</summary>
    public double? AveragedValLoss { get; init; }

    /// <summary>Validation top-1 accuracy of the averaged weights, or null.</summary>
    public double? AveragedValAccuracy { get; init; }
}

/// <summary>
/// Named metric values (an immutable value: two sets are equal when they hold the same names and
/// values), such as {"mae": 0.21, "val_mae": 0.25}.
/// </summary>
[JsonConverter(typeof(MetricSetConverter))]
public sealed class MetricSet : IReadOnlyDictionary<string, double>, IEquatable<MetricSet>
{
    private readonly SortedDictionary<string, double> _values;

    /// <summary>Creates a set.</summary>
    /// <param name="values">Name-value pairs; names must be distinct and non-empty.</param>
    public MetricSet(IEnumerable<KeyValuePair<string, double>> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        _values = new SortedDictionary<string, double>(StringComparer.Ordinal);
        foreach (var (name, value) in values)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(name);
            if (!_values.TryAdd(name, value))
                throw new ArgumentException($"MetricSet: the metric \"{name}\" appears twice; give each name once.", nameof(values));
        }
    }

    /// <inheritdoc/>
    public int Count => _values.Count;

    /// <inheritdoc/>
    public IEnumerable<string> Keys => _values.Keys;

    /// <inheritdoc/>
    public IEnumerable<double> Values => _values.Values;

    /// <inheritdoc/>
    public double this[string key] => _values.TryGetValue(key, out double v) ? v
        : throw new KeyNotFoundException($"MetricSet: no metric \"{key}\"; it has {string.Join(", ", _values.Keys)}.");

    /// <inheritdoc/>
    public bool ContainsKey(string key) => _values.ContainsKey(key);

    /// <inheritdoc/>
    public bool TryGetValue(string key, out double value) => _values.TryGetValue(key, out value);

    /// <inheritdoc/>
    public IEnumerator<KeyValuePair<string, double>> GetEnumerator() => _values.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>Whether both hold the same names with the same values (NaN equals NaN).</summary>
    /// <param name="other">The other set.</param>
    /// <returns>True when equal.</returns>
    public bool Equals(MetricSet? other) =>
        other is not null && other.Count == Count && _values.All(kv => other.TryGetValue(kv.Key, out double v) && v.Equals(kv.Value));

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as MetricSet);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var h = new HashCode();
        foreach (var (k, v) in _values)
        {
            h.Add(k);
            h.Add(v);
        }

        return h.ToHashCode();
    }

    /// <inheritdoc/>
    public override string ToString() => string.Join(", ", _values.Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key} {kv.Value:G6}")));
}

/// <summary>Reads and writes a <see cref="MetricSet"/> as a JSON object of numbers (non-finite values as "NaN", "Infinity", "-Infinity").</summary>
internal sealed class MetricSetConverter : JsonConverter<MetricSet>
{
    public override MetricSet Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
            throw new JsonException("metrics: expected an object of name: number.");
        var values = new List<KeyValuePair<string, double>>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            string name = reader.GetString() ?? throw new JsonException("metrics: a null name.");
            reader.Read();
            double v = reader.TokenType switch
            {
                JsonTokenType.Number => reader.GetDouble(),
                JsonTokenType.String when double.TryParse(reader.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => d,
                _ => throw new JsonException($"metrics: \"{name}\" is not a number."),
            };
            values.Add(new(name, v));
        }

        return new MetricSet(values);
    }

    public override void Write(Utf8JsonWriter writer, MetricSet value, JsonSerializerOptions options)
    {
        writer.WriteStartObject();
        foreach (var (k, v) in value)
        {
            if (double.IsFinite(v))
                writer.WriteNumber(k, v);
            else
                writer.WriteString(k, v.ToString(CultureInfo.InvariantCulture));
        }

        writer.WriteEndObject();
    }
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
