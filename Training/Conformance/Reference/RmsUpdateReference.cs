namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>RmsUpdate</c> kernels: plain loops, slow and obviously right.</summary>
internal static class RmsUpdateReference
{
    /// <summary>Reference: moments updated in place and g overwritten with the RMSProp direction.</summary>
    /// <param name="g">Gradients (n), overwritten with d.</param>
    /// <param name="v">Running mean of g^2 (n).</param>
    /// <param name="mu">Running mean of g (n) when centered, or empty.</param>
    /// <param name="b">Momentum buffer (n), or empty for no momentum.</param>
    /// <param name="s">Scalars.</param>
    public static void DirectionReference(Span<float> g, Span<float> v, Span<float> mu, Span<float> b, RmsScalars s)
    {
        for (int i = 0; i < g.Length; i++)
        {
            v[i] = (s.Alpha * v[i]) + (s.OneMinusAlpha * g[i] * g[i]);
            float variance = v[i];
            if (!mu.IsEmpty)
            {
                mu[i] = (s.Alpha * mu[i]) + (s.OneMinusAlpha * g[i]);
                variance -= mu[i] * mu[i];
            }
            float d = g[i] / (MathF.Sqrt(variance) + s.Eps);
            if (!b.IsEmpty)
            {
                b[i] = (s.Momentum * b[i]) + d;
                d = b[i];
            }
            g[i] = d;
        }
    }

    /// <summary>Reference: the fused RMSProp step (coupled decay, moments, lr, apply).</summary>
    /// <param name="p">Parameters (n), updated.</param>
    /// <param name="g">Gradients (n), read.</param>
    /// <param name="v">Running mean of g^2 (n).</param>
    /// <param name="mu">Running mean of g (n) when centered, or empty.</param>
    /// <param name="b">Momentum buffer (n), or empty.</param>
    /// <param name="s">Scalars.</param>
    public static void StepReference(Span<float> p, ReadOnlySpan<float> g, Span<float> v, Span<float> mu, Span<float> b, RmsStepScalars s)
    {
        for (int i = 0; i < p.Length; i++)
        {
            Span<float> d = [g[i] + (s.WeightDecay * p[i])];
            DirectionReference(d, v.Slice(i, 1), mu.IsEmpty ? [] : mu.Slice(i, 1), b.IsEmpty ? [] : b.Slice(i, 1), s.Rms);
            p[i] -= s.LearningRate * d[0];
        }
    }
}
