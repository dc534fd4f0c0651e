namespace IlgpuTrain.Optimizers;

/// <summary>
/// Sets the updates of the parameters a <see cref="ParamMask"/> selects to zero, so those
/// parameters do not move (Optax's <c>set_to_zero</c> under a mask; <c>Freeze(ParamMask.All)</c>
/// is set_to_zero itself). For fine-tuning with a frozen, pre-trained backbone.
/// </summary>
/// <remarks>
/// <para>u_sel ← 0</para>
/// <para>u_rest ← u_rest   unchanged, bit for bit</para>
/// <para>One memset per contiguous range of selected parameters (adjacent parameters merge).</para>
/// <para>Place it <b>last</b> in a chain: transformations after it can move frozen parameters
/// again (weight decay adds λ·θ to a zero gradient). Two ways to freeze a backbone "0.*":</para>
/// <code>
/// // 1. optimizer state for every parameter; frozen updates zeroed at the end
/// new Chain(new Sgd(0.01, momentum: 0.9, weightDecay: 1e-4), new Freeze(ParamMask.ByName("0.*")))
/// // 2. optimizer state (moments) only for the trainable parameters
/// Freeze.AllExcept(ParamMask.ByName("0.*").Not(), new Sgd(0.01, momentum: 0.9, weightDecay: 1e-4))
/// </code>
/// <para>Either way a frozen parameter keeps its exact bits: θ + 0 = θ.</para>
/// </remarks>
/// <param name="Mask">The frozen parameters.</param>
public sealed record Freeze(ParamMask Mask) : IGradientTransformation
{
    /// <inheritdoc/>
    public string Name => "freeze";

    /// <summary>
    /// Trains only the parameters <paramref name="trainable"/> selects with <paramref name="optimizer"/>
    /// (its state sized to them) and freezes the rest (Optax's multi_transform with set_to_zero):
    /// <c>new Chain(new Masked(optimizer, trainable), new Freeze(trainable.Not()))</c>.
    /// </summary>
    /// <param name="trainable">The parameters to train.</param>
    /// <param name="optimizer">Their optimizer.</param>
    /// <returns>The chain.</returns>
    public static Chain AllExcept(ParamMask trainable, IGradientTransformation optimizer)
    {
        ArgumentNullException.ThrowIfNull(trainable);
        ArgumentNullException.ThrowIfNull(optimizer);
        return new Chain(new Masked(optimizer, trainable), new Freeze(trainable.Not()));
    }

    /// <inheritdoc/>
    public OptState Init(ParamTree parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(Mask);
        return new FreezeState(MaskPlan.Of(parameters.Layout, Mask));
    }

    /// <inheritdoc/>
    public UpdateResult Update(ParamTree grads, OptState state, ParamTree parameters, UpdateContext context)
    {
        var s = Chain.Expect<FreezeState>(state, this);
        ArgumentNullException.ThrowIfNull(grads);
        grads.Layout.RequireSame(s.Plan.Layout, Name);
        var g = grads.Flat32;
        foreach (var r in s.Plan.Ranges)
            g.SubView(r.Source, r.Length).MemSetToZero(grads.Device.Stream);
        s.MarkConsumed(Name + ".Update");
        return new UpdateResult(grads.Consume(Name), new FreezeState(s.Plan));
    }
}

/// <summary>The state of <see cref="Freeze"/>: the frozen ranges for the layout it was made for.</summary>
/// <param name="Plan">The frozen parameters and their ranges.</param>
public sealed record FreezeState(MaskPlan Plan) : OptState;
