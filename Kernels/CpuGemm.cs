using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace IlgpuTrain.Kernels;

// The CPU fast path of Gemm: C = alpha * op(A) * op(B) + beta * C (row-major sgemm), as managed
// SIMD code on the CPU accelerator's own buffers (a CPU buffer's address is host memory).
//
// ILGPU's CPU accelerator runs kernels as ordinary managed code without vectorizing them, so its
// blocked GEMM reaches 3-4 GFLOP/s on a core; a BLIS-style kernel reaches most of the FMA peak:
//
//   parallel over regions of C:     a grid of row blocks x column blocks, one per thread
//     for jc in region's N step NC:  B panel (KC x NC) packed by the thread, NR columns per micro-panel
//       for pc in K step KC:
//         pack B[pc.., jc..]         zero-padded to NR columns, row p of a micro-panel contiguous
//         pack A[rows, pc..]         MR rows per micro-panel
//         for each (MR x NR) tile:  micro-kernel, MR x NR accumulators in registers, K-loop of FMAs
//
// The micro-kernel keeps MR = 6 rows by NR = 2 vectors of C in 12 registers (Vector512: 6 x 32
// floats; Vector256: 6 x 16), loading two vectors of B and broadcasting one value of A per row
// for each k. Transposes are handled by the packing, so one micro-kernel serves all four cases.
// Summation order is fixed (k ascending within a KC slice, slices in order), so results are
// deterministic and independent of the thread count. beta == 0 never reads C.
// Mixed precision (GemmHalf): A and B may be binary16; packing widens them to float (exact), so
// the same float micro-kernels run and accumulation stays in float.

/// <summary>Managed, cache-blocked, register-tiled SIMD sgemm on host memory: the CPU accelerator's GEMM.</summary>
internal static unsafe class CpuGemm
{
    private const int MR = 6;

    // K slice: an MR x KC block of A (6 KB) and a KC x NR micro-panel of B (32 KB at NR = 32) stay in L1/L2.
    private const int KC = 256;

    // Column block of the packed B panel: KC x NC floats = 512 KB, sized for a 1 MB L2.
    private const int NC = 512;

    /// <summary>Whether the fast path applies on this machine (256-bit or 512-bit SIMD with FMA).</summary>
    public static bool IsSupported => Vector512.IsHardwareAccelerated || Vector256.IsHardwareAccelerated;

    /// <summary>Floats per SIMD vector used: 16 with AVX-512, 8 with AVX2.</summary>
    public static int VectorWidth => Vector512.IsHardwareAccelerated ? 16 : 8;

    /// <summary>
    /// C (M, N) = alpha op(A) op(B) + beta C over host memory (K at least 1; beta 0 does not read C),
    /// split over <paramref name="threads"/>. Unchecked: Gemm.Run checks and calls it.
    /// </summary>
    public static void Run(bool transA, bool transB, int m, int n, int k, float alpha, float* a, float* b, float beta, float* c, int threads) =>
        Run(transA, transB, m, n, k, alpha, a, b, beta, c, threads, Vector512.IsHardwareAccelerated);

    /// <summary>As the float overload with binary16 A and B: the packing widens each half to float (exactly), so the float micro-kernels accumulate in float.</summary>
    public static void Run(bool transA, bool transB, int m, int n, int k, float alpha, Half* a, Half* b, float beta, float* c, int threads) =>
        Run(transA, transB, m, n, k, alpha, a, b, beta, c, threads, Vector512.IsHardwareAccelerated);

    // As the public overloads, with the micro-kernel forced: use512, Vector512 (6 x 32 tiles) or
    // Vector256 (6 x 16 tiles); tests run the 256-bit one on AVX-512 machines too.
    internal static void Run(bool transA, bool transB, int m, int n, int k, float alpha, float* a, float* b, float beta, float* c, int threads, bool use512) =>
        RunPacked(transA, transB, m, n, k, alpha, a, b, beta, c, threads, use512);

    internal static void Run(bool transA, bool transB, int m, int n, int k, float alpha, Half* a, Half* b, float beta, float* c, int threads, bool use512) =>
        RunPacked(transA, transB, m, n, k, alpha, a, b, beta, c, threads, use512);

