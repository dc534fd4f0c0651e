namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>Reductions</c> kernels: plain loops, slow and obviously right.</summary>
internal static class ReductionsReference
{
    /// <summary>Reference: Σ x, accumulated in float64.</summary>
    /// <param name="x">Input.</param>
    /// <returns>The sum (0 when empty).</returns>
    public static double SumReference(ReadOnlySpan<float> x)
    {
        double s = 0;
        foreach (float v in x)
            s += v;
        return s;
    }

    /// <summary>Reference: Σ x / n in float64; NaN when empty.</summary>
    /// <param name="x">Input.</param>
    /// <returns>The mean.</returns>
    public static double MeanReference(ReadOnlySpan<float> x) => SumReference(x) / x.Length;

    /// <summary>Reference: max x; NaN if any element is NaN.</summary>
    /// <param name="x">Input (at least one element).</param>
    /// <returns>The maximum.</returns>
    /// <exception cref="ArgumentException"><paramref name="x"/> is empty.</exception>
    public static double MaxReference(ReadOnlySpan<float> x)
    {
        if (x.IsEmpty)
            throw new ArgumentException("MaxReference: the max of an empty tensor is undefined.", nameof(x));
        double m = double.NegativeInfinity;
        foreach (float v in x)
        {
            if (float.IsNaN(v))
                return double.NaN;
            if (v > m)
                m = v;
        }
        return m;
    }

    /// <summary>Reference: Σ x² in float64 (squares of the float inputs, taken in float64).</summary>
    /// <param name="x">Input.</param>
    /// <returns>The sum of squares (0 when empty).</returns>
    public static double SumOfSquaresReference(ReadOnlySpan<float> x)
    {
        double s = 0;
        foreach (float v in x)
            s += (double)v * v;
        return s;
    }

    /// <summary>Reference: √(Σ x²) in float64.</summary>
    /// <param name="x">Input.</param>
    /// <returns>The Euclidean norm (0 when empty).</returns>
    public static double L2NormReference(ReadOnlySpan<float> x) => Math.Sqrt(SumOfSquaresReference(x));

    /// <summary>Reference: result[r] = Σ_c x[r, c].</summary>
    /// <param name="x">Row-major (R, C) input.</param>
    /// <param name="rows">R.</param>
    /// <param name="cols">C.</param>
    /// <param name="result">Output (R).</param>
    public static void SumRowsReference(ReadOnlySpan<float> x, int rows, int cols, Span<double> result) =>
        RowsReference(x, rows, cols, result, SumReference);

    /// <summary>Reference: result[r] = mean_c x[r, c] (NaN when C = 0).</summary>
    /// <param name="x">Row-major (R, C) input.</param>
    /// <param name="rows">R.</param>
    /// <param name="cols">C.</param>
    /// <param name="result">Output (R).</param>
    public static void MeanRowsReference(ReadOnlySpan<float> x, int rows, int cols, Span<double> result) =>
        RowsReference(x, rows, cols, result, MeanReference);

    /// <summary>Reference: result[r] = max_c x[r, c] (throws when C = 0 and R &gt; 0).</summary>
    /// <param name="x">Row-major (R, C) input.</param>
    /// <param name="rows">R.</param>
    /// <param name="cols">C.</param>
    /// <param name="result">Output (R).</param>
    public static void MaxRowsReference(ReadOnlySpan<float> x, int rows, int cols, Span<double> result) =>
        RowsReference(x, rows, cols, result, MaxReference);

    /// <summary>Reference: result[r] = Σ_c x[r, c]².</summary>
    /// <param name="x">Row-major (R, C) input.</param>
    /// <param name="rows">R.</param>
    /// <param name="cols">C.</param>
    /// <param name="result">Output (R).</param>
    public static void SumOfSquaresRowsReference(ReadOnlySpan<float> x, int rows, int cols, Span<double> result) =>
        RowsReference(x, rows, cols, result, SumOfSquaresReference);

    /// <summary>Reference: result[r] = √(Σ_c x[r, c]²).</summary>
    /// <param name="x">Row-major (R, C) input.</param>
    /// <param name="rows">R.</param>
    /// <param name="cols">C.</param>
    /// <param name="result">Output (R).</param>
    public static void L2NormRowsReference(ReadOnlySpan<float> x, int rows, int cols, Span<double> result) =>
        RowsReference(x, rows, cols, result, L2NormReference);

    /// <summary>Reference: result[c] = Σ_r x[r, c].</summary>
    /// <param name="x">Row-major (R, C) input.</param>
    /// <param name="rows">R.</param>
    /// <param name="cols">C.</param>
    /// <param name="result">Output (C).</param>
    public static void SumColumnsReference(ReadOnlySpan<float> x, int rows, int cols, Span<double> result) =>
        ColumnsReference(x, rows, cols, result, SumReference);

    /// <summary>Reference: result[c] = mean_r x[r, c] (NaN when R = 0).</summary>
    /// <param name="x">Row-major (R, C) input.</param>
    /// <param name="rows">R.</param>
    /// <param name="cols">C.</param>
    /// <param name="result">Output (C).</param>
    public static void MeanColumnsReference(ReadOnlySpan<float> x, int rows, int cols, Span<double> result) =>
        ColumnsReference(x, rows, cols, result, MeanReference);

    /// <summary>Reference: result[c] = max_r x[r, c] (throws when R = 0 and C &gt; 0).</summary>
    /// <param name="x">Row-major (R, C) input.</param>
    /// <param name="rows">R.</param>
    /// <param name="cols">C.</param>
    /// <param name="result">Output (C).</param>
    public static void MaxColumnsReference(ReadOnlySpan<float> x, int rows, int cols, Span<double> result) =>
        ColumnsReference(x, rows, cols, result, MaxReference);

    /// <summary>Reference: result[c] = Σ_r x[r, c]².</summary>
    /// <param name="x">Row-major (R, C) input.</param>
    /// <param name="rows">R.</param>
    /// <param name="cols">C.</param>
    /// <param name="result">Output (C).</param>
    public static void SumOfSquaresColumnsReference(ReadOnlySpan<float> x, int rows, int cols, Span<double> result) =>
        ColumnsReference(x, rows, cols, result, SumOfSquaresReference);

    /// <summary>Reference: result[c] = √(Σ_r x[r, c]²).</summary>
    /// <param name="x">Row-major (R, C) input.</param>
    /// <param name="rows">R.</param>
    /// <param name="cols">C.</param>
    /// <param name="result">Output (C).</param>
    public static void L2NormColumnsReference(ReadOnlySpan<float> x, int rows, int cols, Span<double> result) =>
        ColumnsReference(x, rows, cols, result, L2NormReference);

    private delegate double FlatReference(ReadOnlySpan<float> x);

    private static void RowsReference(ReadOnlySpan<float> x, int rows, int cols, Span<double> result, FlatReference reduce)
    {
        for (int r = 0; r < rows; r++)
            result[r] = reduce(x.Slice(r * cols, cols));
    }

    private static void ColumnsReference(ReadOnlySpan<float> x, int rows, int cols, Span<double> result, FlatReference reduce)
    {
        var column = new float[rows];
        for (int c = 0; c < cols; c++)
        {
            for (int r = 0; r < rows; r++)
                column[r] = x[(r * cols) + c];
            result[c] = reduce(column);
        }
    }
}
