using ILGPU;
using ILGPU.Runtime;
using System.Runtime.InteropServices;

namespace IlgpuTrain.Training.Distributed;

/// <summary>How a collective combines the ranks' values.</summary>
public enum ReduceOp
{
    /// <summary>The sum over ranks.</summary>
    Sum,

    /// <summary>The sum over ranks divided by the world size.</summary>
    Mean,

    /// <summary>The largest value.</summary>
    Max,

    /// <summary>The smallest value.</summary>
    Min,
}

/// <summary>Which collective engine a process group runs on.</summary>
public enum DistributedBackend
{
    /// <summary>NCCL when every rank trains on a CUDA device and libnccl loads, else MPI.</summary>
    Auto,

    /// <summary>Open MPI (CPU devices, any device through host copies, across nodes).</summary>
    Mpi,

    /// <summary>NCCL on the CUDA devices' memory and streams, bootstrapped over MPI.</summary>
    Nccl,
}

/// <summary>The element types collectives move.</summary>
internal enum ElementKind
{
    Float32,
    Float64,
    Int32,
    Byte,
}

/// <summary>A distributed run's failure: a launch, a library, a timeout or a mismatch between ranks.</summary>
public sealed class DistributedException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">What went wrong and what to do.</param>
    public DistributedException(string message)
        : base(message)
    {
    }
}

/// <summary>
/// The processes of a data-parallel run and their collectives: all-reduce (sum, mean, max, min),
/// broadcast, all-gather and barrier, on host spans, on tensors and on a <see cref="ParamTree"/>'s
/// flat buffers. Every rank must call the same collectives in the same order.
/// </summary>
/// <remarks>
/// <para>Each collective is started nonblocking and polled against <see cref="Timeout"/>: when a
/// rank died or hangs, the others do not wait forever. Past the deadline the rank prints which
/// collective on which rank did not finish, and the whole job is aborted (MPI_Abort), so
/// mpirun returns a failure in bounded time.</para>
/// <para>A group is a value the caller creates once per process (<see cref="MpiProcessGroup.Create"/>
/// or <see cref="Create"/>), passes to the trainer in <see cref="TrainerOptions.Distributed"/> and disposes at the end.</para>
/// </remarks>
public abstract class ProcessGroup : IDisposable, ICrossRankSum
{
    /// <summary>The default <see cref="Timeout"/>: 5 minutes.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(5);

    /// <summary>Creates a group.</summary>
    /// <param name="timeout">How long a collective may take before the job is aborted.</param>
    protected ProcessGroup(TimeSpan timeout)
    {
        if (timeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "ProcessGroup: the collective timeout must be positive; give seconds to minutes (default 5 minutes).");
        Timeout = timeout;
    }

    /// <summary>This process's rank, 0 to <see cref="WorldSize"/> − 1.</summary>
    public abstract int Rank { get; }

    /// <summary>The number of processes.</summary>
    public abstract int WorldSize { get; }

    /// <summary>This process's rank on its node (which GPU it uses).</summary>
    public abstract int LocalRank { get; }

    /// <summary>The collective engine.</summary>
    public abstract DistributedBackend Backend { get; }

    /// <summary>How long one collective may take before the job is aborted with a message.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>Whether this is rank 0, the one that logs and writes checkpoints.</summary>
    public bool IsMain => Rank == 0;

    /// <summary>
    /// The process group of this launch: NCCL when <paramref name="backend"/> asks for it, or
    /// (<see cref="DistributedBackend.Auto"/>) when every rank's device is CUDA and libnccl loads; MPI otherwise.
    /// </summary>
    /// <param name="device">This rank's device.</param>
    /// <param name="backend">The engine, or Auto.</param>
    /// <param name="timeout">The collective timeout (null for <see cref="DefaultTimeout"/>).</param>
    /// <returns>The group (the caller disposes it at the end of the process).</returns>
    public static ProcessGroup Create(Device device, DistributedBackend backend = DistributedBackend.Auto, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        var mpi = MpiProcessGroup.Create(timeout ?? DefaultTimeout);
        try
        {
            if (backend == DistributedBackend.Mpi)
                return mpi;
            Span<int> cuda = [device.Kind == DeviceKind.Cuda ? 1 : 0];
            mpi.AllReduce(cuda, ReduceOp.Min, "backend choice (every rank on CUDA?)");
            if (cuda[0] == 0)
            {
                if (backend == DistributedBackend.Nccl)
                    throw new DistributedException($"ProcessGroup: the NCCL backend needs a CUDA device on every rank, but rank {mpi.Rank} or another trains on a non-CUDA device ({device.Name}); use the MPI backend (--backend mpi) or CUDA devices.");
                return mpi;
            }

            return NcclProcessGroup.Create(device, mpi, required: backend == DistributedBackend.Nccl);
        }
        catch
        {
            mpi.Dispose();
            throw;
        }
    }

