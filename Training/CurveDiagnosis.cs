// Diagnosis of training curves after Fit, and of a non-finite loss or gradient (the NaN guard).
//
// The rules read the per-epoch training loss L_1..L_n, validation loss V_1..V_n and, for
// classification, the training and validation accuracies A_n and B_n at the end (thresholds are the
// public constants below). They follow the beginners' tutorial the project grew from: its three
// bad-curve pictures (overfitting, learning rate too high, learning rate too low), its
// under/overfitting table by accuracy (70% / 68%: underfitting; 99% / 75%: overfitting; 95% / 93%:
// just right), and its fixes.
//   LearningRateTooHigh: any non-finite L_i or V_i (divergence); or some L_i > AboveUntrainedFactor
//     ln C (C known): an epoch above where an untrained model starts, worse than guessing (a finite
//     divergence, such as 5e8 under clipping, or SGD at lr 2 on Fashion-MNIST); or some
//     L_i > L_1 (1 + JumpAbove) for i > 1; or oscillation: among the significant differences
//     d_i = L_{i+1} - L_i (|d_i| > max(Noise |L_i|, NoiseFloor |L_1|)) at least
//     OscillationIncreases rise and the signs change at least OscillationSignChanges times.
//   Stuck (when the rate rules did not fire): L changed less than PlateauChange over the whole run
//     and the model is no better than guessing: A_n <= ChanceFactor / C, or L_n > StuckLossFraction
//     ln C (C known).
//   LearningRateTooLow: n >= 3; over the last SlowWindow differences L fell every epoch at a pace
//     that is not slowing down (the smallest drop is at least SteadyDropRatio of the largest: the
//     tutorial's straight line 2.0, 1.9, 1.8, 1.7, where a healthy curve bends), by a mean relative
//     drop in [FlatDropPerEpoch, SlowDropPerEpoch); and L is far from converged: L_n > FarLossFraction
//     ln C (C known) or A_n < LowAccuracy.
//   Overfitting: V reaches its minimum at epoch m, at least OverfitEpochs epochs follow it,
//     V_n > V_m (1 + OverfitRise) and L_n < L_m (1 - Noise); or the accuracy gap A_n - B_n is at
//     least AccuracyGap.
//   Underfitting (n >= MinEpochs, and no rate rule and no Stuck fired): both accuracies low with no overfitting
//     gap, A_n < LowAccuracy and A_n - B_n < CloseAccuracy (validation may be higher: dropout holds
//     training back), or A_n < LowAccuracy alone without validation;
//     or, without accuracies, L_n > UnderfitLossFraction ln C and flat (relative change over the last
//     SlowWindow epochs below PlateauChange).
//   TooFewUpdates (when the planned number of updates is given): the epochs' applied updates sum to
//     fewer than (1 - UpdateShortfall) of what the learning-rate schedule spans, so the schedule never
//     reached its end (early stopping, many skipped steps, a partial accumulation group).
//   Healthy: none of the above, with at least MinEpochs epochs; Inconclusive with fewer.
// Uniform guessing over C classes has cross-entropy ln C and accuracy 1 / C. Accuracies are used
// only where they are finite numbers (classification); other tasks are judged by their losses.
using System.Globalization;
using System.Text;

namespace IlgpuTrain.Training;

/// <summary>What a <see cref="Finding"/> says about a run.</summary>
public enum FindingKind
{
    /// <summary>No rule fired: the curves look like a normal run.</summary>
    Healthy,

    /// <summary>Too few epochs to judge.</summary>
    Inconclusive,

    /// <summary>Validation loss rising after its minimum while training loss falls, or training accuracy far above validation accuracy.</summary>
    Overfitting,

    /// <summary>Training and validation accuracy both low and close, or a training loss high and flat: the model does not fit even the training data.</summary>
    Underfitting,

    /// <summary>Training loss diverging, rising above its first epoch, or oscillating.</summary>
    LearningRateTooHigh,

