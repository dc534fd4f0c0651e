using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using ILGPU.Algorithms;
using IlgpuTrain.Kernels.Runtime;
using GemmHalfLauncher = System.Action<ILGPU.Runtime.AcceleratorStream, ILGPU.KernelConfig, ILGPU.ArrayView<ILGPU.Half>, ILGPU.ArrayView<ILGPU.Half>, ILGPU.ArrayView<float>, int, int, int, float, float>;

namespace IlgpuTrain.Kernels;

// Mixed-precision GEMM: binary16 operands, float32 accumulation and output.
//
//   C = alpha * op(A) * op(B) + beta * C
//   op(A) (M, K): A stored (M, K), or (K, M) when transA     A is ILGPU.Half
//   op(B) (K, N): B stored (K, N), or (N, K) when transB     B is ILGPU.Half
//   C     (M, N) float
//
// Every half is widened to float exactly (Cast.HalfToFloat), and the products and sums are float,
// as fp16 tensor-core GEMMs with fp32 accumulation do. So the result equals the float GEMM of the
// widened operands, within float rounding. FLOPs: 2MNK. Bytes: at least 2(MK + KN) read, 4MN
// written, plus 4MN read when beta != 0. BLAS semantics exactly as Gemm: beta == 0 never reads C;
// alpha == 0 or K == 0 gives beta * C without reading A or B; M == 0 or N == 0 does nothing.
//
// RoundToHalf x[i] = float(half(x[i])) in place: value-exact fp16 storage in a float buffer,
// round to nearest even, |x| >= 65520 becomes +-inf, tiny values flush through the subnormals to
// +-0. Reads 4 B and writes 4 B per element. Mixed-precision F ops round a GEMM's output with it,
// so a product beyond 65504 overflows to inf as it would in an fp16 output register.
//
// On the CPU accelerator RoundToHalf runs managed (CpuLoops), through Cast's vector bit routines:
// bitwise the kernel's.
//
// Algorithms mirror Gemm: the managed CpuGemm on the CPU accelerator (its float overload on
// operands widened with Cast's vector routine: the same bits as its binary16 overload, faster),
// and the shared-memory tiled kernel (GPUs), whose
// stages hold the widened floats so the inner loop is Gemm's. Backward of Y = X W with half
// operands is two more GemmHalf calls on the half copies of X, W and dY (each OVERWRITES with
// beta 0 or accumulates with beta 1, as asked).

/// <summary>Mixed-precision GEMM C (float) = alpha op(A) op(B) + beta C with binary16 A and B: ILGPU kernels and the checked launcher; and the in-place rounding of floats to fp16 values.</summary>
internal static class GemmHalf
{
    // The tiling constants are Gemm's: each thread or work item owns an R x R block of C.
    private const int R = 4;
    private const int MaxSide = 16;
    private const int KTile = 16;
    private const int MaxLd = (MaxSide * R) + 1;
    private const int SharedLength = KTile * MaxLd;

    // ---------------------------------------------------------------- ILGPU kernels

