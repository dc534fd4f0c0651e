using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

/// <summary>
/// An activation function f run by <see cref="Activations"/>: <see cref="IUnaryOp.Apply{T}(T)"/> is
/// f(x) and <see cref="Derivative{T}(T)"/> is f'(x), both computed from the input x, both written
/// once over lanes (one float in kernels, eight in the managed loop).
/// </summary>
/// <remarks>
/// Backward is dx = dy * f'(x), so only the forward input needs to be kept. At kinks the
/// derivative is PyTorch's: ReLU'(0) = 0, LeakyReLU'(0) = negative_slope.
/// </remarks>
public interface IActivationOp : IUnaryOp
{
    /// <summary>f'(x), the derivative of f at the forward input x, in each lane.</summary>
    /// <typeparam name="T">The lane type.</typeparam>
    /// <param name="x">The forward input.</param>
    /// <returns>f'(x).</returns>
    T Derivative<T>(T x)
        where T : struct, ILanes<T>;
}

// Branches are selects: both sides are computed in every lane and the mask picks one, so a lane
// never branches (a NaN or inf on the side not taken is discarded).

/// <summary>y = max(x, 0); y' = 1 for x &gt; 0, else 0 (ReLU'(0) = 0, as PyTorch).</summary>
public readonly struct ReluOp : IActivationOp
{
    // "x <= 0 ? 0 : x" rather than a max: PTX max.f32 drops NaN, PyTorch's relu keeps it. NaN
    // compares false and passes through; -0 becomes +0.

    /// <inheritdoc/>
    public T Apply<T>(T x)
        where T : struct, ILanes<T> => T.Select(T.LessOrEqual(x, 0f), 0f, x);

    /// <inheritdoc/>
    public T Derivative<T>(T x)
        where T : struct, ILanes<T> => T.Select(T.LessOrEqual(x, 0f), 0f, 1f);
}

/// <summary>y = x for x &gt; 0, else NegativeSlope * x; y' = 1 for x &gt; 0, else NegativeSlope.</summary>
/// <param name="NegativeSlope">Slope for x &lt;= 0; PyTorch's default is <see cref="DefaultNegativeSlope"/>.</param>
public readonly record struct LeakyReluOp(float NegativeSlope) : IActivationOp
{
    /// <summary>PyTorch's default negative_slope, 0.01.</summary>
    public const float DefaultNegativeSlope = 0.01f;

    /// <inheritdoc/>
    public T Apply<T>(T x)
        where T : struct, ILanes<T> => T.Select(T.Greater(x, 0f), x, x * NegativeSlope);

    /// <inheritdoc/>
    public T Derivative<T>(T x)
        where T : struct, ILanes<T> => T.Select(T.Greater(x, 0f), 1f, NegativeSlope);
}

/// <summary>
/// y = 0.5 x (1 + erf(x / sqrt 2)) = x Phi(x) (exact GELU, PyTorch approximate='none');
/// y' = Phi(x) + x phi(x), phi(x) = exp(-x^2/2) / sqrt(2 pi).
/// </summary>
public readonly struct GeluOp : IActivationOp
{
    private const float InvSqrt2 = 0.707106781186547524f;
    private const float InvSqrt2Pi = 0.398942280401432678f;

    /// <inheritdoc/>
    public T Apply<T>(T x)
        where T : struct, ILanes<T> => 0.5f * x * (1f + ActivationMath.Erf(x * InvSqrt2));

    /// <inheritdoc/>
    public T Derivative<T>(T x)
        where T : struct, ILanes<T>
    {
        T cdf = 0.5f * (1f + ActivationMath.Erf(x * InvSqrt2));
        T pdf = LaneMath.Exp(-0.5f * x * x) * InvSqrt2Pi;
        return cdf + (x * pdf);
    }
}

