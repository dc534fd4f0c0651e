namespace IlgpuTrain.Layers;

/// <summary>
/// A residual block as torchvision writes its BasicBlock and Bottleneck:
/// y = relu(body(x) + downsample(x)), where downsample is the identity when null. The body's layers
/// are named at the block's own level and the projection <c>downsample</c>, so the parameter paths are
/// torchvision's: <c>conv1.weight</c>, <c>bn1.running_mean</c>, <c>downsample.0.weight</c>,
/// <c>downsample.1.bias</c>.
/// </summary>
/// <param name="Body">The residual branch, its layers named as in PyTorch (conv1, bn1, relu, conv2, bn2, ...).</param>
/// <param name="Downsample">The projection on the identity path (a 1x1 Conv2d and BatchNorm2d), or null for the identity.</param>
public sealed record ResNetBlock(NamedSequential Body, Layer? Downsample = null) : Layer
{
    /// <summary>The name of the projection's path segment, torchvision's.</summary>
    public const string DownsampleName = "downsample";

    /// <inheritdoc/>
    public override string Describe() => $"ResNetBlock({string.Join(", ", Body.Layers.Select(l => l.Name))}{(Downsample is null ? string.Empty : ", downsample " + Downsample.Describe())})";

    /// <inheritdoc/>
    public override IEnumerable<(string Name, Layer Layer)> Children() =>
        Downsample is null ? Body.Layers : [.. Body.Layers, (DownsampleName, Downsample)];

    /// <inheritdoc/>
    public override IReadOnlyList<Shape> ChildInputShapes(Shape input)
    {
        var shapes = Body.ChildInputShapes(input).ToList();
        if (Downsample is not null)
            shapes.Add(input);
        return shapes;
    }

    /// <inheritdoc/>
    public override Shape OutputShape(Shape input)
    {
        if (Body.Layers.Any(l => l.Name == DownsampleName))
            throw ShapeError(input, $"a body without a layer named \"{DownsampleName}\" (that name is the projection's)");
        var y = Body.OutputShape(input);
        var s = Downsample?.OutputShape(input) ?? input;
        if (y != s)
            throw ShapeError(input, $"a body that keeps the shape, but the body maps it to {y} and the {(Downsample is null ? "identity" : "downsample")} path gives {s}; add a Downsample projection");
        return y;
    }

    /// <inheritdoc/>
    public override Tensor Forward(LayerContext ctx, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        var h = Body.Forward(ctx, x);   // the body's layers run under this block's own prefix
        var s = Downsample is null ? x : ctx.RunChild(Downsample, DownsampleName, x, (uint)Body.Layers.Length);
        return F.Relu(F.Add(h, s));
    }
}
