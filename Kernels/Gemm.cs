using System.Runtime.CompilerServices;
using ILGPU.Algorithms;
using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// General matrix multiply (BLAS sgemm), row-major, float32:
//
//   C = alpha * op(A) * op(B) + beta * C
//   op(A) (M, K): A stored (M, K), or (K, M) when transA
//   op(B) (K, N): B stored (K, N), or (N, K) when transB
//   C     (M, N)
//
// FLOPs: 2MNK (benchmarks report GFLOP/s from this). Bytes: at least 4(MK + KN) read,
// 4MN written, plus 4MN read when beta != 0.
// BLAS semantics: beta == 0 means C is not read (NaN or garbage in C does not propagate);
// alpha == 0 or K == 0 means C = beta * C and A, B are not read; M == 0 or N == 0 does nothing.
// C must not alias A or B.
// Backward of Y = X W (X (N, D), W (D, F)) is two more GEMMs: dX = dY W^T (transB) and
// dW = X^T dY (transA). beta = 0 overwrites the gradient, beta = 1 accumulates into it.
//
// Two algorithms. On ILGPU's CPU accelerator (both CPU backends) the launcher runs CpuGemm, a
// managed cache-blocked SIMD kernel on the buffers' host memory; on GPUs it runs the tiled kernel
// below (tests also run it on the CPU accelerator, through the internal overload):
// - Tiled: square s x s groups, each owning an (sR, sR) tile of C with R x R elements per
//   thread in registers; K is walked in slices of KTile staged through shared memory.
// The four transpose cases are generic layout structs (one kernel instantiation each), so
// the inner loops carry no branch on the layout.

/// <summary>General matrix multiply C = alpha op(A) op(B) + beta C: ILGPU kernels and the checked launcher.</summary>
internal static class Gemm
{
    // Each thread computes an R x R block of C: 2R loads feed R^2 FMAs.
    private const int R = 4;

    // Largest tiled group side: 16 x 16 = 256 threads, the GPU group size of LaunchPolicy.
    private const int MaxSide = 16;

    // K slice per barrier pair. 16 keeps both staged tiles at 8 KB, well under 48 KB per group.
    private const int KTile = 16;

    // Staged tiles are k-major, [kk * ld + row]; ld = sR + 1 rather than sR so the column-wise
    // stores of a row-major A (or a transposed B) hit distinct shared-memory banks.
    private const int MaxLd = (MaxSide * R) + 1;

    private const int SharedLength = KTile * MaxLd;

    // ---------------------------------------------------------------- ILGPU kernels

