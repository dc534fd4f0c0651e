using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>CurveDiagnosis: each rule fires on synthetic curves made for it, healthy runs raise no alarm, and the NaN message names what to fix.</summary>
public class CurveDiagnosisProperties
{
    private const int C = 10;
    private static readonly double LnC = Math.Log(C);

    private static FindingKind[] Kinds(History h, int? classes = C) => [.. CurveDiagnosis.Diagnose(h, classes).Select(f => f.Kind)];

    // Jitter of a relative size below CurveDiagnosis.Noise: must never count as a rise.
    private static double Jitter(int seed, int i) => 0.004 * Math.Sin((seed * 7.3) + (i * 12.9898));

    // L(i) = floor + (start - floor) e^{-k i}: fast enough (k >= 0.3) to be no "slow" run, floor well below 0.4 ln C,
    // and long enough to converge (within 0.1 of the floor), with a small validation gap: accuracies (exp(-loss))
    // end high (above 0.8) and close, the tutorial's "just right".
    private static Gen<History> Healthy { get; } =
        from k in Gen.Choose(30, 150).Select(x => x / 100.0)
        from n in Gen.Choose((int)Math.Ceiling(Math.Log((LnC * 0.95) / 0.1) / k) + 1, 30)
        from floor in Gen.Choose(5, 10).Select(x => x / 100.0)
        from gap in Gen.Choose(0, 5).Select(x => x / 100.0)
        from withVal in Gen.Elements(true, false)
        from seed in Gen.Choose(0, 1000)
        let start = LnC * 0.95
        select Gens.Curves(n,
            i => (floor + ((start - floor) * Math.Exp(-k * i))) * (1 + Jitter(seed, i)),
            i => withVal ? (floor + gap + ((start - floor) * Math.Exp(-k * i))) * (1 + Jitter(seed + 1, i)) : null);

    [Property(MaxTest = 60)]
    public Property A_healthy_run_raises_no_alarm() =>
        Prop.ForAll(Healthy.ToArbitrary(), h =>
            Kinds(h).SequenceEqual([FindingKind.Healthy]).Label(CurveDiagnosis.Format(CurveDiagnosis.Diagnose(h, C))));

    // Validation loss U-shaped: minimum at epoch m+1, then rising `rise` epochs by >= 3% each, training still falling.
    [Property(MaxTest = 40)]
    public Property Validation_rising_after_its_minimum_while_training_falls_is_overfitting() =>
        Prop.ForAll(Gen.Choose(2, 10).ToArbitrary(), Gen.Choose(2, 8).ToArbitrary(), Gen.Choose(3, 15).ToArbitrary(), (m, rise, pct) =>
        {
            History h = Gens.Curves(m + 1 + rise,
                i => 0.1 + (2.0 * Math.Exp(-0.6 * i)),
                i => i <= m ? 0.4 + (2.0 * Math.Exp(-0.6 * i)) : (0.4 + (2.0 * Math.Exp(-0.6 * m))) * Math.Pow(1 + (pct / 100.0), i - m));
            IReadOnlyList<Finding> f = CurveDiagnosis.Diagnose(h, C);
            Finding? over = f.FirstOrDefault(x => x.Kind == FindingKind.Overfitting);
            return (over is not null && f.Count == 1).Label(CurveDiagnosis.Format(f))
                .And((over?.Evidence.Contains($"lowest at epoch {m + 1}") == true).Label("names the minimum's epoch"))
                .And((over?.Suggestions.Any(s => s.Contains("early stopping")) == true).Label("suggests early stopping"));
        });

    [Fact]
    public void One_epoch_of_rise_or_a_rise_with_training_flat_is_not_overfitting()
    {
        // Accuracies equal, so only the validation-loss rule could fire.
        static History SameAccuracy(History h) => new([.. h.Epochs.Select(m => m with { TrainAccuracy = 0.9, ValAccuracy = 0.9 })]);
        History oneEpoch = SameAccuracy(Gens.Curves(6, i => 1.0 / (i + 1), i => i < 5 ? 1.2 / (i + 1) : 0.4));
        Assert.DoesNotContain(FindingKind.Overfitting, Kinds(oneEpoch));
        History trainFlat = SameAccuracy(Gens.Curves(6, i => i < 3 ? 1.0 / (i + 1) : 1.0 / 3, i => i < 3 ? 1.2 / (i + 1) : 0.4 + (0.1 * i)));
        Assert.DoesNotContain(FindingKind.Overfitting, Kinds(trainFlat));
    }