    /// <summary>
    /// Kernel: Gemm's shared-memory tiled kernel with half operands, widened to
    /// float as they are staged. Square groups of side s = Group.DimX (at most 16).
    /// </summary>
    /// <typeparam name="TA">Storage layout of A.</typeparam>
    /// <typeparam name="TB">Storage layout of B.</typeparam>
    /// <param name="a">A (M*K), half.</param>
    /// <param name="b">B (K*N), half.</param>
    /// <param name="c">C (M, N), float.</param>
    /// <param name="m">M, at least 1.</param>
    /// <param name="n">N, at least 1.</param>
    /// <param name="k">K, at least 1.</param>
    /// <param name="alpha">Scale of the product.</param>
    /// <param name="beta">Scale of the prior C (0: C is not read).</param>
    public static void TiledKernel<TA, TB>(ArrayView<Half> a, ArrayView<Half> b, ArrayView<float> c, int m, int n, int k, float alpha, float beta)
        where TA : struct, IMatrixLayout
        where TB : struct, IMatrixLayout
    {
        var sa = SharedMemory.Allocate<float>(SharedLength);
        var sb = SharedMemory.Allocate<float>(SharedLength);
        var la = default(TA);
        var lb = default(TB);

        int side = Group.DimX;
        int tx = Group.IdxX;
        int ty = Group.IdxY;
        int threads = side * side;
        int tid = (ty * side) + tx;
        int tile = side * R;
        int ld = tile + 1;
        int tilesN = (n + tile - 1) / tile;
        int tiles = ((m + tile - 1) / tile) * tilesN;
        int gridStride = Grid.DimX;
        int slice = tile * KTile;

        // The tile loop depends on the group index only, so every thread of a group reaches the same barriers.
        for (int t = Grid.IdxX; t < tiles; t += gridStride)
        {
            int i0 = (t / tilesN) * tile;
            int j0 = (t % tilesN) * tile;
            var acc = default(Gemm.Block4x4);
            for (int k0 = 0; k0 < k; k0 += KTile)
            {
                // Widen once while staging: each staged half feeds `tile` FMAs from shared memory.
                for (int e = tid; e < slice; e += threads)
                {
                    var rc = la.Split(e, tile, KTile);
                    int i = i0 + rc.X;
                    int p = k0 + rc.Y;
                    sa[(rc.Y * ld) + rc.X] = i < m & p < k ? Cast.HalfToFloat(a[la.Offset(i, p, m, k)]) : 0f;
                }
                for (int e = tid; e < slice; e += threads)
                {
                    var rc = lb.Split(e, KTile, tile);
                    int p = k0 + rc.X;
                    int j = j0 + rc.Y;
                    sb[(rc.X * ld) + rc.Y] = p < k & j < n ? Cast.HalfToFloat(b[lb.Offset(p, j, k, n)]) : 0f;
                }
                Group.Barrier();
                for (int kk = 0; kk < KTile; kk++)
                {
                    int ra = (kk * ld) + ty;
                    int rb = (kk * ld) + tx;
                    acc.Add(
                        sa[ra], sa[ra + side], sa[ra + (2 * side)], sa[ra + (3 * side)],
                        sb[rb], sb[rb + side], sb[rb + (2 * side)], sb[rb + (3 * side)]);
                }
                Group.Barrier();
            }
            acc.Store(c, i0 + ty, j0 + tx, side, m, n, alpha, beta);
        }
    }

    /// <summary>Kernel: x[i] = float(half(x[i])) in place, round to nearest even, grid-stride.</summary>
    /// <param name="x">Values, rounded in place.</param>
    public static void RoundToHalfKernel(ArrayView<float> x)
    {
        int n = x.IntLength;
        // Grid and Group reads are thread-local on the CPU accelerator: read them once.
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
            x[i] = Cast.HalfToFloat(Cast.FloatToHalf(x[i]));
    }

    private static readonly KernelDef<GemmHalfLauncher> TiledNN = KernelDef.Of<ArrayView<Half>, ArrayView<Half>, ArrayView<float>, int, int, int, float, float>(TiledKernel<NormalLayout, NormalLayout>);
    private static readonly KernelDef<GemmHalfLauncher> TiledNT = KernelDef.Of<ArrayView<Half>, ArrayView<Half>, ArrayView<float>, int, int, int, float, float>(TiledKernel<NormalLayout, TransposedLayout>);
    private static readonly KernelDef<GemmHalfLauncher> TiledTN = KernelDef.Of<ArrayView<Half>, ArrayView<Half>, ArrayView<float>, int, int, int, float, float>(TiledKernel<TransposedLayout, NormalLayout>);
    private static readonly KernelDef<GemmHalfLauncher> TiledTT = KernelDef.Of<ArrayView<Half>, ArrayView<Half>, ArrayView<float>, int, int, int, float, float>(TiledKernel<TransposedLayout, TransposedLayout>);

    // Per-thread widened operands of the managed path (see RunManaged).
    [ThreadStatic]
    private static float[]? _wideA;

    [ThreadStatic]
    private static float[]? _wideB;

    private static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>>> RoundDef =
        KernelDef.Of<ArrayView<float>>(RoundToHalfKernel);

    // ---------------------------------------------------------------- launchers