    /// <summary>Training loss falling steadily but very slowly while far from converged.</summary>
    LearningRateTooLow,

    /// <summary>Fewer optimizer updates than the learning-rate schedule assumes: it never reached its end.</summary>
    TooFewUpdates,

    /// <summary>The model learned nothing: accuracy at chance, or a loss that never moved from where an untrained model starts.</summary>
    Stuck,
}

/// <summary>One diagnosis of a run's curves.</summary>
/// <param name="Kind">What was found.</param>
/// <param name="Summary">One sentence.</param>
/// <param name="Evidence">The epochs and numbers the rule saw.</param>
/// <param name="Epochs">The 1-based epochs the evidence refers to.</param>
/// <param name="Suggestions">What to try, most promising first.</param>
public sealed record Finding(FindingKind Kind, string Summary, string Evidence, IReadOnlyList<int> Epochs, IReadOnlyList<string> Suggestions)
{
    /// <summary>The finding as a few lines: summary, evidence, suggestions.</summary>
    /// <returns>The text.</returns>
    public override string ToString()
    {
        var s = new StringBuilder();
        s.Append(Kind).Append(": ").AppendLine(Summary);
        s.Append("  evidence: ").AppendLine(Evidence);
        foreach (string t in Suggestions)
        {
            s.Append("  try: ").AppendLine(t);
        }

        return s.ToString().TrimEnd();
    }
}

/// <summary>Rules that read a <see cref="History"/> and say what its curves suggest; pure functions.</summary>
public static class CurveDiagnosis
{
    /// <summary>Relative epoch-to-epoch change of the training loss below which it counts as noise.</summary>
    public const double Noise = 0.01;

    /// <summary>A later training loss this far (relative) above the first epoch's is a jump.</summary>
    public const double JumpAbove = 0.01;

    /// <summary>Significant increases of the training loss needed to call it oscillation.</summary>
    public const int OscillationIncreases = 2;

    /// <summary>Sign changes of the significant differences needed to call it oscillation.</summary>
    public const int OscillationSignChanges = 2;

    /// <summary>Epochs after the validation minimum needed to call overfitting.</summary>
    public const int OverfitEpochs = 2;

    /// <summary>Relative rise of the final validation loss above its minimum needed to call overfitting.</summary>
    public const double OverfitRise = 0.05;

    /// <summary>Training accuracy this far above validation accuracy (0.10: ten points) is overfitting (the tutorial's 99% / 75%).</summary>
    public const double AccuracyGap = 0.10;

    /// <summary>Training accuracy below this is low (the tutorial's underfit 70%; its "just right" run has 95%).</summary>
    public const double LowAccuracy = 0.80;

    /// <summary>Training and validation accuracies within this of each other are close (the tutorial's 70% / 68% and 95% / 93%).</summary>
    public const double CloseAccuracy = 0.05;

    /// <summary>A final training accuracy at most this multiple of chance (1 / C) means the model learned nothing.</summary>
    public const double ChanceFactor = 1.5;

    /// <summary>With C known, a loss that never moved and stays above this fraction of ln C has learned nothing.</summary>
    public const double StuckLossFraction = 0.9;

    /// <summary>Epoch differences looked at by the slow-decrease and plateau rules.</summary>
    public const int SlowWindow = 3;

    /// <summary>Mean relative drop per epoch below which a steady, straight decrease is too slow (the tutorial's 2.0, 1.9, 1.8, 1.7 falls about 5% per epoch).</summary>
    public const double SlowDropPerEpoch = 0.10;

    /// <summary>A decrease is steady (a straight line, not a bending curve) when its smallest drop in the window is at least this fraction of its largest.</summary>
    public const double SteadyDropRatio = 0.6;

    /// <summary>Mean relative drop per epoch below which the loss is flat (a plateau), not slowly falling.</summary>
    public const double FlatDropPerEpoch = 0.001;

    /// <summary>With C known, a training loss above this fraction of ln C is far from converged.</summary>
    public const double FarLossFraction = 0.4;

