using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// Reductions of float buffers: flat (n) -> 1, rows (R, C) -> R, columns (R, C) -> C, by one of
// five operators (ReductionOps.cs): Sum Σx (empty 0), Mean Σx/n (empty NaN = 0/0, as PyTorch),
// Max (empty: the launcher throws, as PyTorch; any NaN gives NaN), SumOfSquares Σx² (empty 0),
// L2Norm √Σx² (empty 0). Each reads 4 B per element and writes 4 B per output (flat: per partial).
// Every launcher OVERWRITES its result, which stays on the device. Column sums are BiasAdd's
// backward and BatchNorm's statistics; flat ones give global norms and finite checks over a whole
// ParamTree buffer in one launch.
//
// Flat modes (ReductionMode). Deterministic (default): pass 1 writes one partial per group into
// scratch, pass 2 (one group) combines them in a fixed order and applies Finish; no float atomics,
// so the same input, device and launch policy give the same bits. Atomic: one pass, each group
// combines its partial into the result (first the identity) by a compare-and-swap loop
// (AtomicCombine), then a one-group launch applies Finish; faster on GPUs, not bitwise
// reproducible. Rows and columns are deterministic by construction (one group or loop per output).
//
// Two algorithms, each checked against the references:
//   Kernels (GPUs, ILGPU's CPU accelerator): each thread accumulates a grid-stride slice, then a
//     shared-memory tree (Group.Barrier) combines the group; any group size up to
//     LaunchPolicy.MaxReduceGroupSize (256); launched with ReduceGroupSize.
//   Managed (host.RunsManaged): P = MaxReduceGroups chains in units of 16 (a contiguous segment of
//     x per unit, lane l of a unit taking its elements l, l + 16, ... in order: two Vector256 for
//     sums, threads taking whole units), combined in index order; rows take their columns in order,
//     columns their rows, walked in blocks so memory is read contiguously. Atomic mode runs the deterministic loop (atomics gain nothing here).
//
// Accuracy. The per-chain (per-thread) phase of the sum-like operators is compensated: a
// float-float Accumulator (Knuth's TwoSum, then a Fast2Sum folding the carry back). A slice of m
// terms with exact sum S and s = Σ|m(x_i)| comes within u·|S| + 2m·u²·s of S (u = 2^-24; Joldes,
// Muller, Popescu, ACM TOMS 2017, DWPlusFP), against (m−1)·u·s for a plain loop: 1e6 terms of 0.1
// round correctly where a plain loop is 1% off. Partials combine in float (a tree of depth log2 G,
// a compensated second pass): a deterministic flat sum is within (2 + 2·log2 G + 2m·u)·u·Σ|x|
// (G = 1 for managed chains; 18u for G = 256 while m·u is small); Atomic adds up to P·u·Σ|x| for
// its P atomic adds; rows and columns (1 + log2 G + 2m·u)·u·Σ|x| per output. Squares are rounded
// once before summing (one more u; an FMA only removes it). Nothing relies on the compiler
// reassociating float additions (neither RyuJIT nor ILGPU does). Overflow, ±∞ and NaN give what
// float addition gives.

/// <summary>Sum, mean, max, sum of squares and L2 norm of flat buffers and of matrix rows and columns.</summary>
internal static class Reductions
{
    /// <summary>Bytes a reduction (flat, rows or columns) reads per input element: 4; the few partials it writes are not counted. Benchmarks report GB/s from it.</summary>
    public const int BytesPerElement = 4;

    // ---------------------------------------------------------------- ILGPU kernels

    /// <summary>
    /// Kernel, pass 1: group g combines Map(x[i]) over its threads' grid-stride slices, then writes
    /// output[g] (deterministic, atomic = 0) or combines it into output[0] atomically (atomic = 1;
    /// output holds the identity first, and a later launch applies Finish).
    /// </summary>
    public static void FlatKernel<TOp>(ArrayView<float> x, ArrayView<float> output, int atomic)
        where TOp : struct, IReduceOp
    {
        var shared = SharedMemory.Allocate<float>(LaunchPolicy.MaxReduceGroupSize);
        int tid = Group.IdxX;
        float total = GroupCombine<TOp>(shared, 0, tid, Group.DimX, 1, SliceOf<TOp>(x));
        if (tid == 0 && atomic != 0)
            AtomicCombine<TOp>(output, total);
        else if (tid == 0)
            output[Grid.IdxX] = total;
    }

    /// <summary>
    /// Kernel, deterministic pass 2 (one group; also finishes an Atomic reduction in place, partials = result):
    /// result[0] = Finish(partials combined, count = n). Thread t takes partials t, t + G, ... in order, then the tree.
    /// </summary>
    public static void FlatCombineKernel<TOp>(ArrayView<float> partials, ArrayView<float> result, int count)
        where TOp : struct, IReduceOp
    {
        var shared = SharedMemory.Allocate<float>(LaunchPolicy.MaxReduceGroupSize);
        int tid = Group.IdxX;
        int size = Group.DimX;
        int p = partials.IntLength;
        var acc = new Accumulator<TOp>(default(TOp).Identity);
        for (int i = tid; i < p; i += size)
            acc.Add(partials[i]);
        float total = GroupCombine<TOp>(shared, 0, tid, size, 1, acc.Value);
        if (tid == 0)
            result[0] = default(TOp).Finish(total, count);
    }

