namespace IlgpuTrain.Optimizers;

/// <summary>
/// Rescales gradients by the root of the running sum of their squares: Adagrad's direction with
/// PyTorch's semantics (<c>torch.optim.Adagrad</c>). Put <see cref="ScaleByLearningRate"/> after it
/// (<see cref="Adagrad"/> is such a chain; its lr_decay is an <see cref="InverseTimeDecay"/> schedule).
/// </summary>
/// <remarks>
/// <para>s ← s + g²   (s starts at initial_accumulator_value)</para>
/// <para>u = g / (√s + eps)</para>
/// <para>Defaults: initial_accumulator_value 0, eps 1e-10 (PyTorch; Duchi, Hazan and Singer,
/// "Adaptive Subgradient Methods for Online Learning and Stochastic Optimization", 2011).
/// eps sits outside the square root as in PyTorch; Optax's adagrad adds it inside and starts
/// the sum at 0.1.</para>
/// </remarks>
public sealed record ScaleByAdagrad : IGradientTransformation
{
    /// <summary>Creates the transformation; hyperparameters are checked by <see cref="Init"/>.</summary>
    /// <param name="initialAccumulatorValue">Initial value of the sum, at least 0.</param>
    /// <param name="eps">eps, at least 0, added outside the square root.</param>
    public ScaleByAdagrad(double initialAccumulatorValue = 0, double eps = 1e-10)
    {
        InitialAccumulatorValue = initialAccumulatorValue;
        Eps = eps;
    }

    /// <summary>Initial value of the sum of squares (PyTorch's <c>initial_accumulator_value</c>).</summary>
    public double InitialAccumulatorValue { get; init; }

    /// <summary>eps, outside the square root.</summary>
    public double Eps { get; init; }

    /// <inheritdoc/>
    public string Name => "scale_by_adagrad";

    /// <inheritdoc/>
    public OptState Init(ParamTree parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        Validate(nameof(ScaleByAdagrad));
        var sum = parameters.ZerosLike();
        if (InitialAccumulatorValue != 0)
            Elementwise.Fill(parameters.Device.Kernels, sum.Flat32, (float)InitialAccumulatorValue);
        return new ScaleByAdagradState(0, sum);
    }

    /// <inheritdoc/>
    public UpdateResult Update(ParamTree grads, OptState state, ParamTree parameters, UpdateContext context)
    {
        var s = Chain.Expect<ScaleByAdagradState>(state, this);
        ArgumentNullException.ThrowIfNull(grads);
        grads.Layout.RequireSame(s.Sum.Layout, Name);
        AdagradUpdate.Direction(grads.Device.Kernels, grads.Flat32, s.Sum.Flat32, (float)Eps);
        s.MarkConsumed(Name + ".Update");
        return new UpdateResult(grads.Consume(Name), s.Advance(Name));
    }

    /// <summary>Checks initial_accumulator_value and eps, as PyTorch's constructor.</summary>
    /// <param name="op">The optimizer, for the message.</param>
    internal void Validate(string op)
    {
        AdaptiveChecks.NonNegative(op, "initial_accumulator_value", InitialAccumulatorValue);
        AdaptiveChecks.NonNegative(op, "eps", Eps);
    }
}

/// <summary>The state of <see cref="ScaleByAdagrad"/>.</summary>
/// <param name="Count">Updates done so far.</param>
/// <param name="Sum">Sum of squared gradients (PyTorch's <c>sum</c>), in the parameters' layout.</param>
public sealed record ScaleByAdagradState(long Count, ParamTree Sum) : OptState
{
    /// <summary>The state after one more update, the sum moved to the new record.</summary>
    /// <param name="consumer">The update that moves it.</param>
    /// <returns>The new state.</returns>
    internal ScaleByAdagradState Advance(string consumer) => new(Count + 1, Sum.Consume(consumer));

    /// <inheritdoc/>
    public override void Dispose()
    {
        Sum.Dispose();
        base.Dispose();
    }
}
