using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using ILGPU.Algorithms;
using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// 2-D pooling over NCHW planes, PyTorch semantics (ceil_mode false).
//
//   x (N,C,H,W), y (N,C,OH,OW), OH = floor((H + 2 PH - DH (KH - 1) - 1) / SH) + 1 (OW alike).
//   Window of output (oh, ow): rows oh SH - PH + r DH for r < KH, columns ow SW - PW + s DW for s < KW;
//   taps outside the plane are padding (-inf for max, 0 for average).
//
//   MaxPool2d   y = max over the window; argmax = flat index ih W + iw of the first maximum in
//               row-major window order (PyTorch CPU's return_indices; a NaN wins, the last one).
//               reads KH KW x 4 B, writes 4 B of y + 4 B of argmax per output.
//   MaxPool2d backward (gather): dx[i] = Σ dy[o] over the outputs o whose window contains i and
//               whose argmax is i. (A window whose taps all miss the plane, possible with dilation,
//               outputs a constant -inf and passes no gradient back.)
//               reads at most KH KW (4 B dy + 4 B argmax), writes 4 B per input.
//   AvgPool2d   y = Σ window / divisor, divisor = KH KW (count_include_pad, the default) or the
//               number of taps inside the plane. Dilation 1 (PyTorch has none for average pooling).
//               reads KH KW x 4 B, writes 4 B per output.
//   AvgPool2d backward (gather): dx[i] = Σ dy[o] / divisor(o) over the windows that contain i.
//   GlobalAvgPool  y[n, c] = mean over H W of x[n, c]; x (N,C,S) with S = H W, y (N,C).
//               reads S x 4 B, writes 4 B per output; backward dx[n, c, s] = dy[n, c] / S, 4 B each way.
//
// Every backward OVERWRITES dx. The max and average backwards gather instead of scattering: each
// input element sums its own contributions, so no two threads write one address, nothing needs
// float atomics, and the sum runs in a fixed order (outputs in row-major order, as the scatter
// references add them), so the result is deterministic and equals the reference bit for bit.
// On the CPU accelerator every launcher runs managed code instead (see "managed CPU paths"),
// bitwise equal to the kernels.

