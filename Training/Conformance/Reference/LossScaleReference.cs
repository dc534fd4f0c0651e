namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>LossScale</c> kernels: plain loops, slow and obviously right.</summary>
internal static class LossScaleReference
{
    /// <summary>
    /// Reference: g[i] = g[i] * invScale (untouched when invScale is 1); returns whether every
    /// unscaled value is finite.
    /// </summary>
    /// <param name="grads">Gradients (n), unscaled in place.</param>
    /// <param name="invScale">1 / scale.</param>
    /// <returns>True when no value is inf or NaN.</returns>
    public static bool UnscaleReference(Span<float> grads, float invScale)
    {
        bool allFinite = true;
        for (int i = 0; i < grads.Length; i++)
        {
            float v = invScale == 1f ? grads[i] : grads[i] * invScale;
            allFinite &= float.IsFinite(v);
            grads[i] = v;
        }
        return allFinite;
    }
}
