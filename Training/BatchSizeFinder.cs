using System.Globalization;

namespace IlgpuTrain.Training;

/// <summary>One trial of the batch-size search: a real training step at <paramref name="BatchSize"/>.</summary>
/// <param name="BatchSize">The batch.</param>
/// <param name="Fits">Whether the step ran within the device's memory and the budget.</param>
/// <param name="PeakBytes">The device memory in use at the step's peak (the pool's high-water mark: parameters, optimizer state, activations, tape, gradients and scratch); up to the failure when it ran out of memory.</param>
/// <param name="OutOfMemory">Whether the device ran out of memory.</param>
public sealed record BatchSizeProbe(int BatchSize, bool Fits, long PeakBytes, bool OutOfMemory);

/// <summary>What the batch-size finder found.</summary>
/// <param name="BatchSize">The largest batch whose training step fits.</param>
/// <param name="PeakBytes">That step's measured peak device memory.</param>
/// <param name="BudgetBytes">The memory budget, or null for the device's own memory (an out-of-memory is the limit).</param>
/// <param name="MaxBatch">The largest batch the search would try.</param>
/// <param name="Probes">Every trial, in the order it ran.</param>
public sealed record BatchSizeFinderResult(int BatchSize, long PeakBytes, long? BudgetBytes, int MaxBatch, IReadOnlyList<BatchSizeProbe> Probes)
{
    /// <summary>Whether the search stopped at <see cref="MaxBatch"/> rather than at the memory limit.</summary>
    public bool ReachedMax => BatchSize == MaxBatch;

    /// <summary>The linear-scaling learning rate for <see cref="BatchSize"/> (<see cref="LearningRateScaling.Linear"/>).</summary>
    /// <param name="learningRate">The rate tuned for <paramref name="baseBatchSize"/>.</param>
    /// <param name="baseBatchSize">Its batch.</param>
    /// <returns>lr·BatchSize/baseBatchSize.</returns>
    public double ScaledLearningRate(double learningRate, int baseBatchSize) => LearningRateScaling.Linear(learningRate, baseBatchSize, BatchSize);

    /// <summary>The result in one line, e.g. "batch 4096: peak 1.2 GiB of a 2 GiB budget".</summary>
    /// <returns>The text.</returns>
    public string Describe()
    {
        string limit = BudgetBytes is { } b ? $"of a {Bytes.Format(b)} budget" : "within the device's memory";
        string why = ReachedMax ? $"; the largest batch tried (--max-batch {MaxBatch}), not the memory limit" : string.Empty;
        string probes = string.Join(", ", Probes.Select(p => p.Fits ? $"{p.BatchSize}" : $"{p.BatchSize} ({(p.OutOfMemory ? "out of memory" : Bytes.Format(p.PeakBytes))})"));
        return string.Create(CultureInfo.InvariantCulture, $"batch {BatchSize}: peak {Bytes.Format(PeakBytes)} {limit}{why} (tried {probes})");
    }
}

/// <summary>
/// Finds the largest batch whose training step fits the device's memory, by running real steps:
/// doubling from 1 until a step does not fit (or the largest batch allowed fits), then bisection
/// between the last batch that fits and the first that does not.
/// </summary>
/// <remarks>
/// <para>A step fits when it runs without running out of device memory and, with a budget, when
/// its measured peak is within it. The peak is the memory pool's <see cref="MemoryPoolStats.PeakBytesInUse"/>
/// over the step, counted from a fresh <see cref="Trainer.Init()"/>: every device buffer of the run
/// (parameters, model and optimizer state, activations, tape, gradients, scratch) in the pool's
/// size classes. Host scratch of the managed CPU kernels (GEMM packing) is not device memory and is
/// not counted. On the CPU the device's memory is the machine's, so give a budget there.</para>
/// <para>The search assumes memory grows with the batch (it does: every buffer's size class is
/// monotone in the batch), and costs about 2·log2(max) steps.</para>
/// </remarks>
public static class BatchSizeFinder
{
    /// <summary>
    /// The search alone: the largest b in [1, <paramref name="maxBatch"/>] with
    /// <paramref name="fits"/>(b), for a <paramref name="fits"/> that holds up to some batch and
    /// fails above it: doubling 1, 2, 4, ... (the last step capped at the maximum), then bisection.
    /// </summary>
    /// <param name="maxBatch">The largest batch to try, at least 1.</param>
    /// <param name="fits">Whether a batch fits.</param>
    /// <returns>The batch (0 when batch 1 does not fit) and the batches tried, in order.</returns>
    public static (int BatchSize, IReadOnlyList<int> Tried) Search(int maxBatch, Func<int, bool> fits)
    {
        ArgumentNullException.ThrowIfNull(fits);
        if (maxBatch < 1)
            throw new ArgumentOutOfRangeException(nameof(maxBatch), maxBatch, "BatchSizeFinder: the largest batch (--max-batch) must be at least 1.");
        var tried = new List<int>();
        bool Try(int b)
        {
            tried.Add(b);
            return fits(b);
        }

        if (!Try(1))
            return (0, tried);
        int lo = 1, hi = 0;
        while (lo < maxBatch)
        {
            int next = (int)Math.Min(2L * lo, maxBatch);
            if (!Try(next))
            {
                hi = next;
                break;
            }

            lo = next;
        }

        if (hi == 0)
            return (lo, tried);
        while (hi - lo > 1)
        {
            int mid = lo + ((hi - lo) / 2);
            if (Try(mid))
                lo = mid;
            else
                hi = mid;
        }

        return (lo, tried);
    }

