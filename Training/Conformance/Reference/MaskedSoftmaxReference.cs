namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>MaskedSoftmax</c> kernel: plain loops in float64, slow and obviously right.</summary>
internal static class MaskedSoftmaxReference
{
    /// <summary>
    /// Reference, from the definition: entry (row, j) is kept when j &lt; lengths[item], keyMask[item, j]
    /// is nonzero and (causal) j &lt;= query; kept entries get exp(x + bias) normalized over the kept
    /// ones, the rest 0; a row with nothing kept (or only -inf) is all 0. Row r is query r mod Tq of
    /// item r / (N / B).
    /// </summary>
    /// <param name="x">Input (N, C), row-major.</param>
    /// <param name="bias">Bias (R, C) tiled over the rows (R divides N), or null.</param>
    /// <param name="n">Rows N.</param>
    /// <param name="c">Columns (keys) C.</param>
    /// <param name="tq">Query rows per causal block Tq (row r is query r mod Tq).</param>
    /// <param name="items">Items B of the key lengths or mask (N / B rows each).</param>
    /// <param name="causal">Whether key j is masked for query i when j &gt; i.</param>
    /// <param name="lengths">Valid keys per item (B), or null.</param>
    /// <param name="keyMask">Kept keys per item (B, C), nonzero = kept, or null.</param>
    /// <returns>y (N, C).</returns>
    public static double[] ForwardReference(double[] x, double[]? bias, int n, int c, int tq, int items, bool causal, int[]? lengths, int[]? keyMask)
    {
        int tk = c;
        int perItem = n / items;
        int biasRows = bias is null ? 1 : bias.Length / tk;
        var y = new double[x.Length];
        for (int r = 0; r < n; r++)
        {
            bool Kept(int j) => (lengths is null || j < lengths[r / perItem]) && (keyMask is null || keyMask[((r / perItem) * tk) + j] != 0) && (!causal || j <= r % tq);
            double V(int j) => x[(r * tk) + j] + (bias is null ? 0 : bias[((r % biasRows) * tk) + j]);
            var kept = Enumerable.Range(0, tk).Where(Kept).Where(j => !double.IsNegativeInfinity(V(j))).ToArray();
            if (kept.Length == 0)
                continue;
            double max = kept.Max(V);
            double sum = kept.Sum(j => Math.Exp(V(j) - max));
            foreach (int j in kept)
                y[(r * tk) + j] = Math.Exp(V(j) - max) / sum;
        }

        return y;
    }
}
