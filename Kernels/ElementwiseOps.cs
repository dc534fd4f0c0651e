using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

/// <summary>A pure function of one float, run by <see cref="Elementwise.Map{TOp}"/>.</summary>
/// <remarks>Implementations are empty (or small) <c>readonly struct</c>s so the JIT and ILGPU
/// specialize the driver per operator at no cost. They must not allocate or throw. The math is
/// written once, over <see cref="ILanes{T}"/>: ILGPU compiles it for <see cref="Lane1"/>, the
/// managed CPU loop runs it for <see cref="Lane8"/> (and <see cref="Lane1"/> on the tail), the same
/// IEEE operations per lane, so the two paths are bitwise equal by construction.</remarks>
public interface IUnaryOp
{
    /// <summary>y = f(x) in each lane.</summary>
    /// <typeparam name="T">The lane type.</typeparam>
    /// <param name="x">Input.</param>
    /// <returns>f(x).</returns>
    T Apply<T>(T x)
        where T : struct, ILanes<T>;
}

/// <summary>A pure function of two floats, run by <see cref="Elementwise.Zip{TOp}"/>; written once over lanes, as <see cref="IUnaryOp"/>.</summary>
public interface IBinaryOp
{
    /// <summary>y = f(a, b) in each lane.</summary>
    /// <typeparam name="T">The lane type.</typeparam>
    /// <param name="a">Left input.</param>
    /// <param name="b">Right input.</param>
    /// <returns>f(a, b).</returns>
    T Apply<T>(T a, T b)
        where T : struct, ILanes<T>;
}

/// <summary>y = a + b.</summary>
public readonly struct AddOp : IBinaryOp
{
    /// <inheritdoc/>
    public T Apply<T>(T a, T b)
        where T : struct, ILanes<T> => a + b;
}

/// <summary>y = a - b.</summary>
public readonly struct SubOp : IBinaryOp
{
    /// <inheritdoc/>
    public T Apply<T>(T a, T b)
        where T : struct, ILanes<T> => a - b;
}

/// <summary>y = a * b (elementwise, Hadamard).</summary>
public readonly struct MulOp : IBinaryOp
{
    /// <inheritdoc/>
    public T Apply<T>(T a, T b)
        where T : struct, ILanes<T> => a * b;
}

/// <summary>y = alpha * x.</summary>
/// <param name="Alpha">The scale factor.</param>
public readonly record struct ScaleOp(float Alpha) : IUnaryOp
{
    /// <inheritdoc/>
    public T Apply<T>(T x)
        where T : struct, ILanes<T> => Alpha * x;
}

/// <summary>y = min(max(x, Lo), Hi), written as x &lt; Lo ? Lo : x &gt; Hi ? Hi : x so NaN stays NaN (PyTorch clamp).</summary>
/// <param name="Lo">Lower bound.</param>
/// <param name="Hi">Upper bound, at least <paramref name="Lo"/>.</param>
public readonly record struct ClampOp(float Lo, float Hi) : IUnaryOp
{
    /// <inheritdoc/>
    public T Apply<T>(T x)
        where T : struct, ILanes<T> => T.Select(T.Less(x, Lo), Lo, T.Select(T.Greater(x, Hi), Hi, x));
}

/// <summary>y = Alpha * a + b (axpy with a = x, b = y): multiply, then add, rounded twice (no FMA).</summary>
/// <param name="Alpha">The scale of a.</param>
public readonly record struct AxpyOp(float Alpha) : IBinaryOp
{
    /// <inheritdoc/>
    public T Apply<T>(T a, T b)
        where T : struct, ILanes<T> => (Alpha * a) + b;
}
