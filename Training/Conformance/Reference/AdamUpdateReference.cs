namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>AdamUpdate</c> kernels: plain loops, slow and obviously right.</summary>
internal static class AdamUpdateReference
{
    /// <summary>Reference: moments updated in place and g overwritten with the Adam direction.</summary>
    /// <param name="g">Gradients (n), overwritten with d.</param>
    /// <param name="m">First moment (n).</param>
    /// <param name="v">Second moment (n).</param>
    /// <param name="vmax">Running max of v (n) for AMSGrad, or empty.</param>
    /// <param name="s">Scalars.</param>
    public static void DirectionReference(Span<float> g, Span<float> m, Span<float> v, Span<float> vmax, AdamScalars s)
    {
        for (int i = 0; i < g.Length; i++)
        {
            m[i] = (s.Beta1 * m[i]) + (s.OneMinusBeta1 * g[i]);
            v[i] = (s.Beta2 * v[i]) + (s.OneMinusBeta2 * g[i] * g[i]);
            float second = v[i];
            if (!vmax.IsEmpty)
            {
                vmax[i] = float.IsNaN(v[i]) ? v[i] : MathF.Max(vmax[i], v[i]);
                second = vmax[i];
            }
            float mHat = m[i] / s.BiasCorrection1;
            float vHat = second / s.BiasCorrection2;
            g[i] = mHat / (MathF.Sqrt(vHat + s.EpsRoot) + s.Eps);
        }
    }

    /// <summary>Reference: the fused Adam/AdamW step (decay, moments, bias correction, lr, apply).</summary>
    /// <param name="p">Parameters (n), updated.</param>
    /// <param name="g">Gradients (n), read.</param>
    /// <param name="m">First moment (n).</param>
    /// <param name="v">Second moment (n).</param>
    /// <param name="vmax">Running max of v (n) for AMSGrad, or empty.</param>
    /// <param name="mask">Empty, or n bytes: 1 where weight decay applies.</param>
    /// <param name="s">Scalars.</param>
    public static void StepReference(Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, Span<float> vmax, ReadOnlySpan<byte> mask, AdamStepScalars s)
    {
        for (int i = 0; i < p.Length; i++)
        {
            float gi = g[i];
            if (mask.IsEmpty || mask[i] != 0)
            {
                p[i] *= s.DecayFactor;
                gi += s.WeightDecay * p[i];
            }
            Span<float> d = [gi];
            DirectionReference(d, m.Slice(i, 1), v.Slice(i, 1), vmax.IsEmpty ? [] : vmax.Slice(i, 1), s.Adam);
            p[i] -= s.LearningRate * d[0];
        }
    }
}
