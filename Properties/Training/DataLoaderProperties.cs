using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>Training/DataLoader.cs: every sample once per epoch, batch sizes, a seeded order that resumes exactly, and a well-behaved prefetch thread.</summary>
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
}
