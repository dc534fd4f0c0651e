namespace IlgpuTrain.Optimizers;

/// <summary>
/// Clamps every update to [min, max]: PyTorch's <c>torch.nn.utils.clip_grad_value_</c>
/// (min = −c, max = c) and Optax's <c>clip(max_delta)</c>.
/// </summary>
/// <remarks>
/// <para>g ← min(max(g, min), max)</para>
/// <para>NaN stays NaN (torch.clamp). One launch over the flat buffer; no state.</para>
/// </remarks>
/// <param name="Min">Lower bound.</param>
/// <param name="Max">Upper bound, at least <paramref name="Min"/>.</param>
public sealed record ClipByValue(double Min, double Max) : IGradientTransformation
{
    /// <summary>Clamps to [−<paramref name="clipValue"/>, <paramref name="clipValue"/>] (PyTorch's clip_value).</summary>
    /// <param name="clipValue">c, at least 0.</param>
    public ClipByValue(double clipValue)
        : this(-clipValue, clipValue)
    {
    }

    /// <inheritdoc/>
    public string Name => "clip_by_value";

    /// <inheritdoc/>
    public OptState Init(ParamTree parameters)
    {
        if (!(Min <= Max))
            throw new ArgumentOutOfRangeException(nameof(Max), Max, $"ClipByValue: the bounds must satisfy min <= max (clip_value >= 0), got min = {Min} and max = {Max}.");
        return new EmptyState();
    }

    /// <inheritdoc/>
    public UpdateResult Update(ParamTree grads, OptState state, ParamTree parameters, UpdateContext context)
    {
        var s = Chain.Expect<EmptyState>(state, this);
        ArgumentNullException.ThrowIfNull(grads);
        Clip.ByValue(grads.Device.Kernels, grads.Flat32, (float)Min, (float)Max);
        s.MarkConsumed(Name + ".Update");
        return new UpdateResult(grads.Consume(Name), new EmptyState());
    }
}
