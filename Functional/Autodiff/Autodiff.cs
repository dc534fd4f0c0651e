namespace IlgpuTrain.Functional;

/// <summary>Options of <see cref="Autodiff.ValueAndGrad(StepScope, ParamTree, Func{Params, Tensor}, GradOptions?)"/>.</summary>
public sealed record GradOptions
{
    /// <summary>Default options: every parameter trains, seed 1.</summary>
    public static GradOptions Default { get; } = new();

    /// <summary>Which parameters get gradients; the others are frozen (their gradient is 0 and their weight-gradient kernels are skipped). All by default. A glob of the filter that matches no parameter is an error (<see cref="ParamFilter.RequireMatches(ParamLayout, string)"/>).</summary>
    public ParamFilter? Trainable { get; init; }

    /// <summary>
    /// The value backward starts from, d objective / d loss: 1 by default; the loss scale under
    /// mixed precision, so the gradients come out scaled without another pass. Must be finite.
    /// </summary>
    public float Seed { get; init; } = 1f;

    /// <summary>
    /// Told during the backward when each parameter's gradient is final (see
    /// <see cref="IGradientReadyObserver"/>), or null (the default). The gradients are the same with or
    /// without it; only the moment at which the unwritten slots are zero-filled changes.
    /// </summary>
    public IGradientReadyObserver? GradientReady { get; init; }
}

