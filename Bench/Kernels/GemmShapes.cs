using System.Diagnostics;
using IlgpuTrain.Kernels;

namespace IlgpuTrain.Bench.Kernels;

/// <summary>
/// <c>dotnet run -c Release --project Bench -- gemm-shapes [reps]</c>: the managed CPU GEMM on the
/// shapes of the Fashion-MNIST MLP and CNN training steps, minimum and median of many calls, for
/// tuning the blocking and the thread split (the bench command's rows time whole steps).
/// GEMM_THREADS=n sets the thread count (default: all cores).
/// </summary>
internal static unsafe class GemmShapes
{
    // (what, transA, transB, M, N, K): the MLP step at batch 128, the CNN's conv2 as one GEMM
    // over the batch, the bench's language model (4096 tokens of width 64), and the square reference sizes.
    private static readonly (string What, bool TA, bool TB, int M, int N, int K)[] Shapes =
    [
        ("mlp fc1 forward  x W^T", false, true, 128, 256, 784),
        ("mlp fc1 dW  dy^T x", true, false, 256, 784, 128),
        ("mlp fc2 forward", false, true, 128, 10, 256),
        ("mlp fc2 dx  dy W", false, false, 128, 256, 10),
        ("mlp fc2 dW", true, false, 10, 256, 128),
        ("cnn fc1 forward", false, true, 128, 128, 3136),
        ("cnn fc1 dW", true, false, 128, 3136, 128),
        ("cnn fc1 dx", false, false, 128, 3136, 128),
        ("cnn conv2 per image", false, false, 64, 196, 288),
        ("cnn conv2 batched", false, false, 64, 25088, 288),
        ("cnn conv2 dW batched", false, true, 64, 288, 25088),
        ("cnn conv1 dW batched", false, true, 32, 9, 100352),
        ("lm qkv forward  x W^T", false, true, 4096, 192, 64),
        ("lm qkv dW  dy^T x", true, false, 192, 64, 4096),
        ("lm ff1 dW", true, false, 256, 64, 4096),
        ("lm ff2 dW", true, false, 64, 256, 4096),
        ("lm ff2 dx  dy W", false, false, 4096, 256, 64),
        ("square 256x784x256", false, false, 256, 784, 256),
        ("square 1024", false, false, 1024, 1024, 1024),
    ];

    /// <summary>Runs the table.</summary>
    /// <param name="args">Optional repetitions per shape.</param>
    /// <returns>0.</returns>
    public static int Run(string[] args)
    {
        int reps = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 50;
        int threads = Environment.GetEnvironmentVariable("GEMM_THREADS") is { } t ? int.Parse(t, System.Globalization.CultureInfo.InvariantCulture) : Environment.ProcessorCount;
        Console.WriteLine($"CpuGemm, {threads} threads, Vector{CpuGemm.VectorWidth * 32}; ms per call (min / median of {reps}), GFLOP/s at the min");
        foreach (var (what, ta, tb, m, n, k) in Shapes)
        {
            var a = Random((long)m * k, 1);
            var b = Random((long)k * n, 2);
            var c = new float[(long)m * n];
            var times = new List<double>();
            fixed (float* pa = a, pb = b, pc = c)
            {
                for (int i = 0; i < reps + 3; i++)
                {
                    long t0 = Stopwatch.GetTimestamp();
                    CpuGemm.Run(ta, tb, m, n, k, 1f, pa, pb, 0f, pc, threads);
                    if (i >= 3)
                        times.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                }
            }

            times.Sort();
            double min = times[0], med = times[times.Count / 2];
            Console.WriteLine($"{what,-26} {m,6}x{n,-6}x{k,-7} {min,9:F4} {med,9:F4} ms {2.0 * m * n * k / (min * 1e6),7:F1} GFLOP/s");
        }

        return 0;
    }

    private static float[] Random(long n, int seed)
    {
        var r = new Random(seed);
        var v = new float[n];
        for (long i = 0; i < n; i++)
            v[i] = (float)((r.NextDouble() * 2) - 1);
        return v;
    }
}
