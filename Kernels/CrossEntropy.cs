using IlgpuTrain.Kernels.Runtime;
using ILGPU.Algorithms;

namespace IlgpuTrain.Kernels;

// Fused cross-entropy on logits with integer targets and label smoothing (PyTorch's
// F.cross_entropy(logits, target, reduction, ignore_index, label_smoothing)).
//
//   logits x (N, C) row-major, targets y (N) int, losses (N), loss (1), dLoss (1, or N for None)
//   log p_k  = x_k - m - lse,  m = max_j x_j,  lse = log sum_j exp(x_j - m)
//   t_k      = smoothed one-hot of y:  Uniform (PyTorch/Optax default)  t = (1 - eps) onehot(y) + eps/C
//                                      OffTarget  t_y = 1 - eps, t_k = eps/(C-1) for k != y
//   loss_i   = -sum_k t_k log p_k = (t_y - t_off) (lse + m - x_y) + t_off (C lse + sum_k (m - x_k))
//              (every bracket is a sum of non-negative terms: large logits never cancel)
//   Mean loss = sum_i loss_i / #{i : y_i != ignore_index} (all ignored: 0/0 = NaN, as PyTorch);
//   Sum loss = sum_i loss_i; None: only the per-row losses
//   dlogits_ik = (softmax(x_i)_k - t_ik) g_i,  g_i = dLoss/count (Mean), dLoss (Sum), dLoss_i (None)
//
// ignore_index (default -100, checked before the class range, as PyTorch): the row's loss and
// gradient row are 0 and Mean does not count it. A target neither ignore_index nor in [0, C) cannot
// throw in a kernel: its loss (and gradient row) is NaN, so NaN guards and apply-if-finite catch it,
// and Forward counts such rows into an optional int counter; host code can call ValidateTargets.
//
// Class-probability targets t (N, C) (PyTorch's cross_entropy with a float target of the logits'
// shape, e.g. MixUp/CutMix soft labels), no ignore_index: smoothing t' = keep t + off (Uniform:
// keep 1 - eps, off eps/C; OffTarget: keep 1 - eps - eps/(C-1), off eps/(C-1), mapping one-hot rows
// to the rows above); loss_i = sum_k t'_ik (lse + m - x_k); Mean divides by N (N = 0: NaN);
// dlogits_ik = (softmax(x_i)_k - t'_ik) g_i. Forward reads 8 B per element, backward reads 8 B and
// writes 4 B.
//
// Bytes per logit (rows re-read from cache): forward reads 4 B (+4 B per row of target) and writes
// 4 B per row; backward reads 4 B, writes 4 B; smoothed targets write 4 B. Backward OVERWRITES
// dlogits (which may alias the logits); it recomputes the softmax from the logits, so the forward
// writes N floats, not N*C. One thread per row (Softmax.cs says what a vocabulary-sized C would
// need). The Mean/Sum finish is one thread summing the N row losses in index order with Kahan
// compensation: deterministic, no float atomics, O(N) serial work that is negligible for classifier
// batches (a token-level loss over ~1e6 rows would use the fixed-order two-pass tree reduction).

