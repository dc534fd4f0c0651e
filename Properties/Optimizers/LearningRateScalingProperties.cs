using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>The linear scaling rule: k·lr, and Goyal et al.'s gradual warmup from lr to k·lr.</summary>
public class LearningRateScalingProperties
{
    // A line through two endpoints and a product: a few ulps of the peak.
    private const double UlpTol = 1e-14;

    [Property(MaxTest = 50)]
    public Property Scaled_rate_is_k_times_the_rate() =>
        Prop.ForAll(Gens.ScheduleRate.ToArbitrary(), Gen.Choose(1, 4096).ToArbitrary(), Gen.Choose(1, 64).ToArbitrary(), (lr, baseBatch, k) =>
            Close.Scalar(LearningRateScaling.Linear(lr, baseBatch, baseBatch * k), lr * k, 0, UlpTol, "lr·k")
                .And(Close.Scalar(LearningRateScaling.Linear(lr, baseBatch * k, baseBatch), lr / k, 0, UlpTol, "lr/k for a k times smaller batch")));

    [Property(MaxTest = 50)]
    public Property Warmup_climbs_linearly_from_the_rate_to_k_times_it() =>
        Prop.ForAll(Gens.ScheduleRate.ToArbitrary(), Gen.Choose(1, 32).ToArbitrary(), Gens.SchedulePeriod.ToArbitrary(), (lr, k, w) =>
        {
            var s = LearningRateScaling.LinearWithWarmup(lr, 256, 256 * k, w);
            double peak = lr * k, tol = UlpTol * peak;
            var result = Close.Scalar(s.At(0), lr, tol, 0, "lr(0) is the unscaled rate")
                .And(Close.Scalar(s.At(w), peak, tol, 0, "lr(W) = k·lr"))
                .And(Close.Scalar(s.At(w + 1000), peak, tol, 0, "held after W"));
            for (int t = 1; t <= w; t++)
                result = result.And(Close.Scalar(s.At(t) - s.At(t - 1), (peak - lr) / w, tol, 0, $"equal rises at {t}"));
            return result;
        });

    [Fact]
    public void The_schedule_after_warmup_starts_at_W_from_the_scaled_rate()
    {
        double seen = double.NaN;
        var s = LearningRateScaling.LinearWithWarmup(0.1, 256, 8192, 5, peak =>
        {
            seen = peak;
            return new CosineAnnealingLR(peak, 90);
        });
        Assert.Equal(3.2, seen, 15);
        var join = Assert.IsType<Join>(s);
        Assert.Equal([5], join.Boundaries);
        Assert.Equal(0.1, s.At(0), 15);
        Assert.Equal(3.2, s.At(5), 15);
        Assert.Equal(1.6, s.At(50), 14);
        Assert.Equal(0, s.At(95), 14);
        Assert.Equal(s, Schedule.FromJson(s.ToJson()));
    }

    [Fact]
    public void No_warmup_and_smaller_batches_need_no_ramp()
    {
        Assert.Equal(new Constant(0.4), LearningRateScaling.LinearWithWarmup(0.1, 256, 1024, 0));
        Assert.Equal(new StepLR(0.4, 10), LearningRateScaling.LinearWithWarmup(0.1, 256, 1024, 0, peak => new StepLR(peak, 10)));
        // k = 1/4: the rate falls at once; the warmup phase holds k·lr.
        var s = LearningRateScaling.LinearWithWarmup(0.1, 1024, 256, 10);
        Assert.Equal(0.025, s.At(0), 15);
        Assert.Equal(0.025, s.At(7), 15);
    }

    [Fact]
    public void Bad_arguments_are_refused()
    {
        Assert.Contains("base batch size", Assert.Throws<ArgumentOutOfRangeException>(() => LearningRateScaling.Factor(0, 256)).Message);
        Assert.Contains("batch size", Assert.Throws<ArgumentOutOfRangeException>(() => LearningRateScaling.Linear(0.1, 256, 0)).Message);
        Assert.Contains("learning rate", Assert.Throws<ArgumentOutOfRangeException>(() => LearningRateScaling.Linear(double.PositiveInfinity, 256, 512)).Message);
        Assert.Contains("warmup", Assert.Throws<ArgumentOutOfRangeException>(() => LearningRateScaling.LinearWithWarmup(0.1, 256, 512, -1)).Message);
        Assert.Throws<InvalidOperationException>(() => LearningRateScaling.LinearWithWarmup(0.1, 256, 512, 5, _ => null!));
    }
}
