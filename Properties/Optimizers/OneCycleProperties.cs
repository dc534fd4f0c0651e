using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>OneCycleLR and its momentum: PyTorch's values (lr and momentum/β₁), endpoints, bounds.</summary>
public class OneCycleProperties
{
    // Anneals between endpoints: a few ulps of the larger endpoint.
    private const double UlpTol = 1e-14;

    private static readonly int[] Steps100 = [.. Pins.Steps.Where(t => t < 100)];
    private static readonly int[] Steps57 = [.. Enumerable.Range(0, 57)];
    private static readonly int[] Steps200 = [.. Pins.Steps.Where(t => t < 200)];

    // Values from PyTorch 1.13, with run/emit/STEPS as in StepDecayProperties (SGD has momentum 0.9, so
    // OneCycleLR cycles its momentum; with Adam it cycles betas[0]):
    //   S100 = [t for t in STEPS if t < 100]
    //   lr, m = run(lambda o: OneCycleLR(o, max_lr=0.1, total_steps=100), n=100, lr=0.1)
    //   emit("OneCycleLR(0.1, 100) lr", lr, S100); emit("momentum (SGD)", m, S100)
    //   S57 = list(range(57))
    //   lr, m = run(lambda o: OneCycleLR(o, max_lr=1.0, total_steps=57, pct_start=0.25, anneal_strategy='linear', div_factor=10.0, final_div_factor=100.0, three_phase=True), n=57, lr=1.0, adam=True)
    //   emit("OneCycleLR(1, 57, 0.25, linear, 10, 100, three_phase) lr", lr, S57); emit("beta1 (Adam)", m, S57)
    //   S200 = STEPS[:-1]
    //   lr, m = run(lambda o: OneCycleLR(o, max_lr=0.01, total_steps=200, pct_start=0.4, base_momentum=0.8, max_momentum=0.9, three_phase=True), n=200, lr=0.01, adam=True)
    //   emit("OneCycleLR(0.01, 200, 0.4, cos, three_phase, base_m 0.8, max_m 0.9) lr", lr, S200); emit("beta1 (Adam)", m, S200)
    [Property(MaxTest = 1)]
    public Property Known_values_from_PyTorch_with_momentum_cycling()
    {
        var a = new OneCycleLR(0.1, 100);
        var b = new OneCycleLR(1.0, 57, 0.25, AnnealStrategy.Linear, 10, 100, ThreePhase: true);
        var c = new OneCycleLR(0.01, 200, 0.4, ThreePhase: true, BaseMomentum: 0.8, MaxMomentum: 0.9);
        return Pins.Match(a, [0.0040000000000000036, 0.004281378056590748, 0.00512221332591585, 0.006512647783225481, 0.008436379855794068, 0.010870855543955726, 0.013787532846129102, 0.017152216387689725, 0.025063020862605645, 0.029516394846410082, 0.03423336854368411, 0.04423446416546729, 0.05976553583453271, 0.0648413602494026, 0.07893697913739435, 0.09312914445604428, 0.09556362014420594, 0.09748735221677451, 0.1, 0.09994965352845243, 0.09979871550490317, 0.09402980047373054, 0.0811745653949763, 0.0793893450575732, 0.07754493889320883, 0.0654509879153485, 0.05892800902855288, 0.05671183644422961, 0.03887419780637107, 0.03669841092903536, 0.03454941208465151, 0.0188258346050237, 0.017103395290759563, 0.015447205763186566, 4e-07], Steps100)
            .And(Pins.Match(a.Momentum(), [0.95, 0.9497068978577179, 0.9488310277855043, 0.9473826585591401, 0.9453787709835478, 0.9428428588083794, 0.9398046532852822, 0.9362997745961565, 0.9280593532681191, 0.9234204220349895, 0.9185069077669957, 0.9080890998276382, 0.8919109001723617, 0.886623583073539, 0.8719406467318809, 0.8571571411916206, 0.8546212290164521, 0.8526173414408599, 0.85, 0.8500503466729342, 0.850201285300238, 0.8559702234071631, 0.8688255099070633, 0.8706107373853763, 0.8724551509273948, 0.8845491502812526, 0.8910721552600681, 0.8932883367091172, 0.9111260466978157, 0.9133018422783337, 0.9154508497187474, 0.9311744900929366, 0.9328969362969856, 0.9345531324493432, 0.95], Steps100))
            .And(Pins.Match(b, [0.1, 0.1679245283018868, 0.2358490566037736, 0.3037735849056604, 0.3716981132075472, 0.439622641509434, 0.5075471698113208, 0.5754716981132075, 0.6433962264150943, 0.7113207547169811, 0.779245283018868, 0.8471698113207548, 0.9150943396226415, 0.9830188679245283, 0.9490566037735849, 0.8811320754716981, 0.8132075471698113, 0.7452830188679245, 0.6773584905660377, 0.6094339622641509, 0.5415094339622641, 0.47358490566037736, 0.4056603773584906, 0.3377358490566038, 0.2698113207547169, 0.20188679245283014, 0.13396226415094337, 0.09832203389830509, 0.09496610169491526, 0.09161016949152542, 0.0882542372881356, 0.08489830508474577, 0.08154237288135593, 0.07818644067796611, 0.07483050847457628, 0.07147457627118645, 0.06811864406779661, 0.06476271186440678, 0.06140677966101695, 0.058050847457627126, 0.054694915254237295, 0.051338983050847456, 0.047983050847457624, 0.044627118644067806, 0.041271186440677975, 0.037915254237288136, 0.034559322033898304, 0.03120338983050848, 0.027847457627118655, 0.024491525423728816, 0.02113559322033899, 0.017779661016949153, 0.014423728813559314, 0.011067796610169489, 0.007711864406779664, 0.0043559322033898396, 0.0010000000000000009], Steps57))
            .And(Pins.Match(b.Momentum(), [0.95, 0.9424528301886792, 0.9349056603773584, 0.9273584905660377, 0.9198113207547169, 0.9122641509433962, 0.9047169811320754, 0.8971698113207547, 0.8896226415094339, 0.8820754716981132, 0.8745283018867924, 0.8669811320754717, 0.8594339622641509, 0.8518867924528302, 0.8556603773584905, 0.8632075471698113, 0.870754716981132, 0.8783018867924528, 0.8858490566037736, 0.8933962264150943, 0.9009433962264151, 0.9084905660377358, 0.9160377358490566, 0.9235849056603773, 0.9311320754716981, 0.9386792452830188, 0.9462264150943396, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95], Steps57))
            .And(Pins.Match(c, [0.0003999999999999993, 0.00040379489330895184, 0.00041517357272945893, 0.00043411804623052705, 0.0004605983587055995, 0.0004945726393377464, 0.0005359871678060311, 0.0005847764592283814, 0.0007041592083101064, 0.000774563897304608, 0.0008519661104054877, 0.0010272626826900028, 0.0013392804867003276, 0.00145572492071098, 0.0018397980420667582, 0.0024251583989207274, 0.0025830650936191956, 0.002745109700303572, 0.003253478460097629, 0.0034294531622847627, 0.0036082274629500736, 0.005295434500792337, 0.006970546837715237, 0.0071465215399023705, 0.007319418391436375, 0.008277249460442655, 0.008693818289773572, 0.008821910176759505, 0.009625436102695391, 0.009695840791689893, 0.009759136632293356, 0.01, 0.009996205106691048, 0.00998482642727054, 0.008560201957933241, 0.008421272456123377, 0.008277249460442657, 0.0036082274629500753, 0.0006408633677066432, 4e-08], Steps200))
            .And(Pins.Match(c.Momentum(), [0.9, 0.8999604698613651, 0.8998419419507349, 0.8996446036850987, 0.8993687670968167, 0.8990148683402318, 0.8985834670020205, 0.898075245216371, 0.8968316749134364, 0.8960982927364104, 0.8952920196832762, 0.8934660137219792, 0.8902158282635383, 0.8890028654092607, 0.8850021037284713, 0.8789046000112425, 0.8772597386081334, 0.8755717739551712, 0.8702762660406498, 0.8684431962262005, 0.8665809639276034, 0.8490058906167465, 0.8315568037737997, 0.8297237339593504, 0.8279227250892045, 0.8179453181203891, 0.8136060594815253, 0.8122717689920885, 0.8039017072635897, 0.8031683250865637, 0.8025089934136109, 0.8, 0.8000395301386349, 0.8001580580492652, 0.8149978962715287, 0.8164450785820482, 0.8179453181203891, 0.8665809639276034, 0.8974910065863891, 0.9], Steps200));
    }