    [Property(MaxTest = 40)]
    public Property A_non_finite_loss_is_divergence_named_by_epoch() =>
        Prop.ForAll(Gen.Choose(1, 12).ToArbitrary(), Gen.Elements(double.NaN, double.PositiveInfinity).ToArbitrary(), Gen.Elements(true, false).ToArbitrary(), (bad, v, inVal) =>
        {
            History h = Gens.Curves(bad + 2, i => i + 1 == bad && !inVal ? v : 1.0 / (i + 1), i => i + 1 == bad && inVal ? v : 1.2 / (i + 1));
            IReadOnlyList<Finding> f = CurveDiagnosis.Diagnose(h, C);
            return (f.Count == 1 && f[0].Kind == FindingKind.LearningRateTooHigh && f[0].Summary.Contains("diverged")).Label(CurveDiagnosis.Format(f))
                .And(f[0].Evidence.Contains($"at epoch {bad}").Label("names the epoch"))
                .And(f[0].Suggestions.Any(s => s.Contains("lower the learning rate")).Label("suggests a lower rate"));
        });

    [Property(MaxTest = 40)]
    public Property A_loss_that_zigzags_is_a_learning_rate_too_high() =>
        Prop.ForAll(Gen.Choose(5, 20).ToArbitrary(), Gen.Choose(3, 30).ToArbitrary(), (n, amp) =>
        {
            History h = Gens.Curves(n, i => 0.8 * (1 + ((i % 2 == 0 ? 1 : -1) * amp / 100.0)), _ => null);
            return Kinds(h).SequenceEqual([FindingKind.LearningRateTooHigh]).Label(CurveDiagnosis.Format(CurveDiagnosis.Diagnose(h, C)));
        });

    // At the thresholds: two rises and two sign changes fire; one rise does not.
    [Fact]
    public void Oscillation_fires_at_exactly_its_thresholds()
    {
        double[] two = [1.0, 0.7, 0.8, 0.9, 0.6];
        Assert.Equal([FindingKind.LearningRateTooHigh], Kinds(Gens.Curves(two.Length, i => two[i], _ => null)));
        double[] one = [1.0, 0.7, 0.8, 0.6, 0.5];
        Assert.DoesNotContain(FindingKind.LearningRateTooHigh, Kinds(Gens.Curves(one.Length, i => one[i], _ => null)));
    }

    [Property(MaxTest = 30)]
    public Property A_loss_above_its_first_epoch_is_a_learning_rate_too_high() =>
        Prop.ForAll(Gen.Choose(2, 10).ToArbitrary(), Gen.Choose(2, 50).ToArbitrary(), (n, pct) =>
        {
            // Falls, then climbs past the first epoch for good, by pct% at once and then slowly (staying below ln C): no zigzag, only the jump.
            History h = Gens.Curves(n + 1, i => i == 0 ? 1.0 : i == 1 ? 0.9 : 1.0 + (pct / 100.0 * (1 + ((i - 2.0) / n))), _ => null);
            IReadOnlyList<Finding> f = CurveDiagnosis.Diagnose(h, C);
            return (f[0].Kind == FindingKind.LearningRateTooHigh && f[0].Summary.Contains("first epoch")).Label(CurveDiagnosis.Format(f));
        });

    // 1%..9% relative drop per epoch from near ln C (the tutorial's 2.0, 1.9, 1.8, 1.7 falls about 5%): steady, slow,
    // far from converged (above 0.45 ln C at the end), and long enough to move more than the Stuck rule's plateau.
    private static Gen<(int N, int Permille)> Slow { get; } =
        from permille in Gen.Choose(10, 90)
        let p = permille / 1000.0
        let nMin = Math.Max(3, (int)Math.Ceiling(Math.Log(1 - CurveDiagnosis.PlateauChange) / Math.Log(1 - p)) + 2)
        let nMax = Math.Min(30, (int)Math.Floor(Math.Log(0.45) / Math.Log(1 - p)) + 1)
        from n in Gen.Choose(nMin, Math.Max(nMin, nMax))
        select (n, permille);

    [Property(MaxTest = 40)]
    public Property A_slow_steady_decrease_far_from_converged_is_a_learning_rate_too_low() =>
        Prop.ForAll(Slow.ToArbitrary(), Gen.Elements<int?>(C, null).ToArbitrary(), (np, classes) =>
        {
            (int n, int permille) = np;
            History h = Gens.Curves(n, i => LnC * Math.Pow(1 - (permille / 1000.0), i), i => (LnC + 0.1) * Math.Pow(1 - (permille / 1000.0), i));
            IReadOnlyList<Finding> f = CurveDiagnosis.Diagnose(h, classes);
            return (f.Count == 1 && f[0].Kind == FindingKind.LearningRateTooLow).Label(CurveDiagnosis.Format(f))
                .And(f[0].Suggestions.Any(s => s.Contains("range test")).Label("suggests a range test"));
        });

    [Fact]
    public void A_slow_decrease_near_convergence_is_not_a_learning_rate_too_low()
    {
        History h = new([.. Gens.Curves(10, i => 0.3 * Math.Pow(0.99, i), _ => null).Epochs.Select(m => m with { TrainAccuracy = 0.92 })]);
        Assert.Equal([FindingKind.Healthy], Kinds(h));
    }

