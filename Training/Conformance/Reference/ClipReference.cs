namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>Clip</c> kernels: plain loops, slow and obviously right.</summary>
internal static class ClipReference
{
    /// <summary>The factor clip_grad_norm_ multiplies by: min(1, maxNorm · (1 / (norm + 1e-6))), in float as PyTorch.</summary>
    /// <param name="norm">The total norm.</param>
    /// <param name="maxNorm">The largest norm allowed.</param>
    /// <returns>The factor (NaN when the norm is NaN).</returns>
    public static float NormFactorReference(float norm, float maxNorm)
    {
        float factor = maxNorm * (1f / (norm + Clip.NormEpsilon));
        return factor > 1f ? 1f : factor;
    }

    /// <summary>Reference: g[i] *= <see cref="NormFactorReference"/>(norm, maxNorm).</summary>
    /// <param name="g">Gradients, scaled in place.</param>
    /// <param name="norm">The total norm.</param>
    /// <param name="maxNorm">The largest norm allowed.</param>
    public static void ByNormReference(Span<float> g, float norm, float maxNorm)
    {
        float factor = NormFactorReference(norm, maxNorm);
        for (int i = 0; i < g.Length; i++)
            g[i] *= factor;
    }

    /// <summary>Reference: g[i] = min(max(g[i], lo), hi); NaN stays NaN.</summary>
    /// <param name="g">Gradients, clamped in place.</param>
    /// <param name="lo">Lower bound.</param>
    /// <param name="hi">Upper bound (at least lo).</param>
    public static void ByValueReference(Span<float> g, float lo, float hi)
    {
        for (int i = 0; i < g.Length; i++)
        {
            float v = g[i];
            g[i] = v < lo ? lo : v > hi ? hi : v;
        }
    }

    /// <summary>Reference: max |x| (0 when empty, NaN if any element is NaN).</summary>
    /// <param name="x">Input.</param>
    /// <returns>The infinity norm.</returns>
    public static float AbsMaxReference(ReadOnlySpan<float> x)
    {
        float m = 0f;
        foreach (float v in x)
        {
            if (float.IsNaN(v))
                return float.NaN;
            m = Math.Max(m, Math.Abs(v));
        }
        return m;
    }
}