    /// <summary>Kernel, x (R, C) -> result (R): one group per row (grid-stride over rows); thread t takes columns t, t + G, ..., then the group's tree.</summary>
    public static void RowsKernel<TOp>(ArrayView<float> x, ArrayView<float> result, int cols)
        where TOp : struct, IReduceOp
    {
        var shared = SharedMemory.Allocate<float>(LaunchPolicy.MaxReduceGroupSize);
        int rows = result.IntLength;
        int tid = Group.IdxX;
        int size = Group.DimX;
        int groups = Grid.DimX;
        // r is the same for every thread of a group, so the barriers inside are uniform.
        for (int r = Grid.IdxX; r < rows; r += groups)
        {
            int start = r * cols;
            var acc = new Accumulator<TOp>(default(TOp).Identity);
            for (int c = tid; c < cols; c += size)
                acc.Add(default(TOp).Map(x[start + c]));
            float total = GroupCombine<TOp>(shared, 0, tid, size, 1, acc.Value);
            if (tid == 0)
                result[r] = default(TOp).Finish(total, cols);
        }
    }

    /// <summary>
    /// Kernel, x (R, C) -> result (C): a group of G threads is W column lanes by L = G / W row lanes
    /// (W = G / 8 within [1, 32]: 32 x 8 for G = 256) over W adjacent columns (grid-stride over column
    /// blocks). Lane (w, l) takes rows l, l + L, ... of column c0 + w, so W neighbouring threads read
    /// W neighbouring floats (coalesced); a tree over the L row lanes gives result[c].
    /// </summary>
    public static void ColumnsKernel<TOp>(ArrayView<float> x, ArrayView<float> result, int rows)
        where TOp : struct, IReduceOp
    {
        var shared = SharedMemory.Allocate<float>(LaunchPolicy.MaxReduceGroupSize);
        int cols = result.IntLength;
        int tid = Group.IdxX;
        int size = Group.DimX;
        int lanes = ColumnLanes(size);
        int rowLanes = size / lanes;
        int w = tid % lanes;
        int l = tid / lanes;
        int blockStride = Grid.DimX * lanes;
        // c0 is the same for every thread of a group, so the barriers inside are uniform.
        for (int c0 = Grid.IdxX * lanes; c0 < cols; c0 += blockStride)
        {
            int c = c0 + w;
            var acc = new Accumulator<TOp>(default(TOp).Identity);
            if (c < cols)
            {
                // Threads past L * W (only when G is not a multiple of W) have l >= L and take no rows.
                for (int r = l; r < rows && l < rowLanes; r += rowLanes)
                    acc.Add(default(TOp).Map(x[(r * cols) + c]));
            }
            float total = GroupCombine<TOp>(shared, w, l, rowLanes, lanes, acc.Value);
            if (l == 0 && c < cols)
                result[c] = default(TOp).Finish(total, rows);
        }
    }

    /// <summary>Column lanes W of <see cref="ColumnsKernel{TOp}"/> for a group of <paramref name="groupSize"/> threads.</summary>
    private static int ColumnLanes(int groupSize)
    {
        // Eight row lanes per column keep a tree in every group (also the 16-thread groups the
        // tests simulate); 32 lanes is one warp reading 128 contiguous bytes.
        int lanes = groupSize / 8;
        return lanes < 1 ? 1 : lanes > 32 ? 32 : lanes;
    }

    /// <summary>This thread's grid-stride slice of x, mapped and accumulated.</summary>
    private static float SliceOf<TOp>(ArrayView<float> x)
        where TOp : struct, IReduceOp
    {
        int n = x.IntLength;
        // Grid and Group reads are thread-local on the CPU accelerator: read them once.
        int stride = Grid.DimX * Group.DimX;
        var acc = new Accumulator<TOp>(default(TOp).Identity);
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
            acc.Add(default(TOp).Map(x[i]));
        return acc.Value;
    }

    /// <summary>
    /// Combines one value per slot 0..count-1 with a shared-memory tree, in a fixed pairing
    /// (slot s with slot s + half). Slot k of this thread lives at shared[offset + k * spacing].
    /// Every thread of the group must call it (it has barriers); threads with slot &gt;= count
    /// only take part in the barriers. The returned value is valid in slot 0 only. After the
    /// last barrier each thread reads only its own cell, which only it writes next, so a caller
    /// may loop and call again without another barrier.
    /// </summary>
    internal static float GroupCombine<TOp>(ArrayView<float> shared, int offset, int slot, int count, int spacing, float value)
        where TOp : struct, IReduceOp
    {
        int cell = offset + (slot * spacing);
        shared[cell] = value;
        Group.Barrier();
        // Start at half the next power of two, so any count (not only powers of two) works.
        int half = 1;
        while (half < count)
            half <<= 1;
        for (half >>= 1; half > 0; half >>= 1)
        {
            if (slot < half && slot + half < count)
                shared[cell] = default(TOp).Combine(shared[cell], shared[cell + (half * spacing)]);
            Group.Barrier();
        }
        return shared[cell];
    }

    /// <summary>result[0] = Combine(result[0], value), atomically, with a compare-and-swap loop that compares bits.</summary>
    /// <remarks>
    /// Not <c>Atomic.Add</c>: on the CPU accelerator and on OpenCL, ILGPU 1.5.3 implements the
    /// float atomic add as a compare-and-swap loop that compares values with ==, so once the
    /// target holds NaN (NaN != NaN) it never exits. At most one atomic per group, so the loop
    /// costs nothing measurable against the reads.
    /// </remarks>
    private static void AtomicCombine<TOp>(ArrayView<float> result, float value)
        where TOp : struct, IReduceOp
    {
        float seen = result[0];
        while (true)
        {
            float next = default(TOp).Combine(seen, value);
            if (Interop.FloatAsInt(next) == Interop.FloatAsInt(seen))
                return;
            float old = Atomic.CompareExchange(ref result[0], seen, next);
            if (Interop.FloatAsInt(old) == Interop.FloatAsInt(seen))
                return;
            seen = old;
        }
    }

    // ---------------------------------------------------------------- CPU-accelerator managed paths