    /// <summary>All-reduces <paramref name="data"/> in place.</summary>
    /// <param name="data">This rank's values; the combined values on return.</param>
    /// <param name="op">How to combine them.</param>
    /// <param name="what">What is reduced, for the timeout message.</param>
    public void AllReduce(Span<float> data, ReduceOp op, string what) => OnHost(data, ElementKind.Float32, op, what);

    /// <inheritdoc cref="AllReduce(Span{float}, ReduceOp, string)"/>
    public void AllReduce(Span<double> data, ReduceOp op, string what) => OnHost(data, ElementKind.Float64, op, what);

    /// <summary>Sums <paramref name="values"/> over the ranks (an all-reduce), for <see cref="StepScope.BatchNormSync"/>.</summary>
    /// <param name="values">This rank's values; the sums on return.</param>
    /// <param name="what">What is summed, for the timeout message.</param>
    public void Sum(Span<double> values, string what) => AllReduce(values, ReduceOp.Sum, what);

    /// <summary>All-reduces <paramref name="data"/> in place; Mean is refused (use Sum and divide).</summary>
    /// <param name="data">This rank's values; the combined values on return.</param>
    /// <param name="op">Sum, Max or Min.</param>
    /// <param name="what">What is reduced, for the timeout message.</param>
    public void AllReduce(Span<int> data, ReduceOp op, string what)
    {
        if (op == ReduceOp.Mean)
            throw new ArgumentException("ProcessGroup.AllReduce: an integer mean would truncate; reduce with Sum and divide by WorldSize.", nameof(op));
        OnHost(data, ElementKind.Int32, op, what);
    }

    /// <summary>Sets <paramref name="data"/> on every rank to rank <paramref name="root"/>'s values.</summary>
    /// <param name="data">The values (read on the root, written elsewhere).</param>
    /// <param name="root">The rank that sends.</param>
    /// <param name="what">What is sent, for the timeout message.</param>
    public unsafe void Broadcast(Span<byte> data, int root, string what)
    {
        RequireRoot(root);
        fixed (byte* p = data)
            StartBroadcast((nint)p, data.Length, ElementKind.Byte, root, what).Wait();
    }

    /// <inheritdoc cref="Broadcast(Span{byte}, int, string)"/>
    public void Broadcast(Span<float> data, int root, string what) => Broadcast(MemoryMarshal.AsBytes(data), root, what);

    /// <inheritdoc cref="Broadcast(Span{byte}, int, string)"/>
    public void Broadcast(Span<int> data, int root, string what) => Broadcast(MemoryMarshal.AsBytes(data), root, what);

    /// <summary>Every rank's bytes, in rank order (the lengths may differ).</summary>
    /// <param name="mine">This rank's bytes.</param>
    /// <param name="what">What is gathered, for the timeout message.</param>
    /// <returns>One array per rank.</returns>
    public unsafe byte[][] AllGather(ReadOnlySpan<byte> mine, string what)
    {
        var lengths = new int[WorldSize];
        int length = mine.Length;
        fixed (int* all = lengths)
            StartAllGather((nint)(&length), (nint)all, 1, ElementKind.Int32, what + " (lengths)").Wait();
        int widest = lengths.Max();
        var send = new byte[widest];
        mine.CopyTo(send);
        var receive = new byte[checked(widest * WorldSize)];
        fixed (byte* s = send)
        fixed (byte* r = receive)
            StartAllGather((nint)s, (nint)r, widest, ElementKind.Byte, what).Wait();
        return [.. lengths.Select((n, rank) => receive.AsSpan(rank * widest, n).ToArray())];
    }