/// <summary>
/// Reverse-mode differentiation, as JAX's <c>value_and_grad</c> and <c>vjp</c>: the forward runs
/// once, recording VJPs on a tape, and the backward writes d objective / d params into a flat buffer
/// with the parameters' own layout (so an optimizer, a global norm or an all-reduce sees one
/// buffer) and, when asked, d objective / d input for input tensors.
/// </summary>
/// <remarks>
/// The objective is a scalar loss (seeded with <see cref="GradOptions.Seed"/>) for
/// <c>ValueAndGrad</c>, or any output seeded with a tensor of its shape (a cotangent) for
/// <c>Vjp</c>: then the gradients are (d output / d wrt)^T seed. A parameter or input the output
/// does not depend on gets an exact zero gradient.
/// </remarks>
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
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(loss);
        var (value, grads, _) = Differentiate(nameof(ValueAndGrad), step, parameters, [], loss, options ?? GradOptions.Default, seed: null);
        return (value, grads!);
    }

    /// <summary>
    /// Runs <paramref name="loss"/> with a recording tape, then its backward, and returns the
    /// gradients with respect to the parameters and to each of <paramref name="inputs"/>.
    /// </summary>
    /// <param name="step">The step whose arena holds activations and the tape.</param>
    /// <param name="parameters">The parameters; not changed.</param>
    /// <param name="inputs">Float32 tensors of <paramref name="step"/> to differentiate too (each listed once; bring an owned tensor in with <c>step.Use(tensor)</c>). The loss reads them as it likes, captured or passed on; they are values of the tape only during this call.</param>
    /// <param name="loss">The forward: builds the loss from the bound parameters and the inputs (one value).</param>
    /// <param name="options">Trainable filter and seed.</param>
    /// <returns>The loss, the parameters' gradients (a new tree the caller owns) and one gradient per input, with its shape (tensors of the step).</returns>
    /// <exception cref="ArgumentException">An input is null, not Float32, not of this step, or listed twice; or the loss is not one value.</exception>
    /// <exception cref="ConsumedValueException">An input was consumed.</exception>
    public static (Tensor Loss, ParamTree Grads, Tensor[] InputGrads) ValueAndGrad(StepScope step, ParamTree parameters, IReadOnlyList<Tensor> inputs, Func<Params, Tensor> loss, GradOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(loss);
        var (value, grads, inputGrads) = Differentiate(nameof(ValueAndGrad), step, parameters, inputs, loss, options ?? GradOptions.Default, seed: null);
        return (value, grads!, inputGrads);
    }

    /// <summary>
    /// The vector-Jacobian product of a tensor-valued function: runs <paramref name="f"/> with a
    /// recording tape, then the backward seeded with <paramref name="seed"/> = d objective / d output,
    /// giving (d output / d params)^T seed and (d output / d input)^T seed.
    /// </summary>
    /// <param name="step">The step whose arena holds activations and the tape.</param>
    /// <param name="parameters">The parameters; not changed.</param>
    /// <param name="inputs">Float32 tensors of <paramref name="step"/> to differentiate too (may be empty).</param>
    /// <param name="f">The forward: any Float32 output.</param>
    /// <param name="seed">A Float32 tensor with the output's shape, on the step's device; only read.</param>
    /// <param name="options">Trainable filter; its <see cref="GradOptions.Seed"/> must stay 1 (scale the seed tensor instead).</param>
    /// <returns>The output (a tensor of the step), the parameters' gradients (a new tree the caller owns) and one gradient per input (tensors of the step).</returns>
    /// <exception cref="ArgumentException">A bad input, or a seed of another shape, dtype or device than the output.</exception>
    /// <exception cref="ConsumedValueException">An input or the seed was consumed.</exception>
    public static (Tensor Output, ParamTree Grads, Tensor[] InputGrads) Vjp(StepScope step, ParamTree parameters, IReadOnlyList<Tensor> inputs, Func<Params, Tensor> f, Tensor seed, GradOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(f);
        ArgumentNullException.ThrowIfNull(seed);
        options ??= GradOptions.Default;
        if (options.Seed != 1f)
            throw new ArgumentException($"Vjp: options.Seed is {options.Seed}, but the seed tensor already is d objective / d output; scale the seed tensor instead (F.Scale(seed, {options.Seed}f)).", nameof(options));
        var (output, grads, inputGrads) = Differentiate(nameof(Vjp), step, parameters, inputs, f, options, seed);
        return (output, grads!, inputGrads);
    }

    /// <summary>
    /// The vector-Jacobian product of a function of tensors alone: (d f / d input)^T seed for each
    /// of <paramref name="inputs"/>, as JAX's <c>vjp(f, *inputs)[1](seed)</c>.
    /// </summary>
    /// <param name="step">The step whose arena holds activations and the tape.</param>
    /// <param name="inputs">Float32 tensors of <paramref name="step"/> to differentiate, each listed once.</param>
    /// <param name="f">The forward, reading the inputs it captured: any Float32 output.</param>
    /// <param name="seed">A Float32 tensor with the output's shape, on the step's device; only read.</param>
    /// <returns>The output and one gradient per input, with its shape (tensors of the step).</returns>
    /// <exception cref="ArgumentException">A bad input, or a seed of another shape, dtype or device than the output.</exception>
    /// <exception cref="ConsumedValueException">An input or the seed was consumed.</exception>
    public static (Tensor Output, Tensor[] InputGrads) Vjp(StepScope step, IReadOnlyList<Tensor> inputs, Func<Tensor> f, Tensor seed)
    {
        ArgumentNullException.ThrowIfNull(f);
        ArgumentNullException.ThrowIfNull(seed);
        var (output, _, inputGrads) = Differentiate(nameof(Vjp), step, null, inputs, _ => f(), GradOptions.Default, seed);
        return (output, inputGrads);
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

    // One tape, one forward, one backward. With a null seed the output must be one value and is
    // seeded with options.Seed; otherwise the seed tensor must have the output's shape.
    private static (Tensor Output, ParamTree? Grads, Tensor[] InputGrads) Differentiate(string api, StepScope step, ParamTree? parameters, IReadOnlyList<Tensor> inputs, Func<Params, Tensor> f, GradOptions options, Tensor? seed)
    {
        ArgumentNullException.ThrowIfNull(step);
        ArgumentNullException.ThrowIfNull(inputs);
        if (step.Tape is { IsRecording: true })
            throw new InvalidOperationException($"{api}: this step is already recording a tape; nested differentiation is not supported. Use one ValueAndGrad per step.");
        CheckInputs(api, step, inputs);
        if (parameters is not null)
            options.Trainable?.RequireMatches(parameters.Layout, api, "GradOptions.Trainable");
        if (!float.IsFinite(options.Seed))
            throw new ArgumentException($"{api}: GradOptions.Seed is {options.Seed}, which would make every gradient non-finite; it must be finite (1, or the loss scale).", nameof(options));
        if (seed is not null)
        {
            seed.ThrowIfConsumed($"{api}: the seed");
            if (seed.DType != DType.Float32)
                throw new ArgumentException($"{api}: the seed is a {seed.DType} Tensor{seed.Shape}; it must be Float32.", nameof(seed));
            if (seed.Device != step.Device)
                throw new ArgumentException($"{api}: the seed lives on {seed.Device} but the step on {step.Device}.", nameof(seed));
        }

        var tape = new Tape(step);
        var grads = parameters is null ? null : ParamTree.Empty(parameters.Device, parameters.Layout);
        var saved = new TapeNode?[inputs.Count];
        var leaves = new TapeNode[inputs.Count];
        var inputGrads = new Tensor[inputs.Count];
        step.Tape = tape;
        try
        {
            for (int i = 0; i < inputs.Count; i++)
            {
                saved[i] = inputs[i].Node;
                inputGrads[i] = step.Allocate(inputs[i].Shape);
                leaves[i] = tape.InputLeaf(inputs[i], i, inputGrads[i].View<float>());
            }

            var bound = parameters is null ? null! : Params.Record(parameters, step, tape, grads!, options.Trainable);
            var value = f(bound);
            if (value is null)
                throw new InvalidOperationException($"{api}: the function returned null; it must return its output tensor.");
            if (seed is null)
            {
                tape.Backward(value, options.Seed, grads, options.GradientReady);
            }
            else
            {
                if (value.DType != DType.Float32)
                    throw new ArgumentException($"{api}: the function returned a {value.DType} Tensor{value.Shape}; only Float32 outputs have gradients.", nameof(f));
                if (seed.Shape != value.Shape)
                    throw new ArgumentException($"{api}: the seed is Tensor{seed.Shape} but the function returned Tensor{value.Shape}; the seed (d objective / d output) must have the output's shape.", nameof(seed));
                tape.Backward(value, step.Use(seed), grads, options.GradientReady);
            }

            // Parameters and inputs the output does not read, frozen ones and those with no path to
            // it get exactly zero: the buffers come from the pool and hold whatever was there.
            if (grads is not null && options.GradientReady is null)
                tape.ZeroUnowned(grads);
            for (int i = 0; i < leaves.Length; i++)
            {
                if (!leaves[i].HasGrad)
                    inputGrads[i].ZeroInPlace();
            }

            return (value, grads, inputGrads);
        }
        catch
        {
            grads?.Dispose();
            throw;
        }
        finally
        {
            tape.StopRecording();
            step.Tape = null;
            for (int i = 0; i < inputs.Count; i++)
            {
                if (leaves[i] is not null)
                    inputs[i].Node = saved[i];
            }
        }
    }

    private static void CheckInputs(string api, StepScope step, IReadOnlyList<Tensor> inputs)
    {
        for (int i = 0; i < inputs.Count; i++)
        {
            var x = inputs[i] ?? throw new ArgumentNullException(nameof(inputs), $"{api}: inputs[{i}] is null.");
            x.ThrowIfConsumed($"{api}: inputs[{i}]");
            if (!ReferenceEquals(x.Scope, step))
                throw new ArgumentException($"{api}: inputs[{i}] (Tensor{x.Shape}) belongs to {(x.Scope is null ? "no step" : "another step")}, so this step's tape cannot differentiate it; upload it with step.Upload(...) or bring an owned tensor in with step.Use(tensor), and pass that.", nameof(inputs));
            if (x.DType != DType.Float32)
                throw new ArgumentException($"{api}: inputs[{i}] is a {x.DType} Tensor{x.Shape}; only Float32 tensors have gradients (leave integer inputs such as labels out of the list).", nameof(inputs));
            for (int j = 0; j < i; j++)
            {
                if (ReferenceEquals(inputs[j], x))
                    throw new ArgumentException($"{api}: inputs[{i}] is the same tensor as inputs[{j}]; list each input once (its gradient already sums every use).", nameof(inputs));
            }
        }
    }
}
