using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using IlgpuTrain.Bench.Support;
using IlgpuTrain.Functional;
using IlgpuTrain.Kernels;
using IlgpuTrain.Layers;
using Conv2d = IlgpuTrain.Layers.Conv2d;

namespace IlgpuTrain.Bench.Layers;

/// <summary>
/// Forward+backward of the Fashion-MNIST layers and models (../shared/anchors/torch_fmnist.py) at
/// batch 128, next to PyTorch's time for the same work in the same invocation
/// (Bench/peer/torch_layers.py), as ratios IlgpuTrain / PyTorch.
/// </summary>
/// <remarks>
/// <c>dotnet run -c Release --project Bench -- layers [reps]</c>. Each figure is the median over
/// reps of one forward+backward, synchronized, after three warm-up runs (kernel compilation
/// excluded). Dense and Conv2d layers are timed with the input gradient included, as PyTorch's
/// with requires_grad input; the models with cross-entropy (label smoothing 0.1) and no input gradient.
/// </remarks>
public static class LayersPeer
{
    private const int Batch = 128;

    /// <summary>Runs the comparison and prints the table.</summary>
    /// <param name="args">Optional repetitions.</param>
    /// <returns>The exit code.</returns>
    public static int Run(string[] args)
    {
        int reps = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 20;
        using var device = BenchDevice.Create();
        var rows = new List<(string Name, double Ms, double Flops)>();
        foreach (var (name, model, input, flops) in Cases())
            rows.Add((name, Time(device, model, input, reps, name.StartsWith("dense", StringComparison.Ordinal) || name.StartsWith("conv", StringComparison.Ordinal)), flops));

        var peer = PeerScript.Run("torch_layers.py", reps);
        Console.WriteLine();
        Console.WriteLine($"forward+backward, batch {Batch}, median of {reps}; device {device}; peer {peer.Describe}");
        Console.WriteLine($"{"case",-20} {"IlgpuTrain ms",14} {"GFLOP/s",9} {"PyTorch ms",11} {"ratio",7}");
        foreach (var r in rows)
        {
            double? t = peer.Ms.TryGetValue(r.Name, out var v) ? v : null;
            string gf = r.Flops > 0 ? (r.Flops / r.Ms / 1e6).ToString("F2", CultureInfo.InvariantCulture) : "-";
            Console.WriteLine($"{r.Name,-20} {r.Ms,14:F3} {gf,9} {(t is null ? "-" : t.Value.ToString("F3", CultureInfo.InvariantCulture)),11} {(t is null ? "-" : (r.Ms / t.Value).ToString("F2", CultureInfo.InvariantCulture) + "x"),7}");
        }

        Console.WriteLine("ratio = IlgpuTrain time / PyTorch time (below 1: IlgpuTrain is faster)");
        return 0;
    }

    private static IEnumerable<(string Name, Layer Model, Shape Input, double Flops)> Cases()
    {
        // FLOPs of forward + backward (dx and dW): 3 GEMMs of 2 M N K each.
        yield return ("dense 784->256", new Dense(256), new Shape(784), 3.0 * 2 * Batch * 784 * 256);
        yield return ("dense 256->10", new Dense(10), new Shape(256), 3.0 * 2 * Batch * 256 * 10);
        foreach (var c in ExtraCases())
            yield return c;
        yield return ("mlp", new Dense(256) >> new ReLU() >> new IlgpuTrain.Layers.Dropout(0.2f) >> new Dense(10), new Shape(784), 0);
    }

    private static IEnumerable<(string Name, Layer Model, Shape Input, double Flops)> ExtraCases()
    {
        // Convolution FLOPs: 2 N Cout Ho Wo Cin kh kw forward, twice that for dx and dW.
        yield return ("conv 1->32 28x28", new Conv2d(32, 3, Padding: 1), new Shape(1, 28, 28), 3.0 * 2 * Batch * 32 * 28 * 28 * 1 * 9);
        yield return ("conv 32->64 14x14", new Conv2d(64, 3, Padding: 1), new Shape(32, 14, 14), 3.0 * 2 * Batch * 64 * 14 * 14 * 32 * 9);
        yield return ("cnn", Cnn(), new Shape(1, 28, 28), 0);
    }

    /// <summary>The CNN of ../shared/anchors/torch_fmnist.py.</summary>
    /// <returns>The model.</returns>
    public static Layer Cnn() =>
        new Conv2d(32, 3, Padding: 1) >> new BatchNorm2d() >> new ReLU() >> new MaxPool2d(2)
        >> new Conv2d(64, 3, Padding: 1) >> new BatchNorm2d() >> new ReLU() >> new MaxPool2d(2)
        >> new Flatten() >> new IlgpuTrain.Layers.Dropout(0.25f) >> new Dense(128) >> new ReLU() >> new Dense(10);

    private static double Time(ComputeDevice device, Layer model, Shape input, int reps, bool inputGrad)
    {
        var (p, s) = model.Init(device, input, Rng.Create(0));
        using var parameters = p;
        using var state = s;
        var inputDims = new[] { Batch }.Concat(input).ToArray();
        var x = BenchDevice.Random((int)new Shape(inputDims).Length, 1);
        var y = Enumerable.Range(0, Batch).Select(i => i % 10).ToArray();
        var ce = new CrossEntropyOptions { Epsilon = 0.1f };
        // Differentiating with respect to the input too (as PyTorch's requires_grad input) makes x a parameter.
        using var joint = inputGrad ? ParamTree.FromHost(device, parameters.ToHost().Append(KeyValuePair.Create("x", (inputDims, x)))) : null;

        double Once(int step)
        {
            var sw = Stopwatch.StartNew();
            using var scope = device.BeginStep();
            ParamTree? newState = null;
            if (inputGrad)
            {
                var (_, g) = Autodiff.ValueAndGrad(scope, joint!, q =>
                {
                    var (outY, st) = model.Apply(q, state, q["x"], Mode.Train, Rng.Create(1).At((uint)step));
                    newState = st;
                    return F.Sum(outY);
                });
                g.Dispose();
            }
            else
            {
                var xs = scope.Upload(x, new Shape(inputDims));
                var ys = scope.Upload(y, new Shape(Batch));
                var (_, g) = Autodiff.ValueAndGrad(scope, parameters, q =>
                {
                    var (logits, st) = model.Apply(q, state, xs, Mode.Train, Rng.Create(1).At((uint)step));
                    newState = st;
                    return F.CrossEntropy(logits, ys, ce);
                });
                g.Dispose();
            }

            if (newState is not null && !ReferenceEquals(newState, state))
                newState.Dispose();
            device.Synchronize();
            return sw.Elapsed.TotalMilliseconds;
        }

        for (int i = 0; i < 3; i++)
            Once(i);
        var times = Enumerable.Range(0, reps).Select(i => Once(i + 3)).OrderBy(t => t).ToArray();
        return times[times.Length / 2];
    }
}