/// <summary>
/// One row of smoothed targets as kernels see it: weight <see cref="On"/> for the target class,
/// <see cref="Off"/> for every other class, and the target value that marks an ignored row.
/// </summary>
/// <param name="Classes">C.</param>
/// <param name="On">Weight of the target class: 1 - eps + eps/C (Uniform) or 1 - eps (OffTarget).</param>
/// <param name="Off">Weight of every other class: eps/C (Uniform) or eps/(C-1) (OffTarget; 0 when C = 1).</param>
/// <param name="IgnoreIndex">Target value of ignored rows.</param>
public readonly record struct SmoothedOneHot(int Classes, float On, float Off, int IgnoreIndex)
{
    /// <summary>Validates eps and the convention, and computes the two weights in float64.</summary>
    /// <param name="op">The operation, for messages.</param>
    /// <param name="classes">C, at least 1.</param>
    /// <param name="eps">Label smoothing in [0, 1].</param>
    /// <param name="smoothing">The convention.</param>
    /// <param name="ignoreIndex">Target value of ignored rows.</param>
    /// <returns>The weights.</returns>
    /// <exception cref="ArgumentOutOfRangeException">eps is outside [0, 1] (or NaN), or C is below 1.</exception>
    /// <exception cref="ArgumentException">OffTarget smoothing with C = 1 and eps &gt; 0: there is no other class to give eps to.</exception>
    public static SmoothedOneHot Create(string op, int classes, float eps, LabelSmoothing smoothing, int ignoreIndex)
    {
        Check.Dimension(op, classes, "c", allowZero: false);
        if (!(eps >= 0f && eps <= 1f))
            throw new ArgumentOutOfRangeException(nameof(eps), eps, $"{op}: label smoothing eps must be in [0, 1], got {eps}.");
        switch (smoothing)
        {
            case LabelSmoothing.Uniform:
                return new SmoothedOneHot(classes, (float)(1.0 - eps + ((double)eps / classes)), (float)((double)eps / classes), ignoreIndex);
            case LabelSmoothing.OffTarget:
                if (classes == 1 && eps > 0f)
                    throw new ArgumentException($"{op}: OffTarget label smoothing gives eps / (C - 1) to each of the other classes, but C = 1 leaves none; use eps = 0 or LabelSmoothing.Uniform (got eps = {eps}).", nameof(smoothing));
                return new SmoothedOneHot(classes, 1f - eps, classes == 1 ? 0f : (float)((double)eps / (classes - 1)), ignoreIndex);
            default:
                throw new ArgumentOutOfRangeException(nameof(smoothing), smoothing, $"{op}: unknown label smoothing convention {smoothing}.");
        }
    }
}

/// <summary>
/// Label smoothing of class-probability targets as kernels see it: t' = <see cref="Keep"/> t +
/// <see cref="Off"/>, which for a one-hot t gives <see cref="SmoothedOneHot"/>'s rows.
/// </summary>
/// <param name="Classes">C.</param>
/// <param name="Keep">1 - eps (Uniform, PyTorch) or 1 - eps - eps/(C-1) (OffTarget).</param>
/// <param name="Off">eps/C (Uniform) or eps/(C-1) (OffTarget; 0 when C = 1).</param>
public readonly record struct SmoothedProbabilities(int Classes, float Keep, float Off)
{
    /// <summary>Validates eps and the convention (as <see cref="SmoothedOneHot.Create"/>) and computes the two weights in float64.</summary>
    /// <param name="op">The operation, for messages.</param>
    /// <param name="classes">C, at least 1.</param>
    /// <param name="eps">Label smoothing in [0, 1].</param>
    /// <param name="smoothing">The convention.</param>
    /// <returns>The weights.</returns>
    public static SmoothedProbabilities Create(string op, int classes, float eps, LabelSmoothing smoothing)
    {
        var t = SmoothedOneHot.Create(op, classes, eps, smoothing, CrossEntropyOptions.DefaultIgnoreIndex);
        double keep = smoothing == LabelSmoothing.Uniform || classes == 1 ? 1.0 - eps : 1.0 - eps - ((double)eps / (classes - 1));
        return new SmoothedProbabilities(classes, (float)keep, t.Off);
    }
}

/// <summary>Fused softmax cross-entropy with label smoothing and ignore_index: kernels and launchers.</summary>
internal static class CrossEntropy
{
    // ---------------------------------------------------------------- host-side checks

    /// <summary>Throws if a target is neither <paramref name="ignoreIndex"/> nor a class in [0, C).</summary>
    /// <exception cref="ArgumentOutOfRangeException">Names the first bad index and its value.</exception>
    public static void ValidateTargets(ReadOnlySpan<int> targets, int classes, int ignoreIndex = CrossEntropyOptions.DefaultIgnoreIndex)
    {
        for (int i = 0; i < targets.Length; i++)
        {
            int y = targets[i];
            if (y != ignoreIndex && (y < 0 || y >= classes))
                throw new ArgumentOutOfRangeException(nameof(targets), y, $"CrossEntropy: targets[{i}] = {y} is neither a class in [0, {classes}) nor ignore_index {ignoreIndex}.");
        }
    }

    // ---------------------------------------------------------------- the row bodies, once
    // Run by the row drivers (Runtime/RowDrivers.cs). The serial finishes (Reduce, MeanScale) are
    // bodies of one index: thread 0 does all the work, the same for every launch shape.

