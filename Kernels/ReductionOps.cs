using ILGPU.Algorithms;

namespace IlgpuTrain.Kernels;

/// <summary>
/// A reduction of many floats to one, run by the <see cref="Reductions"/> kernels:
/// result = Finish(Combine(Map(x0), Map(x1), ..., Map(x(n-1))), n).
/// </summary>
/// <remarks>
/// The law every implementation obeys, which lets kernels split the work over threads and groups
/// in any grouping and order:
/// <list type="bullet">
/// <item><see cref="Identity"/> e is neutral: Combine(e, a) = Combine(a, e) = a. Empty slices
/// and idle threads contribute e.</item>
/// <item><see cref="Combine"/> is associative and commutative (exactly for max, up to float
/// rounding for sums; that rounding is what the deterministic mode pins down).</item>
/// <item><see cref="Map"/> is applied once to each element before it is combined, never to a
/// partial result.</item>
/// <item><see cref="Finish"/> is applied once, to the fully combined value, with the number of
/// elements reduced (the mean divides by it; the L2 norm takes a square root).</item>
/// </list>
/// Implementations are empty <c>readonly struct</c>s, so ILGPU specializes each kernel per
/// operator at no cost; they must not allocate or throw.
/// </remarks>
public interface IReduceOp
{
    /// <summary>The identity element e of <see cref="Combine"/>.</summary>
    float Identity { get; }

    /// <summary>
    /// Whether <see cref="Combine"/> is float addition. Kernels then accumulate each thread's
    /// slice with a compensated (float-float) sum instead of plain <see cref="Combine"/> calls.
    /// </summary>
    bool IsSum { get; }

    /// <summary>The value an element contributes, m(x).</summary>
    /// <param name="x">An input element.</param>
    /// <returns>m(x).</returns>
    float Map(float x);

    /// <summary>Combines two partial results (associative, commutative, with <see cref="Identity"/> neutral).</summary>
    /// <param name="a">A partial result.</param>
    /// <param name="b">Another partial result.</param>
    /// <returns>The combined partial result.</returns>
    float Combine(float a, float b);

    /// <summary>Turns the combined value of <paramref name="count"/> elements into the result.</summary>
    /// <param name="total">Combine over all mapped elements (<see cref="Identity"/> when there are none).</param>
    /// <param name="count">Number of elements reduced (0 for an empty input).</param>
    /// <returns>The reduction's value.</returns>
    float Finish(float total, int count);
}

/// <summary>Sum: Σ x. Empty sum is 0.</summary>
public readonly struct SumOp : IReduceOp
{
    /// <inheritdoc/>
    public float Identity => 0f;

    /// <inheritdoc/>
    public bool IsSum => true;

    /// <inheritdoc/>
    public float Map(float x) => x;

    /// <inheritdoc/>
    public float Combine(float a, float b) => a + b;

    /// <inheritdoc/>
    public float Finish(float total, int count) => total;
}

/// <summary>Mean: (Σ x) / n. The mean of an empty input is NaN (0/0), as in PyTorch.</summary>
public readonly struct MeanOp : IReduceOp
{
    /// <inheritdoc/>
    public float Identity => 0f;

    /// <inheritdoc/>
    public bool IsSum => true;

    /// <inheritdoc/>
    public float Map(float x) => x;

    /// <inheritdoc/>
    public float Combine(float a, float b) => a + b;

    /// <inheritdoc/>
    public float Finish(float total, int count) => total / count;
}

/// <summary>
/// Max: max x, propagating NaN as PyTorch does (a NaN anywhere gives NaN). The max of an empty
/// input is undefined; launchers throw before reaching this operator.
/// </summary>
/// <remarks>
/// The plain <c>a &gt; b ? a : b</c> does not propagate NaN: every comparison with NaN is false,
/// so a NaN in <c>a</c> is replaced by <c>b</c>, and whether a NaN survives depends on the order
/// of combination. PTX's <c>max.f32</c> (and C's fmaxf) return the non-NaN operand, so
/// <c>XMath.Max</c> cannot be relied on either. Combine tests for NaN explicitly.
/// </remarks>
public readonly struct MaxOp : IReduceOp
{
    /// <inheritdoc/>
    public float Identity => float.NegativeInfinity;

    /// <inheritdoc/>
    public bool IsSum => false;

    /// <inheritdoc/>
    public float Map(float x) => x;

    /// <inheritdoc/>
    public float Combine(float a, float b) => a > b || float.IsNaN(a) ? a : b;

    /// <inheritdoc/>
    public float Finish(float total, int count) => total;
}

/// <summary>Sum of squares: Σ x². Empty is 0. Overflows to +∞ once the true value exceeds float's range.</summary>
public readonly struct SumOfSquaresOp : IReduceOp
{
    /// <inheritdoc/>
    public float Identity => 0f;

    /// <inheritdoc/>
    public bool IsSum => true;

    /// <inheritdoc/>
    public float Map(float x) => x * x;

    /// <inheritdoc/>
    public float Combine(float a, float b) => a + b;

    /// <inheritdoc/>
    public float Finish(float total, int count) => total;
}

/// <summary>
/// Euclidean norm: √(Σ x²). Empty is 0. Computed without rescaling (as PyTorch does for float32),
/// so it overflows to +∞ once Σ x² exceeds float's range (about 1.8e19 per element).
/// </summary>
public readonly struct L2NormOp : IReduceOp
{
    /// <inheritdoc/>
    public float Identity => 0f;

    /// <inheritdoc/>
    public bool IsSum => true;

    /// <inheritdoc/>
    public float Map(float x) => x * x;

    /// <inheritdoc/>
    public float Combine(float a, float b) => a + b;

    /// <inheritdoc/>
    public float Finish(float total, int count) => XMath.Sqrt(total);
}
