namespace IlgpuTrain.Training.Distributed;

/// <summary>A piece of the flat Float32 gradient buffer that is all-reduced as one message.</summary>
/// <param name="Offset">First element.</param>
/// <param name="Length">Elements.</param>
public readonly record struct GradientBucket(long Offset, long Length);

/// <summary>
/// Cuts the flat gradient buffer into buckets as PyTorch's DistributedDataParallel does: whole
/// parameters, last ones first (the order backward produces their gradients), each bucket filled
/// until the next parameter would take it past the size; a parameter larger than the size is a
/// bucket of its own.
/// </summary>
public static class GradientBuckets
{
    /// <summary>The buckets of <paramref name="layout"/>'s Float32 parameters.</summary>
    /// <param name="layout">The parameters (their offsets in the flat Float32 buffer).</param>
    /// <param name="bucketBytes">The bucket size in bytes.</param>
    /// <returns>Contiguous, disjoint buckets that cover every Float32 parameter, from the end of the buffer to its start.</returns>
    public static IReadOnlyList<GradientBucket> Plan(ParamLayout layout, long bucketBytes)
    {
        ArgumentNullException.ThrowIfNull(layout);
        if (bucketBytes < sizeof(float))
            throw new ArgumentOutOfRangeException(nameof(bucketBytes), bucketBytes, "GradientBuckets: a bucket must hold at least one float; use megabytes (25 MB as DDP).");
        long most = bucketBytes / sizeof(float);
        var buckets = new List<GradientBucket>();
        var floats = layout.Params.Where(p => p.DType == DType.Float32 && p.Length > 0).OrderByDescending(p => p.Offset).ToList();
        long end = -1, start = 0;
        foreach (var p in floats)
        {
            if (end >= 0 && end - p.Offset > most)
            {
                buckets.Add(new GradientBucket(start, end - start));
                end = -1;
            }

            if (end < 0)
                end = p.Offset + p.Length;
            start = p.Offset;
        }

        if (end >= 0)
            buckets.Add(new GradientBucket(start, end - start));
        return buckets;
    }
}