    // One driver for both operand types: T is float or ILGPU.Half, and only the packing reads T
    // (the JIT specializes per value type, so the float path keeps its plain loads).
    //
    // The threads split C into a grid of regions (row blocks of MR-multiples by column blocks of
    // NR-multiples) and each runs the whole blocked loop over its region with its own packed
    // panels: one fork-join per call instead of two per K slice, which dominates the small GEMMs
    // of a training step. The grid minimizes what each thread packs, (M / tr) K + K (N / tc):
    // a batch of 128 rows against 256 columns splits the columns, a 4096^3 product the rows.
    private static void RunPacked<T>(bool transA, bool transB, int m, int n, int k, float alpha, T* a, T* b, float beta, float* c, int threads, bool use512)
        where T : unmanaged
    {
        int nr = use512 ? 32 : 16;
        int rowPanels = (m + MR - 1) / MR, colPanels = (n + nr - 1) / nr;
        threads = Math.Max(1, Math.Min(threads, rowPanels * colPanels));
        int tr = 1, tc = 1;
        long best = long.MaxValue;
        for (int r = 1; r <= threads; r++)
        {
            if (threads % r != 0 || r > rowPanels || threads / r > colPanels)
                continue;
            long cost = ((long)((rowPanels + r - 1) / r) * MR * k) + ((long)k * ((colPanels + (threads / r) - 1) / (threads / r)) * nr);
            if (cost < best)
                (best, tr, tc) = (cost, r, threads / r);
        }

        if (best == long.MaxValue)
        {
            // A prime thread count larger than both panel counts: fewer threads, rows only.
            tr = Math.Min(threads, rowPanels);
            tc = 1;
        }

        int rowsPer = (rowPanels + tr - 1) / tr * MR, colsPer = (colPanels + tc - 1) / tc * nr;
        int lda = transA ? m : k, ldb = transB ? k : n;
        if (tr * tc == 1)
            Region(0);
        else
            Runtime.CpuWorkers.For(tr * tc, tr * tc, Region);

        void Region(int t)
        {
            int i0 = t / tc * rowsPer, j0 = t % tc * colsPer;
            int i1 = Math.Min(m, i0 + rowsPer), j1 = Math.Min(n, j0 + colsPer);
            if (i0 >= i1 || j0 >= j1)
                return;
            int mc = i1 - i0;
            int ncMax = Math.Min(NC, RoundUp(j1 - j0, nr));

            // Packing buffers are the thread's own, kept between calls: a training step calls GEMM
            // hundreds of times (per image in a convolution), and renting from ArrayPool.Shared
            // makes its trimming after every gen-2 collection a cost of its own.
            var packedB = Scratch(ref _packedB, KC * ncMax);
            // A float A is read in place: six row streams sequential in k (A stored (M, K)), or six
            // adjacent floats of one row of the stored (K, M) per k. Packing it would copy all of A
            // once per column block of every thread; only binary16 A is packed (widened).
            bool directA = typeof(T) == typeof(float);
            var packedA = Scratch(ref _packedA, directA ? 0 : KC * RoundUp(mc, MR));
            fixed (float* bp = packedB)
            fixed (float* ap = packedA)
            {
                for (int jc = j0; jc < j1; jc += NC)
                {
                    int nc = Math.Min(NC, j1 - jc);
                    for (int pc = 0; pc < k; pc += KC)
                    {
                        int kc = Math.Min(KC, k - pc);
                        float betaHere = pc == 0 ? beta : 1f;
                        PackB(transB, b, ldb, pc, jc, kc, nc, nr, bp);
                        if (!directA)
                            PackA(transA, a, lda, i0, pc, mc, kc, ap);
                        for (int jr = 0; jr < nc; jr += nr)
                        {
                            int nrHere = Math.Min(nr, nc - jr);
                            float* bPanel = bp + ((long)jr * kc);
                            for (int ir = 0; ir < mc; ir += MR)
                            {
                                int mrHere = Math.Min(MR, mc - ir);
                                float* cTile = c + ((long)(i0 + ir) * n) + jc + jr;
                                var rows = !directA ? new ARows(ap + ((long)ir * kc), 1, MR, MR)
                                    : transA ? new ARows((float*)a + ((long)pc * lda) + i0 + ir, 1, lda, mrHere)
                                    : new ARows((float*)a + ((long)(i0 + ir) * lda) + pc, lda, 1, mrHere);
                                if (use512)
                                    Micro<Vector512<float>, Ops512>(kc, rows, bPanel, cTile, n, alpha, betaHere, mrHere, nrHere);
                                else
                                    Micro<Vector256<float>, Ops256>(kc, rows, bPanel, cTile, n, alpha, betaHere, mrHere, nrHere);
                            }
                        }
                    }
                }
            }
        }
    }