    /// <summary>Waits until every rank has reached the barrier (or the timeout aborts the job).</summary>
    /// <param name="what">What the barrier marks, for the timeout message.</param>
    public void Barrier(string what) => StartBarrier(what).Wait();

    /// <summary>All-reduces a device tensor (Float32) in place.</summary>
    /// <param name="tensor">This rank's values; the combined values on return.</param>
    /// <param name="op">How to combine them.</param>
    /// <param name="what">What is reduced, for the timeout message.</param>
    public void AllReduce(Tensor tensor, ReduceOp op, string what)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        AllReduce(tensor.Device, tensor.View<float>(), op, what);
    }

    /// <summary>Sets a device tensor on every rank to rank <paramref name="root"/>'s (any dtype).</summary>
    /// <param name="tensor">The tensor (read on the root, written elsewhere).</param>
    /// <param name="root">The rank that sends.</param>
    /// <param name="what">What is sent, for the timeout message.</param>
    public void Broadcast(Tensor tensor, int root, string what)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        var bytes = tensor.DType switch
        {
            DType.Float32 => tensor.View<float>().Cast<byte>(),
            DType.Float16 => tensor.View<ILGPU.Half>().Cast<byte>(),
            _ => tensor.View<int>().Cast<byte>(),
        };
        BroadcastView(tensor.Device, bytes, root, what);
    }

    /// <summary>Every rank's tensor stacked in rank order: shape (WorldSize, ...tensor's shape), a new tensor the caller owns.</summary>
    /// <param name="tensor">This rank's tensor (Float32; the same shape on every rank).</param>
    /// <param name="what">What is gathered, for the timeout message.</param>
    /// <returns>The stacked tensor on the same device.</returns>
    public unsafe Tensor AllGather(Tensor tensor, string what)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        var mine = tensor.ToHost();
        var all = new float[checked(mine.Length * WorldSize)];
        fixed (float* s = mine)
        fixed (float* r = all)
            StartAllGather((nint)s, (nint)r, mine.Length, ElementKind.Float32, what).Wait();
        return Tensor.FromHost(tensor.Device, all.AsSpan(), new Shape([WorldSize, .. tensor.Shape]));
    }

    /// <summary>All-reduces a tree's Float32 values (one flat buffer) in place, such as gradients with <see cref="ReduceOp.Mean"/>.</summary>
    /// <param name="tree">The tree; its Float32 buffer holds the combined values on return.</param>
    /// <param name="op">How to combine them.</param>
    /// <param name="what">What is reduced, for the timeout message.</param>
    public void AllReduce(ParamTree tree, ReduceOp op, string what)
    {
        ArgumentNullException.ThrowIfNull(tree);
        AllReduce(tree.Device, tree.Flat32, op, what);
    }

    /// <summary>Sets a tree (every dtype's flat buffer) on every rank to rank <paramref name="root"/>'s, as parameters and buffers at the start of a run.</summary>
    /// <param name="tree">The tree (read on the root, written elsewhere).</param>
    /// <param name="root">The rank that sends.</param>
    /// <param name="what">What is sent, for the timeout message.</param>
    public void Broadcast(ParamTree tree, int root, string what)
    {
        ArgumentNullException.ThrowIfNull(tree);
        BroadcastView(tree.Device, tree.Flat<float>().Cast<byte>(), root, what + " (float32)");
        BroadcastView(tree.Device, tree.Flat<ILGPU.Half>().Cast<byte>(), root, what + " (float16)");
        BroadcastView(tree.Device, tree.Flat<int>().Cast<byte>(), root, what + " (int32)");
    }

    /// <summary>
    /// All-reduces a device view in place: on the CPU accelerator directly in its (host) memory, on
    /// other devices through a host copy (the NCCL group overrides this to stay on the GPU).
    /// </summary>
    /// <param name="device">The view's device.</param>
    /// <param name="view">The values.</param>
    /// <param name="op">How to combine them.</param>
    /// <param name="what">What is reduced, for the timeout message.</param>
    public virtual void AllReduce(Device device, ArrayView<float> view, ReduceOp op, string what)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (view.Length == 0)
            return;
        if (device.Accelerator.AcceleratorType == AcceleratorType.CPU)
        {
            device.Synchronize();
            foreach (var (at, n) in Chunks(view.Length))
                Finish(Start(view.SubView(at, n).LoadEffectiveAddressAsPtr(), (int)n, ElementKind.Float32, op, what), view.SubView(at, n).LoadEffectiveAddressAsPtr(), (int)n, op);
            return;
        }

        var host = Transfer.ToHost(device.Stream, view);
        AllReduce(host.AsSpan(), op, what);
        Transfer.ToDevice<float>(device.Stream, host, view);
    }

    /// <summary>
    /// All-reduces a flat device buffer bucket by bucket: every bucket's nonblocking all-reduce is
    /// started as soon as its values are on the host (at once on the CPU accelerator, whose memory
    /// is the host's), so one bucket's transfer overlaps the others' reduction; then all are awaited.
    /// </summary>
    /// <param name="device">The buffer's device.</param>
    /// <param name="flat">The buffer (such as a gradient ParamTree's <see cref="ParamTree.Flat32"/>).</param>
    /// <param name="buckets">The pieces (<see cref="GradientBuckets.Plan"/>).</param>
    /// <param name="op">How to combine the values.</param>
    /// <param name="what">What is reduced, for the timeout message.</param>
    public virtual void AllReduce(Device device, ArrayView<float> flat, IReadOnlyList<GradientBucket> buckets, ReduceOp op, string what)
    {
        var reduction = BeginBuckets(device, flat, buckets, op, what);
        for (int i = 0; i < buckets.Count; i++)
            reduction.Launch(i);
        reduction.Complete();
    }

    /// <summary>
    /// The all-reduce of a flat device buffer's buckets, each started on its own (<see cref="BucketReduction.Launch"/>,
    /// in the buckets' order on every rank) and all awaited by <see cref="BucketReduction.Complete"/>:
    /// on the host through MPI's nonblocking all-reduce (directly in the CPU accelerator's memory,
    /// through a pinned host copy on other devices).
    /// </summary>
    /// <param name="device">The buffer's device.</param>
    /// <param name="flat">The buffer.</param>
    /// <param name="buckets">The pieces (<see cref="GradientBuckets.Plan"/>).</param>
    /// <param name="op">How to combine the values.</param>
    /// <param name="what">What is reduced, for the timeout message.</param>
    /// <returns>The reduction, with no bucket started.</returns>
    internal virtual BucketReduction BeginBuckets(Device device, ArrayView<float> flat, IReadOnlyList<GradientBucket> buckets, ReduceOp op, string what)
    {
        ArgumentNullException.ThrowIfNull(device);
        RequireFit(flat, buckets);
        return new HostBucketReduction(this, device, flat, buckets, op, what, device.Accelerator.AcceleratorType == AcceleratorType.CPU ? null : Staging(flat.Length));
    }

    /// <summary>Throws when a bucket does not lie inside the buffer.</summary>
    private protected static void RequireFit(ArrayView<float> flat, IReadOnlyList<GradientBucket> buckets)
    {
        ArgumentNullException.ThrowIfNull(buckets);
        foreach (var b in buckets)
        {
            if (b.Offset < 0 || b.Length < 0 || b.Offset + b.Length > flat.Length || b.Length > int.MaxValue)
                throw new ArgumentException($"ProcessGroup: bucket [{b.Offset}, {b.Offset + b.Length}) does not fit the buffer of {flat.Length} floats (or exceeds 2^31 elements); plan the buckets from this buffer's layout.", nameof(buckets));
        }
    }

    /// <summary>Sets a device view's bytes on every rank to the root's (see <see cref="AllReduce(Device, ArrayView{float}, ReduceOp, string)"/> for where the bytes travel).</summary>
    /// <param name="device">The view's device.</param>
    /// <param name="view">The bytes.</param>
    /// <param name="root">The rank that sends.</param>
    /// <param name="what">What is sent, for the timeout message.</param>
    public virtual void BroadcastView(Device device, ArrayView<byte> view, int root, string what)
    {
        ArgumentNullException.ThrowIfNull(device);
        RequireRoot(root);
        if (view.Length == 0)
            return;
        if (device.Accelerator.AcceleratorType == AcceleratorType.CPU)
        {
            device.Synchronize();
            foreach (var (at, n) in Chunks(view.Length))
                StartBroadcast(view.SubView(at, n).LoadEffectiveAddressAsPtr(), (int)n, ElementKind.Byte, root, what).Wait();
            return;
        }

        var host = Transfer.ToHost(device.Stream, view);
        Broadcast(host.AsSpan(), root, what);
        Transfer.ToDevice<byte>(device.Stream, host, view);
    }

    /// <summary>Starts an all-reduce of <paramref name="count"/> elements at <paramref name="data"/> in place (Mean starts a Sum; <see cref="Finish"/> divides).</summary>
    internal abstract PendingCollective Start(nint data, int count, ElementKind kind, ReduceOp op, string what);

    /// <summary>Starts a broadcast of <paramref name="count"/> elements at <paramref name="data"/> from <paramref name="root"/>.</summary>
    internal abstract PendingCollective StartBroadcast(nint data, int count, ElementKind kind, int root, string what);

    /// <summary>Starts an all-gather: <paramref name="count"/> elements from each rank into <paramref name="receive"/> in rank order.</summary>
    internal abstract PendingCollective StartAllGather(nint send, nint receive, int count, ElementKind kind, string what);

    /// <summary>Starts a barrier.</summary>
    internal abstract PendingCollective StartBarrier(string what);

    /// <summary>Waits for a started Float32 all-reduce and divides by the world size for a mean.</summary>
    internal unsafe void Finish(PendingCollective pending, nint data, int count, ReduceOp op)
    {
        pending.Wait();
        if (op != ReduceOp.Mean)
            return;
        var span = new Span<float>((void*)data, count);
        float inverse = 1f / WorldSize;
        for (int i = 0; i < span.Length; i++)
            span[i] *= inverse;
    }

    /// <summary>
    /// Ends the job after a collective that did not finish in time: prints
    /// <paramref name="message"/> on standard error and aborts every rank.
    /// </summary>
    /// <param name="message">What timed out, on which rank.</param>
    internal abstract void Abort(string message);

    /// <summary>Finishes the group (MPI_Finalize).</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the engine.</summary>
    /// <param name="disposing">Whether called from <see cref="Dispose()"/>.</param>
    protected abstract void Dispose(bool disposing);

    /// <inheritdoc/>
    public override string ToString() => $"{Backend} rank {Rank} of {WorldSize} (local rank {LocalRank})";

    private unsafe void OnHost<T>(Span<T> data, ElementKind kind, ReduceOp op, string what)
        where T : unmanaged
    {
        fixed (T* p = data)
            Start((nint)p, data.Length, kind, op, what).Wait();
        if (op != ReduceOp.Mean)
            return;
        if (kind == ElementKind.Float32)
        {
            var f = MemoryMarshal.Cast<T, float>(data);
            float inverse = 1f / WorldSize;
            for (int i = 0; i < f.Length; i++)
                f[i] *= inverse;
        }
        else
        {
            var d = MemoryMarshal.Cast<T, double>(data);
            for (int i = 0; i < d.Length; i++)
                d[i] /= WorldSize;
        }
    }

    private float[]? _staging;

    // A pinned host copy of a device buffer, kept from one step to the next.
    private float[] Staging(long length)
    {
        if (_staging is null || _staging.Length != length)
            _staging = GC.AllocateUninitializedArray<float>(checked((int)length), pinned: true);
        return _staging;
    }

    private void RequireRoot(int root)
    {
        if (root < 0 || root >= WorldSize)
            throw new ArgumentOutOfRangeException(nameof(root), root, $"ProcessGroup: the root must be a rank from 0 to {WorldSize - 1}.");
    }

    // MPI counts are ints; larger buffers go in pieces.
    private static IEnumerable<(long At, long Count)> Chunks(long length)
    {
        const long Most = 1 << 30;
        for (long at = 0; at < length; at += Most)
            yield return (at, Math.Min(Most, length - at));
    }
}

