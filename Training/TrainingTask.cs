// Tasks as values: what the Trainer minimizes and what it measures.
//
// A task turns (prediction, target) into a differentiable loss, and into per-batch statistics
// (sums on the device) that the trainer adds up over an epoch or an evaluation set in float64.
// Metrics are computed once, from the totals, so an epoch's metric is exact over the epoch (a MAE
// over every target element, an F1 over every label decision), never a mean of batch means.
//
//   task            target                 loss                                 metrics
//   classification  int labels (N)         cross-entropy (label smoothing,      accuracy, top_k
//                                          ignore_index)
//   multi-label     float 0/1 (N, L)       BCE with logits (pos_weight)         micro_f1, macro_f1, subset_accuracy
//   regression      float values (N, T)    MSE, Huber(delta), L1, SmoothL1      mae, rmse
//   your own        either                 ITrainingTask.Loss                   ITrainingTask.Finish
namespace IlgpuTrain.Training;

/// <summary>A metric of a task: its name (as logs and monitors show it, without "val_") and which way is better.</summary>
/// <param name="Name">The name, such as "mae" (a monitor reads "mae" on the training set and "val_mae" on the validation set).</param>
/// <param name="HigherIsBetter">True for accuracies and F1 scores, false for errors.</param>
public sealed record TaskMetric(string Name, bool HigherIsBetter);

/// <summary>
/// What a <see cref="Trainer"/> trains for: the loss it differentiates and the metrics it reports.
/// Implement it to train your own loss; <see cref="ClassificationTask"/>,
/// <see cref="MultiLabelTask"/> and <see cref="RegressionTask"/> are the built-in ones.
/// </summary>
/// <remarks>
/// <para>Per batch the trainer calls <see cref="Loss"/> (Mean reduction) inside the tape and
/// <see cref="Statistics"/> outside it; it adds each statistic's elements over the epoch's batches
/// in float64 and calls <see cref="Finish"/> once with the totals. So a metric that is a mean is a
/// sum statistic divided by a count ("sum and count"): exact over the epoch.</para>
/// <para>Evaluation calls <see cref="Loss"/> with Sum reduction: the sum over the batch of each
/// sample's loss, which the trainer adds up and divides by the number of samples.</para>
/// </remarks>
public interface ITrainingTask
{
    /// <summary>A short name for messages, such as "regression (mse)".</summary>
    string Name { get; }

    /// <summary>True when the target is float values (the data set must be an <see cref="ITargetDataset"/>); false for int class labels.</summary>
    bool UsesTargets { get; }

    /// <summary>The metrics <see cref="Finish"/> returns, in order.</summary>
    IReadOnlyList<TaskMetric> Metrics { get; }

    /// <summary>The metric that early stopping and the best checkpoint follow by default: "val_loss" unless the task says otherwise.</summary>
    string Monitor => "val_loss";

    /// <summary>Why the model's per-sample output shape does not suit the task, or null when it does.</summary>
    /// <param name="output">The model's per-sample output shape, such as (10).</param>
    /// <returns>The problem, naming the fix, or null.</returns>
    string? OutputProblem(Shape output);

    /// <summary>Why a data set does not suit the task and the model's output, or null when it does.</summary>
    /// <param name="data">The data set.</param>
    /// <param name="output">The model's per-sample output shape.</param>
    /// <returns>The problem, naming the fix, or null.</returns>
    string? DataProblem(IDataset data, Shape output);

    /// <summary>The loss of a batch as a differentiable scalar.</summary>
    /// <param name="step">The step's scope.</param>
    /// <param name="prediction">The model's output (N, ...output).</param>
    /// <param name="target">Int labels (N), or float targets (N, ...target) when <see cref="UsesTargets"/>.</param>
    /// <param name="reduction">Mean: the batch's mean loss, which training differentiates; Sum: the sum over the batch of each sample's loss (evaluation).</param>
    /// <returns>The loss, shape ().</returns>
    Tensor Loss(StepScope step, Tensor prediction, Tensor target, LossReduction reduction);

