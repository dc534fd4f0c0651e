namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>Losses</c> kernels: plain loops, slow and obviously right.</summary>
internal static class LossesReference
{
    /// <summary>Reference: (x - t)^2.</summary>
    /// <param name="x">Input.</param>
    /// <param name="t">Target.</param>
    /// <returns>The loss.</returns>
    public static double MseReference(double x, double t) => (x - t) * (x - t);

    /// <summary>Reference: |x - t|.</summary>
    /// <param name="x">Input.</param>
    /// <param name="t">Target.</param>
    /// <returns>The loss.</returns>
    public static double L1Reference(double x, double t) => Math.Abs(x - t);

    /// <summary>Reference: 0.5 d^2 if |d| &lt; delta else delta (|d| - 0.5 delta).</summary>
    /// <param name="x">Input.</param>
    /// <param name="t">Target.</param>
    /// <param name="delta">The threshold.</param>
    /// <returns>The loss.</returns>
    public static double HuberReference(double x, double t, double delta)
    {
        double d = x - t;
        return Math.Abs(d) < delta ? 0.5 * d * d : delta * (Math.Abs(d) - (0.5 * delta));
    }

    /// <summary>Reference: 0.5 d^2 / beta if |d| &lt; beta else |d| - 0.5 beta.</summary>
    /// <param name="x">Input.</param>
    /// <param name="t">Target.</param>
    /// <param name="beta">The threshold.</param>
    /// <returns>The loss.</returns>
    public static double SmoothL1Reference(double x, double t, double beta)
    {
        double d = x - t;
        return Math.Abs(d) < beta ? 0.5 * d * d / beta : Math.Abs(d) - (0.5 * beta);
    }

    /// <summary>Reference: -(w t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))) = w t softplus(-x) + (1 - t) softplus(x), in float64.</summary>
    /// <param name="x">The logit.</param>
    /// <param name="t">The target probability.</param>
    /// <param name="w">The positive-class weight (1 for none).</param>
    /// <returns>The loss.</returns>
    public static double BceWithLogitsReference(double x, double t, double w = 1)
    {
        static double Softplus(double z) => z > 30 ? z + Math.Log(1 + Math.Exp(-z)) : Math.Log(1 + Math.Exp(z));
        return (w * t * Softplus(-x)) + ((1 - t) * Softplus(x));
    }

    /// <summary>Reference: d/dx (x - t)^2 = 2 (x - t). The target's derivative of MSE, L1, Huber and SmoothL1 is minus the input's.</summary>
    /// <param name="x">Input.</param>
    /// <param name="t">Target.</param>
    /// <returns>dl/dx.</returns>
    public static double MseGradReference(double x, double t) => 2 * (x - t);

    /// <summary>Reference: d/dx |x - t| = sign(x - t), with sign(0) = 0 (PyTorch's convention at the kink).</summary>
    /// <param name="x">Input.</param>
    /// <param name="t">Target.</param>
    /// <returns>dl/dx.</returns>
    public static double L1GradReference(double x, double t) => Math.Sign(x - t);

    /// <summary>Reference: d/dx Huber = clamp(x - t, -delta, delta).</summary>
    /// <param name="x">Input.</param>
    /// <param name="t">Target.</param>
    /// <param name="delta">The threshold.</param>
    /// <returns>dl/dx.</returns>
    public static double HuberGradReference(double x, double t, double delta) => Math.Min(Math.Max(x - t, -delta), delta);

    /// <summary>Reference: d/dx SmoothL1 = clamp((x - t) / beta, -1, 1); sign(x - t) for beta = 0 (the L1 loss).</summary>
    /// <param name="x">Input.</param>
    /// <param name="t">Target.</param>
    /// <param name="beta">The threshold.</param>
    /// <returns>dl/dx.</returns>
    public static double SmoothL1GradReference(double x, double t, double beta) =>
        beta == 0 ? Math.Sign(x - t) : Math.Min(Math.Max((x - t) / beta, -1), 1);

