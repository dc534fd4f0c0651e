namespace IlgpuTrain.Optimizers;

/// <summary>
/// A loss scale: multiply the loss (or the backward seed) by <see cref="Scale"/> so small fp16
/// activation gradients do not flush to zero, then unscale the fp32 master gradients by
/// 1/<see cref="Scale"/> before the optimizer. Values are immutable: <see cref="Adjust"/>
/// returns the next one.
/// </summary>
/// <remarks>
/// One training step with loss scaling (see <see cref="LossScaling.Step"/>):
/// <code>
/// loss' = scale · loss                   (or seed the backward pass with dLoss = scale)
/// g     = backward(loss') / scale         one kernel over the flat buffer + one 4-byte read
/// if all g finite:  θ, state ← optimizer step
/// else:             skip: θ, moments and schedule count unchanged
/// scale ← Adjust(all g finite)
/// </code>
/// </remarks>
public interface ILossScale
{
    /// <summary>The factor that multiplies the loss, or the value to seed the backward pass with instead of 1.</summary>
    float Scale { get; }

    /// <summary>loss · <see cref="Scale"/>, in float32 (PyTorch's <c>GradScaler.scale(loss)</c>).</summary>
    /// <param name="loss">The unscaled loss.</param>
    /// <returns>The scaled loss.</returns>
    float ScaleLoss(float loss);

    /// <summary>
    /// Multiplies the Float32 gradients by 1/<see cref="Scale"/> in place and reports whether
    /// every one is finite: one kernel and one 4-byte device-to-host read (a synchronization).
    /// </summary>
    /// <param name="grads">Gradients of the scaled loss (modified in place, not consumed).</param>
    /// <returns>True when no gradient is inf or NaN.</returns>
    bool UnscaleInPlace(ParamTree grads);

    /// <summary>The loss scale for the next step, given whether this step's gradients were all finite. Returns a value of this same type.</summary>
    /// <param name="allFinite">What <see cref="UnscaleInPlace"/> returned.</param>
    /// <returns>The next loss scale.</returns>
    ILossScale Adjust(bool allFinite);
}

/// <summary>A fixed loss scale (JMP's <c>StaticLossScale</c>); <see cref="Adjust"/> returns it unchanged.</summary>
/// <remarks>
/// <para>loss' = scale · loss</para>
/// <para>g ← g / scale (multiplied by the float32 1/scale, exact when scale is a power of two)</para>
/// <para>A step whose gradients are not all finite is still skipped by <see cref="LossScaling.Step"/>:
/// applying it would poison the parameters. A scale of 1 makes unscaling a read-only finite check.</para>
/// </remarks>
public sealed record StaticLossScale : ILossScale
{
    private readonly float _scale;

    /// <summary>A fixed scale.</summary>
    /// <param name="scale">The scale: positive and finite; a power of two keeps unscaling exact.</param>
    public StaticLossScale(float scale)
    {
        Scale = scale;
    }

    /// <inheritdoc/>
    public float Scale
    {
        get => _scale;
        init => _scale = float.IsFinite(value) && value > 0f
            ? value
            : throw new ArgumentOutOfRangeException(nameof(Scale), value, "StaticLossScale: the scale must be positive and finite.");
    }

    /// <inheritdoc/>
    public float ScaleLoss(float loss) => loss * Scale;

    /// <inheritdoc/>
    public bool UnscaleInPlace(ParamTree grads) => LossScaling.UnscaleInPlace(grads, Scale);

    /// <summary>Returns this scale: a static scale never changes.</summary>
    /// <param name="allFinite">Ignored.</param>
    /// <returns>This value.</returns>
    public StaticLossScale Adjust(bool allFinite) => this;

    /// <inheritdoc/>
    ILossScale ILossScale.Adjust(bool allFinite) => Adjust(allFinite);
}