    // Kernel: square groups of side s = Group.DimX (at most 16) grid-stride over the (sR, sR) tiles
    // of C; each thread holds an R x R block at rows ty + r s, columns tx + c s of the tile (strided,
    // so a warp's shared-memory reads and global stores are contiguous). TA, TB: storage layouts;
    // T: element of A and B (float or Half), widened to float by TW as it is staged. M, N, K >= 1.
    // Batched (torch.bmm): `batch` products, product q reading A at q strideA, B at q strideB and
    // writing C at q strideC; the grid strides over batch x tiles (one GEMM: batch 1, strides 0).
    public static void TiledKernel<TA, TB, T, TW>(ArrayView<T> a, ArrayView<T> b, ArrayView<float> c, int m, int n, int k, float alpha, float beta, int batch, int strideA, int strideB, int strideC)
        where TA : struct, IMatrixLayout
        where TB : struct, IMatrixLayout
        where T : unmanaged
        where TW : struct, IWiden<T>
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
        for (int bt = Grid.IdxX; bt < batch * tiles; bt += gridStride)
        {
            int q = bt / tiles;
            int t = bt - (q * tiles);
            int baseA = q * strideA;
            int baseB = q * strideB;
            int i0 = (t / tilesN) * tile;
            int j0 = (t % tilesN) * tile;
            var acc = default(Block4x4);
            for (int k0 = 0; k0 < k; k0 += KTile)
            {
                // Stage op(A)[i0.., k0..] (tile, KTile) and op(B)[k0.., j0..] (KTile, tile); the
                // layout orders the elements so neighbouring threads read neighbouring addresses.
                // Past the edges the stage holds zeros, which add nothing to the sums. Operands are
                // widened once here: each staged value feeds `tile` multiply-adds from shared memory.
                for (int e = tid; e < slice; e += threads)
                {
                    var rc = la.Split(e, tile, KTile);
                    int i = i0 + rc.X;
                    int p = k0 + rc.Y;
                    sa[(rc.Y * ld) + rc.X] = i < m & p < k ? default(TW).Widen(a[baseA + la.Offset(i, p, m, k)]) : 0f;
                }
                for (int e = tid; e < slice; e += threads)
                {
                    var rc = lb.Split(e, KTile, tile);
                    int p = k0 + rc.X;
                    int j = j0 + rc.Y;
                    sb[(rc.X * ld) + rc.Y] = p < k & j < n ? default(TW).Widen(b[baseB + lb.Offset(p, j, k, n)]) : 0f;
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
            acc.Store(c, q * strideC, i0 + ty, j0 + tx, side, m, n, alpha, beta);
        }
    }

    internal static readonly TiledKernels<float, FloatWiden> FloatTiles = new();

    // ---------------------------------------------------------------- launcher

    /// <summary>C = alpha op(A) op(B) + beta C with the header's BLAS semantics; A stored (K, M) when transA, B (N, K) when transB.</summary>
    public static void Run(KernelHost host, bool transA, bool transB, int m, int n, int k, float alpha, ArrayView<float> a, ArrayView<float> b, float beta, ArrayView<float> c)
    {
        if (Trivial(nameof(Gemm), host, transA, transB, m, n, k, alpha, a, b, beta, c))
            return;
        if (host.IsCpu)
            RunManaged(host, transA, transB, m, n, k, alpha, a, b, beta, c);
        else
            Tiled(host, FloatTiles, transA, transB, m, n, k, alpha, a, b, beta, c, GroupSide(host.Accelerator));
    }

    /// <summary>
    /// Batched GEMM (torch.bmm): C_q = alpha op(A_q) op(B_q) + beta C_q for q in [0, batch), each
    /// operand a stack of matrices stored one after another (A_q at q M K, B_q at q K N, C_q at q M N),
    /// with Run's BLAS semantics per product.
    /// </summary>
    public static void RunBatched(KernelHost host, bool transA, bool transB, int batch, int m, int n, int k, float alpha, ArrayView<float> a, ArrayView<float> b, float beta, ArrayView<float> c) =>
        RunBatched(host, transA, transB, batch, m, n, k, alpha, a, b, beta, c, groupSide: 0);

    /// <summary>As RunBatched, with the tiled kernel's group side forced (1 to 16) on any accelerator; 0 picks the production path. Tests run the tiled kernel this way.</summary>
    internal static void RunBatched(KernelHost host, bool transA, bool transB, int batch, int m, int n, int k, float alpha, ArrayView<float> a, ArrayView<float> b, float beta, ArrayView<float> c, int groupSide)
    {
        const string op = "Gemm.RunBatched";
        ArgumentNullException.ThrowIfNull(host);
        Check.Dimension(op, batch, nameof(batch));
        Check.Dimension(op, m, nameof(m));
        Check.Dimension(op, n, nameof(n));
        Check.Dimension(op, k, nameof(k));
        Check.Length(op, a, nameof(a), (long)batch * m * k, $"{batch} matrices op(A) (M, K) = ({m}, {k})");
        Check.Length(op, b, nameof(b), (long)batch * k * n, $"{batch} matrices op(B) (K, N) = ({k}, {n})");
        Check.Length(op, c, nameof(c), (long)batch * m * n, $"{batch} matrices C (M, N) = ({m}, {n})");
        Check.Fits32(op, a, nameof(a));
        Check.Fits32(op, b, nameof(b));
        Check.Fits32(op, c, nameof(c));
        if (batch == 0 || m == 0 || n == 0)
            return;
        if (alpha == 0f || k == 0)
        {
            // Every product is C_q = beta C_q: one pass over the whole stack.
            Trivial(op, host, transA, transB, batch * m, n, 0, 0f, default(ArrayView<float>), default(ArrayView<float>), beta, c);
            return;
        }

        if (groupSide == 0 && host.IsCpu)
        {
            RunManagedBatched(host, transA, transB, batch, m, n, k, alpha, a, b, beta, c);
            return;
        }

        int side = groupSide == 0 ? GroupSide(host.Accelerator) : groupSide;
        if (side < 1 || side > MaxSide || side * side > host.Accelerator.MaxNumThreadsPerGroup)
            throw new ArgumentOutOfRangeException(nameof(groupSide), groupSide, $"{op}: the tiled group side must be 1 to {MaxSide} with side^2 at most {host.Accelerator.MaxNumThreadsPerGroup} threads, got {groupSide}.");
        Tiled(host, FloatTiles, transA, transB, m, n, k, alpha, a, b, beta, c, side, batch);
    }

    // The CPU path of a batch: CpuGemm per product. A batch at least as large as the thread count
    // runs one product per thread (attention's many small per-head products: one fork-join, no
    // thin splits of small matrices); a smaller batch runs its products in turn, each split over
    // all threads. CpuGemm's result does not depend on its thread count, so both give the same bits.
    private static unsafe void RunManagedBatched(KernelHost host, bool transA, bool transB, int batch, int m, int n, int k, float alpha, ArrayView<float> a, ArrayView<float> b, float beta, ArrayView<float> c)
    {
        host.Stream.Synchronize();
        nint pa = (nint)a.LoadEffectiveAddressAsPtr(), pb = (nint)b.LoadEffectiveAddressAsPtr(), pc = (nint)c.LoadEffectiveAddressAsPtr();
        long sa = (long)m * k, sb = (long)k * n, sc = (long)m * n;
        int threads = host.Launch.MaxGroups;
        if (batch >= threads && threads > 1)
        {
            Runtime.CpuWorkers.For(batch, threads, q => Product(q, 1));
        }
        else
        {
            for (int q = 0; q < batch; q++)
                Product(q, threads);
        }

        void Product(int q, int t) =>
            CpuGemm.Run(transA, transB, m, n, k, alpha, (float*)pa + (q * sa), (float*)pb + (q * sb), beta, (float*)pc + (q * sc), t);
    }

    /// <summary><see cref="CpuGemm"/> on the buffers' host memory, split over the policy's groups (one per core); arguments checked and non-trivial.</summary>
    internal static unsafe void RunManaged(KernelHost host, bool transA, bool transB, int m, int n, int k, float alpha, ArrayView<float> a, ArrayView<float> b, float beta, ArrayView<float> c)
    {
        // Earlier kernels on the stream must have written A, B and C before host code reads them.
        host.Stream.Synchronize();
        CpuGemm.Run(
            transA, transB, m, n, k, alpha,
            (float*)a.LoadEffectiveAddressAsPtr(), (float*)b.LoadEffectiveAddressAsPtr(), beta, (float*)c.LoadEffectiveAddressAsPtr(),
            host.Launch.MaxGroups);
    }

    /// <summary>Checks a GEMM's arguments and does the trivial cases (M or N 0: nothing; alpha or K 0: C = beta C); true when nothing is left.</summary>
    internal static bool Trivial<T>(string op, KernelHost host, bool transA, bool transB, int m, int n, int k, float alpha, ArrayView<T> a, ArrayView<T> b, float beta, ArrayView<float> c)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.Dimension(op, m, nameof(m));
        Check.Dimension(op, n, nameof(n));
        Check.Dimension(op, k, nameof(k));
        Check.Length(op, a, nameof(a), (long)m * k, transA ? $"op(A) (M, K) = ({m}, {k}) with transA, A stored (K, M) = ({k}, {m})," : $"op(A) (M, K) = ({m}, {k}) without transA");
        Check.Length(op, b, nameof(b), (long)k * n, transB ? $"op(B) (K, N) = ({k}, {n}) with transB, B stored (N, K) = ({n}, {k})," : $"op(B) (K, N) = ({k}, {n}) without transB");
        Check.Length(op, c, nameof(c), (long)m * n, $"C (M, N) = ({m}, {n})");
        Check.Fits32(op, a, nameof(a));
        Check.Fits32(op, b, nameof(b));
        Check.Fits32(op, c, nameof(c));
        if (m == 0 || n == 0)
            return true;
        if (alpha != 0f && k != 0)
            return false;

        // C = beta * C without reading C when beta == 0 (0 * NaN would be NaN).
        if (beta == 0f)
            Elementwise.Fill(host, c, 0f);
        else if (beta != 1f)
            Elementwise.Scale(host, c, beta, c);
        return true;
    }

