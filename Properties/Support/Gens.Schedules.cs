using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Support;

/// <summary>Generators of learning-rate schedules with valid arguments, one per schedule type.</summary>
public static partial class Gens
{
    /// <summary>A learning rate in [2e-9, 1] with a full mantissa (exp of a generated exponent), so JSON round trips see every digit.</summary>
    public static Gen<double> ScheduleRate { get; } = Gen.Choose(-20_000, 0).Select(k => Math.Exp(k / 1000.0));

    /// <summary>A factor in (0, 1], 1 a tenth of the time.</summary>
    public static Gen<double> ScheduleFactor { get; } = Gen.Frequency((1, Gen.Constant(1.0)), (9, Gen.Choose(1, 1_000_000).Select(k => k / 1_000_003.0)));

    /// <summary>A step count in [1, 60], small values more often.</summary>
    public static Gen<int> SchedulePeriod { get; } = Gen.OneOf(Gen.Elements(1, 2, 3, 7, 16, 17), Gen.Choose(1, 60));

    /// <summary>StepLR with gamma in (0, 1].</summary>
    public static Gen<StepLR> StepLR { get; } =
        from lr in ScheduleRate from size in SchedulePeriod from gamma in ScheduleFactor select new StepLR(lr, size, gamma);

    /// <summary>MultiStepLR with 0 to 5 milestones in [0, 120], unsorted and possibly repeated, gamma in (0, 1].</summary>
    public static Gen<MultiStepLR> MultiStepLR { get; } =
        from lr in ScheduleRate
        from n in Gen.Choose(0, 5)
        from ms in Gen.ArrayOf(Gen.Choose(0, 120), n)
        from gamma in ScheduleFactor
        select new MultiStepLR(lr, ms, gamma);

    /// <summary>ExponentialLR with gamma in (0, 1].</summary>
    public static Gen<ExponentialLR> ExponentialLR { get; } =
        from lr in ScheduleRate from gamma in ScheduleFactor select new ExponentialLR(lr, gamma);

    /// <summary>CosineAnnealingLR with η_min ≤ base, periodic or clamped.</summary>
    public static Gen<CosineAnnealingLR> CosineAnnealingLR { get; } =
        from lr in ScheduleRate
        from tMax in SchedulePeriod
        from minRatio in Gen.OneOf(Gen.Constant(0.0), ScheduleFactor)
        from clamped in Gen.Elements(false, true)
        select new CosineAnnealingLR(lr, tMax, lr * minRatio, clamped);

    /// <summary>CosineAnnealingWarmRestarts with T_mult in [1, 3] and η_min ≤ base.</summary>
    public static Gen<CosineAnnealingWarmRestarts> CosineAnnealingWarmRestarts { get; } =
        from lr in ScheduleRate
        from t0 in SchedulePeriod
        from mult in Gen.Choose(1, 3)
        from minRatio in Gen.OneOf(Gen.Constant(0.0), ScheduleFactor)
        select new CosineAnnealingWarmRestarts(lr, t0, mult, lr * minRatio);

    /// <summary>LinearLR with factors in (0, 1].</summary>
    public static Gen<LinearLR> LinearLR { get; } =
        from lr in ScheduleRate from start in ScheduleFactor from end in ScheduleFactor from total in SchedulePeriod select new LinearLR(lr, start, end, total);

    /// <summary>LinearWarmupDecay with 0 ≤ W ≤ T.</summary>
    public static Gen<LinearWarmupDecay> LinearWarmupDecay { get; } =
        from lr in ScheduleRate
        from w in Gen.OneOf(Gen.Constant(0), SchedulePeriod)
        from rest in Gen.OneOf(Gen.Constant(0), SchedulePeriod)
        select new LinearWarmupDecay(lr, w, w + rest);

    /// <summary>Noam with d_model in [1, 1024], W in [1, 60].</summary>
    public static Gen<Noam> Noam { get; } =
        from d in Gen.OneOf(Gen.Elements(1, 64, 512), Gen.Choose(1, 1024))
        from w in SchedulePeriod
        from factor in Gen.OneOf(Gen.Constant(1.0), ScheduleRate.Select(r => r * 10))
        select new Noam(d, w, factor);

    /// <summary>WarmupPlateauDecay with each phase 0 to 60 updates long.</summary>
    public static Gen<WarmupPlateauDecay> WarmupPlateauDecay { get; } =
        from lr in ScheduleRate
        from w in Gen.OneOf(Gen.Constant(0), SchedulePeriod)
        from s in Gen.OneOf(Gen.Constant(0), SchedulePeriod)
        from d in Gen.OneOf(Gen.Constant(0), SchedulePeriod)
        from ratio in Gen.OneOf(Gen.Constant(0.0), ScheduleFactor)
        from shape in Gen.Elements(AnnealStrategy.Cosine, AnnealStrategy.Linear)
        select new WarmupPlateauDecay(lr, w, s, d, ratio, shape);