    /// <summary>
    /// C = alpha * op(A) * op(B) + beta * C with binary16 A and B, float accumulation and float C. FLOPs: 2MNK.
    /// </summary>
    /// <remarks>
    /// beta == 0: C is not read, so NaN in C does not propagate. alpha == 0 or K == 0: C = beta * C,
    /// and A and B are not read. M == 0 or N == 0: nothing happens. C must not alias A or B.
    /// </remarks>
    /// <param name="host">Where to run.</param>
    /// <param name="transA">Whether A is stored (K, M), i.e. op(A) = A^T.</param>
    /// <param name="transB">Whether B is stored (N, K), i.e. op(B) = B^T.</param>
    /// <param name="m">Rows of op(A) and C.</param>
    /// <param name="n">Columns of op(B) and C.</param>
    /// <param name="k">Reduction length: columns of op(A), rows of op(B).</param>
    /// <param name="alpha">Scale of the product.</param>
    /// <param name="a">A: exactly M*K halves.</param>
    /// <param name="b">B: exactly K*N halves.</param>
    /// <param name="beta">Scale of the prior C.</param>
    /// <param name="c">C (M, N): exactly M*N floats, updated.</param>
    public static void Run(KernelHost host, bool transA, bool transB, int m, int n, int k, float alpha, ArrayView<Half> a, ArrayView<Half> b, float beta, ArrayView<float> c)
    {
        ArgumentNullException.ThrowIfNull(host);
        if (host.IsCpu)
        {
            Validate(host, transA, transB, m, n, k, a, b, c);
            if (m == 0 || n == 0)
                return;
            if (alpha == 0f || k == 0)
            {
                ScaleC(host, beta, c);
                return;
            }

            RunManaged(host, transA, transB, m, n, k, alpha, a, b, beta, c);
            return;
        }

        Run(host, transA, transB, m, n, k, alpha, a, b, beta, c, Gemm.GroupSide(host.Accelerator));
    }

    /// <summary>
    /// The CPU accelerator's fast path: <see cref="CpuGemm"/>'s binary16 overload on the buffers'
    /// host memory. Arguments must already be checked and non-trivial.
    /// </summary>
    /// <param name="host">A CPU accelerator host.</param>
    /// <param name="transA">Whether A is stored (K, M).</param>
    /// <param name="transB">Whether B is stored (N, K).</param>
    /// <param name="m">Rows of C.</param>
    /// <param name="n">Columns of C.</param>
    /// <param name="k">Reduction length.</param>
    /// <param name="alpha">Scale of the product.</param>
    /// <param name="a">A, half.</param>
    /// <param name="b">B, half.</param>
    /// <param name="beta">Scale of the prior C.</param>
    /// <param name="c">C, float.</param>
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

    /// <summary>
    /// A pinned per-thread float buffer of at least <paramref name="length"/> elements, kept between
    /// calls (a training step widens operands hundreds of times); slot names which of the thread's buffers.
    /// </summary>
    /// <param name="slot">The [ThreadStatic] slot.</param>
    /// <param name="length">Elements needed.</param>
    /// <returns>The buffer's address, valid until the same slot is asked for more on this thread.</returns>
    internal static unsafe float* WideScratch(ref float[]? slot, long length)
    {
        if (slot is null || slot.Length < length)
            slot = GC.AllocateUninitializedArray<float>((int)Math.Max(length, 4096), pinned: true);
        return (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(slot));
    }

    /// <summary>dst[i] = float(src[i]) for i in [0, n): the exact widening, on the calling thread.</summary>
    /// <param name="src">Halves.</param>
    /// <param name="dst">Floats.</param>
    /// <param name="n">Count.</param>
    internal static unsafe void Widen(Half* src, float* dst, long n) =>
        new Cast.ToFloatBody((ushort*)src, dst).Run(0, checked((int)n));

    /// <summary>
    /// As <see cref="Run(KernelHost, bool, bool, int, int, int, float, ArrayView{Half}, ArrayView{Half}, float, ArrayView{float})"/>
    /// running the tiled kernel with its group side forced, on any accelerator (tests run it with every side).
    /// </summary>
    /// <param name="host">Where to run.</param>
    /// <param name="transA">Whether A is stored (K, M).</param>
    /// <param name="transB">Whether B is stored (N, K).</param>
    /// <param name="m">Rows of C.</param>
    /// <param name="n">Columns of C.</param>
    /// <param name="k">Reduction length.</param>
    /// <param name="alpha">Scale of the product.</param>
    /// <param name="a">A (M*K), half.</param>
    /// <param name="b">B (K*N), half.</param>
    /// <param name="beta">Scale of the prior C.</param>
    /// <param name="c">C (M*N), float.</param>
    /// <param name="groupSide">Side of the square groups of the tiled kernel, 1 to 16; side squared must fit the accelerator's groups.</param>
    internal static void Run(KernelHost host, bool transA, bool transB, int m, int n, int k, float alpha, ArrayView<Half> a, ArrayView<Half> b, float beta, ArrayView<float> c, int groupSide)
    {
        const string Op = nameof(GemmHalf);
        Validate(host, transA, transB, m, n, k, a, b, c);
        if (groupSide < 1 || groupSide > MaxSide || groupSide * groupSide > host.Accelerator.MaxNumThreadsPerGroup)
            throw new ArgumentOutOfRangeException(nameof(groupSide), groupSide, $"{Op}: the tiled group side must be 1 to {MaxSide} with side^2 at most {host.Accelerator.MaxNumThreadsPerGroup} threads, got {groupSide}.");

        if (m == 0 || n == 0)
            return;
        if (alpha == 0f || k == 0)
        {
            ScaleC(host, beta, c);
            return;
        }

        int tile = groupSide * R;
        long tiles = (long)((m + tile - 1) / tile) * ((n + tile - 1) / tile);
        var config = new KernelConfig(new Index2D((int)Math.Min(tiles, host.Launch.MaxGroups), 1), new Index2D(groupSide, groupSide));
        host.Load(Pick(transA, transB, TiledNN, TiledNT, TiledTN, TiledTT))(host.Stream, config, a, b, c, m, n, k, alpha, beta);
    }

