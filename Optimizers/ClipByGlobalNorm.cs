namespace IlgpuTrain.Optimizers;

/// <summary>
/// Scales the updates so that their global L2 norm is at most max_norm, as PyTorch's
/// <c>torch.nn.utils.clip_grad_norm_</c>, with no host round-trip.
/// </summary>
/// <remarks>
/// <para>total = ‖g‖₂ over all parameters together (as if concatenated into one vector)</para>
/// <para>g ← g · min(1, max_norm / (total + 1e-6))</para>
/// <para>The norm is one deterministic <see cref="Reductions.L2Norm"/> over the flat buffer; the
/// scaling kernel reads it from device memory (<see cref="Clip.ByNorm"/>). The state keeps the
/// pre-clip norm on the device: <see cref="ClipByGlobalNormState.ReadNorm"/> copies it to the host
/// on demand (the only synchronization). A non-finite norm makes every update NaN, as PyTorch's
/// clip_grad_norm_ without error_if_nonfinite; <see cref="GradientClipping.ClipGradNorm"/> can throw
/// instead. Optax's <c>clip_by_global_norm</c> uses max_norm / max(total, max_norm), without the
/// 1e-6; the two differ by about 1e-6 relative. See
/// https://pytorch.org/docs/1.13/generated/torch.nn.utils.clip_grad_norm_.html.</para>
/// </remarks>
/// <param name="MaxNorm">max_norm, at least 0 (+∞ disables clipping but still records the norm).</param>
public sealed record ClipByGlobalNorm(double MaxNorm) : IGradientTransformation
{
    /// <inheritdoc/>
    public string Name => "clip_by_global_norm";

    /// <inheritdoc/>
    public OptState Init(ParamTree parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (!(MaxNorm >= 0))
            throw new ArgumentOutOfRangeException(nameof(MaxNorm), MaxNorm, "ClipByGlobalNorm: max_norm must be at least 0.");
        return new ClipByGlobalNormState(Tensor.FromHost(parameters.Device, [float.NaN], new Shape(1)));
    }

    /// <inheritdoc/>
    public UpdateResult Update(ParamTree grads, OptState state, ParamTree parameters, UpdateContext context)
    {
        var next = Measure(grads, state);
        Clip.ByNorm(grads.Device.Kernels, grads.Flat32, next.Norm.View<float>(), (float)MaxNorm);
        return new UpdateResult(grads.Consume(Name), next);
    }

    /// <summary>
    /// The first half of <see cref="Update"/>, and all of it when <see cref="FusionPlan"/> fuses the
    /// scaling into an Adam launch that follows: measures the norm into the state, leaves
    /// the gradients as they are, and returns the next state.
    /// </summary>
    internal ClipByGlobalNormState Measure(ParamTree grads, OptState state)
    {
        var s = Chain.Expect<ClipByGlobalNormState>(state, this);
        ArgumentNullException.ThrowIfNull(grads);
        GradientClipping.Measure(grads, s.Norm.View<float>(), normType: 2);
        s.MarkConsumed(Name + ".Update");
        return new ClipByGlobalNormState(s.Norm);
    }
}

/// <summary>The state of <see cref="ClipByGlobalNorm"/>: the last pre-clip global norm, on the device.</summary>
/// <param name="Norm">One float in device memory: the norm the last update measured (NaN before the first).</param>
public sealed record ClipByGlobalNormState(Tensor Norm) : OptState
{
    /// <summary>Copies the last pre-clip norm to the host (waits for the device; the only sync).</summary>
    /// <returns>The norm, NaN before the first update.</returns>
    public float ReadNorm()
    {
        EnsureAlive();
        return Norm.ToHost()[0];
    }

    /// <inheritdoc/>
    public override void Dispose()
    {
        // The tensor moves from state to state; only the live state owns it.
        if (!IsConsumed)
            Norm.Dispose();
        base.Dispose();
    }
}
