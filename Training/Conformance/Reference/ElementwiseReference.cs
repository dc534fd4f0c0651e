namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>Elementwise</c> kernels: plain loops, slow and obviously right.</summary>
internal static class ElementwiseReference
{
    /// <summary>Reference: y[i] = a[i] + b[i].</summary>
    /// <param name="a">Left input.</param>
    /// <param name="b">Right input.</param>
    /// <param name="y">Output (may alias an input).</param>
    public static void AddReference(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y)
    {
        for (int i = 0; i < y.Length; i++)
            y[i] = a[i] + b[i];
    }

    /// <summary>Reference: y[i] = a[i] - b[i].</summary>
    /// <param name="a">Left input.</param>
    /// <param name="b">Right input.</param>
    /// <param name="y">Output.</param>
    public static void SubReference(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y)
    {
        for (int i = 0; i < y.Length; i++)
            y[i] = a[i] - b[i];
    }

    /// <summary>Reference: y[i] = a[i] * b[i].</summary>
    /// <param name="a">Left input.</param>
    /// <param name="b">Right input.</param>
    /// <param name="y">Output.</param>
    public static void MulReference(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y)
    {
        for (int i = 0; i < y.Length; i++)
            y[i] = a[i] * b[i];
    }

    /// <summary>Reference: y[i] = alpha * s[0].</summary>
    /// <param name="s">A one-element scalar.</param>
    /// <param name="alpha">Scale.</param>
    /// <param name="y">Output.</param>
    public static void BroadcastReference(ReadOnlySpan<float> s, float alpha, Span<float> y) => y.Fill(alpha * s[0]);

    /// <summary>Reference: y[i] = alpha * x[i].</summary>
    /// <param name="x">Input.</param>
    /// <param name="alpha">Scale.</param>
    /// <param name="y">Output.</param>
    public static void ScaleReference(ReadOnlySpan<float> x, float alpha, Span<float> y)
    {
        for (int i = 0; i < y.Length; i++)
            y[i] = alpha * x[i];
    }

    /// <summary>Reference: y[i] = alpha * x[i] + y[i].</summary>
    /// <param name="alpha">Scale of x.</param>
    /// <param name="x">Input.</param>
    /// <param name="y">Accumulated output.</param>
    public static void AxpyReference(float alpha, ReadOnlySpan<float> x, Span<float> y)
    {
        for (int i = 0; i < y.Length; i++)
            y[i] = alpha * x[i] + y[i];
    }

    /// <summary>Reference: y[i] = value.</summary>
    /// <param name="y">Output.</param>
    /// <param name="value">The fill value.</param>
    public static void FillReference(Span<float> y, float value) => y.Fill(value);
}
