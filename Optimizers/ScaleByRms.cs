namespace IlgpuTrain.Optimizers;

/// <summary>
/// Rescales gradients by the root of a running mean of their squares: RMSProp's direction with
/// PyTorch's semantics (<c>torch.optim.RMSprop</c>), including its centered variant and its
/// momentum buffer. Put <see cref="ScaleByLearningRate"/> after it (<see cref="RmsProp"/> is such a chain).
/// </summary>
/// <remarks>
/// <para>v ← α·v + (1 − α)·g²</para>
/// <para>centered: μ ← α·μ + (1 − α)·g,  den = √(v − μ²) + eps</para>
/// <para>otherwise: den = √v + eps</para>
/// <para>u = g / den</para>
/// <para>momentum μₘ = Momentum(count) when a buffer is kept: b ← μₘ·b + u,  u = b</para>
/// <para>Defaults: alpha 0.99, eps 1e-8, centered false, momentum 0; v, μ and b start at 0
/// (PyTorch; Hinton, Coursera lecture 6e; centered form from Graves, "Generating Sequences With
/// Recurrent Neural Networks", 2013).</para>
/// <para>eps sits outside the square root as in PyTorch (Optax's <c>scale_by_rms</c> puts it
/// inside and can start v at a nonzero value). The momentum buffer sits before the learning
/// rate, as PyTorch's <c>p ← p − lr·b</c> (Optax's rmsprop traces after the learning rate, which
/// differs when the learning rate is scheduled). It is kept unless the momentum is the constant
/// 0; a momentum schedule (OneCycle cycles it) is read at the count before the update.</para>
/// </remarks>
public sealed record ScaleByRms : IGradientTransformation
{
    /// <summary>Creates the transformation; hyperparameters are checked by <see cref="Init"/>.</summary>
    /// <param name="alpha">Smoothing constant α in [0, 1) (PyTorch checks only α ≥ 0; α ≥ 1 gives NaN or g / eps updates).</param>
    /// <param name="eps">eps, at least 0, added outside the square root.</param>
    /// <param name="centered">Normalize by the estimated variance rather than the second moment.</param>
    /// <param name="momentum">Momentum of the buffer b, at least 0; a schedule for cycled momentum. Null: 0 (no buffer).</param>
    public ScaleByRms(double alpha = 0.99, double eps = 1e-8, bool centered = false, Schedule? momentum = null)
    {
        Alpha = alpha;
        Eps = eps;
        Centered = centered;
        Momentum = momentum ?? 0.0;
    }

    /// <summary>Smoothing constant α.</summary>
    public double Alpha { get; init; }

    /// <summary>eps, outside the square root.</summary>
    public double Eps { get; init; }

    /// <summary>Whether the squared running mean of g is subtracted.</summary>
    public bool Centered { get; init; }

    /// <summary>Momentum of the buffer, read at the count before the update.</summary>
    public Schedule Momentum { get; init; }

    /// <summary>Whether a momentum buffer is kept (the momentum is not the constant 0).</summary>
    public bool HasMomentum => Momentum is not Constant { Value: 0 };

    /// <inheritdoc/>
    public string Name => "scale_by_rms";

    /// <inheritdoc/>
    public OptState Init(ParamTree parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        Validate(nameof(ScaleByRms));
        var trees = new List<ParamTree>();
        try
        {
            var nu = Add(parameters.ZerosLike());
            var mu = Centered ? Add(parameters.ZerosLike()) : null;
            var buffer = HasMomentum ? Add(parameters.ZerosLike()) : null;
            return new ScaleByRmsState(0, nu, mu, buffer);
        }
        catch
        {
            foreach (var t in trees)
                t.Dispose();
            throw;
        }

        ParamTree Add(ParamTree t)
        {
            trees.Add(t);
            return t;
        }
    }

    /// <inheritdoc/>
    public UpdateResult Update(ParamTree grads, OptState state, ParamTree parameters, UpdateContext context)
    {
        var s = Chain.Expect<ScaleByRmsState>(state, this);
        ArgumentNullException.ThrowIfNull(grads);
        grads.Layout.RequireSame(s.Nu.Layout, Name);
        var scalars = ScalarsAt(s.Count);
        RmsUpdate.Direction(grads.Device.Kernels, grads.Flat32, s.Nu.Flat32, s.Mu?.Flat32 ?? default, s.MomentumBuffer?.Flat32 ?? default, scalars);
        s.MarkConsumed(Name + ".Update");
        return new UpdateResult(grads.Consume(Name), s.Advance(Name));
    }

    /// <summary>The kernel scalars of the update that follows <paramref name="count"/> updates.</summary>
    /// <param name="count">Updates done so far.</param>
    /// <returns>The scalars, with the momentum read from its schedule.</returns>
    internal RmsScalars ScalarsAt(long count) =>
        RmsScalars.For(Alpha, Eps, HasMomentum ? AdaptiveChecks.At(Name, "momentum", Momentum, count) : 0);

    /// <summary>Checks alpha, eps and a constant momentum, as PyTorch's constructor.</summary>
    /// <param name="op">The optimizer, for the message.</param>
    internal void Validate(string op)
    {
        // PyTorch checks only alpha >= 0, but 1 - alpha < 0 drives v negative (a NaN from the
        // square root on the first step) and alpha = 1 keeps v at 0 (updates g / eps).
        if (!(Alpha >= 0 && Alpha < 1))
            throw new ArgumentOutOfRangeException("alpha", Alpha, $"{op}: alpha must be in [0, 1), got {Alpha}: v ← α·v + (1 − α)·g² needs 1 − α > 0 (PyTorch's default is 0.99).");
        AdaptiveChecks.NonNegative(op, "eps", Eps);
        AdaptiveChecks.NonNegativeSchedule(op, "momentum", Momentum);
    }
}

/// <summary>The state of <see cref="ScaleByRms"/>.</summary>
/// <param name="Count">Updates done so far.</param>
/// <param name="Nu">Running mean of g² (PyTorch's <c>square_avg</c>).</param>
/// <param name="Mu">Running mean of g (<c>grad_avg</c>) when centered, else null.</param>
/// <param name="MomentumBuffer">The momentum buffer (<c>momentum_buffer</c>) when kept, else null.</param>
public sealed record ScaleByRmsState(long Count, ParamTree Nu, ParamTree? Mu, ParamTree? MomentumBuffer) : OptState
{
    /// <summary>The state after one more update, its buffers moved to the new record.</summary>
    /// <param name="consumer">The update that moves them.</param>
    /// <returns>The new state.</returns>
    internal ScaleByRmsState Advance(string consumer) =>
        new(Count + 1, Nu.Consume(consumer), Mu?.Consume(consumer), MomentumBuffer?.Consume(consumer));

    /// <inheritdoc/>
    public override void Dispose()
    {
        Nu.Dispose();
        Mu?.Dispose();
        MomentumBuffer?.Dispose();
        base.Dispose();
    }
}
