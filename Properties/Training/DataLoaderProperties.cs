using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>Training/DataLoader.cs: every sample once per epoch, batch sizes, a seeded order that resumes exactly, and well-behaved workers: the same batches in order whatever their number, overlapping gathers, exceptions at their batch, bounded prefetch, and disposal.</summary>
public class DataLoaderProperties
{
    // Sample ids of a batch of Gens.IndexDataset (feature 0 of a sample is 10 x its index).
    private static int[] Ids(HostBatch b) => Enumerable.Range(0, b.Count).Select(k => (int)(b.X[k * 6] / 10)).ToArray();

    private static int[] Sequence(DataLoader loader, int epoch, int start = 0) => loader.Epoch(epoch, start).SelectMany(Ids).ToArray();

    [Property(MaxTest = 40)]
    public Property Every_sample_once_per_epoch_in_batches_of_the_right_size() =>
        Prop.ForAll(Gens.LoaderSizes.ToArbitrary(), Gen.Elements(false, true).ToArbitrary(), Gen.Elements(0, 1, 3).ToArbitrary(), (s, dropLast, prefetch) =>
        {
            var data = Gens.IndexDataset(s.Count);
            using var loader = new DataLoader(data, s.Batch, shuffle: true, dropLast: dropLast, seed: 7, prefetch: prefetch);
            var batches = loader.Epoch(3).ToList();
            int full = s.Count / s.Batch, rest = s.Count % s.Batch;
            int expectedBatches = dropLast || rest == 0 ? full : full + 1;
            var ids = batches.SelectMany(Ids).ToArray();
            bool sizes = batches.Select((b, i) => b.Index == i && b.Count == (i < full ? s.Batch : rest) && b.Labels.Length == b.Count
                && b.Shape.Equals(new Shape(b.Count, 2, 3)) && b.X.Length == b.Count * 6).All(ok => ok);
            bool labels = batches.All(b => Ids(b).Zip(b.Labels).All(t => t.First % 10 == t.Second));
            bool once = dropLast
                ? ids.Length == full * s.Batch && ids.Distinct().Count() == ids.Length && ids.All(i => i >= 0 && i < s.Count)
                : ids.OrderBy(i => i).SequenceEqual(Enumerable.Range(0, s.Count));
            return (batches.Count == expectedBatches && loader.BatchesPerEpoch == expectedBatches).Label($"{batches.Count} batches, BatchesPerEpoch {loader.BatchesPerEpoch}, expected {expectedBatches}")
                .And(sizes.Label("batch sizes, indices, shapes")).And(labels.Label("labels travel with samples")).And(once.Label("each sample once"));
        });

