namespace IlgpuTrain.Layers;

/// <summary>
/// torch.nn.Embedding: a lookup table of <see cref="NumEmbeddings"/> vectors of
/// <see cref="EmbeddingDim"/> features. Its input is an Int32 tensor of indices.
/// </summary>
/// <remarks>
/// weight (V, D), V = NumEmbeddings, D = EmbeddingDim. Per-sample input (L) of Int32 indices (any shape), output (L, D).
/// y[n, l, :] = weight[x[n, l], :]
/// dweight[v, :] = sum of dy over positions whose index is v; the padding row gets no gradient.
/// Init (PyTorch's default): weight ~ N(0, 1), the padding_idx row zero.
/// https://pytorch.org/docs/stable/generated/torch.nn.Embedding.html
/// </remarks>
/// <param name="NumEmbeddings">Vocabulary size V (at least 1).</param>
/// <param name="EmbeddingDim">Features per vector D (at least 1).</param>
/// <param name="PaddingIdx">A row in [-V, V) that is initialized to zero and never trained, or null.</param>
public sealed record Embedding(int NumEmbeddings, int EmbeddingDim, int? PaddingIdx = null) : Layer
{
    /// <summary>The standard deviation of the initial weights: 1 as nn.Embedding draws them, 0.02 as GPT's token embeddings.</summary>
    public double InitStd { get; init; } = 1;

    /// <inheritdoc/>
    public override string Describe() => $"Embedding({NumEmbeddings}, {EmbeddingDim}{(PaddingIdx is int p ? $", padding_idx {p}" : string.Empty)})";

    /// <inheritdoc/>
    public override IReadOnlyList<ParamSpec> Parameters(Shape input)
    {
        Validate();
        return [new ParamSpec("weight", new Shape(NumEmbeddings, EmbeddingDim), new EmbeddingInit(Padding()) { Std = InitStd })];
    }

    /// <inheritdoc/>
    public override Shape OutputShape(Shape input)
    {
        ArgumentNullException.ThrowIfNull(input);
        Validate();
        return new Shape(input.ToArray().Append(EmbeddingDim).ToArray());
    }

    /// <inheritdoc/>
    public override Tensor Forward(LayerContext ctx, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        return F.Embedding(F.Indices(x), ctx.Param("weight"), PaddingIdx);
    }

    private int? Padding() => IlgpuTrain.Kernels.Embedding.NormalizePadding(Describe(), PaddingIdx, NumEmbeddings);

    private void Validate()
    {
        if (NumEmbeddings < 1)
            throw new ArgumentOutOfRangeException(nameof(NumEmbeddings), NumEmbeddings, $"Embedding needs at least 1 row (NumEmbeddings), got {NumEmbeddings}.");
        if (EmbeddingDim < 1)
            throw new ArgumentOutOfRangeException(nameof(EmbeddingDim), EmbeddingDim, $"Embedding needs at least 1 feature (EmbeddingDim), got {EmbeddingDim}.");
        _ = Padding();
    }
}

/// <summary>PyTorch's nn.Embedding init: N(0, 1) everywhere, then the padding row set to zero.</summary>
/// <param name="PaddingRow">The row to zero, in [0, V), or null.</param>
public sealed record EmbeddingInit(int? PaddingRow) : Initializer
{
    /// <summary>The standard deviation of the normal draws (1, nn.Embedding's).</summary>
    public double Std { get; init; } = 1;

    /// <inheritdoc/>
    public override float[] Sample(Shape shape, Rng rng)
    {
        ArgumentNullException.ThrowIfNull(shape);
        var v = Normal(Std).Sample(shape, rng);
        if (PaddingRow is int p && shape.Rank == 2)
            Array.Clear(v, p * shape[1], shape[1]);
        return v;
    }
}
