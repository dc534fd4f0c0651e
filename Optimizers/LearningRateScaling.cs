namespace IlgpuTrain.Optimizers;

/// <summary>
/// The linear scaling rule (Goyal et al. 2017, "Accurate, Large Minibatch SGD: Training ImageNet
/// in 1 Hour"): when the effective batch grows k-fold, multiply the learning rate by k, and warm up
/// to it. An explicit helper: nothing in IlgpuTrain rescales a learning rate on its own.
/// </summary>
/// <remarks>
/// <para>k = batch_size/base_batch_size (the effective batch: micro-batch × accumulation steps × devices)</para>
/// <para>lr_scaled = k·lr</para>
/// <para>Gradual warmup (the paper's §2.2): lr(t) = lr + (k·lr − lr)·t/W for t &lt; W, then k·lr; it
/// starts at the unscaled rate, which is PyTorch <c>LinearLR(start_factor=1/k, end_factor=1, total_iters=W)</c>
/// on the scaled rate. The paper warms up over 5 epochs.</para>
/// </remarks>
public static class LearningRateScaling
{
    /// <summary>k = <paramref name="batchSize"/>/<paramref name="baseBatchSize"/>.</summary>
    /// <param name="baseBatchSize">The batch size the learning rate was tuned for, at least 1.</param>
    /// <param name="batchSize">The new effective batch size, at least 1.</param>
    /// <returns>k.</returns>
    public static double Factor(int baseBatchSize, int batchSize)
    {
        if (baseBatchSize < 1)
            throw new ArgumentOutOfRangeException(nameof(baseBatchSize), baseBatchSize, "LearningRateScaling: the base batch size must be at least 1.");
        if (batchSize < 1)
            throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "LearningRateScaling: the batch size must be at least 1.");
        return (double)batchSize / baseBatchSize;
    }

    /// <summary>The linearly scaled learning rate k·lr.</summary>
    /// <param name="learningRate">The learning rate tuned for <paramref name="baseBatchSize"/>, finite and at least 0.</param>
    /// <param name="baseBatchSize">Its batch size, at least 1.</param>
    /// <param name="batchSize">The new effective batch size, at least 1.</param>
    /// <returns>k·lr.</returns>
    public static double Linear(double learningRate, int baseBatchSize, int batchSize)
    {
        if (!(double.IsFinite(learningRate) && learningRate >= 0))
            throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "LearningRateScaling: the learning rate must be finite and at least 0.");
        return learningRate * Factor(baseBatchSize, batchSize);
    }

    /// <summary>
    /// The scaled learning rate k·lr reached by a linear warmup from lr over
    /// <paramref name="warmupSteps"/> updates, then <paramref name="after"/> (or k·lr held).
    /// </summary>
    /// <param name="learningRate">The learning rate tuned for <paramref name="baseBatchSize"/>, finite and at least 0.</param>
    /// <param name="baseBatchSize">Its batch size, at least 1.</param>
    /// <param name="batchSize">The new effective batch size, at least 1.</param>
    /// <param name="warmupSteps">W, at least 0; 0 means no warmup.</param>
    /// <param name="after">Builds the schedule that follows the warmup from the scaled rate (it starts
    /// at its own t = 0 at update W), e.g. <c>peak =&gt; new CosineAnnealingLR(peak, total - W)</c>; null holds k·lr.</param>
    /// <returns><see cref="LinearLR"/>(k·lr, 1/k, 1, W) alone, or joined at W with the one <paramref name="after"/> builds.
    /// When k ≤ 1 the rate falls, nothing needs warming up, and the warmup phase holds k·lr.</returns>
    public static Schedule LinearWithWarmup(double learningRate, int baseBatchSize, int batchSize, int warmupSteps, Func<double, Schedule>? after = null)
    {
        if (warmupSteps < 0)
            throw new ArgumentOutOfRangeException(nameof(warmupSteps), warmupSteps, "LearningRateScaling: the warmup steps must be at least 0.");
        double peak = Linear(learningRate, baseBatchSize, batchSize);
        var rest = after is null ? null : after(peak) ?? throw new InvalidOperationException("LearningRateScaling: the after-warmup builder returned null.");
        if (warmupSteps == 0)
            return rest ?? new Constant(peak);
        var warmup = new LinearLR(peak, Math.Min(1, 1 / Factor(baseBatchSize, batchSize)), 1, warmupSteps);
        return rest is null ? warmup : new Join([warmup, rest], [warmupSteps]);
    }
}
