using System.Buffers;
using System.Runtime.Intrinsics;
using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// Mixed-precision (Precision.Float16) 2-D convolution: Conv2d's im2col + per-image GEMM with
// binary16 GEMM operands, float32 accumulation and output (GemmHalf), as SEMANTICS.md defines it.
//
//   ForwardHalf         cols = im2col(x) (float, kept), colsH = half(cols) (kept for the backward),
//                       y_n = round16(wH (O, K) colsH_n (K, P)), then y += b[o] (float32).
//   BackwardWeightHalf  dW (O, K) = sum_n dyH_n (O, P) colsH_n^T, OVERWRITTEN, float32, unrounded.
//   BackwardInputHalf   dcols_n = wH^T dyH_n (float32), dx = col2im(dcols), OVERWRITTEN.
//
// wH = half(w) and dyH = half(dy) are the caller's binary16 copies (Cast.ToHalf). Bytes per column
// entry on top of Conv2d's: 4 read + 2 written for the cast; the GEMMs read halves (2 B) instead of floats.
//
// The generic path is the launchers in sequence (Im2Col, Cast.ToHalf, one GemmHalf per image,
// RoundToHalfInPlace, BiasAdd.ForwardChannels; Col2Im). On the CPU accelerator (host.RunsManaged)
// the images run in parallel instead, each fusing its im2col, cast, single-threaded CpuGemm (its
// float overload on operands widened exactly into per-thread buffers, which gives the bits of its
// binary16 overload faster: see GemmHalf.RunManaged), rounding and bias (or GEMM and col2im), as
// Conv2d's float path does: the same float operations per element in the same order, and CpuGemm's
// result does not depend on its thread count, so ForwardHalf and BackwardInputHalf equal the
// generic path bitwise. dW sums over images in DwGroups fixed image groups as Conv2d.BackwardWeight
// does: deterministic, but not bitwise the generic path's single running sum.

/// <content>The binary16-operand (mixed-precision) forward and backward of the convolution.</content>
internal static partial class Conv2d
{
    // The widened half weight of the managed path, once per call (the launcher's thread).
    [ThreadStatic]
    private static float[]? _wideW;

    /// <summary>
    /// y (N, O, Ho, Wo) = round16(half(w) half(im2col(x))) + b per image, as Forward with weight =
    /// half(w): cols (N, K, P) gets the float columns and colsHalf their binary16 copy (kept for the backward).
    /// </summary>
    public static unsafe void ForwardHalf(KernelHost host, ArrayView<float> x, ArrayView<Half> weight, ArrayView<float> bias, ArrayView<float> y, ArrayView<float> cols, ArrayView<Half> colsHalf, Conv2dGeometry g, int outChannels)
    {
        ArgumentNullException.ThrowIfNull(host);
        const string op = nameof(Conv2d) + "." + nameof(ForwardHalf);
        CheckIo(op, x, nameof(x), cols, nameof(cols), g);
        CheckColumns(op, colsHalf, nameof(colsHalf), g);
        CheckWeight(op, weight, y, nameof(y), bias, g, outChannels);
        if (Managed(host, g, outChannels))
        {
            var body = new ForwardBody(CpuLoops.Ptr(x), WideWeight(host, weight), CpuLoops.Ptr(bias), CpuLoops.Ptr(y), CpuLoops.Ptr(cols), (ushort*)CpuLoops.Ptr(colsHalf), g, outChannels);
            CpuLoops.For(host, g.N, body, ImageWork(g, outChannels));
            return;
        }

        Im2Col(host, x, cols, g);
        Cast.ToHalf(host, cols, colsHalf);
        long perY = (long)outChannels * g.P, perCols = (long)g.K * g.P;
        if (perY == 0 || g.N == 0)
            return;
        for (int n = 0; n < g.N; n++)
            GemmHalf.Run(host, false, false, outChannels, g.P, g.K, 1f, weight, colsHalf.SubView(n * perCols, perCols), 0f, y.SubView(n * perY, perY));
        GemmHalf.RoundToHalfInPlace(host, y);
        if (bias.Length != 0)
            BiasAdd.ForwardChannels(host, y, bias, y, g.N, outChannels, g.P);
    }

    /// <summary>dW (O, C, kh, kw) = sum over n of half(dy)_n half(cols)_n^T in float32, overwritten; colsHalf from ForwardHalf.</summary>
    public static unsafe void BackwardWeightHalf(KernelHost host, ArrayView<Half> dy, ArrayView<Half> colsHalf, ArrayView<float> dw, Conv2dGeometry g, int outChannels)
    {
        ArgumentNullException.ThrowIfNull(host);
        const string op = nameof(Conv2d) + "." + nameof(BackwardWeightHalf);
        CheckColumns(op, colsHalf, nameof(colsHalf), g);
        CheckWeight(op, dw, dy, nameof(dy), default, g, outChannels);
        long perY = (long)outChannels * g.P, perCols = (long)g.K * g.P;
        if (g.N == 0 || g.P == 0)
            Elementwise.Fill(host, dw, 0f);
        else if (Managed(host, g, outChannels))
            BackwardWeightManaged(host, null, null, (Half*)CpuLoops.Ptr(dy), (Half*)CpuLoops.Ptr(colsHalf), dw, g, outChannels, transposeNarrow: true);
        else
        {
            for (int n = 0; n < g.N; n++)
                GemmHalf.Run(host, false, true, outChannels, g.K, g.P, 1f, dy.SubView(n * perY, perY), colsHalf.SubView(n * perCols, perCols), n == 0 ? 0f : 1f, dw);
        }
    }

    /// <summary>dx (N, C, H, W) = col2im(half(w)^T half(dy)_n for each image), float32, overwritten; dcols is an overwritten float workspace.</summary>
    public static unsafe void BackwardInputHalf(KernelHost host, ArrayView<Half> weight, ArrayView<Half> dy, ArrayView<float> dcols, ArrayView<float> dx, Conv2dGeometry g, int outChannels)
    {
        ArgumentNullException.ThrowIfNull(host);
        const string op = nameof(Conv2d) + "." + nameof(BackwardInputHalf);
        CheckIo(op, dx, nameof(dx), dcols, nameof(dcols), g);
        CheckWeight(op, weight, dy, nameof(dy), default, g, outChannels);
        if (Managed(host, g, outChannels))
        {
            var body = new BackwardInputBody(WideWeight(host, weight), null, (Half*)CpuLoops.Ptr(dy), CpuLoops.Ptr(dcols), CpuLoops.Ptr(dx), g, outChannels);
            CpuLoops.For(host, g.N, body, ImageWork(g, outChannels));
            return;
        }

        long perY = (long)outChannels * g.P, perCols = (long)g.K * g.P;
        for (int n = 0; n < g.N && perCols != 0; n++)
            GemmHalf.Run(host, true, false, g.K, g.P, outChannels, 1f, weight, dy.SubView(n * perY, perY), 0f, dcols.SubView(n * perCols, perCols));
        Col2Im(host, dcols, dx, g);
    }

    // float(half(w)) in the calling thread's weight buffer, after the stream's pending work.
    private static unsafe float* WideWeight(KernelHost host, ArrayView<Half> weight)
    {
        host.Stream.Synchronize();
        float* w = GemmHalf.WideScratch(ref _wideW, weight.Length);
        GemmHalf.Widen((Half*)CpuLoops.Ptr(weight), w, weight.Length);
        return w;
    }
}
