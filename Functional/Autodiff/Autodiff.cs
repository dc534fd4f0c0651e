namespace IlgpuTrain.Functional;

/// <summary>Options of <see cref="Autodiff.ValueAndGrad(StepScope, ParamTree, Func{Params, Tensor}, GradOptions?)"/>.</summary>
public sealed record GradOptions
{
    /// <summary>Default options: every parameter trains, seed 1.</summary>
    public static GradOptions Default { get; } = new();

    /// <summary>Which parameters get gradients; the others are frozen (their gradient is 0 and their weight-gradient kernels are skipped). All by default.</summary>
    public ParamFilter? Trainable { get; init; }

    /// <summary>
    /// The value backward starts from, d objective / d loss: 1 by default; the loss scale under
    /// mixed precision, so the gradients come out scaled without another pass.
    /// </summary>
    public float Seed { get; init; } = 1f;
}

/// <summary>
/// Reverse-mode differentiation of a scalar loss with respect to a ParamTree, as JAX's
/// <c>value_and_grad</c>: the forward runs once, recording VJPs on a tape, and the backward
/// writes d loss / d params into a flat buffer with the parameters' own layout (so an optimizer,
/// a global norm or an all-reduce sees one buffer).
/// </summary>
public static class Autodiff
{
    /// <summary>
    /// Runs <paramref name="loss"/> on the parameters with a recording tape, then its backward.
    /// </summary>
    /// <param name="step">The step whose arena holds activations and the tape.</param>
    /// <param name="parameters">The parameters; not changed.</param>
    /// <param name="loss">The forward: builds the loss from the bound parameters (one value; use F.Mean or a reduced loss).</param>
    /// <param name="options">Trainable filter and seed.</param>
    /// <returns>The loss (a one-element tensor of the step, still on the device) and the gradients (a new tree the caller owns, in the parameters' layout).</returns>
    public static (Tensor Loss, ParamTree Grads) ValueAndGrad(StepScope step, ParamTree parameters, Func<Params, Tensor> loss, GradOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(step);
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(loss);
        options ??= GradOptions.Default;
        if (step.Tape is { IsRecording: true })
            throw new InvalidOperationException("ValueAndGrad: this step is already recording a tape; nested differentiation is not supported. Use one ValueAndGrad per step.");

        var tape = new Tape(step);
        var grads = ParamTree.Empty(parameters.Device, parameters.Layout);
        step.Tape = tape;
        try
        {
            var value = loss(Params.Record(parameters, step, tape, grads, options.Trainable));
            ArgumentNullException.ThrowIfNull(value, nameof(loss));
            tape.Backward(value, options.Seed);

            // Parameters the loss does not read, frozen ones and those with no path to the loss get
            // exactly zero: the buffer comes from the pool and holds whatever was there.
            tape.ZeroUnowned(grads);
            return (value, grads);
        }
        catch
        {
            grads.Dispose();
            throw;
        }
        finally
        {
            tape.StopRecording();
            step.Tape = null;
        }
    }

    /// <summary>
    /// JAX's <c>value_and_grad(f)</c>: a function of (step, params, batch) returning (loss, grads).
    /// </summary>
    /// <typeparam name="TBatch">Whatever the loss reads besides the parameters.</typeparam>
    /// <param name="loss">The loss as a function of the bound parameters and the batch.</param>
    /// <param name="options">Trainable filter and seed.</param>
    /// <returns>The differentiated function.</returns>
    public static Func<StepScope, ParamTree, TBatch, (Tensor Loss, ParamTree Grads)> ValueAndGrad<TBatch>(Func<Params, TBatch, Tensor> loss, GradOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(loss);
        return (step, parameters, batch) => ValueAndGrad(step, parameters, p => loss(p, batch), options);
    }
}
