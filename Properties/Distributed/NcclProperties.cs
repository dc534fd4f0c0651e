using IlgpuTrain.Training.Distributed;

namespace IlgpuTrain.Properties.Distributed;

/// <summary>
/// The NCCL process group on a CUDA device: <c>mpirun -np 1 ilgpu-train collectives --device cuda
/// --backend nccl</c> bootstraps NCCL over MPI and runs the device collectives (tensor all-reduce,
/// all-gather, tree broadcast and all-reduce) in NCCL on the GPU's memory and stream. Skipped,
/// with the reason, where there is no CUDA device or no libnccl.
/// </summary>
[Collection(ProcessState.Name)]
public class NcclProperties
{
    [NcclFact]
    public void The_nccl_group_passes_every_collective_check_on_a_cuda_device()
    {
        var r = Mpirun.Run(1, TimeSpan.FromMinutes(3), ["collectives", "--device", "cuda", "--backend", "nccl", "--collective-timeout", "60"]);
        Assert.True(r.Code == 0, r.ToString());
        foreach (var check in new[] { "tensor all-reduce mean", "tensor all-gather", "tree broadcast", "tree all-reduce sum" })
            Assert.Contains($"rank 0/1 nccl: {check} ok", r.Out, StringComparison.Ordinal);
    }
}

/// <summary>A fact that needs mpirun, a CUDA device and libnccl: skipped, with the reason, elsewhere.</summary>
public sealed class NcclFactAttribute : FactAttribute
{
    /// <summary>Sets the skip reason when NCCL cannot run here.</summary>
    public NcclFactAttribute()
    {
        if (Mpirun.SkipReason is { } mpi)
            Skip = mpi;
        else if (!ComputeDevice.Describe().Found.Any(d => d.Kind == DeviceKind.Cuda))
            Skip = "no CUDA device here (ilgpu-train devices lists none), so the NCCL backend cannot run; it runs on a machine with an NVIDIA GPU and libnccl2.";
        else if (NcclProcessGroup.Unavailable() is { } why)
            Skip = $"NCCL cannot run here: {why}.";
    }
}
