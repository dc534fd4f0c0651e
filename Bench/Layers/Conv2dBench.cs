using BenchmarkDotNet.Attributes;
using IlgpuTrain.Bench.Support;
using IlgpuTrain.Functional;
using IlgpuTrain.Kernels;
using IlgpuTrain.Training.Conformance;
using Conv2dLayer = IlgpuTrain.Layers.Conv2d;

namespace IlgpuTrain.Bench.Layers;

/// <summary>
/// 2-D convolution at the Fashion-MNIST CNN's shapes (3x3, padding 1, stride 1), in GFLOP/s:
/// forward 2 N O Ho Wo C kh kw, forward + backward three times that (dW and dx each cost a forward).
/// The backward computes dx too (x is differentiated), as every conv layer but the first needs.
/// </summary>
public class Conv2dBench
{
    private ComputeDevice _device = null!;
    private ParamTree _tree = null!;
    private float[] _hx = null!;
    private float[] _hw = null!;
    private float[] _hb = null!;
    private float[] _hy = null!;
    private float[] _dy = null!;
    private Conv2dGeometry _g;
    private int _out;

    /// <summary>Batch N: 128 as the PyTorch peer's CNN.</summary>
    [Params(128)]
    public int Batch { get; set; }

    /// <summary>"CxOxSxk": input channels, output channels, square side, kernel side (padding k/2).</summary>
    [Params("1x32x28x3", "32x64x14x3")]
    public string Layer { get; set; } = "";

    [GlobalSetup]
    public void Setup()
    {
        var d = Layer.Split('x').Select(int.Parse).ToArray();
        int c = d[0], s = d[2], k = d[3];
        _out = d[1];
        _g = new Conv2dGeometry(Batch, c, s, s, k, k, 1, 1, k / 2, k / 2, 1, 1);
        _device = BenchDevice.Create();
        var (p, state) = new Conv2dLayer(_out, k, Padding: k / 2).Init(_device, new IlgpuTrain.Functional.Shape(c, s, s), Rng.Create(1));
        state.Dispose();
        var host = p.ToHost();
        p.Dispose();
        _hw = host["weight"].Data;
        _hb = host["bias"].Data;
        _hx = BenchDevice.Random((int)_g.InputLength, 1);
        _hy = new float[_g.OutputLength(_out)];
        _dy = BenchDevice.Random(_hy.Length, 2);
        _tree = ParamTree.FromHost(_device, [
            KeyValuePair.Create("x", (new[] { Batch, c, s, s }, _hx)),
            KeyValuePair.Create("weight", (host["weight"].Shape, _hw)),
            KeyValuePair.Create("bias", (host["bias"].Shape, _hb)),
        ]);
        Forward();
        ForwardBackward();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _tree.Dispose();
        _device.Dispose();
    }

    [Benchmark(Baseline = true), ConvFlops(1)]
    public void ForwardReference() => Conv2dReference.ForwardReference(_hx, _hw, _hb, _hy, _g, _out);

    [Benchmark, ConvFlops(1)]
    public void Forward()
    {
        using var step = _device.BeginStep();
        var p = Params.Bind(_tree, step);
        _ = F.Conv2d(p["x"], p["weight"], p["bias"], padding: (_g.PH, _g.PW));
        _device.Synchronize();
    }

    [Benchmark, ConvFlops(3)]
    public void ForwardBackward()
    {
        using var step = _device.BeginStep();
        var seed = step.Upload(_dy, new IlgpuTrain.Functional.Shape(Batch, _out, _g.HO, _g.WO));
        var (_, grads) = Autodiff.ValueAndGrad(step, _tree, p => F.Sum(F.Mul(F.Conv2d(p["x"], p["weight"], p["bias"], padding: (_g.PH, _g.PW)), seed)));
        _device.Synchronize();
        grads.Dispose();
    }
}