/// <summary>A started collective; <see cref="Wait"/> polls it against the group's timeout.</summary>
internal abstract class PendingCollective
{
    /// <summary>Returns when the collective has finished on this rank, or aborts the job past the deadline.</summary>
    public abstract void Wait();

    /// <summary>Whether it has finished (drives progress).</summary>
    /// <returns>True when done.</returns>
    public abstract bool Test();
}

/// <summary>
/// A bucketed all-reduce of a flat device buffer whose buckets start one at a time
/// (<see cref="ProcessGroup.BeginBuckets"/>): every rank launches the same buckets in the same order.
/// </summary>
internal abstract class BucketReduction
{
    /// <summary>Starts bucket <paramref name="index"/>; its values must be final in the device's stream order.</summary>
    /// <param name="index">The bucket, in the plan's order.</param>
    public abstract void Launch(int index);

    /// <summary>Drives the started buckets (MPI's progress); never blocks.</summary>
    public abstract void Progress();

    /// <summary>Starts the buckets not started yet, waits for all (against the group's timeout) and leaves the combined values in the buffer.</summary>
    public abstract void Complete();
}

/// <summary>The MPI bucket reduction: MPI_Iallreduce per bucket on host memory, MPI_Test for progress, the mean taken on the host as each finishes.</summary>
internal sealed unsafe class HostBucketReduction(ProcessGroup group, Device device, ArrayView<float> flat, IReadOnlyList<GradientBucket> buckets, ReduceOp op, string what, float[]? staging) : BucketReduction
{
    private readonly (PendingCollective Pending, nint Data, int Count)?[] _started = new (PendingCollective, nint, int)?[buckets.Count];
    private readonly System.Runtime.InteropServices.GCHandle _pin = staging is null ? default : System.Runtime.InteropServices.GCHandle.Alloc(staging, System.Runtime.InteropServices.GCHandleType.Pinned);
    private int _polled;