/// <summary>
/// A dynamic loss scale with PyTorch's <c>torch.cuda.amp.GradScaler</c> semantics and defaults:
/// back off when gradients overflow, grow after <see cref="GrowthInterval"/> clean steps.
/// </summary>
/// <remarks>
/// <para>Defaults: init_scale 2¹⁶ = 65536, growth_factor 2, backoff_factor 0.5, growth_interval 2000.</para>
/// <para>Unscale: g ← g · inv, inv = float32(1 / float64(scale)), as GradScaler's <c>unscale_</c>.</para>
/// <para>If any g is inf or NaN: the optimizer step is skipped; scale ← float32(scale · backoff_factor); tracker ← 0.</para>
/// <para>Else: tracker ← tracker + 1, and when tracker reaches growth_interval:
/// scale ← float32(scale · growth_factor) if that is finite (otherwise the scale is kept); tracker ← 0.</para>
/// <para>This is <c>_amp_update_scale_</c> (aten/src/ATen/native/cuda/AmpKernels.cu): the products are
/// taken in float64 and rounded to the float32 scale. One deliberate difference: growth fires when
/// the tracker reaches the interval or passes it (PyTorch tests equality, so lowering
/// growth_interval below a running tracker with <c>set_growth_interval</c> stops growth there until
/// the next backoff). The scale lives on the host here, so no device round-trip is needed for it;
/// the only synchronization is the 4-byte flag read in <see cref="UnscaleInPlace"/>.</para>
/// <para>The scale is not floored: after about 150 consecutive overflows from 2¹⁶ it underflows
/// towards 0, as in PyTorch, and <see cref="UnscaleInPlace"/> then throws (1/scale is not finite)
/// instead of skipping forever.</para>
/// <para>See https://pytorch.org/docs/stable/amp.html#torch.cuda.amp.GradScaler.</para>
/// </remarks>
public sealed record DynamicLossScale : ILossScale
{
    /// <summary>PyTorch's default init_scale, 2¹⁶.</summary>
    public const float DefaultInitScale = 65536f;

    /// <summary>PyTorch's default growth_factor.</summary>
    public const double DefaultGrowthFactor = 2.0;

    /// <summary>PyTorch's default backoff_factor.</summary>
    public const double DefaultBackoffFactor = 0.5;

    /// <summary>PyTorch's default growth_interval.</summary>
    public const int DefaultGrowthInterval = 2000;

    private readonly double _growthFactor;
    private readonly double _backoffFactor;
    private readonly int _growthInterval;
    private readonly int _growthTracker;

    /// <summary>A dynamic loss scale with GradScaler's defaults unless given.</summary>
    /// <param name="initScale">The first scale (PyTorch's init_scale): positive and finite.</param>
    /// <param name="growthFactor">Factor applied after <paramref name="growthInterval"/> clean steps (growth_factor): more than 1.</param>
    /// <param name="backoffFactor">Factor applied after an overflow (backoff_factor): in (0, 1).</param>
    /// <param name="growthInterval">Clean steps between growths (growth_interval): at least 1.</param>
    public DynamicLossScale(float initScale = DefaultInitScale, double growthFactor = DefaultGrowthFactor, double backoffFactor = DefaultBackoffFactor, int growthInterval = DefaultGrowthInterval)
    {
        if (!(initScale > 0f) || !float.IsFinite(initScale))
            throw new ArgumentOutOfRangeException(nameof(initScale), initScale, "DynamicLossScale: init_scale must be positive and finite.");
        Scale = initScale;
        GrowthFactor = growthFactor;
        BackoffFactor = backoffFactor;
        GrowthInterval = growthInterval;
    }

    /// <summary>The current scale (float32, as GradScaler's <c>_scale</c> tensor).</summary>
    public float Scale { get; init; }

    /// <summary>growth_factor: more than 1 and finite.</summary>
    public double GrowthFactor
    {
        get => _growthFactor;
        init => _growthFactor = value > 1.0 && double.IsFinite(value)
            ? value
            : throw new ArgumentOutOfRangeException(nameof(GrowthFactor), value, "DynamicLossScale: growth_factor must be > 1 and finite (PyTorch's GradScaler asserts growth_factor > 1.0).");
    }

