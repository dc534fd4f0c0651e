namespace IlgpuTrain.Optimizers;

/// <summary>
/// Gradient accumulation (Optax's <c>MultiSteps</c>): averages the gradients of k micro-batches
/// and runs the inner transformation once on their mean, so k micro-batches of size b train like
/// one batch of size k·b.
/// </summary>
/// <remarks>
/// <para>micro-step m = 0 .. k−2:  A ← A + g (A ← g at m = 0);  u ← 0;  inner state unchanged</para>
/// <para>micro-step m = k−1:      ḡ ← (A + g) · (1/k);  (u, inner) ← inner.update(ḡ, inner);  A ← 0</para>
/// <para>mini_step ← (m + 1) mod k; gradient_step counts emitted updates.</para>
/// <para>A holds the running sum, divided once at emission (Optax keeps a running mean,
/// A + (g − A)/(m+1)): one launch per micro-step that reads 8 B and writes 4 B per element instead
/// of two, and equal to the mean within float rounding. Like PyTorch's recipe of scaling each
/// micro-batch loss by 1/k, the sum of k float32 gradients is assumed not to overflow.</para>
/// <para>On intermediate micro-steps the inner transformation is not called, so parameters, moments
/// and the schedule count do not move; k micro-steps on g₁..g_k equal one inner step on their mean
/// (PyTorch: k backward passes accumulating into .grad with each loss divided by k, then
/// optimizer.step()). The mean is exact for the gradients, not for BatchNorm statistics.</para>
/// <para>Applying updates: through <see cref="Optimizer.Step"/> (<see cref="IFusedStep"/>, on by
/// default) intermediate micro-steps leave the parameters bitwise unchanged, and the micro-step
/// that applies runs the inner transformation's <see cref="FusionPlan"/> (for AdamW, one launch on
/// the mean gradient; <see cref="FusionPlan.Inner"/> shows it). Through Update then
/// ApplyUpdates they get θ + 0, bitwise θ except that −0 becomes +0; a trainer can instead apply
/// only when <see cref="MultiStepsState.HasUpdated"/>. With k = 1 the inner transformation runs
/// on the gradients directly (no accumulator is allocated), so MultiSteps(inner, 1) is bitwise inner.</para>
/// <para>Optax's <c>should_skip_update_fn</c> is not offered: wrap the inner transformation in
/// <see cref="ApplyIfFinite"/> to reject a non-finite mean, or wrap MultiSteps in it to reject
/// non-finite micro-batches before they are accumulated.</para>
/// <para>Wrap the whole optimizer: a transformation chained after MultiSteps runs on every
/// micro-step's zero updates, so its own count moves k times per emitted update.</para>
/// <para>Memory: one extra parameter-sized Float32 buffer (the accumulator) when k &gt; 1.</para>
/// </remarks>
/// <param name="Inner">The transformation run on the mean gradient.</param>
/// <param name="EveryK">Micro-steps per update k (Optax's every_k_schedule as a constant): at least 1.</param>
public sealed record MultiSteps(IGradientTransformation Inner, int EveryK) : IFusedStep
{
    /// <inheritdoc/>
    public string Name => "multi_steps";

    /// <summary>Whether <see cref="Optimizer.Step"/> leaves parameters untouched on intermediate micro-steps (<see cref="FusedStep"/>); true by default.</summary>
    public bool Fused { get; init; } = true;

    /// <summary>The batch one emitted update effectively trains on: k · micro-batch (see the linear LR scaling rule).</summary>
    /// <param name="microBatch">Samples per micro-batch.</param>
    /// <returns>k · microBatch.</returns>
    public long EffectiveBatch(long microBatch)
    {
        Validate();
        if (microBatch < 0)
            throw new ArgumentOutOfRangeException(nameof(microBatch), microBatch, "MultiSteps.EffectiveBatch: the micro-batch size cannot be negative.");
        return checked(EveryK * microBatch);
    }

    /// <summary>Whether the next update of a state will emit (its micro-step is the k-th).</summary>
    /// <param name="state">A state of this transformation.</param>
    /// <returns>True when the next call runs the inner transformation.</returns>
    public bool EmitsNext(OptState state) => Chain.Expect<MultiStepsState>(state, this).MiniStep == EveryK - 1;

