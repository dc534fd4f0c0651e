using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>LinearLR, LinearWarmupDecay (Hugging Face), Noam and WarmupPlateauDecay (WSD): known values, endpoints, phases, bounds.</summary>
public class WarmupProperties
{
    // Closed forms evaluated two ways (a line through its endpoints, a product): a few ulps of the peak.
    private const double UlpTol = 1e-14;

    private static readonly int[] NoamSteps = [0, 1, 2, 100, 3999, 4000, 4001, 10000, 20000];

    // Values from PyTorch 1.13, with run/emit/STEPS as in StepDecayProperties:
    //   emit("LinearLR(0.05)", run(lambda o: LinearLR(o), lr=0.05)[0], STEPS)
    //   emit("LinearLR(0.1, 0.25, 0.9, 40)", run(lambda o: LinearLR(o, 0.25, 0.9, 40), lr=0.1)[0], STEPS)
    //   # transformers.optimization._get_linear_schedule_with_warmup_lr_lambda, verbatim
    //   def hf(current_step, *, num_warmup_steps, num_training_steps):
    //       if current_step < num_warmup_steps:
    //           return float(current_step) / float(max(1, num_warmup_steps))
    //       return max(0.0, float(num_training_steps - current_step) / float(max(1, num_training_steps - num_warmup_steps)))
    //   emit("HF linear (1e-3, W 10, T 100)", run(lambda o: LambdaLR(o, lambda t: hf(t, num_warmup_steps=10, num_training_steps=100)), lr=1e-3)[0], STEPS)
    //   emit("HF linear (0.5, W 0, T 50)", run(lambda o: LambdaLR(o, lambda t: hf(t, num_warmup_steps=0, num_training_steps=50)), lr=0.5)[0], STEPS)
    //   emit("HF linear (0.1, W 30, T 30)", run(lambda o: LambdaLR(o, lambda t: hf(t, num_warmup_steps=30, num_training_steps=30)), lr=0.1)[0], STEPS)
    //   # The Annotated Transformer's rate(), with LambdaLR on lr = 1
    //   def rate(step, model_size, factor, warmup):
    //       if step == 0:
    //           step = 1
    //       return factor * (model_size ** (-0.5) * min(step ** (-0.5), step * warmup ** (-1.5)))
    //   emit("Noam(64, 50, 2)", run(lambda o: LambdaLR(o, lambda t: rate(t, 64, 2.0, 50)), lr=1.0)[0], STEPS)
    //   NOAM_STEPS = [0, 1, 2, 100, 3999, 4000, 4001, 10000, 20000]
    //   emit("Noam(512, 4000)", run(lambda o: LambdaLR(o, lambda t: rate(t, 512, 1.0, 4000)), n=20001, lr=1.0)[0], NOAM_STEPS)
    [Property(MaxTest = 1)]
    public Property Known_values_from_PyTorch_and_Transformers() =>
        Pins.Match(new LinearLR(0.05), [0.016666666666666666, 0.023333333333333334, 0.030000000000000002, 0.036666666666666674, 0.04333333333333334, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05])
        .And(Pins.Match(new LinearLR(0.1, 0.25, 0.9, 40), [0.025, 0.026625, 0.02825, 0.029875, 0.0315, 0.033125, 0.03475, 0.036375, 0.039625, 0.04125, 0.042874999999999996, 0.046124999999999985, 0.05099999999999998, 0.05262499999999999, 0.0575, 0.064, 0.065625, 0.06725, 0.072125, 0.07375, 0.075375, 0.09, 0.09, 0.09, 0.09, 0.09, 0.09, 0.09, 0.09, 0.09, 0.09, 0.09, 0.09, 0.09, 0.09, 0.09, 0.09, 0.09, 0.09, 0.09, 0.09]))
        .And(Pins.Match(new LinearWarmupDecay(1e-3, 10, 100), [0.0, 0.0001, 0.0002, 0.0003, 0.0004, 0.0005, 0.0006, 0.0007, 0.0009000000000000001, 0.001, 0.000988888888888889, 0.0009666666666666667, 0.0009333333333333333, 0.0009222222222222223, 0.0008888888888888888, 0.0008444444444444444, 0.0008333333333333334, 0.0008222222222222222, 0.0007888888888888889, 0.0007777777777777778, 0.0007666666666666667, 0.0006666666666666666, 0.0005666666666666667, 0.0005555555555555556, 0.0005444444444444444, 0.0004777777777777778, 0.0004444444444444444, 0.00043333333333333337, 0.0003444444444444445, 0.0003333333333333333, 0.0003222222222222222, 0.00023333333333333333, 0.0002222222222222222, 0.0002111111111111111, 1.1111111111111112e-05, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]))
        .And(Pins.Match(new LinearWarmupDecay(0.5, 0, 50), [0.5, 0.49, 0.48, 0.47, 0.46, 0.45, 0.44, 0.43, 0.41, 0.4, 0.39, 0.37, 0.34, 0.33, 0.3, 0.26, 0.25, 0.24, 0.21, 0.2, 0.19, 0.1, 0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]))
        .And(Pins.Match(new LinearWarmupDecay(0.1, 30, 30), [0.0, 0.0033333333333333335, 0.006666666666666667, 0.010000000000000002, 0.013333333333333334, 0.016666666666666666, 0.020000000000000004, 0.023333333333333334, 0.03, 0.03333333333333333, 0.03666666666666667, 0.043333333333333335, 0.05333333333333334, 0.05666666666666667, 0.06666666666666667, 0.08000000000000002, 0.08333333333333334, 0.08666666666666667, 0.09666666666666668, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]))
        .And(Pins.Match(new Noam(64, 50, 2), [0.0007071067811865475, 0.0007071067811865475, 0.001414213562373095, 0.0021213203435596424, 0.00282842712474619, 0.0035355339059327377, 0.004242640687119285, 0.0049497474683058325, 0.006363961030678928, 0.007071067811865475, 0.007778174593052023, 0.009192388155425118, 0.01131370849898476, 0.012020815280171307, 0.01414213562373095, 0.01697056274847714, 0.017677669529663688, 0.018384776310850236, 0.02050609665440988, 0.021213203435596427, 0.021920310216782972, 0.0282842712474619, 0.03464823227814083, 0.035355339059327376, 0.03500700210070024, 0.033113308926626096, 0.032274861218395144, 0.032009219983223994, 0.0300964632714423, 0.02988071523335984, 0.029669541454846335, 0.0281271975231506, 0.02795084971874737, 0.027777777777777776, 0.025125945381480302, 0.025, 0.02487592975524973, 0.022183912735402843, 0.020412414523193152, 0.0177220301252084, 0.017677669529663688]))
        .And(Pins.Match(new Noam(512, 4000), [1.746928107421711e-07, 1.746928107421711e-07, 3.493856214843422e-07, 1.746928107421711e-05, 0.0006985965501579421, 0.0006987712429686843, 0.000698683912937353, 0.00044194173824159226, 0.0003125], NoamSteps));

