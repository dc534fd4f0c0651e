using System.Buffers;
using System.Runtime.CompilerServices;
using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// 2-D convolution (cross-correlation, as PyTorch), NCHW, groups = 1, zero padding:
//
//   y[n, o, oy, ox] = b[o] + sum_{c, i, j} w[o, c, i, j] * x[n, c, oy*sh - ph + i*dh, ox*sw - pw + j*dw]
//   x (N, C, H, W), w (O, C, kh, kw), b (O), y (N, O, Ho, Wo)
//   Ho = floor((H + 2 ph - dh (kh - 1) - 1) / sh) + 1, Wo likewise (PyTorch's formula)
//
// It runs as im2col + GEMM. With K = C kh kw and P = Ho Wo, image n's columns are the (K, P)
// matrix cols[n, k, p] = x[n, c, oy*sh - ph + i*dh, ox*sw - pw + j*dw] (0 in the padding), with
// k = (c kh + i) kw + j and p = oy Wo + ox. Then y_n (O, P) = w (O, K) cols_n (K, P): one GEMM per
// image, written straight into y's NCHW slice (no transpose).
//   Im2Col  reads 4 B of x per column entry (each x element about kh kw / (sh sw) times), writes 4 B per entry: N K P entries.
//   Col2Im  reads 4 B per column entry, writes 4 B per x element: N C H W outputs.
// FLOPs: 2 N O P K forward; backward 2 N O P K for dW plus 2 N O P K for dX.
//
// Backward (every output is OVERWRITTEN):
//   dW (O, K)   = sum_n dy_n (O, P) cols_n^T (P, K)  (GEMM with beta 0 for n = 0, beta 1 after: one sum inside one call)
//   dcols_n     = w^T (K, O) dy_n (O, P)
//   dx          = col2im(dcols): a GATHER. Each x element sums the column entries that copied it,
//                 in the fixed order (i, j), so the result is deterministic and needs no atomics.
//   db[o]       = sum over n, oy, ox of dy (Reductions, in the Functional layer as F.BiasAdd does).
//
// Why one GEMM per image rather than one batched GEMM over (K, N P): per image, y_n lands in NCHW
// order with no permute, the (K, P) operand of one image (225 KB at 32->64, 14x14) stays in L2
// between its im2col and its GEMM, and the cols layout stays (N, K, P) for every backend. The
// CPU accelerator (host.RunsManaged) runs the images in parallel instead of each GEMM: one image
// per task, im2col (or col2im) and a single-threaded CpuGemm fused per image. CpuGemm's result
// does not depend on its thread count, so Forward and BackwardInput equal the kernel path (Im2Col
// kernel, then per-image multithreaded GEMMs) bitwise. The measurements behind this choice are in
// docs/performance-history.md.
// dW sums over images, so the CPU path splits the batch into DwGroups fixed image groups (by N
// alone, never by thread count): each group accumulates its images' GEMMs in order into its own
// partial (the first into dW), then the partials are added in group order. Deterministic, but not
// bitwise equal to the kernel path's one running sum over all images.
// Managed Im2Col/Col2Im copy/add the same floats in the same order as the kernels (bitwise equal):
// col2im zeroes each x plane and adds the taps (i, j) in ascending order, so each x element still
// sums its own contributions in the kernel's fixed order.

