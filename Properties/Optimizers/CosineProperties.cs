using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>CosineAnnealingLR (periodic and clamped) and CosineAnnealingWarmRestarts: PyTorch's values, endpoints, bounds, restarts.</summary>
public class CosineProperties
{
    // The same closed form evaluated at different t: a few ulps of the base rate apart.
    private const double UlpTol = 1e-15;

    // cos of π·t/T_max for t up to about 1000·T_max carries the argument's rounding, ulp(1000π) ≈ 1e-13.
    private const double PeriodTol = 1e-12;

    // Values from PyTorch 1.13, with run/emit/STEPS as in StepDecayProperties:
    //   emit("CosineAnnealingLR(0.1, 50, 0.001)", run(lambda o: CosineAnnealingLR(o, 50, 0.001), lr=0.1)[0], STEPS)
    //   emit("CosineAnnealingLR(1.0, 17)", run(lambda o: CosineAnnealingLR(o, 17), lr=1.0)[0], STEPS)
    //   emit("CosineAnnealingWarmRestarts(0.1, 10, 2, 1e-4)", run(lambda o: CosineAnnealingWarmRestarts(o, 10, 2, 1e-4), lr=0.1)[0], STEPS)
    //   emit("CosineAnnealingWarmRestarts(0.5, 7)", run(lambda o: CosineAnnealingWarmRestarts(o, 7), lr=0.5)[0], STEPS)
    //   emit("CosineAnnealingWarmRestarts(0.05, 3, 3, 0.001)", run(lambda o: CosineAnnealingWarmRestarts(o, 3, 3, 0.001), lr=0.05)[0], STEPS)
    [Property(MaxTest = 1)]
    public Property Known_values_from_PyTorch() =>
        Pins.Match(new CosineAnnealingLR(0.1, 50, 0.001), [0.1, 0.09990232305719944, 0.09960967771506665, 0.09912321891107008, 0.09844486647586721, 0.09757729755661008, 0.09652393605146842, 0.09528893909706795, 0.09229423231234973, 0.09054634122155988, 0.08864040551740156, 0.08438508174347008, 0.07702342635146033, 0.07434680686803491, 0.06579634122155989, 0.05360813071670102, 0.0505, 0.04739186928329899, 0.03818985058533969, 0.035203658778440124, 0.03227783464210846, 0.010453658778440102, 0.0010976769428005578, 0.001, 0.0010976769428005578, 0.005711060902932023, 0.010453658778440077, 0.012359594482598421, 0.032277834642108406, 0.03520365877844005, 0.038189850585339656, 0.06281014941466023, 0.0657963412215598, 0.06872216535789145, 0.09990232305719932, 0.09999999999999988, 0.09990232305719933, 0.044296004938566884, 0.001, 0.09990232305719932, 0.09999999999999988])
        .And(Pins.Match(new CosineAnnealingLR(1.0, 17), [1.0, 0.991486549841951, 0.9662361147021779, 0.9251085678648071, 0.8695044586103295, 0.8013173181896283, 0.7228691778882692, 0.6368314950360415, 0.45386582026834904, 0.3631685049639586, 0.2771308221117311, 0.13049554138967034, 0.008513450158049109, 0.0, 0.07489143213519296, 0.3631685049639585, 0.4538658202683491, 0.5461341797316512, 0.801317318189628, 0.8695044586103293, 0.925108567864807, 0.7228691778882691, 0.033763885297822316, 0.008513450158049107, 0.0, 0.2771308221117264, 0.5461341797316431, 0.6368314950360331, 0.9914865498419378, 0.9662361147021654, 0.925108567864795, 0.27713082211172685, 0.19868268181036905, 0.1304955413896694, 0.9251085678648187, 0.9662361147021904, 0.9914865498419635, 0.453865820268363, 0.07489143213519571, 0.8013173181896295, 0.86950445861033]))
        .And(Pins.Match(new CosineAnnealingWarmRestarts(0.1, 10, 2, 1e-4), [0.1, 0.09755527298894293, 0.09046039886902862, 0.07940987335200904, 0.06548539886902863, 0.050050000000000004, 0.03461460113097138, 0.020690126647990973, 0.002544727011057081, 0.1, 0.09938503261272713, 0.09455577588320897, 0.07940987335200904, 0.07272682546199037, 0.050050000000000004, 0.020690126647990973, 0.014730016279731955, 0.00963960113097138, 0.000714967387272874, 0.1, 0.09984602081996975, 0.08536998372026805, 0.05396903183160586, 0.050050000000000004, 0.046130968168394154, 0.023951196692438358, 0.014730016279731955, 0.012067722018278455, 0.0002539791800302582, 0.1, 0.09996149036022411, 0.0969126572293281, 0.09619778264893877, 0.09541175153256282, 0.07096205388999453, 0.06916503744663624, 0.06733854700102078, 0.019126257231973805, 0.1, 0.07861080861336925, 0.07780073313932913]))
        .And(Pins.Match(new CosineAnnealingWarmRestarts(0.5, 7), [0.5, 0.47524221697560476, 0.4058724504646834, 0.3056302334890786, 0.19436976651092142, 0.09412754953531663, 0.02475778302439524, 0.5, 0.4058724504646834, 0.3056302334890786, 0.19436976651092142, 0.02475778302439524, 0.4058724504646834, 0.3056302334890786, 0.02475778302439524, 0.3056302334890786, 0.19436976651092142, 0.09412754953531663, 0.47524221697560476, 0.4058724504646834, 0.3056302334890786, 0.09412754953531663, 0.5, 0.47524221697560476, 0.4058724504646834, 0.47524221697560476, 0.19436976651092142, 0.09412754953531663, 0.02475778302439524, 0.5, 0.47524221697560476, 0.4058724504646834, 0.3056302334890786, 0.19436976651092142, 0.47524221697560476, 0.4058724504646834, 0.3056302334890786, 0.47524221697560476, 0.3056302334890786, 0.3056302334890786, 0.19436976651092142]))
        .And(Pins.Match(new CosineAnnealingWarmRestarts(0.05, 3, 3, 0.001), [0.05, 0.037750000000000006, 0.013250000000000005, 0.05, 0.04852246920925476, 0.044268088856414964, 0.037750000000000006, 0.0297543803528398, 0.013250000000000005, 0.006731911143585042, 0.0024775307907452465, 0.049834339764677604, 0.047393999687923606, 0.045969451379616943, 0.04013038549671826, 0.0297543803528398, 0.026924548308306658, 0.024075451691693346, 0.01579604573204066, 0.013250000000000005, 0.010869614503281746, 0.04998157483635364, 0.04818023724708782, 0.047803892053670596, 0.047393999687923606, 0.044268088856414964, 0.04231292012778398, 0.041609273529942065, 0.035203954267959345, 0.034324354257715406, 0.03343148158042887, 0.0259750876284097, 0.025024912371590314, 0.024075451691693346, 0.008687079872216029, 0.008008721503331477, 0.007356671678829392, 0.04989974109867723, 0.04818023724708782, 0.03829446243061759, 0.038023277787443896]));

