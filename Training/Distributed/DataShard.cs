namespace IlgpuTrain.Training.Distributed;

/// <summary>
/// One rank's share of every epoch (PyTorch's DistributedSampler): the epoch's order (one seeded
/// permutation, the same on every rank) is padded by repeating its start until its length is a
/// multiple of <see cref="Count"/>, and rank r takes positions r, r + Count, r + 2 Count, ... So
/// every rank has the same number of samples and batches, and batch b of the ranks together holds
/// exactly the samples of batch b of one process with a batch Count times larger.
/// </summary>
/// <param name="Rank">This rank, 0 to Count − 1.</param>
/// <param name="Count">The number of ranks.</param>
/// <param name="Pad">Whether to pad to equal shares (training); false splits without repeats, for evaluation, where the sums are reduced.</param>
public sealed record DataShard(int Rank, int Count, bool Pad = true)
{
    /// <summary>The share of <paramref name="order"/> this rank takes.</summary>
    /// <param name="order">The epoch's order, the same on every rank.</param>
    /// <returns>The rank's samples, in order.</returns>
    public int[] Take(int[] order)
    {
        ArgumentNullException.ThrowIfNull(order);
        if (Count < 1 || Rank < 0 || Rank >= Count)
            throw new ArgumentOutOfRangeException(nameof(Rank), Rank, $"DataShard: rank {Rank} of {Count}; ranks run from 0 to Count − 1 and Count is at least 1.");
        int n = order.Length;
        int length = Length(n);
        var mine = new int[length];
        for (int k = 0; k < length; k++)
            mine[k] = order[(int)((Rank + ((long)k * Count)) % n)]; // past the end only when padding: wrap to the start
        return mine;
    }

    /// <summary>How many samples this rank takes out of <paramref name="n"/>: ⌈n / Count⌉ with padding, else its strided share.</summary>
    /// <param name="n">The epoch's length.</param>
    /// <returns>The share's length.</returns>
    public int Length(int n) => n == 0 ? 0 : Pad ? (n + Count - 1) / Count : (n - Rank + Count - 1) / Count;
}