    /// <summary>The batch's statistics: float tensors on the device whose elements the trainer adds up over the epoch (sums and counts).</summary>
    /// <param name="step">The step's scope.</param>
    /// <param name="prediction">The model's output.</param>
    /// <param name="target">The targets.</param>
    /// <returns>The statistics; the same number of elements for every batch.</returns>
    IReadOnlyList<Tensor> Statistics(StepScope step, Tensor prediction, Tensor target);

    /// <summary>The metrics from the statistics summed over a whole epoch or evaluation set.</summary>
    /// <param name="totals">Each statistic element's total, in the order <see cref="Statistics"/> returns them.</param>
    /// <param name="samples">The samples the totals cover.</param>
    /// <returns>One value per entry of <see cref="Metrics"/>.</returns>
    IReadOnlyList<double> Finish(IReadOnlyList<double> totals, long samples);
}

/// <summary>
/// Classification into C classes: the model outputs (C) logits per sample, the data set gives int
/// labels. Loss: the cross-entropy of <see cref="CrossEntropy"/>; metrics: accuracy and top-k
/// accuracy.
/// </summary>
/// <remarks>
/// <para>loss = −Σ_c q_c log softmax(x)_c, with q the one-hot label smoothed by eps: over all C
/// classes, q = (1 − eps)·onehot + eps/C (<see cref="LabelSmoothing.Uniform"/>, PyTorch's
/// label_smoothing), or 1 − eps on the true class and eps/(C − 1) on the others
/// (<see cref="LabelSmoothing.OffTarget"/>). Rows whose label is the ignore_index (−100) add no
/// loss and no gradient.</para>
/// <para>accuracy = hits/samples, where a hit is a label whose logit has fewer than k logits above it
/// (k = 1; ties count as hits); top_k uses k = min(<see cref="TopK"/>, C). Samples with an ignored
/// label count as misses.</para>
/// </remarks>
public sealed record ClassificationTask : ITrainingTask
{
    /// <summary>The cross-entropy: reduction is set by the trainer; label smoothing eps and convention, ignore_index.</summary>
    public CrossEntropyOptions CrossEntropy { get; init; } = CrossEntropyOptions.Default;

    /// <summary>The k of the top-k accuracy (5; capped at the number of classes).</summary>
    public int TopK { get; init; } = 5;

    /// <inheritdoc/>
    public string Name => CrossEntropy.Epsilon > 0 ? $"classification (cross-entropy, label smoothing {CrossEntropy.Epsilon})" : "classification (cross-entropy)";

    /// <inheritdoc/>
    public bool UsesTargets => false;

    /// <inheritdoc/>
    public IReadOnlyList<TaskMetric> Metrics => Accuracies;

    // Shared by every instance, so that two equal tasks compare equal.
    private static readonly TaskMetric[] Accuracies = [new("accuracy", true), new("top_k", true)];

    /// <inheritdoc/>
    public string? OutputProblem(Shape output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (TopK < 1)
            throw new ArgumentOutOfRangeException(nameof(TopK), TopK, "ClassificationTask: TopK must be at least 1.");
        return output.Rank == 1 ? null : "a classifier must output (classes); end it with Flatten and Dense(classes)";
    }

