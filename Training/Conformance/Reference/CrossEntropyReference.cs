namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>CrossEntropy</c> kernels: plain loops, slow and obviously right.</summary>
internal static class CrossEntropyReference
{
    /// <summary>
    /// Reference: t[i, k] = (1 - eps) [k == y_i] + eps / C (Uniform) or 1 - eps for k == y_i and
    /// eps / (C - 1) otherwise (OffTarget). Ignored rows are all zero; rows with an out-of-range
    /// target are all NaN.
    /// </summary>
    /// <param name="targets">Class indices (N).</param>
    /// <param name="t">Smoothed targets (N, C), overwritten.</param>
    /// <param name="n">Rows N.</param>
    /// <param name="c">Classes C.</param>
    /// <param name="eps">Label smoothing in [0, 1].</param>
    /// <param name="smoothing">The convention.</param>
    /// <param name="ignoreIndex">Target value of ignored rows.</param>
    public static void SmoothedTargetsReference(ReadOnlySpan<int> targets, Span<float> t, int n, int c, float eps, LabelSmoothing smoothing = LabelSmoothing.Uniform, int ignoreIndex = CrossEntropyOptions.DefaultIgnoreIndex)
    {
        _ = SmoothedOneHot.Create(nameof(SmoothedTargetsReference), c, eps, smoothing, ignoreIndex);
        var row = new double[c];
        for (int i = 0; i < n; i++)
        {
            TargetRowReference(targets[i], row, eps, smoothing, ignoreIndex);
            for (int k = 0; k < c; k++)
                t[(i * c) + k] = (float)row[k];
        }
    }

    /// <summary>Reference: loss_i = -sum_k t[i, k] log softmax(x_i)_k in float64; 0 for ignored rows, NaN for out-of-range targets.</summary>
    /// <param name="logits">Logits (N, C).</param>
    /// <param name="targets">Class indices (N).</param>
    /// <param name="losses">Per-row losses (N), overwritten.</param>
    /// <param name="n">Rows N.</param>
    /// <param name="c">Classes C.</param>
    /// <param name="options">Smoothing and ignore_index (the reduction is not used here).</param>
    public static void ForwardReference(ReadOnlySpan<float> logits, ReadOnlySpan<int> targets, Span<float> losses, int n, int c, CrossEntropyOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _ = SmoothedOneHot.Create(nameof(ForwardReference), c, options.Epsilon, options.Smoothing, options.IgnoreIndex);
        var t = new double[c];
        var logp = new double[c];
        for (int i = 0; i < n; i++)
        {
            TargetRowReference(targets[i], t, options.Epsilon, options.Smoothing, options.IgnoreIndex);
            LogSoftmaxRowReference(logits.Slice(i * c, c), logp);
            double loss = 0;
            for (int k = 0; k < c; k++)
                loss -= t[k] == 0 ? 0 : t[k] * logp[k];
            losses[i] = (float)loss;
        }
    }

    /// <summary>Reference: the Mean or Sum of per-row losses, accumulated in float64.</summary>
    /// <param name="losses">Per-row losses (N).</param>
    /// <param name="targets">Class indices (N), to count the non-ignored rows for Mean.</param>
    /// <param name="reduction">Mean or Sum.</param>
    /// <param name="ignoreIndex">Target value of ignored rows.</param>
    /// <returns>The reduced loss; NaN for Mean when every row is ignored (or N = 0).</returns>
    public static float ReduceReference(ReadOnlySpan<float> losses, ReadOnlySpan<int> targets, LossReduction reduction, int ignoreIndex = CrossEntropyOptions.DefaultIgnoreIndex)
    {
        if (reduction == LossReduction.None)
            throw new ArgumentException("ReduceReference: reduction None has no scalar loss.", nameof(reduction));
        double sum = 0;
        int kept = 0;
        for (int i = 0; i < losses.Length; i++)
        {
            sum += losses[i];
            if (targets[i] != ignoreIndex)
                kept++;
        }
        return reduction == LossReduction.Sum ? (float)sum : (float)(sum / kept);
    }

    /// <summary>
    /// Reference: dlogits[i, k] = (softmax(x_i)_k - t[i, k]) * g_i in float64, with g_i = dLoss[0] / count (Mean),
    /// dLoss[0] (Sum) or dLoss[i] (None); 0 for ignored rows, NaN for out-of-range targets.
    /// </summary>
    /// <param name="logits">Logits (N, C).</param>
    /// <param name="targets">Class indices (N).</param>
    /// <param name="dLoss">Upstream gradient: 1 element, or N for None.</param>
    /// <param name="dlogits">Gradient (N, C), overwritten.</param>
    /// <param name="n">Rows N.</param>
    /// <param name="c">Classes C.</param>
    /// <param name="options">Reduction, smoothing and ignore_index.</param>
    public static void BackwardReference(ReadOnlySpan<float> logits, ReadOnlySpan<int> targets, ReadOnlySpan<float> dLoss, Span<float> dlogits, int n, int c, CrossEntropyOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _ = SmoothedOneHot.Create(nameof(BackwardReference), c, options.Epsilon, options.Smoothing, options.IgnoreIndex);
        int kept = 0;
        for (int i = 0; i < n; i++)
        {
            if (targets[i] != options.IgnoreIndex)
                kept++;
        }

        var t = new double[c];
        var logp = new double[c];
        for (int i = 0; i < n; i++)
        {
            double g = options.Reduction switch
            {
                LossReduction.Mean => (double)dLoss[0] / kept,
                LossReduction.Sum => dLoss[0],
                _ => dLoss[i],
            };
            TargetRowReference(targets[i], t, options.Epsilon, options.Smoothing, options.IgnoreIndex);
            LogSoftmaxRowReference(logits.Slice(i * c, c), logp);
            bool ignored = targets[i] == options.IgnoreIndex;
            for (int k = 0; k < c; k++)
                dlogits[(i * c) + k] = ignored ? 0f : (float)((Math.Exp(logp[k]) - t[k]) * g);
        }
    }