    /// <summary>x = float(half(x)) in place: each value becomes the nearest fp16 value (ties to even), +-inf from 65520 up, NaN stays NaN.</summary>
    /// <param name="host">Where to run.</param>
    /// <param name="x">Values (n), rounded in place.</param>
    public static unsafe void RoundToHalfInPlace(KernelHost host, ArrayView<float> x)
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.Fits32(nameof(RoundToHalfInPlace), x, nameof(x));
        if (x.Length == 0)
            return;
        if (host.RunsManaged)
        {
            Cast.Each(host, x.Length, new RoundBody(CpuLoops.Ptr(x)));
            return;
        }

        host.Load(RoundDef)(host.Stream, host.Launch.GridStride(x.Length), x);
    }

    private static void Validate(KernelHost host, bool transA, bool transB, int m, int n, int k, ArrayView<Half> a, ArrayView<Half> b, ArrayView<float> c)
    {
        ArgumentNullException.ThrowIfNull(host);
        const string Op = nameof(GemmHalf);
        Check.Dimension(Op, m, nameof(m));
        Check.Dimension(Op, n, nameof(n));
        Check.Dimension(Op, k, nameof(k));
        Check.Length(Op, a, nameof(a), (long)m * k, transA ? $"op(A) (M, K) = ({m}, {k}) with transA, A stored (K, M) = ({k}, {m})," : $"op(A) (M, K) = ({m}, {k}) without transA");
        Check.Length(Op, b, nameof(b), (long)k * n, transB ? $"op(B) (K, N) = ({k}, {n}) with transB, B stored (N, K) = ({n}, {k})," : $"op(B) (K, N) = ({k}, {n}) without transB");
        Check.Length(Op, c, nameof(c), (long)m * n, $"C (M, N) = ({m}, {n})");
        Check.Fits32(Op, a, nameof(a));
        Check.Fits32(Op, b, nameof(b));
        Check.Fits32(Op, c, nameof(c));
    }

    // C = beta * C without reading C when beta == 0 (0 * NaN would be NaN).
    private static void ScaleC(KernelHost host, float beta, ArrayView<float> c)
    {
        if (beta == 0f)
            Elementwise.Fill(host, c, 0f);
        else if (beta != 1f)
            Elementwise.Scale(host, c, beta, c);
    }

    private static KernelDef<GemmHalfLauncher> Pick(bool transA, bool transB, KernelDef<GemmHalfLauncher> nn, KernelDef<GemmHalfLauncher> nt, KernelDef<GemmHalfLauncher> tn, KernelDef<GemmHalfLauncher> tt) =>
        (transA, transB) switch
        {
            (false, false) => nn,
            (false, true) => nt,
            (true, false) => tn,
            (true, true) => tt,
        };

    // x[i] = float(half(x[i])) for i in [start, end), eight lanes at a time through Cast.RoundToHalfBits.
    internal readonly unsafe struct RoundBody(float* x) : CpuLoops.IRange
    {
        public void Run(int start, int end)
        {
            int i = start;
            if (Vector256.IsHardwareAccelerated)
            {
                for (; i <= end - 8; i += 8)
                {
                    Cast.RoundToHalfBits(Vector256.Load((uint*)(x + i))).Store((uint*)(x + i));
                }
            }

            for (; i < end; i++)
                x[i] = BitConverter.UInt32BitsToSingle(Cast.HalfToFloatBits(Cast.FloatToHalfBits(BitConverter.SingleToUInt32Bits(x[i]))));
        }
    }
}