    /// <summary>With C known and no accuracies, a final training loss above this fraction of ln C is high.</summary>
    public const double UnderfitLossFraction = 0.5;

    /// <summary>Total relative change over the window below which the training loss is flat.</summary>
    public const double PlateauChange = 0.03;

    /// <summary>Epochs needed before a run can be called healthy.</summary>
    public const int MinEpochs = 3;

    /// <summary>With C known, a final training loss above this multiple of ln C (where an untrained model starts) means training made the model worse than guessing: the learning rate is too high.</summary>
    public const double AboveUntrainedFactor = 1.1;

    /// <summary>Epoch-to-epoch changes of the training loss smaller than this fraction of the first epoch's loss are noise too (a run near zero loss wobbles by tiny amounts).</summary>
    public const double NoiseFloor = 0.01;

    /// <summary>Fraction of the planned updates a run may miss (skipped steps under loss scaling) before it counts as too few.</summary>
    public const double UpdateShortfall = 0.05;

    /// <summary>Whether a finding is a warning: the run finished, but its result is suspect.</summary>
    /// <param name="f">A finding.</param>
    /// <returns>True for a learning rate that blew the run up, a run that learned nothing, and too few updates.</returns>
    public static bool IsWarning(Finding f)
    {
        ArgumentNullException.ThrowIfNull(f);
        return f.Kind is FindingKind.LearningRateTooHigh or FindingKind.TooFewUpdates or FindingKind.Stuck;
    }

    /// <summary>Diagnoses a run's curves.</summary>
    /// <param name="history">The run's epochs.</param>
    /// <param name="classes">The number of classes C, for the ln C and 1 / C references; null if unknown or not a classification.</param>
    /// <param name="plannedUpdates">The optimizer updates the run's learning-rate schedule spans (null: unknown, or a schedule that does not depend on the run's length).</param>
    /// <returns>The findings, learning-rate problems first; a single Healthy or Inconclusive finding when no rule fires.</returns>
    public static IReadOnlyList<Finding> Diagnose(History history, int? classes = null, long? plannedUpdates = null)
    {
        ArgumentNullException.ThrowIfNull(history);
        if (classes is int c && c < 2)
            throw new ArgumentOutOfRangeException(nameof(classes), $"CurveDiagnosis.Diagnose: classes must be at least 2, got {c}.");

        IReadOnlyList<EpochMetrics> e = history.Epochs;
        var findings = new List<Finding>();
        Finding? high = Diverged(e) ?? Exploded(e, classes) ?? Jump(e) ?? Oscillation(e);
        if (high is not null)
            findings.Add(high);

        // The remaining rules need finite curves.
        if (high?.Summary.StartsWith("training diverged", StringComparison.Ordinal) != true)
        {
            Finding? stuck = high is null ? Stuck(e, classes) : null;
            Finding? low = high is null && stuck is null ? TooSlow(e, classes) : null;
            findings.AddIfNotNull(stuck).AddIfNotNull(low).AddIfNotNull(stuck is null ? Overfit(e) : null);
            if (high is null && low is null && stuck is null)
                findings.AddIfNotNull(Underfit(e, classes));
        }

        if (plannedUpdates is long planned)
            findings.AddIfNotNull(TooFewUpdates(e, planned));

        if (findings.Count == 0)
        {
            findings.Add(e.Count < MinEpochs
                ? new Finding(FindingKind.Inconclusive, $"only {e.Count} epoch(s): too few to judge the curves.",
                    $"{e.Count} epoch(s) of history; the rules need at least {MinEpochs}.", [.. e.Select(m => m.Epoch)],
                    ["train for more epochs before reading the curves"])
                : new Finding(FindingKind.Healthy, "no sign of overfitting, underfitting or a badly set learning rate.",
                    Healthy(e), [.. e.Select(m => m.Epoch)], []));
        }

        return findings;
    }