    [Property(MaxTest = 50)]
    public Property LinearLR_moves_from_start_to_end_factor_in_equal_steps() =>
        Prop.ForAll(Gens.LinearLR.ToArbitrary(), s =>
        {
            double tol = UlpTol * s.BaseLr;
            double start = s.BaseLr * s.StartFactor, end = s.BaseLr * s.EndFactor, step = (end - start) / s.TotalIters;
            var result = Close.Scalar(s.At(0), start, tol, 0, "lr(0) = base·start_factor")
                .And(Close.Scalar(s.At(s.TotalIters), end, tol, 0, "lr(total_iters) = base·end_factor"))
                .And(Close.Scalar(s.At(s.TotalIters + 1000), end, tol, 0, "held after total_iters"));
            for (int t = 1; t <= s.TotalIters; t++)
                result = result.And(Close.Scalar(s.At(t) - s.At(t - 1), step, tol, 0, $"lr({t}) − lr({t - 1})"));
            return result;
        });

    [Property(MaxTest = 50)]
    public Property Hugging_Face_warmup_starts_at_zero_peaks_at_W_and_ends_at_zero_at_T() =>
        Prop.ForAll(Gens.LinearWarmupDecay.ToArbitrary(), s =>
        {
            double tol = UlpTol * s.PeakLr;
            var result = Close.Scalar(s.At(0), s.WarmupSteps > 0 ? 0 : s.TotalSteps > 0 ? s.PeakLr : 0, tol, 0, "lr(0)")
                .And(Close.Scalar(s.At(s.WarmupSteps), s.TotalSteps > s.WarmupSteps ? s.PeakLr : 0, tol, 0, "lr(W) is the peak unless W = T"))
                .And(Close.Scalar(s.At(s.TotalSteps), 0, 0, 0, "lr(T) = 0"))
                .And(Close.Scalar(s.At(s.TotalSteps + 17), 0, 0, 0, "0 after T"));
            // Piecewise linear: equal rises during warmup, equal falls from W to T.
            for (int t = 1; t < s.WarmupSteps; t++)
                result = result.And(Close.Scalar(s.At(t) - s.At(t - 1), s.PeakLr / s.WarmupSteps, tol, 0, $"warmup rise at {t}"));
            for (int t = s.WarmupSteps + 1; t <= s.TotalSteps; t++)
                result = result.And(Close.Scalar(s.At(t - 1) - s.At(t), s.PeakLr / Math.Max(1, s.TotalSteps - s.WarmupSteps), tol, 0, $"decay fall at {t}"));
            return result;
        });