    public override void Launch(int index)
    {
        if (_started[index] is not null)
            throw new InvalidOperationException($"ProcessGroup: bucket {index + 1} of {buckets.Count} of {what} was started twice; start each bucket once.");
        var b = buckets[index];
        nint data;
        if (staging is null)
        {
            device.Synchronize();                                                                   // the kernels that wrote the bucket have finished
            data = flat.SubView(b.Offset, b.Length).LoadEffectiveAddressAsPtr();
        }
        else
        {
            Transfer.ToHost(device.Stream, flat.SubView(b.Offset, b.Length), staging.AsSpan((int)b.Offset, (int)b.Length));
            data = _pin.AddrOfPinnedObject() + (nint)(b.Offset * sizeof(float));
        }

        _started[index] = (group.Start(data, (int)b.Length, ElementKind.Float32, op, $"{what} (bucket {index + 1} of {buckets.Count})"), data, (int)b.Length);
    }

    public override void Progress()
    {
        // MPI advances its nonblocking collectives only inside MPI calls: test the oldest unfinished one.
        while (_polled < _started.Length && _started[_polled] is { } s && s.Pending.Test())
            _polled++;
    }

    public override void Complete()
    {
        try
        {
            for (int i = 0; i < _started.Length; i++)
            {
                if (_started[i] is null)
                    Launch(i);
            }

            foreach (var s in _started)
                group.Finish(s!.Value.Pending, s.Value.Data, s.Value.Count, op);
            if (staging is not null)
                Transfer.ToDevice<float>(device.Stream, staging, flat);
        }
        finally
        {
            if (_pin.IsAllocated)
                _pin.Free();
        }
    }
}

/// <summary>A collective that finished when it started.</summary>
internal sealed class DoneCollective : PendingCollective
{
    public static readonly DoneCollective Instance = new();

    public override void Wait()
    {
    }

    public override bool Test() => true;
}
