namespace IlgpuTrain.Layers;

/// <summary>A parameter or buffer a layer declares for a given input shape.</summary>
/// <param name="Name">Its name within the layer, PyTorch's (<c>weight</c>, <c>bias</c>, <c>running_mean</c>).</param>
/// <param name="Shape">Its shape.</param>
/// <param name="Init">How Init fills it.</param>
/// <param name="DType">Its element type (buffers such as num_batches_tracked are Int32).</param>
public sealed record ParamSpec(string Name, Shape Shape, Initializer Init, DType DType = DType.Float32);

/// <summary>A layer that cannot take its input: names the layer, its place in the pipeline and both shapes.</summary>
public sealed class LayerShapeException : ArgumentException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">The full message.</param>
    public LayerShapeException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with an inner cause.</summary>
    /// <param name="message">The full message.</param>
    /// <param name="inner">The cause.</param>
    public LayerShapeException(string message, Exception inner)
        : base(message, inner)
    {
    }
}

/// <summary>
/// An immutable layer value. A layer declares its parameters and buffers for an input shape,
/// infers its output shape, and computes its forward from F.* primitives, so its backward comes from
/// their VJPs. <c>a &gt;&gt; b</c> and <c>a.Then(b)</c> compose layers into a <see cref="Sequential"/>.
/// </summary>
/// <remarks>
/// Shapes given to <see cref="Init"/>, <see cref="OutputShape"/> and <see cref="Summary"/> are per
/// sample, without the batch dimension: (784) for an MLP on flattened images, (1, 28, 28) for a CNN.
/// Tensors passed to <see cref="Apply(Params, ParamTree, Tensor, Mode, Rng, Action{string, Layer, Tensor})"/> carry the batch first.
/// Parameter paths follow PyTorch's state_dict names (<c>0.weight</c>, <c>1.running_mean</c>).
/// </remarks>
public abstract record Layer
{
    /// <summary>The short description used in summaries and error messages, such as <c>Dense(256)</c>.</summary>
    public virtual string Describe() => GetType().Name;

    /// <summary>The trainable parameters this layer has for a per-sample input shape.</summary>
    /// <param name="input">Per-sample input shape.</param>
    /// <returns>The parameters, in state_dict order.</returns>
    public virtual IReadOnlyList<ParamSpec> Parameters(Shape input) => [];

    /// <summary>The non-trainable buffers (state) this layer has for a per-sample input shape.</summary>
    /// <param name="input">Per-sample input shape.</param>
    /// <returns>The buffers, in state_dict order.</returns>
    public virtual IReadOnlyList<ParamSpec> Buffers(Shape input) => [];

    /// <summary>The per-sample output shape for a per-sample input shape.</summary>
    /// <param name="input">Per-sample input shape.</param>
    /// <returns>Per-sample output shape.</returns>
    /// <exception cref="LayerShapeException">The layer cannot take this input.</exception>
    public abstract Shape OutputShape(Shape input);

    /// <summary>The forward on a batch: reads parameters and buffers from <paramref name="ctx"/>, writes new buffers through it.</summary>
    /// <param name="ctx">Parameters, state, mode and randomness of this layer.</param>
    /// <param name="x">Input (N, ...input shape).</param>
    /// <returns>Output (N, ...output shape).</returns>
    public abstract Tensor Forward(LayerContext ctx, Tensor x);

    /// <summary>The children of a container (Sequential, Residual), with their path segment; empty for a leaf layer.</summary>
    /// <returns>(name, layer) pairs.</returns>
    public virtual IEnumerable<(string Name, Layer Layer)> Children() => [];