    /// <summary>The findings as text, one block per finding.</summary>
    /// <param name="findings">Findings from <see cref="Diagnose"/>.</param>
    /// <returns>The text.</returns>
    public static string Format(IReadOnlyList<Finding> findings)
    {
        ArgumentNullException.ThrowIfNull(findings);
        return string.Join(Environment.NewLine, findings.Select(f => f.ToString()));
    }

    private static List<Finding> AddIfNotNull(this List<Finding> list, Finding? f)
    {
        if (f is not null)
            list.Add(f);
        return list;
    }

    // The tutorial's fixes for each picture, most promising first.
    private static readonly string[] LowerLr =
    [
        "lower the learning rate (divide it by 10)",
        "add a learning-rate warmup",
        "clip gradients (ClipByGlobalNorm, e.g. max norm 1.0; --clip 1)",
    ];

    private static readonly string[] RaiseLr =
    [
        "raise the learning rate (multiply it by 10), or pick one with a range test (ilgpu-train find-lr)",
        "use a better optimizer: Adam or AdamW instead of plain SGD, or SGD with momentum",
        "use a one-cycle or warmup-cosine schedule with a higher peak",
    ];

    private static readonly string[] Regularize =
    [
        "stop earlier: early stopping on validation loss with restore_best_weights (--early-stopping 3), or fewer epochs",
        "add or raise dropout (0.3-0.5)",
        "augment the training data (flips, crops, rotations; --augment) or collect more of it",
        "add weight decay (e.g. 0.01 with AdamW)",
        "use a smaller model (fewer layers or neurons)",
    ];

    private static Finding? Diverged(IReadOnlyList<EpochMetrics> e)
    {
        for (int i = 0; i < e.Count; i++)
        {
            EpochMetrics m = e[i];
            string? what = !double.IsFinite(m.TrainLoss) ? $"training loss {F(m.TrainLoss)}"
                : m.ValLoss is double v && !double.IsFinite(v) ? $"validation loss {F(v)}"
                : null;
            if (what is not null)
            {
                string before = i > 0 ? $" (training loss {F(e[i - 1].TrainLoss)} at epoch {e[i - 1].Epoch})" : string.Empty;
                return new Finding(FindingKind.LearningRateTooHigh, "training diverged: the loss became non-finite.",
                    $"{what} at epoch {m.Epoch}{before}, learning rate {F(m.LearningRate)}.", [m.Epoch], LowerLr);
            }
        }

        return null;
    }

    private static Finding? Exploded(IReadOnlyList<EpochMetrics> e, int? classes)
    {
        if (e.Count == 0 || classes is not int c)
            return null;

        EpochMetrics worst = e.MaxBy(m => m.TrainLoss)!;
        if (!(worst.TrainLoss > AboveUntrainedFactor * Math.Log(c)))
            return null;

        string ended = worst.Epoch == e[^1].Epoch ? "ended" : $"went at epoch {worst.Epoch}";
        return new Finding(FindingKind.LearningRateTooHigh, $"training loss {ended} above where an untrained model starts (ln {c}): training made the model worse than guessing.",
            $"training loss {F(worst.TrainLoss)} at epoch {worst.Epoch}, {F(worst.TrainLoss / Math.Log(c))} x ln {c} = {F(Math.Log(c))} " +
            $"({Curve(e, m => m.TrainLoss)}); learning rate {F(worst.LearningRate)}.",
            [worst.Epoch], LowerLr);
    }