    /// <summary>Runs the search with real training steps of <paramref name="trainer"/> on batches of <paramref name="data"/>.</summary>
    /// <param name="trainer">The run's trainer (model, loss, optimizer, precision); its batch size is not used.</param>
    /// <param name="data">Samples for the batches (cycled when a batch is larger than the set).</param>
    /// <param name="memoryBudgetBytes">The most device memory a step may use, or null for the device's own memory (an out-of-memory is the limit).</param>
    /// <param name="maxBatch">The largest batch to try (65536).</param>
    /// <returns>The batch, its peak and every trial.</returns>
    /// <exception cref="ArgumentException">Not even batch 1 fits the budget (the message gives what it needs).</exception>
    /// <exception cref="OutOfMemoryException">Not even batch 1 fits the device's memory.</exception>
    public static BatchSizeFinderResult Run(Trainer trainer, IDataset data, long? memoryBudgetBytes = null, int maxBatch = 65536)
    {
        ArgumentNullException.ThrowIfNull(trainer);
        ArgumentNullException.ThrowIfNull(data);
        if (memoryBudgetBytes is <= 0)
            throw new ArgumentOutOfRangeException(nameof(memoryBudgetBytes), memoryBudgetBytes, "BatchSizeFinder: the memory budget (--memory-budget) must be more than 0 bytes.");
        if (maxBatch < 1)
            throw new ArgumentOutOfRangeException(nameof(maxBatch), maxBatch, "BatchSizeFinder: the largest batch (--max-batch) must be at least 1.");
        if (data.Count == 0)
            throw new ArgumentException($"BatchSizeFinder: {data.Name} has no samples; give a data set with at least one.", nameof(data));

        // The warm-up's throwaway step shares the pool: let it finish before measuring.
        trainer.KernelWarmup?.Wait();
        var probes = new Dictionary<int, BatchSizeProbe>();
        var (batch, tried) = Search(maxBatch, b => (probes[b] = Measure(trainer, data, b, memoryBudgetBytes)).Fits);
        if (batch == 0)
        {
            var one = probes[1];
            if (one.OutOfMemory)
                throw new OutOfMemoryException($"BatchSizeFinder: a training step at batch 1 of {trainer.ModelDescription} runs out of memory on {trainer.Device}; use a smaller model, mixed precision, or a device with more memory.");
            throw new ArgumentException($"BatchSizeFinder: a training step at batch 1 of {trainer.ModelDescription} needs {Bytes.Format(one.PeakBytes)} ({one.PeakBytes} bytes) of device memory, more than the budget of {Bytes.Format(memoryBudgetBytes!.Value)}; raise the budget (--memory-budget) to at least {Bytes.Format(one.PeakBytes)}, or use a smaller model.", nameof(memoryBudgetBytes));
        }

        return new BatchSizeFinderResult(batch, probes[batch].PeakBytes, memoryBudgetBytes, maxBatch, [.. tried.Select(b => probes[b])]);
    }

    /// <summary>
    /// One training step at <paramref name="batchSize"/> from a fresh <see cref="Trainer.Init()"/>,
    /// measuring the device memory in use at its peak; the state is released afterwards and the
    /// pool's cache trimmed, so each trial starts from the same device.
    /// </summary>
    /// <param name="trainer">The trainer.</param>
    /// <param name="data">Samples for the batch (cycled).</param>
    /// <param name="batchSize">The batch, at least 1.</param>
    /// <param name="memoryBudgetBytes">The budget, or null.</param>
    /// <returns>The trial.</returns>
    public static BatchSizeProbe Measure(Trainer trainer, IDataset data, int batchSize, long? memoryBudgetBytes)
    {
        ArgumentNullException.ThrowIfNull(trainer);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var pool = trainer.Device.Pool;
        TrainState? s = null;
        pool.Trim();
        try
        {
            var batch = Batch(data, batchSize);
            s = trainer.Init();
            pool.ResetPeak();
            (s, _) = trainer.Step(s, batch);
            trainer.Device.Synchronize();
            long peak = pool.Stats.PeakBytesInUse;
            return new BatchSizeProbe(batchSize, memoryBudgetBytes is not { } budget || peak <= budget, peak, false);
        }
        catch (OutOfMemoryException)
        {
            return new BatchSizeProbe(batchSize, false, pool.Stats.PeakBytesInUse, true);
        }
        finally
        {
            // After an out-of-memory part of the state may be consumed; disposing it returns what is left.
            s?.Dispose();
            pool.Trim();
        }
    }

    /// <summary>A batch of <paramref name="n"/> samples of <paramref name="data"/> in order, cycling when n exceeds the set.</summary>
    private static HostBatch Batch(IDataset data, int n)
    {
        var indices = new int[n];
        for (int i = 0; i < n; i++)
            indices[i] = i % data.Count;
        var x = new float[checked(n * data.SampleShape.Length)];
        var labels = new int[n];
        data.Gather(indices, x, labels);
        return new HostBatch(0, n, new Shape([n, .. data.SampleShape]), x, labels);
    }
}
