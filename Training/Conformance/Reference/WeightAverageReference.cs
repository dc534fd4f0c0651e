namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>WeightAverage</c> kernel: plain loops, slow and obviously right.</summary>
internal static class WeightAverageReference
{
    /// <summary>Reference: lerp(a, w, t) = (1 - t) a + t w, in float64 (torch.lerp's value before its float roundings).</summary>
    /// <param name="average">The average a (n).</param>
    /// <param name="weights">The weights w (n).</param>
    /// <param name="t">The weight of w, in [0, 1].</param>
    /// <returns>The new average (n), unrounded.</returns>
    public static double[] LerpReference(ReadOnlySpan<float> average, ReadOnlySpan<float> weights, float t)
    {
        var result = new double[average.Length];
        for (int i = 0; i < average.Length; i++)
            result[i] = ((1.0 - t) * average[i]) + ((double)t * weights[i]);
        return result;
    }
}