    // The six rows of an MR-row block of op(A): row r starts at Base + min(r, Rows - 1) * RowStride
    // (rows past the edge repeat the last one; their results are not stored) and advances Step
    // floats per k. Packed panels are (1, MR); A read in place is (lda, 1).
    private readonly struct ARows(float* start, int rowStride, int step, int rows)
    {
        public int Step => step;

        public float* Row(int r) => start + ((long)Math.Min(r, rows - 1) * rowStride);
    }

    [ThreadStatic]
    private static float[]? _packedA;

    [ThreadStatic]
    private static float[]? _packedB;

    private static float[] Scratch(ref float[]? slot, int length) =>
        slot is { } a && a.Length >= length ? a : (slot = GC.AllocateUninitializedArray<float>(Math.Max(length, 4096)));

    // Packs op(B)[pc .. pc+kc, jc .. jc+nc] into micro-panels of nr columns: panel j holds
    // kc rows of nr floats, zero-padded past nc.
    private static void PackB<T>(bool transB, T* b, int ldb, int pc, int jc, int kc, int nc, int nr, float* dst)
        where T : unmanaged
    {
        for (int jr = 0; jr < nc; jr += nr)
            PackBPanel(transB, b, ldb, pc, jc, kc, nc, nr, dst, jr);
    }

    private static void PackBPanel<T>(bool transB, T* b, int ldb, int pc, int jc, int kc, int nc, int nr, float* dst, int jr)
        where T : unmanaged
    {
        int w = Math.Min(nr, nc - jr);
        float* panel = dst + ((long)jr * kc);
        if (!transB)
        {
            for (int p = 0; p < kc; p++)
            {
                float* row = panel + ((long)p * nr);
                T* src = b + ((long)(pc + p) * ldb) + jc + jr;
                for (int j = 0; j < w; j++)
                    row[j] = Load(src + j);
                for (int j = w; j < nr; j++)
                    row[j] = 0f;
            }

            return;
        }

        // B stored (N, K): op(B)[p, j] = B[j, p]. Whole 8 x 8 float blocks go through an AVX
        // register transpose (exact: a packing only moves bits); the rest is read along p.
        int p8 = 0;
        if (typeof(T) == typeof(float) && Avx.IsSupported && w % 8 == 0)
        {
            p8 = kc / 8 * 8;
            for (int j = 0; j < w; j += 8)
            {
                float* src = (float*)b + ((long)(jc + jr + j) * ldb) + pc;
                for (int p = 0; p < p8; p += 8)
                    Transpose8x8(src + p, ldb, panel + ((long)p * nr) + j, nr);
            }
        }

        for (int j = 0; j < w; j++)
        {
            T* src = b + ((long)(jc + jr + j) * ldb) + pc;
            for (int p = p8; p < kc; p++)
                panel[((long)p * nr) + j] = Load(src + p);
        }

        for (int j = w; j < nr; j++)
        {
            for (int p = 0; p < kc; p++)
                panel[((long)p * nr) + j] = 0f;
        }
    }

    // dst[r * ldd + c] = src[c * lds + r] for an 8 x 8 block.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8x8(float* src, int lds, float* dst, int ldd)
    {
        var r0 = Vector256.Load(src);
        var r1 = Vector256.Load(src + lds);
        var r2 = Vector256.Load(src + (2 * lds));
        var r3 = Vector256.Load(src + (3 * lds));
        var r4 = Vector256.Load(src + (4 * lds));
        var r5 = Vector256.Load(src + (5 * lds));
        var r6 = Vector256.Load(src + (6 * lds));
        var r7 = Vector256.Load(src + (7 * lds));
        Runtime.Simd.Transpose(ref r0, ref r1, ref r2, ref r3, ref r4, ref r5, ref r6, ref r7);
        r0.Store(dst);
        r1.Store(dst + ldd);
        r2.Store(dst + (2 * ldd));
        r3.Store(dst + (3 * ldd));
        r4.Store(dst + (4 * ldd));
        r5.Store(dst + (5 * ldd));
        r6.Store(dst + (6 * ldd));
        r7.Store(dst + (7 * ldd));
    }