/// <summary>
/// The geometry of a 2-D convolution: input (N, C, H, W), kernel (kh, kw), stride, padding,
/// dilation, and the output size (Ho, Wo) PyTorch gives. A kernel argument (plain int fields).
/// </summary>
public readonly struct Conv2dGeometry
{
    /// <summary>Batch N and input channels C.</summary>
    public readonly int N, C;

    /// <summary>Input height H and width W.</summary>
    public readonly int H, W;

    /// <summary>Kernel height kh and width kw.</summary>
    public readonly int KH, KW;

    /// <summary>Vertical and horizontal stride (sh, sw).</summary>
    public readonly int SH, SW;

    /// <summary>Zero padding (ph, pw): ph at the top and bottom, pw at the left and right.</summary>
    public readonly int PH, PW;

    /// <summary>Vertical and horizontal dilation (dh, dw).</summary>
    public readonly int DH, DW;

    /// <summary>Output height Ho = floor((H + 2 ph - dh (kh - 1) - 1) / sh) + 1 and width Wo alike.</summary>
    public readonly int HO, WO;

    /// <summary>
    /// The geometry of input (n, c, h, w) (each 0 or more), kernel (kh, kw), stride (sh, sw),
    /// padding (ph, pw) (0 or more) and dilation (dh, dw) (kernel, stride, dilation at least 1),
    /// with its output size.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A size is negative, a kernel side, stride or dilation is below 1.</exception>
    /// <exception cref="ArgumentException">The dilated kernel is larger than the padded input (output size below 1).</exception>
    public Conv2dGeometry(int n, int c, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw)
    {
        const string op = nameof(Conv2d);
        Check.Dimension(op, n, nameof(n));
        Check.Dimension(op, c, nameof(c));
        Check.Dimension(op, h, nameof(h));
        Check.Dimension(op, w, nameof(w));
        Check.Dimension(op, kh, nameof(kh), allowZero: false);
        Check.Dimension(op, kw, nameof(kw), allowZero: false);
        Check.Dimension(op, sh, "stride.H", allowZero: false);
        Check.Dimension(op, sw, "stride.W", allowZero: false);
        Check.Dimension(op, ph, "padding.H");
        Check.Dimension(op, pw, "padding.W");
        Check.Dimension(op, dh, "dilation.H", allowZero: false);
        Check.Dimension(op, dw, "dilation.W", allowZero: false);
        long spanH = ((long)dh * (kh - 1)) + 1, spanW = ((long)dw * (kw - 1)) + 1;
        long ho = ((h + (2L * ph) - spanH) / sh) + 1, wo = ((w + (2L * pw) - spanW) / sw) + 1;
        // Compare before dividing: C# division truncates toward zero, so a slightly negative numerator would give 1.
        if (h + (2L * ph) < spanH || w + (2L * pw) < spanW)
            throw new ArgumentException($"{op}: the dilated kernel covers (H, W) = ({spanH}, {spanW}) (kernel ({kh}, {kw}), dilation ({dh}, {dw})) but the padded input is only ({h + (2L * ph)}, {w + (2L * pw)}) (input ({h}, {w}), padding ({ph}, {pw})); the output would be empty.");
        (N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW) = (n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw);
        HO = checked((int)ho);
        WO = checked((int)wo);
    }

    /// <summary>Rows of one image's column matrix: K = C kh kw.</summary>
    public int K => C * KH * KW;

    /// <summary>Output pixels per channel: P = Ho Wo.</summary>
    public int P => HO * WO;

    /// <summary>Elements of x: N C H W.</summary>
    public long InputLength => (long)N * C * H * W;

    /// <summary>Elements of the column buffer of the whole batch: N K P.</summary>
    public long ColumnsLength => (long)N * C * KH * KW * HO * WO;

    /// <summary>Elements of y for <paramref name="outChannels"/> output channels O: N O Ho Wo.</summary>
    public long OutputLength(int outChannels) => (long)N * outChannels * HO * WO;

    /// <inheritdoc/>
    public override string ToString() =>
        $"x (N, C, H, W) = ({N}, {C}, {H}, {W}), kernel ({KH}, {KW}), stride ({SH}, {SW}), padding ({PH}, {PW}), dilation ({DH}, {DW}), output ({HO}, {WO})";
}

/// <summary>2-D convolution (NCHW, groups 1) by im2col + GEMM: ILGPU kernels and checked launchers.</summary>
internal static partial class Conv2d
{
    // Fixed image groups of the CPU path's dW (by N alone, so the sum's order never depends on the thread count).
    private const int DwGroups = 8;

    // ---------------------------------------------------------------- ILGPU kernels

