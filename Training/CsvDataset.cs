// Tabular data: a CSV file with a header row read by Sep (nietras.SeparatedValues), into an
// in-memory data set of float features and either float targets (regression, multi-label) or class
// labels (classification).
//
//   features  (N, D) float32, the feature columns in the order given (or the file's order)
//   targets   (N, T) float32 for regression and multi-label
//   labels    (N) int32 for classification: the class column's values in sorted order (numeric
//             when every value is an integer, else ordinal string order), as scikit-learn's
//             LabelEncoder numbers them
// Standardization (scikit-learn's StandardScaler): z = (x - mean) / std with the population std
// (ddof 0) of the training split; a constant column gets std 1, so it maps to 0.
using System.Globalization;
using nietras.SeparatedValues;

namespace IlgpuTrain.Training;

/// <summary>
/// A tabular data set in memory: float features (D per sample) and either float targets (T per
/// sample: regression values or multi-label 0/1 labels) or class labels. <see cref="CsvDataset"/>
/// reads one from a CSV file; the constructor takes arrays.
/// </summary>
public sealed class TabularDataset : ITargetDataset
{
    private readonly float[] _x;
    private readonly float[] _targets;
    private readonly int[] _labels;

    /// <summary>Creates a data set over the given arrays (not copied; do not modify them afterwards).</summary>
    /// <param name="name">A short name for messages.</param>
    /// <param name="x">Features, N x D floats.</param>
    /// <param name="featureNames">The D feature names.</param>
    /// <param name="targets">Targets, N x T floats (empty, with no target names, for classification).</param>
    /// <param name="targetNames">The T target names.</param>
    /// <param name="labels">Class labels, N ints in [0, classes), or null for a data set of targets (labels 0).</param>
    /// <param name="classNames">The class names (classes = their number), or null without labels.</param>
    public TabularDataset(string name, float[] x, IReadOnlyList<string> featureNames, float[] targets, IReadOnlyList<string> targetNames, int[]? labels = null, IReadOnlyList<string>? classNames = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(featureNames);
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(targetNames);
        int d = featureNames.Count, t = targetNames.Count;
        if (d < 1)
            throw new ArgumentException($"TabularDataset '{name}': no feature columns; give at least one.", nameof(featureNames));
        if (x.Length % d != 0)
            throw new ArgumentException($"TabularDataset '{name}': {x.Length} feature values is not a multiple of {d} features.", nameof(x));
        int n = x.Length / d;
        if (targets.LongLength != (long)n * t)
            throw new ArgumentException($"TabularDataset '{name}': {n} samples of {t} targets need {(long)n * t} target values but there are {targets.Length}.", nameof(targets));
        if ((labels is null) != (classNames is null))
            throw new ArgumentException($"TabularDataset '{name}': give both labels and class names, or neither.", nameof(labels));
        if (labels is not null && labels.Length != n)
            throw new ArgumentException($"TabularDataset '{name}': {n} samples but {labels.Length} labels.", nameof(labels));
        if (labels is not null && labels.FirstOrDefault(l => (uint)l >= (uint)classNames!.Count, -1) is int bad && bad != -1)
            throw new ArgumentException($"TabularDataset '{name}': label {bad} is outside [0, {classNames!.Count}).", nameof(labels));
        Name = name;
        _x = x;
        _targets = targets;
        _labels = labels ?? new int[n];
        FeatureNames = featureNames;
        TargetNames = targetNames;
        ClassNames = classNames ?? [];
        Count = n;
        SampleShape = new Shape(d);
        TargetShape = new Shape(t);
    }

    /// <inheritdoc/>
    public string Name { get; }

    /// <inheritdoc/>
    public int Count { get; }

    /// <inheritdoc/>
    public Shape SampleShape { get; }

    /// <summary>The number of classes (0 for a data set of targets).</summary>
    public int Classes => ClassNames.Count;

    /// <summary>Per-sample target shape: (T); (0) for classification, whose batches carry labels only.</summary>
    public Shape TargetShape { get; }

    /// <summary>The feature columns, in sample order.</summary>
    public IReadOnlyList<string> FeatureNames { get; }

    /// <summary>The target columns, in target order (empty for classification).</summary>
    public IReadOnlyList<string> TargetNames { get; }

    /// <summary>The class of each label: label i is ClassNames[i] (sorted; empty without classes).</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>The features, N x D floats (read-only by convention).</summary>
    public ReadOnlySpan<float> Features => _x;

