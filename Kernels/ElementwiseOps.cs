using System.Runtime.Intrinsics;
using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

/// <summary>A pure function of one float, run by <see cref="Elementwise.Map{TOp}"/>.</summary>
/// <remarks>Implementations are empty (or small) <c>readonly struct</c>s so the JIT and ILGPU
/// specialize the driver per operator at no cost. They must not allocate or throw. The scalar
/// form is what ILGPU compiles; the managed CPU loop runs the vector form where
/// <see cref="Vectorizable"/> is true, and each lane of it does exactly the scalar form's IEEE
/// operations (no FMA), so the two paths are bitwise equal.</remarks>
public interface IUnaryOp
{
    /// <summary>Whether <see cref="Apply(Vector256{float})"/> is faster than eight scalar calls (a JIT-time constant).</summary>
    bool Vectorizable { get; }

    /// <summary>y = f(x).</summary>
    /// <param name="x">Input.</param>
    float Apply(float x);

    /// <summary>y = f(x) in each of eight lanes, bitwise the scalar form's result.</summary>
    /// <param name="x">Inputs.</param>
    Vector256<float> Apply(Vector256<float> x);
}

/// <summary>A pure function of two floats, run by <see cref="Elementwise.Zip{TOp}"/>.</summary>
/// <remarks>As <see cref="IUnaryOp"/>: the vector form does the scalar form's operations per lane.</remarks>
public interface IBinaryOp
{
    /// <summary>y = f(a, b).</summary>
    /// <param name="a">Left input.</param>
    /// <param name="b">Right input.</param>
    float Apply(float a, float b);

    /// <summary>y = f(a, b) in each of eight lanes, bitwise the scalar form's result.</summary>
    /// <param name="a">Left inputs.</param>
    /// <param name="b">Right inputs.</param>
    Vector256<float> Apply(Vector256<float> a, Vector256<float> b);
}

/// <summary>y = a + b.</summary>
public readonly struct AddOp : IBinaryOp
{
    /// <inheritdoc/>
    public float Apply(float a, float b) => a + b;

    /// <inheritdoc/>
    public Vector256<float> Apply(Vector256<float> a, Vector256<float> b) => a + b;
}

/// <summary>y = a - b.</summary>
public readonly struct SubOp : IBinaryOp
{
    /// <inheritdoc/>
    public float Apply(float a, float b) => a - b;

    /// <inheritdoc/>
    public Vector256<float> Apply(Vector256<float> a, Vector256<float> b) => a - b;
}

/// <summary>y = a * b (elementwise, Hadamard).</summary>
public readonly struct MulOp : IBinaryOp
{
    /// <inheritdoc/>
    public float Apply(float a, float b) => a * b;

    /// <inheritdoc/>
    public Vector256<float> Apply(Vector256<float> a, Vector256<float> b) => a * b;
}

/// <summary>y = alpha * x.</summary>
/// <param name="Alpha">The scale factor.</param>
public readonly record struct ScaleOp(float Alpha) : IUnaryOp
{
    /// <inheritdoc/>
    public bool Vectorizable => true;

    /// <inheritdoc/>
    public float Apply(float x) => Alpha * x;

    /// <inheritdoc/>
    public Vector256<float> Apply(Vector256<float> x) => Vector256.Create(Alpha) * x;
}

/// <summary>y = min(max(x, Lo), Hi), written as x &lt; Lo ? Lo : x &gt; Hi ? Hi : x so NaN stays NaN (PyTorch clamp).</summary>
/// <param name="Lo">Lower bound.</param>
/// <param name="Hi">Upper bound, at least <paramref name="Lo"/>.</param>
public readonly record struct ClampOp(float Lo, float Hi) : IUnaryOp
{
    /// <inheritdoc/>
    public bool Vectorizable => true;

    /// <inheritdoc/>
    public float Apply(float x) => x < Lo ? Lo : x > Hi ? Hi : x;

    /// <inheritdoc/>
    public Vector256<float> Apply(Vector256<float> x)
    {
        var lo = Vector256.Create(Lo);
        var hi = Vector256.Create(Hi);
        return Vector256.ConditionalSelect(Vector256.LessThan(x, lo), lo, Vector256.ConditionalSelect(Vector256.GreaterThan(x, hi), hi, x));
    }
}

/// <summary>y = Alpha * a + b (axpy with a = x, b = y): multiply, then add, rounded twice (no FMA).</summary>
/// <param name="Alpha">The scale of a.</param>
public readonly record struct AxpyOp(float Alpha) : IBinaryOp
{
    /// <inheritdoc/>
    public float Apply(float a, float b) => (Alpha * a) + b;

    /// <inheritdoc/>
    public Vector256<float> Apply(Vector256<float> a, Vector256<float> b) => (Vector256.Create(Alpha) * a) + b;
}
