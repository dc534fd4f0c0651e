namespace IlgpuTrain.Functional;

/// <summary>
/// A ParamTree as a layer's forward sees it: named tensors under a path prefix (PyTorch
/// state_dict style, <c>"0.weight"</c>), bound to a step. Under
/// <see cref="Autodiff.ValueAndGrad(StepScope, ParamTree, Func{Params, Tensor}, GradOptions?)"/>
/// each trainable parameter is a leaf of the tape whose gradient lands in the same offset of a flat
/// gradient buffer; otherwise (evaluation) the tensors are plain read-only views.
/// </summary>
public sealed class Params
{
    private readonly Shared _shared;

    private Params(Shared shared, string prefix)
    {
        _shared = shared;
        Prefix = prefix;
    }

    /// <summary>The path prefix of this view, "" at the root and "0." for the first layer of a Sequential.</summary>
    public string Prefix { get; }

    /// <summary>The whole tree's layout.</summary>
    public ParamLayout Layout => _shared.Tree.Layout;

    /// <summary>The step the tensors belong to.</summary>
    public StepScope Scope => _shared.Scope;

    /// <summary>Whether gradients are being recorded.</summary>
    public bool IsRecording => _shared.Tape is { IsRecording: true };

    /// <summary>The parameter <paramref name="name"/> under this view's prefix.</summary>
    /// <param name="name">Name relative to <see cref="Prefix"/>, such as "weight".</param>
    /// <returns>A tensor over the parameter's memory; on a recording tape, a leaf.</returns>
    public Tensor this[string name] => Get(name);

    /// <summary>Binds a tree to a step without recording: for evaluation and inference.</summary>
    /// <param name="tree">The parameters.</param>
    /// <param name="step">The step.</param>
    /// <returns>The root view.</returns>
    public static Params Bind(ParamTree tree, StepScope step)
    {
        ArgumentNullException.ThrowIfNull(tree);
        ArgumentNullException.ThrowIfNull(step);
        if (tree.Device != step.Device)
            throw new ArgumentException($"Params.Bind: the parameters live on {tree.Device} but the step on {step.Device}.", nameof(step));
        return new Params(new Shared(tree, step, null, null, null), string.Empty);
    }

    internal static Params Record(ParamTree tree, StepScope step, Tape tape, ParamTree grads, ParamFilter? trainable) =>
        new(new Shared(tree, step, tape, grads, trainable), string.Empty);

    /// <summary>The view of the parameters under <c>Prefix + name + "."</c>.</summary>
    /// <param name="name">A child's name, such as "0" in a Sequential.</param>
    /// <returns>The child view.</returns>
    public Params Sub(string name) => new(_shared, Prefix + name + ".");

    /// <summary>Whether this view has a parameter <paramref name="name"/>.</summary>
    /// <param name="name">Name relative to <see cref="Prefix"/>.</param>
    /// <returns>True when the tree holds <c>Prefix + name</c>.</returns>
    public bool Contains(string name) => Layout.Contains(Prefix + name);

    /// <summary>The parameter <paramref name="name"/> under this view's prefix.</summary>
    /// <param name="name">Name relative to <see cref="Prefix"/>.</param>
    /// <returns>The tensor.</returns>
    public Tensor Get(string name)
    {
        string path = Prefix + name;
        if (_shared.Cache.TryGetValue(path, out var cached))
            return cached;
        if (!Layout.Contains(path))
            throw new KeyNotFoundException($"No parameter \"{path}\" in this model's parameters ({Layout.Count} tensors{Hint()}). Were the parameters made by this model's Init?");
        var info = Layout[path];
        var tree = _shared.Tree;
        var t = tree.ViewIn(_shared.Scope, path);
        if (_shared.Tape is { IsRecording: true } tape && info.DType == DType.Float32 && (_shared.Trainable?.Matches(path) ?? true))
            tape.Leaf(t, path, _shared.Grads!.View<float>(path));
        _shared.Cache[path] = t;
        return t;
    }

    private string Hint()
    {
        var under = Layout.Params.Where(p => p.Path.StartsWith(Prefix, StringComparison.Ordinal)).Select(p => p.Path).Take(6).ToList();
        return under.Count == 0 ? $"; none under \"{Prefix}\"" : $"; under \"{Prefix}\": {string.Join(", ", under)}";
    }

    private sealed record Shared(ParamTree Tree, StepScope Scope, Tape? Tape, ParamTree? Grads, ParamFilter? Trainable)
    {
        public Dictionary<string, Tensor> Cache { get; } = new(StringComparer.Ordinal);
    }
}
