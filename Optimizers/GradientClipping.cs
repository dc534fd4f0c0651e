namespace IlgpuTrain.Optimizers;

/// <summary>
/// PyTorch-style gradient clipping helpers for a training loop that does not go through an
/// optimizer chain: <c>torch.nn.utils.clip_grad_norm_</c> and <c>clip_grad_value_</c>. Inside a
/// chain, use <see cref="ClipByGlobalNorm"/> and <see cref="ClipByValue"/> (no host round-trip).
/// </summary>
public static class GradientClipping
{
    /// <summary>
    /// Clips the gradients in place so that their total norm is at most <paramref name="maxNorm"/>
    /// and returns the total norm before clipping, as <c>torch.nn.utils.clip_grad_norm_</c>.
    /// </summary>
    /// <remarks>
    /// <para>total = ‖g‖₂ over all parameters together (norm_type 2), or max |g| (norm_type ∞)</para>
    /// <para>g ← g · min(1, max_norm / (total + 1e-6))</para>
    /// <para>Returning the norm reads one float from the device, so this waits for the device once
    /// (PyTorch returns a tensor; reading it is the same sync). Only norm types 2 and +∞ are
    /// supported. An empty tree has norm 0.</para>
    /// </remarks>
    /// <param name="grads">Gradients (the flat Float32 buffer), scaled in place; not consumed.</param>
    /// <param name="maxNorm">max_norm, at least 0.</param>
    /// <param name="normType">2 (default) or <see cref="double.PositiveInfinity"/>.</param>
    /// <param name="errorIfNonfinite">Throw, leaving the gradients unchanged, when the total norm is NaN or infinite.</param>
    /// <returns>The total norm before clipping.</returns>
    /// <exception cref="InvalidOperationException">The norm is not finite and <paramref name="errorIfNonfinite"/> is set.</exception>
    public static float ClipGradNorm(ParamTree grads, double maxNorm, double normType = 2, bool errorIfNonfinite = false)
    {
        ArgumentNullException.ThrowIfNull(grads);
        if (!(maxNorm >= 0))
            throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, "ClipGradNorm: max_norm must be at least 0.");
        CheckNormType(normType);
        var device = grads.Device;
        using var normBuffer = device.Pool.Rent(sizeof(float));
        var norm = normBuffer.View<float>(1);
        Measure(grads, norm, normType);
        float total = float.NaN;
        if (errorIfNonfinite)
        {
            // PyTorch checks before it scales: on error the gradients are left as they were.
            total = Transfer.ToHost(device.Stream, norm)[0];
            if (!float.IsFinite(total))
                throw new InvalidOperationException($"ClipGradNorm: the total norm of order {normType} of the gradients is non-finite ({total}), so it cannot be clipped. To scale the gradients by the non-finite norm anyway, set errorIfNonfinite to false.");
        }
        Clip.ByNorm(device.Kernels, grads.Flat32, norm, (float)maxNorm);
        return errorIfNonfinite ? total : Transfer.ToHost(device.Stream, norm)[0];
    }

    /// <summary>
    /// Clamps every gradient to [−<paramref name="clipValue"/>, <paramref name="clipValue"/>] in
    /// place, as <c>torch.nn.utils.clip_grad_value_</c>. No host round-trip.
    /// </summary>
    /// <param name="grads">Gradients, clamped in place; not consumed.</param>
    /// <param name="clipValue">c, at least 0.</param>
    public static void ClipGradValue(ParamTree grads, double clipValue)
    {
        ArgumentNullException.ThrowIfNull(grads);
        if (!(clipValue >= 0))
            throw new ArgumentOutOfRangeException(nameof(clipValue), clipValue, "ClipGradValue: clip_value must be at least 0.");
        Clip.ByValue(grads.Device.Kernels, grads.Flat32, (float)-clipValue, (float)clipValue);
    }

    /// <summary>Measures the total norm of order <paramref name="normType"/> into <paramref name="norm"/> (device), with no host sync.</summary>
    /// <param name="grads">Gradients, read.</param>
    /// <param name="norm">One float of device memory, overwritten with the norm.</param>
    /// <param name="normType">2 or +∞.</param>
    internal static void Measure(ParamTree grads, ArrayView<float> norm, double normType)
    {
        var host = grads.Device.Kernels;
        var g = grads.Flat32;
        if (double.IsPositiveInfinity(normType))
        {
            Clip.AbsMax(host, g, norm);
            return;
        }
        // Scratch goes back to the pool at once: later users of it are queued behind this
        // reduction on the same stream.
        int partials = Reductions.ScratchLength(host, g.Length);
        using var scratch = grads.Device.Pool.Rent((long)partials * sizeof(float));
        Reductions.L2Norm(host, g, norm, scratch.View<float>(partials), ReductionMode.Deterministic);
    }

    private static void CheckNormType(double normType)
    {
        if (normType != 2 && !double.IsPositiveInfinity(normType))
            throw new ArgumentOutOfRangeException(nameof(normType), normType, "ClipGradNorm: norm_type must be 2 or +inf (double.PositiveInfinity); other p-norms are not implemented.");
    }
}