    private static readonly ForEachDef<ForwardBody<ViewElements<float>, ViewElements<int>>> ForwardDef = new();
    private static readonly ForEachDef<ReduceBody<ViewElements<float>, ViewElements<int>>> ReduceDef = new();
    private static readonly ForEachDef<MeanScaleBody<ViewElements<float>, ViewElements<int>>> MeanScaleDef = new();
    private static readonly ForEachDef<BackwardBody<ViewElements<float>, ViewElements<int>>> BackwardDef = new();
    private static readonly ForEachDef<SmoothedTargetsBody<ViewElements<float>, ViewElements<int>>> SmoothedTargetsDef = new();

    // losses[i] = the smoothed loss of row i; 0 for an ignored row, NaN for an out-of-range target
    // (counted, atomically, into errors[0] when countErrors is 1). For a target y in [0, C):
    // (on - off) nll_y + off sum_k nll_k, nll_k = lse - (x_k - m), with the row max m subtracted
    // before exp for stability; sum_k nll_k = C lse + sum_k (m - x_k).
    internal readonly struct ForwardBody<TF, TI>(TF logits, TI targets, TF losses, TI errors, int countErrors, SmoothedOneHot t) : IElementBody
        where TF : struct, IElements<float>
        where TI : struct, IElements<int>
    {
        public void Run(int i)
        {
            int c = t.Classes;
            int y = targets[i];
            if (y == t.IgnoreIndex)
            {
                losses[i] = 0f;
                return;
            }

            if (y < 0 || y >= c)
            {
                losses[i] = float.NaN;
                if (countErrors != 0)
                    Atomic.Add(ref errors[0], 1);
                return;
            }

            int o = i * c;
            float m = SoftmaxRow.Max(logits, o, c);
            float s = 0f;
            float gap = 0f;
            for (int k = 0; k < c; k++)
            {
                float d = m - logits[o + k];
                s += XMath.Exp(-d);
                gap += d;
            }

            float lse = XMath.Log(s);
            float nll = lse + (m - logits[o + y]);
            float allNll = (c * lse) + gap;
            losses[i] = ((t.On - t.Off) * nll) + (t.Off * allNll);
        }
    }

    // loss[0] = the sum of the N losses in index order, Kahan-compensated, divided when mean is 1 by
    // the non-ignored rows (kept 1; class-index targets) or by N (kept 0: probability targets, no
    // targets read). Mean of nothing is 0/0 = NaN, as PyTorch. Index 0 only.
    internal readonly struct ReduceBody<TF, TI>(TF losses, TI targets, TF loss, int n, int ignoreIndex, int mean, int kept) : IElementBody
        where TF : struct, IElements<float>
        where TI : struct, IElements<int>
    {
        public void Run(int i)
        {
            float sum = KahanSum(losses, n);
            loss[0] = mean != 0 ? sum / (kept != 0 ? Kept(targets, n, ignoreIndex) : n) : sum;
        }
    }

    // scale[0] = dLoss[0] / (number of non-ignored rows), the Mean gradient of every row. Index 0 only.
    internal readonly struct MeanScaleBody<TF, TI>(TI targets, TF dLoss, TF scale, int n, int ignoreIndex) : IElementBody
        where TF : struct, IElements<float>
        where TI : struct, IElements<int>
    {
        public void Run(int i) => scale[0] = dLoss[0] / Kept(targets, n, ignoreIndex);
    }

    // dlogits[i, k] = (softmax(x_i)_k - t[i, k]) * g[i * gStride] (g: one shared scale, gStride 0,
    // or one per row, gStride 1); 0 for an ignored row, NaN for an out-of-range target. dlogits may
    // alias logits (each x_k is read before dx_k is written).
    internal readonly struct BackwardBody<TF, TI>(TF logits, TI targets, TF g, int gStride, TF dlogits, SmoothedOneHot t) : IElementBody
        where TF : struct, IElements<float>
        where TI : struct, IElements<int>
    {
        public void Run(int i)
        {
            int c = t.Classes;
            int o = i * c;
            int y = targets[i];
            if (y == t.IgnoreIndex || y < 0 || y >= c)
            {
                float fill = y == t.IgnoreIndex ? 0f : float.NaN;
                for (int k = 0; k < c; k++)
                    dlogits[o + k] = fill;
                return;
            }

            float scale = g[i * gStride];
            float m = SoftmaxRow.Max(logits, o, c);
            float inv = 1f / SoftmaxRow.SumExp(logits, o, c, m);
            for (int k = 0; k < c; k++)
            {
                float p = XMath.Exp(logits[o + k] - m) * inv;
                dlogits[o + k] = (p - (k == y ? t.On : t.Off)) * scale;
            }
        }
    }

