using System.Runtime.ExceptionServices;

namespace IlgpuTrain.Training;

/// <summary>
/// Cuts a data set into batches, epoch by epoch: a seeded shuffle (a pure function of
/// (seed, epoch)), batches of <see cref="BatchSize"/> (the last one short unless drop-last), and
/// prefetch of the next batches on a background thread while the caller computes.
/// </summary>
/// <remarks>
/// <para>Order: with shuffle, epoch e visits the samples in the Fisher-Yates permutation driven by
/// the Philox words of (seed, stream 0x5348464C "SHFL", counter e): see <see cref="Permutation"/>.
/// Without shuffle, in index order. A resume at (epoch, startBatch) sees exactly the batches an
/// uninterrupted run would have seen from there.</para>
/// <para>Prefetch: each <see cref="Epoch"/> enumeration with prefetch &gt; 0 runs one worker
/// thread that gathers batches into a bounded queue of <see cref="Prefetch"/> batches. An
/// exception in the worker (for example from <see cref="IDataset.Gather"/>) is rethrown in the
/// caller at the batch where it happened. Ending the enumeration early (break, dispose) or
/// disposing the loader stops the worker. Batch arrays are not reused: each
/// <see cref="HostBatch"/> owns its arrays and stays valid after the next one arrives.</para>
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
    /// <param name="prefetch">Batches gathered ahead on a background thread (0: gather on the caller's thread).</param>
    public DataLoader(IDataset data, int batchSize, bool shuffle = true, bool dropLast = false, ulong seed = 0, int prefetch = 2)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (batchSize < 1)
            throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, $"DataLoader: batch size must be at least 1, got {batchSize}.");
        if (prefetch < 0)
            throw new ArgumentOutOfRangeException(nameof(prefetch), prefetch, $"DataLoader: prefetch must be zero or more, got {prefetch}.");
        Data = data;
        BatchSize = batchSize;
        Shuffle = shuffle;
        DropLast = dropLast;
        Seed = seed;
        Prefetch = prefetch;
    }

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

    /// <summary>Batches gathered ahead on a background thread.</summary>
    public int Prefetch { get; }

    /// <summary>Batches per epoch: Count / BatchSize, rounded up unless drop-last.</summary>
    public int BatchesPerEpoch => DropLast ? Data.Count / BatchSize : (int)(((long)Data.Count + BatchSize - 1) / BatchSize);

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

    /// <summary>The sample order of epoch <paramref name="epoch"/>: a permutation of [0, Count).</summary>
    /// <param name="epoch">The epoch (any non-negative number; the trainer's 0-based or 1-based count).</param>
    /// <returns>The order.</returns>
    public int[] Order(int epoch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epoch);
        if (Shuffle)
            return Permutation(Data.Count, Seed, ShuffleStream, (uint)epoch);
        var order = new int[Data.Count];
        for (int i = 0; i < order.Length; i++)
            order[i] = i;
        return order;
    }

    /// <summary>
    /// The batches of epoch <paramref name="epoch"/>, from batch <paramref name="startBatch"/> on,
    /// gathered ahead on a background thread when <see cref="Prefetch"/> &gt; 0.
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
        return Prefetch == 0 ? Sequential(epoch, startBatch, batches) : Prefetched(epoch, startBatch, batches);
    }

    /// <summary>Stops every prefetch worker of this loader; running enumerations end with <see cref="ObjectDisposedException"/>.</summary>
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
        using var queue = new Handoff(Prefetch, stop.Token);
        ExceptionDispatchInfo? failure = null;
        var worker = new Thread(() =>
        {
            try
            {
                var order = Order(epoch);
                for (int b = startBatch; b < batches; b++)
                    queue.Add(Make(order, b));
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                // The consumer stopped or the loader was disposed.
            }
            catch (Exception e)
            {
                failure = ExceptionDispatchInfo.Capture(e);
            }
            finally
            {
                queue.CompleteAdding();
            }
        })
        {
            IsBackground = true,
            Name = $"DataLoader prefetch ({Data.Name}, epoch {epoch})",
        };
        worker.Start();
        try
        {
            while (true)
            {
                HostBatch batch;
                try
                {
                    if (!queue.TryTake(out batch!, _disposed.Token))
                        break;
                }
                catch (OperationCanceledException)
                {
                    throw new ObjectDisposedException(nameof(DataLoader), "DataLoader: the loader was disposed while an epoch was being read.");
                }

                yield return batch;
            }

            failure?.Throw();
        }
        finally
        {
            stop.Cancel();
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

    // A bounded hand-off between the prefetch thread and the consumer that blocks without
    // spinning: BlockingCollection's SemaphoreSlim spins and yields before it sleeps, and on a
    // two-core machine a producer that waits on a full queue once per batch then competes with
    // the training thread and the kernels' workers for the cores.
    private sealed class Handoff : IDisposable
    {
        private readonly Queue<HostBatch> _items = new();
        private readonly int _capacity;
        private readonly CancellationToken _stop;
        private readonly CancellationTokenRegistration _wakeOnStop;
        private bool _completed;

        public Handoff(int capacity, CancellationToken stop)
        {
            _capacity = capacity;
            _stop = stop;
            _wakeOnStop = stop.Register(Wake);
        }

        /// <summary>Waits for room, then enqueues; throws OperationCanceledException once stopped.</summary>
        public void Add(HostBatch item)
        {
            lock (_items)
            {
                while (_items.Count >= _capacity)
                {
                    _stop.ThrowIfCancellationRequested();
                    Monitor.Wait(_items);
                }

                _stop.ThrowIfCancellationRequested();
                _items.Enqueue(item);
                Monitor.PulseAll(_items);
            }
        }

        /// <summary>Waits for an item; false once adding completed and the queue is empty.</summary>
        public bool TryTake(out HostBatch? item, CancellationToken cancel)
        {
            // As BlockingCollection: a cancelled take throws even when items are queued.
            cancel.ThrowIfCancellationRequested();
            using var wakeOnCancel = cancel.Register(Wake);
            lock (_items)
            {
                while (_items.Count == 0)
                {
                    if (_completed)
                    {
                        item = null;
                        return false;
                    }

                    cancel.ThrowIfCancellationRequested();
                    Monitor.Wait(_items);
                }

                item = _items.Dequeue();
                Monitor.PulseAll(_items);
                return true;
            }
        }

        public void CompleteAdding()
        {
            lock (_items)
            {
                _completed = true;
                Monitor.PulseAll(_items);
            }
        }

        public void Dispose() => _wakeOnStop.Dispose();

        private void Wake()
        {
            lock (_items)
                Monitor.PulseAll(_items);
        }
    }
}