    /// <summary>The targets, N x T floats.</summary>
    public ReadOnlySpan<float> Targets => _targets;

    /// <summary>The labels, N ints (zeros without classes).</summary>
    public ReadOnlySpan<int> Labels => _labels;

    /// <inheritdoc/>
    public void Gather(ReadOnlySpan<int> indices, Span<float> x, Span<int> labels)
    {
        int d = SampleShape[0];
        if (x.Length != (long)indices.Length * d || labels.Length != indices.Length)
            throw new ArgumentException($"{Name}.Gather: {indices.Length} samples need {(long)indices.Length * d} floats and {indices.Length} labels but got {x.Length} and {labels.Length}.", nameof(x));
        for (int k = 0; k < indices.Length; k++)
        {
            int s = Check(indices[k]);
            _x.AsSpan(s * d, d).CopyTo(x.Slice(k * d, d));
            labels[k] = _labels[s];
        }
    }

    /// <inheritdoc/>
    public void GatherTargets(ReadOnlySpan<int> indices, Span<float> targets)
    {
        int t = TargetShape[0];
        if (targets.Length != (long)indices.Length * t)
            throw new ArgumentException($"{Name}.GatherTargets: {indices.Length} samples of {t} targets need {(long)indices.Length * t} floats but got {targets.Length}.", nameof(targets));
        for (int k = 0; k < indices.Length; k++)
            _targets.AsSpan(Check(indices[k]) * t, t).CopyTo(targets.Slice(k * t, t));
    }

    /// <summary>
    /// A seeded random split into a training part and a validation part of
    /// round(<paramref name="validationFraction"/> x Count) samples; a pure function of (seed, Count).
    /// </summary>
    /// <param name="validationFraction">Fraction of samples for validation, in [0, 1].</param>
    /// <param name="seed">The seed.</param>
    /// <returns>The two disjoint parts (copies), whose union is this data set.</returns>
    public (TabularDataset Train, TabularDataset Validation) Split(double validationFraction, ulong seed)
    {
        if (!(validationFraction >= 0 && validationFraction <= 1))
            throw new ArgumentOutOfRangeException(nameof(validationFraction), validationFraction, $"{Name}.Split: the validation fraction must be in [0, 1], got {validationFraction}.");
        int validation = (int)Math.Round(validationFraction * Count, MidpointRounding.AwayFromZero);
        var order = DataLoader.Permutation(Count, seed, SplitStream, 0);
        return (Select($"{Name} (train split)", order[..(Count - validation)]), Select($"{Name} (validation split)", order[(Count - validation)..]));
    }

    /// <summary>This data set with its features standardized by <paramref name="scaler"/>.</summary>
    /// <param name="scaler">Means and standard deviations, one per feature (from the training split).</param>
    /// <returns>A new data set (the targets and labels are shared).</returns>
    public TabularDataset Standardize(Standardization scaler)
    {
        ArgumentNullException.ThrowIfNull(scaler);
        int d = SampleShape[0];
        if (scaler.Mean.Count != d || scaler.Std.Count != d)
            throw new ArgumentException($"{Name}.Standardize: the scaler has {scaler.Mean.Count} means and {scaler.Std.Count} standard deviations for {d} features; fit it on a split of this data set.", nameof(scaler));
        var x = _x.ToArray();
        scaler.Apply(x);
        return new TabularDataset(Name, x, FeatureNames, _targets, TargetNames, Classes > 0 ? _labels : null, Classes > 0 ? ClassNames : null);
    }

    private TabularDataset Select(string name, int[] rows)
    {
        int d = SampleShape[0], t = TargetShape[0];
        var x = new float[rows.Length * d];
        var y = new float[rows.Length * t];
        var labels = new int[rows.Length];
        for (int k = 0; k < rows.Length; k++)
        {
            _x.AsSpan(rows[k] * d, d).CopyTo(x.AsSpan(k * d, d));
            _targets.AsSpan(rows[k] * t, t).CopyTo(y.AsSpan(k * t, t));
            labels[k] = _labels[rows[k]];
        }

        return new TabularDataset(name, x, FeatureNames, y, TargetNames, Classes > 0 ? labels : null, Classes > 0 ? ClassNames : null);
    }

    // Keeps the split's permutation apart from the loader's shuffles under the same seed.
    private const uint SplitStream = 0x53504C54; // "SPLT"

    private int Check(int i) => (uint)i < (uint)Count ? i
        : throw new ArgumentOutOfRangeException(nameof(i), i, $"{Name}: sample index {i} is outside [0, {Count}).");
}

