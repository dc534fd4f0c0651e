namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>Metrics</c> kernels: plain loops, slow and obviously right.</summary>
internal static class MetricsReference
{
    /// <summary>Reference: hit[n] = 1 when fewer than k logits of row n exceed the target's.</summary>
    /// <param name="logits">Logits (N, C).</param>
    /// <param name="targets">Targets (N).</param>
    /// <param name="hit">Output (N): 1 or 0.</param>
    /// <param name="n">Rows N.</param>
    /// <param name="c">Classes C.</param>
    /// <param name="k">k, at least 1.</param>
    public static void TopKHitsReference(ReadOnlySpan<float> logits, ReadOnlySpan<int> targets, Span<float> hit, int n, int c, int k)
    {
        for (int row = 0; row < n; row++)
        {
            int t = targets[row];
            if (t < 0 || t >= c || float.IsNaN(logits[(row * c) + t]))
            {
                hit[row] = 0;
                continue;
            }

            float v = logits[(row * c) + t];
            int greater = 0;
            for (int j = 0; j < c; j++)
            {
                if (logits[(row * c) + j] > v)
                    greater++;
            }

            hit[row] = greater < k ? 1 : 0;
        }
    }
}
