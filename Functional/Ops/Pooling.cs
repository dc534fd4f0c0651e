namespace IlgpuTrain.Functional;

public static partial class F
{
    /// <summary>
    /// 2-D max pooling over (N, C, H, W), torch.nn.functional.max_pool2d with ceil_mode false.
    /// </summary>
    /// <remarks>
    /// y[n, c, oh, ow] = max over r &lt; KH, s &lt; KW of x[n, c, oh S - P + r D, ow S - P + s D] (padding is -inf)
    /// OH = floor((H + 2P - D (K - 1) - 1) / S) + 1, and OW alike
    /// dx[i] = Σ dy[o] over the outputs o whose argmax is i (ties: the first maximum in row-major window order)
    /// Defaults: stride = kernel, padding 0 (at most half the kernel), dilation 1.
    /// https://pytorch.org/docs/stable/generated/torch.nn.MaxPool2d.html
    /// </remarks>
    /// <param name="x">Input (N, C, H, W).</param>
    /// <param name="kernel">Square window size K.</param>
    /// <param name="stride">Stride S; the kernel size when null.</param>
    /// <param name="padding">Implicit -inf padding P on every side.</param>
    /// <param name="dilation">Tap spacing D.</param>
    /// <returns>y (N, C, OH, OW).</returns>
    public static Tensor MaxPool2d(Tensor x, int kernel, int? stride = null, int padding = 0, int dilation = 1) =>
        MaxPool2dWithIndices(x, (kernel, kernel), stride is { } s ? (s, s) : null, (padding, padding), (dilation, dilation)).Y;

    /// <summary>2-D max pooling with a (KH, KW) window; see <see cref="MaxPool2d(Tensor, int, int?, int, int)"/>.</summary>
    /// <param name="x">Input (N, C, H, W).</param>
    /// <param name="kernel">Window (KH, KW).</param>
    /// <param name="stride">Stride (SH, SW); the kernel size when null.</param>
    /// <param name="padding">Padding (PH, PW), each at most half the kernel.</param>
    /// <param name="dilation">Dilation (DH, DW); (1, 1) when null.</param>
    /// <returns>y (N, C, OH, OW).</returns>
    public static Tensor MaxPool2d(Tensor x, (int H, int W) kernel, (int H, int W)? stride = null, (int H, int W) padding = default, (int H, int W)? dilation = null) =>
        MaxPool2dWithIndices(x, kernel, stride, padding, dilation).Y;

    /// <summary>
    /// 2-D max pooling that also returns the argmax, PyTorch's return_indices: an Int32 tensor of
    /// flat indices ih W + iw into each input plane. The indices are not differentiable.
    /// </summary>
    /// <param name="x">Input (N, C, H, W).</param>
    /// <param name="kernel">Window (KH, KW).</param>
    /// <param name="stride">Stride (SH, SW); the kernel size when null.</param>
    /// <param name="padding">Padding (PH, PW), each at most half the kernel.</param>
    /// <param name="dilation">Dilation (DH, DW); (1, 1) when null.</param>
    /// <returns>y (N, C, OH, OW) and the Int32 argmax (N, C, OH, OW).</returns>
    public static (Tensor Y, Tensor Indices) MaxPool2dWithIndices(Tensor x, (int H, int W) kernel, (int H, int W)? stride = null, (int H, int W) padding = default, (int H, int W)? dilation = null)
    {
        const string op = nameof(MaxPool2d);
        var scope = ScopeOf(op, x);
        var geo = PoolGeometry(op, x, kernel, stride ?? kernel, padding, dilation ?? (1, 1));
        var shape = new Shape(geo.N, geo.C, geo.OutH, geo.OutW);
        var y = scope.Allocate(shape);
        var indices = scope.Allocate(shape, DType.Int32);
        Pooling.MaxPool2dForward(scope.Device.Kernels, x.View<float>(), y.View<float>(), indices.View<int>(), geo);
        Record(op, y, [x], g => Pooling.MaxPool2dBackward(g.Kernels, g.OutputGrad, indices.View<int>(), g.Into(x), geo));
        return (y, indices);
    }

