namespace IlgpuTrain.Optimizers;

/// <summary>
/// An exponential moving average of the weights, with the semantics of timm's
/// <c>ModelEmaV3</c> (timm/utils/model_ema.py) as timm's train.py drives it: created as a copy
/// of the model, then <c>update(model, step=num_updates)</c> after every optimizer update.
/// </summary>
/// <remarks>
/// <para>After optimizer update t (t = 1, 2, ...; skipped steps and accumulating micro-batches do not count):</para>
/// <para>s = max(0, t − update_after_step − 1)</para>
/// <para>decay_t = 0 when s = 0 (the first update copies the weights)</para>
/// <para>decay_t = max(min(1 − (1 + s/γ)^(−p), decay), min_decay) with warmup; decay_t = decay without</para>
/// <para>ema ← decay_t·ema + (1 − decay_t)·w, computed as torch.lerp(ema, w, 1 − decay_t)</para>
/// <para>Defaults as timm: decay 0.9999, min_decay 0, update_after_step 0, warmup off, γ
/// (warmup_gamma) 1, p (warmup_power) 2/3; the warmup is @crowsonkb's (γ = 1, p = 2/3 reaches
/// 0.999 at 31.6k updates, p = 3/4 at 10k). Buffers: as timm's default (exclude_buffers False),
/// the floating-point model state (BatchNorm running_mean and running_var) is averaged with the
/// same decay and integer buffers (num_batches_tracked) are copied; <see cref="ExcludeBuffers"/>
/// copies all of them. The initial EMA is a copy of the initial weights and state.</para>
/// <para>Each update is one launch over the flat Float32 parameter buffer (and one over the
/// state's): 12 bytes per parameter.</para>
/// </remarks>
public sealed record Ema : WeightAveraging
{
    /// <summary>timm's default decay.</summary>
    public const double DefaultDecay = 0.9999;

    /// <summary>Creates an EMA; options are checked here.</summary>
    /// <param name="decay">The decay (the ceiling with warmup), in [0, 1].</param>
    /// <param name="warmup">Warm the decay up with 1 − (1 + s/γ)^(−p) (timm's use_warmup).</param>
    /// <param name="warmupGamma">γ (timm's warmup_gamma, @crowsonkb's inv_gamma), above 0.</param>
    /// <param name="warmupPower">p (timm's warmup_power), above 0.</param>
    /// <param name="minDecay">The floor of the warmed-up decay, in [0, decay].</param>
    /// <param name="updateAfterStep">Updates during which the EMA copies the weights (decay 0), at least 0.</param>
    /// <param name="excludeBuffers">Copy the model state instead of averaging it.</param>
    public Ema(double decay = DefaultDecay, bool warmup = false, double warmupGamma = 1.0, double warmupPower = 2.0 / 3.0, double minDecay = 0.0, long updateAfterStep = 0, bool excludeBuffers = false)
    {
        Decay = decay;
        Warmup = warmup;
        WarmupGamma = warmupGamma;
        WarmupPower = warmupPower;
        MinDecay = minDecay;
        UpdateAfterStep = updateAfterStep;
        ExcludeBuffers = excludeBuffers;
        Validate();
    }

    /// <summary>The decay (the ceiling of the warmed-up decay).</summary>
    public double Decay { get; init; }

    /// <summary>Whether the decay warms up (timm's use_warmup).</summary>
    public bool Warmup { get; init; }

    /// <summary>γ of the warmup (timm's warmup_gamma).</summary>
    public double WarmupGamma { get; init; }

    /// <summary>p of the warmup (timm's warmup_power).</summary>
    public double WarmupPower { get; init; }

    /// <summary>The floor of the warmed-up decay (timm's min_decay).</summary>
    public double MinDecay { get; init; }

    /// <summary>Updates during which the EMA copies the weights (timm's update_after_step).</summary>
    public long UpdateAfterStep { get; init; }

    /// <summary>Whether the model state is copied instead of averaged (timm's exclude_buffers).</summary>
    public bool ExcludeBuffers { get; init; }