    /// <inheritdoc/>
    public OptState Init(ParamTree parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        Validate();
        var accumulated = EveryK > 1 ? parameters.ZerosLike() : null;
        try
        {
            return new MultiStepsState(0, 0, accumulated, Inner.Init(parameters));
        }
        catch
        {
            accumulated?.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public UpdateResult Update(ParamTree grads, OptState state, ParamTree parameters, UpdateContext context)
    {
        var s = Begin(grads, state);
        if (s.MiniStep < EveryK - 1)
        {
            var acc = Accumulate(grads, s);
            grads.ZeroInPlace();
            return new UpdateResult(grads.Consume(Name), Next(s, s.MiniStep + 1, s.GradientStep, acc, s.Inner));
        }
        var mean = Mean(grads, s);
        var (updates, inner) = Inner.Update(mean, s.Inner, parameters, context);
        return new UpdateResult(updates, Next(s, 0, s.GradientStep + 1, Reset(s), inner));
    }

    /// <summary>
    /// One step that applies only on emission: an intermediate micro-step accumulates, disposes
    /// the gradients and hands the parameters back bitwise unchanged; the k-th is
    /// <see cref="Optimizer.Step"/> of the inner transformation on the mean (its own fused kernel
    /// when it has one).
    /// </summary>
    /// <param name="parameters">Parameters. Consumed (the result reuses their buffer).</param>
    /// <param name="grads">Gradients. Consumed.</param>
    /// <param name="state">State. Consumed.</param>
    /// <param name="context">Extras.</param>
    /// <returns>New parameters and state.</returns>
    public (ParamTree Parameters, OptState State) FusedStep(ParamTree parameters, ParamTree grads, OptState state, UpdateContext context)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var s = Begin(grads, state);
        if (s.MiniStep < EveryK - 1)
        {
            var acc = Accumulate(grads, s);
            grads.Dispose();
            var same = parameters.Consume(Name);
            return (same, Next(s, s.MiniStep + 1, s.GradientStep, acc, s.Inner));
        }
        var mean = Mean(grads, s);
        var (next, inner) = Inner.Step(parameters, mean, s.Inner, context);
        return (next, Next(s, 0, s.GradientStep + 1, Reset(s), inner));
    }

    private MultiStepsState Begin(ParamTree grads, OptState state)
    {
        var s = Chain.Expect<MultiStepsState>(state, this);
        ArgumentNullException.ThrowIfNull(grads);
        if ((s.Accumulated is null) != (EveryK == 1) || s.MiniStep >= EveryK)
            throw new ArgumentException($"{Name}: the state (micro-step {s.MiniStep}, accumulator {(s.Accumulated is null ? "none" : "present")}) was not made by a MultiSteps with k = {EveryK}; use the state this transformation's Init returned.", nameof(state));
        if (s.Accumulated is not null)
            grads.Layout.RequireSame(s.Accumulated.Layout, Name);
        return s;
    }

    // A ← g on the first micro-step (a copy, so no reset pass is needed before it), A ← A + g after.
    private ParamTree Accumulate(ParamTree grads, MultiStepsState s)
    {
        var acc = s.Accumulated!;
        if (s.MiniStep == 0)
            Transfer.Copy(grads.Device.Stream, grads.Flat32, acc.Flat32);
        else
            Elementwise.Axpy(grads.Device.Kernels, 1f, grads.Flat32, acc.Flat32);
        return acc.Consume(Name);
    }

    // ḡ = (A + g) / k, written into the gradients' buffer; the accumulator is left for Reset so
    // that an inner update that throws leaves the state usable.
    private ParamTree Mean(ParamTree grads, MultiStepsState s)
    {
        if (EveryK == 1)
            return grads;
        var kernels = grads.Device.Kernels;
        Elementwise.Axpy(kernels, 1f, s.Accumulated!.Flat32, grads.Flat32);
        Elementwise.Scale(kernels, grads.Flat32, (float)(1.0 / EveryK), grads.Flat32);
        return grads;
    }

    private ParamTree? Reset(MultiStepsState s)
    {
        if (s.Accumulated is null)
            return null;
        s.Accumulated.ZeroInPlace();
        return s.Accumulated.Consume(Name);
    }

    private MultiStepsState Next(MultiStepsState s, int miniStep, long gradientStep, ParamTree? acc, OptState inner)
    {
        // Consumed, s lists no children (see MultiStepsState): an inner state that moved on
        // untouched stays alive in the new record.
        s.MarkConsumed(Name + ".Update");
        return new MultiStepsState(miniStep, gradientStep, acc, inner);
    }

    private void Validate()
    {
        ArgumentNullException.ThrowIfNull(Inner);
        if (EveryK < 1)
            throw new ArgumentOutOfRangeException(nameof(EveryK), EveryK, "MultiSteps: every_k_schedule (micro-steps per update) must be at least 1.");
    }
}

/// <summary>The state of <see cref="MultiSteps"/> (Optax's MultiStepsState).</summary>
/// <remarks>
/// Ownership: an update consumes this record and moves the accumulator and the inner state on (the
/// inner state as the very same object on intermediate micro-steps); so once consumed this record
/// lists no children, and marking or disposing it never reaches what its successor now owns.
/// </remarks>
/// <param name="MiniStep">Micro-steps accumulated since the last emitted update, in [0, k).</param>
/// <param name="GradientStep">Updates emitted so far (inner updates run).</param>
/// <param name="Accumulated">Sum of this cycle's micro-batch gradients (zeros after an emission); null when k = 1.</param>
/// <param name="Inner">The inner transformation's state.</param>
public sealed record MultiStepsState(int MiniStep, long GradientStep, ParamTree? Accumulated, OptState Inner) : OptState
{
    /// <summary>Whether the last update emitted the inner transformation's update (Optax's <c>has_updated</c>): mini-step 0 after at least one emission.</summary>
    public bool HasUpdated => MiniStep == 0 && GradientStep > 0;

    /// <inheritdoc/>
    public override IEnumerable<(string Name, OptState State)> Children =>
        IsConsumed ? [] : [("inner", Inner)];

    /// <inheritdoc/>
    public override void Dispose()
    {
        if (!IsConsumed)
            Accumulated?.Dispose();
        base.Dispose();
    }
}
