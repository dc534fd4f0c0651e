using BenchmarkDotNet.Attributes;
using IlgpuTrain.Bench.Support;
using IlgpuTrain.Functional;
using IlgpuTrain.Kernels;
using IlgpuTrain.Training.Conformance;

namespace IlgpuTrain.Bench.Kernels;

/// <summary>Elementwise kernels and an activation (GELU, erf form) against their CPU references, in GB/s (bytes from the kernels' BytesPerElement constants).</summary>
[MemoryDiagnoser(false)]
public class ElementwiseBench
{
    private ComputeDevice _device = null!;
    private Tensor _x = null!;
    private Tensor _y = null!;
    private Tensor _z = null!;
    private float[] _hx = null!;
    private float[] _hy = null!;
    private float[] _hz = null!;

    /// <summary>Elements; 6*512+7 is deliberately odd.</summary>
    [Params(6 * 512 + 7, 1 << 20, 1 << 22)]
    public int N { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _device = BenchDevice.Create();
        _hx = BenchDevice.Random(N, 1);
        _hy = BenchDevice.Random(N, 2);
        _hz = new float[N];
        _x = Tensor.FromHost(_device, _hx, N);
        _y = Tensor.FromHost(_device, _hy, N);
        _z = Tensor.Zeros(_device, new Shape(N));
        Axpy();
        Add();
        Gelu();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _x.Dispose();
        _y.Dispose();
        _z.Dispose();
        _device.Dispose();
    }

    [Benchmark(Baseline = true), BenchmarkCategory("Axpy"), Bytes(Elementwise.AxpyBytesPerElement)]
    public void AxpyReference() => ElementwiseReference.AxpyReference(1e-3f, _hx, _hy);

    [Benchmark, BenchmarkCategory("Axpy"), Bytes(Elementwise.AxpyBytesPerElement)]
    public void Axpy()
    {
        Elementwise.Axpy(_device.Kernels, 1e-3f, _x.View<float>(), _y.View<float>());
        _device.Synchronize();
    }

    [Benchmark(Baseline = true), BenchmarkCategory("Add"), Bytes(Elementwise.AddBytesPerElement)]
    public void AddReference() => ElementwiseReference.AddReference(_hx, _hy, _hz);

    [Benchmark, BenchmarkCategory("Add"), Bytes(Elementwise.AddBytesPerElement)]
    public void Add()
    {
        Elementwise.Add(_device.Kernels, _x.View<float>(), _y.View<float>(), _z.View<float>());
        _device.Synchronize();
    }

    [Benchmark(Baseline = true), BenchmarkCategory("Gelu"), Bytes(Activations.ForwardBytesPerElement)]
    public void GeluReference() => ActivationsReference.GeluReference(_hx, _hz);

    [Benchmark, BenchmarkCategory("Gelu"), Bytes(Activations.ForwardBytesPerElement)]
    public void Gelu()
    {
        Activations.Gelu(_device.Kernels, _x.View<float>(), _z.View<float>());
        _device.Synchronize();
    }
}