    /// <inheritdoc/>
    public string? DataProblem(IDataset data, Shape output)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(output);
        return data.Classes > output[0] ? $"{data.Name} has {data.Classes} classes, but the model outputs {output[0]}; make its last layer Dense({data.Classes})." : null;
    }

    /// <inheritdoc/>
    public Tensor Loss(StepScope step, Tensor prediction, Tensor target, LossReduction reduction) =>
        F.CrossEntropy(prediction, target, CrossEntropy with { Reduction = reduction });

    /// <inheritdoc/>
    public IReadOnlyList<Tensor> Statistics(StepScope step, Tensor prediction, Tensor target)
    {
        ArgumentNullException.ThrowIfNull(step);
        ArgumentNullException.ThrowIfNull(prediction);
        ArgumentNullException.ThrowIfNull(target);
        int n = prediction.Shape[0], c = prediction.Shape[1];
        var host = step.Device.Kernels;
        var hits = step.Scratch<float>(Math.Max(n, 1)).SubView(0, n);
        var scratch = step.Scratch<float>(Math.Max(1, Reductions.ScratchLength(host, n)));
        var sums = step.Allocate(new Shape(2));
        var view = sums.View<float>();
        int[] ks = [1, Math.Min(TopK, c)];
        for (int i = 0; i < ks.Length; i++)
        {
            IlgpuTrain.Kernels.Metrics.TopKHits(host, prediction.View<float>(), target.View<int>(), hits, n, c, ks[i]);
            Reductions.Sum(host, hits, view.SubView(i, 1), scratch);
        }

        return [sums];
    }

    /// <inheritdoc/>
    public IReadOnlyList<double> Finish(IReadOnlyList<double> totals, long samples)
    {
        ArgumentNullException.ThrowIfNull(totals);
        double n = Math.Max(samples, 1);
        return [totals[0] / n, totals[1] / n];
    }
}

/// <summary>
/// Multi-label classification: L independent yes/no labels per sample. The model outputs (L)
/// logits, the data set (an <see cref="ITargetDataset"/>) gives (L) targets in {0, 1}. Loss: binary
/// cross-entropy with logits; metrics: micro-F1, macro-F1 and subset accuracy.
/// </summary>
/// <remarks>
/// <para>loss = mean over N·L of −[w_l t log σ(x) + (1 − t) log(1 − σ(x))]
/// (torch.nn.functional.binary_cross_entropy_with_logits, w = <see cref="PosWeight"/>, 1 when null).</para>
/// <para>A label is predicted when σ(x) &gt; threshold (torchmetrics' rule; <see cref="Threshold"/>
/// 0.5, or one per label in <see cref="Thresholds"/>) and true when its target is at least 0.5.
/// Per label, TP, FP and FN are counted over the whole set, then (scikit-learn's f1_score):</para>
/// <para>micro_f1 = 2·ΣTP / (2·ΣTP + ΣFP + ΣFN)</para>
/// <para>macro_f1 = mean over labels of 2·TP_l / (2·TP_l + FP_l + FN_l)</para>
/// <para>An F1 whose denominator is 0 (a label never true and never predicted) is 0: scikit-learn's
/// default zero_division="warn" gives 0 (with a warning). subset_accuracy is the fraction of samples
/// whose every label is right (scikit-learn's accuracy_score on multi-label data).</para>
/// </remarks>
public sealed record MultiLabelTask : ITrainingTask
{
    /// <summary>pos_weight: one weight per label for the positive term of the loss, or null for none.</summary>
    public IReadOnlyList<float>? PosWeight { get; init; }

    /// <summary>The decision threshold on σ(logit) for every label (0.5), unless <see cref="Thresholds"/> is set.</summary>
    public float Threshold { get; init; } = 0.5f;

    /// <summary>One decision threshold per label, or null to use <see cref="Threshold"/> for all.</summary>
    public IReadOnlyList<float>? Thresholds { get; init; }

    /// <inheritdoc/>
    public string Name => "multi-label (binary cross-entropy with logits)";

    /// <inheritdoc/>
    public bool UsesTargets => true;

    /// <inheritdoc/>
    public IReadOnlyList<TaskMetric> Metrics => F1Scores;

    // Shared by every instance, so that two equal tasks compare equal.
    private static readonly TaskMetric[] F1Scores = [new("micro_f1", true), new("macro_f1", true), new("subset_accuracy", true)];

