using System.Runtime.Intrinsics;
using IlgpuTrain.Kernels.Runtime;
using ILGPU.Algorithms;

namespace IlgpuTrain.Kernels;

// Loss-scale unscaling and the finite check, fused into one pass over the flat fp32 gradient
// buffer (PyTorch's _amp_foreach_non_finite_check_and_unscale_):
//
//   v        = g[i] * invScale          invScale = 1 / scale, computed by the caller
//   g[i]     = v                        (not written when invScale == 1: a pure finite check)
//   found[0] = 1   if any v is inf or NaN; otherwise found keeps its value (it is not reset)
//
//   g (n) fp32 master gradients, unscaled in place; found (1) int, a sticky flag.
//   Bytes per element: reads 4, writes 4 (invScale == 1: reads 4, writes 0); plus one 4-byte
//   store per thread that saw a non-finite value.
//
// The flag tests v, not g[i]: for scale >= 1 (invScale <= 1) the two agree exactly, and for a
// scale that has backed off below 1 a finite gradient that unscaling overflows is flagged too,
// so no inf ever reaches an optimizer unflagged. Each thread ORs its slice into a register and
// stores 1 at most once; concurrent stores all write the same value, so a plain store is safe
// (no int atomics, no float atomics). Because found is never cleared here, several buffers can
// OR into one flag: zero it once, unscale each buffer, read it once. No backward: this acts on
// gradients, not on the graph. The same kernel with invScale = 1 is ApplyIfFinite's check.

/// <summary>Unscale a flat gradient buffer by 1/scale in place and flag non-finite values, in one kernel.</summary>
internal static class LossScale
{
    // ---------------------------------------------------------------- ILGPU kernels

    // Kernel: g[i] *= invScale (skipped when invScale is 1) and found[0] = 1 if any result is inf or NaN.
    public static void UnscaleKernel(ArrayView<float> grads, float invScale, ArrayView<int> found)
    {
        int n = grads.IntLength;
        int stride = Grid.DimX * Group.DimX;
        // Uniform across the launch, so the branch costs nothing; skipping the store makes the
        // finite check a read-only pass.
        bool write = invScale != 1f;
        bool bad = false;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
            bad |= Unscale(new ViewElements<float>(grads), i, invScale, write);
        if (bad)
            found[0] = 1;
    }

    // One element: g *= invScale when write, and whether the result is inf or NaN. The kernel and
    // the managed loop's scalar path both run it.
    private static bool Unscale<TF>(TF grads, int i, float invScale, bool write)
        where TF : struct, IElements<float>
    {
        float v = grads[i];
        if (write)
        {
            v *= invScale;
            grads[i] = v;
        }
        return !XMath.IsFinite(v);
    }

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, float, ArrayView<int>>> UnscaleDef =
        KernelDef.Of<ArrayView<float>, float, ArrayView<int>>(UnscaleKernel);

    // ---------------------------------------------------------------- launchers

    /// <summary>
    /// g *= invScale (1 / scale: positive and finite) in place, and found[0] = 1 if any unscaled value
    /// is inf or NaN (found is not reset: zero it first). With invScale = 1 it only checks.
    /// </summary>
    public static unsafe void Unscale(KernelHost host, ArrayView<float> grads, float invScale, ArrayView<int> found)
    {
        const string op = nameof(LossScale) + "." + nameof(Unscale);
        ArgumentNullException.ThrowIfNull(host);
        Check.Fits32(op, grads, nameof(grads));
        Check.Length(op, found, nameof(found), 1, "the non-finite flag");
        if (!(invScale > 0f) || !float.IsFinite(invScale))
            throw new ArgumentOutOfRangeException(nameof(invScale), invScale, $"{op}: invScale (1 / scale) must be positive and finite, got {invScale}; a loss scale of 0 or one so small that 1 / scale overflows cannot be undone.");
        if (grads.Length == 0)
            return;
        if (host.RunsManaged)
            CpuLoops.For(host, grads.Length, new UnscaleBody(CpuLoops.Ptr(grads), invScale, CpuLoops.Ptr(found)));
        else
            host.Load(UnscaleDef)(host.Stream, host.Launch.GridStride(grads.Length), grads, invScale, found);
    }

    /// <summary>Sets found[0] = 1 if any value is inf or NaN; reads only (the unscale kernel with invScale = 1).</summary>
    public static void CheckFinite(KernelHost host, ArrayView<float> values, ArrayView<int> found) =>
        Unscale(host, values, 1f, found);

    // CPU accelerator: the kernel's loop as managed code on host memory; a chunk that saw a
    // non-finite value sets the flag (every writer writes 1, so the race is harmless).
    private readonly unsafe struct UnscaleBody(float* grads, float invScale, int* found) : CpuLoops.IRange
    {
        public void Run(int start, int end)
        {
            bool write = invScale != 1f;
            bool bad = false;
            int i = start;
            if (Vector256.IsHardwareAccelerated)
            {
                // The same multiply per element; |v| < inf is false exactly for inf and NaN.
                var inv = Vector256.Create(invScale);
                var infinity = Vector256.Create(float.PositiveInfinity);
                var notFinite = Vector256<float>.Zero;
                for (; i + 8 <= end; i += 8)
                {
                    var v = Vector256.Load(grads + i);
                    if (write)
                    {
                        v *= inv;
                        v.Store(grads + i);
                    }

                    notFinite |= ~Vector256.LessThan(Vector256.Abs(v), infinity);
                }

                bad = notFinite != Vector256<float>.Zero;
            }

            for (; i < end; i++)
                bad |= Unscale(new PtrElements<float>(grads), i, invScale, write);
            if (bad)
                Volatile.Write(ref *found, 1);
        }
    }
}
