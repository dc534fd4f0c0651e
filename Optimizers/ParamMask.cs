namespace IlgpuTrain.Optimizers;

/// <summary>
/// Chooses parameters by path or shape: which ones weight decay applies to, which a
/// <c>Masked</c> transformation updates, which are frozen. Evaluated once per layout.
/// </summary>
/// <example>
/// <code>
/// ParamMask.ByRank(minRank: 2)              // weights, not biases or norm scales (common for AdamW)
/// ParamMask.ByName("**.weight", "fc.*")    // globs over state_dict paths, as ParamFilter.Glob
/// ParamMask.Where(p => p.Length > 1000, "large tensors")
/// </code>
/// </example>
public sealed class ParamMask
{
    private readonly Func<ParamInfo, bool> _predicate;

    // The mask this one is the Not() of, so FusionPlan can tell Freeze.AllExcept's pair apart.
    private readonly ParamMask? _negationOf;

    private ParamMask(Func<ParamInfo, bool> predicate, string description, ParamMask? negationOf = null)
    {
        _predicate = predicate;
        _negationOf = negationOf;
        Description = description;
    }

    /// <summary>Every parameter.</summary>
    public static ParamMask All { get; } = new(_ => true, "all");

    /// <summary>No parameter.</summary>
    public static ParamMask None { get; } = new(_ => false, "none");

    /// <summary>What the mask selects, in words.</summary>
    public string Description { get; }

    /// <summary>
    /// Parameters whose path matches any glob, in the one dialect every parameter path in the
    /// library uses (<see cref="ParamFilter.Glob"/>): <c>*</c> matches within one path segment,
    /// <c>**</c> across segments, <c>?</c> one character; case-sensitive. So <c>"*.bias"</c> is the
    /// biases of top-level layers and <c>"**.bias"</c> every bias at any depth (<c>**.</c> is zero or
    /// more segments, so a top-level <c>bias</c> too).
    /// </summary>
    /// <param name="patterns">Patterns such as <c>**.weight</c> or <c>0.*</c>.</param>
    /// <returns>The mask.</returns>
    public static ParamMask ByName(params string[] patterns)
    {
        ArgumentNullException.ThrowIfNull(patterns);
        if (patterns.Length == 0 || patterns.Any(string.IsNullOrEmpty))
            throw new ArgumentException("ParamMask.ByName needs at least one non-empty pattern, e.g. \"**.weight\".", nameof(patterns));
        var filter = ParamFilter.Glob(patterns);
        return new(p => filter.Matches(p.Path), $"path matches {string.Join(" or ", patterns)}");
    }

    /// <summary>Parameters of rank at least <paramref name="minRank"/> (2: matrices and kernels, not biases or norm scales).</summary>
    /// <param name="minRank">Smallest rank selected.</param>
    /// <returns>The mask.</returns>
    public static ParamMask ByRank(int minRank = 2)
    {
        if (minRank < 0)
            throw new ArgumentOutOfRangeException(nameof(minRank), minRank, "ParamMask.ByRank: minRank must be zero or more.");
        return new(p => p.Shape.Rank >= minRank, $"rank >= {minRank}");
    }

    /// <summary>Parameters for which <paramref name="predicate"/> holds.</summary>
    /// <param name="predicate">The test.</param>
    /// <param name="description">What it selects, for messages and printing.</param>
    /// <returns>The mask.</returns>
    public static ParamMask Where(Func<ParamInfo, bool> predicate, string description = "predicate")
    {
        ArgumentNullException.ThrowIfNull(predicate);
        return new(predicate, description);
    }

    /// <summary>
    /// The parameters a path filter chooses, such as the trainable filter of a fine-tuning run
    /// (<c>Freezing.Frozen("0.*")</c>): the gradient side and the optimizer side then agree.
    /// Its globs are the same dialect as <see cref="ByName"/>'s.
    /// </summary>
    /// <param name="filter">The filter.</param>
    /// <returns>The mask.</returns>
    public static ParamMask From(ParamFilter filter)
    {
        ArgumentNullException.ThrowIfNull(filter);
        return new(p => filter.Matches(p.Path), filter.Description);
    }

