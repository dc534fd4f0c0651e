namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>BiasAdd</c> kernels: plain loops, slow and obviously right.</summary>
internal static class BiasAddReference
{
    /// <summary>Reference: y[n, f] = x[n, f] + b[f].</summary>
    /// <param name="x">Input (N,F), row-major.</param>
    /// <param name="b">Bias (F).</param>
    /// <param name="y">Output (N,F) (may alias x).</param>
    /// <param name="n">Rows N.</param>
    /// <param name="f">Features F.</param>
    public static void ForwardReference(ReadOnlySpan<float> x, ReadOnlySpan<float> b, Span<float> y, int n, int f)
    {
        for (int row = 0; row < n; row++)
        {
            for (int col = 0; col < f; col++)
                y[(row * f) + col] = x[(row * f) + col] + b[col];
        }
    }

    /// <summary>Reference: y[n, c, s] = x[n, c, s] + b[c] over (N, C, S).</summary>
    /// <param name="x">Input (N,C,S), row-major.</param>
    /// <param name="b">Bias (C).</param>
    /// <param name="y">Output (N,C,S) (may alias x).</param>
    /// <param name="n">Batch N.</param>
    /// <param name="c">Channels C.</param>
    /// <param name="s">Inner size S (H*W).</param>
    public static void ForwardChannelsReference(ReadOnlySpan<float> x, ReadOnlySpan<float> b, Span<float> y, int n, int c, int s)
    {
        for (int i = 0; i < n; i++)
        {
            for (int ch = 0; ch < c; ch++)
            {
                for (int j = 0; j < s; j++)
                {
                    int at = (((i * c) + ch) * s) + j;
                    y[at] = x[at] + b[ch];
                }
            }
        }
    }
}