    // Kernel: im2col x (N, C, H, W) -> cols (N, K, P), one column entry per work item.
    public static void Im2ColKernel(ArrayView<float> x, ArrayView<float> cols, Conv2dGeometry g)
    {
        int total = cols.IntLength;
        int p = g.HO * g.WO;
        int taps = g.KH * g.KW;
        int k = g.C * taps;
        // Grid and Group reads are thread-local on the CPU accelerator: read them once.
        int stride = Grid.DimX * Group.DimX;
        for (int e = Grid.GlobalIndex.X; e < total; e += stride)
        {
            // Integer division dominates this kernel on the CPU accelerator: one per index, remainders by multiply-subtract.
            int q = e / p;
            int pix = e - (q * p);
            int n = q / k;
            int row = q - (n * k);
            int c = row / taps;
            int tap = row - (c * taps);
            int oy = pix / g.WO;
            int i = tap / g.KW;
            int iy = (oy * g.SH) - g.PH + (i * g.DH);
            int ix = ((pix - (oy * g.WO)) * g.SW) - g.PW + ((tap - (i * g.KW)) * g.DW);
            bool inside = iy >= 0 & iy < g.H & ix >= 0 & ix < g.W;
            cols[e] = inside ? x[((((n * g.C) + c) * g.H) + iy) * g.W + ix] : 0f;
        }
    }

    // Kernel: col2im cols (N, K, P) -> x (N, C, H, W) overwritten, a gather, one x element per work
    // item, summing its column entries in the fixed order (i, j): deterministic, no atomics.
    public static void Col2ImKernel(ArrayView<float> cols, ArrayView<float> x, Conv2dGeometry g)
    {
        int total = x.IntLength;
        int p = g.HO * g.WO;
        int k = g.C * g.KH * g.KW;
        int stride = Grid.DimX * Group.DimX;
        for (int e = Grid.GlobalIndex.X; e < total; e += stride)
        {
            int q = e / g.W;
            int ix = e - (q * g.W);
            int nc = q / g.H;
            int iy = q - (nc * g.H);
            int n = nc / g.C;
            int c = nc - (n * g.C);
            int rowBase = (n * k) + (c * g.KH * g.KW);
            float sum = 0f;
            for (int i = 0; i < g.KH; i++)
            {
                // Tap i reads x row iy from output row oy when one exists.
                int oy = SlidingWindow.OutputOfTap(iy, i, g.SH, g.PH, g.DH, g.HO);
                for (int j = 0; j < g.KW && oy >= 0; j++)
                {
                    int ox = SlidingWindow.OutputOfTap(ix, j, g.SW, g.PW, g.DW, g.WO);
                    if (ox >= 0)
                        sum += cols[((rowBase + (i * g.KW) + j) * p) + (oy * g.WO) + ox];
                }
            }

            x[e] = sum;
        }
    }

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, Conv2dGeometry>> Im2ColDef =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, Conv2dGeometry>(Im2ColKernel);

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, Conv2dGeometry>> Col2ImDef =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, Conv2dGeometry>(Col2ImKernel);

    // ---------------------------------------------------------------- launchers

    /// <summary>cols (N, K, P) = im2col(x (N, C, H, W)), overwritten; padding entries are 0.</summary>
    public static unsafe void Im2Col(KernelHost host, ArrayView<float> x, ArrayView<float> cols, Conv2dGeometry g)
    {
        ArgumentNullException.ThrowIfNull(host);
        CheckIo(nameof(Conv2d) + "." + nameof(Im2Col), x, nameof(x), cols, nameof(cols), g);
        if (g.ColumnsLength == 0)
            return;
        if (host.RunsManaged)
            CpuLoops.For(host, (long)g.N * g.C, new ColumnWalk<Im2ColRows>(CpuLoops.Ptr(x), CpuLoops.Ptr(cols), g, default), g.KH * g.KW * g.P);
        else
            host.Load(Im2ColDef)(host.Stream, host.Launch.GridStride(g.ColumnsLength), x, cols, g);
    }

    /// <summary>x (N, C, H, W) = col2im(cols (N, K, P)), overwritten: each element is the sum of the column entries im2col copies from it (0 where none does).</summary>
    public static unsafe void Col2Im(KernelHost host, ArrayView<float> cols, ArrayView<float> x, Conv2dGeometry g)
    {
        ArgumentNullException.ThrowIfNull(host);
        CheckIo(nameof(Conv2d) + "." + nameof(Col2Im), x, nameof(x), cols, nameof(cols), g);
        if (g.InputLength == 0)
            return;
        if (g.ColumnsLength == 0)
            Elementwise.Fill(host, x, 0f);
        else if (host.RunsManaged)
            CpuLoops.For(host, (long)g.N * g.C, new ColumnWalk<Col2ImRows>(CpuLoops.Ptr(x), CpuLoops.Ptr(cols), g, default), g.KH * g.KW * g.P);
        else
            host.Load(Col2ImDef)(host.Stream, host.Launch.GridStride(g.InputLength), cols, x, g);
    }

