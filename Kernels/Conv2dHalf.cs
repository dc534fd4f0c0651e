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
    public static void ForwardHalf(KernelHost host, ArrayView<float> x, ArrayView<Half> weight, ArrayView<float> bias, ArrayView<float> y, ArrayView<float> cols, ArrayView<Half> colsHalf, Conv2dGeometry g, int outChannels) =>
        Forward(nameof(Conv2d) + "." + nameof(ForwardHalf), host, x, weight, bias, y, cols, colsHalf, g, outChannels);

    /// <summary>dW (O, C, kh, kw) = sum over n of half(dy)_n half(cols)_n^T in float32, overwritten; colsHalf from ForwardHalf.</summary>
    public static void BackwardWeightHalf(KernelHost host, ArrayView<Half> dy, ArrayView<Half> colsHalf, ArrayView<float> dw, Conv2dGeometry g, int outChannels) =>
        BackwardWeight(nameof(Conv2d) + "." + nameof(BackwardWeightHalf), host, dy, colsHalf, nameof(colsHalf), dw, g, outChannels);

    /// <summary>dx (N, C, H, W) = col2im(half(w)^T half(dy)_n for each image), float32, overwritten; dcols is an overwritten float workspace.</summary>
    public static void BackwardInputHalf(KernelHost host, ArrayView<Half> weight, ArrayView<Half> dy, ArrayView<float> dcols, ArrayView<float> dx, Conv2dGeometry g, int outChannels) =>
        BackwardInput(nameof(Conv2d) + "." + nameof(BackwardInputHalf), host, weight, dy, dcols, dx, g, outChannels);

    // float(half(w)) in the calling thread's weight buffer, after the stream's pending work.
    private static unsafe float* WideWeight(KernelHost host, ArrayView<Half> weight)
    {
        host.Stream.Synchronize();
        float* w = GemmHalf.WideScratch(ref _wideW, weight.Length);
        GemmHalf.Widen((Half*)CpuLoops.Ptr(weight), w, weight.Length);
        return w;
    }
}
