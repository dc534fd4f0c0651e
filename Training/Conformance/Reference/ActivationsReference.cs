namespace IlgpuTrain.Training.Conformance;

// The spec of Kernels/Activations.cs: float64 math rounded once to float, with a float64 erf of
// our own (series, continued fraction).

/// <summary>The CPU reference (the spec) of the <c>Activations</c> kernels: plain loops, slow and obviously right.</summary>
internal static class ActivationsReference
{
    /// <summary>Reference ReLU: max(x, 0) in float64.</summary>
    /// <param name="x">Input.</param>
    /// <returns>f(x).</returns>
    public static double ReluReference(double x) => x > 0 ? x : 0;

    /// <summary>Reference ReLU derivative: 1 for x &gt; 0, else 0 (PyTorch's value at the kink).</summary>
    /// <param name="x">Input.</param>
    /// <returns>f'(x).</returns>
    public static double ReluDerivativeReference(double x) => x > 0 ? 1 : 0;

    /// <summary>Reference LeakyReLU: x for x &gt; 0, else negativeSlope * x.</summary>
    /// <param name="x">Input.</param>
    /// <param name="negativeSlope">Slope for x &lt;= 0.</param>
    /// <returns>f(x).</returns>
    public static double LeakyReluReference(double x, double negativeSlope) => x > 0 ? x : negativeSlope * x;

    /// <summary>Reference LeakyReLU derivative: 1 for x &gt; 0, else negativeSlope (so f'(0) = slope, as PyTorch).</summary>
    /// <param name="x">Input.</param>
    /// <param name="negativeSlope">Slope for x &lt;= 0.</param>
    /// <returns>f'(x).</returns>
    public static double LeakyReluDerivativeReference(double x, double negativeSlope) => x > 0 ? 1 : negativeSlope;

