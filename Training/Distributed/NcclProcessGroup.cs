using ILGPU;
using ILGPU.Runtime;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ILGPU.Runtime.Cuda;

namespace IlgpuTrain.Training.Distributed;

/// <summary>
/// A process group whose device collectives run in NCCL on the CUDA devices' memory and on the
/// accelerator's stream (no host copies), bootstrapped over MPI: rank 0's ncclGetUniqueId is
/// broadcast with MPI, then every rank joins with ncclCommInitRank. Host collectives (metrics,
/// decisions, fingerprints) stay on MPI.
/// </summary>
/// <remarks>
/// A device collective is enqueued on the stream and then polled (cuStreamQuery) against the
/// group's timeout; past it the NCCL communicator is aborted and the job too, with a message.
/// </remarks>
public sealed unsafe class NcclProcessGroup : ProcessGroup
{
    // ncclDataType_t and ncclRedOp_t (nccl.h).
    private const int NcclUint8 = 1;
    private const int NcclFloat32 = 7;
    private const int NcclSum = 0;
    private const int NcclMax = 2;
    private const int NcclMin = 3;
    private const int NcclAvg = 4;
    private const int CudaErrorNotReady = 600;

    private static readonly string[] Candidates = ["libnccl.so.2", "libnccl.so"];

    private readonly MpiProcessGroup _mpi;
    private readonly Native _nccl;
    private readonly Device _device;
    private readonly nint _comm;
    private readonly nint _stream;
    private bool _disposed;

    private NcclProcessGroup(MpiProcessGroup mpi, Native nccl, Device device, nint comm, nint stream)
        : base(mpi.Timeout)
    {
        _mpi = mpi;
        _nccl = nccl;
        _device = device;
        _comm = comm;
        _stream = stream;
    }

    /// <inheritdoc/>
    public override int Rank => _mpi.Rank;

    /// <inheritdoc/>
    public override int WorldSize => _mpi.WorldSize;

    /// <inheritdoc/>
    public override int LocalRank => _mpi.LocalRank;

    /// <inheritdoc/>
    public override DistributedBackend Backend => DistributedBackend.Nccl;

    /// <summary>Whether libnccl and the CUDA driver library load on this machine (what NCCL needs besides a CUDA device).</summary>
    /// <returns>Null when they do, else why not.</returns>
    public static string? Unavailable()
    {
        if (!NativeLibrary.TryLoad("libcuda.so.1", out _))
            return "the CUDA driver (libcuda.so.1) is not installed";
        return Candidates.Any(n => NativeLibrary.TryLoad(n, out _)) ? null : $"libnccl is not installed (tried {string.Join(", ", Candidates)}; apt-get install libnccl2)";
    }

    /// <summary>
    /// Joins every rank of <paramref name="mpi"/> into one NCCL communicator on <paramref name="device"/>
    /// (a CUDA device: the local rank's GPU). A collective call on every rank.
    /// </summary>
    /// <param name="device">This rank's CUDA device.</param>
    /// <param name="mpi">The MPI group that bootstraps NCCL and carries the host collectives; the result owns it.</param>
    /// <param name="required">Whether a missing libnccl is an error (true) or leaves the MPI group (false).</param>
    /// <returns>The NCCL group, or <paramref name="mpi"/> itself when NCCL is not installed and not required.</returns>
    public static ProcessGroup Create(Device device, MpiProcessGroup mpi, bool required = true)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(mpi);
        if (device.Accelerator is not CudaAccelerator)
            throw new DistributedException($"NCCL: rank {mpi.Rank} trains on {device.Name}, not a CUDA device; use the MPI backend.");
        string? missing = Unavailable();
        Span<int> everywhere = [missing is null ? 1 : 0];
        mpi.AllReduce(everywhere, ReduceOp.Min, "NCCL availability");
        if (everywhere[0] == 0)
        {
            if (required)
                throw new DistributedException($"NCCL: rank {mpi.Rank}: {missing ?? "another rank has no libnccl"}; install libnccl2 on every node or use the MPI backend (--backend mpi).");
            return mpi;
        }