    /// <summary>Reference: d/dx BCE = (1 + (w - 1) t) sigmoid(x) - w t.</summary>
    /// <param name="x">The logit.</param>
    /// <param name="t">The target.</param>
    /// <param name="w">The positive-class weight.</param>
    /// <returns>dl/dx.</returns>
    public static double BceWithLogitsGradReference(double x, double t, double w = 1) =>
        ((1 + ((w - 1) * t)) / (1 + Math.Exp(-x))) - (w * t);

    /// <summary>Reference: d/dt BCE = w softplus(-x) - softplus(x) = -w log sigmoid(x) + log(1 - sigmoid(x)).</summary>
    /// <param name="x">The logit.</param>
    /// <param name="t">The target.</param>
    /// <param name="w">The positive-class weight.</param>
    /// <returns>dl/dt.</returns>
    public static double BceWithLogitsTargetGradReference(double x, double t, double w = 1)
    {
        static double Softplus(double z) => z > 30 ? z + Math.Log(1 + Math.Exp(-z)) : Math.Log(1 + Math.Exp(z));
        return (w * Softplus(-x)) - Softplus(x);
    }

    /// <summary>Reference: losses[i] = loss(x[i], t[i], w[i % C]) (w = 1 when <paramref name="posWeight"/> is empty).</summary>
    /// <param name="loss">The pointwise loss (x, t, w).</param>
    /// <param name="input">x (n).</param>
    /// <param name="target">t (n).</param>
    /// <param name="posWeight">w (C), or empty.</param>
    /// <param name="losses">Per-element losses (n).</param>
    public static void ForwardReference(Func<double, double, double, double> loss, ReadOnlySpan<float> input, ReadOnlySpan<float> target, ReadOnlySpan<float> posWeight, Span<double> losses)
    {
        ArgumentNullException.ThrowIfNull(loss);
        for (int i = 0; i < input.Length; i++)
            losses[i] = loss(input[i], target[i], posWeight.Length == 0 ? 1.0 : posWeight[i % posWeight.Length]);
    }

    /// <summary>Reference: the Mean (sum / n, NaN for n = 0) or Sum of the losses, in float64.</summary>
    /// <param name="losses">Per-element losses.</param>
    /// <param name="reduction">Mean or Sum.</param>
    /// <returns>The loss.</returns>
    public static double ReduceReference(ReadOnlySpan<double> losses, LossReduction reduction)
    {
        double s = 0;
        foreach (double l in losses)
            s += l;
        return reduction switch
        {
            LossReduction.Mean => s / losses.Length,
            LossReduction.Sum => s,
            _ => throw new ArgumentException($"ReduceReference: reduction {reduction} has no scalar loss.", nameof(reduction)),
        };
    }

    /// <summary>Reference: dz[i] = grad(x[i], t[i], w[i % C]) * (dLoss[0] / n for Mean, dLoss[0] for Sum, dLoss[i] for None).</summary>
    /// <param name="grad">The pointwise derivative (dl/dx or dl/dt) in float64.</param>
    /// <param name="input">x (n).</param>
    /// <param name="target">t (n).</param>
    /// <param name="posWeight">w (C), or empty.</param>
    /// <param name="dLoss">Upstream gradient (1, or n for None).</param>
    /// <param name="reduction">The forward's reduction.</param>
    /// <param name="dz">The gradient (n).</param>
    public static void BackwardReference(Func<double, double, double, double> grad, ReadOnlySpan<float> input, ReadOnlySpan<float> target, ReadOnlySpan<float> posWeight, ReadOnlySpan<float> dLoss, LossReduction reduction, Span<double> dz)
    {
        ArgumentNullException.ThrowIfNull(grad);
        int n = input.Length;
        for (int i = 0; i < n; i++)
        {
            double g = reduction switch
            {
                LossReduction.None => dLoss[i],
                LossReduction.Sum => dLoss[0],
                _ => dLoss[0] / (double)n,
            };
            dz[i] = grad(input[i], target[i], posWeight.Length == 0 ? 1.0 : posWeight[i % posWeight.Length]) * g;
        }
    }
}