    /// <summary>micro-F1 and macro-F1 from per-label counts (scikit-learn's f1_score, zero_division 0).</summary>
    /// <param name="counts">TP, FP, FN of each label in turn (3L values).</param>
    /// <returns>(micro, macro); macro is 0 when there are no labels.</returns>
    public static (double Micro, double Macro) F1(IReadOnlyList<double> counts)
    {
        ArgumentNullException.ThrowIfNull(counts);
        if (counts.Count % 3 != 0)
            throw new ArgumentException($"MultiLabelTask.F1: {counts.Count} counts; give TP, FP, FN for each label (a multiple of 3).", nameof(counts));
        static double Score(double tp, double fp, double fn) => 2 * tp + fp + fn == 0 ? 0 : 2 * tp / (2 * tp + fp + fn);
        double tpSum = 0, fpSum = 0, fnSum = 0, macro = 0;
        int labels = counts.Count / 3;
        for (int l = 0; l < labels; l++)
        {
            double tp = counts[3 * l], fp = counts[(3 * l) + 1], fn = counts[(3 * l) + 2];
            tpSum += tp;
            fpSum += fp;
            fnSum += fn;
            macro += Score(tp, fp, fn);
        }

        return (Score(tpSum, fpSum, fnSum), labels == 0 ? 0 : macro / labels);
    }

    /// <inheritdoc/>
    public string? OutputProblem(Shape output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (!(Threshold > 0 && Threshold < 1))
            throw new ArgumentOutOfRangeException(nameof(Threshold), Threshold, "MultiLabelTask: the threshold on sigmoid(logit) must be in (0, 1).");
        if (Thresholds is { } t && t.Any(v => !(v > 0 && v < 1)))
            throw new ArgumentOutOfRangeException(nameof(Thresholds), "MultiLabelTask: every threshold on sigmoid(logit) must be in (0, 1).");
        if (PosWeight is { } w && w.Any(v => !(v >= 0 && float.IsFinite(v))))
            throw new ArgumentOutOfRangeException(nameof(PosWeight), "MultiLabelTask: every pos_weight must be finite and 0 or more.");
        if (output.Rank != 1)
            return "a multi-label model must output (labels) logits; end it with Flatten and Dense(labels)";
        int l = output[0];
        if (Thresholds is not null && Thresholds.Count != l)
            return $"MultiLabelTask has {Thresholds.Count} thresholds for {l} labels; give one per label";
        if (PosWeight is not null && PosWeight.Count != l)
            return $"MultiLabelTask has {PosWeight.Count} pos_weight values for {l} labels; give one per label";
        return null;
    }

    /// <inheritdoc/>
    public string? DataProblem(IDataset data, Shape output) => Trainer.TargetProblem(data, output, "labels");

    /// <inheritdoc/>
    public Tensor Loss(StepScope step, Tensor prediction, Tensor target, LossReduction reduction)
    {
        ArgumentNullException.ThrowIfNull(step);
        ArgumentNullException.ThrowIfNull(prediction);
        var w = PosWeight is null ? null : step.Upload([.. PosWeight], new Shape(PosWeight.Count));
        var loss = F.BinaryCrossEntropyWithLogits(prediction, target, w, reduction);
        // A sample's loss is the mean over its labels.
        return reduction == LossReduction.Sum ? F.Scale(loss, 1f / PerSample(prediction)) : loss;
    }

