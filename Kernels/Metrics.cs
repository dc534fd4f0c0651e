using ILGPU.Algorithms;
using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// Classification metrics over a batch of logits, on the device.
//
//   TopKHits  hit[n] = 1 when fewer than k classes have a logit strictly greater than the
//             target's, else 0        logits (N, C), targets (N), hit (N)
//             reads 4C + 4 B, writes 4 B per row
//
// k = 1 is accuracy. A tie with the target's logit counts as a hit (the target is among the
// maxima); PyTorch's argmax would pick the first maximum, so the two differ only on exact ties.
// A NaN logit for the target, or a target outside [0, C), is a miss. No backward: metrics are not
// differentiated. Summing hit (Reductions.Sum) gives the number of correct samples.
//
//   MultiLabelCounts  for each label j: counts[3j] = TP, counts[3j+1] = FP, counts[3j+2] = FN over
//             the N rows, where predicted = sigmoid(x[i,j]) > threshold[j] and true = t[i,j] >= 0.5
//             logits (N, L), targets (N, L), thresholds (L), counts (3L)
//             reads 8N + 4 B, writes 12 B per label
//   ExactMatches  match[i] = 1 when every label of row i is predicted right, else 0 (subset accuracy)
//             logits (N, L), targets (N, L), thresholds (L), match (N)
//             reads 12L B, writes 4 B per row
//
// The decision is torchmetrics' (preds.sigmoid() > threshold); a NaN logit predicts negative.

/// <summary>Top-k hits of a batch of logits: row body and checked launcher.</summary>
internal static class Metrics
{
    private static readonly ForEachDef<TopKHitsBody<ViewElements<float>, ViewElements<int>>> TopKHitsDef = new();
    private static readonly ForEachDef<MultiLabelCountsBody<ViewElements<float>>> MultiLabelCountsDef = new();
    private static readonly ForEachDef<ExactMatchesBody<ViewElements<float>>> ExactMatchesDef = new();

