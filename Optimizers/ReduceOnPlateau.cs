namespace IlgpuTrain.Optimizers;

/// <summary>In which direction a monitored quantity improves.</summary>
public enum PlateauMode
{
    /// <summary>Lower is better (a loss; PyTorch mode "min").</summary>
    Min,

    /// <summary>Higher is better (an accuracy; PyTorch mode "max").</summary>
    Max,
}

/// <summary>How much a new value must beat the best one to count as an improvement.</summary>
public enum ThresholdMode
{
    /// <summary>By a fraction of the best: loss &lt; best·(1 − threshold) in min mode (PyTorch "rel").</summary>
    Relative,

    /// <summary>By an amount: loss &lt; best − threshold in min mode (PyTorch "abs").</summary>
    Absolute,
}

/// <summary>
/// Scales the updates by a factor that drops when the monitored loss stops improving: PyTorch's
/// <c>torch.optim.lr_scheduler.ReduceLROnPlateau</c> as a transformation (Optax has
/// <c>contrib.reduce_on_plateau</c>). Place it after <see cref="ScaleByLearningRate"/>; the
/// effective learning rate is then lr(t)·scale.
/// </summary>
/// <remarks>
/// <para>It reacts only to updates whose <see cref="UpdateContext.Loss"/> is set (the trainer passes the
/// validation loss once per epoch); other updates apply the current scale unchanged. With a loss, the
/// state reacts first and the new scale applies to that same update: pass the validation loss with the
/// first update after validating, and the sequence of scales equals PyTorch's lr/base_lr with
/// <c>scheduler.step(val_loss)</c> between epochs.</para>
/// <para>On each loss x (PyTorch's step(metrics)):</para>
/// <para>improved = x &lt; best·(1 − threshold) [min, rel]; x &lt; best − threshold [min, abs];
/// x &gt; best·(1 + threshold) [max, rel]; x &gt; best + threshold [max, abs]</para>
/// <para>if improved: best = x, bad = 0; else bad += 1</para>
/// <para>if cooldown_counter &gt; 0: cooldown_counter −= 1, bad = 0 (bad epochs in cooldown are ignored)</para>
/// <para>if bad &gt; patience: new = max(scale·factor, min_scale); scale = new if scale − new &gt; eps; cooldown_counter = cooldown; bad = 0</para>
/// <para>best starts at +∞ (min) or −∞ (max), so the first loss is an improvement unless it is NaN;
/// a NaN loss is never an improvement, as in PyTorch.</para>
/// <para>min_lr and eps: PyTorch compares them with the learning rate; here they are in units of the
/// scale (a fraction of lr(t)). For a constant learning rate lr, PyTorch's min_lr is
/// <c>MinScale = min_lr/lr</c> and its eps is <c>Eps = eps/lr</c>; <see cref="ForLearningRate"/> does
/// that conversion.</para>
/// <para>Defaults (PyTorch's): mode min, factor 0.1, patience 10, threshold 1e-4 relative, cooldown 0,
/// min_lr 0, eps 1e-8.</para>
/// </remarks>
/// <param name="Mode">Whether lower (min, default) or higher (max) is better.</param>
/// <param name="Factor">Multiplier on a reduction (PyTorch factor, default 0.1), in [0, 1).</param>
/// <param name="Patience">Non-improving losses tolerated before reducing (PyTorch patience, default 10), at least 0.</param>
/// <param name="Threshold">Least improvement that counts (PyTorch threshold, default 1e-4), finite and at least 0.</param>
/// <param name="ThresholdMode">Relative (default) or absolute threshold (PyTorch threshold_mode).</param>
/// <param name="Cooldown">Losses to ignore after a reduction (PyTorch cooldown, default 0), at least 0.</param>
/// <param name="MinScale">Lowest scale (PyTorch min_lr divided by the lr, default 0), finite and at least 0.</param>
/// <param name="Eps">Smallest reduction of the scale that is applied (PyTorch eps divided by the lr, default 1e-8), finite and at least 0.</param>
public sealed record ReduceOnPlateau(
    PlateauMode Mode = PlateauMode.Min,
    double Factor = 0.1,
    int Patience = 10,
    double Threshold = 1e-4,
    ThresholdMode ThresholdMode = ThresholdMode.Relative,
    int Cooldown = 0,
    double MinScale = 0,
    double Eps = 1e-8) : IGradientTransformation
{
    /// <inheritdoc/>
    public string Name => "reduce_on_plateau";

    /// <summary>
    /// The transformation equal to PyTorch's <c>ReduceLROnPlateau(optimizer, ..., min_lr, eps)</c> on an
    /// optimizer whose learning rate is the constant <paramref name="learningRate"/>: min_lr and eps are
    /// divided by it.
    /// </summary>
    /// <param name="learningRate">The optimizer's (constant) learning rate, finite and greater than 0.</param>
    /// <param name="mode">PyTorch mode.</param>
    /// <param name="factor">PyTorch factor.</param>
    /// <param name="patience">PyTorch patience.</param>
    /// <param name="threshold">PyTorch threshold.</param>
    /// <param name="thresholdMode">PyTorch threshold_mode.</param>
    /// <param name="cooldown">PyTorch cooldown.</param>
    /// <param name="minLr">PyTorch min_lr, in learning-rate units.</param>
    /// <param name="eps">PyTorch eps, in learning-rate units.</param>
    /// <returns>The transformation.</returns>
    public static ReduceOnPlateau ForLearningRate(
        double learningRate,
        PlateauMode mode = PlateauMode.Min,
        double factor = 0.1,
        int patience = 10,
        double threshold = 1e-4,
        ThresholdMode thresholdMode = ThresholdMode.Relative,
        int cooldown = 0,
        double minLr = 0,
        double eps = 1e-8)
    {
        if (!(double.IsFinite(learningRate) && learningRate > 0))
            throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "ReduceOnPlateau.ForLearningRate: the learning rate must be finite and greater than 0.");
        return new(mode, factor, patience, threshold, thresholdMode, cooldown, minLr / learningRate, eps / learningRate);
    }

    /// <inheritdoc/>
    public OptState Init(ParamTree parameters)
    {
        Require(Enum.IsDefined(Mode), nameof(Mode), Mode, "mode must be Min or Max");
        Require(Factor >= 0 && Factor < 1, nameof(Factor), Factor, "factor must be in [0, 1) (PyTorch: factor < 1.0)");
        Require(Patience >= 0, nameof(Patience), Patience, "patience must be at least 0");
        Require(double.IsFinite(Threshold) && Threshold >= 0, nameof(Threshold), Threshold, "threshold must be finite and at least 0");
        Require(Enum.IsDefined(ThresholdMode), nameof(ThresholdMode), ThresholdMode, "threshold_mode must be Relative or Absolute");
        Require(Cooldown >= 0, nameof(Cooldown), Cooldown, "cooldown must be at least 0");
        Require(double.IsFinite(MinScale) && MinScale >= 0, nameof(MinScale), MinScale, "the minimum scale (PyTorch min_lr/lr) must be finite and at least 0");
        Require(double.IsFinite(Eps) && Eps >= 0, nameof(Eps), Eps, "eps must be finite and at least 0");
        return new ReduceOnPlateauState(1.0, Mode == PlateauMode.Min ? double.PositiveInfinity : double.NegativeInfinity, 0, 0, null);
    }

    /// <inheritdoc/>
    public UpdateResult Update(ParamTree grads, OptState state, ParamTree parameters, UpdateContext context)
    {
        var s = Chain.Expect<ReduceOnPlateauState>(state, this);
        ArgumentNullException.ThrowIfNull(grads);
        ArgumentNullException.ThrowIfNull(context);
        var next = context.Loss is double loss ? Observe(s, loss) : new ReduceOnPlateauState(s.Scale, s.Best, s.NumBadEpochs, s.CooldownCounter, s.LastLoss);
        // Multiplying by 1 changes no float (NaN and -0 included), so skip that pass over memory.
        if (next.Scale != 1)
        {
            var g = grads.Flat32;
            Elementwise.Scale(grads.Device.Kernels, g, (float)next.Scale, g);
        }
        s.MarkConsumed(Name + ".Update");
        return new UpdateResult(grads.Consume(Name), next);
    }

    /// <summary>The state after seeing <paramref name="loss"/> (PyTorch's <c>step(metrics)</c>); host only, consumes nothing.</summary>
    /// <param name="state">The current state.</param>
    /// <param name="loss">The monitored value.</param>
    /// <returns>The new state.</returns>
    public ReduceOnPlateauState Observe(ReduceOnPlateauState state, double loss)
    {
        ArgumentNullException.ThrowIfNull(state);
        state.EnsureAlive();
        double best = state.Best, scale = state.Scale;
        int bad = state.NumBadEpochs, cooldown = state.CooldownCounter;
        if (IsBetter(loss, best))
        {
            best = loss;
            bad = 0;
        }
        else
        {
            bad++;
        }
        if (cooldown > 0)
        {
            cooldown--;
            bad = 0;
        }
        if (bad > Patience)
        {
            double reduced = Math.Max(scale * Factor, MinScale);
            if (scale - reduced > Eps)
                scale = reduced;
            cooldown = Cooldown;
            bad = 0;
        }
        return new ReduceOnPlateauState(scale, best, bad, cooldown, loss);
    }

    // The same expressions as PyTorch's is_better, so edge cases (best = ±inf, NaN) agree.
    private bool IsBetter(double x, double best) => (Mode, ThresholdMode) switch
    {
        (PlateauMode.Min, ThresholdMode.Relative) => x < best * (1.0 - Threshold),
        (PlateauMode.Min, ThresholdMode.Absolute) => x < best - Threshold,
        (PlateauMode.Max, ThresholdMode.Relative) => x > best * (Threshold + 1.0),
        _ => x > best + Threshold,
    };

    private static void Require(bool ok, string argument, object value, string rule)
    {
        if (!ok)
            throw new ArgumentOutOfRangeException(argument, value, $"{nameof(ReduceOnPlateau)}: {rule}.");
    }
}

/// <summary>The state of <see cref="ReduceOnPlateau"/> (PyTorch ReduceLROnPlateau's state_dict, with the scale for the lr).</summary>
/// <param name="Scale">The factor the updates are multiplied by (PyTorch lr/base_lr); 1 at first.</param>
/// <param name="Best">The best loss so far (±∞ before the first).</param>
/// <param name="NumBadEpochs">Losses since the last improvement (PyTorch num_bad_epochs).</param>
/// <param name="CooldownCounter">Losses left to ignore after a reduction (PyTorch cooldown_counter).</param>
/// <param name="LastLoss">The last loss seen, or null before the first.</param>
public sealed record ReduceOnPlateauState(double Scale, double Best, int NumBadEpochs, int CooldownCounter, double? LastLoss) : OptState;
