using IlgpuTrain.Training.Distributed;

namespace IlgpuTrain.Properties.Distributed;

/// <summary>The distributed split of an epoch (DistributedSampler's): equal shares, every sample covered, and batch b of all ranks = batch b of one process with the ranks' batches together.</summary>
public class DataShardProperties
{
    private static Arbitrary<(int N, int Ranks, int Batch)> Cases() =>
        Gen.Choose(0, 200).SelectMany(n => Gen.Choose(1, 7).SelectMany(w => Gen.Choose(1, 9).Select(b => (n, w, b)))).ToArbitrary();

    private static int[] Order(int n) => [.. Enumerable.Range(0, n).Select(i => (i * 7919) % Math.Max(n, 1)).Distinct().Concat(Enumerable.Range(0, n)).Distinct()];

    [Property(MaxTest = 200)]
    public Property Padded_shares_are_equal_and_cover_every_sample_with_fewer_than_W_repeats() =>
        Prop.ForAll(Cases(), c =>
        {
            var order = Order(c.N);
            var shares = Enumerable.Range(0, c.Ranks).Select(r => new DataShard(r, c.Ranks).Take(order)).ToList();
            var all = shares.SelectMany(s => s).ToList();
            bool equal = shares.All(s => s.Length == (c.N + c.Ranks - 1) / c.Ranks);
            bool covers = order.All(all.Contains);
            bool fewRepeats = all.Count - c.N is >= 0 && all.Count - c.N < c.Ranks;
            return (equal && covers && fewRepeats).Label($"lengths {string.Join(",", shares.Select(s => s.Length))}, {all.Count} taken of {c.N}");
        });

    [Property(MaxTest = 200)]
    public Property Unpadded_shares_partition_the_order() =>
        Prop.ForAll(Cases(), c =>
        {
            var order = Order(c.N);
            var all = Enumerable.Range(0, c.Ranks).SelectMany(r => new DataShard(r, c.Ranks, Pad: false).Take(order)).Order().ToArray();
            return all.SequenceEqual(order.Order()).Label($"{all.Length} taken of {c.N}");
        });

    [Property(MaxTest = 200)]
    public Property Batch_b_of_the_ranks_together_is_batch_b_of_one_process_with_W_times_the_batch() =>
        Prop.ForAll(Cases(), c =>
        {
            int n = c.Ranks * c.Batch * (1 + (c.N % 5));                       // a whole number of global batches
            var order = Order(n);
            var shares = Enumerable.Range(0, c.Ranks).Select(r => new DataShard(r, c.Ranks).Take(order)).ToList();
            for (int b = 0; b < n / (c.Ranks * c.Batch); b++)
            {
                var together = shares.SelectMany(s => s.Skip(b * c.Batch).Take(c.Batch)).Order();
                var one = order.Skip(b * c.Ranks * c.Batch).Take(c.Ranks * c.Batch).Order();
                if (!together.SequenceEqual(one))
                    return false.Label($"batch {b} differs");
            }

            return true.Label("ok");
        });
}