    /// <summary>
    /// Creates the parameters (PyTorch's default initializations, drawn from <paramref name="rng"/>
    /// so the same seed gives the same model on every device) and the buffers.
    /// </summary>
    /// <param name="device">Where the trees live.</param>
    /// <param name="inputShape">Per-sample input shape.</param>
    /// <param name="rng">The randomness.</param>
    /// <returns>The parameters and the state (buffers; an empty tree when the model has none).</returns>
    public (ParamTree Params, ParamTree State) Init(Device device, Shape inputShape, Rng rng)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(inputShape);
        ArgumentNullException.ThrowIfNull(rng);
        _ = OutputShape(inputShape);
        var p = new List<(string, Shape, DType, float[]?, int[]?)>();
        var s = new List<(string, Shape, DType, float[]?, int[]?)>();
        Collect(this, string.Empty, inputShape, rng, p, s);
        return (Upload(device, p), Upload(device, s));
    }

    /// <summary>
    /// The forward of the whole model on a batch.
    /// </summary>
    /// <param name="parameters">The parameters, bound to the step (from Autodiff.ValueAndGrad, or <see cref="Params.Bind"/>).</param>
    /// <param name="state">The state from Init or the previous Apply; never modified.</param>
    /// <param name="x">Input (N, ...), a tensor of the step.</param>
    /// <param name="mode">Train or Eval.</param>
    /// <param name="rng">Randomness for this step (dropout); fold the step number in so every step differs.</param>
    /// <param name="observe">Called with (path, layer, output) after each layer's forward (the NaN diagnosis uses it); null normally.</param>
    /// <returns>The output and the new state: <paramref name="state"/> itself when nothing changed (evaluation, or no buffers), otherwise a new tree the caller owns.</returns>
    public (Tensor Y, ParamTree State) Apply(Params parameters, ParamTree state, Tensor x, Mode mode, Rng rng, Action<string, Layer, Tensor>? observe = null)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(rng);
        var states = new StateView(state, parameters.Scope);
        var ctx = new LayerContext(parameters, states, string.Empty, mode, rng, Describe(), string.Empty) { Observer = observe };
        try
        {
            var y = ctx.Run(this, x);
            return (y, states.Result);
        }
        catch
        {
            states.Abandon();
            throw;
        }
    }

    /// <summary>Evaluation forward with parameters the caller holds: binds them to <paramref name="x"/>'s step without recording.</summary>
    /// <param name="parameters">The parameters.</param>
    /// <param name="state">The state.</param>
    /// <param name="x">Input (N, ...), a tensor of a step.</param>
    /// <returns>The output.</returns>
    public Tensor Predict(ParamTree parameters, ParamTree state, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        var scope = x.Scope ?? throw new ArgumentException("Predict: x does not belong to a step; create it with step.Upload(...).", nameof(x));
        return Apply(Params.Bind(parameters, scope), state, x, Mode.Eval, Rng.Create(0)).Y;
    }

    /// <summary>The table of layers, output shapes and parameter counts for a per-sample input shape.</summary>
    /// <param name="inputShape">Per-sample input shape.</param>
    /// <param name="batchSize">Batch size for the activation-memory estimate.</param>
    /// <param name="trainable">Which parameters train (fine-tuning: <c>TrainerOptions.Trainable</c>), or null for all; the others count as frozen.</param>
    /// <returns>The summary; <c>ToString()</c> prints it.</returns>
    public ModelSummary Summary(Shape inputShape, int batchSize = 1, ParamFilter? trainable = null) => ModelSummary.Of(this, inputShape, batchSize, trainable);

    /// <summary>Composes two layers: b after a. Sequentials are flattened, so (a &gt;&gt; b) &gt;&gt; c equals a &gt;&gt; (b &gt;&gt; c), parameter names included.</summary>
    /// <param name="a">First layer.</param>
    /// <param name="b">Second layer.</param>
    /// <returns>The pipeline.</returns>
    public static Sequential operator >>(Layer a, Layer b) => Sequential.Compose(a, b);

    /// <summary>Composes: <paramref name="next"/> after this layer (same as <c>this &gt;&gt; next</c>).</summary>
    /// <param name="next">The next layer.</param>
    /// <returns>The pipeline.</returns>
    public Sequential Then(Layer next) => Sequential.Compose(this, next);

    /// <summary>A shape error naming this layer.</summary>
    /// <param name="input">The input shape it got.</param>
    /// <param name="expected">What it takes, in words.</param>
    /// <returns>The exception to throw.</returns>
    protected LayerShapeException ShapeError(Shape input, string expected) =>
        new($"{Describe()} cannot take input of per-sample shape {input}: it expects {expected}.");

    private static void Collect(Layer layer, string prefix, Shape input, Rng rng, List<(string, Shape, DType, float[]?, int[]?)> p, List<(string, Shape, DType, float[]?, int[]?)> s)
    {
        var children = layer.Children().ToList();
        if (children.Count == 0 || layer.Parameters(input).Count > 0 || layer.Buffers(input).Count > 0)
        {
            int j = 0;
            foreach (var spec in layer.Parameters(input))
                p.Add(Materialize(prefix, spec, rng.Fold((uint)j++)));
            foreach (var spec in layer.Buffers(input))
                s.Add(Materialize(prefix, spec, rng.Fold((uint)j++)));
        }

        if (children.Count > 0)
        {
            var shapes = layer.ChildInputShapes(input);
            for (int i = 0; i < children.Count; i++)
                Collect(children[i].Layer, prefix + children[i].Name + ".", shapes[i], rng.Fold(0x10000u + (uint)i), p, s);
        }
    }

    /// <summary>The per-sample input shape each child sees, for a container; the same order as <see cref="Children"/>.</summary>
    /// <param name="input">The container's per-sample input shape.</param>
    /// <returns>One shape per child.</returns>
    public virtual IReadOnlyList<Shape> ChildInputShapes(Shape input) => Children().Select(_ => input).ToList();

    private static (string, Shape, DType, float[]?, int[]?) Materialize(string prefix, ParamSpec spec, Rng rng) =>
        spec.DType == DType.Int32
            ? (prefix + spec.Name, spec.Shape, DType.Int32, null, new int[spec.Shape.Length])
            : (prefix + spec.Name, spec.Shape, DType.Float32, spec.Init.Sample(spec.Shape, rng), null);

    private static ParamTree Upload(Device device, List<(string Path, Shape Shape, DType DType, float[]? F, int[]? I)> entries)
    {
        var layout = new ParamLayout(entries.Select(e => (e.Path, e.Shape, e.DType)));
        var f = new float[layout.LengthOf(DType.Float32)];
        var ints = new int[layout.LengthOf(DType.Int32)];
        foreach (var e in entries)
        {
            var info = layout[e.Path];
            if (e.F is not null)
                e.F.CopyTo(f, info.Offset);
            else
                e.I!.CopyTo(ints, info.Offset);
        }

        return ParamTree.FromSnapshot(device, new ParamSnapshot(layout, f, [], ints));
    }
}
