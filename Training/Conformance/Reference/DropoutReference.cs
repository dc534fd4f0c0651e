namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>Dropout</c> kernels: plain loops, slow and obviously right.</summary>
internal static class DropoutReference
{
    /// <summary>Reference: y[i] = x[i] / (1 - p) where Uniform(i) &lt; 1 - p, else 0 (mask from <see cref="PhiloxReference.BernoulliReference"/>).</summary>
    /// <param name="x">Input (n).</param>
    /// <param name="y">Output (n).</param>
    /// <param name="p">Drop probability in [0, 1].</param>
    /// <param name="seed">The Philox seed.</param>
    /// <param name="stream">The Philox stream.</param>
    /// <param name="counter">The Philox counter (the step).</param>
    public static void ForwardReference(ReadOnlySpan<float> x, Span<float> y, float p, ulong seed, uint stream, uint counter)
    {
        Kernels.Dropout.CheckP(nameof(ForwardReference), p);
        var keep = new float[x.Length];
        PhiloxReference.BernoulliReference(keep, 1f - p, seed, stream, counter);
        for (int i = 0; i < x.Length; i++)
            y[i] = keep[i] != 0f ? x[i] * (1f / (1f - p)) : 0f;
    }

    /// <summary>Reference: dx[i] = dy[i] / (1 - p) where the forward kept element i, else 0.</summary>
    /// <param name="dy">Output gradient (n).</param>
    /// <param name="dx">Input gradient (n), overwritten.</param>
    /// <param name="p">Drop probability in [0, 1].</param>
    /// <param name="seed">The forward's seed.</param>
    /// <param name="stream">The forward's stream.</param>
    /// <param name="counter">The forward's counter.</param>
    public static void BackwardReference(ReadOnlySpan<float> dy, Span<float> dx, float p, ulong seed, uint stream, uint counter) =>
        ForwardReference(dy, dx, p, seed, stream, counter);
}
