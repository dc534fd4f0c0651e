namespace IlgpuTrain.Optimizers;

/// <summary>
/// Scales the updates by the negative learning rate: u ← −lr(t)·u, t the update count
/// (Optax's <c>scale_by_learning_rate</c>). The schedule is read at the count before it is
/// incremented, so update 1 uses lr(0), as PyTorch's <c>optimizer.step(); scheduler.step()</c>.
/// </summary>
/// <param name="LearningRate">A schedule; a plain number converts to a constant schedule, which must be finite and at least 0 (checked by Init).</param>
/// <param name="FlipSign">Multiply by −lr (descent, the default) rather than +lr.</param>
public sealed record ScaleByLearningRate(Schedule LearningRate, bool FlipSign = true) : IGradientTransformation
{
    /// <inheritdoc/>
    public string Name => "scale_by_learning_rate";

    /// <inheritdoc/>
    public OptState Init(ParamTree parameters)
    {
        ArgumentNullException.ThrowIfNull(LearningRate);
        if (LearningRate is Constant { Value: var lr } && !(lr >= 0 && double.IsFinite(lr)))
            throw new ArgumentOutOfRangeException(nameof(LearningRate), lr, $"{Name}: the learning rate must be finite and at least 0 (PyTorch: lr >= 0), got {lr}; to step along the gradient instead of against it, set FlipSign: false.");
        return new ScaleByLearningRateState(0, double.NaN, LearningRate);
    }

    /// <inheritdoc/>
    public UpdateResult Update(ParamTree grads, OptState state, ParamTree parameters, UpdateContext context)
    {
        var s = Chain.Expect<ScaleByLearningRateState>(state, this);
        ArgumentNullException.ThrowIfNull(grads);
        double lr = s.Schedule.At(s.Count);
        if (!double.IsFinite(lr))
            throw new InvalidOperationException($"{Name}: the schedule {s.Schedule} gave lr = {lr} at step {s.Count}; a learning rate must be finite.");
        var g = grads.Flat32;
        Elementwise.Scale(grads.Device.Kernels, g, (float)(FlipSign ? -lr : lr), g);
        s.MarkConsumed(Name + ".Update");
        return new UpdateResult(grads.Consume(Name), new ScaleByLearningRateState(s.Count + 1, lr, s.Schedule));
    }
}

/// <summary>The state of <see cref="ScaleByLearningRate"/>.</summary>
/// <param name="Count">Updates done so far (the schedule's step).</param>
/// <param name="LastLearningRate">The learning rate the last update used (NaN before the first).</param>
/// <param name="Schedule">The schedule.</param>
public sealed record ScaleByLearningRateState(long Count, double LastLearningRate, Schedule Schedule) : OptState
{
    /// <summary>The learning rate the next update will use.</summary>
    public double NextLearningRate => Schedule.At(Count);
}
