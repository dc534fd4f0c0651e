namespace IlgpuTrain.Optimizers;

/// <summary>
/// Applies transformations in order: the updates of one are the gradients of the next
/// (Optax's <c>chain</c>). The state keeps each child's state under its name.
/// </summary>
/// <remarks>
/// <see cref="Optimizer.Step"/> does not run a chain child by child: <see cref="FusionPlan.For"/>
/// flattens it (nested chains and named optimizers such as <see cref="AdamW"/> included) and runs a
/// recognized tail of primitives (clip, decay, Adam moments, learning rate, ...) as one kernel
/// launch. The state is the same either way, so <see cref="Update"/> and the fused step can be mixed.
/// </remarks>
public sealed class Chain : IGradientTransformation
{
    private readonly IGradientTransformation[] _children;
    private readonly string[] _names;
    private FusionPlan? _plan;

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

    /// <summary>This chain's name in messages and in an enclosing chain's state (default "chain"; the named optimizers name theirs, e.g. "adamw").</summary>
    public string Name { get; init; } = "chain";

    /// <summary>Whether <see cref="Optimizer.Step"/> may fuse this chain's primitives (default true); false runs every child's Update, then ApplyUpdates.</summary>
    public bool Fused { get; init; } = true;

    /// <summary>The transformations, in order.</summary>
    public IReadOnlyList<IGradientTransformation> Children => _children;

    /// <summary>The names their states are kept under (a transformation's Name, suffixed with its position when repeated).</summary>
    public IReadOnlyList<string> Names => _names;

    /// <summary>This chain's plan, made once (a chain and its children are immutable); what <see cref="Optimizer.Step"/> runs.</summary>
    internal FusionPlan Plan => _plan ??= FusionPlan.For(this);

    /// <inheritdoc/>
    public OptState Init(ParamTree parameters)
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
    public UpdateResult Update(ParamTree grads, OptState state, ParamTree parameters, UpdateContext context)
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
