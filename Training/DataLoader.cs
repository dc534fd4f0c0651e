using System.Runtime.ExceptionServices;

namespace IlgpuTrain.Training;

/// <summary>
/// Cuts a data set into batches, epoch by epoch: a seeded shuffle (a pure function of
/// (seed, epoch)), batches of <see cref="BatchSize"/> (the last one short unless drop-last), and
/// prefetch of the next batches on worker threads while the caller computes.
/// </summary>
/// <remarks>
/// <para>Order: with shuffle, epoch e visits the samples in the Fisher-Yates permutation driven by
/// the Philox words of (seed, stream 0x5348464C "SHFL", counter e): see <see cref="Permutation"/>.
/// Without shuffle, in index order. A resume at (epoch, startBatch) sees exactly the batches an
/// uninterrupted run would have seen from there.</para>
/// <para>Workers (PyTorch's num_workers): each <see cref="Epoch"/> enumeration runs
/// <see cref="Workers"/> threads that gather batches ahead of the caller, at most
/// <see cref="Prefetch"/> batches beyond the one the caller holds (queued or being gathered), so
/// memory stays bounded. Workers claim batch numbers in order and the caller receives the batches
/// in order, each the same bits whatever the number of workers and the prefetch depth: a batch is
/// a function of (seed, epoch, batch number) only. With more than one worker,
/// <see cref="IDataset.Gather"/> runs on several threads at once (for distinct batches), which the
/// library's data sets allow; with 0 workers (or prefetch 0) the caller's thread gathers. An
/// exception in a worker (for example a corrupt image) is rethrown in the caller at the batch
/// where it happened, after the batches before it. Ending the enumeration early (break, dispose)
/// or disposing the loader stops the workers (one already inside Gather finishes that batch).
/// Batch arrays are not reused: each <see cref="HostBatch"/> owns its arrays and stays valid after
/// the next one arrives.</para>
/// </remarks>
public sealed class DataLoader : IDisposable
{
    private const uint ShuffleStream = 0x5348464C; // "SHFL"

    private readonly CancellationTokenSource _disposed = new();

