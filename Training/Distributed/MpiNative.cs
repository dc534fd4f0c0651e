using System.Runtime.InteropServices;

namespace IlgpuTrain.Training.Distributed;

/// <summary>
/// Open MPI's C API, bound at run time from the system's libmpi (Debian's openmpi-bin and
/// libopenmpi3). The predefined handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM...) are, in Open
/// MPI, the addresses of global objects (ompi_mpi_comm_world, ompi_mpi_float, ompi_mpi_op_sum),
/// so they come from the library's exports as the functions do. Nothing here is loaded until a
/// process group is created; the packages carry no native binary.
/// </summary>
internal sealed unsafe class MpiNative
{
    /// <summary>MPI_THREAD_SERIALIZED: any thread may call MPI, one at a time.</summary>
    public const int ThreadSerialized = 2;

    private static readonly string[] Candidates = ["libmpi.so.40", "libmpi.so", "libmpi.so.12"];

    private MpiNative(nint library, string name)
    {
        Library = name;

        nint Handle(string symbol) => NativeLibrary.GetExport(library, symbol);

        CommWorld = Handle("ompi_mpi_comm_world");
        Float = Handle("ompi_mpi_float");
        Double = Handle("ompi_mpi_double");
        Int = Handle("ompi_mpi_int");
        Byte = Handle("ompi_mpi_byte");
        Sum = Handle("ompi_mpi_op_sum");
        Max = Handle("ompi_mpi_op_max");
        Min = Handle("ompi_mpi_op_min");
        InitThread = (delegate* unmanaged<int*, nint*, int, int*, int>)NativeLibrary.GetExport(library, "MPI_Init_thread");
        Initialized = (delegate* unmanaged<int*, int>)NativeLibrary.GetExport(library, "MPI_Initialized");
        Finalized = (delegate* unmanaged<int*, int>)NativeLibrary.GetExport(library, "MPI_Finalized");
        Finalize = (delegate* unmanaged<int>)NativeLibrary.GetExport(library, "MPI_Finalize");
        CommRank = (delegate* unmanaged<nint, int*, int>)NativeLibrary.GetExport(library, "MPI_Comm_rank");
        CommSize = (delegate* unmanaged<nint, int*, int>)NativeLibrary.GetExport(library, "MPI_Comm_size");
        Iallreduce = (delegate* unmanaged<nint, nint, int, nint, nint, nint, nint*, int>)NativeLibrary.GetExport(library, "MPI_Iallreduce");
        Ibcast = (delegate* unmanaged<nint, int, nint, int, nint, nint*, int>)NativeLibrary.GetExport(library, "MPI_Ibcast");
        Iallgather = (delegate* unmanaged<nint, int, nint, nint, int, nint, nint, nint*, int>)NativeLibrary.GetExport(library, "MPI_Iallgather");
        Ibarrier = (delegate* unmanaged<nint, nint*, int>)NativeLibrary.GetExport(library, "MPI_Ibarrier");
        Test = (delegate* unmanaged<nint*, int*, nint, int>)NativeLibrary.GetExport(library, "MPI_Test");
        Abort = (delegate* unmanaged<nint, int, int>)NativeLibrary.GetExport(library, "MPI_Abort");
    }

    /// <summary>MPI_IN_PLACE in Open MPI.</summary>
    public static nint InPlace => 1;

    /// <summary>The library that was loaded.</summary>
    public string Library { get; }

    public nint CommWorld { get; }

    public nint Float { get; }

    public nint Double { get; }

    public nint Int { get; }

    public nint Byte { get; }

    public nint Sum { get; }

    public nint Max { get; }

    public nint Min { get; }

    public delegate* unmanaged<int*, nint*, int, int*, int> InitThread { get; }

    public delegate* unmanaged<int*, int> Initialized { get; }

    public delegate* unmanaged<int*, int> Finalized { get; }

    public delegate* unmanaged<int> Finalize { get; }

    public delegate* unmanaged<nint, int*, int> CommRank { get; }

    public delegate* unmanaged<nint, int*, int> CommSize { get; }

    /// <summary>MPI_Iallreduce(sendbuf, recvbuf, count, datatype, op, comm, request*).</summary>
    public delegate* unmanaged<nint, nint, int, nint, nint, nint, nint*, int> Iallreduce { get; }

    /// <summary>MPI_Ibcast(buffer, count, datatype, root, comm, request*).</summary>
    public delegate* unmanaged<nint, int, nint, int, nint, nint*, int> Ibcast { get; }

    /// <summary>MPI_Iallgather(sendbuf, sendcount, sendtype, recvbuf, recvcount, recvtype, comm, request*).</summary>
    public delegate* unmanaged<nint, int, nint, nint, int, nint, nint, nint*, int> Iallgather { get; }

    public delegate* unmanaged<nint, nint*, int> Ibarrier { get; }

    /// <summary>MPI_Test(request*, flag*, status*); status may be MPI_STATUS_IGNORE (null).</summary>
    public delegate* unmanaged<nint*, int*, nint, int> Test { get; }

    public delegate* unmanaged<nint, int, int> Abort { get; }

    /// <summary>Loads libmpi, or throws with the package to install.</summary>
    /// <returns>The bindings.</returns>
    /// <exception cref="DistributedException">No Open MPI library on this machine.</exception>
    public static MpiNative Load()
    {
        foreach (var name in Candidates)
        {
            if (NativeLibrary.TryLoad(name, out var library))
            {
                try
                {
                    return new MpiNative(library, name);
                }
                catch (EntryPointNotFoundException e)
                {
                    throw new DistributedException($"MPI: {name} is not Open MPI ({e.Message}); the MPI backend binds Open MPI's C API: install Open MPI (apt-get install openmpi-bin libopenmpi-dev) and launch with its mpirun.");
                }
            }
        }

        throw new DistributedException($"MPI: no Open MPI library found (tried {string.Join(", ", Candidates)}); install it (apt-get install openmpi-bin libopenmpi-dev) and launch with mpirun -np N.");
    }
}