    private static Finding? TooFewUpdates(IReadOnlyList<EpochMetrics> e, long planned)
    {
        long made = e.Sum(m => (long)m.Steps);
        long skipped = e.Sum(m => (long)m.SkippedSteps);
        if (planned <= 0 || made >= planned * (1 - UpdateShortfall))
            return null;

        return new Finding(FindingKind.TooFewUpdates, "the run made fewer optimizer updates than its learning-rate schedule assumes, so the schedule never reached its end.",
            string.Create(CultureInfo.InvariantCulture, $"{made} updates applied of the {planned} the schedule spans ({100.0 * made / planned:F0}%) over epochs {(e.Count == 0 ? "none" : $"{e[0].Epoch}-{e[^1].Epoch}")}; {skipped} step(s) skipped; learning rate at the end {(e.Count == 0 ? "none" : F(e[^1].LearningRate))}."),
            [.. e.Select(m => m.Epoch)],
            [
                "with early stopping, use a schedule that does not depend on the run's length (constant or plateau), or fewer epochs",
                "with many skipped steps (mixed precision), look for overflowing activations or start the loss scale lower",
                "with gradient accumulation, make the batches of the run a multiple of the accumulation",
            ]);
    }

    private static Finding? Jump(IReadOnlyList<EpochMetrics> e)
    {
        if (e.Count < 2)
            return null;

        double first = e[0].TrainLoss;
        var above = e.Skip(1).Where(m => m.TrainLoss > first + (JumpAbove * Math.Abs(first))).ToList();
        if (above.Count == 0)
            return null;

        EpochMetrics worst = above.MaxBy(m => m.TrainLoss)!;
        return new Finding(FindingKind.LearningRateTooHigh, "training loss rose above its first epoch.",
            $"training loss {F(first)} at epoch {e[0].Epoch}, {F(worst.TrainLoss)} at epoch {worst.Epoch} " +
            $"(learning rate {F(worst.LearningRate)}); above the first epoch at epochs {string.Join(", ", above.Select(m => m.Epoch))}.",
            [e[0].Epoch, .. above.Select(m => m.Epoch)], LowerLr);
    }

    private static Finding? Oscillation(IReadOnlyList<EpochMetrics> e)
    {
        var signs = new List<(int Sign, int Epoch)>();
        for (int i = 0; i + 1 < e.Count; i++)
        {
            double d = e[i + 1].TrainLoss - e[i].TrainLoss;
            if (Math.Abs(d) > Math.Max(Noise * Math.Abs(e[i].TrainLoss), NoiseFloor * Math.Abs(e[0].TrainLoss)))
                signs.Add((Math.Sign(d), e[i + 1].Epoch));
        }

        int increases = signs.Count(s => s.Sign > 0);
        int changes = signs.Zip(signs.Skip(1)).Count(p => p.First.Sign != p.Second.Sign);
        if (increases < OscillationIncreases || changes < OscillationSignChanges)
            return null;

        int[] up = [.. signs.Where(s => s.Sign > 0).Select(s => s.Epoch)];
        return new Finding(FindingKind.LearningRateTooHigh, "training loss oscillates from epoch to epoch instead of falling.",
            $"training loss rose at epochs {string.Join(", ", up)} ({changes} sign changes of the epoch-to-epoch differences): " +
            $"{Curve(e, m => m.TrainLoss)}; learning rate at the end {F(e[^1].LearningRate)}.",
            up, LowerLr);
    }

    private static Finding? Stuck(IReadOnlyList<EpochMetrics> e, int? classes)
    {
        if (e.Count < 2)
            return null;

        EpochMetrics first = e[0], last = e[^1];
        double change = Math.Abs(last.TrainLoss - first.TrainLoss) / Math.Abs(first.TrainLoss);
        if (classes is not int c || change >= PlateauChange)
            return null;

        string moved = $"training loss {F(first.TrainLoss)} -> {F(last.TrainLoss)} over epochs {first.Epoch}-{last.Epoch} ({100 * change:F1}%)";
        string? why = Accuracy(last.TrainAccuracy) is double a && a <= ChanceFactor / c
            ? $"{moved}; training accuracy {F(a)}, where guessing among {c} classes gets {F(1.0 / c)}"
            : last.TrainLoss > StuckLossFraction * Math.Log(c)
                ? $"{moved}, {F(last.TrainLoss / Math.Log(c))} x ln {c}, where an untrained model starts"
                : null;
        if (why is null)
            return null;

        return new Finding(FindingKind.Stuck, "the model learned nothing: it does no better than guessing.",
            $"{why}; learning rate {F(last.LearningRate)}.",
            [.. e.Select(m => m.Epoch)],
            [
                "check the data: do the labels match the inputs (the same order after shuffling), are the inputs normalized and not all zero?",
                "find a working learning rate with a range test (ilgpu-train find-lr): far too low does nothing, far too high kills ReLUs",
                "check that the parameters train (none frozen by mistake) and that gradients reach the first layers",
            ]);
    }

