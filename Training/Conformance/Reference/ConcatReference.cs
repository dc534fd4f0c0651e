namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>Concat</c> kernels: plain loops, slow and obviously right.</summary>
internal static class ConcatReference
{
    /// <summary>Reference: y (outer, sum W_k) = [x_0 | x_1 | ...], each x_k an (outer, W_k) matrix.</summary>
    /// <param name="xs">The inputs, x_k of outer * widths[k] elements.</param>
    /// <param name="widths">W_k = size_k * inner per input.</param>
    /// <param name="outer">The product of the dimensions before the axis.</param>
    /// <param name="y">Output (outer, sum W_k).</param>
    public static void ForwardReference(IReadOnlyList<float[]> xs, IReadOnlyList<int> widths, int outer, Span<float> y)
    {
        ArgumentNullException.ThrowIfNull(xs);
        ArgumentNullException.ThrowIfNull(widths);
        int total = widths.Sum();
        for (int o = 0; o < outer; o++)
        {
            int col = 0;
            for (int k = 0; k < xs.Count; k++)
            {
                for (int j = 0; j < widths[k]; j++)
                    y[(o * total) + col + j] = xs[k][(o * widths[k]) + j];
                col += widths[k];
            }
        }
    }

    /// <summary>Reference: dx_k[o, j] = dy[o, offset_k + j].</summary>
    /// <param name="dy">Output gradient (outer, sum W_k).</param>
    /// <param name="widths">W_k per input.</param>
    /// <param name="outer">The product of the dimensions before the axis.</param>
    /// <returns>The input gradients, dx_k of outer * W_k elements.</returns>
    public static float[][] BackwardReference(ReadOnlySpan<float> dy, IReadOnlyList<int> widths, int outer)
    {
        ArgumentNullException.ThrowIfNull(widths);
        int total = widths.Sum();
        var dxs = new float[widths.Count][];
        int col = 0;
        for (int k = 0; k < widths.Count; k++)
        {
            dxs[k] = new float[outer * widths[k]];
            for (int o = 0; o < outer; o++)
            {
                for (int j = 0; j < widths[k]; j++)
                    dxs[k][(o * widths[k]) + j] = dy[(o * total) + col + j];
            }

            col += widths[k];
        }

        return dxs;
    }
}
