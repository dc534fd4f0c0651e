namespace IlgpuTrain.Cli.Benchmarks;

/// <summary>
/// One line of <c>ilgpu-train bench</c>: what was measured, its median time and throughput, and,
/// when the PyTorch peer ran the same work, its time and the ratio IlgpuTrain / PyTorch.
/// </summary>
/// <param name="Family">The row family (copy, elementwise, reductions, gemm, optimizer, models, startup, memory): what --only selects.</param>
/// <param name="Name">The row's name; the peer script reports the same name for the same work.</param>
/// <param name="Ms">Median milliseconds per call (null for rows that are not times, or skipped rows).</param>
/// <param name="Value">The throughput or amount in <paramref name="Unit"/> (GB/s, GFLOP/s, samples/s, MiB).</param>
/// <param name="Unit">The unit of <paramref name="Value"/>.</param>
/// <param name="Note">How it was counted, or why the row was skipped.</param>
internal sealed record BenchRow(string Family, string Name, double? Ms, double? Value, string Unit, string Note)
{
    /// <summary>Value / the copy bandwidth, for GB/s rows.</summary>
    public double? VsCopy { get; init; }

    /// <summary>The PyTorch peer's median milliseconds for the same work, when it ran.</summary>
    public double? PeerMs { get; init; }

    /// <summary>What the peer script measures for this row (kind and sizes), or null when PyTorch has no such row.</summary>
    public Dictionary<string, object>? PeerSpec { get; init; }

    /// <summary>IlgpuTrain time / PyTorch time: below 1, IlgpuTrain is faster.</summary>
    public double? Ratio => Ms is { } a && PeerMs is { } b && b > 0 ? a / b : null;

    /// <summary>True when the row was not measured (Note says why).</summary>
    public bool Skipped => Ms is null && Value is null;

    /// <summary>A row that was not measured, with the reason.</summary>
    public static BenchRow Skip(string family, string name, string unit, string reason) => new(family, name, null, null, unit, "skipped: " + reason);
}
