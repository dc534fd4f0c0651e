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

    /// <summary>
    /// Reference: per label j, counts[3j], counts[3j + 1], counts[3j + 2] = true positives, false
    /// positives and false negatives over the rows, where a label is predicted when sigmoid(x) (in
    /// float64) exceeds its threshold and true when its target is at least 0.5.
    /// </summary>
    /// <param name="logits">Logits (N, L).</param>
    /// <param name="targets">Targets (N, L).</param>
    /// <param name="thresholds">Thresholds (L).</param>
    /// <param name="n">Rows N.</param>
    /// <param name="labels">Labels L.</param>
    /// <returns>The counts (3L).</returns>
    public static float[] MultiLabelCountsReference(ReadOnlySpan<float> logits, ReadOnlySpan<float> targets, ReadOnlySpan<float> thresholds, int n, int labels)
    {
        var counts = new float[3 * labels];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < labels; j++)
            {
                bool p = Predicted(logits[(i * labels) + j], thresholds[j]), t = targets[(i * labels) + j] >= 0.5f;
                if (p || t)
                    counts[(3 * j) + (p && t ? 0 : p ? 1 : 2)]++;
            }
        }

        return counts;
    }

    /// <summary>Reference: match[i] = 1 when every label of row i is predicted as its target says (as <see cref="MultiLabelCountsReference"/> decides), else 0.</summary>
    /// <param name="logits">Logits (N, L).</param>
    /// <param name="targets">Targets (N, L).</param>
    /// <param name="thresholds">Thresholds (L).</param>
    /// <param name="n">Rows N.</param>
    /// <param name="labels">Labels L.</param>
    /// <returns>The matches (N).</returns>
    public static float[] ExactMatchesReference(ReadOnlySpan<float> logits, ReadOnlySpan<float> targets, ReadOnlySpan<float> thresholds, int n, int labels)
    {
        var match = new float[n];
        for (int i = 0; i < n; i++)
        {
            bool all = true;
            for (int j = 0; j < labels; j++)
                all &= Predicted(logits[(i * labels) + j], thresholds[j]) == (targets[(i * labels) + j] >= 0.5f);
            match[i] = all ? 1 : 0;
        }

        return match;
    }

    // torchmetrics: sigmoid(x) > threshold; a NaN logit is a negative (NaN compares false).
    private static bool Predicted(float x, float threshold) => 1 / (1 + Math.Exp(-(double)x)) > threshold;
}
