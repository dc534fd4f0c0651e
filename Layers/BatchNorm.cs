namespace IlgpuTrain.Layers;

/// <summary>
/// torch.nn.BatchNorm1d: batch normalization of (N, C) features or (N, C, L) sequences, per channel C.
/// The channel count comes from the input shape.
/// </summary>
/// <remarks>
/// Train: y = weight (x − mean) / √(var + eps) + bias with the batch's mean and biased variance per channel;
/// running_mean' = (1 − momentum) running_mean + momentum mean
/// running_var'  = (1 − momentum) running_var + momentum var m/(m − 1)   (unbiased, m values per channel)
/// num_batches_tracked' = num_batches_tracked + 1
/// The new buffers go to the new state Apply returns; the input state is never modified.
/// Eval: y = weight (x − running_mean) / √(running_var + eps) + bias.
/// Parameters weight (C) = 1, bias (C) = 0 (when Affine); buffers running_mean (C) = 0,
/// running_var (C) = 1, num_batches_tracked () = 0 (Int32). Defaults eps 1e-5, momentum 0.1.
/// https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm1d.html
/// </remarks>
/// <param name="Eps">Added to the variance.</param>
/// <param name="Momentum">Weight of the batch statistics in the running ones.</param>
/// <param name="Affine">Whether the layer has weight and bias.</param>
public sealed record BatchNorm1d(float Eps = 1e-5f, float Momentum = 0.1f, bool Affine = true) : Layer
{
    /// <inheritdoc/>
    public override string Describe() => BatchNormLayer.Describe(nameof(BatchNorm1d), Eps, Momentum, Affine);

    /// <inheritdoc/>
    public override IReadOnlyList<ParamSpec> Parameters(Shape input) => BatchNormLayer.Parameters(Channels(input), Affine);

    /// <inheritdoc/>
    public override IReadOnlyList<ParamSpec> Buffers(Shape input) => BatchNormLayer.Buffers(Channels(input));

    /// <inheritdoc/>
    public override Shape OutputShape(Shape input)
    {
        _ = Channels(input);
        return input;
    }

    /// <inheritdoc/>
    public override Tensor Forward(LayerContext ctx, Tensor x) => BatchNormLayer.Forward(ctx, x, Eps, Momentum, Affine);

    private int Channels(Shape input) =>
        input.Rank is 1 or 2 ? input[0] : throw ShapeError(input, "(C) features or (C, L) sequences");
}

/// <summary>torch.nn.BatchNorm2d: batch normalization of (N, C, H, W) images, per channel C over N, H and W.</summary>
/// <remarks>
/// The same math, parameters, buffers and defaults as <see cref="BatchNorm1d"/>, with the
/// statistics of each channel taken over m = N H W values.
/// https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html
/// </remarks>
/// <param name="Eps">Added to the variance.</param>
/// <param name="Momentum">Weight of the batch statistics in the running ones.</param>
/// <param name="Affine">Whether the layer has weight and bias.</param>
public sealed record BatchNorm2d(float Eps = 1e-5f, float Momentum = 0.1f, bool Affine = true) : Layer
{
    /// <inheritdoc/>
    public override string Describe() => BatchNormLayer.Describe(nameof(BatchNorm2d), Eps, Momentum, Affine);

    /// <inheritdoc/>
    public override IReadOnlyList<ParamSpec> Parameters(Shape input) => BatchNormLayer.Parameters(Channels(input), Affine);

    /// <inheritdoc/>
    public override IReadOnlyList<ParamSpec> Buffers(Shape input) => BatchNormLayer.Buffers(Channels(input));

    /// <inheritdoc/>
    public override Shape OutputShape(Shape input)
    {
        _ = Channels(input);
        return input;
    }

    /// <inheritdoc/>
    public override Tensor Forward(LayerContext ctx, Tensor x) => BatchNormLayer.Forward(ctx, x, Eps, Momentum, Affine);

    private int Channels(Shape input) =>
        input.Rank == 3 ? input[0] : throw ShapeError(input, "(C, H, W) images");
}

/// <summary>What BatchNorm1d and BatchNorm2d share: their parameters, buffers and forward.</summary>
internal static class BatchNormLayer
{
    public static string Describe(string name, float eps, float momentum, bool affine) =>
        $"{name}(eps={eps}, momentum={momentum}{(affine ? string.Empty : ", affine=False")})";

    public static IReadOnlyList<ParamSpec> Parameters(int c, bool affine) =>
        affine
            ? [new ParamSpec("weight", new Shape(c), Initializer.Ones), new ParamSpec("bias", new Shape(c), Initializer.Zeros)]
            : [];

    public static IReadOnlyList<ParamSpec> Buffers(int c) =>
    [
        new ParamSpec("running_mean", new Shape(c), Initializer.Zeros),
        new ParamSpec("running_var", new Shape(c), Initializer.Ones),
        new ParamSpec("num_batches_tracked", Shape.Scalar, Initializer.Zeros, DType.Int32),
    ];

    public static Tensor Forward(LayerContext ctx, Tensor x, float eps, float momentum, bool affine)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        var running = new BatchNormStats(ctx.ReadBuffer("running_mean"), ctx.ReadBuffer("running_var"), ctx.ReadBuffer("num_batches_tracked"));
        var updated = ctx.Training
            ? new BatchNormStats(ctx.WriteBuffer("running_mean"), ctx.WriteBuffer("running_var"), ctx.WriteBuffer("num_batches_tracked"))
            : null;
        return F.BatchNorm(x, affine ? ctx.Param("weight") : null, affine ? ctx.Param("bias") : null, running, ctx.Mode, momentum, eps, updated);
    }
}