/// <summary>
/// Per-feature means and standard deviations (scikit-learn's StandardScaler): fit them on the
/// training split only, apply them to every split, and save them with the model.
/// </summary>
/// <param name="Mean">The mean of each feature.</param>
/// <param name="Std">The population standard deviation (ddof 0) of each feature; 1 for a constant feature.</param>
public sealed record Standardization(IReadOnlyList<double> Mean, IReadOnlyList<double> Std)
{
    /// <summary>The means and standard deviations of <paramref name="train"/>'s features, in float64.</summary>
    /// <param name="train">The training split.</param>
    /// <returns>The scaler.</returns>
    public static Standardization Fit(TabularDataset train)
    {
        ArgumentNullException.ThrowIfNull(train);
        int n = train.Count, d = train.SampleShape[0];
        if (n == 0)
            throw new ArgumentException($"Standardization.Fit: {train.Name} has no samples to compute means from.", nameof(train));
        var mean = new double[d];
        var std = new double[d];
        var x = train.Features;
        for (int j = 0; j < d; j++)
        {
            double sum = 0;
            for (int i = 0; i < n; i++)
                sum += x[(i * d) + j];
            double m = sum / n, sq = 0;
            for (int i = 0; i < n; i++)
                sq += (x[(i * d) + j] - m) * (x[(i * d) + j] - m);
            mean[j] = m;
            double s = Math.Sqrt(sq / n);
            std[j] = s > 0 ? s : 1;
        }

        return new Standardization(mean, std);
    }

    /// <summary>
    /// Standardizes rows of features in place: z = (x − mean) / std per feature, computed in float64 and rounded to
    /// float32 (what <see cref="TabularDataset.Standardize"/> does to every split, and <see cref="Predictor"/> to raw rows).
    /// </summary>
    /// <param name="rows">Whole rows of <see cref="Mean"/>'s count of features, back to back.</param>
    /// <exception cref="ArgumentException">The rows are not whole rows of the scaler's features.</exception>
    public void Apply(Span<float> rows)
    {
        int d = Mean.Count;
        if (Std.Count != d)
            throw new ArgumentException($"Standardization: {d} means but {Std.Count} standard deviations; give one of each per feature.", nameof(rows));
        if (d == 0 || rows.Length % d != 0)
            throw new ArgumentException($"Standardization: {rows.Length} values are not whole rows of {d} features; pass rows of exactly the scaler's features.", nameof(rows));
        for (int i = 0; i < rows.Length; i++)
            rows[i] = (float)((rows[i] - Mean[i % d]) / Std[i % d]);
    }
}

/// <summary>
/// Reads a CSV file (a header row, comma-separated, RFC 4180 quoting) into a
/// <see cref="TabularDataset"/>: feature columns and either target columns (regression, multi-label)
/// or a class column (classification).
/// </summary>
/// <remarks>
/// Numbers are parsed in the invariant culture (a point as the decimal separator). A file that
/// cannot be read as asked throws an <see cref="InvalidDataException"/> (<see cref="DataFormat"/>)
/// naming the file, the line and the column: an empty file, a missing column, a row with too few or
/// too many cells, a value that is not a number. A missing file throws <see cref="FileNotFoundException"/>.
/// </remarks>
/// <example>
/// <code>
/// var data = CsvDataset.Load("houses.csv", targets: ["price"]);
/// var (train, validation) = data.Split(0.2, seed: 0);
/// var scaler = Standardization.Fit(train);
/// train = train.Standardize(scaler);
/// validation = validation.Standardize(scaler);
/// </code>
/// </example>
public static class CsvDataset
{
    /// <summary>Reads a CSV file of features and float targets (regression values or multi-label 0/1 columns).</summary>
    /// <param name="path">The file.</param>
    /// <param name="targets">The target columns, at least one.</param>
    /// <param name="features">The feature columns, or null for every other column.</param>
    /// <returns>The data set, named after the file.</returns>
    public static TabularDataset Load(string path, IReadOnlyList<string> targets, IReadOnlyList<string>? features = null)
    {
        ArgumentNullException.ThrowIfNull(targets);
        if (targets.Count == 0)
            throw new ArgumentException($"CsvDataset: no target column given for {path}; name at least one.", nameof(targets));
        var (x, y, _, featureNames) = Read(path, targets, features, classColumn: false);
        return new TabularDataset(Path.GetFileName(path), x, featureNames, y, targets);
    }