    [Property(MaxTest = 50)]
    public Property Cosine_starts_at_base_falls_to_eta_min_at_T_max_and_stays_between() =>
        Prop.ForAll(Gens.CosineAnnealingLR.ToArbitrary(), s =>
        {
            double tol = UlpTol * s.BaseLr;
            double previous = double.PositiveInfinity;
            for (int t = 0; t <= s.TMax; t++)
            {
                double lr = s.At(t);
                if (!(lr <= previous + tol && lr >= s.EtaMin - tol && lr <= s.BaseLr + tol))
                    return false.Label($"{s}: lr({t}) = {lr:R} after {previous:R}; not falling within [eta_min, base]");
                previous = lr;
            }
            var midpoint = s.TMax % 2 == 0
                ? Close.Scalar(s.At(s.TMax / 2), (s.BaseLr + s.EtaMin) / 2, tol, 0, "lr(T_max/2) is the midpoint")
                : true.Label("odd T_max: no midpoint step");
            return Close.Scalar(s.At(0), s.BaseLr, tol, 0, "lr(0)")
                .And(Close.Scalar(s.At(s.TMax), s.EtaMin, tol, 0, "lr(T_max)"))
                .And(midpoint);
        });

    [Property(MaxTest = 50)]
    public Property PyTorch_form_is_periodic_and_the_clamped_form_holds_eta_min() =>
        Prop.ForAll(Gens.CosineAnnealingLR.ToArbitrary(), Gen.Choose(0, 500).ToArbitrary(), (s, t) =>
        {
            double tol = PeriodTol * s.BaseLr;
            var periodic = s with { Clamped = false };
            var clamped = s with { Clamped = true };
            return Close.Scalar(periodic.At(t + (2L * s.TMax)), periodic.At(t), tol, 0, "periodic: lr(t + 2 T_max) = lr(t)")
                .And(Close.Scalar(periodic.At(s.TMax + t), periodic.At(Math.Abs(s.TMax - t)), tol, 0, "periodic: symmetric about T_max"))
                .And((clamped.At(t) == (t <= s.TMax ? periodic.At(t) : s.EtaMin)).Label($"clamped lr({t}) = {clamped.At(t):R}"));
        });