    /// <summary>The complement.</summary>
    /// <returns>The mask.</returns>
    public ParamMask Not() => new(p => !_predicate(p), $"not ({Description})", this);

    /// <summary>Whether one mask was made from the other by <see cref="Not"/> (so they select complementary parameters).</summary>
    internal bool IsComplementOf(ParamMask other) => ReferenceEquals(_negationOf, other) || ReferenceEquals(other._negationOf, this);

    /// <summary>Parameters selected by both masks.</summary>
    /// <param name="other">The other mask.</param>
    /// <returns>The mask.</returns>
    public ParamMask And(ParamMask other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return new(p => _predicate(p) && other._predicate(p), $"({Description}) and ({other.Description})");
    }

    /// <summary>Parameters selected by either mask.</summary>
    /// <param name="other">The other mask.</param>
    /// <returns>The mask.</returns>
    public ParamMask Or(ParamMask other)
    {
        ArgumentNullException.ThrowIfNull(other);
        return new(p => _predicate(p) || other._predicate(p), $"({Description}) or ({other.Description})");
    }

    /// <summary>Whether the mask selects <paramref name="parameter"/>.</summary>
    /// <param name="parameter">The parameter.</param>
    /// <returns>True when selected.</returns>
    public bool Selects(ParamInfo parameter) => _predicate(parameter);

    /// <summary>The Float32 parameters of <paramref name="layout"/> the mask selects, in layout order.</summary>
    /// <param name="layout">The layout.</param>
    /// <returns>The selected parameters.</returns>
    public IReadOnlyList<ParamInfo> Select(ParamLayout layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        return layout.Params.Where(p => p.DType == DType.Float32 && _predicate(p)).ToList();
    }

    /// <summary>
    /// A device byte mask over the flat Float32 buffer (1 where selected), or null when the mask
    /// selects every Float32 element (kernels then skip the mask read).
    /// </summary>
    /// <param name="parameters">The parameters whose layout and device are used.</param>
    /// <returns>The buffer (dispose it with the state that holds it), or null.</returns>
    public DeviceMask? ToDevice(ParamTree parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var layout = parameters.Layout;
        var bytes = new byte[layout.LengthOf(DType.Float32)];
        bool all = true;
        foreach (var p in layout.Params.Where(p => p.DType == DType.Float32))
        {
            bool on = _predicate(p);
            all &= on;
            if (on)
                bytes.AsSpan((int)p.Offset, (int)p.Length).Fill(1);
        }
        if (all)
            return null;
        var buffer = parameters.Device.Pool.Rent(bytes.Length);
        Transfer.ToDevice<byte>(parameters.Device.Stream, bytes, buffer.View<byte>(bytes.Length));
        return new DeviceMask(buffer, bytes.Length, Description);
    }

    /// <inheritdoc/>
    public override string ToString() => Description;
}

/// <summary>A per-element 0/1 byte mask over a flat Float32 parameter buffer, in device memory.</summary>
public sealed class DeviceMask : IDisposable
{
    private readonly PooledBuffer _buffer;

    internal DeviceMask(PooledBuffer buffer, long length, string description)
    {
        _buffer = buffer;
        Length = length;
        Description = description;
    }

    /// <summary>Elements (the flat Float32 buffer's length).</summary>
    public long Length { get; }

    /// <summary>What it selects.</summary>
    public string Description { get; }

    /// <summary>The bytes.</summary>
    public ArrayView<byte> View => _buffer.View<byte>(Length);

    /// <inheritdoc/>
    public void Dispose() => _buffer.Dispose();

    /// <inheritdoc/>
    public override string ToString() => $"mask({Description})";
}