    /// <summary>
    /// y (N, O, Ho, Wo) = conv2d(x (N, C, H, W), w (O, C, kh, kw)) + b (O, or empty for none),
    /// overwritten (y overlaps no other view): im2col into cols (N, K, P), kept for the backward,
    /// then one GEMM per image, then the channel bias.
    /// </summary>
    public static void Forward(KernelHost host, ArrayView<float> x, ArrayView<float> weight, ArrayView<float> bias, ArrayView<float> y, ArrayView<float> cols, Conv2dGeometry g, int outChannels) =>
        Forward(nameof(Conv2d) + "." + nameof(Forward), host, x, weight, bias, y, cols, default, g, outChannels);

    /// <summary>dW (O, C, kh, kw) = sum over n of dy_n cols_n^T, overwritten (the first image's GEMM has beta 0); cols from Forward or Im2Col.</summary>
    public static void BackwardWeight(KernelHost host, ArrayView<float> dy, ArrayView<float> cols, ArrayView<float> dw, Conv2dGeometry g, int outChannels) =>
        BackwardWeight(nameof(Conv2d) + "." + nameof(BackwardWeight), host, dy, cols, nameof(cols), dw, g, outChannels);

    /// <summary>dx (N, C, H, W) = col2im(w^T dy_n for each image), overwritten; dcols (N, K, P) is an overwritten workspace.</summary>
    public static void BackwardInput(KernelHost host, ArrayView<float> weight, ArrayView<float> dy, ArrayView<float> dcols, ArrayView<float> dx, Conv2dGeometry g, int outChannels) =>
        BackwardInput(nameof(Conv2d) + "." + nameof(BackwardInput), host, weight, dy, dcols, dx, g, outChannels);

    // The float launchers (T float) and their binary16-operand forms (T Half, Conv2dHalf.cs) share
    // these: the checks, the managed per-image path, or the launchers in sequence.
    private static unsafe void Forward<T>(string op, KernelHost host, ArrayView<float> x, ArrayView<T> weight, ArrayView<float> bias, ArrayView<float> y, ArrayView<float> cols, ArrayView<Half> colsHalf, Conv2dGeometry g, int outChannels)
        where T : unmanaged
    {
        bool half = typeof(T) == typeof(Half);
        ArgumentNullException.ThrowIfNull(host);
        CheckIo(op, x, nameof(x), cols, nameof(cols), g);
        if (half)
            CheckColumns(op, colsHalf, nameof(colsHalf), g);
        CheckWeight(op, weight, y, nameof(y), bias, g, outChannels);
        long perY = (long)outChannels * g.P, perCols = (long)g.K * g.P;
        if (!half && (perY == 0 || g.N == 0))
            return;
        if (Managed(host, g, outChannels))
        {
            float* w = half ? WideWeight(host, weight.Cast<Half>()) : CpuLoops.Ptr(weight.Cast<float>());
            CpuLoops.For(host, g.N, new ForwardBody(CpuLoops.Ptr(x), w, CpuLoops.Ptr(bias), CpuLoops.Ptr(y), CpuLoops.Ptr(cols), (ushort*)CpuLoops.Ptr(colsHalf), g, outChannels), ImageWork(g, outChannels));
            return;
        }

        Im2Col(host, x, cols, g);
        if (half)
            Cast.ToHalf(host, cols, colsHalf);
        if (perY == 0 || g.N == 0)
            return;
        var b = half ? colsHalf.Cast<T>() : cols.Cast<T>();
        for (int n = 0; n < g.N; n++)
            ImageGemm(host, false, false, outChannels, g.P, g.K, weight, b.SubView(n * perCols, perCols), 0f, y.SubView(n * perY, perY));
        if (half)
            GemmHalf.RoundToHalfInPlace(host, y);
        if (bias.Length != 0)
            BiasAdd.ForwardChannels(host, y, bias, y, g.N, outChannels, g.P);
    }

