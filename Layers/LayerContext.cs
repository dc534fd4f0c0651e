namespace IlgpuTrain.Layers;

/// <summary>
/// The state threaded through one Apply: reads come from the input state, which is never modified;
/// the first write clones it into a new tree that every later write of the same Apply shares.
/// </summary>
public sealed class StateView
{
    private readonly ParamTree _old;
    private readonly StepScope _scope;
    private ParamTree? _new;

    internal StateView(ParamTree old, StepScope scope)
    {
        _old = old;
        _scope = scope;
    }

    /// <summary>The state after the Apply: the input tree when nothing was written, else the new tree.</summary>
    public ParamTree Result => _new ?? _old;

    /// <summary>Whether this Apply wrote any state.</summary>
    public bool Changed => _new is not null;

    /// <summary>Whether the state has an entry at <paramref name="path"/>.</summary>
    /// <param name="path">Full path.</param>
    /// <returns>True when present.</returns>
    public bool Contains(string path) => _old.Layout.Contains(path);

    /// <summary>The input state's entry, read-only by contract.</summary>
    /// <param name="path">Full path.</param>
    /// <returns>A view of the input state.</returns>
    public Tensor Read(string path) => _old.ViewIn(_scope, Require(path));

    /// <summary>The new state's entry, to overwrite.</summary>
    /// <param name="path">Full path.</param>
    /// <returns>A view of the new state.</returns>
    public Tensor Write(string path)
    {
        Require(path);
        _new ??= _old.Clone();
        return _new.ViewIn(_scope, path);
    }

    internal void Abandon()
    {
        _new?.Dispose();
        _new = null;
    }

    private string Require(string path) =>
        _old.Layout.Contains(path)
            ? path
            : throw new KeyNotFoundException($"No state buffer \"{path}\" in this model's state ({_old.Layout.Count} buffers). Was the state made by this model's Init, for the same architecture?");
}

/// <summary>
/// What a layer's forward sees: its parameters and buffers under its own path prefix, the mode,
/// its own randomness, and where it sits in the pipeline (for error messages).
/// </summary>
public sealed class LayerContext
{
    internal LayerContext(Params parameters, StateView state, string prefix, Mode mode, Rng rng, string description, string position)
    {
        Params = parameters;
        State = state;
        Prefix = prefix;
        Mode = mode;
        Rng = rng;
        Description = description;
        Position = position;
    }

    /// <summary>Called with (path, layer, output) after every layer's forward, parents after their children; null normally (the NaN diagnosis uses it).</summary>
    public Action<string, Layer, Tensor>? Observer { get; init; }

    /// <summary>This layer's parameters (names relative to its prefix).</summary>
    public Params Params { get; }

    /// <summary>The state of the whole model.</summary>
    public StateView State { get; }

    /// <summary>This layer's path prefix, "" at the root, "3." for the fourth layer of a Sequential.</summary>
    public string Prefix { get; }

    /// <summary>Train or Eval.</summary>
    public Mode Mode { get; }

    /// <summary>Randomness of this layer for this step.</summary>
    public Rng Rng { get; }

    /// <summary>Whether the forward trains.</summary>
    public bool Training => Mode == Mode.Train;

    /// <summary>The layer's description.</summary>
    public string Description { get; }

    /// <summary>Where the layer sits, such as "layer 3 of Sequential" (empty at the root).</summary>
    public string Position { get; }

    /// <summary>The parameter <paramref name="name"/> of this layer.</summary>
    /// <param name="name">Such as "weight".</param>
    /// <returns>The tensor (a tape leaf when recording).</returns>
    public Tensor Param(string name) => Params[name];

    /// <summary>The input state's buffer <paramref name="name"/> of this layer.</summary>
    /// <param name="name">Such as "running_mean".</param>
    /// <returns>A read-only view.</returns>
    public Tensor ReadBuffer(string name) => State.Read(Prefix + name);

    /// <summary>The new state's buffer <paramref name="name"/> of this layer, to overwrite.</summary>
    /// <param name="name">Such as "running_mean".</param>
    /// <returns>A writable view.</returns>
    public Tensor WriteBuffer(string name) => State.Write(Prefix + name);

    /// <summary>
    /// Runs <paramref name="child"/> as the child <paramref name="name"/> of this layer: checks that
    /// it can take <paramref name="x"/>'s shape first, so a wrong shape fails at the layer that
    /// cannot take it, naming it, its position and both shapes.
    /// </summary>
    /// <param name="child">The child layer.</param>
    /// <param name="name">Its path segment ("0", "block").</param>
    /// <param name="x">Its input.</param>
    /// <param name="rngSalt">Which randomness the child gets (its index).</param>
    /// <returns>Its output.</returns>
    public Tensor RunChild(Layer child, string name, Tensor x, uint rngSalt)
    {
        ArgumentNullException.ThrowIfNull(child);
        string where = $"layer \"{Prefix}{name}\" ({child.Describe()}){(Position.Length > 0 ? " in " + Position : string.Empty)}";
        var ctx = new LayerContext(Params.Sub(name), State, Prefix + name + ".", Mode, Rng.Fold(0x10000u + rngSalt), child.Describe(), where) { Observer = Observer };
        return ctx.Run(child, x);
    }

    internal Tensor Run(Layer layer, Tensor x)
    {
        if (x.Shape.Rank < 1)
            throw new LayerShapeException($"{Name()} got a scalar input; inputs carry the batch first, (N, ...).");
        var sample = Sample(x.Shape);
        Shape expected;
        try
        {
            expected = layer.OutputShape(sample);
        }
        catch (LayerShapeException e) when (Position.Length > 0 && !e.Message.StartsWith("In ", StringComparison.Ordinal))
        {
            throw new LayerShapeException($"In {Position}: {e.Message} (batch input {x.Shape})", e);
        }

        Tensor y;
        try
        {
            y = layer.Forward(this, x);
        }
        catch (LayerShapeException e) when (Position.Length > 0 && !e.Message.StartsWith("In ", StringComparison.Ordinal))
        {
            // A mismatch only the parameters reveal (a Dense weight made for another width) gets the same position as a shape error.
            throw new LayerShapeException($"In {Position}: {e.Message} (batch input {x.Shape})", e);
        }

        var got = Sample(y.Shape);
        if (y.Shape[0] != x.Shape[0] || got != expected)
            throw new InvalidOperationException($"{Name()} produced {y.Shape} but its OutputShape says (N, {string.Join(", ", expected)}) for input {x.Shape}; the layer's OutputShape and Forward disagree.");
        Observer?.Invoke(Prefix.TrimEnd('.'), layer, y);
        return y;
    }

    private string Name() => Position.Length > 0 ? Position : Description;

    private static Shape Sample(Shape batch)
    {
        var dims = batch.ToArray();
        return new Shape(dims[1..]);
    }
}