    [Property(MaxTest = 60)]
    public Property Starts_at_max_over_div_ends_at_min_and_stays_between() =>
        Prop.ForAll(Gens.OneCycleLR.ToArbitrary(), s =>
        {
            double initial = s.MaxLr / s.DivFactor, min = initial / s.FinalDivFactor;
            double tol = UlpTol * Math.Max(s.MaxLr, initial);
            double rise = (s.PctStart * s.TotalSteps) - 1;
            int peak = (int)Math.Round(rise);
            var result = true.Label(s.ToString());
            if (s.PctStart < 1)
            {
                // With pct_start = 1 the rise fills the cycle and T − 1 is the peak, in PyTorch too.
                result = result.And(Close.Scalar(s.At(s.TotalSteps - 1), min, tol, 0, "lr(T − 1) = max_lr/(div_factor·final_div_factor)"))
                    .And(Close.Scalar(s.At(s.TotalSteps + 5), min, tol, 0, "held after T"))
                    .And(Close.Scalar(s.Momentum().At(s.TotalSteps - 1), s.MaxMomentum, UlpTol, 0, "momentum ends at max_momentum"));
            }
            if (rise > 0)
            {
                result = result.And(Close.Scalar(s.At(0), initial, tol, 0, "lr(0) = max_lr/div_factor"))
                    .And(Close.Scalar(s.Momentum().At(0), s.MaxMomentum, UlpTol, 0, "momentum(0) = max_momentum"));
            }
            if (rise >= 0 && Math.Abs(rise - peak) < 1e-9)
            {
                result = result.And(Close.Scalar(s.At(peak), s.MaxLr, tol, 1e-12, $"lr peaks at max_lr at t = pct_start·T − 1 = {peak}"))
                    .And(Close.Scalar(s.Momentum().At(peak), s.BaseMomentum, UlpTol, 1e-12, "momentum is at base_momentum at the lr peak"));
            }
            double lo = Math.Min(Math.Min(min, initial), s.MaxLr), hi = Math.Max(s.MaxLr, initial);
            for (int t = 0; t < s.TotalSteps; t++)
            {
                double lr = s.At(t), m = s.Momentum().At(t);
                if (!(lr >= lo - tol && lr <= hi + tol))
                    return false.Label($"{s}: lr({t}) = {lr:R} outside [{lo:R}, {hi:R}]");
                if (!(m >= s.BaseMomentum - UlpTol && m <= s.MaxMomentum + UlpTol))
                    return false.Label($"{s}: momentum({t}) = {m:R} outside [base, max]");
            }
            return result;
        });