    /// <summary>backoff_factor: in (0, 1).</summary>
    public double BackoffFactor
    {
        get => _backoffFactor;
        init => _backoffFactor = value > 0.0 && value < 1.0
            ? value
            : throw new ArgumentOutOfRangeException(nameof(BackoffFactor), value, "DynamicLossScale: backoff_factor must be in (0, 1) (PyTorch's GradScaler asserts backoff_factor < 1.0; 0 would zero the scale).");
    }

    /// <summary>growth_interval: consecutive clean steps before the scale grows, at least 1.</summary>
    public int GrowthInterval
    {
        get => _growthInterval;
        init => _growthInterval = value >= 1
            ? value
            : throw new ArgumentOutOfRangeException(nameof(GrowthInterval), value, "DynamicLossScale: growth_interval must be at least 1.");
    }

    /// <summary>Consecutive clean steps since the last growth or backoff (GradScaler's <c>_growth_tracker</c>).</summary>
    public int GrowthTracker
    {
        get => _growthTracker;
        init => _growthTracker = value >= 0
            ? value
            : throw new ArgumentOutOfRangeException(nameof(GrowthTracker), value, "DynamicLossScale: the growth tracker counts steps and cannot be negative.");
    }

    /// <inheritdoc/>
    public float ScaleLoss(float loss) => loss * Scale;

    /// <inheritdoc/>
    public bool UnscaleInPlace(ParamTree grads) => LossScaling.UnscaleInPlace(grads, Scale);

    /// <summary>The next scale: backoff and tracker reset after an overflow, growth every <see cref="GrowthInterval"/> clean steps.</summary>
    /// <param name="allFinite">Whether this step's gradients were all finite.</param>
    /// <returns>The next loss scale.</returns>
    public DynamicLossScale Adjust(bool allFinite)
    {
        if (!allFinite)
            return this with { Scale = (float)(Scale * BackoffFactor), GrowthTracker = 0 };
        int successful = GrowthTracker + 1;
        if (successful < GrowthInterval)
            return this with { GrowthTracker = successful };
        float grown = (float)(Scale * GrowthFactor);
        // Growing past float32's range would make every later scaled loss inf: keep the old scale.
        return this with { Scale = float.IsFinite(grown) ? grown : Scale, GrowthTracker = 0 };
    }

    /// <inheritdoc/>
    ILossScale ILossScale.Adjust(bool allFinite) => Adjust(allFinite);
}

