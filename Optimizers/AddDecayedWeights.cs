namespace IlgpuTrain.Optimizers;

/// <summary>
/// Adds weight decay to the updates: u ← u + λ·θ on the parameters the mask selects.
/// </summary>
/// <remarks>
/// <para>u ← u + λ·mask·θ</para>
/// <para>Placed before the moments (SGD, Adam) it is coupled L2 regularization, as PyTorch's
/// <c>weight_decay</c>; placed after ScaleByAdam and before the learning rate it is AdamW's
/// decoupled decay (Loshchilov and Hutter, 2019), which with the learning rate applied gives
/// θ ← θ − lr·λ·θ − lr·adam_direction, exactly PyTorch's AdamW.</para>
/// <para>Default mask: every parameter (PyTorch's default). A common choice for AdamW is
/// <c>ParamMask.ByRank(2)</c>: no decay on biases or normalization scales.</para>
/// </remarks>
/// <param name="WeightDecay">λ, at least 0.</param>
/// <param name="Mask">Which parameters decay; null means all.</param>
public sealed record AddDecayedWeights(double WeightDecay, ParamMask? Mask = null) : IGradientTransformation
{
    /// <inheritdoc/>
    public string Name => "add_decayed_weights";

    /// <inheritdoc/>
    public OptState Init(ParamTree parameters)
    {
        if (!(WeightDecay >= 0) || double.IsInfinity(WeightDecay))
            throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay, "AddDecayedWeights: weight decay must be finite and at least 0 (PyTorch: weight_decay >= 0).");
        return new AddDecayedWeightsState(Mask?.ToDevice(parameters));
    }

    /// <inheritdoc/>
    public UpdateResult Update(ParamTree grads, OptState state, ParamTree parameters, UpdateContext context)
    {
        var s = Chain.Expect<AddDecayedWeightsState>(state, this);
        ArgumentNullException.ThrowIfNull(grads);
        ArgumentNullException.ThrowIfNull(parameters);
        grads.Layout.RequireSame(parameters.Layout, Name);
        IlgpuTrain.Kernels.WeightDecay.Add(parameters.Device.Kernels, grads.Flat32, parameters.Flat32, (float)WeightDecay, s.Mask?.View ?? default);
        s.MarkConsumed(Name + ".Update");
        return new UpdateResult(grads.Consume(Name), new AddDecayedWeightsState(s.Mask));
    }
}

/// <summary>The state of <see cref="AddDecayedWeights"/>: the device mask, if any.</summary>
/// <param name="Mask">Per-element mask, or null for all parameters.</param>
public sealed record AddDecayedWeightsState(DeviceMask? Mask) : OptState
{
    /// <inheritdoc/>
    public override void Dispose()
    {
        if (!IsConsumed)
            Mask?.Dispose();
        base.Dispose();
    }
}
