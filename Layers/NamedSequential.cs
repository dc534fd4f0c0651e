namespace IlgpuTrain.Layers;

/// <summary>
/// Layers applied in order under names of their own, as torch.nn.Sequential built from an OrderedDict
/// or a torch.nn.Module whose forward calls its attributes in order: the layer named <c>conv1</c>
/// has its parameters at <c>conv1.weight</c>, so a model can reproduce a PyTorch state_dict's names
/// (torchvision's ResNets: <c>conv1</c>, <c>bn1</c>, <c>layer1</c>, ..., <c>fc</c>).
/// </summary>
public sealed record NamedSequential : Layer
{
    /// <summary>Creates a named pipeline.</summary>
    /// <param name="layers">(name, layer) pairs in order; names are non-empty, unique and contain no '.'.</param>
    /// <exception cref="ArgumentException">A name is empty, repeated or dotted, or a layer is null.</exception>
    public NamedSequential(params (string Name, Layer Layer)[] layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < layers.Length; i++)
        {
            var (name, layer) = layers[i];
            if (layer is null)
                throw new ArgumentNullException(nameof(layers), $"NamedSequential: layer {i} (\"{name}\") is null.");
            if (string.IsNullOrEmpty(name) || name.Contains('.', StringComparison.Ordinal))
                throw new ArgumentException($"NamedSequential: layer {i} has the name \"{name}\"; names must be non-empty and contain no '.' (they become one segment of parameter paths).", nameof(layers));
            if (!seen.Add(name))
                throw new ArgumentException($"NamedSequential: the name \"{name}\" appears twice; give every layer its own name.", nameof(layers));
        }

        Layers = [.. layers];
    }

    /// <summary>The (name, layer) pairs, in order.</summary>
    public ImmutableArray<(string Name, Layer Layer)> Layers { get; }

    /// <summary>The layer named <paramref name="name"/>.</summary>
    /// <param name="name">Its name.</param>
    /// <returns>The layer.</returns>
    /// <exception cref="KeyNotFoundException">No layer has that name; the message lists the names.</exception>
    public Layer this[string name] => IndexOf(name) is int i and >= 0
        ? Layers[i].Layer
        : throw new KeyNotFoundException($"NamedSequential has no layer \"{name}\"; its layers are: {string.Join(", ", Layers.Select(l => l.Name))}.");

    /// <summary>A copy with the layer named <paramref name="name"/> replaced (same name, same position).</summary>
    /// <param name="name">The name of the layer to replace.</param>
    /// <param name="layer">The new layer.</param>
    /// <returns>The new pipeline.</returns>
    /// <exception cref="KeyNotFoundException">No layer has that name; the message lists the names.</exception>
    public NamedSequential With(string name, Layer layer)
    {
        ArgumentNullException.ThrowIfNull(layer);
        _ = this[name];
        return new NamedSequential([.. Layers.Select(l => l.Name == name ? (l.Name, layer) : l)]);
    }

    /// <inheritdoc/>
    public override string Describe() => $"NamedSequential({string.Join(", ", Layers.Select(l => l.Name))})";

    /// <inheritdoc/>
    public override IEnumerable<(string Name, Layer Layer)> Children() => Layers;

    /// <inheritdoc/>
    public override IReadOnlyList<Shape> ChildInputShapes(Shape input)
    {
        var shapes = new List<Shape>(Layers.Length);
        var s = input;
        foreach (var (name, layer) in Layers)
        {
            shapes.Add(s);
            s = Wrap(name, layer, s);
        }

        return shapes;
    }

    /// <inheritdoc/>
    public override Shape OutputShape(Shape input)
    {
        var s = input;
        foreach (var (name, layer) in Layers)
            s = Wrap(name, layer, s);
        return s;
    }

    /// <inheritdoc/>
    public override Tensor Forward(LayerContext ctx, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        var h = x;
        for (int i = 0; i < Layers.Length; i++)
            h = ctx.RunChild(Layers[i].Layer, Layers[i].Name, h, (uint)i);
        return h;
    }

    /// <summary>Structural equality: the same names and layers in the same order.</summary>
    /// <param name="other">Another pipeline.</param>
    /// <returns>True when equal.</returns>
    public bool Equals(NamedSequential? other) => other is not null && Layers.SequenceEqual(other.Layers);

    /// <inheritdoc/>
    public override int GetHashCode() => Layers.Aggregate(Layers.Length, (h, l) => HashCode.Combine(h, l.Name, l.Layer));

    private int IndexOf(string name)
    {
        for (int i = 0; i < Layers.Length; i++)
        {
            if (Layers[i].Name == name)
                return i;
        }

        return -1;
    }

    private static Shape Wrap(string name, Layer layer, Shape input)
    {
        try
        {
            return layer.OutputShape(input);
        }
        catch (LayerShapeException e) when (!e.Message.StartsWith("In ", StringComparison.Ordinal))
        {
            throw new LayerShapeException($"In layer \"{name}\" ({layer.Describe()}): {e.Message}", e);
        }
    }
}
