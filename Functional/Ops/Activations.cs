namespace IlgpuTrain.Functional;

public static partial class F
{
    /// <summary>ReLU: max(x, 0); backward dx = dy for x &gt; 0, else 0 (PyTorch's value at 0).</summary>
    /// <param name="x">Input, any shape.</param>
    /// <returns>y, the shape of x.</returns>
    public static Tensor Relu(Tensor x) =>
        Pointwise(nameof(Relu), x, (h, a, b) => Activations.Relu(h, a, b), (h, a, dy, dx) => Activations.ReluBackward(h, a, dy, dx));

    /// <summary>LeakyReLU: x for x &gt; 0, else slope x (slope 0.01, as PyTorch).</summary>
    /// <param name="x">Input, any shape.</param>
    /// <param name="negativeSlope">Slope for x &lt;= 0.</param>
    /// <returns>y, the shape of x.</returns>
    public static Tensor LeakyRelu(Tensor x, float negativeSlope = LeakyReluOp.DefaultNegativeSlope) =>
        Pointwise(nameof(LeakyRelu), x, (h, a, b) => Activations.LeakyRelu(h, a, b, negativeSlope), (h, a, dy, dx) => Activations.LeakyReluBackward(h, a, dy, dx, negativeSlope));

    /// <summary>GELU: x Phi(x) (erf form, PyTorch's default) or its tanh approximation.</summary>
    /// <param name="x">Input, any shape.</param>
    /// <param name="approximate">Which GELU.</param>
    /// <returns>y, the shape of x.</returns>
    public static Tensor Gelu(Tensor x, GeluApproximation approximate = GeluApproximation.None) =>
        Pointwise(nameof(Gelu), x, (h, a, b) => Activations.Gelu(h, a, b, approximate), (h, a, dy, dx) => Activations.GeluBackward(h, a, dy, dx, approximate));

    /// <summary>tanh(x); backward dx = dy (1 - tanh^2 x).</summary>
    /// <param name="x">Input, any shape.</param>
    /// <returns>y, the shape of x.</returns>
    public static Tensor Tanh(Tensor x) =>
        Pointwise(nameof(Tanh), x, (h, a, b) => Activations.Tanh(h, a, b), (h, a, dy, dx) => Activations.TanhBackward(h, a, dy, dx));

    /// <summary>Sigmoid 1 / (1 + e^-x); backward dx = dy s (1 - s).</summary>
    /// <param name="x">Input, any shape.</param>
    /// <returns>y, the shape of x.</returns>
    public static Tensor Sigmoid(Tensor x) =>
        Pointwise(nameof(Sigmoid), x, (h, a, b) => Activations.Sigmoid(h, a, b), (h, a, dy, dx) => Activations.SigmoidBackward(h, a, dy, dx));

    /// <summary>SiLU (swish): x sigmoid(x).</summary>
    /// <param name="x">Input, any shape.</param>
    /// <returns>y, the shape of x.</returns>
    public static Tensor Silu(Tensor x) =>
        Pointwise(nameof(Silu), x, (h, a, b) => Activations.Silu(h, a, b), (h, a, dy, dx) => Activations.SiluBackward(h, a, dy, dx));

    private static Tensor Pointwise(
        string op,
        Tensor x,
        Action<KernelHost, ArrayView<float>, ArrayView<float>> forward,
        Action<KernelHost, ArrayView<float>, ArrayView<float>, ArrayView<float>> backward)
    {
        var scope = ScopeOf(op, x);
        RequireFloat(op, x, nameof(x));
        var y = scope.Allocate(x.Shape);
        forward(scope.Device.Kernels, x.View<float>(), y.View<float>());
        // The backward reads the forward INPUT x, which the step keeps alive until it ends.
        Record(op, y, [x], g => backward(g.Kernels, x.View<float>(), g.OutputGrad, g.Into(x)));
        return y;
    }
}