/// <summary>
/// The geometry of a 2-D pooling over NCHW: sizes, window, stride, padding and dilation, with the
/// output size they imply. Built and validated by <see cref="Create"/>; passed to kernels as is.
/// </summary>
/// <param name="N">Batch N.</param>
/// <param name="C">Channels C.</param>
/// <param name="H">Input height H.</param>
/// <param name="W">Input width W.</param>
/// <param name="OutH">Output height OH.</param>
/// <param name="OutW">Output width OW.</param>
/// <param name="KernelH">Window height KH.</param>
/// <param name="KernelW">Window width KW.</param>
/// <param name="StrideH">Vertical stride SH.</param>
/// <param name="StrideW">Horizontal stride SW.</param>
/// <param name="PadH">Implicit padding PH on the top and bottom.</param>
/// <param name="PadW">Implicit padding PW on the left and right.</param>
/// <param name="DilationH">Vertical spacing DH of the window taps.</param>
/// <param name="DilationW">Horizontal spacing DW of the window taps.</param>
public readonly record struct Pool2dGeometry(
    int N, int C, int H, int W, int OutH, int OutW, int KernelH, int KernelW,
    int StrideH, int StrideW, int PadH, int PadW, int DilationH, int DilationW)
{
    /// <summary>Elements of the input, N C H W.</summary>
    public long InputLength => (long)N * C * H * W;

    /// <summary>Elements of the output, N C OH OW.</summary>
    public long OutputLength => (long)N * C * OutH * OutW;

    /// <summary>
    /// PyTorch's output size along one axis (ceil_mode false): floor((size + 2 padding - dilation
    /// (kernel - 1) - 1) / stride) + 1, or 0 when not even one window fits.
    /// </summary>
    public static int OutputSize(int size, int kernel, int stride, int padding, int dilation)
    {
        long span = (long)size + (2L * padding) - ((long)dilation * (kernel - 1)) - 1;
        // Floor division: a negative span means not even one window fits.
        return span < 0 ? 0 : checked((int)((span / stride) + 1));
    }

    /// <summary>
    /// Throws (naming <paramref name="op"/>) unless the (H, W) window hyperparameters are valid for
    /// PyTorch: kernel, stride and dilation at least 1, padding at least 0 and at most half the kernel.
    /// </summary>
    public static void CheckWindow(string op, (int H, int W) kernel, (int H, int W) stride, (int H, int W) padding, (int H, int W) dilation)
    {
        if (kernel.H < 1 || kernel.W < 1)
            throw new ArgumentOutOfRangeException(nameof(kernel), kernel, $"{op}: kernel size must be at least 1, got {kernel}.");
        if (stride.H < 1 || stride.W < 1)
            throw new ArgumentOutOfRangeException(nameof(stride), stride, $"{op}: stride must be at least 1, got {stride}.");
        if (dilation.H < 1 || dilation.W < 1)
            throw new ArgumentOutOfRangeException(nameof(dilation), dilation, $"{op}: dilation must be at least 1, got {dilation}.");
        if (padding.H < 0 || padding.W < 0)
            throw new ArgumentOutOfRangeException(nameof(padding), padding, $"{op}: padding must be zero or more, got {padding}.");
        if (padding.H > kernel.H / 2 || padding.W > kernel.W / 2)
            throw new ArgumentOutOfRangeException(nameof(padding), padding, $"{op}: padding {padding} must be at most half the kernel size {kernel} (as PyTorch requires), i.e. at most ({kernel.H / 2}, {kernel.W / 2}).");
    }

    /// <summary>
    /// The geometry of pooling an (N, C, H, W) input (N, C at least 0; H, W at least 1) with (H, W)
    /// window hyperparameters; throws (naming <paramref name="op"/>) on invalid ones or when no window fits.
    /// </summary>
    public static Pool2dGeometry Create(string op, int n, int c, int h, int w, (int H, int W) kernel, (int H, int W) stride, (int H, int W) padding, (int H, int W) dilation)
    {
        Check.Dimension(op, n, nameof(n));
        Check.Dimension(op, c, nameof(c));
        Check.Dimension(op, h, nameof(h), allowZero: false);
        Check.Dimension(op, w, nameof(w), allowZero: false);
        CheckWindow(op, kernel, stride, padding, dilation);
        int oh = OutputSize(h, kernel.H, stride.H, padding.H, dilation.H);
        int ow = OutputSize(w, kernel.W, stride.W, padding.W, dilation.W);
        if (oh < 1 || ow < 1)
            throw new ArgumentException($"{op}: input (H, W) = ({h}, {w}) with kernel {kernel}, stride {stride}, padding {padding}, dilation {dilation} gives output (OH, OW) = ({oh}, {ow}); the output must be at least (1, 1).", nameof(h));
        return new Pool2dGeometry(n, c, h, w, oh, ow, kernel.H, kernel.W, stride.H, stride.W, padding.H, padding.W, dilation.H, dilation.W);
    }

    /// <summary>Throws (naming <paramref name="op"/>) unless this geometry is one <see cref="Create"/> would return (launchers re-check hand-built values).</summary>
    public void Validate(string op)
    {
        var again = Create(op, N, C, H, W, (KernelH, KernelW), (StrideH, StrideW), (PadH, PadW), (DilationH, DilationW));
        if (again.OutH != OutH || again.OutW != OutW)
            throw new ArgumentException($"{op}: the geometry says output (OH, OW) = ({OutH}, {OutW}) but its input and window give ({again.OutH}, {again.OutW}).");
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"(N, C, H, W) = ({N}, {C}, {H}, {W}) -> (OH, OW) = ({OutH}, {OutW}), kernel ({KernelH}, {KernelW}), stride ({StrideH}, {StrideW}), padding ({PadH}, {PadW}), dilation ({DilationH}, {DilationW})";
}

/// <summary>Max, average and global average pooling over NCHW: ILGPU kernels and checked launchers.</summary>
internal static class Pooling
{
    // ---------------------------------------------------------------- the window math, once
    // Generic over the input's accessor: the kernels pass views (and the plane's offset), the managed
    // plane loops host pointers to the plane, so both paths run these operations in this order.

    // The max of output (oh, ow)'s window over the plane at x[xBase..], and in bestAt the flat
    // in-plane index of its first maximum in row-major window order (a NaN wins, the last one). A
    // window with no tap inside the plane (possible with dilation) is -inf with its first tap at or
    // past the border as argmax, as PyTorch.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float MaxWindow<TX>(TX x, int xBase, Pool2dGeometry g, int oh, int ow, out int bestAt)
        where TX : struct, IElements<float>
    {
        int h0 = (oh * g.StrideH) - g.PadH, w0 = (ow * g.StrideW) - g.PadW;
        float best = float.NegativeInfinity;
        bestAt = (FirstTap(h0, g.DilationH) * g.W) + FirstTap(w0, g.DilationW);
        for (int r = 0; r < g.KernelH; r++)
        {
            int ih = h0 + (r * g.DilationH);
            if (ih < 0 || ih >= g.H)
                continue;
            for (int s = 0; s < g.KernelW; s++)
            {
                int iw = w0 + (s * g.DilationW);
                if (iw < 0 || iw >= g.W)
                    continue;
                int at = (ih * g.W) + iw;
                float v = x[xBase + at];
                // Strict > keeps the first maximum; a NaN always wins, as PyTorch propagates it.
                if (v > best || float.IsNaN(v))
                {
                    best = v;
                    bestAt = at;
                }
            }
        }

        return best;
    }

    // The mean of output (oh, ow)'s window over the plane at x[xBase..] (dilation 1): its in-plane
    // taps summed row-major, over the Divisor.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float AvgWindow<TX>(TX x, int xBase, Pool2dGeometry g, int oh, int ow, int countIncludePad)
        where TX : struct, IElements<float>
    {
        int hs = WindowStart(oh, g.StrideH, g.PadH), he = WindowEnd(oh, g.StrideH, g.PadH, g.KernelH, g.H);
        int ws = WindowStart(ow, g.StrideW, g.PadW), we = WindowEnd(ow, g.StrideW, g.PadW, g.KernelW, g.W);
        float sum = 0;
        for (int ih = hs; ih < he; ih++)
        {
            for (int iw = ws; iw < we; iw++)
                sum += x[xBase + (ih * g.W) + iw];
        }

        return sum / Divisor(g, he - hs, we - ws, countIncludePad);
    }

    // The mean of plane p of (P, S) planes, summed in order. A plane is small (7x7 to 32x32 in
    // CNNs): the float sum loses at most S ulps.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float PlaneMean<TX>(TX x, int p, int s)
        where TX : struct, IElements<float>
    {
        float sum = 0;
        int start = p * s;
        for (int j = 0; j < s; j++)
            sum += x[start + j];
        return sum / s;
    }

    // The first tap of a window that starts at start (spacing dilation) at or past the border 0:
    // ceil(-start / dilation) steps of dilation.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int FirstTap(int start, int dilation) =>
        start < 0 ? start + ((-start + dilation - 1) / dilation * dilation) : start;

    // The in-plane taps [WindowStart, WindowEnd) along one axis of output o's window (dilation 1).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int WindowStart(int o, int stride, int pad) => XMath.Max((o * stride) - pad, 0);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int WindowEnd(int o, int stride, int pad, int kernel, int size) => XMath.Min((o * stride) - pad + kernel, size);

    // Average pooling's divisor: KH KW with count_include_pad, else the in-plane taps (rows by columns).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int Divisor(Pool2dGeometry g, int rows, int cols, int countIncludePad) =>
        countIncludePad != 0 ? g.KernelH * g.KernelW : rows * cols;

    // ---------------------------------------------------------------- ILGPU kernels
    // Max and average pooling share their kernels: the argmax view is given (non-empty) for max
    // pooling and empty for average pooling, a branch uniform over the launch.

    // Kernel: x (N,C,H,W) -> y (N,C,OH,OW), one output per work item, grid-stride: the window max
    // and its argmax (max pooling), or the window mean (average pooling, argmax empty;
    // countIncludePad 1: divide by KH KW, 0: by the in-plane taps).
    public static void Pool2dForwardKernel(ArrayView<float> x, ArrayView<float> y, ArrayView<int> argmax, Pool2dGeometry g, int countIncludePad)
    {
        int total = y.IntLength;
        bool max = argmax.Length != 0;
        // Grid and Group reads are thread-local on the CPU accelerator: read them once.
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < total; i += stride)
        {
            int xBase = OutputAt(g, i, out int oh, out int ow) * g.H * g.W;
            if (max)
            {
                y[i] = MaxWindow(new ViewElements<float>(x), xBase, g, oh, ow, out int at);
                argmax[i] = at;
            }
            else
            {
                y[i] = AvgWindow(new ViewElements<float>(x), xBase, g, oh, ow, countIncludePad);
            }
        }
    }

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<int>, Pool2dGeometry, int>> Pool2dForwardDef =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, ArrayView<int>, Pool2dGeometry, int>(Pool2dForwardKernel);

    // Kernel: dy (N,C,OH,OW) -> dx (N,C,H,W) overwritten, one input per work item, grid-stride:
    // gathers dy of the windows whose argmax it is (max pooling), or dy / divisor of every window
    // that contains it (average pooling, argmax empty).
    public static void Pool2dBackwardKernel(ArrayView<float> dy, ArrayView<int> argmax, ArrayView<float> dx, Pool2dGeometry g, int countIncludePad)
    {
        int total = dx.IntLength;
        bool max = argmax.Length != 0;
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < total; i += stride)
        {
            int yBase = InputAt(g, i, out int ih, out int iw) * g.OutH * g.OutW;
            int at = (ih * g.W) + iw;
            float acc = 0;
            // Walking the taps r downwards walks oh upwards, so the sum runs over outputs in
            // row-major order, as the scatter references add them.
            for (int r = g.KernelH - 1; r >= 0; r--)
            {
                int oh = SlidingWindow.OutputOfTap(ih, r, g.StrideH, g.PadH, g.DilationH, g.OutH);
                int rows = WindowEnd(oh, g.StrideH, g.PadH, g.KernelH, g.H) - WindowStart(oh, g.StrideH, g.PadH);
                for (int s = g.KernelW - 1; s >= 0 && oh >= 0; s--)
                {
                    int ow = SlidingWindow.OutputOfTap(iw, s, g.StrideW, g.PadW, g.DilationW, g.OutW);
                    if (ow < 0)
                        continue;
                    int o = yBase + (oh * g.OutW) + ow;
                    if (!max)
                        acc += dy[o] / Divisor(g, rows, WindowEnd(ow, g.StrideW, g.PadW, g.KernelW, g.W) - WindowStart(ow, g.StrideW, g.PadW), countIncludePad);
                    else if (argmax[o] == at)
                        acc += dy[o];
                }
            }

            dx[i] = acc;
        }
    }

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<float>, Pool2dGeometry, int>> Pool2dBackwardDef =
        KernelDef.Of<ArrayView<float>, ArrayView<int>, ArrayView<float>, Pool2dGeometry, int>(Pool2dBackwardKernel);

    // y[p] = the mean of plane p of x (N C, S): one plane per index, so no shared memory.
    internal readonly struct GlobalMeanBody<TF>(TF x, TF y, int s) : IElementBody
        where TF : struct, IElements<float>
    {
        public void Run(int p) => y[p] = PlaneMean(x, p, s);
    }

    // dx[i] = dy[i / S] / S over dx (N C, S).
    internal readonly struct GlobalSpreadBody<TF>(TF dy, TF dx, int s) : IElementBody
        where TF : struct, IElements<float>
    {
        public void Run(int i) => dx[i] = dy[i / s] / s;
    }

    private static readonly ForEachDef<GlobalMeanBody<ViewElements<float>>> GlobalMeanDef = new();
    private static readonly ForEachDef<GlobalSpreadBody<ViewElements<float>>> GlobalSpreadDef = new();

    // Output i of (N C, OH, OW): its plane, row and column (remainders by multiply-subtract).
    private static int OutputAt(Pool2dGeometry g, int i, out int oh, out int ow)
    {
        int outPlane = g.OutH * g.OutW;
        int plane = i / outPlane;
        int rest = i - (plane * outPlane);
        oh = rest / g.OutW;
        ow = rest - (oh * g.OutW);
        return plane;
    }

    // Input i of (N C, H, W): its plane, row and column.
    private static int InputAt(Pool2dGeometry g, int i, out int ih, out int iw)
    {
        int inPlane = g.H * g.W;
        int plane = i / inPlane;
        int at = i - (plane * inPlane);
        ih = at / g.W;
        iw = at - (ih * g.W);
        return plane;
    }

    // ---------------------------------------------------------------- managed CPU paths
    // On the CPU accelerator (host.RunsManaged) the launchers run these on the buffers' host memory,
    // threads splitting the N C planes. Every output gets the kernel's float operations in the
    // kernel's order, so the results are bitwise equal to the ILGPU kernels:
    // - the forwards run the kernels' window math (MaxWindow, AvgWindow, PlaneMean), one plane at a
    //   time, without the per-element divisions;
    // - the max and average backwards SCATTER within a plane (clear it, then add each output's
    //   share in row-major output order, as the references): each input receives the same terms
    //   in the same order, from the same 0f, as the kernels' gathers, so the sums are identical,
    //   and one thread owns a plane, so it stays deterministic;
    // - GlobalAvgPool sums 4 planes side by side (4 independent add chains, each in order);
    // - MaxPool2d(2) (2x2 window, stride 2, no padding or dilation) takes 4 or 8 outputs per
    //   Vector128/Vector256 step forward, and writes its backward's taps with masks, not branches.

    // Planes [start, end) of max pooling (argmax given) or average pooling (argmax null).
    private readonly unsafe struct ForwardBody(float* x, float* y, int* argmax, Pool2dGeometry g, int countIncludePad) : CpuLoops.IRange
    {
        public void Run(int start, int end)
        {
            if (argmax != null && IsPlain2x2(g))
            {
                MaxPlain2x2(start, end);
                return;
            }

            int outPlane = g.OutH * g.OutW, inPlane = g.H * g.W;
            for (int p = start; p < end; p++)
            {
                var xp = new PtrElements<float>(x + ((long)p * inPlane));
                long o = (long)p * outPlane;
                for (int oh = 0; oh < g.OutH; oh++)
                {
                    for (int ow = 0; ow < g.OutW; ow++, o++)
                    {
                        if (argmax != null)
                        {
                            y[o] = MaxWindow(xp, 0, g, oh, ow, out int at);
                            argmax[o] = at;
                        }
                        else
                        {
                            y[o] = AvgWindow(xp, 0, g, oh, ow, countIncludePad);
                        }
                    }
                }
            }
        }

        // The CNN's MaxPool2d(2): every window lies inside the plane, so its taps are at, at + 1,
        // at + W, at + W + 1, compared in the kernel's order with the kernel's test.
        private void MaxPlain2x2(int start, int end)
        {
            int outPlane = g.OutH * g.OutW, inPlane = g.H * g.W, w = g.W;
            for (int p = start; p < end; p++)
            {
                float* xp = x + ((long)p * inPlane);
                long o = (long)p * outPlane;
                for (int oh = 0; oh < g.OutH; oh++)
                {
                    int rowAt = 2 * oh * w;
                    int ow = 0;
                    if (Sse.IsSupported && g.OutW is >= 4 and < 8)
                    {
                        Four(xp, rowAt, w, 0, o, y, argmax);
                        Four(xp, rowAt, w, g.OutW - 4, o + g.OutW - 4, y, argmax);
                        o += g.OutW;
                        continue;
                    }

                    if (Avx2.IsSupported && g.OutW >= 8)
                    {
                        // 8 outputs at a time; the last block may overlap the one before (it
                        // rewrites the same values), so the whole row is vectorized.
                        for (int ow0 = 0; ; ow0 += 8)
                        {
                            ow0 = Math.Min(ow0, g.OutW - 8);
                            Eight(xp, rowAt, w, ow0, o + ow0, y, argmax);
                            if (ow0 == g.OutW - 8)
                                break;
                        }

                        o += g.OutW;
                        continue;
                    }

                    for (; ow < g.OutW; ow++, o++)
                    {
                        int at = rowAt + (2 * ow);
                        // The kernel's test (v > best || NaN v; the first tap always passes it or
                        // ties -inf), evaluated without branches: random data mispredicts them.
                        float best = xp[at];
                        int bestAt = at;
                        Take(ref best, ref bestAt, xp[at + 1], at + 1);
                        Take(ref best, ref bestAt, xp[at + w], at + w);
                        Take(ref best, ref bestAt, xp[at + w + 1], at + w + 1);
                        y[o] = best;
                        argmax[o] = bestAt;
                    }
                }
            }
        }
    }

    // Outputs ow0 .. ow0 + 7 of one output row of a plain 2x2 pooling: the even and odd columns of
    // the two input rows are the four taps; each lane runs the kernel's test in its order.
    // Avx.Shuffle picks within 128-bit halves, so lanes hold outputs 0 1 4 5 2 3 6 7 until
    // Permute4x64 puts them back in order.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Eight(float* xp, int rowAt, int w, int ow0, long o, float* y, int* argmax)
    {
        int at = rowAt + (2 * ow0);
        float* r0 = xp + at, r1 = r0 + w;
        Vector256<float> a0 = Avx.LoadVector256(r0), a1 = Avx.LoadVector256(r0 + 8);
        Vector256<float> b0 = Avx.LoadVector256(r1), b1 = Avx.LoadVector256(r1 + 8);
        var idx = Vector256.Create(at) + Vector256.Create(0, 2, 8, 10, 4, 6, 12, 14);
        var best = Avx.Shuffle(a0, a1, 0b10_00_10_00);
        var bestAt = idx;
        Take(ref best, ref bestAt, Avx.Shuffle(a0, a1, 0b11_01_11_01), idx + Vector256.Create(1));
        Take(ref best, ref bestAt, Avx.Shuffle(b0, b1, 0b10_00_10_00), idx + Vector256.Create(w));
        Take(ref best, ref bestAt, Avx.Shuffle(b0, b1, 0b11_01_11_01), idx + Vector256.Create(w + 1));
        Avx2.Permute4x64(best.AsDouble(), 0b11_01_10_00).AsSingle().Store(y + o);
        Avx2.Permute4x64(bestAt.AsInt64(), 0b11_01_10_00).AsInt32().Store(argmax + o);
    }

    // Outputs ow0 .. ow0 + 3, as Eight with 128-bit vectors (lanes in order: no permute).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Four(float* xp, int rowAt, int w, int ow0, long o, float* y, int* argmax)
    {
        int at = rowAt + (2 * ow0);
        float* r0 = xp + at, r1 = r0 + w;
        Vector128<float> a0 = Sse.LoadVector128(r0), a1 = Sse.LoadVector128(r0 + 4);
        Vector128<float> b0 = Sse.LoadVector128(r1), b1 = Sse.LoadVector128(r1 + 4);
        var idx = Vector128.Create(at) + Vector128.Create(0, 2, 4, 6);
        var best = Sse.Shuffle(a0, a1, 0b10_00_10_00);
        var bestAt = idx;
        Take(ref best, ref bestAt, Sse.Shuffle(a0, a1, 0b11_01_11_01), idx + Vector128.Create(1));
        Take(ref best, ref bestAt, Sse.Shuffle(b0, b1, 0b10_00_10_00), idx + Vector128.Create(w));
        Take(ref best, ref bestAt, Sse.Shuffle(b0, b1, 0b11_01_11_01), idx + Vector128.Create(w + 1));
        best.Store(y + o);
        bestAt.Store(argmax + o);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Take(ref float best, ref int bestAt, float v, int at)
    {
        bool take = (v > best) | float.IsNaN(v);
        best = take ? v : best;
        bestAt = take ? at : bestAt;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Take(ref Vector128<float> best, ref Vector128<int> bestAt, Vector128<float> v, Vector128<int> at)
    {
        var take = Vector128.GreaterThan(v, best) | ~Vector128.Equals(v, v);
        best = Vector128.ConditionalSelect(take, v, best);
        bestAt = Vector128.ConditionalSelect(take.AsInt32(), at, bestAt);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Take(ref Vector256<float> best, ref Vector256<int> bestAt, Vector256<float> v, Vector256<int> at)
    {
        // v > best || NaN v, per lane.
        var take = Vector256.GreaterThan(v, best) | ~Vector256.Equals(v, v);
        best = Vector256.ConditionalSelect(take, v, best);
        bestAt = Vector256.ConditionalSelect(take.AsInt32(), at, bestAt);
    }

    // Window 2x2, stride 2, no padding, no dilation: the common max pooling, whose windows all lie
    // inside the plane and do not overlap.
    private static bool IsPlain2x2(Pool2dGeometry g) =>
        g.KernelH == 2 && g.KernelW == 2 && g.StrideH == 2 && g.StrideW == 2 && g.PadH == 0 && g.PadW == 0 && g.DilationH == 1 && g.DilationW == 1;

    // Planes [start, end) of the max-pool backward (argmax given) or the average-pool backward
    // (argmax null), scattered: clear the plane, then add each output's share in row-major order.
    private readonly unsafe struct BackwardBody(float* dy, int* argmax, float* dx, Pool2dGeometry g, int countIncludePad) : CpuLoops.IRange
    {
        public void Run(int start, int end)
        {
            if (argmax != null && IsPlain2x2(g))
            {
                MaxPlain2x2(start, end);
                return;
            }

            int outPlane = g.OutH * g.OutW, inPlane = g.H * g.W;
            for (int p = start; p < end; p++)
            {
                float* dxp = dx + ((long)p * inPlane);
                new Span<float>(dxp, inPlane).Clear();
                long o = (long)p * outPlane;
                for (int oh = 0; oh < g.OutH; oh++)
                {
                    int h0 = (oh * g.StrideH) - g.PadH;
                    int hs = WindowStart(oh, g.StrideH, g.PadH), he = WindowEnd(oh, g.StrideH, g.PadH, g.KernelH, g.H);
                    for (int ow = 0; ow < g.OutW; ow++, o++)
                    {
                        if (argmax != null)
                        {
                            int at = argmax[o];
                            if ((uint)at >= (uint)inPlane)
                                continue;
                            // The kernel gathers dy[o] into at only when at is a tap of o's window.
                            int ih = at / g.W;
                            int r = ih - h0, s = at - (ih * g.W) - ((ow * g.StrideW) - g.PadW);
                            if (r >= 0 && r % g.DilationH == 0 && r / g.DilationH < g.KernelH
                                && s >= 0 && s % g.DilationW == 0 && s / g.DilationW < g.KernelW)
                                dxp[at] += dy[o];
                            continue;
                        }

                        int ws = WindowStart(ow, g.StrideW, g.PadW), we = WindowEnd(ow, g.StrideW, g.PadW, g.KernelW, g.W);
                        float share = dy[o] / Divisor(g, he - hs, we - ws, countIncludePad);
                        for (int ih = hs; ih < he; ih++)
                        {
                            float* row = dxp + (ih * g.W);
                            for (int iw = ws; iw < we; iw++)
                                row[iw] += share;
                        }
                    }
                }
            }
        }

        // Window o's taps are base, base + 1, base + W, base + W + 1 (W >= 2, all inside the
        // plane): the tap test without divisions. Windows do not overlap, so each dx of a window
        // gets at most one term, added to 0f as the kernel's gather does; the plane is cleared
        // first for the odd last row and column that no window covers.
        private void MaxPlain2x2(int start, int end)
        {
            int outPlane = g.OutH * g.OutW, inPlane = g.H * g.W, w = g.W;
            for (int p = start; p < end; p++)
            {
                float* dxp = dx + ((long)p * inPlane);
                new Span<float>(dxp, inPlane).Clear();
                long o = (long)p * outPlane;
                for (int oh = 0; oh < g.OutH; oh++)
                {
                    int rowAt = 2 * oh * w;
                    for (int ow = 0; ow < g.OutW; ow++, o++)
                    {
                        // Each tap is written once, with the kernel's 0f + dy or its 0f (+0: all
                        // bits clear), masked without branches (the argmax is random).
                        int bas = rowAt + (2 * ow);
                        int off = argmax[o] - bas;
                        int share = BitConverter.SingleToInt32Bits(0f + dy[o]);
                        dxp[bas] = BitConverter.Int32BitsToSingle(share & -(off == 0 ? 1 : 0));
                        dxp[bas + 1] = BitConverter.Int32BitsToSingle(share & -(off == 1 ? 1 : 0));
                        dxp[bas + w] = BitConverter.Int32BitsToSingle(share & -(off == w ? 1 : 0));
                        dxp[bas + w + 1] = BitConverter.Int32BitsToSingle(share & -(off == w + 1 ? 1 : 0));
                    }
                }
            }
        }
    }

    private readonly unsafe struct GlobalForwardBody(float* x, float* y, int s) : CpuLoops.IRange
    {
        public void Run(int start, int end)
        {
            int p = start;
            for (; p <= end - 4; p += 4)
            {
                float* x0 = x + ((long)p * s), x1 = x0 + s, x2 = x1 + s, x3 = x2 + s;
                float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
                for (int j = 0; j < s; j++)
                {
                    s0 += x0[j];
                    s1 += x1[j];
                    s2 += x2[j];
                    s3 += x3[j];
                }

                y[p] = s0 / s;
                y[p + 1] = s1 / s;
                y[p + 2] = s2 / s;
                y[p + 3] = s3 / s;
            }

            var body = new GlobalMeanBody<PtrElements<float>>(new(x), new(y), s);
            for (; p < end; p++)
                body.Run(p);
        }
    }

    private readonly unsafe struct GlobalBackwardBody(float* dy, float* dx, int s) : CpuLoops.IRange
    {
        public void Run(int start, int end)
        {
            for (int p = start; p < end; p++)
                new Span<float>(dx + ((long)p * s), s).Fill(dy[p] / s);
        }
    }

    // ---------------------------------------------------------------- launchers

    /// <summary>Max pooling x (N,C,H,W) -> y, argmax (N,C,OH,OW): window max and flat in-plane index of its first maximum (PyTorch's return_indices).</summary>
    public static void MaxPool2dForward(KernelHost host, ArrayView<float> x, ArrayView<float> y, ArrayView<int> argmax, Pool2dGeometry g) =>
        Forward(host, nameof(Pooling) + "." + nameof(MaxPool2dForward), x, y, argmax, max: true, g, countIncludePad: false);

    /// <summary>Max-pool backward: dx[i] = Σ dy[o] over the outputs o whose argmax is i. Overwrites dx.</summary>
    public static void MaxPool2dBackward(KernelHost host, ArrayView<float> dy, ArrayView<int> argmax, ArrayView<float> dx, Pool2dGeometry g) =>
        Backward(host, nameof(Pooling) + "." + nameof(MaxPool2dBackward), dy, argmax, max: true, dx, g, countIncludePad: false);

    /// <summary>Average pooling (dilation 1): y = Σ window / divisor (KH KW with <paramref name="countIncludePad"/>, PyTorch's default, else the in-plane tap count).</summary>
    public static void AvgPool2dForward(KernelHost host, ArrayView<float> x, ArrayView<float> y, Pool2dGeometry g, bool countIncludePad = true) =>
        Forward(host, nameof(Pooling) + "." + nameof(AvgPool2dForward), x, y, default, max: false, g, countIncludePad);

    /// <summary>Average-pool backward: dx[i] = Σ dy[o] / divisor(o) over the windows that contain i. Overwrites dx.</summary>
    public static void AvgPool2dBackward(KernelHost host, ArrayView<float> dy, ArrayView<float> dx, Pool2dGeometry g, bool countIncludePad = true) =>
        Backward(host, nameof(Pooling) + "." + nameof(AvgPool2dBackward), dy, default, max: false, dx, g, countIncludePad);

    // Max pooling (max, with argmax) or average pooling (argmax empty): the checks, then the
    // managed planes or the kernel.
    private static unsafe void Forward(KernelHost host, string op, ArrayView<float> x, ArrayView<float> y, ArrayView<int> argmax, bool max, Pool2dGeometry g, bool countIncludePad)
    {
        if (!CheckViews(host, op, g, x, nameof(x), y, nameof(y), argmax, max))
            return;
        int pad = countIncludePad ? 1 : 0;
        if (host.RunsManaged)
            CpuLoops.For(host, (long)g.N * g.C, new ForwardBody(CpuLoops.Ptr(x), CpuLoops.Ptr(y), CpuLoops.Ptr(argmax), g, pad), ForwardWork(g));
        else
            host.Load(Pool2dForwardDef)(host.Stream, host.Launch.GridStride(g.OutputLength), x, y, argmax, g, pad);
    }

    private static unsafe void Backward(KernelHost host, string op, ArrayView<float> dy, ArrayView<int> argmax, bool max, ArrayView<float> dx, Pool2dGeometry g, bool countIncludePad)
    {
        if (!CheckViews(host, op, g, dx, nameof(dx), dy, nameof(dy), argmax, max))
            return;
        int pad = countIncludePad ? 1 : 0;
        if (host.RunsManaged)
            CpuLoops.For(host, (long)g.N * g.C, new BackwardBody(CpuLoops.Ptr(dy), CpuLoops.Ptr(argmax), CpuLoops.Ptr(dx), g, pad), (g.H * g.W) + (max ? g.OutH * g.OutW : ForwardWork(g)));
        else
            host.Load(Pool2dBackwardDef)(host.Stream, host.Launch.GridStride(g.InputLength), dy, argmax, dx, g, pad);
    }

    /// <summary>Global average pooling: y[n, c] = mean over S of x[n, c, :] for x (N, C, S), S = H W at least 1.</summary>
    public static unsafe void GlobalAvgPoolForward(KernelHost host, ArrayView<float> x, ArrayView<float> y, int n, int c, int s)
    {
        if (!CheckGlobal(host, nameof(Pooling) + "." + nameof(GlobalAvgPoolForward), x, nameof(x), y, nameof(y), n, c, s))
            return;
        if (host.RunsManaged)
            CpuLoops.For(host, y.Length, new GlobalForwardBody(CpuLoops.Ptr(x), CpuLoops.Ptr(y), s), s);
        else
            GlobalMeanDef.Launch(host, y.Length, new(new(x), new(y), s));
    }

    /// <summary>Global average-pool backward: dx[n, c, s] = dy[n, c] / S. Overwrites dx.</summary>
    public static unsafe void GlobalAvgPoolBackward(KernelHost host, ArrayView<float> dy, ArrayView<float> dx, int n, int c, int s)
    {
        if (!CheckGlobal(host, nameof(Pooling) + "." + nameof(GlobalAvgPoolBackward), dx, nameof(dx), dy, nameof(dy), n, c, s))
            return;
        if (host.RunsManaged)
            CpuLoops.For(host, dy.Length, new GlobalBackwardBody(CpuLoops.Ptr(dy), CpuLoops.Ptr(dx), s), s);
        else
            GlobalSpreadDef.Launch(host, dx.Length, new(new(dy), new(dx), s));
    }

    // Work of one plane's forward (its window taps), so CpuLoops.For splits only batches worth a thread.
    private static int ForwardWork(Pool2dGeometry g) => g.OutH * g.OutW * g.KernelH * g.KernelW;

    private static string OutputLegend(Pool2dGeometry g) => $"(N, C, OH, OW) = ({g.N}, {g.C}, {g.OutH}, {g.OutW})";

    // The checks of every 2-D launcher: the geometry, the planes (input (N,C,H,W), output
    // (N,C,OH,OW)), and for max pooling the argmax, for average pooling no dilation. Returns
    // whether there is work (N C > 0; H, W, OH and OW are at least 1).
    private static bool CheckViews(KernelHost host, string op, Pool2dGeometry g, ArrayView<float> input, string inputName, ArrayView<float> output, string outputName, ArrayView<int> argmax, bool max)
    {
        ArgumentNullException.ThrowIfNull(host);
        g.Validate(op);
        Check.Length(op, input, inputName, g.InputLength, $"(N, C, H, W) = ({g.N}, {g.C}, {g.H}, {g.W})");
        Check.Length(op, output, outputName, g.OutputLength, OutputLegend(g));
        Check.Fits32(op, input, inputName);
        Check.Fits32(op, output, outputName);
        if (max)
            Check.Length(op, argmax, nameof(argmax), g.OutputLength, OutputLegend(g));
        else if (g.DilationH != 1 || g.DilationW != 1)
            throw new ArgumentException($"{op}: average pooling has no dilation (as PyTorch), but the geometry has dilation ({g.DilationH}, {g.DilationW}).", nameof(g));
        return g.OutputLength != 0;
    }

    // The checks of the global launchers (planes (N, C, S), means (N, C)); returns whether there is work (N C > 0).
    private static bool CheckGlobal(KernelHost host, string op, ArrayView<float> planes, string planesName, ArrayView<float> means, string meansName, int n, int c, int s)
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.Dimension(op, n, nameof(n));
        Check.Dimension(op, c, nameof(c));
        Check.Dimension(op, s, nameof(s), allowZero: false);
        Check.Length(op, planes, planesName, (long)n * c * s, $"(N, C, S) = ({n}, {c}, {s})");
        Check.Length(op, means, meansName, (long)n * c, $"(N, C) = ({n}, {c})");
        Check.Fits32(op, planes, planesName);
        return means.Length != 0;
    }
}
