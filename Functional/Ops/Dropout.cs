namespace IlgpuTrain.Functional;

public static partial class F
{
    /// <summary>
    /// Inverted dropout, torch.nn.functional.dropout: in training, each element is zeroed with
    /// probability <paramref name="p"/> and the survivors are scaled by 1 / (1 - p), so E[y] = x.
    /// </summary>
    /// <remarks>
    /// <para>mask_i ~ Bernoulli(1 - p), drawn from Philox at (rng.Seed, rng.Stream, rng.Counter, i)</para>
    /// <para>y = x mask / (1 - p)</para>
    /// <para>dx = dy mask / (1 - p)  (the mask is recomputed from the same key, never stored)</para>
    /// <para>Eval mode, or p = 0, returns <paramref name="x"/> itself: no copy and no tape entry.
    /// p = 1 gives zeros. The same rng gives the same mask; advance its counter every step
    /// (<see cref="Rng.Next"/>). See https://pytorch.org/docs/stable/generated/torch.nn.Dropout.html.</para>
    /// </remarks>
    /// <param name="x">Input, any shape, float32.</param>
    /// <param name="p">Drop probability in [0, 1].</param>
    /// <param name="mode">Train drops; Eval is the identity.</param>
    /// <param name="rng">The randomness of this call (this layer, this step).</param>
    /// <returns>y, the shape of x (x itself in Eval or when p = 0).</returns>
    /// <exception cref="ArgumentOutOfRangeException">p is NaN or outside [0, 1].</exception>
    public static Tensor Dropout(Tensor x, float p, Mode mode, Rng rng)
    {
        const string op = nameof(Dropout);
        var scope = ScopeOf(op, x);
        ArgumentNullException.ThrowIfNull(rng);
        RequireFloat(op, x, nameof(x));
        if (!(p >= 0f && p <= 1f))
            throw new ArgumentOutOfRangeException(nameof(p), p, $"{op}: the drop probability p must be in [0, 1], got {p}.");
        if (mode is not (Mode.Train or Mode.Eval))
            throw new ArgumentOutOfRangeException(nameof(mode), mode, $"{op}: unknown mode {(int)mode}.");
        if (mode == Mode.Eval || p == 0f)
            return x;

        var y = scope.Allocate(x.Shape);
        var (seed, stream, counter) = (rng.Seed, rng.Stream, rng.Counter);
        IlgpuTrain.Kernels.Dropout.Forward(scope.Device.Kernels, x.View<float>(), y.View<float>(), p, seed, stream, counter);
        Record(op, y, [x], g => IlgpuTrain.Kernels.Dropout.Backward(g.Kernels, g.OutputGrad, g.Into(x), p, seed, stream, counter));
        return y;
    }
}