    /// <summary>Creates a loader.</summary>
    /// <param name="data">The data set.</param>
    /// <param name="batchSize">Samples per batch (at least 1).</param>
    /// <param name="shuffle">Whether to shuffle each epoch.</param>
    /// <param name="dropLast">Whether to drop the last, short batch.</param>
    /// <param name="seed">The shuffle seed.</param>
    /// <param name="prefetch">Batches gathered ahead of the caller, at most (0: gather on the caller's thread); null for 2 per worker (PyTorch's prefetch_factor).</param>
    /// <param name="workers">Threads that gather batches (0: the caller's thread).</param>
    /// <param name="shard">In a distributed run, this rank's share of each epoch's order (null: all of it).</param>
    public DataLoader(IDataset data, int batchSize, bool shuffle = true, bool dropLast = false, ulong seed = 0, int? prefetch = null, int workers = 1, Distributed.DataShard? shard = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (batchSize < 1)
            throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, $"DataLoader: batch size must be at least 1, got {batchSize}.");
        if (prefetch < 0)
            throw new ArgumentOutOfRangeException(nameof(prefetch), prefetch, $"DataLoader: prefetch must be zero or more batches, got {prefetch}.");
        if (workers is < 0 or > MaxWorkers)
            throw new ArgumentOutOfRangeException(nameof(workers), workers, $"DataLoader: workers must be from 0 (the caller's thread) to {MaxWorkers}, got {workers}.");
        Workers = workers;
        Data = data;
        BatchSize = batchSize;
        Shuffle = shuffle;
        DropLast = dropLast;
        Seed = seed;
        Prefetch = prefetch ?? 2 * Math.Max(1, workers);
        Shard = shard;
    }

    /// <summary>This rank's share of each epoch in a distributed run, or null for all of it.</summary>
    public Distributed.DataShard? Shard { get; }

    /// <summary>Samples per epoch on this rank: the data set's count, or the shard's share of it.</summary>
    public int SamplesPerEpoch => Shard?.Length(Data.Count) ?? Data.Count;

    /// <summary>The most worker threads a loader runs (64).</summary>
    public const int MaxWorkers = 64;

    /// <summary>The data set.</summary>
    public IDataset Data { get; }

    /// <summary>Samples per batch.</summary>
    public int BatchSize { get; }

    /// <summary>Whether each epoch is shuffled.</summary>
    public bool Shuffle { get; }

    /// <summary>Whether the last, short batch is dropped.</summary>
    public bool DropLast { get; }

    /// <summary>The shuffle seed.</summary>
    public ulong Seed { get; }

    /// <summary>Batches gathered ahead of the caller, at most (queued or being gathered).</summary>
    public int Prefetch { get; }

    /// <summary>Threads that gather batches; 0 when the caller's thread does.</summary>
    public int Workers { get; }

    /// <summary>Batches per epoch: <see cref="SamplesPerEpoch"/> / BatchSize, rounded up unless drop-last.</summary>
    public int BatchesPerEpoch => DropLast ? SamplesPerEpoch / BatchSize : (int)(((long)SamplesPerEpoch + BatchSize - 1) / BatchSize);

    /// <summary>
    /// A uniformly random permutation of [0, n), a pure function of (seed, stream, counter):
    /// Fisher-Yates from the top, swapping i with j = floor(w * (i + 1) / 2^32) where w are the
    /// successive Philox words <c>Philox.BitsAt(seed, stream, counter, k)</c>, with rejection of
    /// the few words that would bias j (Lemire's method).
    /// </summary>
    /// <param name="n">Length.</param>
    /// <param name="seed">The seed.</param>
    /// <param name="stream">The stream (a purpose).</param>
    /// <param name="counter">The counter (an epoch).</param>
    /// <returns>The permutation.</returns>
    public static int[] Permutation(int n, ulong seed, uint stream, uint counter)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        var p = new int[n];
        for (int i = 0; i < n; i++)
            p[i] = i;
        long k = 0;
        for (int i = n - 1; i > 0; i--)
        {
            uint range = (uint)i + 1;
            uint threshold = (uint)(-range % range); // 2^32 mod range: words whose low product falls below are biased
            ulong m;
            do
            {
                m = (ulong)Philox.BitsAt(seed, stream, counter, k++) * range;
            }
            while ((uint)m < threshold);
            int j = (int)(m >> 32);
            (p[i], p[j]) = (p[j], p[i]);
        }

        return p;
    }

    /// <summary>The sample order of epoch <paramref name="epoch"/>: a permutation of [0, Count), or with a <see cref="Shard"/> this rank's share of it.</summary>
    /// <param name="epoch">The epoch (any non-negative number; the trainer's 0-based or 1-based count).</param>
    /// <returns>The order.</returns>
    public int[] Order(int epoch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        int[] order;
        if (Shuffle)
        {
            order = Permutation(Data.Count, Seed, ShuffleStream, (uint)epoch);
        }
        else
        {
            order = new int[Data.Count];
            for (int i = 0; i < order.Length; i++)
                order[i] = i;
        }

        return Shard is null ? order : Shard.Take(order);
    }

    /// <summary>
    /// The batches of epoch <paramref name="epoch"/>, from batch <paramref name="startBatch"/> on,
    /// gathered ahead on <see cref="Workers"/> threads when both it and <see cref="Prefetch"/> are above 0.
    /// </summary>
    /// <param name="epoch">The epoch; it and <see cref="Seed"/> fix the order.</param>
    /// <param name="startBatch">The first batch to produce (0 to BatchesPerEpoch), to resume mid-epoch.</param>
    /// <returns>The batches, in order, each with its <see cref="HostBatch.Index"/> in the epoch.</returns>
    public IEnumerable<HostBatch> Epoch(int epoch, int startBatch = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        int batches = BatchesPerEpoch;
        if (startBatch < 0 || startBatch > batches)
            throw new ArgumentOutOfRangeException(nameof(startBatch), startBatch, $"DataLoader.Epoch: start batch must be in [0, {batches}] ({batches} batches per epoch), got {startBatch}.");
        ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, this);
        return Workers == 0 || Prefetch == 0 ? Sequential(epoch, startBatch, batches) : Prefetched(epoch, startBatch, batches);
    }

    /// <summary>Stops every worker of this loader; running enumerations end with <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        if (_disposed.IsCancellationRequested)
            return;
        _disposed.Cancel();
    }

    private IEnumerable<HostBatch> Sequential(int epoch, int startBatch, int batches)
    {
        var order = Order(epoch);
        for (int b = startBatch; b < batches; b++)
        {
            ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, this);
            yield return Make(order, b);
        }
    }

    private IEnumerable<HostBatch> Prefetched(int epoch, int startBatch, int batches)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(_disposed.Token);
        using var window = new Window(startBatch, batches, Prefetch, stop.Token);
        var order = Order(epoch);
        // More threads than batches in the window, or than batches left, would only wait.
        var workers = new Thread[Math.Max(1, Math.Min(Math.Min(Workers, Prefetch), batches - startBatch))];
        for (int w = 0; w < workers.Length; w++)
        {
            workers[w] = new Thread(() =>
            {
                try
                {
                    while (window.TryClaim(out int b))
                    {
                        HostBatch? batch = null;
                        ExceptionDispatchInfo? failure = null;
                        try
                        {
                            batch = Make(order, b);
                        }
                        catch (Exception e)
                        {
                            failure = ExceptionDispatchInfo.Capture(e);
                        }

                        window.Complete(b, batch, failure);
                    }
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    // The consumer stopped or the loader was disposed.
                }
            })
            {
                IsBackground = true,
                Name = $"DataLoader worker {w} ({Data.Name}, epoch {epoch})",
            };
            workers[w].Start();
        }

        try
        {
            for (int b = startBatch; b < batches; b++)
            {
                HostBatch batch;
                try
                {
                    batch = window.Take(b, _disposed.Token);
                }
                catch (OperationCanceledException)
                {
                    throw new ObjectDisposedException(nameof(DataLoader), "DataLoader: the loader was disposed while an epoch was being read.");
                }

                yield return batch;
            }
        }
        finally
        {
            stop.Cancel();
            foreach (var worker in workers)
                worker.Join();
        }
    }

    private HostBatch Make(int[] order, int b)
    {
        int start = b * BatchSize;
        int count = Math.Min(BatchSize, order.Length - start);
        int sample = checked((int)Data.SampleShape.Length);
        var x = new float[checked(count * sample)];
        var labels = new int[count];
        Data.Gather(order.AsSpan(start, count), x, labels);
        var batch = new HostBatch(b, count, new Shape([count, .. Data.SampleShape.ToArray()]), x, labels);
        if (Data is not ITargetDataset values || values.TargetShape.Length == 0)
            return batch;
        var targets = new float[checked(count * (int)values.TargetShape.Length)];
        values.GatherTargets(order.AsSpan(start, count), targets);
        return batch with { Targets = targets, TargetShape = new Shape([count, .. values.TargetShape.ToArray()]) };
    }

    // The batches in flight between the workers and the consumer. Workers claim batch numbers in
    // order, at most `capacity` ahead of the one the consumer waits for, and file each result
    // (a batch or the exception that stopped it) under its number; the consumer takes them in order.
    // After a failure no new batch is claimed. Waits block without spinning: BlockingCollection's
    // SemaphoreSlim spins and yields before it sleeps, and on a two-core machine waiting workers
    // would then compete with the training thread and the kernels' workers for the cores.
    private sealed class Window : IDisposable
    {
        private readonly Dictionary<int, (HostBatch? Batch, ExceptionDispatchInfo? Failure)> _done = [];
        private readonly object _gate = new();
        private readonly int _end;
        private readonly int _capacity;
        private readonly CancellationToken _stop;
        private readonly CancellationTokenRegistration _wakeOnStop;
        private int _next;
        private int _taking;
        private bool _failed;

        public Window(int start, int end, int capacity, CancellationToken stop)
        {
            _next = start;
            _taking = start;
            _end = end;
            _capacity = capacity;
            _stop = stop;
            _wakeOnStop = stop.Register(Wake);
        }

        /// <summary>Waits until the next batch is within the window and claims it; false when none is left (or one failed).</summary>
        public bool TryClaim(out int batch)
        {
            lock (_gate)
            {
                while (true)
                {
                    _stop.ThrowIfCancellationRequested();
                    if (_failed || _next >= _end)
                    {
                        batch = -1;
                        return false;
                    }

                    if (_next - _taking < _capacity)
                    {
                        batch = _next++;
                        return true;
                    }

                    Monitor.Wait(_gate);
                }
            }
        }

        /// <summary>Files the result of batch <paramref name="batch"/>.</summary>
        public void Complete(int batch, HostBatch? result, ExceptionDispatchInfo? failure)
        {
            lock (_gate)
            {
                _done[batch] = (result, failure);
                _failed |= failure is not null;
                Monitor.PulseAll(_gate);
            }
        }

        /// <summary>Waits for batch <paramref name="batch"/> (the next in order) and returns it, or rethrows the exception that stopped it.</summary>
        public HostBatch Take(int batch, CancellationToken cancel)
        {
            // As BlockingCollection: a cancelled take throws even when the batch is ready.
            cancel.ThrowIfCancellationRequested();
            using var wakeOnCancel = cancel.Register(Wake);
            (HostBatch? Batch, ExceptionDispatchInfo? Failure) result;
            lock (_gate)
            {
                while (!_done.Remove(batch, out result))
                {
                    cancel.ThrowIfCancellationRequested();
                    Monitor.Wait(_gate);
                }

                _taking = batch + 1;
                Monitor.PulseAll(_gate);
            }

            result.Failure?.Throw();
            return result.Batch!;
        }

        public void Dispose() => _wakeOnStop.Dispose();

        private void Wake()
        {
            lock (_gate)
                Monitor.PulseAll(_gate);
        }
    }
}