/// <summary>
/// y = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3) (PyTorch approximate='tanh');
/// y' = 0.5 (1 + tanh u) + 0.5 x sech^2(u) sqrt(2/pi) (1 + 3 * 0.044715 x^2).
/// </summary>
/// <remarks>
/// Evaluated as y = x sigmoid(2u), the same function: 0.5 (1 + tanh u) = sigmoid(2u) and
/// sech^2(u) = 4 sigmoid(2u) sigmoid(-2u). This never calls tanh (PTX's is approximate) and
/// has no cancellation in 1 + tanh(u) for negative x.
/// </remarks>
public readonly struct GeluTanhOp : IActivationOp
{
    private const float Sqrt2OverPi = 0.797884560802865356f;
    private const float Kappa = 0.044715f;

    /// <inheritdoc/>
    public T Apply<T>(T x)
        where T : struct, ILanes<T>
    {
        T u = Sqrt2OverPi * x * (1f + (Kappa * x * x));
        return x * ActivationMath.Sigmoid(2f * u);
    }

    /// <inheritdoc/>
    public T Derivative<T>(T x)
        where T : struct, ILanes<T>
    {
        T z = 2f * Sqrt2OverPi * x * (1f + (Kappa * x * x));
        T e = LaneMath.Exp(-T.Abs(z));
        T p = 1f / (1f + e); // sigmoid(|z|)
        T q = e * p;         // sigmoid(-|z|)
        T s = T.Select(T.Less(z, 0f), q, p);
        T pq = p * q;
        T du = Sqrt2OverPi * (1f + (3f * Kappa * x * x));
        // pq is exactly 0 once |x| > ~10, while du/dx grows as x^2: skip 0 * inf for huge |x|.
        return T.Select(T.Equal(pq, 0f), s, s + (2f * x * pq * du));
    }
}

/// <summary>y = tanh(x); y' = 1 - tanh^2(x) = sech^2(x).</summary>
public readonly struct TanhOp : IActivationOp
{
    /// <inheritdoc/>
    public T Apply<T>(T x)
        where T : struct, ILanes<T> => ActivationMath.Tanh(x);

    /// <inheritdoc/>
    public T Derivative<T>(T x)
        where T : struct, ILanes<T>
    {
        T a = T.Abs(x);
        T t = ActivationMath.Tanh(x);
        // sech^2(a) = 4e / (1 + e)^2 with e = exp(-2a): no cancellation in 1 - tanh^2 near 1, no overflow.
        T e = LaneMath.Exp(-2f * a);
        T d = 1f + e;
        return T.Select(T.Less(a, ActivationMath.TanhSmall), 1f - (t * t), 4f * e / (d * d));
    }
}

/// <summary>y = sigmoid(x) = 1 / (1 + exp(-x)); y' = sigmoid(x) sigmoid(-x).</summary>
public readonly struct SigmoidOp : IActivationOp
{
    /// <inheritdoc/>
    public T Apply<T>(T x)
        where T : struct, ILanes<T> => ActivationMath.Sigmoid(x);

    /// <inheritdoc/>
    public T Derivative<T>(T x)
        where T : struct, ILanes<T>
    {
        // sigmoid(x) sigmoid(-x) = e / (1 + e)^2 with e = exp(-|x|): symmetric, exact for large |x|,
        // where sigmoid(x) (1 - sigmoid(x)) would cancel to 0.
        T e = LaneMath.Exp(-T.Abs(x));
        T p = 1f / (1f + e);
        return e * p * p;
    }
}

/// <summary>y = x sigmoid(x) (SiLU, swish); y' = sigmoid(x) (1 + x sigmoid(-x)).</summary>
public readonly struct SiluOp : IActivationOp
{
    /// <inheritdoc/>
    public T Apply<T>(T x)
        where T : struct, ILanes<T> => x * ActivationMath.Sigmoid(x);

    /// <inheritdoc/>
    public T Derivative<T>(T x)
        where T : struct, ILanes<T>
    {
        T e = LaneMath.Exp(-T.Abs(x));
        T p = 1f / (1f + e); // sigmoid(|x|)
        T q = e * p;         // sigmoid(-|x|)
        T negative = T.Less(x, 0f);
        return T.Select(negative, q, p) * (1f + (x * T.Select(negative, p, q)));
    }
}

/// <summary>
/// Float special functions for activations, accurate on every backend, written once over lanes.
/// They use only <see cref="LaneMath.Exp{T}(T)"/>, +, *, / and selects: on PTX, XMath.Tanh is
/// <c>tanh.approx.f32</c> (relative error about 5e-4), too coarse for training and gradient
/// checks, and .NET has no erf for floats.
/// </summary>
public static class ActivationMath
{
    /// <summary>Below this |x|, <see cref="Tanh"/> uses a rational function instead of exp.</summary>
    public const float TanhSmall = 0.625f;

