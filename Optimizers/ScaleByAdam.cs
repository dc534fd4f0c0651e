namespace IlgpuTrain.Optimizers;

/// <summary>
/// Rescales gradients by Adam's bias-corrected moment estimates (Optax's <c>scale_by_adam</c>
/// with PyTorch's placement of eps and PyTorch's AMSGrad). Put <see cref="ScaleByLearningRate"/>
/// after it for Adam (<see cref="Adam"/>, <see cref="AdamW"/> are such chains).
/// </summary>
/// <remarks>
/// <para>t = count + 1;  β₁ = B1(count), the schedule read before the count is incremented</para>
/// <para>m ← β₁·m + (1 − β₁)·g</para>
/// <para>v ← β₂·v + (1 − β₂)·g²</para>
/// <para>AMSGrad: v_max ← max(v_max, v), and v_max replaces v below</para>
/// <para>m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ)</para>
/// <para>u = m̂ / (√(v̂ + eps_root) + eps)</para>
/// <para>Defaults: b1 0.9, b2 0.999, eps 1e-8, eps_root 0, amsgrad false (PyTorch's
/// <c>torch.optim.Adam</c>; Kingma and Ba, "Adam: A Method for Stochastic Optimization", 2015).
/// eps sits outside the square root as in PyTorch; Optax's eps_root, inside, is offered and
/// defaults to 0.</para>
/// <para>AMSGrad (Reddi et al., 2018) follows PyTorch: the maximum is taken over the raw second
/// moment v and then divided by 1 − β₂ᵗ. Optax instead takes the maximum of the bias-corrected
/// v̂, which differs while the bias correction still changes.</para>
/// <para>With a scheduled β₁ (OneCycle cycles it between 0.85 and 0.95) the current β₁ is used in
/// both the moment and the bias correction 1 − β₁ᵗ, as PyTorch does when a scheduler rewrites
/// <c>betas[0]</c>.</para>
/// <para>State: the count and m, v (and v_max) in the parameters' layout, updated in place by one
/// kernel launch over the flat buffer and moved to the new state.</para>
/// </remarks>
public sealed record ScaleByAdam : IGradientTransformation
{
    /// <summary>Creates the transformation; hyperparameters are checked by <see cref="Init"/>.</summary>
    /// <param name="b1">β₁, in [0, 1); a schedule for cycled momentum. Null: 0.9.</param>
    /// <param name="b2">β₂, in [0, 1).</param>
    /// <param name="eps">eps, at least 0, added outside the square root.</param>
    /// <param name="epsRoot">Optax's eps_root, at least 0, added inside the square root.</param>
    /// <param name="amsgrad">Keep the running maximum of v (PyTorch's AMSGrad).</param>
    public ScaleByAdam(Schedule? b1 = null, double b2 = 0.999, double eps = 1e-8, double epsRoot = 0, bool amsgrad = false)
    {
        B1 = b1 ?? 0.9;
        B2 = b2;
        Eps = eps;
        EpsRoot = epsRoot;
        Amsgrad = amsgrad;
    }

    /// <summary>β₁ (PyTorch's <c>betas[0]</c>), read at the count before the update.</summary>
    public Schedule B1 { get; init; }

    /// <summary>β₂ (PyTorch's <c>betas[1]</c>).</summary>
    public double B2 { get; init; }

    /// <summary>eps, outside the square root.</summary>
    public double Eps { get; init; }

    /// <summary>eps_root, inside the square root (Optax).</summary>
    public double EpsRoot { get; init; }

    /// <summary>Whether v is replaced by its running maximum (AMSGrad).</summary>
    public bool Amsgrad { get; init; }

    /// <inheritdoc/>
    public string Name => "scale_by_adam";

