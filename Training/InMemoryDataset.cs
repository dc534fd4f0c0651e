namespace IlgpuTrain.Training;

/// <summary>
/// A data set held in host arrays: features (already normalized, row-major per sample) and labels.
/// <see cref="Subset"/>, <see cref="Take"/> and <see cref="Split"/> share the arrays (no copy).
/// </summary>
public sealed class InMemoryDataset : IDataset
{
    private readonly float[] _x;
    private readonly int[] _labels;

    // The sample indices of this view into the arrays: _index[i] when a split made it, else _start + i.
    private readonly int[]? _index;
    private readonly int _start;
    private readonly int _sampleLength;

    /// <summary>Creates a data set over the given arrays (not copied; do not modify them afterwards).</summary>
    /// <param name="name">A short name for messages, such as "Fashion-MNIST train".</param>
    /// <param name="x">Features: Count x SampleShape.Length floats.</param>
    /// <param name="labels">Labels in [0, <paramref name="classes"/>), one per sample.</param>
    /// <param name="sampleShape">Per-sample shape, without the batch.</param>
    /// <param name="classes">Number of classes (at least 1).</param>
    /// <param name="classNames">Optional class names, <paramref name="classes"/> of them.</param>
    /// <exception cref="ArgumentException">The lengths disagree, or a label is out of range.</exception>
    public InMemoryDataset(string name, float[] x, int[] labels, Shape sampleShape, int classes, IReadOnlyList<string>? classNames = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(sampleShape);
        if (classes < 1)
            throw new ArgumentOutOfRangeException(nameof(classes), classes, $"InMemoryDataset '{name}': classes must be at least 1, got {classes}.");
        if (sampleShape.Length < 1)
            throw new ArgumentException($"InMemoryDataset '{name}': sample shape {sampleShape} has no elements.", nameof(sampleShape));
        if (x.LongLength != labels.LongLength * sampleShape.Length)
            throw new ArgumentException($"InMemoryDataset '{name}': {labels.Length} labels with sample shape {sampleShape} need {labels.LongLength * sampleShape.Length} features but x has {x.Length}.", nameof(x));
        for (int i = 0; i < labels.Length; i++)
        {
            if ((uint)labels[i] >= (uint)classes)
                throw new ArgumentException($"InMemoryDataset '{name}': label {i} is {labels[i]}, outside [0, {classes}).", nameof(labels));
        }

        if (classNames is not null && classNames.Count != classes)
            throw new ArgumentException($"InMemoryDataset '{name}': {classNames.Count} class names for {classes} classes.", nameof(classNames));
        Name = name;
        _x = x;
        _labels = labels;
        _sampleLength = checked((int)sampleShape.Length);
        SampleShape = sampleShape;
        Classes = classes;
        ClassNames = classNames ?? Enumerable.Range(0, classes).Select(c => c.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Count = labels.Length;
    }

    private InMemoryDataset(InMemoryDataset parent, string name, int[]? index, int start, int count)
    {
        Name = name;
        _x = parent._x;
        _labels = parent._labels;
        _sampleLength = parent._sampleLength;
        SampleShape = parent.SampleShape;
        Classes = parent.Classes;
        ClassNames = parent.ClassNames;
        _index = index;
        _start = start;
        Count = count;
    }

    /// <inheritdoc/>
    public string Name { get; }

    /// <inheritdoc/>
    public int Count { get; }

    /// <inheritdoc/>
    public Shape SampleShape { get; }

    /// <inheritdoc/>
    public int Classes { get; }

    /// <summary>The class names, <see cref="Classes"/> of them ("0", "1", ... when none were given).</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>The features of sample <paramref name="i"/> (SampleShape.Length floats).</summary>
    /// <param name="i">Index in [0, Count).</param>
    /// <returns>A read-only view of the sample.</returns>
    public ReadOnlySpan<float> Features(int i) => _x.AsSpan(checked(Source(i) * _sampleLength), _sampleLength);

    /// <summary>The label of sample <paramref name="i"/>.</summary>
    /// <param name="i">Index in [0, Count).</param>
    /// <returns>The label.</returns>
    public int Label(int i) => _labels[Source(i)];

    /// <summary>How many samples each class has.</summary>
    /// <returns>Classes counts.</returns>
    public int[] LabelCounts()
    {
        var counts = new int[Classes];
        for (int i = 0; i < Count; i++)
            counts[Label(i)]++;
        return counts;
    }

    /// <inheritdoc/>
    public void Gather(ReadOnlySpan<int> indices, Span<float> x, Span<int> labels)
    {
        if (x.Length != (long)indices.Length * _sampleLength)
            throw new ArgumentException($"{Name}.Gather: {indices.Length} samples of shape {SampleShape} need {(long)indices.Length * _sampleLength} floats but x has {x.Length}.", nameof(x));
        if (labels.Length != indices.Length)
            throw new ArgumentException($"{Name}.Gather: {indices.Length} samples need {indices.Length} labels but labels has {labels.Length}.", nameof(labels));
        for (int k = 0; k < indices.Length; k++)
        {
            int s = Source(indices[k]);
            _x.AsSpan(s * _sampleLength, _sampleLength).CopyTo(x.Slice(k * _sampleLength, _sampleLength));
            labels[k] = _labels[s];
        }
    }

    /// <summary>Samples [start, start + count) of this data set, sharing its arrays.</summary>
    /// <param name="start">First sample.</param>
    /// <param name="count">Number of samples.</param>
    /// <returns>The subset.</returns>
    public InMemoryDataset Subset(int start, int count)
    {
        if (start < 0 || count < 0 || start > Count - count)
            throw new ArgumentOutOfRangeException(nameof(count), $"{Name}.Subset: [{start}, {(long)start + count}) is not inside [0, {Count}).");
        string name = $"{Name}[{start}..{start + count}]";
        return _index is null
            ? new InMemoryDataset(this, name, null, _start + start, count)
            : new InMemoryDataset(this, name, _index[start..(start + count)], 0, count);
    }

    /// <summary>The first <paramref name="n"/> samples (all of them when n &gt;= Count).</summary>
    /// <param name="n">How many (zero or more).</param>
    /// <returns>The subset.</returns>
    public InMemoryDataset Take(int n)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        return Subset(0, Math.Min(n, Count));
    }

