using System.Runtime.CompilerServices;

namespace IlgpuTrain.Kernels.Runtime;

// Index math of sliding windows (pooling, convolution) along one axis, shared by kernels and
// managed loops: output o's window reads inputs o stride - pad + t dilation for taps t < kernel.

/// <summary>Index math of a sliding window along one axis.</summary>
internal static class SlidingWindow
{
    /// <summary>The output whose tap t reads input i (o stride = i + pad - t dilation, exactly, with o in [0, outSize)), or -1 when none does.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int OutputOfTap(int i, int t, int stride, int pad, int dilation, int outSize)
    {
        int th = i + pad - (t * dilation);
        int o = th / stride;
        return th < 0 || o * stride != th || o >= outSize ? -1 : o;
    }
}
