using BenchmarkDotNet.Attributes;
using IlgpuTrain.Bench.Support;
using IlgpuTrain.Functional;
using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Bench.Optimizers;

/// <summary>
/// One optimizer step over the flat parameter buffer, fused kernel versus the generic chain
/// (one pass per primitive, then ApplyUpdates), in GB/s of the fused kernel's traffic
/// (<see cref="IlgpuTrain.Kernels.AdamUpdate.StepBytesPerElement"/>,
/// <see cref="IlgpuTrain.Kernels.SgdUpdate.StepBytesPerElement"/>). The chain path moves more bytes
/// for the same work, so its GB/s figure is "useful bytes per second".
/// </summary>
public class OptimizersBench
{
    private ComputeDevice _device = null!;
    private ParamTree _params = null!;
    private ParamTree _grads = null!;
    private OptState _state = null!;
    private IGradientTransformation _opt = null!;

    /// <summary>Parameters: 1M and 25M (a ResNet-50-sized model).</summary>
    [Params(1 << 20, 25_000_000)]
    public int N { get; set; }

    /// <summary>Which optimizer and path.</summary>
    [Params("AdamW-fused", "AdamW-chain", "Sgd-fused", "Sgd-chain")]
    public string Optimizer { get; set; } = "";

    [GlobalSetup]
    public void Setup()
    {
        _device = BenchDevice.Create();
        var p = BenchDevice.Random(N, 1);
        var g = BenchDevice.Random(N, 2);
        _params = ParamTree.FromHost(_device, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([N], p) });
        _grads = ParamTree.FromHost(_device, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([N], g) });
        _opt = Optimizer switch
        {
            "AdamW-fused" => new AdamW(1e-3),
            "AdamW-chain" => new AdamW(1e-3) { Fused = false },
            "Sgd-fused" => new Sgd(1e-2, momentum: 0.9),
            "Sgd-chain" => new Sgd(1e-2, momentum: 0.9) { Fused = false },
            _ => throw new ArgumentException(Optimizer),
        };
        _state = _opt.Init(_params);
        FreshGradients();
        Step();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _params.Dispose();
        _grads.Dispose();
        _state.Dispose();
        _device.Dispose();
    }

    private ParamTree? _fresh;

    // The step consumes its gradients (donation): a fresh device copy, made outside the timed
    // region, stands in for the backward pass that would produce them.
    [IterationSetup]
    public void FreshGradients()
    {
        _fresh = _grads.Clone();
        _device.Synchronize();
    }

    [Benchmark, OptimizerBytes]
    public void Step()
    {
        (_params, _state) = _opt.Step(_params, _fresh!, _state);
        _device.Synchronize();
    }
}