    /// <summary>erf(x) in float (NaN for NaN): at most about 1.2 ulp from the exact value (0.99 ulp with FMA).</summary>
    /// <typeparam name="T">The lane type.</typeparam>
    /// <param name="x">Argument.</param>
    /// <returns>erf(x).</returns>
    /// <remarks>
    /// Norbert Juffa's faithfully rounded erff, "Efficient faithfully-rounded implementation of
    /// error function erff", https://stackoverflow.com/questions/35148198 (also MLX's
    /// metal/kernels/erf.h): an odd minimax polynomial in x^2 for |x| &lt;= 0.927734375, which
    /// keeps full relative accuracy near 0, and 1 - exp(-|x| + poly(|x|)) above. ILGPU has no FMA
    /// intrinsic, so the Horner steps round twice; measured in float emulation: 1.13 ulp,
    /// 6.8e-8 absolute at worst. Both pieces are computed and the lane's is selected.
    /// </remarks>
    public static T Erf<T>(T x)
        where T : struct, ILanes<T>
    {
        T t = T.Abs(x);
        T s = x * x;
        T r = (-1.72853470e-5f * t) + 3.83197126e-4f;
        T u = (-3.88396438e-3f * t) + 2.42546219e-2f;
        r = (r * s) + u;
        r = (r * t) - 1.06777877e-1f;
        r = (r * t) - 6.34846687e-1f;
        r = (r * t) - 1.28717512e-1f;
        r = (r * t) - t;
        r = 1f - LaneMath.Exp(r);
        T large = T.Select(T.Less(x, 0f), -r, r);

        T p = -5.96761703e-4f;
        p = (p * s) + 4.99119423e-3f;
        p = (p * s) - 2.67681349e-2f;
        p = (p * s) + 1.12819925e-1f;
        p = (p * s) - 3.76125336e-1f;
        p = (p * s) + 1.28379166e-1f;
        return T.Select(T.Greater(t, 0.927734375f), large, (p * x) + x);
    }

    /// <summary>tanh(x) in float (NaN for NaN), within about 1.5 ulp for every x; exactly +-1 for large |x|.</summary>
    /// <typeparam name="T">The lane type.</typeparam>
    /// <param name="x">Argument.</param>
    /// <returns>tanh(x).</returns>
    /// <remarks>
    /// |x| &lt; 0.625: Lambert's continued fraction for tanh truncated after the term 9, written
    /// as a - a s (315 + 14 s) / (945 + 420 s + 15 s^2) with s = a^2 (relative error 7.5e-10 in
    /// exact arithmetic), so tiny |x| does not cancel as 1 - 2/(e^{2x} + 1) would.
    /// |x| &gt;= 0.625: (1 - e) / (1 + e) with e = exp(-2|x|) &lt;= 0.29, which cannot overflow
    /// and reaches exactly 1 once e underflows.
    /// </remarks>
    public static T Tanh<T>(T x)
        where T : struct, ILanes<T>
    {
        T a = T.Abs(x);
        T s = a * a;
        T c = ((14f * s) + 315f) / ((((15f * s) + 420f) * s) + 945f);
        T e = LaneMath.Exp(-2f * a);
        T t = T.Select(T.Less(a, TanhSmall), a - (a * s * c), (1f - e) / (1f + e));
        return T.Select(T.Less(x, 0f), -t, t);
    }

    /// <summary>sigmoid(x) = 1 / (1 + exp(-x)) in float, in [0, 1] (NaN for NaN), stable for every x.</summary>
    /// <typeparam name="T">The lane type.</typeparam>
    /// <param name="x">Argument.</param>
    /// <returns>sigmoid(x).</returns>
    /// <remarks>
    /// Uses e = exp(-|x|) &lt;= 1: 1 / (1 + e) for x &gt;= 0 and e / (1 + e) for x &lt; 0, so
    /// exp never overflows and large negative x keeps its relative accuracy (sigmoid(-100) is
    /// 3.7e-44, not 0/0 or 1 - 1).
    /// </remarks>
    public static T Sigmoid<T>(T x)
        where T : struct, ILanes<T>
    {
        T e = LaneMath.Exp(-T.Abs(x));
        T p = 1f / (1f + e);
        return T.Select(T.Less(x, 0f), e * p, p);
    }
}
