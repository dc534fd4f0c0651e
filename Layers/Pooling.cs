namespace IlgpuTrain.Layers;

/// <summary>torch.nn.MaxPool2d (ceil_mode false, dilation 1): the maximum of each window of each channel. No parameters.</summary>
/// <remarks>
/// y[n, c, oh, ow] = max over r, s &lt; K of x[n, c, oh S - P + r, ow S - P + s] (padding is -inf)
/// OH = floor((H + 2P - K) / S) + 1, and OW alike
/// Input (N, C, H, W), output (N, C, OH, OW). Defaults: stride = kernel size, padding 0 (at most K / 2).
/// https://pytorch.org/docs/stable/generated/torch.nn.MaxPool2d.html
/// </remarks>
/// <param name="KernelSize">Square window size K.</param>
/// <param name="Stride">Stride S; the kernel size when null.</param>
/// <param name="Padding">Implicit -inf padding P on every side.</param>
public sealed record MaxPool2d(int KernelSize, int? Stride = null, int Padding = 0) : Layer
{
    /// <inheritdoc/>
    public override string Describe() => PoolShapes.Describe(nameof(MaxPool2d), KernelSize, Stride, Padding, string.Empty);

    /// <inheritdoc/>
    public override Shape OutputShape(Shape input) => PoolShapes.Output(Describe(), input, KernelSize, Stride ?? KernelSize, Padding, ShapeError);

    /// <inheritdoc/>
    public override Tensor Forward(LayerContext ctx, Tensor x) => F.MaxPool2d(x, KernelSize, Stride, Padding);
}

/// <summary>torch.nn.AvgPool2d (ceil_mode false, no divisor override): the mean of each window of each channel. No parameters.</summary>
/// <remarks>
/// y[n, c, oh, ow] = (Σ over the window's taps inside the plane of x) / divisor
/// divisor = K K with CountIncludePad (the default), else the number of taps inside the plane
/// OH = floor((H + 2P - K) / S) + 1, and OW alike
/// Input (N, C, H, W), output (N, C, OH, OW). Defaults: stride = kernel size, padding 0 (at most K / 2), count_include_pad true.
/// https://pytorch.org/docs/stable/generated/torch.nn.AvgPool2d.html
/// </remarks>
/// <param name="KernelSize">Square window size K.</param>
/// <param name="Stride">Stride S; the kernel size when null.</param>
/// <param name="Padding">Implicit zero padding P on every side.</param>
/// <param name="CountIncludePad">Whether padded zeros count in the divisor.</param>
public sealed record AvgPool2d(int KernelSize, int? Stride = null, int Padding = 0, bool CountIncludePad = true) : Layer
{
    /// <inheritdoc/>
    public override string Describe() =>
        PoolShapes.Describe(nameof(AvgPool2d), KernelSize, Stride, Padding, CountIncludePad ? string.Empty : ", count_include_pad false");

    /// <inheritdoc/>
    public override Shape OutputShape(Shape input) => PoolShapes.Output(Describe(), input, KernelSize, Stride ?? KernelSize, Padding, ShapeError);

    /// <inheritdoc/>
    public override Tensor Forward(LayerContext ctx, Tensor x) => F.AvgPool2d(x, KernelSize, Stride, Padding, CountIncludePad);
}

/// <summary>
/// Global average pooling: the mean of each channel's plane, (N, C, H, W) to (N, C), as
/// torch.nn.AdaptiveAvgPool2d(1) followed by torch.nn.Flatten(). No parameters.
/// </summary>
/// <remarks>
/// y[n, c] = (1 / (H W)) Σ_{h, w} x[n, c, h, w]
/// </remarks>
public sealed record GlobalAvgPool : Layer
{
    /// <inheritdoc/>
    public override Shape OutputShape(Shape input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.Rank != 3 || input[1] < 1 || input[2] < 1)
            throw ShapeError(input, "(C, H, W) with H and W at least 1, giving (C)");
        return new Shape(input[0]);
    }

    /// <inheritdoc/>
    public override Tensor Forward(LayerContext ctx, Tensor x) => F.GlobalAvgPool(x);
}

/// <summary>Shape rules shared by the windowed pooling layers.</summary>
internal static class PoolShapes
{
    /// <summary>The layer's description, such as <c>MaxPool2d(3, stride 2, padding 1)</c>.</summary>
    internal static string Describe(string name, int kernel, int? stride, int padding, string extra) =>
        $"{name}({kernel}{(stride is { } s && s != kernel ? $", stride {s}" : string.Empty)}{(padding != 0 ? $", padding {padding}" : string.Empty)}{extra})";

    /// <summary>(C, OH, OW) for a per-sample (C, H, W); hyperparameter errors throw ArgumentOutOfRangeException, shape errors the layer's shape error.</summary>
    internal static Shape Output(string layer, Shape input, int kernel, int stride, int padding, Func<Shape, string, LayerShapeException> shapeError)
    {
        ArgumentNullException.ThrowIfNull(input);
        Pool2dGeometry.CheckWindow(layer, (kernel, kernel), (stride, stride), (padding, padding), (1, 1));
        if (input.Rank != 3)
            throw shapeError(input, "(C, H, W)");
        int oh = Pool2dGeometry.OutputSize(input[1], kernel, stride, padding, 1);
        int ow = Pool2dGeometry.OutputSize(input[2], kernel, stride, padding, 1);
        if (input[1] < 1 || input[2] < 1 || oh < 1 || ow < 1)
        {
            int least = Math.Max(1, kernel - (2 * padding));
            throw shapeError(input, $"(C, H, W) with H and W at least {least} (it would give ({input[0]}, {oh}, {ow}))");
        }

        return new Shape(input[0], oh, ow);
    }
}