    // Packs op(A)[i0 .. i0+mc, pc .. pc+kc] into micro-panels of MR rows: panel i holds kc
    // columns of MR floats (one broadcast per row per k), zero-padded past mc.
    private static void PackA<T>(bool transA, T* a, int lda, int i0, int pc, int mc, int kc, float* dst)
        where T : unmanaged
    {
        for (int ir = 0; ir < mc; ir += MR)
        {
            int h = Math.Min(MR, mc - ir);
            float* panel = dst + ((long)ir * kc);
            if (!transA)
            {
                for (int r = 0; r < h; r++)
                {
                    T* src = a + ((long)(i0 + ir + r) * lda) + pc;
                    for (int p = 0; p < kc; p++)
                        panel[(p * MR) + r] = Load(src + p);
                }
            }
            else
            {
                // A stored (K, M): op(A)[i, p] = A[p, i]; rows of A are contiguous in i.
                for (int p = 0; p < kc; p++)
                {
                    T* src = a + ((long)(pc + p) * lda) + i0 + ir;
                    for (int r = 0; r < h; r++)
                        panel[(p * MR) + r] = Load(src + r);
                }
            }

            for (int r = h; r < MR; r++)
            {
                for (int p = 0; p < kc; p++)
                    panel[(p * MR) + r] = 0f;
            }
        }
    }

    // The micro-kernel, once for both widths: TV is Vector512<float> or Vector256<float> and TOps
    // its operations (static, so the JIT specializes per width and the 12 accumulators stay in
    // registers). C += the MR x 2W tile of A's rows times the packed micro-panel, k ascending.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Micro<TV, TOps>(int kc, ARows a, float* bp, float* c, int ldc, float alpha, float beta, int mr, int nr)
        where TV : struct
        where TOps : struct, IVectorOps<TV>
    {
        int w = TOps.Width;
        float* a0 = a.Row(0), a1 = a.Row(1), a2 = a.Row(2), a3 = a.Row(3), a4 = a.Row(4), a5 = a.Row(5);
        int sa = a.Step;
        TV c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        TV c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int p = 0; p < kc; p++)
        {
            var b0 = TOps.Load(bp);
            var b1 = TOps.Load(bp + w);
            var x0 = TOps.Broadcast(a0[0]);
            c00 = TOps.Fma(x0, b0, c00);
            c01 = TOps.Fma(x0, b1, c01);
            var x1 = TOps.Broadcast(a1[0]);
            c10 = TOps.Fma(x1, b0, c10);
            c11 = TOps.Fma(x1, b1, c11);
            var x2 = TOps.Broadcast(a2[0]);
            c20 = TOps.Fma(x2, b0, c20);
            c21 = TOps.Fma(x2, b1, c21);
            var x3 = TOps.Broadcast(a3[0]);
            c30 = TOps.Fma(x3, b0, c30);
            c31 = TOps.Fma(x3, b1, c31);
            var x4 = TOps.Broadcast(a4[0]);
            c40 = TOps.Fma(x4, b0, c40);
            c41 = TOps.Fma(x4, b1, c41);
            var x5 = TOps.Broadcast(a5[0]);
            c50 = TOps.Fma(x5, b0, c50);
            c51 = TOps.Fma(x5, b1, c51);
            a0 += sa;
            a1 += sa;
            a2 += sa;
            a3 += sa;
            a4 += sa;
            a5 += sa;
            bp += 2 * w;
        }

        if (mr == MR && nr == 2 * w)
        {
            Store<TV, TOps>(c, alpha, beta, c00, c01);
            Store<TV, TOps>(c + ldc, alpha, beta, c10, c11);
            Store<TV, TOps>(c + (2 * ldc), alpha, beta, c20, c21);
            Store<TV, TOps>(c + (3 * ldc), alpha, beta, c30, c31);
            Store<TV, TOps>(c + (4 * ldc), alpha, beta, c40, c41);
            Store<TV, TOps>(c + (5 * ldc), alpha, beta, c50, c51);
            return;
        }