    // The chains' layout, a function of n and P (= count) only. Chains come in units of W lanes
    // (W = 16, two Vector256, when P is a multiple of 16; else 1); unit u owns the contiguous segment
    // [u S, (u + 1) S) of x, S a multiple of W, and its lane l takes the elements u S + l + W j in
    // order. The chains then combine in index order. Threads take whole units, so each reads memory
    // of its own, and neither vectors nor threads change a rounding.
    private readonly record struct ChainLayout(int Width, int Units, int Segment)
    {
        public static ChainLayout Of(int n, int count)
        {
            int width = count % 16 == 0 ? 16 : 1;
            int units = count / width;
            int segment = (int)(((((long)n + units - 1) / units) + width - 1) / width * width);
            return new ChainLayout(width, units, segment);
        }

        public (long Start, long End) SegmentOf(int unit, int n) => (Math.Min(n, (long)unit * Segment), Math.Min(n, (long)(unit + 1) * Segment));
    }

    private static unsafe void FlatManaged<TOp>(KernelHost host, ArrayView<float> x, float* pp, int count, ArrayView<float> result, int n)
        where TOp : struct, IReduceOp
    {
        host.Stream.Synchronize();
        float* px = CpuLoops.Ptr(x);
        var layout = ChainLayout.Of(n, count);
        if (Vector256.IsHardwareAccelerated && (default(TOp).IsSum || typeof(TOp) == typeof(MaxOp)) && layout.Width == 16)
            CpuLoops.For(host, layout.Units, new FlatLanesVector<TOp>(px, pp, n, layout), layout.Segment);
        else
            CpuLoops.For(host, layout.Units, new FlatLanes<TOp>(px, pp, n, layout), layout.Segment);

        var total = new Accumulator<TOp>(default(TOp).Identity);
        for (int t = 0; t < count; t++)
            total.Add(pp[t]);
        CpuLoops.Ptr(result)[0] = default(TOp).Finish(total.Value, n);
    }

    // Units [start, end), element by element.
    private readonly unsafe struct FlatLanes<TOp>(float* x, float* parts, int n, ChainLayout layout) : CpuLoops.IRange
        where TOp : struct, IReduceOp
    {
        public void Run(int start, int end)
        {
            int w = layout.Width;
            Span<Accumulator<TOp>> accs = stackalloc Accumulator<TOp>[w];
            for (int u = start; u < end; u++)
            {
                accs.Fill(new Accumulator<TOp>(default(TOp).Identity));
                var (s, e) = layout.SegmentOf(u, n);
                for (long i = s; i < e; i += w)
                {
                    int m = (int)Math.Min(w, e - i);
                    for (int l = 0; l < m; l++)
                        accs[l].Add(default(TOp).Map(x[i + l]));
                }

                for (int l = 0; l < w; l++)
                    parts[(u * w) + l] = accs[l].Value;
            }
        }
    }