    // Flat (changes below CurveDiagnosis.FlatDropPerEpoch) at 60%-75% of ln C, no accuracies (a loss-only task):
    // the model learned little. Higher and flat is Stuck (below).
    [Property(MaxTest = 40)]
    public Property A_high_flat_loss_is_underfitting() =>
        Prop.ForAll(Gen.Choose(3, 20).ToArbitrary(), Gen.Choose(60, 75).ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), (n, pct, seed) =>
        {
            History h = new([.. Gens.Curves(n, i => LnC * pct / 100.0 * (1 + (Jitter(seed, i) / 20)), _ => null).Epochs.Select(m => m with { TrainAccuracy = double.NaN })]);
            IReadOnlyList<Finding> f = CurveDiagnosis.Diagnose(h, C);
            return (f.Count == 1 && f[0].Kind == FindingKind.Underfitting).Label(CurveDiagnosis.Format(f))
                .And(f[0].Evidence.Contains($"ln {C}").Label("compares with ln C"))
                .And(f[0].Suggestions.Any(s => s.Contains("bigger model")).Label("suggests a bigger model"));
        });

    // A loss that never moves from near ln C, or an accuracy at chance: nothing was learned.
    [Property(MaxTest = 40)]
    public Property A_loss_that_never_moves_from_guessing_is_stuck() =>
        Prop.ForAll(Gen.Choose(2, 20).ToArbitrary(), Gen.Choose(91, 105).ToArbitrary(), Gen.Choose(0, 2001).ToArbitrary(), (n, pct, seed) =>
        {
            bool withAccuracy = seed % 2 == 0;
            History h = new([.. Gens.Curves(n, i => LnC * pct / 100.0 * (1 + (Jitter(seed, i) / 20)), _ => null).Epochs
                .Select(m => m with { TrainAccuracy = withAccuracy ? 0.11 : double.NaN })]);
            IReadOnlyList<Finding> f = CurveDiagnosis.Diagnose(h, C);
            return (f.Count == 1 && f[0].Kind == FindingKind.Stuck && CurveDiagnosis.IsWarning(f[0])).Label(CurveDiagnosis.Format(f))
                .And(f[0].Suggestions.Any(s => s.Contains("labels match the inputs")).Label("suggests checking the data"));
        });

    [Fact]
    public void A_falling_loss_at_chance_accuracy_is_not_stuck()
    {
        History h = new([.. Gens.Curves(5, i => LnC * (1 - (0.05 * i)), _ => null).Epochs.Select(m => m with { TrainAccuracy = 0.12 })]);
        Assert.DoesNotContain(FindingKind.Stuck, Kinds(h));
    }

    [Fact]
    public void Without_classes_underfitting_is_judged_by_training_accuracy()
    {
        History low = new([.. Gens.Curves(5, _ => 1.5, _ => null).Epochs.Select(m => m with { TrainAccuracy = 0.3 })]);
        Assert.Equal([FindingKind.Underfitting], Kinds(low, null));
        History fine = new([.. low.Epochs.Select(m => m with { TrainAccuracy = 0.95 })]);
        Assert.Equal([FindingKind.Healthy], Kinds(fine, null));
    }

    [Fact]
    public void Too_few_epochs_is_inconclusive_and_bad_classes_are_refused()
    {
        Assert.Equal([FindingKind.Inconclusive], Kinds(History.Empty));
        Assert.Equal([FindingKind.Inconclusive], Kinds(Gens.Curves(2, i => 1.0 / (i + 1), _ => null)));
        Assert.Throws<ArgumentOutOfRangeException>(() => CurveDiagnosis.Diagnose(History.Empty, 1));
    }

    [Fact]
    public void Nan_message_names_where_when_and_the_fixes()
    {
        string text = new NanDiagnosis(1234, 3, 0.5, "gradient of 3.weight", 3.4e38).Format();
        foreach (string part in new[]
                 {
                     "step 1234", "epoch 3", "gradient of 3.weight", "learning rate: 0.5", "3.4E+38", "values were exploding",
                     "lower the learning rate (now 0.5; try 0.05)", "clip gradients", "check the input data for NaN or huge values",
                     "loss scale",
                 })
        {
            Assert.Contains(part, text);
        }

        Assert.True(text.Split('\n').Length >= 8, text);
        Assert.True(text.IndexOf("lower the learning rate", StringComparison.Ordinal) < text.IndexOf("check the input data", StringComparison.Ordinal));

        // Bad data first when the input itself is non-finite; fp16 advice names the current scale.
        string input = new NanDiagnosis(0, 1, 1e-3, "input", double.NaN, LossScale: 65536).ToString();
        Assert.True(input.IndexOf("check the input data", StringComparison.Ordinal) < input.IndexOf("lower the learning rate", StringComparison.Ordinal), input);
        Assert.Contains("none was finite", input);
        Assert.Contains("loss scale (fp16): 65536", input);
        Assert.DoesNotContain("exploding", new NanDiagnosis(7, 1, 0.1, "output of layer 2 (Dense(10))", 12.5).Format());
    }
}
