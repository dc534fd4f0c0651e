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

    /// <summary>IlgpuTrain time / PyTorch time: below 1, IlgpuTrain is faster. Over several rounds, the median of the rounds' ratios.</summary>
    public double? Ratio => RatioSpread?.Median ?? (Ms is { } a && PeerMs is { } b && b > 0 ? a / b : null);

    /// <summary>Where this row's step time went, op by op (bench --profile, train step rows of the first round), or null.</summary>
    public Functional.StepProfile? Profile { get; init; }

    /// <summary>IlgpuTrain's milliseconds over the rounds (<see cref="Ms"/> is their median), or null for a row measured once.</summary>
    public Spread? MsSpread { get; init; }

    /// <summary>The peer's milliseconds over the rounds (<see cref="PeerMs"/> is their median).</summary>
    public Spread? PeerSpread { get; init; }

    /// <summary>The ratio of each round (IlgpuTrain and the peer measured back to back), over the rounds.</summary>
    public Spread? RatioSpread { get; init; }

    /// <summary>True when the row was not measured (Note says why).</summary>
    public bool Skipped => Ms is null && Value is null;

    /// <summary>A row that was not measured, with the reason.</summary>
    public static BenchRow Skip(string family, string name, string unit, string reason) => new(family, name, null, null, unit, "skipped: " + reason);
}

/// <summary>Median, least and greatest of a row's figure over the rounds of one run, and how many rounds gave it.</summary>
internal sealed record Spread(double Median, double Min, double Max, int Count)
{
    /// <summary>The spread of <paramref name="values"/> (at least one).</summary>
    public static Spread Of(IReadOnlyCollection<double> values)
    {
        if (values.Count == 0)
            throw new ArgumentException("A spread needs at least one value.", nameof(values));
        var sorted = values.Order().ToArray();
        int n = sorted.Length;
        double median = n % 2 == 1 ? sorted[n / 2] : (sorted[(n / 2) - 1] + sorted[n / 2]) / 2;
        return new Spread(median, sorted[0], sorted[^1], n);
    }
}
