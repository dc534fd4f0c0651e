namespace IlgpuTrain.Optimizers;

/// <summary>
/// The state of a gradient transformation: a small typed record (Optax style). Composite states
/// (<see cref="ChainState"/>) name their children, so <see cref="Find{T}"/> and the path indexer
/// read any part of an optimizer's state, e.g. the current learning rate or the last gradient norm.
/// </summary>
/// <remarks>
/// States are consumed by the update that replaces them: device buffers (moments) move to the new
/// state, and the old record throws <see cref="ConsumedValueException"/> on use. Dispose a state
/// you no longer need to return its buffers to the pool.
/// </remarks>
public abstract record OptState : IDisposable
{
    private string? _consumedBy;

    /// <summary>Named sub-states (empty for leaf states).</summary>
    public virtual IEnumerable<(string Name, OptState State)> Children => [];

    /// <summary>Whether an update consumed this state.</summary>
    public bool IsConsumed => _consumedBy is not null;

    /// <summary>The sub-state at a '/'-separated path of child names, e.g. "1/scale_by_adam".</summary>
    /// <param name="path">The path; empty for this state.</param>
    public OptState this[string path]
    {
        get
        {
            ArgumentNullException.ThrowIfNull(path);
            OptState s = this;
            foreach (var part in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
            {
                var next = s.Children.FirstOrDefault(c => c.Name == part).State;
                s = next ?? throw new KeyNotFoundException(
                    $"No state \"{part}\" in path \"{path}\"; children here are: {string.Join(", ", s.Children.Select(c => c.Name))}.");
            }
            return s;
        }
    }

    /// <summary>The first state of type <typeparamref name="T"/> in depth-first order (this one included).</summary>
    /// <typeparam name="T">The state type, e.g. ScaleByLearningRateState.</typeparam>
    /// <returns>The state.</returns>
    /// <exception cref="KeyNotFoundException">No such state.</exception>
    public T Find<T>()
        where T : OptState =>
        FindAll<T>().FirstOrDefault() ?? throw new KeyNotFoundException($"No {typeof(T).Name} in this optimizer state ({GetType().Name}).");

    /// <summary>Every state of type <typeparamref name="T"/>, depth first.</summary>
    /// <typeparam name="T">The state type.</typeparam>
    /// <returns>The states.</returns>
    public IEnumerable<T> FindAll<T>()
        where T : OptState
    {
        if (this is T t)
            yield return t;
        foreach (var (_, child) in Children)
        {
            foreach (var x in child.FindAll<T>())
                yield return x;
        }
    }

    /// <summary>Marks this state consumed by <paramref name="consumer"/> (its buffers moved on).</summary>
    /// <param name="consumer">The consuming operation.</param>
    public void MarkConsumed(string consumer)
    {
        _consumedBy ??= consumer;
        foreach (var (_, child) in Children)
            child.MarkConsumed(consumer);
    }

    /// <summary>Throws <see cref="ConsumedValueException"/> if an update consumed this state.</summary>
    public void EnsureAlive()
    {
        if (_consumedBy is not null)
            throw new ConsumedValueException($"optimizer state ({GetType().Name})", _consumedBy);
    }

    /// <summary>Returns device buffers held by this state (and its children) to the pool.</summary>
    public virtual void Dispose()
    {
        foreach (var (_, child) in Children)
            child.Dispose();
        GC.SuppressFinalize(this);
    }
}

/// <summary>The state of a transformation that keeps none.</summary>
public sealed record EmptyState : OptState;

/// <summary>The state of a transformation that counts updates.</summary>
/// <param name="Count">Updates done so far.</param>
public sealed record CountState(long Count) : OptState;
