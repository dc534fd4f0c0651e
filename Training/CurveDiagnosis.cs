// Diagnosis of training curves after Fit, and of a non-finite loss or gradient (the NaN guard).
//
// Rules, on the per-epoch training loss L_1..L_n and validation loss V_1..V_n (thresholds are the
// public constants below):
//   LearningRateTooHigh: any non-finite L_i or V_i (divergence); or some L_i > L_1 (1 + JumpAbove)
//     for i > 1 (training made the model worse than after one epoch); or oscillation: among the
//     significant differences d_i = L_{i+1} - L_i (|d_i| > Noise * |L_i|) at least OscillationIncreases
//     rise and the signs change at least OscillationSignChanges times.
//   Overfitting: V reaches its minimum at epoch m, at least OverfitEpochs epochs follow it,
//     V_n > V_m (1 + OverfitRise), and training loss kept falling: L_n < L_m (1 - Noise).
//   LearningRateTooLow: n >= 3; over the last SlowWindow differences L fell every epoch, by a mean
//     relative drop in [FlatDropPerEpoch, SlowDropPerEpoch) (below it the loss is flat); and L is far from converged: L_n > FarLossFraction ln C
//     when C is known, else training accuracy < FarAccuracy.
//   Underfitting (only when neither learning-rate rule fired): the final training loss is high,
//     L_n > UnderfitLossFraction ln C (C known) or training accuracy < UnderfitAccuracy (C unknown),
//     and flat: the relative change over the last SlowWindow epochs is below PlateauChange.
//   LearningRateTooHigh also when the final training loss ends far above where an untrained model
//     starts, L_n > ExplodedLossFactor ln C (C known), even in a single epoch and with a finite loss
//     (a run that diverged to 5e8 under clipping).
//   TooFewUpdates (when the planned number of updates is given): the epochs' applied updates sum to
//     fewer than (1 - UpdateShortfall) of what the learning-rate schedule spans, so the schedule never
//     reached its end (early stopping, many skipped steps, a partial accumulation group).
//   Healthy: none of the above, with at least MinEpochs epochs; Inconclusive with fewer.
// Uniform guessing over C classes has cross-entropy ln C: a model still above half of that has
// learned little, whatever the data set.
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

    /// <summary>Validation loss rising after its minimum while training loss falls.</summary>
    Overfitting,

    /// <summary>Training loss high and flat: the model does not fit even the training data.</summary>
    Underfitting,

    /// <summary>Training loss diverging, rising above its first epoch, or oscillating.</summary>
    LearningRateTooHigh,

    /// <summary>Training loss falling steadily but very slowly while far from converged.</summary>
    LearningRateTooLow,

    /// <summary>Fewer optimizer updates than the learning-rate schedule assumes: it never reached its end.</summary>
    TooFewUpdates,
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
    public const double OverfitRise = 0.02;

    /// <summary>Epoch differences looked at by the slow-decrease and plateau rules.</summary>
    public const int SlowWindow = 3;

    /// <summary>Mean relative drop per epoch below which a steady decrease is too slow.</summary>
    public const double SlowDropPerEpoch = 0.02;

    /// <summary>Mean relative drop per epoch below which the loss is flat (a plateau), not slowly falling.</summary>
    public const double FlatDropPerEpoch = 0.001;

    /// <summary>With C known, a training loss above this fraction of ln C is far from converged.</summary>
    public const double FarLossFraction = 0.4;

    /// <summary>With C unknown, a training accuracy below this is far from converged.</summary>
    public const double FarAccuracy = 0.7;

    /// <summary>With C known, a final training loss above this fraction of ln C is high.</summary>
    public const double UnderfitLossFraction = 0.5;

    /// <summary>With C unknown, a final training accuracy below this is low.</summary>
    public const double UnderfitAccuracy = 0.5;

    /// <summary>Total relative change over the window below which the training loss is flat.</summary>
    public const double PlateauChange = 0.03;

    /// <summary>Epochs needed before a run can be called healthy.</summary>
    public const int MinEpochs = 3;

    /// <summary>With C known, a final training loss above this multiple of ln C (where an untrained model starts) means the run blew up.</summary>
    public const double ExplodedLossFactor = 3;

    /// <summary>Fraction of the planned updates a run may miss (skipped steps under loss scaling) before it counts as too few.</summary>
    public const double UpdateShortfall = 0.05;

    /// <summary>Whether a finding is a warning: the run finished, but its result is suspect (not healthy, inconclusive, or a fitting hint).</summary>
    /// <param name="f">A finding.</param>
    /// <returns>True for a learning rate that blew the run up and for too few updates.</returns>
    public static bool IsWarning(Finding f)
    {
        ArgumentNullException.ThrowIfNull(f);
        return f.Kind is FindingKind.LearningRateTooHigh or FindingKind.TooFewUpdates;
    }

    /// <summary>Diagnoses a run's curves.</summary>
    /// <param name="history">The run's epochs.</param>
    /// <param name="classes">The number of classes C, for the ln C reference; null if unknown.</param>
    /// <param name="plannedUpdates">The optimizer updates the run's learning-rate schedule spans (null: unknown, or a schedule that does not depend on the run's length).</param>
    /// <returns>The findings, learning-rate problems first; a single Healthy or Inconclusive finding when no rule fires.</returns>
    public static IReadOnlyList<Finding> Diagnose(History history, int? classes = null, long? plannedUpdates = null)
    {
        ArgumentNullException.ThrowIfNull(history);
        if (classes is int c && c < 2)
        {
            throw new ArgumentOutOfRangeException(nameof(classes), $"CurveDiagnosis.Diagnose: classes must be at least 2, got {c}.");
        }

        IReadOnlyList<EpochMetrics> e = history.Epochs;
        var findings = new List<Finding>();
        Finding? high = Diverged(e) ?? Exploded(e, classes) ?? Jump(e) ?? Oscillation(e);
        if (high is not null)
        {
            findings.Add(high);
        }

        // The remaining rules need finite curves.
        if (high?.Summary.StartsWith("training diverged", StringComparison.Ordinal) != true)
        {
            Finding? low = high is null ? TooSlow(e, classes) : null;
            if (low is not null)
            {
                findings.Add(low);
            }

            if (Overfit(e) is Finding over)
            {
                findings.Add(over);
            }

            if (high is null && low is null && Underfit(e, classes) is Finding under)
            {
                findings.Add(under);
            }
        }

        if (plannedUpdates is long planned && TooFewUpdates(e, planned) is Finding few)
        {
            findings.Add(few);
        }

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

    private static readonly string[] LowerLr =
    [
        "lower the learning rate (by 3-10x)",
        "add a learning-rate warmup",
        "clip gradients (ClipByGlobalNorm, e.g. max norm 1.0)",
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
        if (e.Count == 0 || classes is not int c || !(e[^1].TrainLoss > ExplodedLossFactor * Math.Log(c)))
        {
            return null;
        }

        EpochMetrics last = e[^1];
        return new Finding(FindingKind.LearningRateTooHigh, $"training loss ended far above where an untrained model starts (ln {c}): the run blew up.",
            $"training loss {F(last.TrainLoss)} at epoch {last.Epoch}, {F(last.TrainLoss / Math.Log(c))} x ln {c} = {F(Math.Log(c))} " +
            $"({Curve(e, m => m.TrainLoss)}); learning rate {F(last.LearningRate)}.",
            [last.Epoch], LowerLr);
    }

    private static Finding? TooFewUpdates(IReadOnlyList<EpochMetrics> e, long planned)
    {
        long made = e.Sum(m => (long)m.Steps);
        long skipped = e.Sum(m => (long)m.SkippedSteps);
        if (planned <= 0 || made >= planned * (1 - UpdateShortfall))
        {
            return null;
        }

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
        {
            return null;
        }

        double first = e[0].TrainLoss;
        var above = e.Skip(1).Where(m => m.TrainLoss > first + (JumpAbove * Math.Abs(first))).ToList();
        if (above.Count == 0)
        {
            return null;
        }

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
            if (Math.Abs(d) > Noise * Math.Abs(e[i].TrainLoss))
            {
                signs.Add((Math.Sign(d), e[i + 1].Epoch));
            }
        }

        int increases = signs.Count(s => s.Sign > 0);
        int changes = signs.Zip(signs.Skip(1)).Count(p => p.First.Sign != p.Second.Sign);
        if (increases < OscillationIncreases || changes < OscillationSignChanges)
        {
            return null;
        }

        int[] up = [.. signs.Where(s => s.Sign > 0).Select(s => s.Epoch)];
        return new Finding(FindingKind.LearningRateTooHigh, "training loss oscillates from epoch to epoch.",
            $"training loss rose at epochs {string.Join(", ", up)} ({changes} sign changes of the epoch-to-epoch differences): " +
            $"{Curve(e, m => m.TrainLoss)}; learning rate at the end {F(e[^1].LearningRate)}.",
            up, LowerLr);
    }

    private static Finding? Overfit(IReadOnlyList<EpochMetrics> e)
    {
        int m = -1;
        for (int i = 0; i < e.Count; i++)
        {
            if (e[i].ValLoss is double v && double.IsFinite(v) && (m < 0 || v < e[m].ValLoss!.Value))
            {
                m = i;
            }
        }

        if (m < 0 || e.Count - 1 - m < OverfitEpochs || e[^1].ValLoss is not double last)
        {
            return null;
        }

        double min = e[m].ValLoss!.Value;
        double trainAtMin = e[m].TrainLoss;
        double trainLast = e[^1].TrainLoss;
        if (!(last > min + (OverfitRise * Math.Abs(min)) && trainLast < trainAtMin - (Noise * Math.Abs(trainAtMin))))
        {
            return null;
        }

        string gap = e[^1].ValAccuracy is double va
            ? $"; accuracy gap train {F(e[^1].TrainAccuracy)} vs validation {F(va)}"
            : string.Empty;
        return new Finding(FindingKind.Overfitting, "validation loss rises after its minimum while training loss keeps falling.",
            $"validation loss was lowest at epoch {e[m].Epoch} ({F(min)}) and rose to {F(last)} by epoch {e[^1].Epoch} " +
            $"(+{100 * (last - min) / Math.Abs(min):F0}%) while training loss fell from {F(trainAtMin)} to {F(trainLast)}{gap}.",
            [.. e.Skip(m).Select(x => x.Epoch)],
            [
                "stop earlier: early stopping on validation loss with restore_best_weights, or fewer epochs",
                "regularize more: dropout, weight decay, label smoothing",
                "augment the training data or get more of it",
                "use a smaller model",
            ]);
    }

    private static Finding? TooSlow(IReadOnlyList<EpochMetrics> e, int? classes)
    {
        if (e.Count < 3)
        {
            return null;
        }

        int w = Math.Min(SlowWindow, e.Count - 1);
        double drops = 0;
        for (int i = e.Count - 1 - w; i < e.Count - 1; i++)
        {
            double d = e[i].TrainLoss - e[i + 1].TrainLoss;
            if (d <= 0)
            {
                return null;
            }

            drops += d / Math.Abs(e[i].TrainLoss);
        }

        double mean = drops / w;
        EpochMetrics last = e[^1];
        (bool far, string why) = classes is int c
            ? (last.TrainLoss > FarLossFraction * Math.Log(c), $"training loss {F(last.TrainLoss)} is {F(last.TrainLoss / Math.Log(c))} x ln {c}")
            : (last.TrainAccuracy < FarAccuracy, $"training accuracy {F(last.TrainAccuracy)}");
        if (mean >= SlowDropPerEpoch || mean < FlatDropPerEpoch || !far)
        {
            return null;
        }

        return new Finding(FindingKind.LearningRateTooLow, "training loss falls steadily but very slowly, far from converged.",
            $"over epochs {e[^(w + 1)].Epoch}-{last.Epoch} training loss fell {100 * mean:F2}% per epoch on average " +
            $"({Curve(e.Skip(e.Count - w - 1).ToList(), m => m.TrainLoss)}); {why}; learning rate {F(last.LearningRate)}.",
            [.. e.Skip(e.Count - w - 1).Select(m => m.Epoch)],
            [
                "raise the learning rate (by 3-10x)",
                "run a learning-rate range test (increase the rate each batch, pick one a little below where the loss is lowest)",
                "use a one-cycle or warmup-cosine schedule with a higher peak",
            ]);
    }

    private static Finding? Underfit(IReadOnlyList<EpochMetrics> e, int? classes)
    {
        if (e.Count < 2)
        {
            return null;
        }

        EpochMetrics last = e[^1];
        (bool high, string why) = classes is int c
            ? (last.TrainLoss > UnderfitLossFraction * Math.Log(c), $"final training loss {F(last.TrainLoss)} is {F(last.TrainLoss / Math.Log(c))} x ln {c} (uniform guessing)")
            : (last.TrainAccuracy < UnderfitAccuracy, $"final training accuracy {F(last.TrainAccuracy)}");
        int w = Math.Min(SlowWindow, e.Count - 1);
        EpochMetrics from = e[^(w + 1)];
        double change = Math.Abs(last.TrainLoss - from.TrainLoss) / Math.Abs(from.TrainLoss);
        if (!high || change >= PlateauChange)
        {
            return null;
        }

        return new Finding(FindingKind.Underfitting, "training loss is high and flat: the model does not fit the training data.",
            $"{why}; training loss changed {100 * change:F1}% over epochs {from.Epoch}-{last.Epoch} " +
            $"(training accuracy {F(from.TrainAccuracy)} -> {F(last.TrainAccuracy)}).",
            [.. e.Skip(e.Count - w - 1).Select(m => m.Epoch)],
            [
                "use a bigger model (wider or deeper layers)",
                "train for more epochs",
                "raise the learning rate",
                "regularize less: lower dropout, weight decay, label smoothing",
            ]);
    }

    private static string Healthy(IReadOnlyList<EpochMetrics> e)
    {
        string s = $"training loss {F(e[0].TrainLoss)} -> {F(e[^1].TrainLoss)} over epochs {e[0].Epoch}-{e[^1].Epoch}";
        EpochMetrics? best = e.Where(m => m.ValLoss is double v && double.IsFinite(v)).MinBy(m => m.ValLoss);
        return best is null ? s + "."
            : $"{s}; validation loss {F(e[^1].ValLoss ?? double.NaN)} at the end, lowest {F(best.ValLoss!.Value)} at epoch {best.Epoch}.";
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