    /// <summary>
    /// 2-D average pooling over (N, C, H, W), torch.nn.functional.avg_pool2d with ceil_mode false.
    /// </summary>
    /// <remarks>
    /// y[n, c, oh, ow] = (Σ over the window's taps inside the plane of x) / divisor
    /// divisor = K K when countIncludePad (PyTorch's default), else the number of taps inside the plane
    /// OH = floor((H + 2P - K) / S) + 1, and OW alike
    /// dx[i] = Σ dy[o] / divisor(o) over the windows o that contain i
    /// Defaults: stride = kernel, padding 0 (at most half the kernel), count_include_pad true.
    /// https://pytorch.org/docs/stable/generated/torch.nn.AvgPool2d.html
    /// </remarks>
    /// <param name="x">Input (N, C, H, W).</param>
    /// <param name="kernel">Square window size K.</param>
    /// <param name="stride">Stride S; the kernel size when null.</param>
    /// <param name="padding">Implicit zero padding P on every side.</param>
    /// <param name="countIncludePad">Whether padded zeros count in the divisor.</param>
    /// <returns>y (N, C, OH, OW).</returns>
    public static Tensor AvgPool2d(Tensor x, int kernel, int? stride = null, int padding = 0, bool countIncludePad = true) =>
        AvgPool2d(x, (kernel, kernel), stride is { } s ? (s, s) : null, (padding, padding), countIncludePad);

    /// <summary>2-D average pooling with a (KH, KW) window; see <see cref="AvgPool2d(Tensor, int, int?, int, bool)"/>.</summary>
    /// <param name="x">Input (N, C, H, W).</param>
    /// <param name="kernel">Window (KH, KW).</param>
    /// <param name="stride">Stride (SH, SW); the kernel size when null.</param>
    /// <param name="padding">Padding (PH, PW), each at most half the kernel.</param>
    /// <param name="countIncludePad">Whether padded zeros count in the divisor.</param>
    /// <returns>y (N, C, OH, OW).</returns>
    public static Tensor AvgPool2d(Tensor x, (int H, int W) kernel, (int H, int W)? stride = null, (int H, int W) padding = default, bool countIncludePad = true)
    {
        const string op = nameof(AvgPool2d);
        var scope = ScopeOf(op, x);
        var geo = PoolGeometry(op, x, kernel, stride ?? kernel, padding, (1, 1));
        var y = scope.Allocate(new Shape(geo.N, geo.C, geo.OutH, geo.OutW));
        Pooling.AvgPool2dForward(scope.Device.Kernels, x.View<float>(), y.View<float>(), geo, countIncludePad);
        Record(op, y, [x], g => Pooling.AvgPool2dBackward(g.Kernels, g.OutputGrad, g.Into(x), geo, countIncludePad));
        return y;
    }

    /// <summary>
    /// Global average pooling: the mean of each (n, c) plane, (N, C, H, W) to (N, C), as
    /// torch.flatten(F.adaptive_avg_pool2d(x, 1), 1) or x.mean((2, 3)).
    /// </summary>
    /// <remarks>
    /// y[n, c] = (1 / (H W)) Σ_{h, w} x[n, c, h, w]
    /// dx[n, c, h, w] = dy[n, c] / (H W)
    /// </remarks>
    /// <param name="x">Input (N, C, H, W) with H, W at least 1.</param>
    /// <returns>y (N, C).</returns>
    public static Tensor GlobalAvgPool(Tensor x)
    {
        const string op = nameof(GlobalAvgPool);
        var scope = ScopeOf(op, x);
        RequireFloat(op, x, nameof(x));
        RequireRank(op, x, nameof(x), 4, "(N, C, H, W)");
        int n = x.Shape[0], c = x.Shape[1], h = x.Shape[2], w = x.Shape[3];
        if (h < 1 || w < 1)
            throw new ArgumentException($"{op}: x is {x.Shape} but the mean of an empty (H, W) = ({h}, {w}) plane is undefined; H and W must be at least 1.", nameof(x));
        int s = checked(h * w);
        var y = scope.Allocate(new Shape(n, c));
        Pooling.GlobalAvgPoolForward(scope.Device.Kernels, x.View<float>(), y.View<float>(), n, c, s);
        Record(op, y, [x], g => Pooling.GlobalAvgPoolBackward(g.Kernels, g.OutputGrad, g.Into(x), n, c, s));
        return y;
    }

    private static Pool2dGeometry PoolGeometry(string op, Tensor x, (int H, int W) kernel, (int H, int W) stride, (int H, int W) padding, (int H, int W) dilation)
    {
        RequireFloat(op, x, nameof(x));
        RequireRank(op, x, nameof(x), 4, "(N, C, H, W)");
        var s = x.Shape;
        try
        {
            return Pool2dGeometry.Create(op, s[0], s[1], s[2], s[3], kernel, stride, padding, dilation);
        }
        catch (ArgumentException e) when (e is not ArgumentOutOfRangeException)
        {
            // Name the tensor's whole shape, not only its plane.
            throw new ArgumentException($"{e.Message} (x is {s})", nameof(x), e);
        }
    }
}