    /// <inheritdoc/>
    public IReadOnlyList<Tensor> Statistics(StepScope step, Tensor prediction, Tensor target)
    {
        ArgumentNullException.ThrowIfNull(step);
        ArgumentNullException.ThrowIfNull(prediction);
        ArgumentNullException.ThrowIfNull(target);
        int n = prediction.Shape[0], l = PerSample(prediction);
        var host = step.Device.Kernels;
        var thresholds = step.Upload(Thresholds is null ? Enumerable.Repeat(Threshold, l).ToArray() : [.. Thresholds], new Shape(l));
        var counts = step.Allocate(new Shape(3 * l));
        IlgpuTrain.Kernels.Metrics.MultiLabelCounts(host, prediction.View<float>(), target.View<float>(), thresholds.View<float>(), counts.View<float>(), n, l);
        var match = step.Scratch<float>(Math.Max(n, 1)).SubView(0, n);
        IlgpuTrain.Kernels.Metrics.ExactMatches(host, prediction.View<float>(), target.View<float>(), thresholds.View<float>(), match, n, l);
        var exact = step.Allocate(new Shape(1));
        Reductions.Sum(host, match, exact.View<float>(), step.Scratch<float>(Math.Max(1, Reductions.ScratchLength(host, n))));
        return [counts, exact];
    }

    /// <inheritdoc/>
    public IReadOnlyList<double> Finish(IReadOnlyList<double> totals, long samples)
    {
        ArgumentNullException.ThrowIfNull(totals);
        var (micro, macro) = F1([.. totals.Take(totals.Count - 1)]);
        return [micro, macro, totals[^1] / Math.Max(samples, 1)];
    }

    private static int PerSample(Tensor prediction) => checked((int)(prediction.Length / Math.Max(prediction.Shape[0], 1)));
}

/// <summary>The loss of a <see cref="RegressionTask"/>.</summary>
public enum RegressionLoss
{
    /// <summary>Mean squared error, (x − t)² (torch.nn.functional.mse_loss).</summary>
    Mse,

    /// <summary>Huber: 0.5 d² when |d| &lt; delta, else delta·(|d| − 0.5·delta) (torch.nn.functional.huber_loss).</summary>
    Huber,

    /// <summary>Mean absolute error, |x − t| (torch.nn.functional.l1_loss).</summary>
    L1,

    /// <summary>Smooth L1: 0.5 d²/beta when |d| &lt; beta, else |d| − 0.5·beta (torch.nn.functional.smooth_l1_loss).</summary>
    SmoothL1,
}

/// <summary>
/// Regression of T values per sample: the model outputs (T), the data set (an
/// <see cref="ITargetDataset"/>) gives (T) float targets. Loss: <see cref="LossFunction"/>
/// averaged over every target element; metrics: MAE and RMSE over every target element.
/// </summary>
/// <remarks>
/// <para>mae = Σ|x − t| / (N·T),  rmse = √(Σ(x − t)² / (N·T)), over the whole epoch or set.</para>
/// <para><see cref="Delta"/> is Huber's delta and SmoothL1's beta (1, PyTorch's default).</para>
/// </remarks>
public sealed record RegressionTask : ITrainingTask
{
    /// <summary>The loss (MSE).</summary>
    public RegressionLoss LossFunction { get; init; } = RegressionLoss.Mse;

    /// <summary>Huber's delta or SmoothL1's beta (1).</summary>
    public float Delta { get; init; } = 1f;

    /// <inheritdoc/>
    public string Name => $"regression ({LossFunction.ToString().ToLowerInvariant()})";

    /// <inheritdoc/>
    public bool UsesTargets => true;

    /// <inheritdoc/>
    public IReadOnlyList<TaskMetric> Metrics => Errors;

    // Shared by every instance, so that two equal tasks compare equal.
    private static readonly TaskMetric[] Errors = [new("mae", false), new("rmse", false)];

