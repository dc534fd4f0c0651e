namespace IlgpuTrain.Layers;

/// <summary>
/// Layers applied in order, as torch.nn.Sequential: the i-th layer's parameters are named
/// <c>"{i}.{name}"</c>. Built with <c>a &gt;&gt; b</c>, <c>a.Then(b)</c> or the constructor.
/// </summary>
public sealed record Sequential : Layer
{
    /// <summary>Creates a pipeline.</summary>
    /// <param name="layers">The layers, in order.</param>
    public Sequential(params Layer[] layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        for (int i = 0; i < layers.Length; i++)
        {
            if (layers[i] is null)
                throw new ArgumentNullException(nameof(layers), $"Sequential: layer {i} is null.");
        }

        Layers = [.. layers];
    }

    /// <summary>The layers, in order.</summary>
    public ImmutableArray<Layer> Layers { get; }

    /// <summary>The i-th layer.</summary>
    /// <param name="i">Index.</param>
    /// <returns>The layer.</returns>
    public Layer this[int i] => Layers[i];

    /// <summary>Number of layers.</summary>
    public int Count => Layers.Length;

    /// <inheritdoc/>
    public override string Describe() => $"Sequential({Layers.Length} layers)";

    /// <inheritdoc/>
    public override IEnumerable<(string Name, Layer Layer)> Children() => Layers.Select((l, i) => (i.ToString(System.Globalization.CultureInfo.InvariantCulture), l));

    /// <inheritdoc/>
    public override IReadOnlyList<Shape> ChildInputShapes(Shape input)
    {
        var shapes = new List<Shape>(Layers.Length);
        var s = input;
        for (int i = 0; i < Layers.Length; i++)
        {
            shapes.Add(s);
            s = Wrap(i, s, Layers[i].OutputShape);
        }

        return shapes;
    }

    /// <inheritdoc/>
    public override Shape OutputShape(Shape input)
    {
        var s = input;
        for (int i = 0; i < Layers.Length; i++)
            s = Wrap(i, s, Layers[i].OutputShape);
        return s;
    }

    /// <inheritdoc/>
    public override Tensor Forward(LayerContext ctx, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        var h = x;
        for (int i = 0; i < Layers.Length; i++)
            h = ctx.RunChild(Layers[i], i.ToString(System.Globalization.CultureInfo.InvariantCulture), h, (uint)i);
        return h;
    }

    /// <summary>Structural equality: the same layers in the same order.</summary>
    /// <param name="other">Another pipeline.</param>
    /// <returns>True when equal.</returns>
    public bool Equals(Sequential? other) => other is not null && Layers.SequenceEqual(other.Layers);

    /// <inheritdoc/>
    public override int GetHashCode() => Layers.Aggregate(Layers.Length, (h, l) => HashCode.Combine(h, l));

    internal static Sequential Compose(Layer a, Layer b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        var left = a is Sequential sa ? sa.Layers : [a];
        var right = b is Sequential sb ? sb.Layers : [b];
        return new Sequential([.. left, .. right]);
    }

    private Shape Wrap(int i, Shape input, Func<Shape, Shape> f)
    {
        try
        {
            return f(input);
        }
        catch (LayerShapeException e) when (!e.Message.StartsWith("In ", StringComparison.Ordinal))
        {
            throw new LayerShapeException($"In layer \"{i}\" ({Layers[i].Describe()}), position {i} of {Layers.Length} in the pipeline: {e.Message}", e);
        }
    }
}
