namespace IlgpuTrain.Optimizers;

/// <summary>
/// Applies transformations in order: the updates of one are the gradients of the next
/// (Optax's <c>chain</c>). The state keeps each child's state under its name.
/// </summary>
public class Chain : IGradientTransformation
{
    private readonly IGradientTransformation[] _children;
    private readonly string[] _names;

    /// <summary>Chains transformations, applied first to last.</summary>
    /// <param name="children">The transformations.</param>
    public Chain(params IGradientTransformation[] children)
    {
        ArgumentNullException.ThrowIfNull(children);
        if (children.Any(c => c is null))
            throw new ArgumentException("Chain: a transformation is null.", nameof(children));
        _children = (IGradientTransformation[])children.Clone();
        _names = UniqueNames(_children.Select(c => c.Name));
    }

    /// <inheritdoc/>
    public virtual string Name => "chain";

    /// <summary>The transformations, in order.</summary>
    public IReadOnlyList<IGradientTransformation> Children => _children;

    /// <summary>The names their states are kept under (a transformation's Name, suffixed with its position when repeated).</summary>
    public IReadOnlyList<string> Names => _names;

    /// <inheritdoc/>
    public virtual OptState Init(ParamTree parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var states = new List<(string, OptState)>();
        try
        {
            for (int i = 0; i < _children.Length; i++)
                states.Add((_names[i], _children[i].Init(parameters)));
        }
        catch
        {
            foreach (var (_, s) in states)
                s.Dispose();
            throw;
        }
        return new ChainState(states);
    }

    /// <inheritdoc/>
    public virtual UpdateResult Update(ParamTree grads, OptState state, ParamTree parameters, UpdateContext context)
    {
        var cs = Expect<ChainState>(state, this);
        if (cs.States.Count != _children.Length)
            throw new ArgumentException($"Chain: the state has {cs.States.Count} parts but the chain has {_children.Length} transformations; use the state this chain's Init made.", nameof(state));
        var updates = grads;
        var next = new List<(string, OptState)>(_children.Length);
        for (int i = 0; i < _children.Length; i++)
        {
            var (u, s) = _children[i].Update(updates, cs.States[i].State, parameters, context);
            updates = u;
            next.Add((_names[i], s));
        }
        cs.MarkConsumed(Name + ".Update");
        return new UpdateResult(updates, new ChainState(next));
    }

    /// <summary>
    /// One step where the last transformation applies itself in a fused kernel (e.g.
    /// chain(ClipByGlobalNorm, AdamW)): the earlier transformations run their Update, the last its
    /// FusedStep. <see cref="Optimizer.Step"/> uses it when the last child is an enabled
    /// <see cref="IFusedStep"/>. Consumes parameters, gradients and state.
    /// </summary>
    /// <param name="parameters">Parameters. Consumed.</param>
    /// <param name="grads">Gradients. Consumed.</param>
    /// <param name="state">This chain's state. Consumed.</param>
    /// <param name="context">Extras.</param>
    /// <returns>New parameters and state.</returns>
    public (ParamTree Parameters, OptState State) StepWithFusedTail(ParamTree parameters, ParamTree grads, OptState state, UpdateContext context)
    {
        var cs = Expect<ChainState>(state, this);
        if (_children.Length == 0 || _children[^1] is not IFusedStep { Fused: true } tail)
            throw new InvalidOperationException($"{Name}: the last transformation has no enabled fused step.");
        if (cs.States.Count != _children.Length)
            throw new ArgumentException($"Chain: the state has {cs.States.Count} parts but the chain has {_children.Length} transformations; use the state this chain's Init made.", nameof(state));
        var updates = grads;
        var next = new List<(string, OptState)>(_children.Length);

        // clip_by_global_norm right before an Adam tail: the tail scales the gradients in its own
        // pass (same operations, one pass and one launch fewer than clipping in place).
        var fusedClip = _children.Length >= 2 && _children[^2] is ClipByGlobalNorm clip && tail is IClipFusedStep ? clip : null;
        int unfused = _children.Length - (fusedClip is null ? 1 : 2);
        for (int i = 0; i < unfused; i++)
        {
            var (u, s) = _children[i].Update(updates, cs.States[i].State, parameters, context);
            updates = u;
            next.Add((_names[i], s));
        }

        (ParamTree Parameters, OptState State) result;
        if (fusedClip is not null)
        {
            var clipState = fusedClip.Measure(updates, cs.States[^2].State);
            next.Add((_names[^2], clipState));
            result = ((IClipFusedStep)tail).FusedStep(parameters, updates, cs.States[^1].State, context, clipState.Norm.View<float>(), (float)fusedClip.MaxNorm);
        }
        else
        {
            result = tail.FusedStep(parameters, updates, cs.States[^1].State, context);
        }

        var (p, last) = result;
        next.Add((_names[^1], last));
        cs.MarkConsumed(Name + ".Step");
        return (p, new ChainState(next));
    }

    /// <summary>Checks that a state has the expected type and is alive, with a clear error.</summary>
    /// <typeparam name="T">The expected state type.</typeparam>
    /// <param name="state">The state.</param>
    /// <param name="owner">The transformation, for the message.</param>
    /// <returns>The typed state.</returns>
    public static T Expect<T>(OptState state, IGradientTransformation owner)
        where T : OptState
    {
        ArgumentNullException.ThrowIfNull(state);
        state.EnsureAlive();
        return state as T ?? throw new ArgumentException(
            $"{owner.Name}: expected a {typeof(T).Name} but got a {state.GetType().Name}; pass the state this transformation's Init (or its previous Update) returned.", nameof(state));
    }

    private static string[] UniqueNames(IEnumerable<string> names)
    {
        var list = names.ToArray();
        var result = new string[list.Length];
        for (int i = 0; i < list.Length; i++)
            result[i] = list.Count(n => n == list[i]) > 1 ? $"{i}.{list[i]}" : list[i];
        return result;
    }
}

/// <summary>The state of a <see cref="Chain"/>: each child's state under its name.</summary>
/// <param name="States">Name and state of each child, in order.</param>
public sealed record ChainState(IReadOnlyList<(string Name, OptState State)> States) : OptState
{
    /// <inheritdoc/>
    public override IEnumerable<(string Name, OptState State)> Children => States;
}
