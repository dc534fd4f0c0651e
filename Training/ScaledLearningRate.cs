using System.Globalization;

namespace IlgpuTrain.Training;

/// <summary>
/// What <see cref="RunConfig.ScaleLr"/> (<c>--scale-lr</c>) does to a run's learning rate: the
/// linear scaling rule of Goyal et al. 2017 ("Accurate, Large Minibatch SGD: Training ImageNet in
/// 1 Hour") from the batch the rate was tuned for to the run's effective batch, with warmup.
/// </summary>
/// <remarks>
/// <para>k = (batch × accumulate)/base_batch; lr' = k·lr (<see cref="LearningRateScaling"/>).</para>
/// <para>Schedules with a warmup of their own (onecycle, warmup-cosine, wsd) ramp up to k·lr with
/// it. The others (cosine, step, constant, plateau) get the paper's gradual warmup from lr to k·lr
/// (<see cref="LearningRateScaling.LinearWithWarmup"/>) over <see cref="RunConfig.WarmupSteps"/>
/// updates, else 5 epochs as in the paper, at most half the run (a short run would otherwise be
/// all warmup); the schedule then runs over the remaining updates from k·lr. When k ≤ 1 the rate
/// falls and there is nothing to warm up.</para>
/// </remarks>
/// <param name="BaseBatchSize">The batch the configured rate was tuned for (<see cref="RunConfig.BaseBatchSize"/>).</param>
/// <param name="EffectiveBatchSize">The run's batch × accumulation.</param>
/// <param name="BaseLearningRate">The configured rate (<see cref="RunConfig.LearningRate"/>).</param>
/// <param name="WarmupUpdates">Updates of the gradual warmup (0 when the schedule warms up itself, or k ≤ 1).</param>
/// <param name="Warmup">How the run warms up to the scaled rate, in words.</param>
public sealed record ScaledLearningRate(int BaseBatchSize, int EffectiveBatchSize, double BaseLearningRate, int WarmupUpdates, string Warmup)
{
    /// <summary>Schedules that warm up on their own.</summary>
    private static readonly string[] SelfWarming = ["onecycle", "warmup-cosine", "wsd"];

    /// <summary>k = effective batch / base batch.</summary>
    public double Factor => LearningRateScaling.Factor(BaseBatchSize, EffectiveBatchSize);

    /// <summary>The scaled (peak) rate k·lr.</summary>
    public double LearningRate => LearningRateScaling.Linear(BaseLearningRate, BaseBatchSize, EffectiveBatchSize);

    /// <summary>The scaling of <paramref name="config"/>'s run, or null when <see cref="RunConfig.ScaleLr"/> is off.</summary>
    /// <param name="config">The run.</param>
    /// <param name="totalUpdates">Optimizer updates in the run (<see cref="Recipes.TotalUpdates"/>).</param>
    /// <returns>The scaling, or null.</returns>
    public static ScaledLearningRate? For(RunConfig config, long totalUpdates)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (!config.ScaleLr)
            return null;
        int effective = checked(config.BatchSize * config.Accumulate);
        int total = (int)Math.Clamp(totalUpdates, 1, int.MaxValue);
        double k = LearningRateScaling.Factor(config.BaseBatchSize, effective);
        if (SelfWarming.Contains(config.Schedule))
            return new ScaledLearningRate(config.BaseBatchSize, effective, config.LearningRate, 0, $"the {config.Schedule} schedule's own warmup");
        if (k <= 1)
            return new ScaledLearningRate(config.BaseBatchSize, effective, config.LearningRate, 0, "none (the rate falls)");
        int perEpoch = Math.Max(1, total / config.Epochs);
        int warmup = config.WarmupSteps > 0
            ? Math.Min(config.WarmupSteps, total)
            : (int)Math.Min(5L * perEpoch, total / 2);
        string why = config.WarmupSteps > 0 ? "--warmup" : warmup == 5L * perEpoch ? "5 epochs, Goyal et al. 2017" : "5 epochs, Goyal et al. 2017, capped at half the run";
        return new ScaledLearningRate(config.BaseBatchSize, effective, config.LearningRate, warmup, warmup == 0 ? "none (the run is too short)" : $"gradual, linear from {F(config.LearningRate)} over {warmup} updates ({why})");
    }

    /// <summary>
    /// The run's learning-rate schedule at the scaled rate: the named schedule peaking at k·lr
    /// (after the gradual warmup, when there is one, over the remaining updates).
    /// </summary>
    /// <param name="schedule">The schedule's name (<see cref="RunConfig.Schedule"/>).</param>
    /// <param name="totalUpdates">Optimizer updates in the run.</param>
    /// <param name="warmupSteps">The schedule's own warmup (<see cref="RunConfig.WarmupSteps"/>).</param>
    /// <returns>The schedule.</returns>
    public Schedule Schedule(string schedule, long totalUpdates, int warmupSteps)
    {
        long rest = Math.Max(1, totalUpdates - WarmupUpdates);
        if (WarmupUpdates == 0)
            return Recipes.LearningRateSchedule(schedule, LearningRate, totalUpdates, warmupSteps);
        return LearningRateScaling.LinearWithWarmup(BaseLearningRate, BaseBatchSize, EffectiveBatchSize, WarmupUpdates, peak => Recipes.LearningRateSchedule(schedule, peak, rest, warmupSteps));
    }

    /// <summary>One line for the run's log: the factor, the rates and the warmup.</summary>
    /// <returns>The text.</returns>
    public string Describe() =>
        $"--scale-lr: effective batch {EffectiveBatchSize} is {F(Factor)}x the base batch {BaseBatchSize}, so lr {F(BaseLearningRate)} -> {F(LearningRate)} (linear scaling rule); warmup: {Warmup}";

    private static string F(double v) => v.ToString("G4", CultureInfo.InvariantCulture);
}