    private static unsafe void BackwardWeight<T>(string op, KernelHost host, ArrayView<T> dy, ArrayView<T> cols, string colsName, ArrayView<float> dw, Conv2dGeometry g, int outChannels)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(host);
        CheckColumns(op, cols, colsName, g);
        CheckWeight(op, dw, dy, nameof(dy), default, g, outChannels);
        long perY = (long)outChannels * g.P, perCols = (long)g.K * g.P;
        if (g.N == 0 || g.P == 0)
            Elementwise.Fill(host, dw, 0f);
        else if (Managed(host, g, outChannels) && typeof(T) == typeof(Half))
            BackwardWeightManaged(host, null, null, (Half*)CpuLoops.Ptr(dy), (Half*)CpuLoops.Ptr(cols), dw, g, outChannels, transposeNarrow: true);
        else if (Managed(host, g, outChannels))
            BackwardWeightManaged(host, (float*)CpuLoops.Ptr(dy), (float*)CpuLoops.Ptr(cols), null, null, dw, g, outChannels, transposeNarrow: true);
        else
        {
            for (int n = 0; n < g.N; n++)
                ImageGemm(host, false, true, outChannels, g.K, g.P, dy.SubView(n * perY, perY), cols.SubView(n * perCols, perCols), n == 0 ? 0f : 1f, dw);
        }
    }

    private static unsafe void BackwardInput<T>(string op, KernelHost host, ArrayView<T> weight, ArrayView<T> dy, ArrayView<float> dcols, ArrayView<float> dx, Conv2dGeometry g, int outChannels)
        where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(host);
        CheckIo(op, dx, nameof(dx), dcols, nameof(dcols), g);
        CheckWeight(op, weight, dy, nameof(dy), default, g, outChannels);
        long perY = (long)outChannels * g.P, perCols = (long)g.K * g.P;
        if (Managed(host, g, outChannels))
        {
            bool half = typeof(T) == typeof(Half);
            float* w = half ? WideWeight(host, weight.Cast<Half>()) : CpuLoops.Ptr(weight.Cast<float>());
            var body = new BackwardInputBody(w, half ? null : (float*)CpuLoops.Ptr(dy), half ? (Half*)CpuLoops.Ptr(dy) : null, CpuLoops.Ptr(dcols), CpuLoops.Ptr(dx), g, outChannels);
            CpuLoops.For(host, g.N, body, ImageWork(g, outChannels));
            return;
        }

        for (int n = 0; n < g.N && perCols != 0; n++)
            ImageGemm(host, true, false, g.K, g.P, outChannels, weight, dy.SubView(n * perY, perY), 0f, dcols.SubView(n * perCols, perCols));
        Col2Im(host, dcols, dx, g);
    }

    // One image's GEMM (alpha 1): Gemm for float operands, GemmHalf for binary16 ones.
    private static void ImageGemm<T>(KernelHost host, bool transA, bool transB, int m, int n, int k, ArrayView<T> a, ArrayView<T> b, float beta, ArrayView<float> c)
        where T : unmanaged
    {
        if (typeof(T) == typeof(Half))
            GemmHalf.Run(host, transA, transB, m, n, k, 1f, a.Cast<Half>(), b.Cast<Half>(), beta, c);
        else
            Gemm.Run(host, transA, transB, m, n, k, 1f, a.Cast<float>(), b.Cast<float>(), beta, c);
    }

    // The CPU accelerator's per-image path needs a non-degenerate GEMM (CpuGemm takes K >= 1);
    // degenerate shapes take the kernel path, whose launchers handle them.
    private static bool Managed(KernelHost host, Conv2dGeometry g, int outChannels) =>
        host.RunsManaged && CpuGemm.IsSupported && g.N > 0 && g.K > 0 && g.P > 0 && outChannels > 0;

    // Work of one image (GEMM multiply-adds plus the columns), so CpuLoops.For splits only batches worth a thread.
    private static int ImageWork(Conv2dGeometry g, int outChannels) =>
        (int)Math.Min(int.MaxValue, ((long)g.K * g.P * outChannels) + ((long)g.K * g.P));

    // transposeNarrow: whether a narrow kernel accumulates dW^T (the default; tests compare both ways bitwise).
    internal static unsafe void BackwardWeightManaged(KernelHost host, ArrayView<float> dy, ArrayView<float> cols, ArrayView<float> dw, Conv2dGeometry g, int outChannels, bool transposeNarrow = true) =>
        BackwardWeightManaged(host, CpuLoops.Ptr(dy), CpuLoops.Ptr(cols), null, null, dw, g, outChannels, transposeNarrow);

    // dW over DwGroups fixed image groups, float operands (dy, cols) or binary16 ones (dyHalf,
    // colsHalf, given): each group sums its images into its own partial (the first into dW), then
    // the partials are added in group order.
    private static unsafe void BackwardWeightManaged(KernelHost host, float* dy, float* cols, Half* dyHalf, Half* colsHalf, ArrayView<float> dw, Conv2dGeometry g, int outChannels, bool transposeNarrow)
    {
        int groups = Math.Min(g.N, DwGroups);
        int len = outChannels * g.K;
        var partials = groups > 1 ? ArrayPool<float>.Shared.Rent((groups - 1) * len) : [];
        try
        {
            fixed (float* pp = partials)
            {
                float* dwp = CpuLoops.Ptr(dw);
                var body = new WeightGroupBody(dy, cols, dyHalf, colsHalf, dwp, pp, groups, g, outChannels, transposeNarrow);
                CpuLoops.For(host, groups, body, (int)Math.Min(int.MaxValue, ImageWork(g, outChannels) * (long)(g.N / groups)));
                for (int q = 1; q < groups; q++)
                    CpuLoops.Zip(dwp, pp + ((long)(q - 1) * len), dwp, 0, len, default(AddOp));
            }
        }
        finally
        {
            if (groups > 1)
                ArrayPool<float>.Shared.Return(partials);
        }
    }

    // Output pixels ox in [lo, hi) of tap column offset off = j dw - pw read input columns ix = ox sw + off inside [0, W).
    private static (int Lo, int Hi) InsideColumns(Conv2dGeometry g, int j)
    {
        int off = (j * g.DW) - g.PW;
        int lo = off >= 0 ? 0 : (-off + g.SW - 1) / g.SW;
        int last = g.W - 1 - off;
        int hi = last < 0 ? 0 : Math.Min(g.WO, (last / g.SW) + 1);
        return (Math.Min(lo, hi), hi);
    }

    // The walk of im2col and col2im over the planes [start, end) of x (plane q = n C + c): for each
    // tap (i, j) in ascending order and each output row oy, the row's WO column entries and, where
    // input row iy lies inside the plane, the input row at the tap's column offset with the output
    // columns [lo, hi) that read inside it (null where iy is outside).
    private readonly unsafe struct ColumnWalk<TRows>(float* x, float* cols, Conv2dGeometry g, TRows rows) : CpuLoops.IRange
        where TRows : struct, IColumnRows
    {
        public void Run(int start, int end)
        {
            int plane = g.H * g.W;
            for (int q = start; q < end; q++)
            {
                int n = q / g.C, c = q - (n * g.C);
                float* xp = x + ((long)q * plane);
                rows.Plane(xp, plane);
                for (int i = 0; i < g.KH; i++)
                {
                    for (int j = 0; j < g.KW; j++)
                    {
                        float* colsTap = cols + ((((long)n * g.K) + (((c * g.KH) + i) * g.KW) + j) * g.P);
                        var (lo, hi) = InsideColumns(g, j);
                        int off = (j * g.DW) - g.PW;
                        for (int oy = 0; oy < g.HO; oy++)
                        {
                            int iy = (oy * g.SH) - g.PH + (i * g.DH);
                            bool inside = iy >= 0 && iy < g.H && lo < hi;
                            rows.Row(colsTap + ((long)oy * g.WO), inside ? xp + ((long)iy * g.W) + off : null, lo, hi, g.SW, g.WO);
                        }
                    }
                }
            }
        }
    }

    // What the walk does with a plane and with each (column row, input row) pair.
    private unsafe interface IColumnRows
    {
        void Plane(float* xp, int plane);

        void Row(float* col, float* xRow, int lo, int hi, int sw, int wo);
    }

    // im2col: the kernel's copies, with the padding ranges (and rows outside the plane) as 0.
    private readonly unsafe struct Im2ColRows : IColumnRows
    {
        public void Plane(float* xp, int plane)
        {
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Row(float* col, float* xRow, int lo, int hi, int sw, int wo)
        {
            if (xRow == null)
            {
                new Span<float>(col, wo).Clear();
                return;
            }

            new Span<float>(col, lo).Clear();
            if (sw == 1)
            {
                new ReadOnlySpan<float>(xRow + lo, hi - lo).CopyTo(new Span<float>(col + lo, hi - lo));
            }
            else
            {
                for (int ox = lo; ox < hi; ox++)
                    col[ox] = xRow[ox * sw];
            }

            new Span<float>(col + hi, wo - hi).Clear();
        }
    }

    // col2im: zero the plane, then add tap (i, j) after tap (i, j) in ascending order. For one tap
    // each x element gets at most one entry (ox -> ix is one to one), so every element sums its
    // entries in the kernel's (i, j) order, starting from 0.
    private readonly unsafe struct Col2ImRows : IColumnRows
    {
        public void Plane(float* xp, int plane) => new Span<float>(xp, plane).Clear();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Row(float* col, float* xRow, int lo, int hi, int sw, int wo)
        {
            if (xRow == null)
                return;
            if (sw == 1)
            {
                CpuLoops.Zip(xRow + lo, col + lo, xRow + lo, 0, hi - lo, default(AddOp));
                return;
            }

            for (int ox = lo; ox < hi; ox++)
                xRow[ox * sw] += col[ox];
        }
    }

    // The widened operands of the managed binary16 paths, per worker thread: GEMM operands A and B of one image.
    [ThreadStatic]
    private static float[]? _wideA;

    [ThreadStatic]
    private static float[]? _wideB;

    // Images [start, end): im2col of image n, y_n = w cols_n (a single-threaded CpuGemm), then the
    // channel bias. With colsHalf (the binary16 forward; w holds float(half(w))), the columns are
    // also cast to colsHalf, the GEMM reads them widened back exactly, and y_n is rounded to fp16
    // values before the bias: per element the generic path's operations.
    private readonly unsafe struct ForwardBody(float* x, float* w, float* bias, float* y, float* cols, ushort* colsHalf, Conv2dGeometry g, int outChannels) : CpuLoops.IRange
    {
        public void Run(int start, int end)
        {
            long perY = (long)outChannels * g.P, perCols = (long)g.K * g.P;
            var im2col = new ColumnWalk<Im2ColRows>(x, cols, g, default);
            for (int n = start; n < end; n++)
            {
                im2col.Run(n * g.C, (n + 1) * g.C);
                float* b = cols + (n * perCols);
                if (colsHalf != null)
                {
                    new Cast.ToHalfBody(cols, colsHalf).Run((int)(n * perCols), (int)((n + 1) * perCols));
                    b = GemmHalf.WideScratch(ref _wideB, perCols);
                    GemmHalf.Widen((Half*)(colsHalf + (n * perCols)), b, perCols);
                }

                float* yn = y + (n * perY);
                CpuGemm.Run(false, false, outChannels, g.P, g.K, 1f, w, b, 0f, yn, 1);
                if (colsHalf != null)
                    CpuLoops.Map(yn, yn, 0, (int)perY, default(RoundToHalfOp));
                if (bias != null)
                    new CpuLoops.BiasPlanesBody(yn, bias, yn, outChannels, g.P).Run(0, outChannels);
            }
        }
    }

    // Images [start, end): dcols_n = w^T dy_n (a single-threaded CpuGemm; dy_n widened from dyHalf
    // when given), then col2im of image n.
    private readonly unsafe struct BackwardInputBody(float* w, float* dy, Half* dyHalf, float* dcols, float* dx, Conv2dGeometry g, int outChannels) : CpuLoops.IRange
    {
        public void Run(int start, int end)
        {
            long perY = (long)outChannels * g.P, perCols = (long)g.K * g.P;
            var col2im = new ColumnWalk<Col2ImRows>(dx, dcols, g, default);
            for (int n = start; n < end; n++)
            {
                float* b = dy + (n * perY);
                if (dyHalf != null)
                {
                    b = GemmHalf.WideScratch(ref _wideB, perY);
                    GemmHalf.Widen(dyHalf + (n * perY), b, perY);
                }

                CpuGemm.Run(true, false, g.K, g.P, outChannels, 1f, w, b, 0f, dcols + (n * perCols), 1);
                col2im.Run(n * g.C, (n + 1) * g.C);
            }
        }
    }

    // Image groups [start, end) of dW: group q sums images [q N / groups, (q + 1) N / groups) in
    // order (the first GEMM with beta 0) into dW for q = 0 and into partial q - 1 otherwise. The
    // operands are dy and cols, or dyHalf and colsHalf (when given) widened exactly per image.
    private readonly unsafe struct WeightGroupBody(float* dy, float* cols, Half* dyHalf, Half* colsHalf, float* dw, float* partials, int groups, Conv2dGeometry g, int outChannels, bool transposeNarrow) : CpuLoops.IRange
    {
        public void Run(int start, int end)
        {
            long perY = (long)outChannels * g.P, perCols = (long)g.K * g.P, len = (long)outChannels * g.K;

            // A narrow kernel (K columns of dW, e.g. 9 for one input channel) would fill a 16- or
            // 32-wide micro-panel a third: accumulate dW^T = sum_n cols_n dy_n^T instead (K rows,
            // O columns) and transpose once. Each element is the same products in the same order
            // (a*b = b*a exactly), so the result is bitwise the untransposed one.
            bool transposed = transposeNarrow && g.K * 2 <= outChannels && len <= 4096;
            float* t = stackalloc float[transposed ? (int)len : 0];
            for (int q = start; q < end; q++)
            {
                float* into = q == 0 ? dw : partials + ((q - 1) * len);
                int n0 = (int)((long)q * g.N / groups), n1 = (int)((long)(q + 1) * g.N / groups);
                for (int n = n0; n < n1; n++)
                {
                    float* a = dy + (n * perY), b = cols + (n * perCols);
                    if (dyHalf != null)
                    {
                        a = GemmHalf.WideScratch(ref _wideA, perY);
                        b = GemmHalf.WideScratch(ref _wideB, perCols);
                        GemmHalf.Widen(dyHalf + (n * perY), a, perY);
                        GemmHalf.Widen(colsHalf + (n * perCols), b, perCols);
                    }

                    if (transposed)
                        CpuGemm.Run(false, true, g.K, outChannels, g.P, 1f, b, a, n == n0 ? 0f : 1f, t, 1);
                    else
                        CpuGemm.Run(false, true, outChannels, g.K, g.P, 1f, a, b, n == n0 ? 0f : 1f, into, 1);
                }

                if (transposed && n1 > n0)
                {
                    for (int k = 0; k < g.K; k++)
                    {
                        for (int o = 0; o < outChannels; o++)
                            into[((long)o * g.K) + k] = t[((long)k * outChannels) + o];
                    }
                }
            }
        }
    }

    // x (N, C, H, W) and the columns (N, K, P), as the launchers that take both check them.
    private static void CheckIo(string op, ArrayView<float> x, string xName, ArrayView<float> cols, string colsName, Conv2dGeometry g)
    {
        Check.Length(op, x, xName, g.InputLength, $"(N, C, H, W) = ({g.N}, {g.C}, {g.H}, {g.W})");
        Check.Fits32(op, x, xName);
        CheckColumns(op, cols, colsName, g);
    }

    private static void CheckColumns<T>(string op, ArrayView<T> cols, string colsName, Conv2dGeometry g)
        where T : unmanaged
    {
        Check.Length(op, cols, colsName, g.ColumnsLength, $"(N, C kh kw, Ho Wo) = ({g.N}, {g.K}, {g.P}) for {g}");
        Check.Fits32(op, cols, colsName);
    }

    // The weight (O, C, kh, kw) or its gradient, the output y (N, O, Ho, Wo) or its gradient, and
    // the bias (O) when given, in either precision.
    private static void CheckWeight<TW, TY>(string op, ArrayView<TW> weight, ArrayView<TY> y, string yName, ArrayView<float> bias, Conv2dGeometry g, int outChannels)
        where TW : unmanaged
        where TY : unmanaged
    {
        Check.Dimension(op, outChannels, nameof(outChannels));
        Check.Length(op, weight, nameof(weight), (long)outChannels * g.K, $"(O, C, kh, kw) = ({outChannels}, {g.C}, {g.KH}, {g.KW})");
        Check.Length(op, y, yName, g.OutputLength(outChannels), $"(N, O, Ho, Wo) = ({g.N}, {outChannels}, {g.HO}, {g.WO})");
        Check.Fits32(op, y, yName);
        if (bias.Length != 0)
            Check.Length(op, bias, nameof(bias), outChannels, $"(O) = ({outChannels})");
    }
}