    [Property(MaxTest = 50)]
    public Property Noam_peaks_at_W_rising_linearly_before_and_falling_as_inverse_sqrt_after() =>
        Prop.ForAll(Gens.Noam.ToArbitrary(), s =>
        {
            double peak = s.Factor / Math.Sqrt((double)s.DModel * s.WarmupSteps);
            double tol = UlpTol * peak;
            var result = Close.Scalar(s.At(s.WarmupSteps), peak, tol, 1e-14, "lr(W) = factor/sqrt(d_model·W)")
                .And(Close.Scalar(s.At(0), s.At(1), 0, 0, "s = max(t, 1): lr(0) = lr(1)"));
            for (int t = 1; t <= 3 * s.WarmupSteps; t++)
            {
                double lr = s.At(t);
                // Before W, lr is proportional to t; after W, to 1/sqrt(t).
                double expected = t <= s.WarmupSteps ? peak * t / s.WarmupSteps : peak * Math.Sqrt((double)s.WarmupSteps / t);
                result = result.And(Close.Scalar(lr, expected, tol, 1e-13, $"lr({t})"));
                if (lr > peak * (1 + 1e-14))
                    return false.Label($"lr({t}) = {lr:R} above the peak {peak:R}");
            }
            return result;
        });

    [Property(MaxTest = 60)]
    public Property WSD_warms_up_holds_the_peak_then_decays_to_the_floor() =>
        Prop.ForAll(Gens.WarmupPlateauDecay.ToArbitrary(), s =>
        {
            double tol = UlpTol * s.PeakLr, floor = s.MinLrRatio * s.PeakLr;
            int w = s.WarmupSteps, stable = s.StableSteps, d = s.DecaySteps;
            var result = Close.Scalar(s.At(0), w > 0 ? 0 : stable > 0 || d > 0 ? s.PeakLr : floor, tol, 0, "lr(0)")
                .And(Close.Scalar(s.At(w + stable + d), floor, tol, 0, "lr(W + S + D) is the floor"))
                .And(Close.Scalar(s.At(w + stable + d + 1000), floor, tol, 0, "the floor after the decay"));
            for (int t = 1; t <= w; t++)
                result = result.And(Close.Scalar(s.At(t) - s.At(t - 1), t < w || stable + d > 0 ? s.PeakLr / w : floor - s.At(t - 1), tol, 0, $"equal warmup rises at {t}"));
            for (int t = w; t < w + stable; t++)
                result = result.And(Close.Scalar(s.At(t), s.PeakLr, 0, 0, $"plateau at {t}"));
            double previous = s.PeakLr;
            for (int t = w + stable; t <= w + stable + d; t++)
            {
                double lr = s.At(t);
                if (!(lr <= previous + tol && lr >= floor - tol))
                    return false.Label($"{s}: decay lr({t}) = {lr:R} after {previous:R}, floor {floor:R}");
                previous = lr;
            }
            if (d % 2 == 0 && d > 0)
                result = result.And(Close.Scalar(s.At(w + stable + (d / 2)), (s.PeakLr + floor) / 2, tol, 0, "both decay shapes pass the midpoint halfway"));
            return result.And(Close.Scalar(s.At(w + stable), d > 0 ? s.PeakLr : floor, tol, 0, "the decay starts at the peak"));
        });

    [Fact]
    public void WSD_decay_shapes_differ_between_the_ends()
    {
        var cosine = new WarmupPlateauDecay(1, 10, 20, 40, 0.1);
        var linear = cosine with { Decay = AnnealStrategy.Linear };
        Assert.Equal(1 - (0.9 * 10 / 40), linear.At(40), 14);
        Assert.Equal(0.1 + (0.9 * (1 + Math.Cos(Math.PI / 4)) / 2), cosine.At(40), 14);
        Assert.Equal(0.5, cosine.At(5), 15);
    }

    [Fact]
    public void Bad_arguments_name_the_argument()
    {
        Assert.Contains("start_factor", Assert.Throws<ArgumentOutOfRangeException>(() => new LinearLR(0.1, 0)).Message);
        Assert.Contains("start_factor", Assert.Throws<ArgumentOutOfRangeException>(() => new LinearLR(0.1, 1.5)).Message);
        Assert.Contains("end_factor", Assert.Throws<ArgumentOutOfRangeException>(() => new LinearLR(0.1, 0.5, -0.1)).Message);
        Assert.Contains("total_iters", Assert.Throws<ArgumentOutOfRangeException>(() => new LinearLR(0.1, 0.5, 1, 0)).Message);
        Assert.Contains("num_training_steps", Assert.Throws<ArgumentOutOfRangeException>(() => new LinearWarmupDecay(0.1, 10, 5)).Message);
        Assert.Contains("num_warmup_steps", Assert.Throws<ArgumentOutOfRangeException>(() => new LinearWarmupDecay(0.1, -1, 5)).Message);
        Assert.Contains("d_model", Assert.Throws<ArgumentOutOfRangeException>(() => new Noam(0, 10)).Message);
        Assert.Contains("warmup_steps", Assert.Throws<ArgumentOutOfRangeException>(() => new Noam(512, 0)).Message);
        Assert.Contains("min_lr_ratio", Assert.Throws<ArgumentOutOfRangeException>(() => new WarmupPlateauDecay(0.1, 1, 1, 1, 1.5)).Message);
        Assert.Contains("decay steps", Assert.Throws<ArgumentOutOfRangeException>(() => new WarmupPlateauDecay(0.1, 1, 1, -1)).Message);
    }
}