    private static Finding? TooSlow(IReadOnlyList<EpochMetrics> e, int? classes)
    {
        if (e.Count < 3)
            return null;

        int w = Math.Min(SlowWindow, e.Count - 1);
        double drops = 0, minDrop = double.PositiveInfinity, maxDrop = 0;
        for (int i = e.Count - 1 - w; i < e.Count - 1; i++)
        {
            double d = e[i].TrainLoss - e[i + 1].TrainLoss;
            if (d <= 0)
                return null;

            drops += d / Math.Abs(e[i].TrainLoss);
            minDrop = Math.Min(minDrop, d);
            maxDrop = Math.Max(maxDrop, d);
        }

        double mean = drops / w;
        EpochMetrics last = e[^1];
        (bool far, string why) = classes is int c
            ? (last.TrainLoss > FarLossFraction * Math.Log(c), $"training loss {F(last.TrainLoss)} is {F(last.TrainLoss / Math.Log(c))} x ln {c}")
            : Accuracy(last.TrainAccuracy) is double a ? (a < LowAccuracy, $"training accuracy {F(a)}") : (false, string.Empty);
        if (mean >= SlowDropPerEpoch || mean < FlatDropPerEpoch || minDrop < SteadyDropRatio * maxDrop || !far)
            return null;

        var window = e.Skip(e.Count - w - 1).ToList();
        return new Finding(FindingKind.LearningRateTooLow, "training loss falls in a slow straight line, far from converged: the learning rate is too low.",
            $"over epochs {window[0].Epoch}-{last.Epoch} training loss fell {100 * mean:F1}% per epoch at a steady pace " +
            $"({Curve(window, m => m.TrainLoss)}; drops {F(minDrop)} to {F(maxDrop)}); {why}; learning rate {F(last.LearningRate)}.",
            [.. window.Select(m => m.Epoch)], RaiseLr);
    }

    private static Finding? Overfit(IReadOnlyList<EpochMetrics> e)
    {
        if (e.Count == 0)
            return null;

        EpochMetrics last = e[^1];
        string? rise = ValidationRise(e);
        string? gap = Accuracy(last.TrainAccuracy) is double ta && Accuracy(last.ValAccuracy) is double va && ta - va >= AccuracyGap
            ? $"training accuracy {F(ta)} against validation accuracy {F(va)} at epoch {last.Epoch}, a gap of {100 * (ta - va):F0} points"
            : null;
        if (rise is null && gap is null)
            return null;

        string summary = rise is not null
            ? "validation loss rises after its minimum while training loss keeps falling: the model memorizes the training data."
            : "training accuracy is far above validation accuracy: the model memorizes the training data.";
        string evidence = string.Join("; ", new[] { rise, gap }.Where(x => x is not null)) + ".";
        int from = rise is not null ? MinValidationIndex(e) : e.Count - 1;
        return new Finding(FindingKind.Overfitting, summary, evidence, [.. e.Skip(from).Select(x => x.Epoch)], Regularize);
    }

    private static int MinValidationIndex(IReadOnlyList<EpochMetrics> e)
    {
        int m = -1;
        for (int i = 0; i < e.Count; i++)
        {
            if (e[i].ValLoss is double v && double.IsFinite(v) && (m < 0 || v < e[m].ValLoss!.Value))
                m = i;
        }

        return m;
    }