        // Edge tile: spill the accumulators (1 acc is exact) and write only the mr x nr that exist.
        float* t = stackalloc float[MR * 32];
        int lt = 2 * w;
        Store<TV, TOps>(t, 1f, 0f, c00, c01);
        Store<TV, TOps>(t + lt, 1f, 0f, c10, c11);
        Store<TV, TOps>(t + (2 * lt), 1f, 0f, c20, c21);
        Store<TV, TOps>(t + (3 * lt), 1f, 0f, c30, c31);
        Store<TV, TOps>(t + (4 * lt), 1f, 0f, c40, c41);
        Store<TV, TOps>(t + (5 * lt), 1f, 0f, c50, c51);
        StoreEdge(t, lt, c, ldc, alpha, beta, mr, nr);
    }

    // Two adjacent vectors of a C row: alpha acc (beta 0 never reads C), else alpha acc + beta C in one FMA.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store<TV, TOps>(float* c, float alpha, float beta, TV lo, TV hi)
        where TV : struct
        where TOps : struct, IVectorOps<TV>
    {
        var va = TOps.Broadcast(alpha);
        if (beta == 0f)
        {
            TOps.Store(TOps.Multiply(va, lo), c);
            TOps.Store(TOps.Multiply(va, hi), c + TOps.Width);
        }
        else
        {
            var vb = TOps.Broadcast(beta);
            TOps.Store(TOps.Fma(va, lo, TOps.Multiply(vb, TOps.Load(c))), c);
            TOps.Store(TOps.Fma(va, hi, TOps.Multiply(vb, TOps.Load(c + TOps.Width))), c + TOps.Width);
        }
    }

    // The vector operations of the micro-kernel at one width (static, so each width is its own specialization).
    private interface IVectorOps<TV>
        where TV : struct
    {
        static abstract int Width { get; }

        static abstract TV Load(float* p);

        static abstract void Store(TV v, float* p);

        static abstract TV Broadcast(float x);

        static abstract TV Multiply(TV a, TV b);

        static abstract TV Fma(TV a, TV b, TV c);
    }

    private readonly struct Ops512 : IVectorOps<Vector512<float>>
    {
        public static int Width => 16;

        public static Vector512<float> Load(float* p) => Vector512.Load(p);

        public static void Store(Vector512<float> v, float* p) => v.Store(p);

        public static Vector512<float> Broadcast(float x) => Vector512.Create(x);

        public static Vector512<float> Multiply(Vector512<float> a, Vector512<float> b) => a * b;

        public static Vector512<float> Fma(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.FusedMultiplyAdd(a, b, c);
    }

    private readonly struct Ops256 : IVectorOps<Vector256<float>>
    {
        public static int Width => 8;

        public static Vector256<float> Load(float* p) => Vector256.Load(p);

        public static void Store(Vector256<float> v, float* p) => v.Store(p);

        public static Vector256<float> Broadcast(float x) => Vector256.Create(x);

        public static Vector256<float> Multiply(Vector256<float> a, Vector256<float> b) => a * b;

        public static Vector256<float> Fma(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.FusedMultiplyAdd(a, b, c);
    }

    private static void StoreEdge(float* t, int ldt, float* c, int ldc, float alpha, float beta, int mr, int nr)
    {
        for (int r = 0; r < mr; r++)
        {
            float* row = c + ((long)r * ldc);
            float* acc = t + (r * ldt);
            if (beta == 0f)
            {
                for (int j = 0; j < nr; j++)
                    row[j] = alpha * acc[j];
            }
            else
            {
                for (int j = 0; j < nr; j++)
                    row[j] = MathF.FusedMultiplyAdd(alpha, acc[j], beta * row[j]);
            }
        }
    }

    private static int RoundUp(int x, int m) => (x + m - 1) / m * m;

    // An operand element as float: a plain load for float; for binary16 the BCL's exact widening
    // (ILGPU.Half and System.Half share the IEEE bit layout, so the bits are reinterpreted).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Load<T>(T* p)
        where T : unmanaged =>
        typeof(T) == typeof(float) ? *(float*)p : (float)*(System.Half*)p;
}