    // Row i of the smoothed targets: zeros for an ignored row, NaN for an out-of-range target.
    internal readonly struct SmoothedTargetsBody<TF, TI>(TI targets, TF smoothed, SmoothedOneHot t) : IElementBody
        where TF : struct, IElements<float>
        where TI : struct, IElements<int>
    {
        public void Run(int i)
        {
            int c = t.Classes;
            int o = i * c;
            int y = targets[i];
            bool ignored = y == t.IgnoreIndex;
            bool valid = y >= 0 && y < c;
            for (int k = 0; k < c; k++)
                smoothed[o + k] = ignored ? 0f : !valid ? float.NaN : k == y ? t.On : t.Off;
        }
    }

    // The sum of v[0..n) in index order, Kahan-compensated.
    private static float KahanSum<TF>(TF v, int n)
        where TF : struct, IElements<float>
    {
        float sum = 0f;
        float compensation = 0f;
        for (int k = 0; k < n; k++)
        {
            float d = v[k] - compensation;
            float next = sum + d;
            compensation = (next - sum) - d;
            sum = next;
        }

        return sum;
    }

    // ---------------------------------------------------------------- class-probability targets (bodies)

    private static readonly ForEachDef<SoftForwardBody<ViewElements<float>>> SoftForwardDef = new();
    private static readonly ForEachDef<SoftBackwardBody<ViewElements<float>>> SoftBackwardDef = new();

    // losses[i] = sum_k (keep t_ik + off) (lse + m - x_ik).
    internal readonly struct SoftForwardBody<TF>(TF logits, TF targets, TF losses, SmoothedProbabilities t) : IElementBody
        where TF : struct, IElements<float>
    {
        public void Run(int i)
        {
            int c = t.Classes;
            int o = i * c;
            float m = SoftmaxRow.Max(logits, o, c);
            float lse = XMath.Log(SoftmaxRow.SumExp(logits, o, c, m));
            float loss = 0f;
            for (int k = 0; k < c; k++)
                loss += ((t.Keep * targets[o + k]) + t.Off) * (lse + (m - logits[o + k]));
            losses[i] = loss;
        }
    }

    // dlogits[i, k] = (softmax(x_i)_k - (keep t_ik + off)) * g[i * gStride] / divisor; may alias logits.
    internal readonly struct SoftBackwardBody<TF>(TF logits, TF targets, TF g, int gStride, float divisor, TF dlogits, SmoothedProbabilities t) : IElementBody
        where TF : struct, IElements<float>
    {
        public void Run(int i)
        {
            int c = t.Classes;
            int o = i * c;
            float scale = g[i * gStride] / divisor;
            float m = SoftmaxRow.Max(logits, o, c);
            float inv = 1f / SoftmaxRow.SumExp(logits, o, c, m);
            for (int k = 0; k < c; k++)
            {
                float p = XMath.Exp(logits[o + k] - m) * inv;
                dlogits[o + k] = (p - ((t.Keep * targets[o + k]) + t.Off)) * scale;
            }
        }
    }

    // The number of rows whose target is not ignore_index.
    private static int Kept<TI>(TI targets, int n, int ignoreIndex)
        where TI : struct, IElements<int>
    {
        int kept = 0;
        for (int i = 0; i < n; i++)
        {
            if (targets[i] != ignoreIndex)
                kept++;
        }

        return kept;
    }

    // ---------------------------------------------------------------- launchers

    /// <summary>Scratch floats <see cref="Backward"/> needs: 1 for Mean (the shared row scale dLoss / count), else 0.</summary>
    public static int BackwardScratchLength(LossReduction reduction) => reduction == LossReduction.Mean ? 1 : 0;