    /// <inheritdoc/>
    public override string Kind => "ema";

    /// <inheritdoc/>
    public override bool RefreshesBatchNorm => false;

    /// <inheritdoc/>
    public override void Validate(int epochs = 0)
    {
        if (!(Decay >= 0 && Decay <= 1))
            throw new ArgumentOutOfRangeException(nameof(Decay), Decay, $"Ema: decay {Decay} is outside [0, 1]; use a value such as 0.999 or 0.9999 (1 keeps the first weights, 0 tracks the weights).");
        if (!(WarmupGamma > 0) || double.IsInfinity(WarmupGamma))
            throw new ArgumentOutOfRangeException(nameof(WarmupGamma), WarmupGamma, "Ema: warmup_gamma must be finite and above 0 (timm's default is 1).");
        if (!(WarmupPower > 0) || double.IsInfinity(WarmupPower))
            throw new ArgumentOutOfRangeException(nameof(WarmupPower), WarmupPower, "Ema: warmup_power must be finite and above 0 (timm's default is 2/3; 3/4 for shorter runs).");
        if (!(MinDecay >= 0 && MinDecay <= Decay))
            throw new ArgumentOutOfRangeException(nameof(MinDecay), MinDecay, $"Ema: min_decay {MinDecay} must be in [0, decay] = [0, {Decay}].");
        if (UpdateAfterStep < 0)
            throw new ArgumentOutOfRangeException(nameof(UpdateAfterStep), UpdateAfterStep, "Ema: update_after_step must be at least 0.");
    }

    /// <summary>The decay used by optimizer update <paramref name="update"/> (timm's get_decay(step)).</summary>
    /// <param name="update">The update's number, from 1.</param>
    /// <returns>decay_t.</returns>
    public double DecayAt(long update)
    {
        if (update < 1)
            throw new ArgumentOutOfRangeException(nameof(update), update, "Ema.DecayAt: updates are numbered from 1.");
        long s = Math.Max(0, update - UpdateAfterStep - 1);
        if (s == 0)
            return 0.0;
        if (!Warmup)
            return Decay;
        double warm = 1 - Math.Pow(1 + (s / WarmupGamma), -WarmupPower);
        return Math.Max(Math.Min(warm, Decay), MinDecay);
    }

    /// <summary>The EMA at the start: a copy of the weights and state (timm deep-copies the model), count 0.</summary>
    /// <param name="parameters">The parameters (read).</param>
    /// <param name="state">The model state (read).</param>
    /// <returns>The EMA.</returns>
    public AveragedWeights Init(ParamTree parameters, ParamTree state) => AveragedWeights.CopyOf(parameters, state, 0);

    /// <summary>Folds the weights after optimizer update <c>ema.Count + 1</c> into the EMA. Consumes <paramref name="ema"/>.</summary>
    /// <param name="ema">The EMA (from <see cref="Init"/> or the previous update). Consumed.</param>
    /// <param name="parameters">The parameters after the update (read).</param>
    /// <param name="state">The model state after the step (read).</param>
    /// <returns>The new EMA, its count one more.</returns>
    public AveragedWeights Update(AveragedWeights ema, ParamTree parameters, ParamTree state)
    {
        ArgumentNullException.ThrowIfNull(ema);
        long t = ema.Count + 1;
        // torch.lerp's weight is a float scalar: 1 - decay in double, then rounded.
        float weight = (float)(1.0 - DecayAt(t));
        return ema.Lerp(parameters, state, weight, averageState: !ExcludeBuffers, t, "Ema.Update");
    }

    /// <inheritdoc/>
    public override AveragedWeights? Start(ParamTree parameters, ParamTree state) => Init(parameters, state);

    /// <inheritdoc/>
    public override AveragedWeights? AfterUpdate(AveragedWeights? averaged, ParamTree parameters, ParamTree state) =>
        Update(averaged ?? Init(parameters, state), parameters, state);

    /// <inheritdoc/>
    public override AveragedWeights? AfterEpoch(AveragedWeights? averaged, ParamTree parameters, ParamTree state, int epoch) => averaged;
}
