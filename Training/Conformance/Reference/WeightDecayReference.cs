namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>WeightDecay</c> kernels: plain loops, slow and obviously right.</summary>
internal static class WeightDecayReference
{
    /// <summary>Reference: u[i] += lambda * mask[i] * p[i] (mask empty means all ones).</summary>
    /// <param name="updates">Updates (n), accumulated.</param>
    /// <param name="parameters">Parameters (n).</param>
    /// <param name="lambda">Decay coefficient.</param>
    /// <param name="mask">Empty, or n bytes of 0/1.</param>
    public static void AddReference(Span<float> updates, ReadOnlySpan<float> parameters, float lambda, ReadOnlySpan<byte> mask)
    {
        for (int i = 0; i < updates.Length; i++)
        {
            if (mask.IsEmpty || mask[i] != 0)
                updates[i] += lambda * parameters[i];
        }
    }
}
