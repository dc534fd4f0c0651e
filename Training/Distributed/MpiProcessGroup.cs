using System.Diagnostics;

namespace IlgpuTrain.Training.Distributed;

/// <summary>
/// A process group on Open MPI (MPI_COMM_WORLD of an <c>mpirun -np N</c> launch): nonblocking
/// collectives (MPI_Iallreduce, MPI_Ibcast, MPI_Iallgather, MPI_Ibarrier) polled with MPI_Test
/// against the group's timeout.
/// </summary>
public sealed unsafe class MpiProcessGroup : ProcessGroup
{
    private readonly MpiNative _mpi;
    private readonly bool _initializedHere;
    private bool _disposed;

    private MpiProcessGroup(MpiNative mpi, bool initializedHere, int rank, int size, int localRank, TimeSpan timeout)
        : base(timeout)
    {
        _mpi = mpi;
        _initializedHere = initializedHere;
        Rank = rank;
        WorldSize = size;
        LocalRank = localRank;
    }

    /// <inheritdoc/>
    public override int Rank { get; }

    /// <inheritdoc/>
    public override int WorldSize { get; }

    /// <inheritdoc/>
    public override int LocalRank { get; }

    /// <inheritdoc/>
    public override DistributedBackend Backend => DistributedBackend.Mpi;

    /// <summary>
    /// Initializes MPI (MPI_Init_thread, serialized) in this process and returns MPI_COMM_WORLD's
    /// group. Outside mpirun, Open MPI starts a group of one (a singleton).
    /// </summary>
    /// <param name="timeout">How long one collective may take (null for <see cref="ProcessGroup.DefaultTimeout"/>).</param>
    /// <returns>The group (dispose it once, at the end of the process: MPI cannot start twice).</returns>
    /// <exception cref="DistributedException">No Open MPI on the machine, or the launcher's environment disagrees with MPI.</exception>
    public static MpiProcessGroup Create(TimeSpan? timeout = null)
    {
        var launch = LaunchEnvironment.FromEnvironment();
        var mpi = MpiNative.Load();
        int initialized, finalized;
        Check(mpi.Initialized(&initialized), "MPI_Initialized");
        Check(mpi.Finalized(&finalized), "MPI_Finalized");
        if (finalized != 0)
            throw new DistributedException("MPI: this process already finalized MPI (a process group was disposed), and MPI cannot start twice; create one process group per process and dispose it at the end.");
        if (initialized == 0)
        {
            int provided;
            Check(mpi.InitThread(null, null, MpiNative.ThreadSerialized, &provided), "MPI_Init_thread");
            if (provided < MpiNative.ThreadSerialized)
                throw new DistributedException($"MPI: the library gives thread level {provided}, below MPI_THREAD_SERIALIZED; use an Open MPI built with thread support (Debian's is).");
        }

        int rank, size;
        Check(mpi.CommRank(mpi.CommWorld, &rank), "MPI_Comm_rank");
        Check(mpi.CommSize(mpi.CommWorld, &size), "MPI_Comm_size");
        if (launch is not null && (launch.Rank != rank || launch.WorldSize != size))
            throw new DistributedException($"MPI: the launcher's {launch.Source} say rank {launch.Rank} of {launch.WorldSize}, but MPI says rank {rank} of {size}; launch with mpirun -np N alone (unset torchrun's RANK and WORLD_SIZE).");
        return new MpiProcessGroup(mpi, initialized == 0, rank, size, launch?.LocalRank ?? 0, timeout ?? DefaultTimeout);
    }

    internal override PendingCollective Start(nint data, int count, ElementKind kind, ReduceOp op, string what)
    {
        nint request;
        var mpiOp = op switch { ReduceOp.Max => _mpi.Max, ReduceOp.Min => _mpi.Min, _ => _mpi.Sum };
        Check(_mpi.Iallreduce(MpiNative.InPlace, data, count, Type(kind), mpiOp, _mpi.CommWorld, &request), "MPI_Iallreduce");
        return new Pending(this, request, $"all-reduce of {what} ({count} {kind})");
    }

    internal override PendingCollective StartBroadcast(nint data, int count, ElementKind kind, int root, string what)
    {
        nint request;
        Check(_mpi.Ibcast(data, count, Type(kind), root, _mpi.CommWorld, &request), "MPI_Ibcast");
        return new Pending(this, request, $"broadcast of {what} from rank {root} ({count} {kind})");
    }

    internal override PendingCollective StartAllGather(nint send, nint receive, int count, ElementKind kind, string what)
    {
        nint request;
        Check(_mpi.Iallgather(send, count, Type(kind), receive, count, Type(kind), _mpi.CommWorld, &request), "MPI_Iallgather");
        return new Pending(this, request, $"all-gather of {what} ({count} {kind} per rank)");
    }

    internal override PendingCollective StartBarrier(string what)
    {
        nint request;
        Check(_mpi.Ibarrier(_mpi.CommWorld, &request), "MPI_Ibarrier");
        return new Pending(this, request, $"barrier at {what}");
    }

    internal override void Abort(string message)
    {
        Console.Error.WriteLine(message);
        Console.Error.Flush();
        _mpi.Abort(_mpi.CommWorld, 3);
        Environment.Exit(3);
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (_disposed)
            return;
        _disposed = true;
        int finalized;
        if (_initializedHere && _mpi.Finalized(&finalized) == 0 && finalized == 0)
            _mpi.Finalize();
    }

    private nint Type(ElementKind kind) => kind switch
    {
        ElementKind.Float32 => _mpi.Float,
        ElementKind.Float64 => _mpi.Double,
        ElementKind.Int32 => _mpi.Int,
        _ => _mpi.Byte,
    };

    private static void Check(int code, string call)
    {
        if (code != 0)
            throw new DistributedException($"MPI: {call} failed with error {code}; check that the job was launched with mpirun -np N and that every rank runs the same command.");
    }

    /// <summary>An MPI request polled with MPI_Test: a few quick polls, then with short sleeps so a waiting rank leaves the cores to the others.</summary>
    private sealed class Pending(MpiProcessGroup group, nint request, string what) : PendingCollective
    {
        private nint _request = request;
        private bool _done;

        public override bool Test()
        {
            if (_done)
                return true;
            int flag;
            fixed (nint* r = &_request)
                Check(group._mpi.Test(r, &flag, 0), "MPI_Test");
            _done = flag != 0;
            return _done;
        }

        public override void Wait()
        {
            var clock = Stopwatch.StartNew();
            for (int polls = 0; !Test(); polls++)
            {
                if (clock.Elapsed > group.Timeout)
                {
                    group.Abort($"ilgpu-train: rank {group.Rank} of {group.WorldSize}: the {what} did not finish within {group.Timeout.TotalSeconds:G4} s: " +
                        "another rank died, hangs or is far behind (check its output above); aborting the job. Raise the timeout (--collective-timeout, ProcessGroup timeout) if a rank is legitimately slow.");
                    return;
                }

                if (polls < 64)
                    Thread.Yield();
                else
                    Thread.Sleep(polls < 1024 ? 0 : 1);
            }
        }
    }
}