    /// <summary>
    /// A seeded random split into a training part and a validation part of
    /// round(<paramref name="validationFraction"/> x Count) samples. The permutation is a pure
    /// function of (<paramref name="seed"/>, Count): the same seed gives the same split.
    /// </summary>
    /// <param name="validationFraction">Fraction of samples for validation, in [0, 1].</param>
    /// <param name="seed">The seed.</param>
    /// <returns>The two disjoint parts, whose union is this data set.</returns>
    public (InMemoryDataset Train, InMemoryDataset Validation) Split(double validationFraction, ulong seed)
    {
        if (!(validationFraction >= 0 && validationFraction <= 1))
            throw new ArgumentOutOfRangeException(nameof(validationFraction), validationFraction, $"{Name}.Split: the validation fraction must be in [0, 1], got {validationFraction}.");
        int validation = (int)Math.Round(validationFraction * Count, MidpointRounding.AwayFromZero);
        var order = DataLoader.Permutation(Count, seed, SplitStream, 0);
        for (int i = 0; i < order.Length; i++)
            order[i] = Source(order[i]);
        int train = Count - validation;
        return (new InMemoryDataset(this, $"{Name} (train split)", order[..train], 0, train),
                new InMemoryDataset(this, $"{Name} (validation split)", order[train..], 0, validation));
    }

    // Keeps the split's permutation apart from the loader's shuffles under the same seed.
    private const uint SplitStream = 0x53504C54; // "SPLT"

    private int Source(int i)
    {
        if ((uint)i >= (uint)Count)
            throw new ArgumentOutOfRangeException(nameof(i), i, $"{Name}: sample index {i} is outside [0, {Count}).");
        return _index is null ? _start + i : _index[i];
    }
}