    /// <summary>As Run, but the tiled kernel on any accelerator with its group side (1 to 16, side^2 within the accelerator's groups) forced; tests run every side.</summary>
    internal static void Run(KernelHost host, bool transA, bool transB, int m, int n, int k, float alpha, ArrayView<float> a, ArrayView<float> b, float beta, ArrayView<float> c, int groupSide) =>
        RunTiled(nameof(Gemm), FloatTiles, host, transA, transB, m, n, k, alpha, a, b, beta, c, groupSide);

    /// <summary>The tiled kernel of <paramref name="kernels"/> with its group side forced, arguments checked (for <see cref="GemmHalf"/> too).</summary>
    internal static void RunTiled<T, TW>(string op, TiledKernels<T, TW> kernels, KernelHost host, bool transA, bool transB, int m, int n, int k, float alpha, ArrayView<T> a, ArrayView<T> b, float beta, ArrayView<float> c, int groupSide)
        where T : unmanaged
        where TW : struct, IWiden<T>
    {
        ArgumentNullException.ThrowIfNull(host);
        if (groupSide < 1 || groupSide > MaxSide || groupSide * groupSide > host.Accelerator.MaxNumThreadsPerGroup)
            throw new ArgumentOutOfRangeException(nameof(groupSide), groupSide, $"{op}: the tiled group side must be 1 to {MaxSide} with side^2 at most {host.Accelerator.MaxNumThreadsPerGroup} threads, got {groupSide}.");
        if (!Trivial(op, host, transA, transB, m, n, k, alpha, a, b, beta, c))
            Tiled(host, kernels, transA, transB, m, n, k, alpha, a, b, beta, c, groupSide);
    }