    // The smoothed target row of one target, straight from the definitions in SEMANTICS.md.
    private static void TargetRowReference(int y, Span<double> row, float eps, LabelSmoothing smoothing, int ignoreIndex)
    {
        int c = row.Length;
        if (y == ignoreIndex)
        {
            row.Clear();
            return;
        }

        if (y < 0 || y >= c)
        {
            row.Fill(double.NaN);
            return;
        }

        for (int k = 0; k < c; k++)
        {
            double onehot = k == y ? 1 : 0;
            row[k] = smoothing == LabelSmoothing.Uniform
                ? ((1 - (double)eps) * onehot) + ((double)eps / c)
                : k == y ? 1 - (double)eps : (double)eps / (c - 1);
        }
    }

    /// <summary>
    /// Reference of cross-entropy against class probabilities, in float64: t' = keep t + off
    /// (Uniform: keep 1 - eps, off eps / C; OffTarget: keep 1 - eps - eps / (C - 1), off eps / (C - 1)),
    /// loss_i = -sum_k t'_ik log softmax(x_i)_k, and the Mean (over N) or Sum of the rows.
    /// </summary>
    /// <param name="logits">Logits (N, C), in float64 (finite differences perturb them there).</param>
    /// <param name="targets">Class probabilities (N, C).</param>
    /// <param name="n">Rows N.</param>
    /// <param name="c">Classes C.</param>
    /// <param name="options">Reduction and smoothing.</param>
    /// <returns>The per-row losses and the reduced loss (the Sum for None).</returns>
    public static (double[] Rows, double Reduced) ForwardSoftReference(ReadOnlySpan<double> logits, ReadOnlySpan<float> targets, int n, int c, CrossEntropyOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var (keep, off) = SoftSmoothing(c, options);
        var rows = new double[n];
        var logp = new double[c];
        for (int i = 0; i < n; i++)
        {
            LogSoftmaxRowReference(logits.Slice(i * c, c), logp);
            for (int k = 0; k < c; k++)
                rows[i] -= ((keep * targets[(i * c) + k]) + off) * logp[k];
        }

        double sum = rows.Sum();
        return (rows, options.Reduction == LossReduction.Mean ? sum / n : sum);
    }

    /// <summary>
    /// Reference: dlogits[i, k] = (softmax(x_i)_k - t'_ik) g_i in float64, with t' as in
    /// <see cref="ForwardSoftReference"/> and g_i = dLoss[0] / N (Mean), dLoss[0] (Sum) or dLoss[i] (None).
    /// </summary>
    /// <param name="logits">Logits (N, C).</param>
    /// <param name="targets">Class probabilities (N, C).</param>
    /// <param name="dLoss">Upstream gradient: 1 element, or N for None.</param>
    /// <param name="n">Rows N.</param>
    /// <param name="c">Classes C.</param>
    /// <param name="options">Reduction and smoothing.</param>
    /// <returns>dlogits (N, C).</returns>
    public static double[] BackwardSoftReference(ReadOnlySpan<double> logits, ReadOnlySpan<float> targets, ReadOnlySpan<float> dLoss, int n, int c, CrossEntropyOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var (keep, off) = SoftSmoothing(c, options);
        var dx = new double[n * c];
        var logp = new double[c];
        for (int i = 0; i < n; i++)
        {
            double g = options.Reduction switch { LossReduction.Mean => dLoss[0] / (double)n, LossReduction.Sum => dLoss[0], _ => dLoss[i] };
            LogSoftmaxRowReference(logits.Slice(i * c, c), logp);
            for (int k = 0; k < c; k++)
                dx[(i * c) + k] = (Math.Exp(logp[k]) - ((keep * targets[(i * c) + k]) + off)) * g;
        }

        return dx;
    }

    // PyTorch: t (1 - eps) + eps / C; the OffTarget convention maps one-hot rows to 1 - eps and eps / (C - 1).
    private static (double Keep, double Off) SoftSmoothing(int c, CrossEntropyOptions options)
    {
        double eps = options.Epsilon;
        return options.Smoothing == LabelSmoothing.Uniform || c == 1
            ? (1 - eps, eps / c)
            : (1 - eps - (eps / (c - 1)), eps / (c - 1));
    }

    private static void LogSoftmaxRowReference(ReadOnlySpan<float> x, Span<double> logp)
    {
        Span<double> wide = x.Length <= 1024 ? stackalloc double[x.Length] : new double[x.Length];
        for (int k = 0; k < x.Length; k++)
            wide[k] = x[k];
        LogSoftmaxRowReference(wide, logp);
    }

    private static void LogSoftmaxRowReference(ReadOnlySpan<double> x, Span<double> logp)
    {
        double m = double.NegativeInfinity;
        foreach (double v in x)
            m = Math.Max(m, v);
        double s = 0;
        foreach (double v in x)
            s += Math.Exp(v - m);
        double lse = Math.Log(s);
        for (int k = 0; k < x.Length; k++)
            logp[k] = x[k] - m - lse;
    }
}
