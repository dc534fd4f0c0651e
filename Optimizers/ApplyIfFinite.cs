namespace IlgpuTrain.Optimizers;

/// <summary>
/// Applies the inner transformation only when every gradient is finite (Optax's
/// <c>apply_if_finite</c>); otherwise emits zero updates and leaves the inner state untouched.
/// </summary>
/// <remarks>
/// <para>finite = all gᵢ are neither inf nor NaN</para>
/// <para>notfinite_count ← finite ? 0 : notfinite_count + 1</para>
/// <para>if finite or notfinite_count &gt; max_consecutive_errors: (u, inner) ← inner.update(g, inner)</para>
/// <para>else: u ← 0, inner unchanged (not even its count moves, so schedules do not advance)</para>
/// <para>last_finite ← finite; total_notfinite ← total_notfinite + (finite ? 0 : 1)</para>
/// <para>Giving up follows Optax exactly: the (max+1)-th consecutive non-finite update and every
/// further one in that run goes through to the inner transformation (poisoning it, which is the
/// point: the failure becomes visible); the first finite gradient resets the count.</para>
/// <para>The check is <see cref="Kernels.LossScale.CheckFinite"/> (the unscale kernel with scale 1:
/// it only reads) plus one 4-byte device-to-host read per update, which synchronizes the stream.
/// Through <see cref="Optimizer.Step"/> (<see cref="IFusedStep"/>, on by default) a skipped update
/// leaves the parameters bitwise unchanged; through Update then ApplyUpdates they get θ + 0,
/// which is bitwise θ except that −0 becomes +0.</para>
/// <para>Wrap the whole optimizer, as Optax advises: a transformation chained after ApplyIfFinite
/// still runs on the zero updates, so its own count (a learning-rate schedule's, say) moves.</para>
/// <para>Counts saturate at <see cref="int.MaxValue"/> (Optax's safe_int32_increment).</para>
/// </remarks>
/// <param name="Inner">The transformation to protect.</param>
/// <param name="MaxConsecutiveErrors">Consecutive non-finite updates rejected before giving up (Optax's max_consecutive_errors): zero or more.</param>
public sealed record ApplyIfFinite(IGradientTransformation Inner, int MaxConsecutiveErrors) : IFusedStep
{
    /// <inheritdoc/>
    public string Name => "apply_if_finite";

    /// <summary>Whether <see cref="Optimizer.Step"/> takes the skip-aware path (<see cref="FusedStep"/>); true by default.</summary>
    public bool Fused { get; init; } = true;

    /// <inheritdoc/>
    public OptState Init(ParamTree parameters)
    {
        ArgumentNullException.ThrowIfNull(Inner);
        ArgumentNullException.ThrowIfNull(parameters);
        if (MaxConsecutiveErrors < 0)
            throw new ArgumentOutOfRangeException(nameof(MaxConsecutiveErrors), MaxConsecutiveErrors, "ApplyIfFinite: max_consecutive_errors must be zero or more.");
        return new ApplyIfFiniteState(Inner.Init(parameters), 0, true, 0);
    }

    /// <inheritdoc/>
    public UpdateResult Update(ParamTree grads, OptState state, ParamTree parameters, UpdateContext context)
    {
        var s = Chain.Expect<ApplyIfFiniteState>(state, this);
        ArgumentNullException.ThrowIfNull(grads);
        var (finite, notFinite, apply) = Decide(grads, s);
        ParamTree updates;
        OptState inner;
        if (apply)
        {
            (updates, inner) = Inner.Update(grads, s.Inner, parameters, context);
        }
        else
        {
            grads.ZeroInPlace();
            updates = grads.Consume(Name);
            inner = s.Inner;
        }
        return new UpdateResult(updates, Next(s, inner, finite, notFinite));
    }

    /// <summary>
    /// One step that skips for real: a rejected update disposes the gradients and hands the
    /// parameters back bitwise unchanged; an accepted one is <see cref="Optimizer.Step"/> of the
    /// inner transformation (its own fused kernel when it has one).
    /// </summary>
    /// <param name="parameters">Parameters. Consumed (the result reuses their buffer).</param>
    /// <param name="grads">Gradients. Consumed.</param>
    /// <param name="state">State. Consumed.</param>
    /// <param name="context">Extras.</param>
    /// <returns>New parameters and state.</returns>
    public (ParamTree Parameters, OptState State) FusedStep(ParamTree parameters, ParamTree grads, OptState state, UpdateContext context)
    {
        var s = Chain.Expect<ApplyIfFiniteState>(state, this);
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(grads);
        var (finite, notFinite, apply) = Decide(grads, s);
        ParamTree next;
        OptState inner;
        if (apply)
        {
            (next, inner) = Inner.Step(parameters, grads, s.Inner, context);
        }
        else
        {
            grads.Dispose();
            next = parameters.Consume(Name);
            inner = s.Inner;
        }
        return (next, Next(s, inner, finite, notFinite));
    }

    private (bool Finite, int NotFinite, bool Apply) Decide(ParamTree grads, ApplyIfFiniteState s)
    {
        bool finite = LossScaling.AllFinite(grads);
        int notFinite = finite ? 0 : SaturatingIncrement(s.NotFiniteCount);
        return (finite, notFinite, finite || notFinite > MaxConsecutiveErrors);
    }

    private ApplyIfFiniteState Next(ApplyIfFiniteState s, OptState inner, bool finite, int notFinite)
    {
        // Consumed, s no longer lists its inner state as a child (see ApplyIfFiniteState), so
        // marking it leaves an inner state that moved on untouched to the new record alive.
        s.MarkConsumed(Name + ".Update");
        long total = finite ? s.TotalNotFinite : (s.TotalNotFinite == long.MaxValue ? long.MaxValue : s.TotalNotFinite + 1);
        return new ApplyIfFiniteState(inner, notFinite, finite, total);
    }

    private static int SaturatingIncrement(int x) => x == int.MaxValue ? x : x + 1;
}

/// <summary>The state of <see cref="ApplyIfFinite"/> (Optax's ApplyIfFiniteState).</summary>
/// <remarks>
/// Ownership: an update consumes this record and moves <see cref="Inner"/> on, updated or, when the
/// update was rejected, as the very same object; so once consumed this record lists no children,
/// and marking or disposing it never reaches an inner state that now belongs to its successor.
/// </remarks>
/// <param name="Inner">The inner transformation's state.</param>
/// <param name="NotFiniteCount">Consecutive non-finite updates so far (0 after a finite one).</param>
/// <param name="LastFinite">Whether the last update's gradients were all finite (true before the first).</param>
/// <param name="TotalNotFinite">Non-finite updates since Init.</param>
public sealed record ApplyIfFiniteState(OptState Inner, int NotFiniteCount, bool LastFinite, long TotalNotFinite) : OptState
{
    /// <inheritdoc/>
    public override IEnumerable<(string Name, OptState State)> Children =>
        IsConsumed ? [] : [("inner", Inner)];
}
