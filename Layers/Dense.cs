namespace IlgpuTrain.Layers;

/// <summary>
/// Fully connected layer, torch.nn.Linear: y = x W^T + b.
/// </summary>
/// <remarks>
/// weight (F, D), bias (F). Input (N, ..., D), output (N, ..., F).
/// Init (PyTorch's default): W ~ U(-1/sqrt(D), 1/sqrt(D)) (kaiming_uniform_ with a = sqrt 5), b ~ U(-1/sqrt(D), 1/sqrt(D)).
/// </remarks>
/// <param name="Features">Output features F.</param>
/// <param name="UseBias">Whether the layer has a bias.</param>
/// <param name="WeightInit">Weight initialization.</param>
public sealed record Dense(int Features, bool UseBias = true, WeightInit WeightInit = WeightInit.Default) : Layer
{
    /// <inheritdoc/>
    public override string Describe() => $"Dense({Features}{(UseBias ? string.Empty : ", no bias")})";

    /// <inheritdoc/>
    public override IReadOnlyList<ParamSpec> Parameters(Shape input)
    {
        int d = InFeatures(input);
        var w = new Shape(Features, d);
        var fans = Fans.Of(w);
        return UseBias
            ? [new ParamSpec("weight", w, WeightInit.For(fans)), new ParamSpec("bias", new Shape(Features), Initializer.FanInBias(fans))]
            : [new ParamSpec("weight", w, WeightInit.For(fans))];
    }

    /// <inheritdoc/>
    public override Shape OutputShape(Shape input)
    {
        _ = InFeatures(input);
        var dims = input.ToArray();
        dims[^1] = Features;
        return new Shape(dims);
    }

    /// <inheritdoc/>
    public override Tensor Forward(LayerContext ctx, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        var weight = ctx.Param("weight");
        if (weight.Shape.Rank != 2 || weight.Shape[0] != Features || weight.Shape[1] != x.Shape[-1])
        {
            var sample = new Shape(x.Shape.ToArray()[1..]);
            throw ShapeError(sample, $"(..., {(weight.Shape.Rank == 2 ? weight.Shape[1] : -1)}) features, the width its weight {weight.Shape} was initialized for");
        }

        return F.Linear(x, weight, UseBias ? ctx.Param("bias") : null);
    }

    private int InFeatures(Shape input)
    {
        if (Features < 1)
            throw new ArgumentOutOfRangeException(nameof(Features), Features, $"Dense needs at least 1 output feature, got {Features}.");
        if (input.Rank < 1)
            throw ShapeError(input, "(..., D) features in the last dimension");
        return input[-1];
    }
}

/// <summary>Flattens every dimension but the batch, torch.nn.Flatten: (N, C, H, W) to (N, C*H*W). No parameters.</summary>
public sealed record Flatten : Layer
{
    /// <inheritdoc/>
    public override Shape OutputShape(Shape input) => new(checked((int)input.Length));

    /// <inheritdoc/>
    public override Tensor Forward(LayerContext ctx, Tensor x) => F.Flatten(x);
}