    [Property(MaxTest = 50)]
    public Property Warm_restarts_restart_at_the_sums_of_the_periods() =>
        Prop.ForAll(Gens.CosineAnnealingWarmRestarts.ToArbitrary(), s =>
        {
            double tol = UlpTol * s.BaseLr;
            long restart = 0, period = s.T0;
            var result = true.Label(s.ToString());
            // Restart k is at T_0·(1 + T_mult + … + T_mult^(k−1)); each period is a CosineAnnealingLR of its own length.
            for (int k = 0; k < 4 && restart < 2000; k++)
            {
                var cycle = new CosineAnnealingLR(s.BaseLr, (int)period, s.EtaMin);
                result = result.And(Close.Scalar(s.At(restart), s.BaseLr, tol, 0, $"lr at restart {k} (t = {restart})"));
                foreach (long dt in new[] { 1, period / 2, period - 1 })
                {
                    if (dt > 0 && dt < period)
                        result = result.And(Close.Scalar(s.At(restart + dt), cycle.At(dt), tol, 0, $"lr({restart + dt}), {dt} after restart {k}"));
                }
                restart += period;
                period *= s.TMult;
            }
            return result;
        });

    [Property(MaxTest = 40)]
    public Property Warm_restarts_stay_between_eta_min_and_base() =>
        Prop.ForAll(Gens.CosineAnnealingWarmRestarts.ToArbitrary(), s =>
        {
            double tol = UlpTol * s.BaseLr;
            for (int t = 0; t < 400; t++)
            {
                double lr = s.At(t);
                if (!(lr >= s.EtaMin - tol && lr <= s.BaseLr + tol))
                    return false.Label($"{s}: lr({t}) = {lr:R}");
            }
            return true.Label(s.ToString());
        });

    [Fact]
    public void Huge_steps_are_fine()
    {
        // Periods grow past any step count without overflowing.
        var s = new CosineAnnealingWarmRestarts(1, 1, int.MaxValue);
        Assert.InRange(s.At(long.MaxValue), 0, 1);
        Assert.Equal(1.0, new CosineAnnealingWarmRestarts(1, 5).At(5_000_000_000));
        Assert.Equal(0.25, new CosineAnnealingLR(1, 10, 0.25, Clamped: true).At(long.MaxValue));
    }

    [Fact]
    public void Bad_arguments_name_the_PyTorch_argument()
    {
        Assert.Contains("T_max", Assert.Throws<ArgumentOutOfRangeException>(() => new CosineAnnealingLR(0.1, 0)).Message);
        Assert.Contains("eta_min", Assert.Throws<ArgumentOutOfRangeException>(() => new CosineAnnealingLR(0.1, 10, -1)).Message);
        Assert.Contains("T_0", Assert.Throws<ArgumentOutOfRangeException>(() => new CosineAnnealingWarmRestarts(0.1, 0)).Message);
        Assert.Contains("T_mult", Assert.Throws<ArgumentOutOfRangeException>(() => new CosineAnnealingWarmRestarts(0.1, 5, 0)).Message);
    }
}
