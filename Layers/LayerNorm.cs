namespace IlgpuTrain.Layers;

/// <summary>
/// torch.nn.LayerNorm: normalizes each sample over its trailing <see cref="NormalizedShape"/>
/// dimensions, the same in training and evaluation (no running statistics).
/// </summary>
/// <remarks>
/// With D = the product of normalized_shape, per sample (and per leading position):
/// mean = (1/D) Σ x,  var = (1/D) Σ (x − mean)²   (biased)
/// y = weight (x − mean) / √(var + eps) + bias
/// Parameters weight (normalized_shape) = 1 and bias (normalized_shape) = 0 when ElementwiseAffine.
/// Defaults eps 1e-5, elementwise_affine True. https://pytorch.org/docs/stable/generated/torch.nn.LayerNorm.html
/// </remarks>
/// <param name="NormalizedShape">The trailing dimensions to normalize over, such as (D) or (C, H, W).</param>
/// <param name="Eps">Added to the variance.</param>
/// <param name="ElementwiseAffine">Whether the layer has weight and bias.</param>
public sealed record LayerNorm(Shape NormalizedShape, float Eps = 1e-5f, bool ElementwiseAffine = true) : Layer
{
    /// <summary>A LayerNorm over the trailing dimensions <paramref name="normalizedShape"/> with the defaults (eps 1e-5, affine).</summary>
    /// <param name="normalizedShape">Such as 64, or 8, 4, 4.</param>
    public LayerNorm(params int[] normalizedShape)
        : this(new Shape(normalizedShape))
    {
    }

    /// <inheritdoc/>
    public override string Describe() => $"LayerNorm({NormalizedShape}, eps={Eps}{(ElementwiseAffine ? string.Empty : ", elementwise_affine=False")})";

    /// <inheritdoc/>
    public override IReadOnlyList<ParamSpec> Parameters(Shape input)
    {
        _ = OutputShape(input);
        return ElementwiseAffine
            ? [new ParamSpec("weight", NormalizedShape, Initializer.Ones), new ParamSpec("bias", NormalizedShape, Initializer.Zeros)]
            : [];
    }

    /// <inheritdoc/>
    public override Shape OutputShape(Shape input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (NormalizedShape is null || NormalizedShape.Rank == 0 || NormalizedShape.Length == 0)
            throw new ArgumentException($"LayerNorm needs a normalized_shape with at least one dimension and one value, got {NormalizedShape?.ToString() ?? "null"}.", nameof(NormalizedShape));
        int k = NormalizedShape.Rank;
        bool ok = input.Rank >= k;
        for (int i = 0; ok && i < k; i++)
            ok = input[input.Rank - k + i] == NormalizedShape[i];
        return ok ? input : throw ShapeError(input, $"(..., {string.Join(", ", NormalizedShape)}): trailing dimensions equal to normalized_shape");
    }

    /// <inheritdoc/>
    public override Tensor Forward(LayerContext ctx, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        return ElementwiseAffine
            ? F.LayerNorm(x, NormalizedShape, ctx.Param("weight"), ctx.Param("bias"), Eps)
            : F.LayerNorm(x, NormalizedShape, null, null, Eps);
    }
}