    /// <summary>Launches the tiled kernel on checked, non-trivial arguments.</summary>
    internal static void Tiled<T, TW>(KernelHost host, TiledKernels<T, TW> kernels, bool transA, bool transB, int m, int n, int k, float alpha, ArrayView<T> a, ArrayView<T> b, float beta, ArrayView<float> c, int groupSide, int batch = 1)
        where T : unmanaged
        where TW : struct, IWiden<T>
    {
        int tile = groupSide * R;
        long tiles = (long)((m + tile - 1) / tile) * ((n + tile - 1) / tile) * batch;
        if (tiles > int.MaxValue)
            throw new ArgumentException($"Gemm: {batch} products of ({m}, {n}) make {tiles} tiles, more than the kernel's 32-bit tile index; split the batch.", nameof(batch));
        var config = new KernelConfig(new Index2D((int)Math.Min(tiles, host.Launch.MaxGroups), 1), new Index2D(groupSide, groupSide));
        var def = (transA, transB) switch
        {
            (false, false) => kernels.NN,
            (false, true) => kernels.NT,
            (true, false) => kernels.TN,
            (true, true) => kernels.TT,
        };
        host.Load(def)(host.Stream, config, a, b, c, m, n, k, alpha, beta, batch, batch == 1 ? 0 : m * k, batch == 1 ? 0 : k * n, batch == 1 ? 0 : m * n);
    }