    [Property(MaxTest = 40)]
    public Property Momentum_moves_against_the_learning_rate_in_two_phases() =>
        Prop.ForAll(Gens.OneCycleLR.Select(s => s with { ThreePhase = false, DivFactor = Math.Max(1, s.DivFactor) }).ToArbitrary(), s =>
        {
            // Two phases, div_factor ≥ 1: lr rises while momentum falls, then the reverse; changes within
            // a phase never share a sign. (Across the peak, between two steps, both may turn.)
            var m = s.Momentum();
            double peak = (s.PctStart * s.TotalSteps) - 1;
            for (int t = 1; t < s.TotalSteps; t++)
            {
                if (t - 1 <= peak && t > peak)
                    continue;
                double dl = s.At(t) - s.At(t - 1), dm = m.At(t) - m.At(t - 1);
                if (dl * dm > 1e-30)
                    return false.Label($"{s}: lr and momentum both moved the same way at t = {t} ({dl:R}, {dm:R})");
            }
            return true.Label(s.ToString());
        });

    [Fact]
    public void A_zero_length_phase_gives_its_end_value_where_PyTorch_divides_by_zero()
    {
        // pct_start·T − 1 = 0: PyTorch 1.13 raises ZeroDivisionError at t = 0.
        var s = new OneCycleLR(1.0, 10, 0.1);
        Assert.Equal(1.0, s.At(0));
        Assert.Equal(0.85, s.Momentum().At(0));
        Assert.True(s.At(1) < 1.0);
    }

    [Fact]
    public void Bad_arguments_name_the_PyTorch_argument()
    {
        Assert.Contains("total_steps", Assert.Throws<ArgumentOutOfRangeException>(() => new OneCycleLR(0.1, 0)).Message);
        Assert.Contains("pct_start", Assert.Throws<ArgumentOutOfRangeException>(() => new OneCycleLR(0.1, 10, 1.5)).Message);
        Assert.Contains("three_phase", Assert.Throws<ArgumentOutOfRangeException>(() => new OneCycleLR(0.1, 10, 0.7, ThreePhase: true)).Message);
        Assert.Contains("div_factor", Assert.Throws<ArgumentOutOfRangeException>(() => new OneCycleLR(0.1, 10, DivFactor: 0)).Message);
        Assert.Contains("final_div_factor", Assert.Throws<ArgumentOutOfRangeException>(() => new OneCycleLR(0.1, 10, FinalDivFactor: -1)).Message);
        Assert.Contains("max_momentum", Assert.Throws<ArgumentOutOfRangeException>(() => new OneCycleLR(0.1, 10, BaseMomentum: 0.9, MaxMomentum: 0.8)).Message);
        Assert.Contains("max_lr", Assert.Throws<ArgumentOutOfRangeException>(() => new OneCycleLR(-0.1, 10)).Message);
        Assert.Throws<ArgumentNullException>(() => new OneCycleMomentum(null!));
    }
}
