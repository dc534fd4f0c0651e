namespace IlgpuTrain.Layers;

/// <summary>
/// A residual connection: y = x + block(x), optionally through a projection shortcut when the block
/// changes the shape: y = shortcut(x) + block(x). The block's parameters are named
/// <c>block.*</c> and the shortcut's <c>shortcut.*</c>.
/// </summary>
/// <param name="Block">The residual branch.</param>
/// <param name="Shortcut">The projection on the identity path (for instance a 1x1 Conv2d and BatchNorm2d); null for the identity.</param>
public sealed record Residual(Layer Block, Layer? Shortcut = null) : Layer
{
    /// <inheritdoc/>
    public override string Describe() => $"Residual({Block.Describe()}{(Shortcut is null ? string.Empty : ", shortcut " + Shortcut.Describe())})";

    /// <inheritdoc/>
    public override IEnumerable<(string Name, Layer Layer)> Children() =>
        Shortcut is null ? [("block", Block)] : [("block", Block), ("shortcut", Shortcut)];

    /// <inheritdoc/>
    public override Shape OutputShape(Shape input)
    {
        var y = Block.OutputShape(input);
        var s = Shortcut?.OutputShape(input) ?? input;
        if (y != s)
            throw ShapeError(input, $"a block that keeps the shape, but the block maps it to {y} and the {(Shortcut is null ? "identity" : "shortcut")} path gives {s}; add a projection Shortcut");
        return y;
    }

    /// <inheritdoc/>
    public override Tensor Forward(LayerContext ctx, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        var y = ctx.RunChild(Block, "block", x, 0);
        var s = Shortcut is null ? x : ctx.RunChild(Shortcut, "shortcut", x, 1);
        return F.Add(y, s);
    }
}