    /// <summary>OneCycleLR over 1 to 200 updates, either phase count, either anneal, momentum bounds in [0, 1].</summary>
    public static Gen<OneCycleLR> OneCycleLR { get; } =
        from lr in ScheduleRate
        from total in Gen.OneOf(Gen.Elements(1, 2, 3, 10, 100), Gen.Choose(1, 200))
        from three in Gen.Elements(false, true)
        from pct in Gen.Choose(0, 1000).Select(k => k / 1000.0 * (three ? 0.5 : 1.0))
        from anneal in Gen.Elements(AnnealStrategy.Cosine, AnnealStrategy.Linear)
        from div in Gen.Choose(1, 100).Select(k => k * 0.5)
        from finalDiv in Gen.Elements(1.0, 10.0, 1e4)
        from m1 in ScheduleFactor
        from m2 in ScheduleFactor
        select new OneCycleLR(lr, total, pct, anneal, div, finalDiv, three, Math.Min(m1, m2), Math.Max(m1, m2));

    /// <summary>Any schedule type but Join (constant and inverse time decay included).</summary>
    public static Gen<Schedule> LeafSchedule { get; } = Gen.OneOf(
        ScheduleRate.Select(r => (Schedule)new Constant(r)),
        from r in ScheduleRate from d in ScheduleFactor select (Schedule)new InverseTimeDecay(r, d),
        StepLR.Select(s => (Schedule)s),
        MultiStepLR.Select(s => (Schedule)s),
        ExponentialLR.Select(s => (Schedule)s),
        CosineAnnealingLR.Select(s => (Schedule)s),
        CosineAnnealingWarmRestarts.Select(s => (Schedule)s),
        LinearLR.Select(s => (Schedule)s),
        LinearWarmupDecay.Select(s => (Schedule)s),
        Noam.Select(s => (Schedule)s),
        WarmupPlateauDecay.Select(s => (Schedule)s),
        OneCycleLR.Select(s => (Schedule)s),
        OneCycleLR.Select(s => (Schedule)s.Momentum()));

    /// <summary>A Join of one to three leaf schedules at increasing boundaries.</summary>
    public static Gen<Join> Join { get; } =
        from n in Gen.Choose(1, 3)
        from parts in Gen.ArrayOf(LeafSchedule, n)
        from gaps in Gen.ArrayOf(Gen.Choose(0, 40), n - 1)
        select new Join(parts, Boundaries(gaps));

    /// <summary>Any schedule: a Join of leaves a tenth of the time.</summary>
    public static Gen<Schedule> AnySchedule { get; } = Gen.Frequency((9, LeafSchedule), (1, Join.Select(j => (Schedule)j)));

    private static int[] Boundaries(int[] gaps)
    {
        var b = new int[gaps.Length];
        int at = 0;
        for (int i = 0; i < gaps.Length; i++)
            b[i] = at += gaps[i] + (i == 0 ? 0 : 1);
        return b;
    }
}

/// <summary>Values pinned from PyTorch: the steps they were taken at and the comparison.</summary>
public static class Pins
{
    /// <summary>
    /// The update counts the PyTorch scripts print (the same list in each script's STEPS): the start,
    /// every edge of the test configurations' periods and milestones, and far past them.
    /// </summary>
    public static readonly int[] Steps = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 13, 16, 17, 20, 24, 25, 26, 29, 30, 31, 40, 49, 50, 51, 57, 60, 61, 69, 70, 71, 79, 80, 81, 99, 100, 101, 127, 150, 199, 200];

    /// <summary>
    /// Absolute tolerance against PyTorch: its chainable schedulers multiply the previous lr each
    /// step, which drifts from the closed form by up to 3.2e-14 over 200 steps at lr 1 (measured:
    /// CosineAnnealingLR(T_max 17)).
    /// </summary>
    public const double Atol = 1e-13;

    /// <summary>Relative tolerance against PyTorch: a few ulps of rounding per step over 200 steps.</summary>
    public const double Rtol = 1e-12;

    /// <summary>Whether <paramref name="schedule"/> gives <paramref name="expected"/> at <paramref name="steps"/>.</summary>
    /// <param name="schedule">The schedule.</param>
    /// <param name="expected">PyTorch's values.</param>
    /// <param name="steps">The steps (default <see cref="Steps"/>).</param>
    /// <returns>A labelled property naming the first mismatch.</returns>
    public static Property Match(Schedule schedule, double[] expected, int[]? steps = null)
    {
        steps ??= Steps;
        if (steps.Length != expected.Length)
            return false.Label($"{schedule}: {expected.Length} pinned values for {steps.Length} steps");
        for (int i = 0; i < steps.Length; i++)
        {
            double a = schedule.At(steps[i]), e = expected[i];
            if (!(Math.Abs(a - e) <= Atol + (Rtol * Math.Abs(e))))
                return false.Label($"{schedule} at t = {steps[i]}: {a:R}, PyTorch {e:R}");
        }
        return true.Label(schedule.ToString());
    }
}
