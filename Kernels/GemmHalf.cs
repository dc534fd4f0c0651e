using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using ILGPU.Algorithms;
using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// Mixed-precision GEMM: C (M, N) float = alpha op(A) op(B) + beta C with A and B ILGPU.Half,
// stored and transposed as in Gemm, and Gemm's BLAS semantics (beta == 0 never reads C; alpha == 0
// or K == 0 gives beta C without reading A or B; M == 0 or N == 0 does nothing).
// Every half is widened to float exactly (Cast.HalfToFloat), and the products and sums are float,
// as fp16 tensor-core GEMMs with fp32 accumulation do. So the result equals the float GEMM of the
// widened operands, within float rounding. FLOPs: 2MNK. Bytes: at least 2(MK + KN) read, 4MN
// written, plus 4MN read when beta != 0.
//
// RoundToHalf x[i] = float(half(x[i])) in place: value-exact fp16 storage in a float buffer,
// round to nearest even, |x| >= 65520 becomes +-inf, tiny values flush through the subnormals to
// +-0. Reads 4 B and writes 4 B per element. Mixed-precision F ops round a GEMM's output with it,
// so a product beyond 65504 overflows to inf as it would in an fp16 output register. On the CPU
// accelerator it runs managed (CpuLoops) through Cast's vector bit routines: bitwise the kernel's.
//
// Algorithms mirror Gemm: the managed CpuGemm on the CPU accelerator (its float overload on
// operands widened with Cast's vector routine: the same bits as its binary16 overload, faster),
// and the shared-memory tiled kernel (GPUs), whose stages hold the widened floats so the inner
// loop is Gemm's. Backward of Y = X W with half operands is two more GemmHalf calls on the half
// copies of X, W and dY (each OVERWRITES with beta 0 or accumulates with beta 1, as asked).

/// <summary>Mixed-precision GEMM C (float) = alpha op(A) op(B) + beta C with binary16 A and B: ILGPU kernels and the checked launcher; and the in-place rounding of floats to fp16 values.</summary>
internal static class GemmHalf
{
    // ---------------------------------------------------------------- ILGPU kernels

    // Gemm's tiled kernels with binary16 operands, widened to float as they are staged.
    internal static readonly TiledKernels<Half, HalfWiden> HalfTiles = new();

    // Per-thread widened operands of the managed path (see RunManaged).
    [ThreadStatic]
    private static float[]? _wideA;

    [ThreadStatic]
    private static float[]? _wideB;

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, RoundToHalfOp>> RoundDef =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, RoundToHalfOp>(Elementwise.MapKernel);

    // ---------------------------------------------------------------- launchers

    /// <summary>C (float) = alpha op(A) op(B) + beta C with binary16 A and B and float accumulation, with Gemm.Run's BLAS semantics.</summary>
    public static void Run(KernelHost host, bool transA, bool transB, int m, int n, int k, float alpha, ArrayView<Half> a, ArrayView<Half> b, float beta, ArrayView<float> c)
    {
        if (Gemm.Trivial(nameof(GemmHalf), host, transA, transB, m, n, k, alpha, a, b, beta, c))
            return;
        if (host.IsCpu)
            RunManaged(host, transA, transB, m, n, k, alpha, a, b, beta, c);
        else
            Gemm.Tiled(host, HalfTiles, transA, transB, m, n, k, alpha, a, b, beta, c, Gemm.GroupSide(host.Accelerator));
    }