    /// <inheritdoc/>
    public OptState Init(ParamTree parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        Validate(nameof(ScaleByAdam));
        _ = ScalarsAt(0);
        ParamTree? mu = null, nu = null;
        try
        {
            mu = parameters.ZerosLike();
            nu = parameters.ZerosLike();
            return new ScaleByAdamState(0, mu, nu, Amsgrad ? parameters.ZerosLike() : null);
        }
        catch
        {
            mu?.Dispose();
            nu?.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public UpdateResult Update(ParamTree grads, OptState state, ParamTree parameters, UpdateContext context)
    {
        var s = Chain.Expect<ScaleByAdamState>(state, this);
        ArgumentNullException.ThrowIfNull(grads);
        grads.Layout.RequireSame(s.Mu.Layout, Name);
        var scalars = ScalarsAt(s.Count);
        AdamUpdate.Direction(grads.Device.Kernels, grads.Flat32, s.Mu.Flat32, s.Nu.Flat32, s.NuMax?.Flat32 ?? default, scalars);
        s.MarkConsumed(Name + ".Update");
        return new UpdateResult(grads.Consume(Name), s.Advance(Name));
    }

    /// <summary>The kernel scalars of the update that follows <paramref name="count"/> updates (t = count + 1).</summary>
    /// <param name="count">Updates done so far.</param>
    /// <returns>β₁ read from its schedule, bias corrections in float64.</returns>
    internal AdamScalars ScalarsAt(long count)
    {
        double b1 = B1.At(count);
        if (!(b1 >= 0 && b1 < 1))
            throw new InvalidOperationException($"{Name}: the b1 schedule {B1} gave {b1} at step {count}; betas[0] must be in [0, 1).");
        return AdamScalars.For(b1, B2, Eps, EpsRoot, count + 1);
    }

    /// <summary>Checks b2, eps and eps_root (b1 is checked each time its schedule is read).</summary>
    /// <param name="op">The optimizer, for the message.</param>
    internal void Validate(string op)
    {
        ArgumentNullException.ThrowIfNull(B1, nameof(B1));
        if (B1 is Constant b1)
            AdaptiveChecks.Beta(op, "betas[0]", b1.Value);
        AdaptiveChecks.Beta(op, "betas[1]", B2);
        AdaptiveChecks.NonNegative(op, "eps", Eps);
        AdaptiveChecks.NonNegative(op, "eps_root", EpsRoot);
    }
}

/// <summary>The state of <see cref="ScaleByAdam"/>.</summary>
/// <param name="Count">Updates done so far (the next update uses t = Count + 1).</param>
/// <param name="Mu">First moment m (PyTorch's <c>exp_avg</c>), in the parameters' layout.</param>
/// <param name="Nu">Second moment v (<c>exp_avg_sq</c>).</param>
/// <param name="NuMax">Running maximum of v (<c>max_exp_avg_sq</c>) with AMSGrad, else null.</param>
public sealed record ScaleByAdamState(long Count, ParamTree Mu, ParamTree Nu, ParamTree? NuMax) : OptState
{
    /// <summary>The state after one more update: the count advanced and the moment buffers moved to the new record.</summary>
    /// <param name="consumer">The update that moves them.</param>
    /// <returns>The new state.</returns>
    internal ScaleByAdamState Advance(string consumer) =>
        new(Count + 1, Mu.Consume(consumer), Nu.Consume(consumer), NuMax?.Consume(consumer));

    /// <inheritdoc/>
    public override void Dispose()
    {
        // Moments moved to a newer state were consumed: disposing them here returns nothing.
        Mu.Dispose();
        Nu.Dispose();
        NuMax?.Dispose();
        base.Dispose();
    }
}

/// <summary>Hyperparameter checks shared by the adaptive optimizers, with PyTorch's argument names in the messages.</summary>
internal static class AdaptiveChecks
{
    /// <summary>Throws unless <paramref name="value"/> is in [0, 1).</summary>
    public static void Beta(string op, string name, double value)
    {
        if (!(value >= 0 && value < 1))
            throw new ArgumentOutOfRangeException(name, value, $"{op}: {name} must be in [0, 1), got {value}.");
    }

    /// <summary>Throws unless <paramref name="value"/> is finite and at least 0.</summary>
    public static void NonNegative(string op, string name, double value)
    {
        if (!(value >= 0) || double.IsInfinity(value))
            throw new ArgumentOutOfRangeException(name, value, $"{op}: {name} must be finite and at least 0, got {value}.");
    }

    /// <summary>Throws unless a constant schedule is finite and at least 0 (others are checked when read).</summary>
    public static void NonNegativeSchedule(string op, string name, Schedule schedule)
    {
        ArgumentNullException.ThrowIfNull(schedule, name);
        if (schedule is Constant c)
            NonNegative(op, name, c.Value);
    }

    /// <summary>A value read from a schedule, checked to be finite and at least 0.</summary>
    public static double At(string op, string name, Schedule schedule, long step)
    {
        double value = schedule.At(step);
        if (!(value >= 0) || double.IsInfinity(value))
            throw new InvalidOperationException($"{op}: the {name} schedule {schedule} gave {value} at step {step}; {name} must be finite and at least 0.");
        return value;
    }
}
