namespace IlgpuTrain.Properties.Distributed;

/// <summary>
/// <c>mpirun -np 2 ilgpu-train collectives</c> on the CPU device: every collective of the MPI
/// process group (all-reduce sum, mean, max, min; broadcast; all-gather; barrier; on host spans,
/// tensors and a ParamTree) gives each rank the value its formula predicts.
/// </summary>
[Collection(ProcessState.Name)]
public class CollectivesProperties
{
    private static readonly string[] Checks =
    [
        "all-reduce sum", "all-reduce mean", "all-reduce max", "all-reduce min", "broadcast", "all-gather", "barrier",
        "tensor all-reduce mean", "tensor all-gather", "tree broadcast", "tree all-reduce sum",
    ];

    [MpiFact]
    public void Every_collective_gives_each_of_two_ranks_the_formula_value()
    {
        var r = Mpirun.Run(2, TimeSpan.FromMinutes(2), ["collectives", "--device", "cpu", "--collective-timeout", "60"]);
        Assert.True(r.Code == 0, r.ToString());
        foreach (int rank in new[] { 0, 1 })
        {
            foreach (var check in Checks)
                Assert.True(r.Out.Contains($"rank {rank}/2 mpi: {check} ok", StringComparison.Ordinal), $"rank {rank}: no ok for {check}\n{r}");
        }
    }
}