    // The CPU accelerator's path on the buffers' host memory; arguments checked and non-trivial.
    internal static unsafe void RunManaged(KernelHost host, bool transA, bool transB, int m, int n, int k, float alpha, ArrayView<Half> a, ArrayView<Half> b, float beta, ArrayView<float> c)
    {
        // CpuGemm's binary16 overload widens each half with the BCL's scalar conversion while it
        // packs, which costs more than the product at training sizes; the float overload on operands
        // widened here (Vector256, exact, split over threads) gives the same bits (the widened
        // values and the float path's order of operations are the same) and reads A in place.
        // Cast.Each first waits for the casts to half on the stream.
        long la = (long)m * k, lb = (long)k * n;
        float* wa = WideScratch(ref _wideA, la);
        float* wb = WideScratch(ref _wideB, lb);
        Cast.Each(host, la, new Cast.ToFloatBody((ushort*)a.LoadEffectiveAddressAsPtr(), wa));
        Cast.Each(host, lb, new Cast.ToFloatBody((ushort*)b.LoadEffectiveAddressAsPtr(), wb));
        CpuGemm.Run(transA, transB, m, n, k, alpha, wa, wb, beta, (float*)c.LoadEffectiveAddressAsPtr(), host.Launch.MaxGroups);
    }

    // A pinned float buffer of at least length elements in a [ThreadStatic] slot, kept between calls
    // (a training step widens operands hundreds of times); the address is valid until the same slot
    // is asked for more on this thread.
    internal static unsafe float* WideScratch(ref float[]? slot, long length)
    {
        if (slot is null || slot.Length < length)
            slot = GC.AllocateUninitializedArray<float>((int)Math.Max(length, 4096), pinned: true);
        return (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(slot));
    }

    // dst[i] = float(src[i]) for i in [0, n): the exact widening, on the calling thread.
    internal static unsafe void Widen(Half* src, float* dst, long n) =>
        new Cast.ToFloatBody((ushort*)src, dst).Run(0, checked((int)n));

    // As Run, but the tiled kernel on any accelerator with its group side forced (Gemm.RunTiled).
    internal static void Run(KernelHost host, bool transA, bool transB, int m, int n, int k, float alpha, ArrayView<Half> a, ArrayView<Half> b, float beta, ArrayView<float> c, int groupSide) =>
        Gemm.RunTiled(nameof(GemmHalf), HalfTiles, host, transA, transB, m, n, k, alpha, a, b, beta, c, groupSide);

    /// <summary>x = float(half(x)) in place: each value becomes the nearest fp16 value (ties to even), +-inf from 65520 up, NaN stays NaN.</summary>
    public static void RoundToHalfInPlace(KernelHost host, ArrayView<float> x) =>
        Elementwise.Map(host, RoundDef, x, x, default(RoundToHalfOp), nameof(RoundToHalfInPlace));
}

/// <summary>
/// y = float(half(x)): the nearest fp16 value, ties to even, +-inf from 65520 up, NaN quieted with
/// its sign and top payload bits; in integer bit arithmetic, so the same bits on every backend
/// (and Cast.FloatToHalf's bits).
/// </summary>
internal readonly struct RoundToHalfOp : IUnaryOp
{
    /// <inheritdoc/>
    public T Apply<T>(T x)
        where T : struct, ILanes<T>
    {
        T sign = x & T.Bits(0x80000000u);
        T a = x & T.Bits(0x7FFFFFFFu);
        // A normal half: add 0xFFF plus the kept lowest bit and clear the 13 dropped bits (ties to
        // even, a carry bumps the exponent, up to the float 65536 = the half inf from 65520 on).
        T odd = T.ShiftRightLogical(a, 13) & T.Bits(1u);
        T normal = T.AddBits(T.AddBits(a, T.Bits(0xFFFu)), odd) & T.Bits(0xFFFFE000u);
        normal = T.Select(T.GreaterBits(normal, T.Bits(0x477FFFFFu)), T.Bits(0x7F800000u), normal);
        T nan = T.Bits(0x7FC00000u) | (a & T.Bits(0x7FE000u));
        // Below 2^-14 (subnormal halves, steps of 2^-24): adding and removing 0.5 rounds to that step.
        T sub = (a + 0.5f) - 0.5f;
        T rounded = T.Select(T.GreaterBits(a, T.Bits(0x7F800000u)), nan, normal);
        return sign | T.Select(T.GreaterBits(T.Bits(0x38800000u), a), sub, rounded);
    }
}
