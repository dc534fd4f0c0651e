namespace IlgpuTrain.Optimizers;

// Schedules that warm up: a linear ramp of a factor (PyTorch LinearLR), Hugging Face's linear
// warmup then linear decay, the Transformer's inverse-square-root schedule (Noam), and
// warmup-stable-decay (WSD). All are closed forms of the update count t.

/// <summary>
/// lr(t) = base·(start + (end − start)·min(t, total_iters)/total_iters): PyTorch
/// <c>torch.optim.lr_scheduler.LinearLR</c> (its closed form). The usual warmup: lr(0) = base/3,
/// reaching base at t = 5 with the defaults, and staying there.
/// </summary>
/// <param name="BaseLr">The optimizer's lr that the factor multiplies, finite and at least 0.</param>
/// <param name="StartFactor">Factor at t = 0 (PyTorch start_factor, default 1/3), in (0, 1].</param>
/// <param name="EndFactor">Factor from t = total_iters on (PyTorch end_factor, default 1), in [0, 1].</param>
/// <param name="TotalIters">Updates over which the factor moves (PyTorch total_iters, default 5), at least 1.</param>
public sealed record LinearLR(double BaseLr, double StartFactor = 1.0 / 3, double EndFactor = 1.0, int TotalIters = 5) : Schedule
{
    private readonly bool _checked = Check(BaseLr, StartFactor, EndFactor, TotalIters);

    /// <inheritdoc/>
    public override double At(long step)
    {
        CheckStep(step);
        Check(BaseLr, StartFactor, EndFactor, TotalIters);
        return BaseLr * (StartFactor + ((EndFactor - StartFactor) * Math.Min(TotalIters, step) / TotalIters));
    }

    private static bool Check(double baseLr, double startFactor, double endFactor, int totalIters)
    {
        RequireRate(baseLr, nameof(BaseLr), "LinearLR: the base learning rate (PyTorch lr)");
        // PyTorch 2 refuses 0: its recursive form divides by start_factor.
        Require(startFactor > 0 && startFactor <= 1, nameof(StartFactor), startFactor, "LinearLR: start_factor must be in (0, 1]");
        Require(endFactor >= 0 && endFactor <= 1, nameof(EndFactor), endFactor, "LinearLR: end_factor must be in [0, 1]");
        Require(totalIters >= 1, nameof(TotalIters), totalIters, "LinearLR: total_iters must be at least 1");
        return true;
    }
}

/// <summary>
/// Linear warmup from 0 to the peak over W updates, then linear decay to 0 at T: Hugging Face
/// Transformers' <c>get_linear_schedule_with_warmup(optimizer, num_warmup_steps=W, num_training_steps=T)</c>.
/// </summary>
/// <remarks>
/// <para>lr(t) = peak·t/max(1, W) for t &lt; W</para>
/// <para>lr(t) = peak·max(0, (T − t)/max(1, T − W)) for t ≥ W</para>
/// <para>So lr(0) = 0 when W &gt; 0: the first update does nothing, as in Transformers.</para>
/// </remarks>
/// <param name="PeakLr">The optimizer's lr, reached at t = W; finite and at least 0.</param>
/// <param name="WarmupSteps">W (num_warmup_steps), at least 0.</param>
/// <param name="TotalSteps">T (num_training_steps), at least W.</param>
public sealed record LinearWarmupDecay(double PeakLr, int WarmupSteps, int TotalSteps) : Schedule
{
    private readonly bool _checked = Check(PeakLr, WarmupSteps, TotalSteps);

    /// <inheritdoc/>
    public override double At(long step)
    {
        CheckStep(step);
        Check(PeakLr, WarmupSteps, TotalSteps);
        if (step < WarmupSteps)
            return PeakLr * ((double)step / Math.Max(1, WarmupSteps));
        return PeakLr * Math.Max(0.0, (double)(TotalSteps - step) / Math.Max(1, TotalSteps - WarmupSteps));
    }

    private static bool Check(double peakLr, int warmupSteps, int totalSteps)
    {
        RequireRate(peakLr, nameof(PeakLr), "LinearWarmupDecay: the peak learning rate (the optimizer's lr)");
        Require(warmupSteps >= 0, nameof(WarmupSteps), warmupSteps, "LinearWarmupDecay: num_warmup_steps must be at least 0");
        Require(totalSteps >= warmupSteps, nameof(TotalSteps), totalSteps, $"LinearWarmupDecay: num_training_steps must be at least num_warmup_steps ({warmupSteps})");
        return true;
    }
}

