namespace IlgpuTrain.Optimizers;

/// <summary>Multiplies the updates by a constant: u ← factor·u (Optax's <c>scale</c>).</summary>
/// <param name="Factor">The factor.</param>
public sealed record Scale(double Factor) : IGradientTransformation
{
    /// <inheritdoc/>
    public string Name => "scale";

    /// <inheritdoc/>
    public OptState Init(ParamTree parameters)
    {
        if (!double.IsFinite(Factor))
            throw new ArgumentOutOfRangeException(nameof(Factor), Factor, "Scale: the factor must be finite.");
        return new EmptyState();
    }

    /// <inheritdoc/>
    public UpdateResult Update(ParamTree grads, OptState state, ParamTree parameters, UpdateContext context)
    {
        var s = Chain.Expect<EmptyState>(state, this);
        ArgumentNullException.ThrowIfNull(grads);
        var g = grads.Flat32;
        Elementwise.Scale(grads.Device.Kernels, g, (float)Factor, g);
        s.MarkConsumed(Name + ".Update");
        return new UpdateResult(grads.Consume(Name), new EmptyState());
    }
}