    /// <inheritdoc/>
    public string? OutputProblem(Shape output)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (!(Delta > 0 && float.IsFinite(Delta)))
            throw new ArgumentOutOfRangeException(nameof(Delta), Delta, "RegressionTask: delta (Huber) or beta (SmoothL1) must be positive and finite.");
        if (!Enum.IsDefined(LossFunction))
            throw new ArgumentOutOfRangeException(nameof(LossFunction), LossFunction, "RegressionTask: unknown loss; use Mse, Huber, L1 or SmoothL1.");
        return output.Length >= 1 ? null : "a regression model must output at least one value per sample";
    }

    /// <inheritdoc/>
    public string? DataProblem(IDataset data, Shape output) => Trainer.TargetProblem(data, output, "target values");

    /// <inheritdoc/>
    public Tensor Loss(StepScope step, Tensor prediction, Tensor target, LossReduction reduction)
    {
        ArgumentNullException.ThrowIfNull(prediction);
        var loss = LossFunction switch
        {
            RegressionLoss.Huber => F.HuberLoss(prediction, target, Delta, reduction),
            RegressionLoss.L1 => F.L1Loss(prediction, target, reduction),
            RegressionLoss.SmoothL1 => F.SmoothL1Loss(prediction, target, Delta, reduction),
            _ => F.MseLoss(prediction, target, reduction),
        };
        // A sample's loss is the mean over its T values.
        return reduction == LossReduction.Sum ? F.Scale(loss, 1f / PerSample(prediction)) : loss;
    }

    /// <inheritdoc/>
    public IReadOnlyList<Tensor> Statistics(StepScope step, Tensor prediction, Tensor target)
    {
        ArgumentNullException.ThrowIfNull(prediction);
        // Per-sample means of |d| and d², so the totals divided by the samples are means over N·T.
        float perSample = 1f / PerSample(prediction);
        return [F.Scale(F.L1Loss(prediction, target, LossReduction.Sum), perSample), F.Scale(F.MseLoss(prediction, target, LossReduction.Sum), perSample)];
    }

    /// <inheritdoc/>
    public IReadOnlyList<double> Finish(IReadOnlyList<double> totals, long samples)
    {
        ArgumentNullException.ThrowIfNull(totals);
        double n = Math.Max(samples, 1);
        return [totals[0] / n, Math.Sqrt(totals[1] / n)];
    }

    private static int PerSample(Tensor prediction) => checked((int)(prediction.Length / Math.Max(prediction.Shape[0], 1)));
}

/// <summary>
/// Next-token prediction (a language model): the model outputs (T, V) logits per sample, one row per position, and
/// the data set (an <see cref="ITargetDataset"/> such as <see cref="TextDataset"/>) gives the (T) next token ids.
/// Loss: the cross-entropy of <see cref="CrossEntropy"/> over every position (label smoothing as configured),
/// a sample's loss being the mean over its T positions, as PyTorch's
/// <c>F.cross_entropy(logits.view(-1, V), targets.view(-1))</c> for equal-length samples; metrics: bits per token
/// (the cross-entropy without smoothing, in bits: bits per character for a <see cref="CharVocabulary"/>) and the
/// next-token accuracy (ties count as hits, as <see cref="ClassificationTask"/>'s).
/// </summary>
public sealed record LanguageModelTask : ITrainingTask
{
    /// <summary>The cross-entropy: reduction is set by the trainer; label smoothing eps and convention.</summary>
    public CrossEntropyOptions CrossEntropy { get; init; } = CrossEntropyOptions.Default;

    /// <inheritdoc/>
    public string Name => CrossEntropy.Epsilon > 0 ? $"language model (cross-entropy per token, label smoothing {CrossEntropy.Epsilon})" : "language model (cross-entropy per token)";

    /// <inheritdoc/>
    public bool UsesTargets => true;

    /// <inheritdoc/>
    public IReadOnlyList<TaskMetric> Metrics => LmMetrics;

    // Shared by every instance, so that two equal tasks compare equal.
    private static readonly TaskMetric[] LmMetrics = [new("bits_per_token", false), new("accuracy", true)];

    /// <inheritdoc/>
    public string? OutputProblem(Shape output)
    {
        ArgumentNullException.ThrowIfNull(output);
        return output.Rank == 2 ? null : $"a language model must output (positions, vocabulary) logits per sample, not {output}; end it with a Dense(vocabulary) over (T, D) features";
    }

