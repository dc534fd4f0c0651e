namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>AdagradUpdate</c> kernels: plain loops, slow and obviously right.</summary>
internal static class AdagradUpdateReference
{
    /// <summary>Reference: s += g^2, then g = g / (sqrt(s) + eps).</summary>
    /// <param name="g">Gradients (n), overwritten with d.</param>
    /// <param name="sum">Sum of squared gradients (n), accumulated.</param>
    /// <param name="eps">eps, outside the sqrt.</param>
    public static void DirectionReference(Span<float> g, Span<float> sum, float eps)
    {
        for (int i = 0; i < g.Length; i++)
        {
            sum[i] += g[i] * g[i];
            g[i] /= MathF.Sqrt(sum[i]) + eps;
        }
    }

    /// <summary>Reference: the fused Adagrad step.</summary>
    /// <param name="p">Parameters (n), updated.</param>
    /// <param name="g">Gradients (n), read.</param>
    /// <param name="sum">Sum of squared gradients (n), accumulated.</param>
    /// <param name="learningRate">clr of this step (lr_decay already applied).</param>
    /// <param name="weightDecay">Coupled L2 lambda.</param>
    /// <param name="eps">eps.</param>
    public static void StepReference(Span<float> p, ReadOnlySpan<float> g, Span<float> sum, float learningRate, float weightDecay, float eps)
    {
        for (int i = 0; i < p.Length; i++)
        {
            Span<float> d = [g[i] + (weightDecay * p[i])];
            DirectionReference(d, sum.Slice(i, 1), eps);
            p[i] -= learningRate * d[0];
        }
    }
}