    // Units [start, end) of sixteen lanes (two Vector256) each; only for sums (IsSum), whose Map is
    // x or x * x, and max. Four units run together (eight independent vector chains, enough to keep the
    // adders busy); a unit whose segment is cut short by n runs alone, and its last elements
    // scalar (Accumulator's operations, resumed from the lanes' value and carry).
    private readonly unsafe struct FlatLanesVector<TOp>(float* x, float* parts, int n, ChainLayout layout) : CpuLoops.IRange
        where TOp : struct, IReduceOp
    {
        public void Run(int start, int end)
        {
            int u = start;
            for (; u + 4 <= end && (long)(u + 4) * layout.Segment <= n; u += 4)
                Four(u);
            for (; u < end; u++)
                One(u);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Four(int u)
        {
            var identity = Vector256.Create(default(TOp).Identity);
            float* p0 = x + ((long)u * layout.Segment);
            long stride = layout.Segment;
            // First without the non-finite rule (see LaneCombine.AddFinite): a lane that met ±∞ or NaN
            // ends NaN, and its unit then runs again with the rule.
            var (v0, v1, v2, v3, v4, v5, v6, v7) = (identity, identity, identity, identity, identity, identity, identity, identity);
            Vector256<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default, c6 = default, c7 = default;
            for (long i = 0; i < stride; i += 16)
            {
                float* q = p0 + i;
                LaneCombine<TOp>.AddFinite(ref v0, ref c0, Vector256.Load(q));
                LaneCombine<TOp>.AddFinite(ref v1, ref c1, Vector256.Load(q + 8));
                LaneCombine<TOp>.AddFinite(ref v2, ref c2, Vector256.Load(q + stride));
                LaneCombine<TOp>.AddFinite(ref v3, ref c3, Vector256.Load(q + stride + 8));
                LaneCombine<TOp>.AddFinite(ref v4, ref c4, Vector256.Load(q + (2 * stride)));
                LaneCombine<TOp>.AddFinite(ref v5, ref c5, Vector256.Load(q + (2 * stride) + 8));
                LaneCombine<TOp>.AddFinite(ref v6, ref c6, Vector256.Load(q + (3 * stride)));
                LaneCombine<TOp>.AddFinite(ref v7, ref c7, Vector256.Load(q + (3 * stride) + 8));
            }

            Store(u, v0, v1);
            Store(u + 1, v2, v3);
            Store(u + 2, v4, v5);
            Store(u + 3, v6, v7);
        }

        // Writes a whole unit's lanes, or runs it again with the non-finite rule.
        private void Store(int u, Vector256<float> lo, Vector256<float> hi)
        {
            if (LaneCombine<TOp>.Finite(lo) && LaneCombine<TOp>.Finite(hi))
            {
                lo.Store(parts + (u * 16));
                hi.Store(parts + (u * 16) + 8);
            }
            else
            {
                One(u);
            }
        }

        private void One(int u)
        {
            var (s, e) = layout.SegmentOf(u, n);
            long whole = s + ((e - s) / 16 * 16);
            var identity = Vector256.Create(default(TOp).Identity);
            var (lo, hi, clo, chi) = (identity, identity, Vector256<float>.Zero, Vector256<float>.Zero);
            for (long i = s; i < whole; i += 16)
            {
                LaneCombine<TOp>.Add(ref lo, ref clo, Vector256.Load(x + i));
                LaneCombine<TOp>.Add(ref hi, ref chi, Vector256.Load(x + i + 8));
            }

            for (int l = 0; l < 16; l++)
            {
                var acc = l < 8 ? new Accumulator<TOp>(lo.GetElement(l), clo.GetElement(l)) : new Accumulator<TOp>(hi.GetElement(l - 8), chi.GetElement(l - 8));
                if (whole + l < e)
                    acc.Add(default(TOp).Map(x[whole + l]));
                parts[(u * 16) + l] = acc.Value;
            }
        }
    }

    private static unsafe void RowsManaged<TOp>(KernelHost host, ArrayView<float> x, ArrayView<float> result, int cols)
        where TOp : struct, IReduceOp =>
        CpuLoops.For(host, result.Length, new RowsBody<TOp>(CpuLoops.Ptr(x), CpuLoops.Ptr(result), cols), cols);

    // Column c accumulates rows 0, 1, ... in order; a block of columns is walked row by row (contiguous reads).
    // Blocks are narrow enough that every worker gets one (a bias gradient of 64 to 256 columns over
    // thousands of rows is otherwise one thread's work); each column's chain is the same either way.
    private static unsafe void ColumnsManaged<TOp>(KernelHost host, ArrayView<float> x, ArrayView<float> result, int rows)
        where TOp : struct, IReduceOp
    {
        int cols = (int)result.Length;
        int workers = CpuLoops.Workers(host);
        int width = Math.Min(Math.Max(((cols + workers - 1) / workers + 7) / 8 * 8, 8), ColumnBlock);
        int blocks = (cols + width - 1) / width;
        CpuLoops.For(host, blocks, new ColumnsBody<TOp>(CpuLoops.Ptr(x), CpuLoops.Ptr(result), rows, cols, width), rows * Math.Min(cols, width));
    }

    private const int ColumnBlock = 256;

    private readonly unsafe struct RowsBody<TOp>(float* x, float* result, int cols) : CpuLoops.IRange
        where TOp : struct, IReduceOp
    {
        public void Run(int start, int end)
        {
            int r = start;
            if (Avx.IsSupported && default(TOp).IsSum)
                r = EightRows(start, end);
            for (; r < end; r++)
            {
                float* row = x + ((long)r * cols);
                var acc = new Accumulator<TOp>(default(TOp).Identity);
                for (int c = 0; c < cols; c++)
                    acc.Add(default(TOp).Map(row[c]));
                result[r] = default(TOp).Finish(acc.Value, cols);
            }
        }

        // Eight rows at a time, one per lane: an 8 x 8 transpose turns eight row segments into
        // eight vectors of one column each, added in column order, so every lane is its row's
        // scalar chain (LaneCombine). Returns the first row left for the scalar loop.
        private int EightRows(int start, int end)
        {
            int r = start;

            // Sixteen rows as two independent vector chains: each chain's adds wait on the one
            // before (latency-bound), so two in flight nearly halve the time; every lane still adds
            // its row's columns in order. SixteenRows interleaves the two chains' adds: the same
            // adds run chain after chain measured 0.80-0.94 against 0.59-0.70 ms.
            for (; r + 16 <= end; r += 16)
                SixteenRows(r);

            for (; r + 8 <= end; r += 8)
            {
                float* p0 = x + ((long)r * cols);
                var value = Vector256.Create(default(TOp).Identity);
                var carry = Vector256<float>.Zero;
                int c = 0;
                for (; c + 8 <= cols; c += 8)
                {
                    Columns(p0 + c, out var v0, out var v1, out var v2, out var v3, out var v4, out var v5, out var v6, out var v7);
                    LaneCombine<TOp>.Add(ref value, ref carry, v0);
                    LaneCombine<TOp>.Add(ref value, ref carry, v1);
                    LaneCombine<TOp>.Add(ref value, ref carry, v2);
                    LaneCombine<TOp>.Add(ref value, ref carry, v3);
                    LaneCombine<TOp>.Add(ref value, ref carry, v4);
                    LaneCombine<TOp>.Add(ref value, ref carry, v5);
                    LaneCombine<TOp>.Add(ref value, ref carry, v6);
                    LaneCombine<TOp>.Add(ref value, ref carry, v7);
                }

                for (; c < cols; c++)
                {
                    LaneCombine<TOp>.Add(ref value, ref carry, Column(p0 + c));
                }

                for (int l = 0; l < 8; l++)
                    result[r + l] = default(TOp).Finish(value.GetElement(l), cols);
            }

            return r;
        }

        // Eight columns of eight rows from p: vector k holds column k of the rows (an 8 x 8 transpose).
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void Columns(float* p, out Vector256<float> v0, out Vector256<float> v1, out Vector256<float> v2, out Vector256<float> v3, out Vector256<float> v4, out Vector256<float> v5, out Vector256<float> v6, out Vector256<float> v7)
        {
            v0 = Vector256.Load(p);
            v1 = Vector256.Load(p + cols);
            v2 = Vector256.Load(p + (2L * cols));
            v3 = Vector256.Load(p + (3L * cols));
            v4 = Vector256.Load(p + (4L * cols));
            v5 = Vector256.Load(p + (5L * cols));
            v6 = Vector256.Load(p + (6L * cols));
            v7 = Vector256.Load(p + (7L * cols));
            Simd.Transpose(ref v0, ref v1, ref v2, ref v3, ref v4, ref v5, ref v6, ref v7);
        }

        // One column of eight rows from p.
        private Vector256<float> Column(float* p) => Vector256.Create(p[0], p[cols], p[2L * cols], p[3L * cols], p[4L * cols], p[5L * cols], p[6L * cols], p[7L * cols]);

        private void SixteenRows(int r)
        {
            float* p0 = x + ((long)r * cols), q0 = p0 + (8L * cols);
            var identity = Vector256.Create(default(TOp).Identity);
            var (value, other) = (identity, identity);
            var (carry, otherCarry) = (Vector256<float>.Zero, Vector256<float>.Zero);
            int c = 0;
            for (; c + 8 <= cols; c += 8)
            {
                Columns(p0 + c, out var v0, out var v1, out var v2, out var v3, out var v4, out var v5, out var v6, out var v7);
                Columns(q0 + c, out var w0, out var w1, out var w2, out var w3, out var w4, out var w5, out var w6, out var w7);
                LaneCombine<TOp>.Add(ref value, ref carry, v0);
                LaneCombine<TOp>.Add(ref other, ref otherCarry, w0);
                LaneCombine<TOp>.Add(ref value, ref carry, v1);
                LaneCombine<TOp>.Add(ref other, ref otherCarry, w1);
                LaneCombine<TOp>.Add(ref value, ref carry, v2);
                LaneCombine<TOp>.Add(ref other, ref otherCarry, w2);
                LaneCombine<TOp>.Add(ref value, ref carry, v3);
                LaneCombine<TOp>.Add(ref other, ref otherCarry, w3);
                LaneCombine<TOp>.Add(ref value, ref carry, v4);
                LaneCombine<TOp>.Add(ref other, ref otherCarry, w4);
                LaneCombine<TOp>.Add(ref value, ref carry, v5);
                LaneCombine<TOp>.Add(ref other, ref otherCarry, w5);
                LaneCombine<TOp>.Add(ref value, ref carry, v6);
                LaneCombine<TOp>.Add(ref other, ref otherCarry, w6);
                LaneCombine<TOp>.Add(ref value, ref carry, v7);
                LaneCombine<TOp>.Add(ref other, ref otherCarry, w7);
            }

            for (; c < cols; c++)
            {
                LaneCombine<TOp>.Add(ref value, ref carry, Column(p0 + c));
                LaneCombine<TOp>.Add(ref other, ref otherCarry, Column(q0 + c));
            }

            for (int l = 0; l < 8; l++)
            {
                result[r + l] = default(TOp).Finish(value.GetElement(l), cols);
                result[r + 8 + l] = default(TOp).Finish(other.GetElement(l), cols);
            }
        }
    }

    private readonly unsafe struct ColumnsBody<TOp>(float* x, float* result, int rows, int cols, int width) : CpuLoops.IRange
        where TOp : struct, IReduceOp
    {
        public void Run(int start, int end)
        {
            Span<Accumulator<TOp>> accs = stackalloc Accumulator<TOp>[ColumnBlock];
            Span<Vector256<float>> value = stackalloc Vector256<float>[ColumnBlock / 8];
            Span<Vector256<float>> carry = stackalloc Vector256<float>[ColumnBlock / 8];
            bool vector = Vector256.IsHardwareAccelerated && default(TOp).IsSum;
            for (int blk = start; blk < end; blk++)
            {
                int c0 = blk * width, w = Math.Min(width, cols - c0);

                // Columns are independent chains: eight adjacent ones per Vector256, with
                // Accumulator's operations per lane (LaneCombine), the rest one by one.
                int units = vector ? w / 8 : 0, j0 = units * 8;
                for (int j = j0; j < w; j++)
                    accs[j] = new Accumulator<TOp>(default(TOp).Identity);
                for (int r = 0; r < rows; r++)
                {
                    float* row = x + ((long)r * cols) + c0;
                    for (int j = j0; j < w; j++)
                        accs[j].Add(default(TOp).Map(row[j]));
                }

                // The vector columns first without the non-finite rule, then again with it if a
                // lane met ±∞ or NaN (LaneCombine.AddFinite).
                if (units > 0 && !VectorColumns(c0, units, value[..units], carry[..units], finiteOnly: true))
                    VectorColumns(c0, units, value[..units], carry[..units], finiteOnly: false);

                for (int u = 0; u < units; u++)
                {
                    for (int l = 0; l < 8; l++)
                        result[c0 + (u * 8) + l] = default(TOp).Finish(value[u].GetElement(l), rows);
                }

                for (int j = j0; j < w; j++)
                    result[c0 + j] = default(TOp).Finish(accs[j].Value, rows);
            }
        }

        // Columns [c0, c0 + 8 units) over every row; whether every lane ended finite.
        private bool VectorColumns(int c0, int units, Span<Vector256<float>> value, Span<Vector256<float>> carry, bool finiteOnly)
        {
            value.Fill(Vector256.Create(default(TOp).Identity));
            carry.Clear();
            for (int r = 0; r < rows; r++)
            {
                float* row = x + ((long)r * cols) + c0;
                for (int u = 0; u < units; u++)
                    LaneCombine<TOp>.Add(ref value[u], ref carry[u], Vector256.Load(row + (u * 8)), finiteOnly);
            }

            bool finite = true;
            foreach (var v in value)
                finite &= LaneCombine<TOp>.Finite(v);
            return finite;
        }
    }

    // Accumulator.Add for eight independent sums at once (IsSum operators, whose Map is x or x * x,
    // and MaxOp): the same TwoSum operations per lane, and the same rule that a non-finite partial
    // sum is kept as is with its carry frozen, so every lane is bitwise a scalar Accumulator.
    private static class LaneCombine<TOp>
        where TOp : struct, IReduceOp
    {
        private static readonly bool Square = typeof(TOp) == typeof(SumOfSquaresOp) || typeof(TOp) == typeof(L2NormOp);

        private static readonly bool Max = typeof(TOp) == typeof(MaxOp);

        /// <summary>AddFinite, or Add with the non-finite rule.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Add(ref Vector256<float> value, ref Vector256<float> carry, Vector256<float> v, bool finiteOnly)
        {
            if (finiteOnly)
                AddFinite(ref value, ref carry, v);
            else
                Add(ref value, ref carry, v);
        }

        /// <summary>Whether every lane is finite (after AddFinite: whether no lane met ±∞ or NaN).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static bool Finite(Vector256<float> v) => Vector256.LessThanAll(Vector256.Abs(v), Vector256.Create(float.PositiveInfinity));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Add(ref Vector256<float> value, ref Vector256<float> carry, Vector256<float> v)
        {
            if (Max)
            {
                // MaxOp.Combine per lane: a > v, or a NaN, keeps a.
                value = Vector256.ConditionalSelect(Vector256.GreaterThan(value, v) | ~Vector256.Equals(value, value), value, v);
                return;
            }

            if (Square)
                v *= v;
            var a = value;
            var t = a + v;
            var bp = t - a;
            var e = ((a - (t - bp)) + (v - bp)) + carry;
            var next = t + e;
            var finite = Vector256.LessThan(Vector256.Abs(t), Vector256.Create(float.PositiveInfinity));
            carry = Vector256.ConditionalSelect(finite, e - (next - t), carry);
            value = Vector256.ConditionalSelect(finite, next, t);
        }

        // Add's operations where every partial sum is finite: a sum that meets ±∞ or NaN ends NaN
        // (∞ - ∞ in the TwoSum), where Add would have kept it, so a caller that sees a non-finite
        // lane runs the slice again with Add. Five of the ten additions are written as FMAs with
        // a factor ±1 (x * 1 is exact, so each is the same one rounding as the plain addition):
        // the FMA units then share the work of the adders, which alone bound this loop.
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void AddFinite(ref Vector256<float> value, ref Vector256<float> carry, Vector256<float> v)
        {
            if (Max)
            {
                Add(ref value, ref carry, v);
                return;
            }

            if (Square)
                v *= v;
            var one = Vector256.Create(1f);
            var minusOne = Vector256.Create(-1f);
            var a = value;
            var t = Vector256.FusedMultiplyAdd(a, one, v);
            var bp = Vector256.FusedMultiplyAdd(a, minusOne, t);
            var e = ((a - (t - bp)) + Vector256.FusedMultiplyAdd(bp, minusOne, v)) + carry;
            var next = Vector256.FusedMultiplyAdd(t, one, e);
            carry = e - Vector256.FusedMultiplyAdd(t, minusOne, next);
            value = next;
        }
    }

    // A running combination; for sums a compensated (float-float) sum: the exact value _value +
    // _carry, |_carry| at most half an ulp of _value. Each step is Knuth's branch-free TwoSum of
    // _value and the term, whose error joins the carry, then a Fast2Sum folding the carry back
    // (DWPlusFP: relative error at most 2u² per step). Neumaier's variant of Kahan's sum never
    // folds its carry back, so it grows like n·u·Σ|x| (measured: 4e-5 relative error, about 650u,
    // on 2e6 terms of 0.1, where this rounds correctly).
    private struct Accumulator<TOp>
        where TOp : struct, IReduceOp
    {
        private float _value;
        private float _carry;

        public Accumulator(float identity)
        {
            _value = identity;
            _carry = 0f;
        }

        /// <summary>Resumes a sum from its value and carry.</summary>
        public Accumulator(float value, float carry)
        {
            _value = value;
            _carry = carry;
        }

        /// <summary>The combined value, rounded to float (the carry is below half an ulp of it).</summary>
        public readonly float Value => _value;

        /// <summary>Combines an already mapped value.</summary>
        public void Add(float v)
        {
            if (default(TOp).IsSum)
            {
                float t = _value + v;
                if (float.IsFinite(t))
                {
                    float bp = t - _value;
                    float e = (_value - (t - bp)) + (v - bp) + _carry;
                    _value = t + e;
                    _carry = e - (_value - t);
                }
                else
                {
                    // ±∞ or NaN: TwoSum of it gives NaN, which would turn a +∞ sum into NaN.
                    // Keep the plain float result; later terms cannot make it finite again.
                    _value = t;
                }
            }
            else
            {
                _value = default(TOp).Combine(_value, v);
            }
        }
    }

    // One set of definitions per operator (KernelCatalog compiles each for PTX and OpenCL).
    internal static readonly ReduceKernels<SumOp> SumKernels = new();
    internal static readonly ReduceKernels<MeanOp> MeanKernels = new();
    internal static readonly ReduceKernels<MaxOp> MaxKernels = new();
    internal static readonly ReduceKernels<SumOfSquaresOp> SumOfSquaresKernels = new();
    internal static readonly ReduceKernels<L2NormOp> L2NormKernels = new();

    // ---------------------------------------------------------------- launchers

    /// <summary>Scratch a Deterministic flat reduction of n elements needs on host: one partial per group (kernels) or chain (managed), at most MaxReduceGroups; 0 when n = 0.</summary>
    public static int ScratchLength(KernelHost host, long n)
    {
        ArgumentNullException.ThrowIfNull(host);
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        if (n == 0)
            return 0;
        long perPartial = host.RunsManaged ? 1 : host.Launch.ReduceGroupSize;
        return (int)Math.Min((n + perPartial - 1) / perPartial, Math.Max(1, host.Launch.MaxReduceGroups));
    }

    // The named reductions: an operator run by one of the three generic launchers below. Flat ones
    // take a scratch of ScratchLength elements in Deterministic mode (unused, possibly empty, in
    // Atomic mode); result must not overlap x or scratch.

    /// <summary>result[0] = Σ x (0 when x is empty).</summary>
    public static void Sum(KernelHost host, ArrayView<float> x, ArrayView<float> result, ArrayView<float> scratch, ReductionMode mode = ReductionMode.Deterministic) =>
        Flat(host, SumKernels, x, result, scratch, mode, nameof(Sum), false);

    /// <summary>result[0] = Σ x / n (NaN when x is empty, as PyTorch).</summary>
    public static void Mean(KernelHost host, ArrayView<float> x, ArrayView<float> result, ArrayView<float> scratch, ReductionMode mode = ReductionMode.Deterministic) =>
        Flat(host, MeanKernels, x, result, scratch, mode, nameof(Mean), false);

    /// <summary>result[0] = max x; NaN if any element is NaN (as PyTorch).</summary>
    public static void Max(KernelHost host, ArrayView<float> x, ArrayView<float> result, ArrayView<float> scratch, ReductionMode mode = ReductionMode.Deterministic) =>
        Flat(host, MaxKernels, x, result, scratch, mode, nameof(Max), true);

    /// <summary>result[0] = Σ x² (0 when x is empty).</summary>
    public static void SumOfSquares(KernelHost host, ArrayView<float> x, ArrayView<float> result, ArrayView<float> scratch, ReductionMode mode = ReductionMode.Deterministic) =>
        Flat(host, SumOfSquaresKernels, x, result, scratch, mode, nameof(SumOfSquares), false);

    /// <summary>result[0] = √(Σ x²) (0 when x is empty).</summary>
    public static void L2Norm(KernelHost host, ArrayView<float> x, ArrayView<float> result, ArrayView<float> scratch, ReductionMode mode = ReductionMode.Deterministic) =>
        Flat(host, L2NormKernels, x, result, scratch, mode, nameof(L2Norm), false);

    /// <summary>result[r] = Σ_c x[r, c] (0 for every row when C = 0).</summary>
    public static void SumRows(KernelHost host, ArrayView<float> x, int rows, int cols, ArrayView<float> result) =>
        Matrix(host, SumKernels, x, rows, cols, result, nameof(SumRows), false, columns: false);

    /// <summary>result[r] = mean_c x[r, c] (NaN for every row when C = 0).</summary>
    public static void MeanRows(KernelHost host, ArrayView<float> x, int rows, int cols, ArrayView<float> result) =>
        Matrix(host, MeanKernels, x, rows, cols, result, nameof(MeanRows), false, columns: false);

    /// <summary>result[r] = max_c x[r, c], NaN-propagating.</summary>
    public static void MaxRows(KernelHost host, ArrayView<float> x, int rows, int cols, ArrayView<float> result) =>
        Matrix(host, MaxKernels, x, rows, cols, result, nameof(MaxRows), true, columns: false);

    /// <summary>result[r] = Σ_c x[r, c]².</summary>
    public static void SumOfSquaresRows(KernelHost host, ArrayView<float> x, int rows, int cols, ArrayView<float> result) =>
        Matrix(host, SumOfSquaresKernels, x, rows, cols, result, nameof(SumOfSquaresRows), false, columns: false);

    /// <summary>result[r] = √(Σ_c x[r, c]²).</summary>
    public static void L2NormRows(KernelHost host, ArrayView<float> x, int rows, int cols, ArrayView<float> result) =>
        Matrix(host, L2NormKernels, x, rows, cols, result, nameof(L2NormRows), false, columns: false);

    /// <summary>result[c] = Σ_r x[r, c] (0 for every column when R = 0). BiasAdd's backward: dBias = SumColumns(dOut).</summary>
    public static void SumColumns(KernelHost host, ArrayView<float> x, int rows, int cols, ArrayView<float> result) =>
        Matrix(host, SumKernels, x, rows, cols, result, nameof(SumColumns), false, columns: true);

    /// <summary>result[c] = mean_r x[r, c] (NaN for every column when R = 0).</summary>
    public static void MeanColumns(KernelHost host, ArrayView<float> x, int rows, int cols, ArrayView<float> result) =>
        Matrix(host, MeanKernels, x, rows, cols, result, nameof(MeanColumns), false, columns: true);

    /// <summary>result[c] = max_r x[r, c], NaN-propagating.</summary>
    public static void MaxColumns(KernelHost host, ArrayView<float> x, int rows, int cols, ArrayView<float> result) =>
        Matrix(host, MaxKernels, x, rows, cols, result, nameof(MaxColumns), true, columns: true);

    /// <summary>result[c] = Σ_r x[r, c]².</summary>
    public static void SumOfSquaresColumns(KernelHost host, ArrayView<float> x, int rows, int cols, ArrayView<float> result) =>
        Matrix(host, SumOfSquaresKernels, x, rows, cols, result, nameof(SumOfSquaresColumns), false, columns: true);

    /// <summary>result[c] = √(Σ_r x[r, c]²).</summary>
    public static void L2NormColumns(KernelHost host, ArrayView<float> x, int rows, int cols, ArrayView<float> result) =>
        Matrix(host, L2NormKernels, x, rows, cols, result, nameof(L2NormColumns), false, columns: true);

    private static unsafe void Flat<TOp>(KernelHost host, ReduceKernels<TOp> k, ArrayView<float> x, ArrayView<float> result, ArrayView<float> scratch, ReductionMode mode, string op, bool emptyIsUndefined)
        where TOp : struct, IReduceOp
    {
        ArgumentNullException.ThrowIfNull(host);
        CheckMode(op, mode);
        Check.Fits32(op, x, nameof(x));
        Check.Length(op, result, nameof(result), 1, "a reduction to one value");
        int n = (int)x.Length;
        if (n == 0)
        {
            if (emptyIsUndefined)
                throw new ArgumentException($"{op}: x has 0 elements; the {op.ToLowerInvariant()} of an empty tensor is undefined (PyTorch raises too).", nameof(x));
            Elementwise.Fill(host, result, default(TOp).Finish(default(TOp).Identity, 0));
            return;
        }
        int partials = ScratchLength(host, n);
        if (mode == ReductionMode.Deterministic)
            Check.AtLeast(op, scratch, nameof(scratch), partials, $"a deterministic reduction of {n} elements (Reductions.ScratchLength)");
        if (host.RunsManaged)
        {
            // Scratch may be empty in Atomic mode: the chains then live here while the workers fill
            // them (CpuLoops.For returns when they are done).
            if (mode == ReductionMode.Atomic)
            {
                fixed (float* local = partials <= 1024 ? stackalloc float[partials] : new float[partials])
                    FlatManaged<TOp>(host, x, local, partials, result, n);
            }
            else
            {
                FlatManaged<TOp>(host, x, CpuLoops.Ptr(scratch), partials, result, n);
            }

            return;
        }

        CheckGroupSize(host, op);
        int group = host.Launch.ReduceGroupSize;
        var pass1 = new KernelConfig(partials, group);
        var pass2 = new KernelConfig(1, group);
        if (mode == ReductionMode.Atomic)
        {
            Elementwise.Fill(host, result, default(TOp).Identity);
            host.Load(k.Flat)(host.Stream, pass1, x, result, 1);
            host.Load(k.FlatCombine)(host.Stream, pass2, result, result, n);
            return;
        }

        var parts = scratch.SubView(0, partials);
        host.Load(k.Flat)(host.Stream, pass1, x, parts, 0);
        host.Load(k.FlatCombine)(host.Stream, pass2, parts, result, n);
    }

    // Rows (x (R, C) -> result (R)) or columns (-> result (C)).
    private static void Matrix<TOp>(KernelHost host, ReduceKernels<TOp> k, ArrayView<float> x, int rows, int cols, ArrayView<float> result, string op, bool emptyIsUndefined, bool columns)
        where TOp : struct, IReduceOp
    {
        ArgumentNullException.ThrowIfNull(host);
        CheckMatrix(op, x, rows, cols);
        var (outputs, length, what, along, alongName) = columns ? (cols, rows, "column", "R = 0 rows", nameof(rows)) : (rows, cols, "row", "C = 0 columns", nameof(cols));
        Check.Length(op, result, nameof(result), outputs, columns ? $"C = {cols} columns" : $"R = {rows} rows");
        if (outputs == 0)
            return;
        if (length == 0)
        {
            if (emptyIsUndefined)
                throw new ArgumentException($"{op}: each of the {outputs} {what}s has {along}; the max of an empty {what} is undefined (PyTorch raises too).", alongName);
            Elementwise.Fill(host, result, default(TOp).Finish(default(TOp).Identity, 0));
            return;
        }
        if (host.RunsManaged)
        {
            if (columns)
                ColumnsManaged<TOp>(host, x, result, rows);
            else
                RowsManaged<TOp>(host, x, result, cols);
            return;
        }

        CheckGroupSize(host, op);
        int group = host.Launch.ReduceGroupSize, lanes = ColumnLanes(group);
        if (columns)
            host.Load(k.Columns)(host.Stream, new KernelConfig((int)Math.Min((cols + lanes - 1L) / lanes, host.Launch.MaxGroups), group), x, result, rows);
        else
            host.Load(k.Rows)(host.Stream, new KernelConfig(Math.Min(rows, host.Launch.MaxGroups), group), x, result, cols);
    }

    private static void CheckMatrix(string op, ArrayView<float> x, int rows, int cols)
    {
        Check.Dimension(op, rows, nameof(rows));
        Check.Dimension(op, cols, nameof(cols));
        Check.Length(op, x, nameof(x), (long)rows * cols, $"(R, C) = ({rows}, {cols})");
        Check.Fits32(op, x, nameof(x));
    }

    private static void CheckMode(string op, ReductionMode mode)
    {
        if (mode is not (ReductionMode.Deterministic or ReductionMode.Atomic))
            throw new ArgumentOutOfRangeException(nameof(mode), mode, $"{op}: unknown reduction mode {(int)mode}.");
    }

    private static void CheckGroupSize(KernelHost host, string op)
    {
        int g = host.Launch.ReduceGroupSize;
        if (g < 1 || g > LaunchPolicy.MaxReduceGroupSize)
            throw new ArgumentOutOfRangeException(nameof(host), g, $"{op}: the launch policy's ReduceGroupSize is {g}, but the tree reductions hold at most LaunchPolicy.MaxReduceGroupSize = {LaunchPolicy.MaxReduceGroupSize} values in shared memory.");
    }
}

/// <summary>The kernels of one reduction operator: flat (both passes; pass 1 serves both modes), rows and columns.</summary>
internal sealed class ReduceKernels<TOp> : IKernelSet
    where TOp : struct, IReduceOp
{
    public readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, int>> Flat =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, int>(Reductions.FlatKernel<TOp>);

    public readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, int>> FlatCombine =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, int>(Reductions.FlatCombineKernel<TOp>);

    public readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, int>> Rows =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, int>(Reductions.RowsKernel<TOp>);

    public readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, int>> Columns =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, int>(Reductions.ColumnsKernel<TOp>);

    /// <inheritdoc/>
    public IEnumerable<KernelDef> Kernels => [Flat, FlatCombine, Rows, Columns];
}