    /// <summary>
    /// Cross-entropy forward of logits (N, C) and targets (N): per-row losses (N; 0 for ignored rows,
    /// NaN for out-of-range targets) and, for Mean and Sum, loss[0] (unused, may be empty, for None).
    /// options null: <see cref="CrossEntropyOptions.Default"/>. errors: empty, or a 1-element counter
    /// to which the number of out-of-range targets is added (not reset).
    /// </summary>
    public static void Forward(KernelHost host, ArrayView<float> logits, ArrayView<int> targets, ArrayView<float> losses, ArrayView<float> loss, int n, int c, CrossEntropyOptions? options = null, ArrayView<int> errors = default)
    {
        const string op = nameof(CrossEntropy) + "." + nameof(Forward);
        options ??= CrossEntropyOptions.Default;
        var t = CheckRows(host, op, logits, targets, nameof(logits), n, c, options);
        Check.Length(op, losses, nameof(losses), n, $"N = {n}");
        if (options.Reduction != LossReduction.None)
            Check.Length(op, loss, nameof(loss), 1, $"reduction {options.Reduction}");
        if (errors.Length > 1)
            throw new ArgumentException($"{op}: errors has {errors.Length} elements but the error counter is empty (not counted) or 1 element.", nameof(errors));

        int mean = options.Reduction == LossReduction.Mean ? 1 : 0;
        if (host.RunsManaged)
        {
            var (pl, pt) = (PtrElements.Of(losses), PtrElements.Of(targets));
            if (n > 0)
                CpuLoops.ForEach(host, n, new ForwardBody<PtrElements<float>, PtrElements<int>>(PtrElements.Of(logits), pt, pl, PtrElements.Of(errors), errors.IntLength, t), c);
            if (options.Reduction != LossReduction.None)
                CpuLoops.ForEach(host, 1, new ReduceBody<PtrElements<float>, PtrElements<int>>(pl, pt, PtrElements.Of(loss), n, options.IgnoreIndex, mean, 1));
            return;
        }

        if (n > 0)
            ForwardDef.Launch(host, n, new(new(logits), new(targets), new(losses), new(errors), errors.IntLength, t));
        // The scalar is written even for N = 0: Sum of nothing is 0 and Mean of nothing is NaN, as PyTorch.
        if (options.Reduction != LossReduction.None)
            ReduceDef.Launch(host, 1, new(new(losses), new(targets), new(loss), n, options.IgnoreIndex, mean, 1));
    }

    /// <summary>
    /// Cross-entropy backward: dlogits (N, C) = (softmax(logits) - smoothed targets) * g, g = dLoss[0] /
    /// count (Mean), dLoss[0] (Sum) or dLoss[i] (None), read on the device. Ignored rows get 0. dlogits
    /// may alias logits. scratch: at least <see cref="BackwardScratchLength"/> floats.
    /// </summary>
    public static void Backward(KernelHost host, ArrayView<float> logits, ArrayView<int> targets, ArrayView<float> dLoss, ArrayView<float> dlogits, int n, int c, CrossEntropyOptions? options = null, ArrayView<float> scratch = default)
    {
        const string op = nameof(CrossEntropy) + "." + nameof(Backward);
        options ??= CrossEntropyOptions.Default;
        var t = CheckRows(host, op, logits, targets, nameof(logits), n, c, options);
        Check.Length(op, dlogits, nameof(dlogits), (long)n * c, $"(N, C) = ({n}, {c})");
        if (options.Reduction == LossReduction.None)
            Check.Length(op, dLoss, nameof(dLoss), n, $"reduction None with N = {n}");
        else
            Check.Length(op, dLoss, nameof(dLoss), 1, $"reduction {options.Reduction}");
        Check.AtLeast(op, scratch, nameof(scratch), BackwardScratchLength(options.Reduction), $"reduction {options.Reduction} (BackwardScratchLength)");
        if (n == 0)
            return;
        bool mean = options.Reduction == LossReduction.Mean;
        var g = mean ? scratch.SubView(0, 1) : dLoss;
        int gStride = options.Reduction == LossReduction.None ? 1 : 0;
        if (host.RunsManaged)
        {
            var pt = PtrElements.Of(targets);
            if (mean)
                CpuLoops.ForEach(host, 1, new MeanScaleBody<PtrElements<float>, PtrElements<int>>(pt, PtrElements.Of(dLoss), PtrElements.Of(g), n, options.IgnoreIndex));
            CpuLoops.ForEach(host, n, new BackwardBody<PtrElements<float>, PtrElements<int>>(PtrElements.Of(logits), pt, PtrElements.Of(g), gStride, PtrElements.Of(dlogits), t), c);
            return;
        }

        if (mean)
            MeanScaleDef.Launch(host, 1, new(new(targets), new(dLoss), new(g), n, options.IgnoreIndex));
        BackwardDef.Launch(host, n, new(new(logits), new(targets), new(g), gStride, new(dlogits), t));
    }

