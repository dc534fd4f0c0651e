namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>Embedding</c> kernels: plain loops, slow and obviously right.</summary>
internal static class EmbeddingReference
{
    /// <summary>Reference: y[n, :] = W[indices[n], :].</summary>
    /// <param name="indices">Indices (N), each in [0, V).</param>
    /// <param name="weight">W (V, D).</param>
    /// <param name="y">Output (N, D).</param>
    /// <param name="v">Vocabulary size V.</param>
    /// <param name="d">Embedding dimension D.</param>
    /// <exception cref="ArgumentOutOfRangeException">An index is outside [0, V).</exception>
    public static void ForwardReference(ReadOnlySpan<int> indices, ReadOnlySpan<float> weight, Span<float> y, int v, int d)
    {
        for (int n = 0; n < indices.Length; n++)
        {
            int k = indices[n];
            if (k < 0 || k >= v)
                throw new ArgumentOutOfRangeException(nameof(indices), k, $"EmbeddingReference.ForwardReference: indices[{n}] = {k} is outside [0, {v}).");
            for (int c = 0; c < d; c++)
                y[(n * d) + c] = weight[(k * d) + c];
        }
    }

    /// <summary>Reference: dW[v, :] = sum of dy[n, :] over n with indices[n] == v, in float64; the padding row is 0.</summary>
    /// <param name="indices">Indices (N).</param>
    /// <param name="dy">Output gradient (N, D).</param>
    /// <param name="dWeight">dW (V, D), overwritten.</param>
    /// <param name="v">Vocabulary size V.</param>
    /// <param name="d">Embedding dimension D.</param>
    /// <param name="paddingIdx">The row that gets no gradient, in [0, V), or null.</param>
    public static void BackwardReference(ReadOnlySpan<int> indices, ReadOnlySpan<float> dy, Span<double> dWeight, int v, int d, int? paddingIdx = null)
    {
        dWeight[..(v * d)].Clear();
        for (int n = 0; n < indices.Length; n++)
        {
            int k = indices[n];
            if (k < 0 || k >= v || k == paddingIdx)
                continue;
            for (int c = 0; c < d; c++)
                dWeight[(k * d) + c] += dy[(n * d) + c];
        }
    }
}
