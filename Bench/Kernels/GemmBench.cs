using BenchmarkDotNet.Attributes;
using IlgpuTrain.Bench.Support;
using IlgpuTrain.Functional;
using IlgpuTrain.Kernels;
using IlgpuTrain.Training.Conformance;

namespace IlgpuTrain.Bench.Kernels;

/// <summary>
/// GEMM C = op(A) op(B) against the float64 triple-loop reference, in GFLOP/s (2MNK per call):
/// float operands (Gemm) and binary16 operands with float accumulation (GemmHalf, the
/// Precision.Float16 path of MatMul, Linear and Conv2d).
/// </summary>
public class GemmBench
{
    private ComputeDevice _device = null!;
    private Tensor _a = null!;
    private Tensor _b = null!;
    private Tensor _c = null!;
    private Tensor _ah = null!;
    private Tensor _bh = null!;
    private float[] _ha = null!;
    private float[] _hb = null!;
    private float[] _hc = null!;
    private int _m;
    private int _n;
    private int _k;

    /// <summary>M x N x K. 128x256x784 is the Fashion-MNIST MLP's first layer at batch 128.</summary>
    [Params("128x256x784", "256x256x784")]
    public string Shape { get; set; } = "";

    /// <summary>Transposes: NN (forward), NT (dX = dY W^T style), TN (dW = X^T dY).</summary>
    [Params("NN", "NT", "TN")]
    public string Op { get; set; } = "";

    private bool TransA => Op[0] == 'T';

    private bool TransB => Op[1] == 'T';

    [GlobalSetup]
    public void Setup()
    {
        var d = Shape.Split('x').Select(int.Parse).ToArray();
        (_m, _n, _k) = (d[0], d[1], d[2]);
        _device = BenchDevice.Create();
        _ha = BenchDevice.Random(_m * _k, 1);
        _hb = BenchDevice.Random(_k * _n, 2);
        _hc = new float[_m * _n];
        _a = Tensor.FromHost(_device, _ha, _ha.Length);
        _b = Tensor.FromHost(_device, _hb, _hb.Length);
        _c = Tensor.Zeros(_device, new IlgpuTrain.Functional.Shape(_m * _n));
        _ah = Tensor.FromHost(_device, _ha.Select(CastReference.ToHalfReference).ToArray().AsSpan(), new IlgpuTrain.Functional.Shape(_ha.Length));
        _bh = Tensor.FromHost(_device, _hb.Select(CastReference.ToHalfReference).ToArray().AsSpan(), new IlgpuTrain.Functional.Shape(_hb.Length));
        Kernel();
        KernelHalf();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _a.Dispose();
        _b.Dispose();
        _c.Dispose();
        _ah.Dispose();
        _bh.Dispose();
        _device.Dispose();
    }

    [Benchmark(Baseline = true), GemmFlops]
    public void Reference() => GemmReferences.GemmReference(TransA, TransB, _m, _n, _k, 1f, _ha, _hb, 0f, _hc);

    [Benchmark, GemmFlops]
    public void Kernel()
    {
        Gemm.Run(_device.Kernels, TransA, TransB, _m, _n, _k, 1f, _a.View<float>(), _b.View<float>(), 0f, _c.View<float>());
        _device.Synchronize();
    }

    /// <summary>The same product with binary16 A and B (half the operand bytes), float accumulation and float C.</summary>
    [Benchmark, GemmFlops]
    public void KernelHalf()
    {
        GemmHalf.Run(_device.Kernels, TransA, TransB, _m, _n, _k, 1f, _ah.View<ILGPU.Half>(), _bh.View<ILGPU.Half>(), 0f, _c.View<float>());
        _device.Synchronize();
    }
}
