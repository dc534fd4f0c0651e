namespace IlgpuTrain.Layers;

/// <summary>A parameter-free layer applied elementwise: the output shape is the input's.</summary>
public abstract record ElementwiseLayer : Layer
{
    /// <inheritdoc/>
    public override Shape OutputShape(Shape input) => input;
}

/// <summary>torch.nn.ReLU: max(x, 0).</summary>
public sealed record ReLU : ElementwiseLayer
{
    /// <inheritdoc/>
    public override Tensor Forward(LayerContext ctx, Tensor x) => F.Relu(x);
}

/// <summary>torch.nn.LeakyReLU: x for x &gt; 0, else slope x.</summary>
/// <param name="NegativeSlope">The slope for x &lt;= 0 (0.01).</param>
public sealed record LeakyReLU(float NegativeSlope = LeakyReluOp.DefaultNegativeSlope) : ElementwiseLayer
{
    /// <inheritdoc/>
    public override string Describe() => $"LeakyReLU({NegativeSlope})";

    /// <inheritdoc/>
    public override Tensor Forward(LayerContext ctx, Tensor x) => F.LeakyRelu(x, NegativeSlope);
}

/// <summary>torch.nn.GELU: x Phi(x), or the tanh approximation.</summary>
/// <param name="Approximate">Which GELU (erf by default, as PyTorch).</param>
public sealed record GELU(GeluApproximation Approximate = GeluApproximation.None) : ElementwiseLayer
{
    /// <inheritdoc/>
    public override Tensor Forward(LayerContext ctx, Tensor x) => F.Gelu(x, Approximate);
}

/// <summary>torch.nn.Tanh.</summary>
public sealed record Tanh : ElementwiseLayer
{
    /// <inheritdoc/>
    public override Tensor Forward(LayerContext ctx, Tensor x) => F.Tanh(x);
}

/// <summary>torch.nn.Sigmoid.</summary>
public sealed record Sigmoid : ElementwiseLayer
{
    /// <inheritdoc/>
    public override Tensor Forward(LayerContext ctx, Tensor x) => F.Sigmoid(x);
}

/// <summary>torch.nn.SiLU: x sigmoid(x).</summary>
public sealed record SiLU : ElementwiseLayer
{
    /// <inheritdoc/>
    public override Tensor Forward(LayerContext ctx, Tensor x) => F.Silu(x);
}

/// <summary>torch.nn.Softmax(dim = -1): softmax over the last dimension.</summary>
public sealed record Softmax : ElementwiseLayer
{
    /// <inheritdoc/>
    public override Tensor Forward(LayerContext ctx, Tensor x) => F.Softmax(x);
}

/// <summary>torch.nn.LogSoftmax(dim = -1).</summary>
public sealed record LogSoftmax : ElementwiseLayer
{
    /// <inheritdoc/>
    public override Tensor Forward(LayerContext ctx, Tensor x) => F.LogSoftmax(x);
}