    /// <summary>The largest square group side the tiled kernel supports: 16 on GPUs, 4 for 16-thread CPU groups.</summary>
    internal static int GroupSide(Accelerator accelerator)
    {
        int side = MaxSide;
        while (side > 1 && side * side > accelerator.MaxNumThreadsPerGroup)
            side--;
        return side;
    }

    // R x R (4 x 4) accumulators of C: field Crc is element (r, c). Plain fields rather than an
    // array so GPU backends keep them in registers.
    internal struct Block4x4
    {
        public float C00, C01, C02, C03, C10, C11, C12, C13, C20, C21, C22, C23, C30, C31, C32, C33;

        // The rank-1 update C += a b^T of column a (4) of op(A) and row b (4) of op(B).
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Add(float a0, float a1, float a2, float a3, float b0, float b1, float b2, float b3)
        {
            C00 += a0 * b0;
            C01 += a0 * b1;
            C02 += a0 * b2;
            C03 += a0 * b3;
            C10 += a1 * b0;
            C11 += a1 * b1;
            C12 += a1 * b2;
            C13 += a1 * b3;
            C20 += a2 * b0;
            C21 += a2 * b1;
            C22 += a2 * b2;
            C23 += a2 * b3;
            C30 += a3 * b0;
            C31 += a3 * b1;
            C32 += a3 * b2;
            C33 += a3 * b3;
        }

