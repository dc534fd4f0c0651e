namespace IlgpuTrain.Kernels;

/// <summary>A pure function of one float, run by <see cref="Elementwise.Map{TOp}"/>.</summary>
/// <remarks>Implementations are empty (or small) <c>readonly struct</c>s so the JIT and ILGPU
/// specialize the driver per operator at no cost. They must not allocate or throw.</remarks>
public interface IUnaryOp
{
    /// <summary>y = f(x).</summary>
    /// <param name="x">Input.</param>
    /// <returns>f(x).</returns>
    float Apply(float x);
}

/// <summary>A pure function of two floats, run by <see cref="Elementwise.Zip{TOp}"/>.</summary>
public interface IBinaryOp
{
    /// <summary>y = f(a, b).</summary>
    /// <param name="a">Left input.</param>
    /// <param name="b">Right input.</param>
    /// <returns>f(a, b).</returns>
    float Apply(float a, float b);
}

/// <summary>y = a + b.</summary>
public readonly struct AddOp : IBinaryOp
{
    /// <inheritdoc/>
    public float Apply(float a, float b) => a + b;
}

/// <summary>y = a - b.</summary>
public readonly struct SubOp : IBinaryOp
{
    /// <inheritdoc/>
    public float Apply(float a, float b) => a - b;
}

/// <summary>y = a * b (elementwise, Hadamard).</summary>
public readonly struct MulOp : IBinaryOp
{
    /// <inheritdoc/>
    public float Apply(float a, float b) => a * b;
}

/// <summary>y = alpha * x.</summary>
/// <param name="Alpha">The scale factor.</param>
public readonly record struct ScaleOp(float Alpha) : IUnaryOp
{
    /// <inheritdoc/>
    public float Apply(float x) => Alpha * x;
}
