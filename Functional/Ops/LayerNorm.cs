using Kernel = IlgpuTrain.Kernels.LayerNorm;

namespace IlgpuTrain.Functional;

public static partial class F
{
    /// <summary>
    /// Layer normalization, torch.nn.functional.layer_norm: normalizes over the last dimensions of
    /// x given by <paramref name="normalizedShape"/>, each sample on its own (the same in train and eval).
    /// </summary>
    /// <remarks>
    /// With D = the product of normalized_shape and the rows x_i (D) of x seen as (N, D):
    /// mean = (1/D) Σ_j x_j,  var = (1/D) Σ_j (x_j − mean)²   (biased)
    /// x̂ = (x − mean) / √(var + eps),  y = weight x̂ + bias
    /// dx = rstd (g − mean_j g − x̂ mean_j(g x̂)),  g = dy weight,  rstd = 1/√(var + eps)
    /// dweight = Σ_rows dy x̂,  dbias = Σ_rows dy
    /// Defaults as PyTorch: eps 1e-5. https://pytorch.org/docs/stable/generated/torch.nn.LayerNorm.html
    /// </remarks>
    /// <param name="x">Input (..., normalized_shape).</param>
    /// <param name="normalizedShape">The trailing dimensions to normalize over (at least one value).</param>
    /// <param name="weight">gamma (normalized_shape), or null for 1.</param>
    /// <param name="bias">beta (normalized_shape), or null for 0.</param>
    /// <param name="eps">Added to the variance.</param>
    /// <returns>y, the shape of x.</returns>
    public static Tensor LayerNorm(Tensor x, Shape normalizedShape, Tensor? weight = null, Tensor? bias = null, float eps = 1e-5f)
    {
        const string op = nameof(LayerNorm);
        ArgumentNullException.ThrowIfNull(normalizedShape);
        var scope = ScopeOf(op, x);
        RequireFloat(op, x, nameof(x));
        int k = normalizedShape.Rank;
        if (k == 0 || normalizedShape.Length == 0)
            throw new ArgumentException($"{op}: normalized_shape {normalizedShape} must have at least one dimension and one value.", nameof(normalizedShape));
        bool trailing = x.Shape.Rank >= k;
        for (int i = 0; trailing && i < k; i++)
            trailing = x.Shape[x.Shape.Rank - k + i] == normalizedShape[i];
        if (!trailing)
            throw new ArgumentException($"{op}: x is {x.Shape} but normalized_shape is {normalizedShape}; x must end with those dimensions.", nameof(x));
        foreach (var (t, name) in new[] { (weight, nameof(weight)), (bias, nameof(bias)) })
        {
            if (t is null)
                continue;
            _ = ScopeOf(op, x, t);
            RequireFloat(op, t, name);
            if (t.Shape != normalizedShape)
                throw new ArgumentException($"{op}: {name} is {t.Shape} but normalized_shape is {normalizedShape}; they must be equal.", name);
        }

        int d = checked((int)normalizedShape.Length);
        int n = checked((int)(x.Length / d));
        var host = scope.Device.Kernels;
        var xv = x.View<float>();
        ArrayView<float>? gv = weight?.View<float>();
        ArrayView<float>? bv = bias?.View<float>();
        var mean = scope.Scratch<float>(Math.Max(1, n)).SubView(0, n);
        var rstd = scope.Scratch<float>(Math.Max(1, n)).SubView(0, n);
        var y = scope.Allocate(x.Shape);
        Kernel.Forward(host, xv, gv, bv, y.View<float>(), mean, rstd, n, d, eps);

        Record(op, y, [x, weight, bias], g =>
        {
            var dy = g.OutputGrad;
            if (g.Needs(x))
                Kernel.InputGrad(g.Kernels, xv, dy, gv, mean, rstd, g.Into(x), n, d);
            bool needW = weight is not null && g.Needs(weight);
            bool needB = bias is not null && g.Needs(bias);
            if (needW || needB)
            {
                var dgamma = needW ? g.Into(weight!) : g.Scope.Scratch<float>(d);
                var dbeta = needB ? g.Into(bias!) : g.Scope.Scratch<float>(d);
                Kernel.ParamGrads(g.Kernels, xv, dy, mean, rstd, dgamma, dbeta, n, d);
            }
        });
        return y;
    }
}