    [Property(MaxTest = 30)]
    public Property Same_seed_and_epoch_same_order_and_start_batch_resumes_it() =>
        Prop.ForAll(Gens.LoaderSizes.ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), Gen.Choose(0, 50).ToArbitrary(), (s, seed, startPick) =>
        {
            var data = Gens.IndexDataset(s.Count);
            using var a = new DataLoader(data, s.Batch, seed: (ulong)seed, prefetch: 2);
            using var b = new DataLoader(data, s.Batch, seed: (ulong)seed, prefetch: 0);
            int start = startPick % (a.BatchesPerEpoch + 1);
            var whole = Sequence(a, 5);
            var again = Sequence(b, 5);
            var resumed = Sequence(a, 5, start);
            var tail = whole.Skip(Math.Min(whole.Length, start * s.Batch)).ToArray();
            bool indices = a.Epoch(5, start).Select(x => x.Index).SequenceEqual(Enumerable.Range(start, a.BatchesPerEpoch - start));
            return whole.SequenceEqual(again).Label("same seed and epoch, with and without prefetch")
                .And(resumed.SequenceEqual(tail).Label($"resume at batch {start}"))
                .And(indices.Label("resumed batch indices"));
        });

    [Fact]
    public void Another_epoch_or_seed_gives_another_order_and_no_shuffle_keeps_index_order()
    {
        var data = Gens.IndexDataset(200);
        using var a = new DataLoader(data, 32, seed: 1);
        using var b = new DataLoader(data, 32, seed: 2);
        using var plain = new DataLoader(data, 32, shuffle: false);
        Assert.NotEqual(Sequence(a, 0), Sequence(a, 1));
        Assert.NotEqual(Sequence(a, 0), Sequence(b, 0));
        Assert.Equal(Enumerable.Range(0, 200), Sequence(plain, 4));
    }

    [Fact]
    public void The_permutation_is_uniform_enough()
    {
        // Position of element 0 over 4000 permutations of 8: each of 8 cells expects 500, sd ~ 21.
        var counts = new int[8];
        for (uint e = 0; e < 4000; e++)
            counts[Array.IndexOf(DataLoader.Permutation(8, 11, 1, e), 0)]++;
        Assert.All(counts, c => Assert.InRange(c, 400, 600));
    }

    private sealed class Failing(int failAt, int count) : IDataset
    {
        public string Name => "failing";

        public int Count => count;

        public Shape SampleShape { get; } = new(2, 3);

        public int Classes => 10;

        public int Gathered;

        public void Gather(ReadOnlySpan<int> indices, Span<float> x, Span<int> labels)
        {
            if (Interlocked.Increment(ref Gathered) > failAt)
                throw new InvalidOperationException("gather failed on purpose");
            x.Clear();
            labels.Clear();
        }
    }

    [Fact]
    public void An_exception_in_the_worker_surfaces_in_the_caller_after_the_good_batches()
    {
        using var loader = new DataLoader(new Failing(3, 100), 10, prefetch: 2);
        int seen = 0;
        var e = Assert.Throws<InvalidOperationException>(() =>
        {
            foreach (var b in loader.Epoch(0))
                seen++;
        });
        Assert.Equal("gather failed on purpose", e.Message);
        Assert.Equal(3, seen);
    }

    [Fact]
    public void Breaking_out_or_disposing_stops_the_worker_and_prefetch_is_bounded()
    {
        var data = new Failing(int.MaxValue, 1000);
        using (var loader = new DataLoader(data, 1, prefetch: 2))
        {
            using var e = loader.Epoch(0).GetEnumerator();
            Assert.True(e.MoveNext());
            Thread.Sleep(200);
            // One taken, two queued, at most one more gathered and blocked on the full queue.
            Assert.InRange(Volatile.Read(ref data.Gathered), 1, 4);
        }

        int afterDispose = Volatile.Read(ref data.Gathered);
        Thread.Sleep(100);
        Assert.Equal(afterDispose, Volatile.Read(ref data.Gathered));

        var loader2 = new DataLoader(new Failing(int.MaxValue, 1000), 1, prefetch: 2);
        using var e2 = loader2.Epoch(0).GetEnumerator();
        Assert.True(e2.MoveNext());
        loader2.Dispose();
        Assert.Throws<ObjectDisposedException>(() =>
        {
            while (e2.MoveNext())
            {
            }
        });
        Assert.Throws<ObjectDisposedException>(() => loader2.Epoch(0));
    }

    // A data set of random features (sample i's floats are a function of i) whose labels are i % 7.
    private static InMemoryDataset Noise(int count)
    {
        var bytes = Gens.RandomBytes(count + 1, count * 6 * 4);
        var x = new float[count * 6];
        for (int i = 0; i < x.Length; i++)
            x[i] = BitConverter.ToInt32(bytes, i * 4) / (float)int.MaxValue;
        return new InMemoryDataset("noise", x, Enumerable.Range(0, count).Select(i => i % 7).ToArray(), new Shape(2, 3), 7);
    }

    private static bool SameBits(HostBatch a, HostBatch b) =>
        a.Index == b.Index && a.Count == b.Count && a.Shape.Equals(b.Shape) && a.Labels.SequenceEqual(b.Labels)
        && a.X.Select(BitConverter.SingleToInt32Bits).SequenceEqual(b.X.Select(BitConverter.SingleToInt32Bits));

    [Property(MaxTest = 40)]
    public Property The_batches_are_the_same_bits_in_order_whatever_the_workers_and_prefetch() =>
        Prop.ForAll(Gens.LoaderSizes.ToArbitrary(), Gen.Elements(0, 1, 2, 3, 5).ToArbitrary(), Gen.Elements<int?>(null, 1, 2, 7).ToArbitrary(), (s, workers, prefetch) =>
        {
            var data = Noise(s.Count);
            using var reference = new DataLoader(data, s.Batch, seed: 5, workers: 0);
            using var loader = new DataLoader(data, s.Batch, seed: 5, prefetch: prefetch, workers: workers);
            int start = reference.BatchesPerEpoch / 2;
            var expected = reference.Epoch(2).ToList();
            var got = loader.Epoch(2).ToList();
            var resumed = loader.Epoch(2, start).ToList();
            return (got.Count == expected.Count && got.Zip(expected).All(t => SameBits(t.First, t.Second))).Label($"whole epoch with {workers} workers, prefetch {prefetch}")
                .And((resumed.Count == expected.Count - start && resumed.Zip(expected.Skip(start)).All(t => SameBits(t.First, t.Second))).Label($"resumed at batch {start}"));
        });

    // Gathers wait until `target` of them are inside Gather at once: with that many workers the
    // loader must run them side by side (a loader that gathers one batch at a time would wait out
    // the 30 s guard, one for the whole data set, there only so that a broken loader fails
    // instead of hanging).
    private sealed class Overlap(int count, int target) : IDataset
    {
        private readonly System.Diagnostics.Stopwatch _guard = System.Diagnostics.Stopwatch.StartNew();
        private int _inside;

        public int MaxInside;

        public string Name => "overlap";

        public int Count => count;

        public Shape SampleShape { get; } = new(1);

        public int Classes => 2;

        public void Gather(ReadOnlySpan<int> indices, Span<float> x, Span<int> labels)
        {
            int now = Interlocked.Increment(ref _inside);
            int seen;
            while (now > (seen = Volatile.Read(ref MaxInside)) && Interlocked.CompareExchange(ref MaxInside, now, seen) != seen)
            {
            }

            SpinWait.SpinUntil(() => Volatile.Read(ref MaxInside) >= target || _guard.Elapsed > TimeSpan.FromSeconds(30));
            for (int k = 0; k < indices.Length; k++)
                (x[k], labels[k]) = (indices[k], indices[k] % 2);
            Interlocked.Decrement(ref _inside);
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void Workers_gather_batches_at_the_same_time(int workers)
    {
        var data = new Overlap(40, workers);
        using var loader = new DataLoader(data, 4, seed: 1, prefetch: 2 * workers, workers: workers);
        var ids = loader.Epoch(0).SelectMany(b => b.X).Select(v => (int)v).ToArray();
        Assert.Equal(workers, data.MaxInside);
        Assert.Equal(loader.Order(0), ids);
    }

    private sealed class FailingAt(int count, int failAtSample) : IDataset
    {
        public string Name => "failing";

        public int Count => count;

        public Shape SampleShape { get; } = new(1);

        public int Classes => 2;

        public void Gather(ReadOnlySpan<int> indices, Span<float> x, Span<int> labels)
        {
            if (indices.Contains(failAtSample))
                throw new InvalidDataException($"sample {failAtSample} is broken");
            for (int k = 0; k < indices.Length; k++)
                (x[k], labels[k]) = (indices[k], 0);
        }
    }

    [Property(MaxTest = 30)]
    public Property A_workers_exception_surfaces_at_its_batch_after_every_batch_before_it() =>
        Prop.ForAll(Gen.Choose(0, 9).ToArbitrary(), Gen.Elements(1, 2, 3, 5).ToArbitrary(), Gen.Elements<int?>(null, 1, 4).ToArbitrary(), (failingBatch, workers, prefetch) =>
        {
            using var loader = new DataLoader(new FailingAt(100, failingBatch * 10 + 3), 10, shuffle: false, prefetch: prefetch, workers: workers);
            var seen = new List<int>();
            string? message = null;
            try
            {
                foreach (var b in loader.Epoch(0))
                    seen.Add(b.Index);
            }
            catch (InvalidDataException e)
            {
                message = e.Message;
            }

            return seen.SequenceEqual(Enumerable.Range(0, failingBatch)).Label($"batches before the failure: {string.Join(",", seen)}")
                .And((message == $"sample {failingBatch * 10 + 3} is broken").Label($"the worker's exception: {message}"));
        });

    [Fact]
    public void Several_workers_stay_within_the_prefetch_bound_and_stop_when_the_caller_stops()
    {
        var data = new Failing(int.MaxValue, 1000);
        var loader = new DataLoader(data, 1, prefetch: 4, workers: 3);
        using (var e = loader.Epoch(0).GetEnumerator())
        {
            Assert.True(e.MoveNext());
            Assert.True(e.MoveNext());
        }

        // Ending the enumeration joined the workers: two batches taken, at most four gathered beyond them.
        int gathered = Volatile.Read(ref data.Gathered);
        Assert.InRange(gathered, 2, 6);
        Thread.Sleep(50);
        Assert.Equal(gathered, Volatile.Read(ref data.Gathered));

        using var again = loader.Epoch(1).GetEnumerator();
        Assert.True(again.MoveNext());
        loader.Dispose();
        Assert.Throws<ObjectDisposedException>(() =>
        {
            while (again.MoveNext())
            {
            }
        });
    }

    [Fact]
    public void Bad_worker_and_prefetch_counts_are_refused_with_the_range()
    {
        var data = Gens.IndexDataset(10);
        Assert.Contains("from 0 (the caller's thread) to 64, got -1", Assert.Throws<ArgumentOutOfRangeException>(() => new DataLoader(data, 2, workers: -1)).Message);
        Assert.Contains("got 65", Assert.Throws<ArgumentOutOfRangeException>(() => new DataLoader(data, 2, workers: 65)).Message);
        Assert.Contains("prefetch must be zero or more", Assert.Throws<ArgumentOutOfRangeException>(() => new DataLoader(data, 2, prefetch: -1)).Message);
        Assert.Equal(6, new DataLoader(data, 2, workers: 3).Prefetch);
    }
}
