namespace IlgpuTrain.Optimizers;

/// <summary>
/// Momentum with dampening and Nesterov, exactly as PyTorch's <c>torch.optim.SGD</c> (Optax's
/// <c>trace</c>, with PyTorch's first step and dampening).
/// </summary>
/// <remarks>
/// <para>μ = momentum(t), t the update count before it is incremented; τ = dampening</para>
/// <para>b₁ = g                          (first update: the buffer is a copy of g, not dampened)</para>
/// <para>b_t = μ·b_{t−1} + (1 − τ)·g       (later updates)</para>
/// <para>u = g + μ·b_t                     (Nesterov)</para>
/// <para>u = b_t                           (otherwise)</para>
/// <para>μ(t) = 0 is PyTorch's plain SGD for that update: u = g and the buffer is left alone.</para>
/// <para>Defaults: dampening 0, nesterov false. Nesterov requires μ(0) &gt; 0 and τ = 0, as
/// PyTorch. Momentum is a <see cref="Schedule"/> so OneCycle can cycle it (a number converts to a
/// constant). Optax's trace starts from a zero buffer (b₁ = g only when τ = 0); this follows
/// PyTorch. See https://pytorch.org/docs/1.13/generated/torch.optim.SGD.html and Sutskever et al.,
/// "On the importance of initialization and momentum in deep learning", ICML 2013.</para>
/// <para>The buffer has the parameters' layout and is updated in place (one launch per update).</para>
/// </remarks>
/// <param name="Momentum">μ, at least 0 (PyTorch's momentum); a schedule or a number.</param>
/// <param name="Dampening">τ (PyTorch's dampening), finite.</param>
/// <param name="Nesterov">Use Nesterov's direction g + μ·b.</param>
public sealed record Trace(Schedule Momentum, double Dampening = 0, bool Nesterov = false) : IGradientTransformation
{
    /// <inheritdoc/>
    public string Name => "trace";

    /// <inheritdoc/>
    public OptState Init(ParamTree parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        Validate();
        return new TraceState(0, parameters.ZerosLike(), HasBuffer: false);
    }

    /// <inheritdoc/>
    public UpdateResult Update(ParamTree grads, OptState state, ParamTree parameters, UpdateContext context)
    {
        var s = Chain.Expect<TraceState>(state, this);
        ArgumentNullException.ThrowIfNull(grads);
        grads.Layout.RequireSame(s.MomentumBuffer.Layout, Name);
        double mu = MomentumAt(s.Count);
        SgdUpdate.Momentum(grads.Device.Kernels, grads.Flat32, s.MomentumBuffer.Flat32, (float)mu, (float)Dampening, Nesterov, first: !s.HasBuffer);
        return new UpdateResult(grads.Consume(Name), Advance(s, mu, Name + ".Update"));
    }

    /// <summary>Throws unless the hyperparameters are valid (PyTorch's checks, plus finiteness).</summary>
    internal void Validate()
    {
        ArgumentNullException.ThrowIfNull(Momentum);
        double mu0 = Momentum.At(0);
        if (!(mu0 >= 0) || double.IsInfinity(mu0))
            throw new ArgumentOutOfRangeException(nameof(Momentum), mu0, "Trace: momentum must be finite and at least 0 (PyTorch: momentum >= 0).");
        if (!double.IsFinite(Dampening))
            throw new ArgumentOutOfRangeException(nameof(Dampening), Dampening, "Trace: dampening must be finite.");
        if (Nesterov && (mu0 <= 0 || Dampening != 0))
            throw new ArgumentException($"Trace: Nesterov momentum requires a momentum > 0 and zero dampening (PyTorch's rule); got momentum {mu0} and dampening {Dampening}.", nameof(Nesterov));
    }

    /// <summary>μ at update count <paramref name="count"/>, checked.</summary>
    /// <param name="count">The update count.</param>
    /// <returns>The momentum.</returns>
    internal double MomentumAt(long count)
    {
        double mu = Momentum.At(count);
        if (!(mu >= 0) || double.IsInfinity(mu))
            throw new InvalidOperationException($"{Name}: the momentum schedule {Momentum} gave {mu} at step {count}; momentum must be finite and at least 0.");
        return mu;
    }

    /// <summary>The state after an update with momentum <paramref name="mu"/>: the buffer moves on, the count advances.</summary>
    /// <param name="s">The consumed state.</param>
    /// <param name="mu">The momentum the update used.</param>
    /// <param name="consumer">The consuming operation, for later error messages.</param>
    /// <returns>The new state.</returns>
    internal static TraceState Advance(TraceState s, double mu, string consumer)
    {
        var next = new TraceState(s.Count + 1, s.MomentumBuffer.Consume(consumer), s.HasBuffer || mu != 0);
        s.MarkConsumed(consumer);
        return next;
    }
}

/// <summary>The state of <see cref="Trace"/>.</summary>
/// <param name="Count">Updates done so far (the momentum schedule's step).</param>
/// <param name="MomentumBuffer">b, in the parameters' layout (PyTorch's momentum_buffer).</param>
/// <param name="HasBuffer">Whether an update with μ ≠ 0 has set b (PyTorch's momentum_buffer is not None).</param>
public sealed record TraceState(long Count, ParamTree MomentumBuffer, bool HasBuffer) : OptState
{
    /// <inheritdoc/>
    public override void Dispose()
    {
        MomentumBuffer.Dispose();
        base.Dispose();
    }
}
