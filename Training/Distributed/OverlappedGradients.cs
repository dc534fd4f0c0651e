namespace IlgpuTrain.Training.Distributed;

/// <summary>
/// The gradient all-reduce of one training step overlapped with its backward, as PyTorch's
/// DistributedDataParallel does: the tape reports each parameter's gradient as final
/// (<see cref="IGradientReadyObserver"/>); a bucket whose parameters are all final, and whose
/// predecessors in the plan have started, starts its nonblocking all-reduce at once; MPI's progress
/// is driven between the backward's operations; <see cref="Complete"/> waits for every bucket.
/// </summary>
/// <remarks>
/// Buckets start strictly in the plan's order (last parameters first, the order the backward
/// finishes them), so every rank issues the same collectives in the same order whatever its data.
/// The buckets and the reduction are those of the blocking path (ProcessGroup's bucketed AllReduce):
/// only when each bucket starts differs, so the averaged gradients are the same bits.
/// </remarks>
internal sealed class OverlappedGradients : IGradientReadyObserver
{
    private readonly ProcessGroup _group;
    private readonly Device _device;
    private readonly IReadOnlyList<GradientBucket> _buckets;
    private readonly ReduceOp _op;
    private readonly string _what;
    private readonly int[] _waiting;
    private BucketReduction? _reduction;
    private ParamTree? _tree;
    private int _next;
    private readonly ParamTree? _pending;
    private readonly float _pendingScale;

    /// <summary>Plans the step's reduction; nothing starts before the first gradient is final.</summary>
    /// <param name="group">The ranks.</param>
    /// <param name="device">The gradients' device.</param>
    /// <param name="layout">The parameters' layout (the gradient tree's).</param>
    /// <param name="buckets">The buckets of <paramref name="layout"/> (<see cref="GradientBuckets.Plan"/>).</param>
    /// <param name="op">How to combine the gradients (Mean).</param>
    /// <param name="what">What is reduced, for the timeout message.</param>
    /// <param name="pending">Gradients accumulated locally over earlier micro-batches, added into each bucket (times <paramref name="pendingScale"/>, the step's loss scale) just before it starts; null for none.</param>
    /// <param name="pendingScale">The factor of <paramref name="pending"/>.</param>
    public OverlappedGradients(ProcessGroup group, Device device, ParamLayout layout, IReadOnlyList<GradientBucket> buckets, ReduceOp op, string what, ParamTree? pending = null, float pendingScale = 1f)
    {
        _pending = pending;
        _pendingScale = pendingScale;
        _group = group;
        _device = device;
        _buckets = buckets;
        _op = op;
        _what = what;
        _waiting = new int[buckets.Count];
        foreach (var p in layout.Params)
        {
            if (p.DType == DType.Float32 && p.Length > 0)
                _waiting[BucketOf(p)]++;
        }
    }

    /// <summary>Buckets started so far (all of them after <see cref="Complete"/>).</summary>
    public int Started => _next;

    /// <inheritdoc/>
    public void Ready(ParamTree gradients, ParamInfo parameter)
    {
        ArgumentNullException.ThrowIfNull(gradients);
        ArgumentNullException.ThrowIfNull(parameter);
        Bind(gradients);
        int b = BucketOf(parameter);
        if (--_waiting[b] < 0)
            throw new InvalidOperationException($"Trainer: the gradient of {parameter.Path} was reported final twice in one backward; each parameter is reported once.");
        while (_next < _buckets.Count && _waiting[_next] == 0)
            Launch(_next++);
    }

    /// <inheritdoc/>
    public void Progress() => _reduction?.Progress();

    /// <summary>Starts the buckets still waiting (none after a full backward) and waits for all, against the group's timeout.</summary>
    /// <param name="gradients">The gradient tree the backward returned.</param>
    public void Complete(ParamTree gradients)
    {
        ArgumentNullException.ThrowIfNull(gradients);
        Bind(gradients);
        while (_next < _buckets.Count)
            Launch(_next++);
        _reduction!.Complete();
    }

    /// <summary>Adds the locally accumulated gradients (scaled) into a gradient buffer, in the buckets' ranges, before they are reduced.</summary>
    /// <param name="device">The device.</param>
    /// <param name="gradients">The step's gradients (scaled by the loss scale).</param>
    /// <param name="pending">The accumulated, unscaled gradients.</param>
    /// <param name="scale">The step's loss scale.</param>
    /// <param name="bucket">The range.</param>
    internal static void Fold(Device device, ParamTree gradients, ParamTree pending, float scale, GradientBucket bucket) =>
        Elementwise.Axpy(device.Kernels, scale, pending.Flat32.SubView(bucket.Offset, bucket.Length), gradients.Flat32.SubView(bucket.Offset, bucket.Length));

    private void Launch(int index)
    {
        if (_pending is not null)
            Fold(_device, _tree!, _pending, _pendingScale, _buckets[index]);
        _reduction!.Launch(index);
    }

    private void Bind(ParamTree gradients)
    {
        if (_tree is null)
        {
            _tree = gradients;
            _reduction = _group.BeginBuckets(_device, gradients.Flat32, _buckets, _op, _what);
        }
        else if (!ReferenceEquals(_tree, gradients))
        {
            throw new InvalidOperationException("Trainer: one overlapped gradient reduction saw two gradient trees; make one per backward.");
        }
    }

    // The bucket holding a parameter's slot (the buckets are contiguous, from the end of the buffer to its start).
    private int BucketOf(ParamInfo p)
    {
        int lo = 0, hi = _buckets.Count - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) / 2;
            var b = _buckets[mid];
            if (p.Offset < b.Offset)
                lo = mid + 1;
            else if (p.Offset >= b.Offset + b.Length)
                hi = mid - 1;
            else
                return mid;
        }

        throw new ArgumentException($"Trainer: the gradient of {p.Path} (offset {p.Offset}) lies in no bucket; plan the buckets from the parameters' layout.", nameof(p));
    }
}
