using System.Reflection;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace IlgpuTrain.Bench.Support;

/// <summary>Bytes a benchmark call moves: <see cref="PerElement"/> times the benchmark's <c>N</c> parameter (a kernel's <c>...BytesPerElement</c> constant).</summary>
/// <param name="perElement">Bytes read plus written per element.</param>
[AttributeUsage(AttributeTargets.Method)]
public sealed class BytesAttribute(double perElement) : Attribute
{
    /// <summary>Bytes read plus written per element.</summary>
    public double PerElement { get; } = perElement;
}

/// <summary>The call does 2*M*N*K floating-point operations (from the <c>Shape</c> parameter "MxNxK").</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class GemmFlopsAttribute : Attribute
{
}

/// <summary>
/// The call does <see cref="Passes"/> times 2*N*O*S*S*C*k*k floating-point operations: a 2-D
/// convolution with stride 1 and "same" padding, from the <c>Batch</c> parameter N and the
/// <c>Layer</c> parameter "CxOxSxk" (input channels, output channels, side, kernel side).
/// Forward is 1 pass; forward + backward (dW and dx) is 3.
/// </summary>
/// <param name="passes">Forward-sized passes per call.</param>
[AttributeUsage(AttributeTargets.Method)]
public sealed class ConvFlopsAttribute(double passes) : Attribute
{
    /// <summary>Forward-sized passes per call.</summary>
    public double Passes { get; } = passes;
}

/// <summary>
/// Bytes of a fused optimizer step per parameter, from the <c>Optimizer</c> parameter's prefix:
/// AdamW/Adam: <see cref="IlgpuTrain.Kernels.AdamUpdate.StepBytesPerElement"/>; Sgd with momentum:
/// <see cref="IlgpuTrain.Kernels.SgdUpdate.StepBytesPerElement"/>. Times the <c>N</c> parameter.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class OptimizerBytesAttribute : Attribute
{
    /// <summary>Bytes per parameter for an optimizer name.</summary>
    /// <param name="optimizer">E.g. "AdamW-fused".</param>
    /// <returns>The bytes, or 0 when unknown.</returns>
    public static double PerParameter(string optimizer) =>
        optimizer.StartsWith("Adam", StringComparison.Ordinal) ? IlgpuTrain.Kernels.AdamUpdate.StepBytesPerElement : optimizer.StartsWith("Sgd", StringComparison.Ordinal) ? IlgpuTrain.Kernels.SgdUpdate.StepBytesPerElement : 0;
}

/// <summary>Throughput from the median time: GB/s for <see cref="BytesAttribute"/> benchmarks, GFLOP/s for <see cref="GemmFlopsAttribute"/>.</summary>
public sealed class ThroughputColumn : IColumn
{
    /// <summary>The single instance.</summary>
    public static readonly ThroughputColumn Instance = new();

    /// <inheritdoc/>
    public string Id => nameof(ThroughputColumn);

    /// <inheritdoc/>
    public string ColumnName => "Throughput";

    /// <inheritdoc/>
    public bool AlwaysShow => true;

    /// <inheritdoc/>
    public ColumnCategory Category => ColumnCategory.Custom;

    /// <inheritdoc/>
    public int PriorityInCategory => 0;

    /// <inheritdoc/>
    public bool IsNumeric => false;

    /// <inheritdoc/>
    public UnitType UnitType => UnitType.Dimensionless;

    /// <inheritdoc/>
    public string Legend => "GB/s (bytes moved per call / median time) or GFLOP/s (2MNK, or the convolution's FLOPs, / median time)";

    /// <inheritdoc/>
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    /// <inheritdoc/>
    public bool IsAvailable(Summary summary) => true;

    /// <inheritdoc/>
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    /// <inheritdoc/>
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var report = summary[benchmarkCase];
        var median = report?.ResultStatistics?.Median;
        if (median is null or <= 0)
            return "-";
        double seconds = median.Value * 1e-9;
        var method = benchmarkCase.Descriptor.WorkloadMethod;
        if (method.GetCustomAttribute<BytesAttribute>() is { } bytes && benchmarkCase.Parameters["N"] is int n)
            return $"{bytes.PerElement * n / seconds / 1e9:0.00} GB/s";
        if (method.GetCustomAttribute<OptimizerBytesAttribute>() is not null && benchmarkCase.Parameters["N"] is int np && benchmarkCase.Parameters["Optimizer"] is string opt)
            return $"{OptimizerBytesAttribute.PerParameter(opt) * np / seconds / 1e9:0.00} GB/s";
        if (method.GetCustomAttribute<GemmFlopsAttribute>() is not null && benchmarkCase.Parameters["Shape"] is string shape && shape.Contains('x'))
        {
            var d = shape.Split('x').Select(double.Parse).ToArray();
            return $"{2 * d[0] * d[1] * d[2] / seconds / 1e9:0.00} GFLOP/s";
        }
        if (method.GetCustomAttribute<ConvFlopsAttribute>() is { } conv && benchmarkCase.Parameters["Batch"] is int batch && benchmarkCase.Parameters["Layer"] is string layer)
        {
            var d = layer.Split('x').Select(double.Parse).ToArray();
            return $"{conv.Passes * 2 * batch * d[1] * d[2] * d[2] * d[0] * d[3] * d[3] / seconds / 1e9:0.00} GFLOP/s";
        }
        return "-";
    }
}
