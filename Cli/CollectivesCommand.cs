using System.CommandLine;
using System.Globalization;
using IlgpuTrain.Functional;
using IlgpuTrain.Training.Distributed;

namespace IlgpuTrain.Cli;

/// <summary>
/// <c>mpirun -np N ilgpu-train collectives</c>: checks the process group of a launch. Every rank
/// runs each collective on values that are a formula of its rank and compares what it gets with
/// the formula; each rank prints one line per check and exits 1 when one failed.
/// </summary>
internal static class CollectivesCommand
{
    public static Command Create()
    {
        var device = new Option<string>("--device") { Description = "The device whose tensors are reduced: cpu, cuda, opencl (default: the best found).", };
        var backend = new Option<string>("--backend") { Description = "auto (NCCL when every rank has CUDA), mpi or nccl.", DefaultValueFactory = _ => "auto" };
        var timeout = new Option<double>("--collective-timeout") { Description = "Seconds a collective may take before the job is aborted (default 300).", DefaultValueFactory = _ => 300 };
        var command = new Command("collectives", "Check the collectives of an mpirun launch (all-reduce, broadcast, all-gather, barrier) on every rank.") { device, backend, timeout };
        command.SetAction(parse => Cli.Guard(() =>
        {
            if (Cli.Fail(Problems(parse.GetValue(backend)!, parse.GetValue(timeout))))
                return 2;
            using var d = parse.GetValue(device) is { } name ? ComputeDevice.Create(DeviceOptions.Parse(name, "--device")) : ComputeDevice.Create();
            using var group = ProcessGroup.Create(d, ParseBackend(parse.GetValue(backend)!), TimeSpan.FromSeconds(parse.GetValue(timeout)));
            int failed = 0;
            foreach (var (check, problem) in Run(group, d))
            {
                Console.WriteLine($"rank {group.Rank}/{group.WorldSize} {group.Backend.ToString().ToLowerInvariant()}: {check} {(problem is null ? "ok" : "FAILED: " + problem)}");
                failed += problem is null ? 0 : 1;
            }

            return failed == 0 ? 0 : 1;
        }));
        return command;
    }

    internal static IReadOnlyList<string> Problems(string backend, double timeout)
    {
        var problems = new List<string>();
        if (backend is not ("auto" or "mpi" or "nccl"))
            problems.Add($"--backend {backend}: use auto, mpi or nccl.");
        if (!(timeout > 0))
            problems.Add($"--collective-timeout {timeout.ToString(CultureInfo.InvariantCulture)}: give a positive number of seconds.");
        return problems;
    }

    internal static DistributedBackend ParseBackend(string backend) => backend switch
    {
        "mpi" => DistributedBackend.Mpi,
        "nccl" => DistributedBackend.Nccl,
        _ => DistributedBackend.Auto,
    };

    /// <summary>Each check and its problem (null when it holds).</summary>
    private static IEnumerable<(string Check, string? Problem)> Run(ProcessGroup g, ComputeDevice device)
    {
        int r = g.Rank, w = g.WorldSize;
        const int N = 37;

        var sum = Values(N, i => r + (0.5f * i));
        g.AllReduce(sum, ReduceOp.Sum, "check sum");
        yield return ("all-reduce sum", Compare(sum, i => (w * 0.5f * i) + (w * (w - 1) / 2f)));

        var mean = Values(N, i => (r + 1) * (float)i);
        g.AllReduce(mean, ReduceOp.Mean, "check mean");
        yield return ("all-reduce mean", Compare(mean, i => i * (w + 1) / 2f));

        var max = Enumerable.Range(0, N).Select(i => (r * 10) + i).ToArray();
        g.AllReduce(max.AsSpan(), ReduceOp.Max, "check max");
        yield return ("all-reduce max", Compare(Array.ConvertAll(max, v => (float)v), i => ((w - 1) * 10) + i));

        var min = Enumerable.Range(0, N).Select(i => (r * 10) + i).ToArray();
        g.AllReduce(min.AsSpan(), ReduceOp.Min, "check min");
        yield return ("all-reduce min", Compare(Array.ConvertAll(min, v => (float)v), i => i));

        int root = w - 1;
        var broadcast = Values(N, i => r == root ? 3f * i : -1f);
        g.Broadcast(broadcast.AsSpan(), root, "check broadcast");
        yield return ("broadcast", Compare(broadcast, i => 3f * i));

        var gathered = g.AllGather(Enumerable.Repeat((byte)(r + 1), r + 1).ToArray(), "check all-gather");
        yield return ("all-gather", gathered.Length == w && gathered.Select((b, k) => b.Length == k + 1 && b.All(v => v == k + 1)).All(ok => ok) ? null : $"got lengths {string.Join(",", gathered.Select(b => b.Length))}");

        g.Barrier("check barrier");
        yield return ("barrier", null);

        using (var t = Tensor.FromHost(device, Values(N, i => (r + 1) * (float)i), N))
        {
            g.AllReduce(t, ReduceOp.Mean, "check tensor mean");
            yield return ("tensor all-reduce mean", Compare(t.ToHost(), i => i * (w + 1) / 2f));
            using var all = g.AllGather(t, "check tensor all-gather");
            yield return ("tensor all-gather", all.Shape == new Shape(w, N) ? Compare(all.ToHost(), i => (i % N) * (w + 1) / 2f) : $"shape {all.Shape}");
        }

        using var tree = ParamTree.FromHost(device, [
            new("a.weight", ([2, 3], Values(6, i => r == 0 ? i + 1f : 0f))),
            new("b.bias", ([5], Values(5, i => r == 0 ? -i : 7f))),
        ]);
        g.Broadcast(tree, 0, "check tree broadcast");
        yield return ("tree broadcast", Compare(tree.Snapshot().Float32, i => i < 6 ? i + 1f : -(i - 6)));
        g.AllReduce(tree, ReduceOp.Sum, "check tree sum");
        yield return ("tree all-reduce sum", Compare(tree.Snapshot().Float32, i => w * (i < 6 ? i + 1f : -(i - 6))));
    }

    private static float[] Values(int n, Func<int, float> f) => [.. Enumerable.Range(0, n).Select(f)];

    private static string? Compare(float[] got, Func<int, float> want)
    {
        for (int i = 0; i < got.Length; i++)
        {
            float e = want(i);
            if (Math.Abs(got[i] - e) > 1e-5f * (1 + Math.Abs(e)))
                return string.Create(CultureInfo.InvariantCulture, $"element {i} is {got[i]}, want {e}");
        }

        return null;
    }
}