/// <summary>
/// The Transformer's schedule (Vaswani et al. 2017, "Attention Is All You Need", §5.3; the
/// Annotated Transformer's <c>rate</c>): linear warmup, then decay as 1/√t.
/// </summary>
/// <remarks>
/// <para>s = max(t, 1)</para>
/// <para>lr(t) = factor·d_model^−0.5·min(s^−0.5, s·W^−1.5)</para>
/// <para>The two branches meet at s = W, the peak: factor·(d_model·W)^−0.5.</para>
/// </remarks>
/// <param name="DModel">The model width d_model, at least 1.</param>
/// <param name="WarmupSteps">W, at least 1.</param>
/// <param name="Factor">A multiplier (default 1), finite and at least 0.</param>
public sealed record Noam(int DModel, int WarmupSteps, double Factor = 1.0) : Schedule
{
    private readonly bool _checked = Check(DModel, WarmupSteps, Factor);

    /// <inheritdoc/>
    public override double At(long step)
    {
        CheckStep(step);
        Check(DModel, WarmupSteps, Factor);
        double s = Math.Max(step, 1);
        return Factor * (Math.Pow(DModel, -0.5) * Math.Min(Math.Pow(s, -0.5), s * Math.Pow(WarmupSteps, -1.5)));
    }

    private static bool Check(int dModel, int warmupSteps, double factor)
    {
        Require(dModel >= 1, nameof(DModel), dModel, "Noam: d_model must be at least 1");
        Require(warmupSteps >= 1, nameof(WarmupSteps), warmupSteps, "Noam: warmup_steps must be at least 1");
        RequireRate(factor, nameof(Factor), "Noam: the factor");
        return true;
    }
}

/// <summary>
/// Warmup–stable–decay (WSD; Hu et al. 2024, MiniCPM): linear warmup from 0 to the peak over W
/// updates, the peak for S updates, then a cosine or linear decay to min_lr_ratio·peak over D
/// updates, and that floor afterwards.
/// </summary>
/// <remarks>
/// <para>floor = min_lr_ratio·peak</para>
/// <para>lr(t) = peak·t/W for t &lt; W</para>
/// <para>lr(t) = peak for W ≤ t &lt; W + S</para>
/// <para>lr(t) = anneal(peak → floor, p), p = (t − W − S)/D, for W + S ≤ t &lt; W + S + D</para>
/// <para>lr(t) = floor for t ≥ W + S + D</para>
/// <para>anneal is half a cosine (the default) or a line; see <see cref="AnnealStrategy"/>.</para>
/// </remarks>
/// <param name="PeakLr">The plateau's learning rate, finite and at least 0.</param>
/// <param name="WarmupSteps">W, at least 0 (0: start at the peak).</param>
/// <param name="StableSteps">S, at least 0.</param>
/// <param name="DecaySteps">D, at least 0 (0: drop to the floor at once).</param>
/// <param name="MinLrRatio">The floor as a fraction of the peak (default 0), in [0, 1].</param>
/// <param name="Decay">The decay's shape (default cosine).</param>
public sealed record WarmupPlateauDecay(double PeakLr, int WarmupSteps, int StableSteps, int DecaySteps, double MinLrRatio = 0, AnnealStrategy Decay = AnnealStrategy.Cosine) : Schedule
{
    private readonly bool _checked = Check(PeakLr, WarmupSteps, StableSteps, DecaySteps, MinLrRatio, Decay);

    /// <inheritdoc/>
    public override double At(long step)
    {
        CheckStep(step);
        Check(PeakLr, WarmupSteps, StableSteps, DecaySteps, MinLrRatio, Decay);
        double floor = MinLrRatio * PeakLr;
        if (step < WarmupSteps)
            return PeakLr * step / WarmupSteps;
        long t = step - WarmupSteps;
        if (t < StableSteps)
            return PeakLr;
        t -= StableSteps;
        if (t >= DecaySteps)
            return floor;
        return Decay == AnnealStrategy.Cosine
            ? HalfCosine(PeakLr, floor, t, DecaySteps)
            : PeakLr + ((floor - PeakLr) * t / DecaySteps);
    }

    private static bool Check(double peakLr, int warmupSteps, int stableSteps, int decaySteps, double minLrRatio, AnnealStrategy decay)
    {
        RequireRate(peakLr, nameof(PeakLr), "WarmupPlateauDecay: the peak learning rate");
        Require(warmupSteps >= 0, nameof(WarmupSteps), warmupSteps, "WarmupPlateauDecay: the warmup steps must be at least 0");
        Require(stableSteps >= 0, nameof(StableSteps), stableSteps, "WarmupPlateauDecay: the stable (plateau) steps must be at least 0");
        Require(decaySteps >= 0, nameof(DecaySteps), decaySteps, "WarmupPlateauDecay: the decay steps must be at least 0");
        Require(minLrRatio >= 0 && minLrRatio <= 1, nameof(MinLrRatio), minLrRatio, "WarmupPlateauDecay: min_lr_ratio must be in [0, 1]");
        Require(Enum.IsDefined(decay), nameof(Decay), decay, "WarmupPlateauDecay: the decay must be Cosine or Linear");
        return true;
    }
}