    /// <inheritdoc/>
    public string? DataProblem(IDataset data, Shape output)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(output);
        if (data is not ITargetDataset t || t.TargetShape.Rank != 1)
            return $"{data.Name} gives no (T) next-token targets; train a language model on a TextDataset (or another ITargetDataset of token ids)";
        if (t.TargetShape[0] != output[0])
            return $"{data.Name} has samples of {t.TargetShape[0]} tokens, but the model outputs {output[0]} positions; build the model for a context of {t.TargetShape[0]}";
        return data.Classes > output[1] ? $"{data.Name} has a vocabulary of {data.Classes}, but the model outputs {output[1]} logits per position; make its last layer Dense({data.Classes})" : null;
    }

    /// <inheritdoc/>
    public Tensor Loss(StepScope step, Tensor prediction, Tensor target, LossReduction reduction)
    {
        ArgumentNullException.ThrowIfNull(prediction);
        ArgumentNullException.ThrowIfNull(target);
        var (logits, labels, _, t) = Flat(prediction, target);
        if (reduction == LossReduction.Mean)
            return F.CrossEntropy(logits, labels, CrossEntropy with { Reduction = LossReduction.Mean });
        return F.Scale(F.CrossEntropy(logits, labels, CrossEntropy with { Reduction = LossReduction.Sum }), 1f / t);
    }

    /// <inheritdoc/>
    public IReadOnlyList<Tensor> Statistics(StepScope step, Tensor prediction, Tensor target)
    {
        ArgumentNullException.ThrowIfNull(step);
        ArgumentNullException.ThrowIfNull(prediction);
        ArgumentNullException.ThrowIfNull(target);
        var (logits, labels, n, t) = Flat(prediction, target);
        int rows = n * t, v = prediction.Shape[2];
        var host = step.Device.Kernels;
        var nll = F.CrossEntropy(logits, labels, CrossEntropy with { Epsilon = 0, Reduction = LossReduction.Sum });
        var hits = step.Scratch<float>(Math.Max(rows, 1)).SubView(0, rows);
        var scratch = step.Scratch<float>(Math.Max(1, Reductions.ScratchLength(host, rows)));
        var sums = step.Allocate(new Shape(2));
        IlgpuTrain.Kernels.Metrics.TopKHits(host, logits.View<float>(), labels.View<int>(), hits, rows, v, 1);
        Reductions.Sum(host, hits, sums.View<float>().SubView(1, 1), scratch);
        Transfer.Copy(host.Stream, nll.View<float>(), sums.View<float>().SubView(0, 1));

        // Per sample: every sample has T positions, so the totals over samples divided by their count are per-token means.
        return [F.Scale(sums, 1f / t)];
    }

    /// <inheritdoc/>
    public IReadOnlyList<double> Finish(IReadOnlyList<double> totals, long samples)
    {
        ArgumentNullException.ThrowIfNull(totals);
        double n = Math.Max(samples, 1);
        return [totals[0] / n / Math.Log(2), totals[1] / n];
    }

    private static (Tensor Logits, Tensor Labels, int N, int T) Flat(Tensor prediction, Tensor target)
    {
        if (prediction.Shape.Rank != 3)
            throw new ArgumentException($"LanguageModelTask: the prediction must be (N, T, V) logits, not {prediction.Shape}.", nameof(prediction));
        int n = prediction.Shape[0], t = prediction.Shape[1], v = prediction.Shape[2];
        if (target.Shape.Rank != 2 || target.Shape[0] != n || target.Shape[1] != t)
            throw new ArgumentException($"LanguageModelTask: the targets are {target.Shape} for a prediction of {prediction.Shape}; give (N, T) next-token ids.", nameof(target));
        return (F.Reshape(prediction, n * t, v), F.Indices(F.Reshape(target, n * t)), n, t);
    }
}
