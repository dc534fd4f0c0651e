using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// Gradient clipping over flat float buffers of n elements (a whole gradient tree in one launch).
//
//   ByNorm   g = g * min(1, maxNorm / (norm + 1e-6))      PyTorch clip_grad_norm_
//            norm is read from device memory (norm[0], e.g. Reductions.L2Norm's result), so
//            clipping by a global norm needs no host round-trip. The factor is computed as
//            maxNorm * (1 / (norm + 1e-6)), PyTorch's float32 operations (its max_norm / tensor
//            is reciprocal-then-multiply). A NaN norm gives NaN gradients, as PyTorch's clamp.
//            Reads 4 B, writes 4 B per element (+4 B per thread for the norm).
//   ByValue  g = min(max(g, lo), hi)                       PyTorch clip_grad_value_ (lo = -c, hi = c)
//            NaN stays NaN (torch.clamp). Reads 4 B, writes 4 B per element.
//   AbsMax   result[0] = max |x|  (0 when empty; NaN if any x is NaN)   the inf-norm of clip_grad_norm_
//            For non-negative floats the IEEE bit pattern orders like the value, and a NaN
//            with its sign cleared orders above +inf, so each thread folds |x| as int bits and
//            combines with one integer Atomic.Max: exact (max does not round), so the result
//            is the same bits whatever the launch shape or the order of the atomics, with no
//            shared memory and one variant for every backend. result is zeroed first (+0 is
//            the identity). Reads 4 B per element, one atomic per thread.
//
// All three overwrite their output; none has a backward (they act on gradients, not the graph).

/// <summary>Gradient clipping by a device-resident norm, by value, and the max-abs (inf) norm: ILGPU kernels and checked launchers.</summary>
internal static class Clip
{
    /// <summary>The ε PyTorch's clip_grad_norm_ adds to the norm: factor = maxNorm / (norm + ε).</summary>
    public const float NormEpsilon = 1e-6f;

    // ---------------------------------------------------------------- ILGPU kernels

    // min(1, maxNorm * (1 / (norm + 1e-6))) in PyTorch's float32 operations, for the kernels (ByNorm
    // and AdamUpdate's fused clip). Not XMath.Min: a NaN norm gives a NaN factor, as torch.clamp.
    internal static float NormFactor(float norm, float maxNorm)
    {
        float factor = maxNorm * (1f / (norm + NormEpsilon));
        return factor > 1f ? 1f : factor;
    }

    // Kernel: g[i] *= min(1, maxNorm · (1 / (norm[0] + 1e-6))).
    public static void ByNormKernel(ArrayView<float> g, ArrayView<float> norm, float maxNorm)
    {
        int n = g.IntLength;
        int stride = Grid.DimX * Group.DimX;
        float factor = NormFactor(norm[0], maxNorm);
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
            g[i] *= factor;
    }

    // Kernel: resultBits[0] = max over threads of max |x| as IEEE bits (resultBits, one int, zeroed before).
    public static void AbsMaxKernel(ArrayView<float> x, ArrayView<int> resultBits)
    {
        int n = x.IntLength;
        int stride = Grid.DimX * Group.DimX;
        int m = 0;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
        {
            int bits = (int)(Interop.FloatAsInt(x[i]) & 0x7FFFFFFFu);
            m = bits > m ? bits : m;
        }
        if (m != 0)
            Atomic.Max(ref resultBits[0], m);
    }

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, float>> ByNormDef =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, float>(ByNormKernel);

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ClampOp>> ByValueDef =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, ClampOp>(Elementwise.MapKernel);

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<int>>> AbsMaxDef =
        KernelDef.Of<ArrayView<float>, ArrayView<int>>(AbsMaxKernel);

    // ---------------------------------------------------------------- launchers

    /// <summary>
    /// g (n) *= min(1, maxNorm / (norm[0] + 1e-6)) in place, reading the norm (1 element, not
    /// overlapping g) on the device (no host round-trip): PyTorch clip_grad_norm_'s scaling; maxNorm
    /// finite or +∞, at least 0.
    /// </summary>
    public static unsafe void ByNorm(KernelHost host, ArrayView<float> g, ArrayView<float> norm, float maxNorm)
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.Fits32(nameof(ByNorm), g, nameof(g));
        Check.Length(nameof(ByNorm), norm, nameof(norm), 1, "one total norm");
        if (!(maxNorm >= 0f))
            throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, "Clip.ByNorm: maxNorm must be at least 0.");
        if (g.Length == 0)
            return;
        if (host.RunsManaged)
        {
            // The kernel's loop as managed code, its factor from the same float operations once the stream has produced the norm.
            host.Stream.Synchronize();
            CpuLoops.Map(host, g, g, new ScaleOp(NormFactor(CpuLoops.Ptr(norm)[0], maxNorm)));
        }
        else
        {
            host.Load(ByNormDef)(host.Stream, host.Launch.GridStride(g.Length), g, norm, maxNorm);
        }
    }

    /// <summary>g = min(max(g, lo), hi) in place, lo &lt;= hi (PyTorch clip_grad_value_ with lo = −c, hi = c).</summary>
    public static void ByValue(KernelHost host, ArrayView<float> g, float lo, float hi)
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.Fits32(nameof(ByValue), g, nameof(g));
        if (!(lo <= hi))
            throw new ArgumentOutOfRangeException(nameof(hi), hi, $"Clip.ByValue: the bounds must satisfy lo <= hi, got lo = {lo} and hi = {hi}.");
        Elementwise.Map(host, ByValueDef, g, g, new ClampOp(lo, hi), "Clip.ByValue");
    }

    /// <summary>result[0] = max |x| (0 when x is empty; NaN if any element is NaN): the inf-norm, exact and deterministic; result (1) must not overlap x.</summary>
    public static void AbsMax(KernelHost host, ArrayView<float> x, ArrayView<float> result)
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.Fits32(nameof(AbsMax), x, nameof(x));
        Check.Length(nameof(AbsMax), result, nameof(result), 1, "a reduction to one value");
        var bits = result.Cast<int>();
        bits.MemSetToZero(host.Stream);
        if (x.Length == 0)
            return;
        host.Load(AbsMaxDef)(host.Stream, host.Launch.GridStride(x.Length), x, bits);
    }
}
