using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>Join: each schedule on its own clock after its boundary; PyTorch SequentialLR's values; continuity where the parts agree.</summary>
public class JoinProperties
{
    // Values from PyTorch 1.13, with run/emit/STEPS as in StepDecayProperties:
    //   emit("SequentialLR([LinearLR(0.1, 1, 10), CosineAnnealingLR(40, 0.001)], [10]) on lr 0.1",
    //        run(lambda o: SequentialLR(o, [LinearLR(o, 0.1, 1.0, 10), CosineAnnealingLR(o, 40, 0.001)], [10]), lr=0.1)[0], STEPS)
    //   emit("SequentialLR([ExponentialLR(0.9), StepLR(10, 0.5), MultiStepLR([5, 20])], [20, 50]) on lr 0.2",
    //        run(lambda o: SequentialLR(o, [ExponentialLR(o, 0.9), StepLR(o, 10, 0.5), MultiStepLR(o, [5, 20])], [20, 50]), lr=0.2)[0], STEPS)
    [Property(MaxTest = 1)]
    public Property Known_values_from_PyTorch_SequentialLR() =>
        Pins.Match(new Join([new LinearLR(0.1, 0.1, 1.0, 10), new CosineAnnealingLR(0.1, 40, 0.001)], [10]), [0.010000000000000002, 0.019000000000000003, 0.028000000000000008, 0.03700000000000001, 0.04600000000000001, 0.055000000000000014, 0.06400000000000002, 0.07300000000000002, 0.09100000000000004, 0.1, 0.09984740801978985, 0.09863231105968501, 0.09460482294732421, 0.09270568813552757, 0.0855017856687341, 0.07297252973710756, 0.06944282990207194, 0.0657963412215599, 0.05438372523852833, 0.0505, 0.046616274761471684, 0.0154982143312659, 0.0011525919802101658, 0.001, 0.0011525919802101658, 0.008294311864472704, 0.015498214331266403, 0.018352321607656503, 0.04661627476147326, 0.05050000000000174, 0.054383725238530224, 0.08264767839234696, 0.08550178566873706, 0.0881400952972046, 0.08814009529720458, 0.08550178566873708, 0.08264767839234699, 0.002367688940315053, 0.050499999999999955, 0.018352321607655892, 0.015498214331265865])
        .And(Pins.Match(new Join([new ExponentialLR(0.2, 0.9), new StepLR(0.2, 10, 0.5), new MultiStepLR(0.2, [5, 20])], [20, 50]), [0.2, 0.18000000000000002, 0.16200000000000003, 0.14580000000000004, 0.13122000000000003, 0.11809800000000004, 0.10628820000000004, 0.09565938000000004, 0.07748409780000004, 0.06973568802000003, 0.06276211921800003, 0.050837316566580026, 0.03706040377703684, 0.03335436339933316, 0.2, 0.2, 0.2, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05, 0.2, 0.2, 0.020000000000000004, 0.020000000000000004, 0.020000000000000004, 0.020000000000000004, 0.0020000000000000005, 0.0020000000000000005, 0.0020000000000000005, 0.0020000000000000005, 0.0020000000000000005, 0.0020000000000000005, 0.0020000000000000005, 0.0020000000000000005, 0.0020000000000000005, 0.0020000000000000005, 0.0020000000000000005, 0.0020000000000000005]));

    [Property(MaxTest = 50)]
    public Property Each_schedule_runs_on_its_own_clock_between_boundaries() =>
        Prop.ForAll(Gens.Join.ToArbitrary(), Gen.Choose(0, 200).ToArbitrary(), (j, t) =>
        {
            // Which part owns t, found from the other end: the last boundary at or before t.
            int owner = 0;
            for (int i = j.Boundaries.Count - 1; i >= 0; i--)
            {
                if (t >= j.Boundaries[i])
                {
                    owner = i + 1;
                    break;
                }
            }
            long local = owner == 0 ? t : t - j.Boundaries[owner - 1];
            return (j.At(t) == j.Schedules[owner].At(local)).Label($"{j} at t = {t}: part {owner} at {local}");
        });

    [Property(MaxTest = 50)]
    public Property Warmup_then_cosine_is_continuous_at_the_boundary() =>
        Prop.ForAll(Gens.ScheduleRate.ToArbitrary(), Gens.SchedulePeriod.ToArbitrary(), Gens.SchedulePeriod.ToArbitrary(), (peak, w, tMax) =>
        {
            // The warmup reaches the peak at W, where the cosine starts from it: no jump at the boundary,
            // and every step is no larger than the larger of the two parts' own steps.
            var warmup = new LinearLR(peak, 0.01, 1, w);
            var cosine = new CosineAnnealingLR(peak, tMax, peak / 100);
            var j = new Join([warmup, cosine], [w]);
            double tol = 1e-15 * peak;
            double largest = Math.Max(peak * 0.99 / w, peak * 0.99 * Math.PI / 2 / tMax);
            var result = Close.Scalar(j.At(w), warmup.At(w), tol, 0, "join(W) = warmup(W)")
                .And(Close.Scalar(j.At(w), cosine.At(0), tol, 0, "join(W) = cosine(0)"));
            for (int t = 1; t <= w + tMax; t++)
            {
                double jump = Math.Abs(j.At(t) - j.At(t - 1));
                if (jump > largest + tol)
                    return false.Label($"jump {jump:R} at t = {t} above {largest:R}");
            }
            return result;
        });

    [Fact]
    public void Joins_compare_by_value_print_their_parts_and_check_their_boundaries()
    {
        var a = new Join([new Constant(1), new StepLR(1, 2)], [5]);
        Assert.Equal(new Join([new Constant(1), new StepLR(1, 2)], [5]), a);
        Assert.Equal(new Join([new Constant(1), new StepLR(1, 2)], [5]).GetHashCode(), a.GetHashCode());
        Assert.NotEqual(new Join([new Constant(1), new StepLR(1, 2)], [6]), a);
        Assert.Equal("Join { Schedules = [Constant { Value = 1 }, StepLR { BaseLr = 1, StepSize = 2, Gamma = 0.1 }], Boundaries = [5] }", a.ToString());
        Assert.Equal(0.3, new Join([new Constant(0.3)], []).At(1000));
        Assert.Contains("one boundary fewer", Assert.Throws<ArgumentOutOfRangeException>(() => new Join([new Constant(1), new Constant(2)], [])).Message);
        Assert.Contains("strictly increasing", Assert.Throws<ArgumentOutOfRangeException>(() => new Join([new Constant(1), new Constant(2), new Constant(3)], [5, 5])).Message);
        Assert.Contains("at least 0", Assert.Throws<ArgumentOutOfRangeException>(() => new Join([new Constant(1), new Constant(2)], [-1])).Message);
        Assert.Contains("at least one", Assert.Throws<ArgumentOutOfRangeException>(() => new Join([], [])).Message);
        Assert.Contains("null", Assert.Throws<ArgumentOutOfRangeException>(() => new Join([new Constant(1), null!], [3])).Message);
    }
}