    private static string? ValidationRise(IReadOnlyList<EpochMetrics> e)
    {
        int m = MinValidationIndex(e);
        if (m < 0 || e.Count - 1 - m < OverfitEpochs || e[^1].ValLoss is not double last)
            return null;

        double min = e[m].ValLoss!.Value;
        double trainAtMin = e[m].TrainLoss;
        double trainLast = e[^1].TrainLoss;
        if (!(last > min + (OverfitRise * Math.Abs(min)) && trainLast < trainAtMin - (Noise * Math.Abs(trainAtMin))))
            return null;

        return $"validation loss was lowest at epoch {e[m].Epoch} ({F(min)}) and rose to {F(last)} by epoch {e[^1].Epoch} " +
            $"(+{100 * (last - min) / Math.Abs(min):F0}%) while training loss fell from {F(trainAtMin)} to {F(trainLast)}";
    }

    private static Finding? Underfit(IReadOnlyList<EpochMetrics> e, int? classes)
    {
        if (e.Count < MinEpochs)
            return null;

        EpochMetrics last = e[^1];
        int w = Math.Min(SlowWindow, e.Count - 1);
        EpochMetrics from = e[^(w + 1)];
        double change = Math.Abs(last.TrainLoss - from.TrainLoss) / Math.Abs(from.TrainLoss);
        string trend = $"training loss changed {100 * change:F1}% over epochs {from.Epoch}-{last.Epoch} ({Curve(e.Skip(e.Count - w - 1).ToList(), m => m.TrainLoss)})";
        string? why = null;
        if (Accuracy(last.TrainAccuracy) is double ta)
        {
            double? va = Accuracy(last.ValAccuracy);
            if (ta < LowAccuracy && (va is null || ta - va.Value < CloseAccuracy))
            {
                why = va is double v
                    ? $"training accuracy {F(ta)} (below {F(LowAccuracy)}) and validation accuracy {F(v)} at epoch {last.Epoch}: low, with no overfitting gap"
                    : $"training accuracy {F(ta)} at epoch {last.Epoch}";
            }
        }
        else if (classes is int c && last.TrainLoss > UnderfitLossFraction * Math.Log(c) && change < PlateauChange)
        {
            why = $"final training loss {F(last.TrainLoss)} is {F(last.TrainLoss / Math.Log(c))} x ln {c} (uniform guessing)";
        }

        if (why is null)
            return null;

        // Held back by regularization (validation above training), still falling, or flat: the first fix differs.
        string less = "regularize less: lower dropout, weight decay, label smoothing";
        bool falling = e[^2].TrainLoss - last.TrainLoss > SlowDropPerEpoch / 5 * Math.Abs(e[^2].TrainLoss);
        string longer = falling ? "train for more epochs (the loss is still falling)" : "train for more epochs";
        string bigger = "use a bigger model: more layers or neurons, or a CNN/ResNet for images (--model cnn)";
        string raise = "raise the learning rate (x2), or pick one with a range test (ilgpu-train find-lr)";
        bool heldBack = Accuracy(last.ValAccuracy) is double vb && Accuracy(last.TrainAccuracy) is double tb && vb > tb + CloseAccuracy;
        string[] fixes = heldBack ? [less, longer, bigger, raise] : falling ? [longer, raise, bigger, less] : [bigger, raise, longer, less];
        if (heldBack)
            why += $" (validation above training: dropout or other regularization holds training back)";
        return new Finding(FindingKind.Underfitting, "the model does not fit even the training data.",
            $"{why}; {trend}.", [.. e.Skip(e.Count - w - 1).Select(m => m.Epoch)], fixes);
    }

    private static double? Accuracy(double? a) => a is double v && double.IsFinite(v) ? v : null;

