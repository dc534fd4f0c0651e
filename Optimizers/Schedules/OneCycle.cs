using System.Text.Json.Serialization;

namespace IlgpuTrain.Optimizers;

// The 1cycle policy (Smith and Topin 2017, "Super-Convergence"): the learning rate climbs from
// max_lr/div_factor to max_lr, then falls far below its start, while momentum moves the other way.
// PyTorch OneCycleLR, phase by phase: each phase anneals from its start value to its end value as
// pct = (t − start_step)/(end_step − start_step) goes from 0 to 1.
//
//   phase   end_step          lr                  momentum
//   two-phase (default):
//   1       pct_start·T − 1   initial → max       max_m → base_m
//   2       T − 1             max → min           base_m → max_m
//   three_phase:
//   1       pct_start·T − 1   initial → max       max_m → base_m
//   2       2·pct_start·T − 2 max → initial       base_m → max_m
//   3       T − 1             initial → min       max_m → max_m
//
// initial = max_lr/div_factor, min = initial/final_div_factor.

/// <summary>
/// The 1cycle learning rate: PyTorch <c>torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr,
/// total_steps, pct_start, anneal_strategy, cycle_momentum, base_momentum, max_momentum,
/// div_factor, final_div_factor, three_phase)</c>. <see cref="Momentum"/> gives the momentum
/// (SGD momentum or Adam β₁) that PyTorch cycles alongside.
/// </summary>
/// <remarks>
/// <para>initial_lr = max_lr/div_factor; min_lr = initial_lr/final_div_factor</para>
/// <para>Two phases (default): initial_lr → max_lr until t = pct_start·T − 1, then max_lr → min_lr at t = T − 1.</para>
/// <para>three_phase: initial_lr → max_lr → initial_lr (symmetric about pct_start·T − 1), then → min_lr at t = T − 1.</para>
/// <para>Within a phase: value = anneal(start → end, (t − start_step)/(end_step − start_step)).</para>
/// <para>Defaults: pct_start 0.3, anneal cos, div_factor 25, final_div_factor 1e4, three_phase false,
/// base_momentum 0.85, max_momentum 0.95.</para>
/// <para>t = 0 … T − 1 match PyTorch to float rounding. From t = T on the schedule holds its last value
/// (min_lr), where PyTorch gives one extrapolated value that no update uses and then raises. Where a
/// phase has zero length and t falls on it (e.g. T = 10, pct_start = 0.1 at t = 0), PyTorch divides
/// by zero; here the phase gives its end value, as every phase does at its end step.</para>
/// </remarks>
/// <param name="MaxLr">The peak learning rate (PyTorch max_lr), finite and at least 0.</param>
/// <param name="TotalSteps">T, the updates in the cycle (PyTorch total_steps), at least 1.</param>
/// <param name="PctStart">Fraction of the cycle spent rising (PyTorch pct_start, default 0.3), in [0, 1]; at most 0.5 with three phases.</param>
/// <param name="AnnealStrategy">Cosine (PyTorch "cos", the default) or linear.</param>
/// <param name="DivFactor">initial_lr = max_lr/div_factor (default 25), finite and greater than 0.</param>
/// <param name="FinalDivFactor">min_lr = initial_lr/final_div_factor (default 1e4), finite and greater than 0.</param>
/// <param name="ThreePhase">Use the paper's three phases (PyTorch three_phase, default false).</param>
/// <param name="BaseMomentum">Momentum at the lr peak (PyTorch base_momentum, default 0.85), in [0, 1].</param>
/// <param name="MaxMomentum">Momentum at the start and end (PyTorch max_momentum, default 0.95), in [base_momentum, 1].</param>
public sealed record OneCycleLR(
    double MaxLr,
    int TotalSteps,
    double PctStart = 0.3,
    AnnealStrategy AnnealStrategy = AnnealStrategy.Cosine,
    double DivFactor = 25,
    double FinalDivFactor = 1e4,
    bool ThreePhase = false,
    double BaseMomentum = 0.85,
    double MaxMomentum = 0.95) : Schedule
{
    private readonly bool _checked = Check(MaxLr, TotalSteps, PctStart, AnnealStrategy, DivFactor, FinalDivFactor, ThreePhase, BaseMomentum, MaxMomentum);

    /// <summary>max_lr/div_factor: lr(0) when pct_start·T ≥ 1.</summary>
    [JsonIgnore]
    public double InitialLr => MaxLr / DivFactor;

    /// <summary>initial_lr/final_div_factor: lr(T − 1), the end of the cycle.</summary>
    [JsonIgnore]
    public double MinLr => InitialLr / FinalDivFactor;

    /// <inheritdoc/>
    public override double At(long step) => Phase(step, momentum: false);

    /// <summary>The momentum PyTorch's cycle_momentum sets alongside this learning rate, as a schedule
    /// to pass as SGD momentum or Adam β₁ (both read at the same update count as the lr).</summary>
    /// <returns>The momentum schedule.</returns>
    public OneCycleMomentum Momentum() => new(this);

    /// <summary>The learning rate (or momentum) at update <paramref name="step"/>.</summary>
    /// <param name="step">The update count.</param>
    /// <param name="momentum">Momentum rather than learning rate.</param>
    /// <returns>The value.</returns>
    internal double Phase(long step, bool momentum)
    {
        CheckStep(step);
        Check(MaxLr, TotalSteps, PctStart, AnnealStrategy, DivFactor, FinalDivFactor, ThreePhase, BaseMomentum, MaxMomentum);
        double initial = InitialLr, min = MinLr, up = PctStart * TotalSteps;
        Span<(double End, double Lr0, double Lr1, double M0, double M1)> phases = ThreePhase
            ? [(up - 1, initial, MaxLr, MaxMomentum, BaseMomentum), ((2 * up) - 2, MaxLr, initial, BaseMomentum, MaxMomentum), (TotalSteps - 1, initial, min, MaxMomentum, MaxMomentum)]
            : [(up - 1, initial, MaxLr, MaxMomentum, BaseMomentum), (TotalSteps - 1, MaxLr, min, BaseMomentum, MaxMomentum)];
        double t = Math.Min(step, TotalSteps - 1), start = 0;
        for (int i = 0; ; i++)
        {
            var ph = phases[i];
            if (t <= ph.End || i == phases.Length - 1)
            {
                double pct = ph.End == start ? 1 : (t - start) / (ph.End - start);
                return momentum ? Anneal(ph.M0, ph.M1, pct) : Anneal(ph.Lr0, ph.Lr1, pct);
            }
            start = ph.End;
        }
    }

    private double Anneal(double from, double to, double pct) =>
        AnnealStrategy == AnnealStrategy.Cosine
            ? to + ((from - to) / 2.0 * (Math.Cos(Math.PI * pct) + 1))
            : ((to - from) * pct) + from;

    private static bool Check(double maxLr, int totalSteps, double pctStart, AnnealStrategy anneal, double divFactor, double finalDivFactor, bool threePhase, double baseMomentum, double maxMomentum)
    {
        RequireRate(maxLr, nameof(MaxLr), "OneCycleLR: max_lr");
        Require(totalSteps >= 1, nameof(TotalSteps), totalSteps, "OneCycleLR: total_steps must be at least 1");
        Require(pctStart >= 0 && pctStart <= 1, nameof(PctStart), pctStart, "OneCycleLR: pct_start must be in [0, 1]");
        Require(!threePhase || pctStart <= 0.5, nameof(PctStart), pctStart, "OneCycleLR: with three_phase, pct_start must be at most 0.5 so the phases come in order");
        Require(Enum.IsDefined(anneal), nameof(AnnealStrategy), anneal, "OneCycleLR: anneal_strategy must be Cosine or Linear");
        Require(double.IsFinite(divFactor) && divFactor > 0, nameof(DivFactor), divFactor, "OneCycleLR: div_factor must be finite and greater than 0");
        Require(double.IsFinite(finalDivFactor) && finalDivFactor > 0, nameof(FinalDivFactor), finalDivFactor, "OneCycleLR: final_div_factor must be finite and greater than 0");
        Require(baseMomentum >= 0 && baseMomentum <= 1, nameof(BaseMomentum), baseMomentum, "OneCycleLR: base_momentum must be in [0, 1]");
        Require(maxMomentum >= baseMomentum && maxMomentum <= 1, nameof(MaxMomentum), maxMomentum, $"OneCycleLR: max_momentum must be in [base_momentum ({baseMomentum}), 1]");
        return true;
    }
}

/// <summary>
/// The momentum of a <see cref="OneCycleLR"/> cycle (PyTorch's cycle_momentum): max_momentum at
/// the start, base_momentum at the lr peak, back to max_momentum at the end, annealed like the lr.
/// Pass it as SGD momentum or Adam β₁; make it with <see cref="OneCycleLR.Momentum"/>.
/// </summary>
/// <param name="Cycle">The cycle whose phases and momentum bounds it follows.</param>
public sealed record OneCycleMomentum(OneCycleLR Cycle) : Schedule
{
    /// <summary>The cycle whose phases and momentum bounds this follows.</summary>
    public OneCycleLR Cycle { get; init; } = Cycle ?? throw new ArgumentNullException(nameof(Cycle), "OneCycleMomentum needs its OneCycleLR.");

    /// <inheritdoc/>
    public override double At(long step) => Cycle.Phase(step, momentum: true);
}