        var nccl = Native.Load();
        var id = default(UniqueId);
        if (mpi.Rank == 0)
            nccl.Check(nccl.GetUniqueId(&id), "ncclGetUniqueId");
        mpi.Broadcast(new Span<byte>(&id, sizeof(UniqueId)), 0, "the NCCL unique id");
        device.Accelerator.Bind();
        nint comm;
        nccl.Check(nccl.CommInitRank(&comm, mpi.WorldSize, id, mpi.Rank), "ncclCommInitRank");
        var stream = ((CudaStream)device.Stream).StreamPtr;
        return new NcclProcessGroup(mpi, nccl, device, comm, stream);
    }

    /// <inheritdoc/>
    public override void AllReduce(Device device, ArrayView<float> view, ReduceOp op, string what)
    {
        RequireOwnDevice(device);
        if (view.Length == 0)
            return;
        int ncclOp = op switch { ReduceOp.Mean => NcclAvg, ReduceOp.Max => NcclMax, ReduceOp.Min => NcclMin, _ => NcclSum };
        nint p = view.LoadEffectiveAddressAsPtr();
        _nccl.Check(_nccl.AllReduce(p, p, (nuint)view.Length, NcclFloat32, ncclOp, _comm, _stream), "ncclAllReduce");
        WaitForStream($"NCCL all-reduce of {what} ({view.Length} floats)");
    }

    /// <summary>The bucketed all-reduce on the device's stream: each bucket is an ncclAllReduce enqueued behind the kernels that wrote it (NCCL's average for a mean); <see cref="BucketReduction.Complete"/> waits for the stream.</summary>
    /// <inheritdoc/>
    internal override BucketReduction BeginBuckets(Device device, ArrayView<float> flat, IReadOnlyList<GradientBucket> buckets, ReduceOp op, string what)
    {
        RequireOwnDevice(device);
        RequireFit(flat, buckets);
        return new StreamBuckets(this, flat, buckets, op, what);
    }

    /// <inheritdoc/>
    public override void BroadcastView(Device device, ArrayView<byte> view, int root, string what)
    {
        RequireOwnDevice(device);
        if (view.Length == 0)
            return;
        nint p = view.LoadEffectiveAddressAsPtr();
        _nccl.Check(_nccl.Broadcast(p, p, (nuint)view.Length, NcclUint8, root, _comm, _stream), "ncclBroadcast");
        WaitForStream($"NCCL broadcast of {what} from rank {root} ({view.Length} bytes)");
    }

    /// <summary>Gathers every rank's <paramref name="send"/> into <paramref name="receive"/> (WorldSize × its length, rank order) on the device.</summary>
    /// <param name="send">This rank's values.</param>
    /// <param name="receive">The gathered values.</param>
    /// <param name="what">What is gathered, for the timeout message.</param>
    public void AllGather(ArrayView<float> send, ArrayView<float> receive, string what)
    {
        if (receive.Length != send.Length * WorldSize)
            throw new ArgumentException($"NCCL all-gather: the receive buffer has {receive.Length} floats, but {WorldSize} ranks × {send.Length} need {send.Length * WorldSize}; size it WorldSize × the send length.", nameof(receive));
        _nccl.Check(_nccl.AllGather(send.LoadEffectiveAddressAsPtr(), receive.LoadEffectiveAddressAsPtr(), (nuint)send.Length, NcclFloat32, _comm, _stream), "ncclAllGather");
        WaitForStream($"NCCL all-gather of {what} ({send.Length} floats per rank)");
    }

    internal override PendingCollective Start(nint data, int count, ElementKind kind, ReduceOp op, string what) => _mpi.Start(data, count, kind, op, what);

    internal override PendingCollective StartBroadcast(nint data, int count, ElementKind kind, int root, string what) => _mpi.StartBroadcast(data, count, kind, root, what);

    internal override PendingCollective StartAllGather(nint send, nint receive, int count, ElementKind kind, string what) => _mpi.StartAllGather(send, receive, count, kind, what);

    internal override PendingCollective StartBarrier(string what) => _mpi.StartBarrier(what);

    internal override void Abort(string message)
    {
        _nccl.CommAbort(_comm);
        _mpi.Abort(message);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (_disposed)
            return;
        _disposed = true;
        _nccl.CommDestroy(_comm);
        _mpi.Dispose();
    }

    /// <summary>Buckets enqueued on the communicator's stream, in order.</summary>
    private sealed class StreamBuckets(NcclProcessGroup group, ArrayView<float> flat, IReadOnlyList<GradientBucket> buckets, ReduceOp op, string what) : BucketReduction
    {
        private readonly bool[] _started = new bool[buckets.Count];

        public override void Launch(int index)
        {
            if (_started[index])
                throw new InvalidOperationException($"NCCL: bucket {index + 1} of {buckets.Count} of {what} was started twice; start each bucket once.");
            _started[index] = true;
            var b = buckets[index];
            int ncclOp = op switch { ReduceOp.Mean => NcclAvg, ReduceOp.Max => NcclMax, ReduceOp.Min => NcclMin, _ => NcclSum };
            nint p = flat.SubView(b.Offset, b.Length).LoadEffectiveAddressAsPtr();
            group._nccl.Check(group._nccl.AllReduce(p, p, (nuint)b.Length, NcclFloat32, ncclOp, group._comm, group._stream), "ncclAllReduce");
        }

        public override void Progress()
        {
        }

        public override void Complete()
        {
            for (int i = 0; i < _started.Length; i++)
            {
                if (!_started[i])
                    Launch(i);
            }

            group.WaitForStream($"NCCL all-reduce of {what} ({buckets.Count} buckets, {flat.Length} floats)");
        }
    }

    private void RequireOwnDevice(Device device)
    {
        if (!ReferenceEquals(device, _device))
            throw new ArgumentException($"NCCL: the buffer lives on {device?.Name}, but the communicator was made for {_device.Name}; reduce buffers of the group's device.", nameof(device));
    }

    private void WaitForStream(string what)
    {
        var clock = Stopwatch.StartNew();
        for (int polls = 0; ; polls++)
        {
            int state = _nccl.StreamQuery(_stream);
            if (state == 0)
                return;
            if (state != CudaErrorNotReady)
                throw new DistributedException($"NCCL: the {what} failed on rank {Rank} (CUDA error {state}); check the other ranks' output and the GPUs (nvidia-smi).");
            if (clock.Elapsed > Timeout)
            {
                Abort($"ilgpu-train: rank {Rank} of {WorldSize}: the {what} did not finish within {Timeout.TotalSeconds:G4} s: another rank died, hangs or is far behind; aborting the job. Raise the timeout if a rank is legitimately slow.");
                return;
            }

            if (polls < 64)
                Thread.Yield();
            else
                Thread.Sleep(polls < 1024 ? 0 : 1);
        }
    }

    /// <summary>ncclUniqueId: 128 opaque bytes.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct UniqueId
    {
        public Bytes128 Internal;
    }

    [InlineArray(128)]
    private struct Bytes128
    {
        private byte _element;
    }

    /// <summary>libnccl's entry points and libcuda's cuStreamQuery.</summary>
    private sealed class Native
    {
        private Native(nint nccl, nint cuda)
        {
            GetUniqueId = (delegate* unmanaged<UniqueId*, int>)NativeLibrary.GetExport(nccl, "ncclGetUniqueId");
            CommInitRank = (delegate* unmanaged<nint*, int, UniqueId, int, int>)NativeLibrary.GetExport(nccl, "ncclCommInitRank");
            AllReduce = (delegate* unmanaged<nint, nint, nuint, int, int, nint, nint, int>)NativeLibrary.GetExport(nccl, "ncclAllReduce");
            Broadcast = (delegate* unmanaged<nint, nint, nuint, int, int, nint, nint, int>)NativeLibrary.GetExport(nccl, "ncclBroadcast");
            AllGather = (delegate* unmanaged<nint, nint, nuint, int, nint, nint, int>)NativeLibrary.GetExport(nccl, "ncclAllGather");
            CommDestroyPtr = (delegate* unmanaged<nint, int>)NativeLibrary.GetExport(nccl, "ncclCommDestroy");
            CommAbortPtr = (delegate* unmanaged<nint, int>)NativeLibrary.GetExport(nccl, "ncclCommAbort");
            ErrorString = (delegate* unmanaged<int, sbyte*>)NativeLibrary.GetExport(nccl, "ncclGetErrorString");
            StreamQueryPtr = (delegate* unmanaged<nint, int>)NativeLibrary.GetExport(cuda, "cuStreamQuery");
        }

        public delegate* unmanaged<UniqueId*, int> GetUniqueId { get; }

        public delegate* unmanaged<nint*, int, UniqueId, int, int> CommInitRank { get; }

        /// <summary>ncclAllReduce(sendbuff, recvbuff, count, datatype, op, comm, stream).</summary>
        public delegate* unmanaged<nint, nint, nuint, int, int, nint, nint, int> AllReduce { get; }

        /// <summary>ncclBroadcast(sendbuff, recvbuff, count, datatype, root, comm, stream).</summary>
        public delegate* unmanaged<nint, nint, nuint, int, int, nint, nint, int> Broadcast { get; }

        /// <summary>ncclAllGather(sendbuff, recvbuff, sendcount, datatype, comm, stream).</summary>
        public delegate* unmanaged<nint, nint, nuint, int, nint, nint, int> AllGather { get; }

        private delegate* unmanaged<nint, int> CommDestroyPtr { get; }

        private delegate* unmanaged<nint, int> CommAbortPtr { get; }

        private delegate* unmanaged<int, sbyte*> ErrorString { get; }

        private delegate* unmanaged<nint, int> StreamQueryPtr { get; }

        public static Native Load()
        {
            nint nccl = 0;
            if (!Candidates.Any(n => NativeLibrary.TryLoad(n, out nccl)))
                throw new DistributedException($"NCCL: libnccl is not installed (tried {string.Join(", ", Candidates)}); install libnccl2 or use the MPI backend.");
            return new Native(nccl, NativeLibrary.Load("libcuda.so.1"));
        }

        public void CommDestroy(nint comm) => CommDestroyPtr(comm);

        public void CommAbort(nint comm) => CommAbortPtr(comm);

        public int StreamQuery(nint stream) => StreamQueryPtr(stream);

        public void Check(int result, string call)
        {
            if (result != 0)
                throw new DistributedException($"NCCL: {call} failed: {new string(ErrorString(result))} (ncclResult {result}); check that every rank has a CUDA device and the same NCCL version, or use the MPI backend.");
        }
    }
}
