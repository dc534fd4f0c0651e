namespace IlgpuTrain.Training.Distributed;

/// <summary>
/// Data-parallel training over a <see cref="ProcessGroup"/> (<see cref="TrainerOptions.Distributed"/>):
/// each rank trains on its shard of every epoch, the gradients are averaged across ranks in
/// buckets, and decisions (a skipped step, the NaN guard, early stopping) are taken together.
/// With gradient accumulation (a <see cref="Optimizers.MultiSteps"/> optimizer) the ranks
/// all-reduce once per group, as DDP's no_sync: the group's last micro-batch carries each rank's
/// accumulated sum, and a group pending at an epoch's end is averaged across the ranks there.
/// </summary>
/// <param name="Group">The processes (one per rank; see <see cref="ProcessGroup.Create"/>).</param>
public sealed record DistributedOptions(ProcessGroup Group)
{
    /// <summary>The default <see cref="BucketBytes"/>: 25 MB, as PyTorch's DistributedDataParallel.</summary>
    public const long DefaultBucketBytes = 25L * 1024 * 1024;

    /// <summary>
    /// The size of a gradient bucket (25 MB): the flat gradient buffer is all-reduced in pieces
    /// of about this size, cut at parameter boundaries, last parameters first, each started as soon
    /// as the backward has finished its gradients (<see cref="OverlapBackward"/>) and is on the host.
    /// </summary>
    public long BucketBytes { get; init; } = DefaultBucketBytes;

    /// <summary>
    /// Synchronized batch normalization (false): every BatchNorm layer normalizes with the mean
    /// and variance over all ranks' batches and sums its backward's Σdy and Σdy x̂ over the ranks,
    /// as PyTorch's SyncBatchNorm (convert_sync_batchnorm), so N ranks × batch B normalize as one
    /// batch of N B. Off: each rank normalizes with its own batch (PyTorch's default under DDP).
    /// </summary>
    public bool SyncBatchNorm { get; init; }

    /// <summary>
    /// Overlap the gradient all-reduce with the backward (true, as DistributedDataParallel): a
    /// bucket's nonblocking all-reduce starts as soon as the backward has finished every gradient
    /// in it (and the buckets before it in the plan have started), and MPI's progress is driven
    /// between the backward's operations. False: every bucket starts after the backward ends. The
    /// averaged gradients are the same bits either way; only when the buckets travel differs.
    /// </summary>
    public bool OverlapBackward { get; init; } = true;

    /// <summary>Throws when an option is out of range, naming it and the fix.</summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(Group, nameof(Group));
        if (BucketBytes < sizeof(float))
            throw new ArgumentOutOfRangeException(nameof(BucketBytes), BucketBytes, "DistributedOptions.BucketBytes must hold at least one float; use megabytes (default 25 MB).");
    }
}
