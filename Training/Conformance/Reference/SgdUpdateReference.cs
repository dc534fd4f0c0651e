namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>SgdUpdate</c> kernels: plain loops, slow and obviously right.</summary>
internal static class SgdUpdateReference
{
    /// <summary>
    /// Reference: b = g on the first update, else b = mu*b + (1 − dampening)*g; then
    /// g = g + mu*b with Nesterov, else g = b. Does nothing when mu = 0.
    /// </summary>
    /// <param name="g">Gradients (n), overwritten with the step direction.</param>
    /// <param name="b">Momentum buffer (n), updated; not read on the first update.</param>
    /// <param name="mu">Momentum.</param>
    /// <param name="dampening">Dampening τ.</param>
    /// <param name="nesterov">Nesterov's direction g + mu*b.</param>
    /// <param name="first">No buffer yet (PyTorch's momentum_buffer is None).</param>
    public static void MomentumReference(Span<float> g, Span<float> b, float mu, float dampening, bool nesterov, bool first)
    {
        if (mu == 0f)
            return;
        for (int i = 0; i < g.Length; i++)
        {
            b[i] = first ? g[i] : (mu * b[i]) + ((1f - dampening) * g[i]);
            g[i] = nesterov ? g[i] + (mu * b[i]) : b[i];
        }
    }

    /// <summary>
    /// Reference: one SGD step, d = g + wd*mask*p, the momentum of <see cref="MomentumReference"/>
    /// applied to d, then p = p − lr*d.
    /// </summary>
    /// <param name="p">Parameters (n), updated.</param>
    /// <param name="g">Gradients (n), read.</param>
    /// <param name="b">Momentum buffer (n) when mu ≠ 0, updated; empty when mu = 0.</param>
    /// <param name="mask">Empty (decay everywhere) or n bytes of 0/1 selecting where weight decay applies.</param>
    /// <param name="lr">Learning rate.</param>
    /// <param name="weightDecay">Coupled weight decay wd.</param>
    /// <param name="mu">Momentum (0: plain SGD, b unused).</param>
    /// <param name="dampening">Dampening τ.</param>
    /// <param name="nesterov">Nesterov's direction.</param>
    /// <param name="first">No buffer yet.</param>
    public static void StepReference(Span<float> p, ReadOnlySpan<float> g, Span<float> b, ReadOnlySpan<byte> mask, float lr, float weightDecay, float mu, float dampening, bool nesterov, bool first)
    {
        for (int i = 0; i < p.Length; i++)
        {
            float d = g[i];
            if (weightDecay != 0f && (mask.IsEmpty || mask[i] != 0))
                d += weightDecay * p[i];
            if (mu != 0f)
            {
                b[i] = first ? d : (mu * b[i]) + ((1f - dampening) * d);
                d = nesterov ? d + (mu * b[i]) : b[i];
            }
            p[i] += -lr * d;
        }
    }
}