    /// <summary>
    /// Reads a CSV file of features and a class column: its values (strings or integers) become
    /// classes 0..C-1 in sorted order (numeric order when every value is an integer, else ordinal
    /// string order); <see cref="TabularDataset.ClassNames"/> gives the mapping.
    /// </summary>
    /// <param name="path">The file.</param>
    /// <param name="classColumn">The class column.</param>
    /// <param name="features">The feature columns, or null for every other column.</param>
    /// <returns>The data set, named after the file.</returns>
    public static TabularDataset LoadClassification(string path, string classColumn, IReadOnlyList<string>? features = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(classColumn);
        var (x, _, classes, featureNames) = Read(path, [classColumn], features, classColumn: true);
        bool numeric = classes.All(c => long.TryParse(c, NumberStyles.Integer, CultureInfo.InvariantCulture, out _));
        var names = classes.Distinct(StringComparer.Ordinal)
            .OrderBy(c => numeric ? long.Parse(c, CultureInfo.InvariantCulture) : 0)
            .ThenBy(c => c, StringComparer.Ordinal)
            .ToArray();
        var index = names.Select((c, i) => (c, i)).ToDictionary(p => p.c, p => p.i, StringComparer.Ordinal);
        var labels = classes.Select(c => index[c]).ToArray();
        return new TabularDataset(Path.GetFileName(path), x, featureNames, [], [], labels, names);
    }

    private static (float[] X, float[] Y, List<string> Classes, string[] FeatureNames) Read(string path, IReadOnlyList<string> targets, IReadOnlyList<string>? features, bool classColumn)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!File.Exists(path))
            throw new FileNotFoundException($"CsvDataset: {path}: no such file.", path);
        using var reader = Sep.New(',').Reader(o => o with { Unescape = true, DisableColCountCheck = true, Trim = SepTrim.Outer }).FromFile(path);
        if (reader.Header.IsEmpty)
            throw DataFormat.Error(path, "the file is empty; a CSV data set needs a header row of column names and at least one row of values.");
        var header = reader.Header.ColNames.ToList();
        int Column(string name, string role) => header.IndexOf(name) is int i and >= 0 ? i
            : throw DataFormat.Error(path, $"line 1 (the header): no {role} column \"{name}\"; the columns are {string.Join(", ", header)}.");
        var targetCols = targets.Select(t => Column(t, classColumn ? "class" : "target")).ToArray();
        var featureNames = features?.ToArray() ?? header.Where(h => !targets.Contains(h)).ToArray();
        if (featureNames.Length == 0)
            throw DataFormat.Error(path, $"line 1 (the header): no feature columns besides {string.Join(", ", targets)}; add feature columns or name them.");
        var featureCols = featureNames.Select(f => Column(f, "feature")).ToArray();
        if (targetCols.Intersect(featureCols).Any())
            throw new ArgumentException($"CsvDataset: {path}: a column is both a feature and a target ({string.Join(", ", featureNames.Intersect(targets))}); name it once.", nameof(features));

        var x = new List<float>();
        var y = new List<float>();
        var classes = new List<string>();
        foreach (var row in reader)
        {
            int line = row.LineNumberFrom;
            if (row.ColCount != header.Count)
            {
                // A blank line (one empty cell) is skipped, as pandas does.
                if (row.ColCount == 1 && row[0].Span.IsWhiteSpace())
                    continue;
                throw DataFormat.Error(path, $"line {line}: {row.ColCount} cell(s), but the header has {header.Count} columns; every row needs one value per column.");
            }

            foreach (int c in featureCols)
                x.Add(Number(path, line, header[c], row[c].Span));
            if (classColumn)
            {
                string label = row[targetCols[0]].ToString();
                if (label.Length == 0)
                    throw DataFormat.Error(path, $"line {line}, column \"{header[targetCols[0]]}\": the class is empty; give every row a class.");
                classes.Add(label);
            }
            else
            {
                foreach (int c in targetCols)
                    y.Add(Number(path, line, header[c], row[c].Span));
            }
        }

        if (x.Count == 0)
            throw DataFormat.Error(path, "the file has a header but no rows of values; a CSV data set needs at least one row.");
        return ([.. x], [.. y], classes, featureNames);
    }

    private static float Number(string path, int line, string column, ReadOnlySpan<char> cell) =>
        float.TryParse(cell, NumberStyles.Float, CultureInfo.InvariantCulture, out float v) && float.IsFinite(v) ? v
            : throw DataFormat.Error(path, $"line {line}, column \"{column}\": \"{cell.ToString()}\" is not a finite number (use a point as the decimal separator).");
}
