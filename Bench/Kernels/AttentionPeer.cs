using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using IlgpuTrain.Bench.Support;
using IlgpuTrain.Functional;

namespace IlgpuTrain.Bench.Kernels;

/// <summary>
/// F.ScaledDotProductAttention forward, and forward+backward (dq, dk, dv), next to PyTorch's explicit
/// attention math on the same shapes in the same invocation (Bench/peer/torch_attention.py).
/// </summary>
/// <remarks>
/// <c>dotnet run -c Release --project Bench -- attention [reps]</c>. Each figure is the median over reps,
/// synchronized, after warm-up runs (kernel compilation and tiered JIT excluded).
/// </remarks>
public static class AttentionPeer
{
    private static readonly (int B, int H, int L, int D, bool Causal)[] Cases = [(8, 4, 128, 32, false), (8, 4, 128, 32, true), (2, 4, 512, 64, true)];

    /// <summary>Runs the comparison and prints the table.</summary>
    /// <param name="args">Optional repetitions.</param>
    /// <returns>The exit code.</returns>
    public static int Run(string[] args)
    {
        int reps = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 20;
        using var device = BenchDevice.Create();
        var rows = new List<(string Name, double Ms)>();
        foreach (var (b, h, l, d, causal) in Cases)
        {
            string name = $"B{b} H{h} L{l} D{d}{(causal ? " causal" : string.Empty)}";
            rows.Add((name + " fwd", Time(device, b, h, l, d, causal, reps, backward: false)));
            rows.Add((name + " fwd+bwd", Time(device, b, h, l, d, causal, reps, backward: true)));
        }

        var (describe, peer) = PeerScript.Run("torch_attention.py", reps);
        Console.WriteLine();
        Console.WriteLine($"scaled dot-product attention, median of {reps}; device {device}; peer {describe}");
        Console.WriteLine($"{"case",-32} {"IlgpuTrain ms",14} {"PyTorch ms",11} {"ratio",7}");
        foreach (var (name, ms) in rows)
        {
            string t = peer.TryGetValue(name, out var p) ? p.ToString("F3", CultureInfo.InvariantCulture) : "-";
            string ratio = peer.TryGetValue(name, out var q) ? (ms / q).ToString("F2", CultureInfo.InvariantCulture) + "x" : "-";
            Console.WriteLine($"{name,-32} {ms,14:F3} {t,11} {ratio,7}");
        }

        Console.WriteLine("ratio = IlgpuTrain time / PyTorch time (below 1: IlgpuTrain is faster)");
        return 0;
    }

    private static double Time(ComputeDevice device, int b, int h, int l, int d, bool causal, int reps, bool backward)
    {
        var shape = new Shape(b, h, l, d);
        int n = (int)shape.Length;
        using var tree = ParamTree.FromHost(device, new[] { "q", "k", "v" }.Select((name, i) => KeyValuePair.Create(name, (shape.ToArray(), BenchDevice.Random(n, i + 1)))));
        var g = BenchDevice.Random(n, 9);
        var owned = Enumerable.Range(1, 3).Select(i => Tensor.FromHost(device, BenchDevice.Random(n, i), b, h, l, d)).ToArray();

        double Once()
        {
            var sw = Stopwatch.StartNew();
            using var step = device.BeginStep();
            if (backward)
            {
                var dy = step.Upload(g, shape);
                var (_, grads) = Autodiff.ValueAndGrad(step, tree, p => F.Sum(F.Mul(F.ScaledDotProductAttention(p["q"], p["k"], p["v"], causal: causal), dy)));
                grads.Dispose();
            }
            else
            {
                _ = F.ScaledDotProductAttention(step.Use(owned[0]), step.Use(owned[1]), step.Use(owned[2]), causal: causal);
            }

            device.Synchronize();
            return sw.Elapsed.TotalMilliseconds;
        }

        // Warm up past tiered JIT (a method runs 30 times before its optimized tier), at most 2 s.
        var warm = Stopwatch.StartNew();
        for (int i = 0; i < 40 && (i < 3 || warm.Elapsed.TotalSeconds < 2); i++)
            Once();
        var times = Enumerable.Range(0, reps).Select(_ => Once()).OrderBy(t => t).ToArray();
        foreach (var t in owned)
            t.Dispose();
        return times[times.Length / 2];
    }
}