/// <summary>Loss-scaled optimizer steps and the finite checks behind them.</summary>
public static class LossScaling
{
    /// <summary>
    /// One loss-scaled optimizer step with GradScaler's skip rule: unscale the gradients, and
    /// step only if they are all finite; the loss scale adjusts either way.
    /// </summary>
    /// <remarks>
    /// <para>Stepped (all gradients finite): exactly <see cref="Optimizer.Step"/> on the unscaled
    /// gradients, so <paramref name="parameters"/>, <paramref name="grads"/> and
    /// <paramref name="state"/> are consumed and the new ones are returned.</para>
    /// <para>Skipped (an inf or NaN): <paramref name="grads"/> is disposed; the very
    /// <paramref name="parameters"/> and <paramref name="state"/> objects passed in are returned,
    /// untouched and not consumed, so parameters, moments and the schedule count do not move.</para>
    /// <para>Cost: one unscale kernel over the flat Float32 buffer and one 4-byte read, then the optimizer.</para>
    /// </remarks>
    /// <typeparam name="TScale">The loss-scale type (<see cref="DynamicLossScale"/> or <see cref="StaticLossScale"/>).</typeparam>
    /// <param name="optimizer">The optimizer.</param>
    /// <param name="parameters">Parameters. Consumed when the step is taken.</param>
    /// <param name="grads">Gradients of the scaled loss. Consumed or disposed, always.</param>
    /// <param name="state">Optimizer state. Consumed when the step is taken.</param>
    /// <param name="lossScale">The loss scale the gradients were computed with.</param>
    /// <param name="context">Extras for the optimizer.</param>
    /// <returns>The parameters, optimizer state and loss scale to use next, and whether the step was taken.</returns>
    public static (ParamTree Parameters, OptState State, TScale LossScale, bool Stepped) Step<TScale>(
        IGradientTransformation optimizer, ParamTree parameters, ParamTree grads, OptState state, TScale lossScale, UpdateContext? context = null)
        where TScale : ILossScale
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(grads);
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(lossScale);
        state.EnsureAlive();
        grads.Layout.RequireSame(parameters.Layout, "LossScaling.Step");
        bool finite = lossScale.UnscaleInPlace(grads);
        var adjusted = lossScale.Adjust(finite);
        if (adjusted is not TScale next)
            throw new InvalidOperationException($"LossScaling.Step: {lossScale.GetType().Name}.Adjust returned a {adjusted?.GetType().Name ?? "null"}; an ILossScale must adjust to its own type.");
        if (!finite)
        {
            grads.Dispose();
            return (parameters, state, next, false);
        }
        var (p, s) = optimizer.Step(parameters, grads, state, context);
        return (p, s, next, true);
    }

    /// <summary>
    /// Multiplies the Float32 gradients by float32(1/scale) in place and returns whether every
    /// result is finite: one <see cref="Kernels.LossScale.Unscale"/> launch and one 4-byte read.
    /// A scale of 1 only reads.
    /// </summary>
    /// <param name="grads">Gradients (modified in place, not consumed). Int32 groups are ignored; Float16 groups are refused.</param>
    /// <param name="scale">The loss scale the gradients carry.</param>
    /// <returns>True when no gradient is inf or NaN.</returns>
    public static bool UnscaleInPlace(ParamTree grads, float scale)
    {
        ArgumentNullException.ThrowIfNull(grads);
        // GradScaler's inv_scale = scale.double().reciprocal().float().
        float inv = (float)(1.0 / scale);
        if (!(scale > 0f) || !float.IsFinite(inv))
            throw new InvalidOperationException($"LossScaling: the loss scale is {scale:R}, so 1/scale is {inv:R}; gradients cannot be unscaled. A dynamic scale only gets there after some 150 consecutive non-finite steps: the run has diverged.");
        return Flagged(grads, inv);
    }

    /// <summary>
    /// Whether every Float32 value of the tree is finite: the unscale kernel with scale 1, which
    /// only reads, then one 4-byte device-to-host read (a synchronization of the stream).
    /// </summary>
    /// <param name="values">The tree (not modified). Int32 groups are ignored; Float16 groups are refused.</param>
    /// <returns>True when no value is inf or NaN.</returns>
    public static bool AllFinite(ParamTree values)
    {
        ArgumentNullException.ThrowIfNull(values);
        return Flagged(values, 1f);
    }

    private static bool Flagged(ParamTree grads, float inv)
    {
        if (grads.Layout.LengthOf(DType.Float16) > 0)
            throw new NotSupportedException($"LossScaling: the tree holds {grads.Layout.LengthOf(DType.Float16)} Float16 values; loss scaling unscales fp32 master gradients. Cast half gradients to Float32 first.");
        var device = grads.Device;
        var grad32 = grads.Flat32;
        using var flag = device.Pool.Rent(sizeof(int));
        var found = flag.View<int>(1);
        flag.View<byte>(sizeof(int)).MemSetToZero(device.Stream);
        Kernels.LossScale.Unscale(device.Kernels, grad32, inv, found);
        Span<int> host = stackalloc int[1];
        Transfer.ToHost(device.Stream, found, host);
        return host[0] == 0;
    }
}