    private static string Healthy(IReadOnlyList<EpochMetrics> e)
    {
        string s = $"training loss {F(e[0].TrainLoss)} -> {F(e[^1].TrainLoss)} over epochs {e[0].Epoch}-{e[^1].Epoch}";
        EpochMetrics? best = e.Where(m => m.ValLoss is double v && double.IsFinite(v)).MinBy(m => m.ValLoss);
        if (best is not null)
            s += $"; validation loss {F(e[^1].ValLoss ?? double.NaN)} at the end, lowest {F(best.ValLoss!.Value)} at epoch {best.Epoch}";
        if (Accuracy(e[^1].TrainAccuracy) is double ta && Accuracy(e[^1].ValAccuracy) is double va)
            s += $"; accuracy {F(ta)} train, {F(va)} validation: both high and close";
        return s + ".";
    }

    private static string Curve(IReadOnlyList<EpochMetrics> e, Func<EpochMetrics, double> f) =>
        string.Join(", ", e.Select(m => F(f(m))));

    private static string F(double v) => v.ToString("G4", CultureInfo.InvariantCulture);
}

/// <summary>
/// What the trainer's NaN guard found: where the first non-finite value appeared and the state of
/// the run; <see cref="Format"/> turns it into a message with the likely fixes.
/// </summary>
/// <param name="Step">Global optimizer step (0-based) at which it appeared.</param>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="LearningRate">The learning rate of that step.</param>
/// <param name="Source">The first non-finite source: "loss", "gradient of 3.weight", "output of layer 2 (Dense(10))", "input".</param>
/// <param name="MaxAbs">The largest finite |value| seen in that source (or NaN if none was finite).</param>
/// <param name="LossScale">The loss scale under fp16 mixed precision, null in fp32.</param>
public sealed record NanDiagnosis(long Step, int Epoch, double LearningRate, string Source, double MaxAbs, double? LossScale = null)
{
    /// <summary>Values this large (in |x|) point at exploding activations or gradients rather than bad data.</summary>
    public const double HugeValue = 1e4;

    /// <summary>The multi-line message: what and where, then the likely fixes, most likely first.</summary>
    /// <returns>The message.</returns>
    public string Format()
    {
        var ci = CultureInfo.InvariantCulture;
        var s = new StringBuilder();
        s.AppendLine(ci, $"Training stopped: non-finite values (NaN or infinity) at step {Step}, epoch {Epoch}.");
        s.AppendLine(ci, $"  first non-finite source: {Source}");
        s.AppendLine(ci, $"  learning rate: {LearningRate:G4}");
        s.AppendLine(double.IsFinite(MaxAbs)
            ? string.Create(ci, $"  largest finite |value| in it: {MaxAbs:G4}{(MaxAbs >= HugeValue ? " (huge: values were exploding)" : string.Empty)}")
            : "  largest finite |value| in it: none was finite");
        if (LossScale is double ls)
        {
            s.AppendLine(ci, $"  loss scale (fp16): {ls:G6}");
        }

        s.AppendLine("Likely fixes:");
        var fixes = new List<string>();
        bool input = Source.StartsWith("input", StringComparison.OrdinalIgnoreCase);
        string data = "check the input data for NaN or huge values (normalize inputs to mean 0, std 1; check the labels are in range)";
        if (input)
        {
            fixes.Add(data);
        }

        fixes.Add(string.Create(ci, $"lower the learning rate (now {LearningRate:G4}; try {LearningRate / 10:G4}), or add a warmup"));
        fixes.Add("clip gradients (ClipByGlobalNorm, e.g. max norm 1.0)");
        if (!input)
        {
            fixes.Add(data);
        }

        fixes.Add(LossScale is null
            ? "under fp16 mixed precision, use a dynamic loss scale so overflowing steps are skipped instead of applied"
            : "under fp16, keep the dynamic loss scale on and start it lower; keep losses and reductions in fp32");
        foreach (string f in fixes)
        {
            s.Append("  - ").AppendLine(f);
        }

        return s.ToString().TrimEnd();
    }

    /// <summary>Same as <see cref="Format"/>.</summary>
    /// <returns>The message.</returns>
    public override string ToString() => Format();
}