        // C[i + r step, j + c step] = alpha acc + beta C for element (r, c), skipping those outside (m, n).
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Store(ArrayView<float> c, int cBase, int i, int j, int step, int m, int n, float alpha, float beta)
        {
            StoreRow(c, cBase, i, j, step, m, n, alpha, beta, C00, C01, C02, C03);
            StoreRow(c, cBase, i + step, j, step, m, n, alpha, beta, C10, C11, C12, C13);
            StoreRow(c, cBase, i + (2 * step), j, step, m, n, alpha, beta, C20, C21, C22, C23);
            StoreRow(c, cBase, i + (3 * step), j, step, m, n, alpha, beta, C30, C31, C32, C33);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void StoreRow(ArrayView<float> c, int cBase, int i, int j, int step, int m, int n, float alpha, float beta, float a0, float a1, float a2, float a3)
        {
            StoreOne(c, cBase, i, j, m, n, alpha, beta, a0);
            StoreOne(c, cBase, i, j + step, m, n, alpha, beta, a1);
            StoreOne(c, cBase, i, j + (2 * step), m, n, alpha, beta, a2);
            StoreOne(c, cBase, i, j + (3 * step), m, n, alpha, beta, a3);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void StoreOne(ArrayView<float> c, int cBase, int i, int j, int m, int n, float alpha, float beta, float acc)
        {
            if (i < m & j < n)
            {
                int idx = cBase + (i * n) + j;
                // beta == 0 must not read C: 0 * NaN is NaN (BLAS semantics).
                c[idx] = beta == 0f ? alpha * acc : (alpha * acc) + (beta * c[idx]);
            }
        }
    }
}

// How the tiled GEMM kernel widens an element of A or B to float as it stages it (exact for float
// and binary16).
internal interface IWiden<T>
    where T : unmanaged
{
    float Widen(T value);
}

internal readonly struct FloatWiden : IWiden<float>
{
    public float Widen(float value) => value;
}

// Binary16 operands: the exact widening of Cast.HalfToFloat.
internal readonly struct HalfWiden : IWiden<Half>
{
    public float Widen(Half value) => Cast.HalfToFloat(value);
}

// The tiled GEMM kernel for one operand type T (widened by TW), one instantiation per transpose case.
internal sealed class TiledKernels<T, TW> : IKernelSet
    where T : unmanaged
    where TW : struct, IWiden<T>
{
    public readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<T>, ArrayView<T>, ArrayView<float>, int, int, int, float, float, int, int, int, int>> NN =
        KernelDef.Of<ArrayView<T>, ArrayView<T>, ArrayView<float>, int, int, int, float, float, int, int, int, int>(Gemm.TiledKernel<NormalLayout, NormalLayout, T, TW>);

    public readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<T>, ArrayView<T>, ArrayView<float>, int, int, int, float, float, int, int, int, int>> NT =
        KernelDef.Of<ArrayView<T>, ArrayView<T>, ArrayView<float>, int, int, int, float, float, int, int, int, int>(Gemm.TiledKernel<NormalLayout, TransposedLayout, T, TW>);

    public readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<T>, ArrayView<T>, ArrayView<float>, int, int, int, float, float, int, int, int, int>> TN =
        KernelDef.Of<ArrayView<T>, ArrayView<T>, ArrayView<float>, int, int, int, float, float, int, int, int, int>(Gemm.TiledKernel<TransposedLayout, NormalLayout, T, TW>);

    public readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<T>, ArrayView<T>, ArrayView<float>, int, int, int, float, float, int, int, int, int>> TT =
        KernelDef.Of<ArrayView<T>, ArrayView<T>, ArrayView<float>, int, int, int, float, float, int, int, int, int>(Gemm.TiledKernel<TransposedLayout, TransposedLayout, T, TW>);

    /// <inheritdoc/>
    public IEnumerable<KernelDef> Kernels => [NN, NT, TN, TT];
}

/// <summary>
/// How a logical (rows, cols) matrix op(X) is stored in a flat row-major buffer. Implementations
/// are empty structs: GEMM kernels take them as generic arguments, so each layout gets its own
/// compiled kernel with no branch on the layout.
/// </summary>
/// <remarks>Law: Offset is a bijection from [0, rows) x [0, cols) onto [0, rows*cols), and Split
/// is a bijection from [0, tileRows*tileCols) onto the tile's (row, col) pairs.</remarks>
public interface IMatrixLayout
{
    /// <summary>The storage offset of element (row, col) of the logical (rows, cols) matrix.</summary>
    /// <param name="row">Row, in [0, rows).</param>
    /// <param name="col">Column, in [0, cols).</param>
    /// <param name="rows">Logical rows.</param>
    /// <param name="cols">Logical columns.</param>
    int Offset(int row, int col, int rows, int cols);

    /// <summary>
    /// (X = row, Y = col) in a (tileRows, tileCols) tile of the <paramref name="index"/>-th element in
    /// storage order, so consecutive indices (neighbouring threads) read neighbouring addresses.
    /// </summary>
    /// <param name="index">Linear index, in [0, tileRows * tileCols).</param>
    /// <param name="tileRows">Tile rows.</param>
    /// <param name="tileCols">Tile columns.</param>
    Index2D Split(int index, int tileRows, int tileCols);
}

/// <summary>op(X) = X: stored (rows, cols), offset = row * cols + col.</summary>
public readonly struct NormalLayout : IMatrixLayout
{
    /// <inheritdoc/>
    public int Offset(int row, int col, int rows, int cols) => (row * cols) + col;

    /// <inheritdoc/>
    public Index2D Split(int index, int tileRows, int tileCols) => new(index / tileCols, index % tileCols);
}

/// <summary>op(X) = X^T: X stored (cols, rows), offset = col * rows + row.</summary>
public readonly struct TransposedLayout : IMatrixLayout
{
    /// <inheritdoc/>
    public int Offset(int row, int col, int rows, int cols) => (col * rows) + row;

    /// <inheritdoc/>
    public Index2D Split(int index, int tileRows, int tileCols) => new(index % tileRows, index / tileRows);
}