    /// <summary>
    /// Writes the smoothed one-hot targets (N, C), eps in [0, 1]: Uniform t = (1 - eps) onehot + eps / C,
    /// or OffTarget 1 - eps on the true class and eps / (C - 1) elsewhere. Ignored rows are zero and
    /// rows with an out-of-range target NaN. For soft-target losses and tests.
    /// </summary>
    public static void SmoothedTargets(KernelHost host, ArrayView<int> targets, ArrayView<float> smoothed, int n, int c, float eps, LabelSmoothing smoothing = LabelSmoothing.Uniform, int ignoreIndex = CrossEntropyOptions.DefaultIgnoreIndex)
    {
        const string op = nameof(CrossEntropy) + "." + nameof(SmoothedTargets);
        ArgumentNullException.ThrowIfNull(host);
        Check.Dimension(op, n, nameof(n));
        var t = SmoothedOneHot.Create(op, c, eps, smoothing, ignoreIndex);
        Check.Length(op, targets, nameof(targets), n, $"N = {n}");
        Check.Length(op, smoothed, nameof(smoothed), (long)n * c, $"(N, C) = ({n}, {c})");
        Check.Fits32(op, smoothed, nameof(smoothed));
        if (n == 0)
            return;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, n, new SmoothedTargetsBody<PtrElements<float>, PtrElements<int>>(PtrElements.Of(targets), PtrElements.Of(smoothed), t), c);
        else
            SmoothedTargetsDef.Launch(host, n, new(new(targets), new(smoothed), t));
    }

    /// <summary>
    /// Cross-entropy forward against class probabilities (N, C) (PyTorch's float-target
    /// cross_entropy; see the file header): per-row losses and, for Mean and Sum, the reduced loss.
    /// </summary>
    /// <param name="host">Where to run.</param>
    /// <param name="logits">Logits (N, C), row-major.</param>
    /// <param name="targets">Class probabilities (N, C), rows normally summing to 1.</param>
    /// <param name="losses">Per-row losses (N), overwritten.</param>
    /// <param name="loss">The reduced loss (1) for Mean and Sum; unused (may be empty) for None.</param>
    /// <param name="n">Rows N.</param>
    /// <param name="c">Classes C, at least 1.</param>
    /// <param name="options">Reduction and label smoothing; ignore_index must be the default (PyTorch has none for probability targets).</param>
    public static void ForwardSoft(KernelHost host, ArrayView<float> logits, ArrayView<float> targets, ArrayView<float> losses, ArrayView<float> loss, int n, int c, CrossEntropyOptions? options = null)
    {
        const string op = nameof(CrossEntropy) + "." + nameof(ForwardSoft);
        options ??= CrossEntropyOptions.Default;
        var t = CheckSoftRows(host, op, logits, targets, n, c, options);
        Check.Length(op, losses, nameof(losses), n, $"N = {n}");
        if (options.Reduction != LossReduction.None)
            Check.Length(op, loss, nameof(loss), 1, $"reduction {options.Reduction}");
        int mean = options.Reduction == LossReduction.Mean ? 1 : 0;
        if (host.RunsManaged)
        {
            var pl = PtrElements.Of(losses);
            if (n > 0)
                CpuLoops.ForEach(host, n, new SoftForwardBody<PtrElements<float>>(PtrElements.Of(logits), PtrElements.Of(targets), pl, t), c);
            if (options.Reduction != LossReduction.None)
                CpuLoops.ForEach(host, 1, new ReduceBody<PtrElements<float>, PtrElements<int>>(pl, default, PtrElements.Of(loss), n, 0, mean, 0));
            return;
        }

        if (n > 0)
            SoftForwardDef.Launch(host, n, new(new(logits), new(targets), new(losses), t));
        if (options.Reduction != LossReduction.None)
            ReduceDef.Launch(host, 1, new(new(losses), default, new(loss), n, 0, mean, 0));
    }

    /// <summary>
    /// Cross-entropy backward against class probabilities: dlogits = (softmax(logits) - t') * g,
    /// g = dLoss[0] / N (Mean), dLoss[0] (Sum) or dLoss[i] (None). Overwrites dlogits.
    /// </summary>
    /// <param name="host">Where to run.</param>
    /// <param name="logits">Logits (N, C), the forward input.</param>
    /// <param name="targets">Class probabilities (N, C).</param>
    /// <param name="dLoss">Upstream gradient: 1 element for Mean and Sum, N for None.</param>
    /// <param name="dlogits">Gradient (N, C), overwritten; may alias logits.</param>
    /// <param name="n">Rows N.</param>
    /// <param name="c">Classes C, at least 1.</param>
    /// <param name="options">Reduction and label smoothing, as in <see cref="ForwardSoft"/>.</param>
    public static void BackwardSoft(KernelHost host, ArrayView<float> logits, ArrayView<float> targets, ArrayView<float> dLoss, ArrayView<float> dlogits, int n, int c, CrossEntropyOptions? options = null)
    {
        const string op = nameof(CrossEntropy) + "." + nameof(BackwardSoft);
        options ??= CrossEntropyOptions.Default;
        var t = CheckSoftRows(host, op, logits, targets, n, c, options);
        Check.Length(op, dlogits, nameof(dlogits), (long)n * c, $"(N, C) = ({n}, {c})");
        bool none = options.Reduction == LossReduction.None;
        Check.Length(op, dLoss, nameof(dLoss), none ? n : 1, none ? $"reduction None with N = {n}" : $"reduction {options.Reduction}");
        if (n == 0)
            return;
        float divisor = options.Reduction == LossReduction.Mean ? n : 1f;
        int gStride = none ? 1 : 0;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, n, new SoftBackwardBody<PtrElements<float>>(PtrElements.Of(logits), PtrElements.Of(targets), PtrElements.Of(dLoss), gStride, divisor, PtrElements.Of(dlogits), t), c);
        else
            SoftBackwardDef.Launch(host, n, new(new(logits), new(targets), new(dLoss), gStride, divisor, new(dlogits), t));
    }

    private static SmoothedProbabilities CheckSoftRows(KernelHost host, string op, ArrayView<float> logits, ArrayView<float> targets, int n, int c, CrossEntropyOptions options)
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.Dimension(op, n, nameof(n));
        if (options.IgnoreIndex != CrossEntropyOptions.DefaultIgnoreIndex)
            throw new ArgumentException($"{op}: ignore_index {options.IgnoreIndex} applies to class-index targets only (PyTorch refuses it with probability targets); leave it at {CrossEntropyOptions.DefaultIgnoreIndex}.", nameof(options));
        var t = SmoothedProbabilities.Create(op, c, options.Epsilon, options.Smoothing);
        Check.Length(op, logits, nameof(logits), (long)n * c, $"(N, C) = ({n}, {c})");
        Check.Fits32(op, logits, nameof(logits));
        Check.Length(op, targets, nameof(targets), (long)n * c, $"(N, C) = ({n}, {c}) class probabilities");
        return t;
    }

    private static SmoothedOneHot CheckRows(KernelHost host, string op, ArrayView<float> logits, ArrayView<int> targets, string logitsName, int n, int c, CrossEntropyOptions options)
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.Dimension(op, n, nameof(n));
        var t = SmoothedOneHot.Create(op, c, options.Epsilon, options.Smoothing, options.IgnoreIndex);
        Check.Length(op, logits, logitsName, (long)n * c, $"(N, C) = ({n}, {c})");
        Check.Fits32(op, logits, logitsName);
        Check.Length(op, targets, nameof(targets), n, $"N = {n}");
        return t;
    }
}