    /// <summary>hit[n] = 1 when the target of row n is among the k largest logits (ties count as hits), else 0.</summary>
    public static void TopKHits(KernelHost host, ArrayView<float> logits, ArrayView<int> targets, ArrayView<float> hit, int n, int c, int k)
    {
        ArgumentNullException.ThrowIfNull(host);
        const string op = nameof(Metrics) + "." + nameof(TopKHits);
        Check.Dimension(op, n, nameof(n));
        Check.Dimension(op, c, nameof(c));
        if (k < 1)
            throw new ArgumentOutOfRangeException(nameof(k), k, $"{op}: k must be at least 1, got {k}.");
        Check.Length(op, logits, nameof(logits), (long)n * c, $"(N, C) = ({n}, {c})");
        Check.Length(op, targets, nameof(targets), n, $"(N) = ({n})");
        Check.Length(op, hit, nameof(hit), n, $"(N) = ({n})");
        Check.Fits32(op, logits, nameof(logits));
        if (n == 0)
            return;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, n, new TopKHitsBody<PtrElements<float>, PtrElements<int>>(PtrElements.Of(logits), PtrElements.Of(targets), PtrElements.Of(hit), c, k), c);
        else
            TopKHitsDef.Launch(host, n, new(new(logits), new(targets), new(hit), c, k));
    }

    /// <summary>Per label j: counts[3j], counts[3j+1], counts[3j+2] = true positives, false positives, false negatives over the rows.</summary>
    /// <param name="host">Where to run.</param>
    /// <param name="logits">Logits (N, L).</param>
    /// <param name="targets">Targets (N, L): a label is true when its target is at least 0.5.</param>
    /// <param name="thresholds">Per-label thresholds on sigmoid(logit) (L): predicted when sigmoid(x) &gt; threshold.</param>
    /// <param name="counts">Output (3L), overwritten.</param>
    /// <param name="n">Rows N.</param>
    /// <param name="labels">Labels L.</param>
    public static void MultiLabelCounts(KernelHost host, ArrayView<float> logits, ArrayView<float> targets, ArrayView<float> thresholds, ArrayView<float> counts, int n, int labels)
    {
        const string op = nameof(Metrics) + "." + nameof(MultiLabelCounts);
        CheckMultiLabel(host, op, logits, targets, thresholds, n, labels);
        Check.Length(op, counts, nameof(counts), 3L * labels, $"(3L) = ({3L * labels})");
        if (labels == 0)
            return;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, labels, new MultiLabelCountsBody<PtrElements<float>>(PtrElements.Of(logits), PtrElements.Of(targets), PtrElements.Of(thresholds), PtrElements.Of(counts), n, labels), n);
        else
            MultiLabelCountsDef.Launch(host, labels, new(new(logits), new(targets), new(thresholds), new(counts), n, labels));
    }

    /// <summary>match[i] = 1 when every label of row i is predicted right (sigmoid(x) &gt; threshold exactly where target &gt;= 0.5), else 0.</summary>
    /// <param name="host">Where to run.</param>
    /// <param name="logits">Logits (N, L).</param>
    /// <param name="targets">Targets (N, L).</param>
    /// <param name="thresholds">Per-label thresholds (L).</param>
    /// <param name="match">Output (N), overwritten.</param>
    /// <param name="n">Rows N.</param>
    /// <param name="labels">Labels L.</param>
    public static void ExactMatches(KernelHost host, ArrayView<float> logits, ArrayView<float> targets, ArrayView<float> thresholds, ArrayView<float> match, int n, int labels)
    {
        const string op = nameof(Metrics) + "." + nameof(ExactMatches);
        CheckMultiLabel(host, op, logits, targets, thresholds, n, labels);
        Check.Length(op, match, nameof(match), n, $"(N) = ({n})");
        if (n == 0)
            return;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, n, new ExactMatchesBody<PtrElements<float>>(PtrElements.Of(logits), PtrElements.Of(targets), PtrElements.Of(thresholds), PtrElements.Of(match), labels), labels);
        else
            ExactMatchesDef.Launch(host, n, new(new(logits), new(targets), new(thresholds), new(match), labels));
    }

    private static void CheckMultiLabel(KernelHost host, string op, ArrayView<float> logits, ArrayView<float> targets, ArrayView<float> thresholds, int n, int labels)
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.Dimension(op, n, nameof(n));
        Check.Dimension(op, labels, nameof(labels));
        Check.Length(op, logits, nameof(logits), (long)n * labels, $"(N, L) = ({n}, {labels})");
        Check.Length(op, targets, nameof(targets), (long)n * labels, $"(N, L) = ({n}, {labels})");
        Check.Length(op, thresholds, nameof(thresholds), labels, $"(L) = ({labels})");
        Check.Fits32(op, logits, nameof(logits));
    }

    // sigmoid(x) > threshold, as torchmetrics decides; a NaN logit is a negative.
    private static bool Predicted(float x, float threshold) => 1f / (1f + XMath.Exp(-x)) > threshold;

    // Label j: walks its column, counting TP, FP and FN.
    internal readonly struct MultiLabelCountsBody<TF>(TF logits, TF targets, TF thresholds, TF counts, int n, int labels) : IElementBody
        where TF : struct, IElements<float>
    {
        public void Run(int j)
        {
            float tp = 0, fp = 0, fn = 0, threshold = thresholds[j];
            for (int i = 0; i < n; i++)
            {
                bool p = Predicted(logits[(i * labels) + j], threshold);
                bool t = targets[(i * labels) + j] >= 0.5f;
                if (p && t)
                    tp += 1f;
                else if (p)
                    fp += 1f;
                else if (t)
                    fn += 1f;
            }

            counts[3 * j] = tp;
            counts[(3 * j) + 1] = fp;
            counts[(3 * j) + 2] = fn;
        }
    }

    // Row i: 1 when each of its labels is predicted as its target says.
    internal readonly struct ExactMatchesBody<TF>(TF logits, TF targets, TF thresholds, TF match, int labels) : IElementBody
        where TF : struct, IElements<float>
    {
        public void Run(int i)
        {
            float all = 1f;
            for (int j = 0; j < labels; j++)
            {
                if (Predicted(logits[(i * labels) + j], thresholds[j]) != (targets[(i * labels) + j] >= 0.5f))
                    all = 0f;
            }

            match[i] = all;
        }
    }

    // Row i: 1 when its target t is a class whose logit is not NaN and fewer than k logits are
    // greater (ties count as hits), else 0.
    internal readonly struct TopKHitsBody<TF, TI>(TF logits, TI targets, TF hit, int c, int k) : IElementBody
        where TF : struct, IElements<float>
        where TI : struct, IElements<int>
    {
        public void Run(int i) => hit[i] = Hit(i * c, targets[i]) ? 1f : 0f;

        private bool Hit(int o, int t)
        {
            if (t < 0 || t >= c)
                return false;
            float v = logits[o + t];
            if (XMath.IsNaN(v))
                return false;
            // The compare is a value, not a branch: ILGPU 1.5.3's OpenCL backend drops the unordered
            // flag of a float branch (C#'s "if (a > v)" is "ble.un", skip when a <= v or unordered),
            // which counted every NaN logit as greater there.
            int greater = 0;
            for (int j = 0; j < c; j++)
            {
                bool above = logits[o + j] > v;
                greater += above ? 1 : 0;
            }

            return greater < k;
        }
    }
}
