namespace IlgpuTrain.Layers;

/// <summary>
/// torch.nn.Dropout: zeroes each element with probability <see cref="P"/> in training and scales
/// the rest by 1 / (1 - P); the identity in evaluation. No parameters.
/// </summary>
/// <remarks>
/// mask ~ Bernoulli(1 - P), from this layer's Rng for this step (ctx.Rng), keyed per element
/// y = x mask / (1 - P)   (Train)
/// y = x                  (Eval)
/// Default P = 0.5, as PyTorch. https://pytorch.org/docs/stable/generated/torch.nn.Dropout.html
/// </remarks>
/// <param name="P">Drop probability in [0, 1] (0.5).</param>
public sealed record Dropout(float P = 0.5f) : Layer
{
    /// <inheritdoc/>
    public override string Describe() => $"Dropout({P})";

    /// <inheritdoc/>
    public override Shape OutputShape(Shape input)
    {
        if (!(P >= 0f && P <= 1f))
            throw new ArgumentOutOfRangeException(nameof(P), P, $"Dropout: the drop probability P must be in [0, 1], got {P}.");
        return input;
    }

    /// <inheritdoc/>
    public override Tensor Forward(LayerContext ctx, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        return F.Dropout(x, P, ctx.Mode, ctx.Rng);
    }
}