    /// <summary>Reference GELU in float64.</summary>
    /// <param name="x">Input.</param>
    /// <param name="approximate"><see cref="GeluApproximation.None"/>: x Phi(x) = 0.5 x erfc(-x / sqrt 2); <see cref="GeluApproximation.Tanh"/>: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).</param>
    /// <returns>f(x).</returns>
    public static double GeluReference(double x, GeluApproximation approximate = GeluApproximation.None)
    {
        if (approximate == GeluApproximation.Tanh)
            return 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + (0.044715 * x * x * x))));
        // 1 + erf(z) = erfc(-z): keeps relative accuracy for negative x.
        return 0.5 * x * ErfcReference(-x / Math.Sqrt(2));
    }

    /// <summary>Reference GELU derivative in float64.</summary>
    /// <param name="x">Input.</param>
    /// <param name="approximate">Which GELU.</param>
    /// <returns>None: Phi(x) + x phi(x). Tanh: 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi) (1 + 3 * 0.044715 x^2).</returns>
    public static double GeluDerivativeReference(double x, GeluApproximation approximate = GeluApproximation.None)
    {
        if (approximate == GeluApproximation.Tanh)
        {
            double c = Math.Sqrt(2 / Math.PI);
            double t = Math.Tanh(c * (x + (0.044715 * x * x * x)));
            return (0.5 * (1 + t)) + (0.5 * x * (1 - (t * t)) * c * (1 + (3 * 0.044715 * x * x)));
        }

        double cdf = 0.5 * ErfcReference(-x / Math.Sqrt(2));
        double pdf = Math.Exp(-0.5 * x * x) / Math.Sqrt(2 * Math.PI);
        return cdf + (x * pdf);
    }

    /// <summary>Reference tanh (Math.Tanh).</summary>
    /// <param name="x">Input.</param>
    /// <returns>f(x).</returns>
    public static double TanhReference(double x) => Math.Tanh(x);

    /// <summary>Reference tanh derivative: 1 - tanh^2(x).</summary>
    /// <param name="x">Input.</param>
    /// <returns>f'(x).</returns>
    public static double TanhDerivativeReference(double x)
    {
        double t = Math.Tanh(x);
        return 1 - (t * t);
    }

    /// <summary>Reference sigmoid: 1 / (1 + exp(-x)) (exp overflows to infinity, giving 0).</summary>
    /// <param name="x">Input.</param>
    /// <returns>f(x).</returns>
    public static double SigmoidReference(double x) => 1 / (1 + Math.Exp(-x));

    /// <summary>Reference sigmoid derivative: sigmoid(x) sigmoid(-x).</summary>
    /// <param name="x">Input.</param>
    /// <returns>f'(x).</returns>
    public static double SigmoidDerivativeReference(double x) => SigmoidReference(x) * SigmoidReference(-x);

    /// <summary>Reference SiLU: x sigmoid(x).</summary>
    /// <param name="x">Input.</param>
    /// <returns>f(x).</returns>
    public static double SiluReference(double x) => x * SigmoidReference(x);

    /// <summary>Reference SiLU derivative: sigmoid(x) + x sigmoid(x) (1 - sigmoid(x)).</summary>
    /// <param name="x">Input.</param>
    /// <returns>f'(x).</returns>
    public static double SiluDerivativeReference(double x)
    {
        double s = SigmoidReference(x);
        return s + (x * s * (1 - s));
    }

    /// <summary>Reference erf in float64, accurate to about 1e-16 relative.</summary>
    /// <param name="x">Argument.</param>
    /// <returns>erf(x).</returns>
    /// <remarks>
    /// |x| &lt; 2: erf(x) = (2/sqrt pi) exp(-x^2) sum_n 2^n x^(2n+1) / (1*3*...*(2n+1))
    /// (Abramowitz and Stegun 7.1.6), whose terms are all positive, so nothing cancels.
    /// |x| &gt;= 2: 1 - erfc(|x|) from the continued fraction of <see cref="ErfcReference"/>.
    /// </remarks>
    public static double ErfReference(double x)
    {
        if (double.IsNaN(x))
            return x;
        double a = Math.Abs(x);
        if (a >= ContinuedFractionFrom)
            return Math.CopySign(1 - ErfcContinuedFraction(a), x);
        double x2 = x * x;
        double term = x, sum = x;
        for (int n = 1; Math.Abs(term) > 1e-17 * Math.Abs(sum); n++)
        {
            term *= 2 * x2 / ((2 * n) + 1);
            sum += term;
        }

        return 2 / Math.Sqrt(Math.PI) * Math.Exp(-x2) * sum;
    }

    /// <summary>Reference erfc = 1 - erf in float64, with relative accuracy in the right tail.</summary>
    /// <param name="x">Argument.</param>
    /// <returns>erfc(x).</returns>
    /// <remarks>
    /// x &gt;= 2: erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...)))))
    /// (Abramowitz and Stegun 7.1.14), evaluated bottom-up from depth 60 (relative error about
    /// 2e-16 at x = 2, less beyond). Elsewhere 1 - <see cref="ErfReference"/>, which loses at
    /// most a factor 1/erfc(2) = 214 in relative accuracy.
    /// </remarks>
    public static double ErfcReference(double x) =>
        x >= ContinuedFractionFrom ? ErfcContinuedFraction(x) : 1 - ErfReference(x);

    // Where the continued fraction (depth 60) takes over from the series: both are below 3e-16 there.
    private const double ContinuedFractionFrom = 2;

    private static double ErfcContinuedFraction(double x)
    {
        double t = x;
        for (int n = 60; n >= 1; n--)
            t = x + (n / 2.0 / t);
        return Math.Exp(-x * x) / Math.Sqrt(Math.PI) / t;
    }

    /// <summary>Reference: y[i] = relu(x[i]).</summary>
    /// <param name="x">Input.</param>
    /// <param name="y">Output (may alias x).</param>
    public static void ReluReference(ReadOnlySpan<float> x, Span<float> y) => Forward(x, y, ReluReference);

    /// <summary>Reference: dx[i] = dy[i] * relu'(x[i]) (overwrites dx).</summary>
    /// <param name="x">Forward input.</param>
    /// <param name="dy">Gradient of the output.</param>
    /// <param name="dx">Gradient of the input (may alias dy).</param>
    public static void ReluBackwardReference(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx) =>
        Backward(x, dy, dx, ReluDerivativeReference);

    /// <summary>Reference: y[i] = leaky_relu(x[i]).</summary>
    /// <param name="x">Input.</param>
    /// <param name="y">Output.</param>
    /// <param name="negativeSlope">Slope for x &lt;= 0.</param>
    public static void LeakyReluReference(ReadOnlySpan<float> x, Span<float> y, float negativeSlope = LeakyReluOp.DefaultNegativeSlope) =>
        Forward(x, y, v => LeakyReluReference(v, negativeSlope));

    /// <summary>Reference: dx[i] = dy[i] * leaky_relu'(x[i]) (overwrites dx).</summary>
    /// <param name="x">Forward input.</param>
    /// <param name="dy">Gradient of the output.</param>
    /// <param name="dx">Gradient of the input.</param>
    /// <param name="negativeSlope">Slope for x &lt;= 0.</param>
    public static void LeakyReluBackwardReference(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx, float negativeSlope = LeakyReluOp.DefaultNegativeSlope) =>
        Backward(x, dy, dx, v => LeakyReluDerivativeReference(v, negativeSlope));

    /// <summary>Reference: y[i] = gelu(x[i]).</summary>
    /// <param name="x">Input.</param>
    /// <param name="y">Output.</param>
    /// <param name="approximate">Which GELU.</param>
    public static void GeluReference(ReadOnlySpan<float> x, Span<float> y, GeluApproximation approximate = GeluApproximation.None) =>
        Forward(x, y, v => GeluReference(v, approximate));

    /// <summary>Reference: dx[i] = dy[i] * gelu'(x[i]) (overwrites dx).</summary>
    /// <param name="x">Forward input.</param>
    /// <param name="dy">Gradient of the output.</param>
    /// <param name="dx">Gradient of the input.</param>
    /// <param name="approximate">Which GELU.</param>
    public static void GeluBackwardReference(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx, GeluApproximation approximate = GeluApproximation.None) =>
        Backward(x, dy, dx, v => GeluDerivativeReference(v, approximate));

    /// <summary>Reference: y[i] = tanh(x[i]).</summary>
    /// <param name="x">Input.</param>
    /// <param name="y">Output.</param>
    public static void TanhReference(ReadOnlySpan<float> x, Span<float> y) => Forward(x, y, TanhReference);

    /// <summary>Reference: dx[i] = dy[i] * (1 - tanh^2(x[i])) (overwrites dx).</summary>
    /// <param name="x">Forward input.</param>
    /// <param name="dy">Gradient of the output.</param>
    /// <param name="dx">Gradient of the input.</param>
    public static void TanhBackwardReference(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx) =>
        Backward(x, dy, dx, TanhDerivativeReference);

    /// <summary>Reference: y[i] = sigmoid(x[i]).</summary>
    /// <param name="x">Input.</param>
    /// <param name="y">Output.</param>
    public static void SigmoidReference(ReadOnlySpan<float> x, Span<float> y) => Forward(x, y, SigmoidReference);

    /// <summary>Reference: dx[i] = dy[i] * sigmoid'(x[i]) (overwrites dx).</summary>
    /// <param name="x">Forward input.</param>
    /// <param name="dy">Gradient of the output.</param>
    /// <param name="dx">Gradient of the input.</param>
    public static void SigmoidBackwardReference(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx) =>
        Backward(x, dy, dx, SigmoidDerivativeReference);

    /// <summary>Reference: y[i] = silu(x[i]).</summary>
    /// <param name="x">Input.</param>
    /// <param name="y">Output.</param>
    public static void SiluReference(ReadOnlySpan<float> x, Span<float> y) => Forward(x, y, SiluReference);

    /// <summary>Reference: dx[i] = dy[i] * silu'(x[i]) (overwrites dx).</summary>
    /// <param name="x">Forward input.</param>
    /// <param name="dy">Gradient of the output.</param>
    /// <param name="dx">Gradient of the input.</param>
    public static void SiluBackwardReference(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx) =>
        Backward(x, dy, dx, SiluDerivativeReference);

    private static void Forward(ReadOnlySpan<float> x, Span<float> y, Func<double, double> f)
    {
        for (int i = 0; i < y.Length; i++)
            y[i] = (float)f(x[i]);
    }

    private static void Backward(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx, Func<double, double> derivative)
    {
        for (int i = 0; i < dx.Length; i++)
            dx[i] = (float)(dy[i] * derivative(x[i]));
    }
}
