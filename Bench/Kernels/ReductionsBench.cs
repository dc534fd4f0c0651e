using BenchmarkDotNet.Attributes;
using IlgpuTrain.Bench.Support;
using IlgpuTrain.Functional;
using IlgpuTrain.Kernels;
using IlgpuTrain.Training.Conformance;

namespace IlgpuTrain.Bench.Kernels;

/// <summary>Reductions against their float64 CPU references, in GB/s (Reductions.BytesPerElement read per element).</summary>
public class ReductionsBench
{
    private ComputeDevice _device = null!;
    private Tensor _x = null!;
    private Tensor _result = null!;
    private Tensor _rows = null!;
    private Tensor _cols = null!;
    private Tensor _scratch = null!;
    private float[] _hx = null!;
    private double[] _hrows = null!;
    private double[] _hcols = null!;

    /// <summary>Elements; 6*512+7 is deliberately odd. Rows/columns views use a (N/256, 256) matrix.</summary>
    [Params(6 * 512 + 7, 1 << 20, 1 << 22)]
    public int N { get; set; }

    private int Rows => N / 256;

    [GlobalSetup]
    public void Setup()
    {
        _device = BenchDevice.Create();
        _hx = BenchDevice.Random(N, 3);
        _x = Tensor.FromHost(_device, _hx, N);
        _result = Tensor.Zeros(_device, new Shape(1));
        _rows = Tensor.Zeros(_device, new Shape(Rows));
        _cols = Tensor.Zeros(_device, new Shape(256));
        _scratch = Tensor.Zeros(_device, new Shape(Math.Max(1, Reductions.ScratchLength(_device.Kernels, N))));
        _hrows = new double[Rows];
        _hcols = new double[256];
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _x.Dispose();
        _result.Dispose();
        _rows.Dispose();
        _cols.Dispose();
        _scratch.Dispose();
        _device.Dispose();
    }

    [Benchmark(Baseline = true), BenchmarkCategory("Sum"), Bytes(Reductions.BytesPerElement)]
    public double SumReference() => ReductionsReference.SumReference(_hx);

    [Benchmark, BenchmarkCategory("Sum"), Bytes(Reductions.BytesPerElement)]
    public void Sum()
    {
        Reductions.Sum(_device.Kernels, _x.View<float>(), _result.View<float>(), _scratch.View<float>());
        _device.Synchronize();
    }

    [Benchmark, BenchmarkCategory("Sum"), Bytes(Reductions.BytesPerElement)]
    public void SumAtomic()
    {
        Reductions.Sum(_device.Kernels, _x.View<float>(), _result.View<float>(), _scratch.View<float>(), ReductionMode.Atomic);
        _device.Synchronize();
    }

    [Benchmark(Baseline = true), BenchmarkCategory("L2Norm"), Bytes(Reductions.BytesPerElement)]
    public double L2NormReference() => ReductionsReference.L2NormReference(_hx);

    [Benchmark, BenchmarkCategory("L2Norm"), Bytes(Reductions.BytesPerElement)]
    public void L2Norm()
    {
        Reductions.L2Norm(_device.Kernels, _x.View<float>(), _result.View<float>(), _scratch.View<float>());
        _device.Synchronize();
    }

    [Benchmark(Baseline = true), BenchmarkCategory("Max"), Bytes(Reductions.BytesPerElement)]
    public double MaxReference() => ReductionsReference.MaxReference(_hx);

    [Benchmark, BenchmarkCategory("Max"), Bytes(Reductions.BytesPerElement)]
    public void Max()
    {
        Reductions.Max(_device.Kernels, _x.View<float>(), _result.View<float>(), _scratch.View<float>());
        _device.Synchronize();
    }

    [Benchmark(Baseline = true), BenchmarkCategory("SumRows"), Bytes(Reductions.BytesPerElement)]
    public void SumRowsReference() => ReductionsReference.SumRowsReference(_hx.AsSpan(0, Rows * 256), Rows, 256, _hrows);

    [Benchmark, BenchmarkCategory("SumRows"), Bytes(Reductions.BytesPerElement)]
    public void SumRows()
    {
        Reductions.SumRows(_device.Kernels, _x.View<float>().SubView(0, Rows * 256), Rows, 256, _rows.View<float>());
        _device.Synchronize();
    }

    [Benchmark(Baseline = true), BenchmarkCategory("SumColumns"), Bytes(Reductions.BytesPerElement)]
    public void SumColumnsReference() => ReductionsReference.SumColumnsReference(_hx.AsSpan(0, Rows * 256), Rows, 256, _hcols);

    [Benchmark, BenchmarkCategory("SumColumns"), Bytes(Reductions.BytesPerElement)]
    public void SumColumns()
    {
        Reductions.SumColumns(_device.Kernels, _x.View<float>().SubView(0, Rows * 256), Rows, 256, _cols.View<float>());
        _device.Synchronize();
    }
}
