using IlgpuTrain.Layers;
using IlgpuTrain.Optimizers;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// The batch-size finder: the search returns the largest batch that fits (fits(b) and not
/// fits(b + 1)) for any threshold, in about 2·log2(max) trials; with real steps measured by the
/// memory pool it finds the largest batch within a budget, the measured peak grows with the batch
/// and covers the state and the input, and a budget too small for batch 1 is refused with what it needs.
/// </summary>
public class BatchSizeFinderProperties
{
    // The finder reads the pool's device-wide counters: a device of its own, so that no other test moves them.
    private static readonly Lazy<Device> Own = new(() => Device.Create(DeviceKind.Cpu));

    private static readonly InMemoryDataset Data = new(
        "ramp", [.. Enumerable.Range(0, 40 * 12).Select(i => (i % 13) / 13f)], [.. Enumerable.Range(0, 40).Select(i => i % 4)], new Shape(12), 4);

    private static Trainer Tiny() =>
        new(Own.Value, new Dense(32) >> new ReLU() >> new Dense(4), Data.SampleShape, new AdamW(1e-3), new TrainerOptions { WarmKernels = false });

    private static readonly Gen<(int Max, int Threshold)> Limits =
        from max in Gen.Choose(1, 70_000)
        from threshold in Gen.OneOf(Gen.Choose(0, max + 5), Gen.Choose(0, 70))
        select (max, threshold);

    [Property(MaxTest = 500)]
    public Property The_search_finds_the_largest_batch_that_fits_in_about_two_log2_max_trials() =>
        Prop.ForAll(Limits.ToArbitrary(), t =>
        {
            var (max, threshold) = t;
            bool Fits(int b) => b <= threshold;
            var (batch, tried) = BatchSizeFinder.Search(max, Fits);
            bool largest = threshold == 0
                ? batch == 0
                : Fits(batch) && (batch == max || !Fits(batch + 1)) && batch >= 1 && batch <= max;
            bool cheap = tried.Count <= (2 * (int)Math.Ceiling(Math.Log2(max + 1))) + 2 && tried.Distinct().Count() == tried.Count && tried.All(b => b >= 1 && b <= max);
            return (largest && cheap).Label($"batch {batch}; tried {string.Join(", ", tried)}");
        });

    [Property(MaxTest = 8)]
    public Property With_a_budget_from_a_measured_step_it_finds_the_largest_batch_within_it() =>
        Prop.ForAll(Gen.Choose(1, 300).ToArbitrary(), reference =>
        {
            var trainer = Tiny();
            long budget = BatchSizeFinder.Measure(trainer, Data, reference, null).PeakBytes;
            var r = BatchSizeFinder.Run(trainer, Data, budget, maxBatch: 1024);
            var at = BatchSizeFinder.Measure(trainer, Data, r.BatchSize, budget);
            var next = BatchSizeFinder.Measure(trainer, Data, r.BatchSize + 1, budget);
            bool ok = at.Fits && at.PeakBytes == r.PeakBytes && (r.ReachedMax || !next.Fits) && r.BatchSize >= reference;
            return ok.Label($"budget {budget} B (batch {reference}); found {r.Describe()}; next peak {next.PeakBytes}");
        });

    [Fact]
    public void The_measured_peak_grows_with_the_batch_and_covers_the_state_and_the_input()
    {
        var trainer = Tiny();
        long stateBytes;
        using (var s = trainer.Init())
            stateBytes = (s.Params.Count * 4L * 3) + (s.State.Count * 4L); // parameters and two Adam moments
        long previous = 0;
        foreach (int b in new[] { 1, 64, 512, 4096 })
        {
            var p = BatchSizeFinder.Measure(trainer, Data, b, null);
            Assert.True(p.Fits && !p.OutOfMemory);
            Assert.True(p.PeakBytes >= stateBytes + (b * 12L * 4), $"batch {b}: peak {p.PeakBytes} B below the state ({stateBytes} B) and the input ({b * 48} B)");
            Assert.True(p.PeakBytes > previous, $"batch {b}: peak {p.PeakBytes} B, not above {previous} B");
            previous = p.PeakBytes;
        }

        // A hidden layer of 32 floats per sample, forward and backward: at least 2 x 128 B per sample more.
        Assert.True(previous >= 4096 * 2 * 128, $"{previous} B");
    }

    [Fact]
    public void A_budget_too_small_for_batch_1_is_refused_with_what_it_needs()
    {
        var trainer = Tiny();
        long need = BatchSizeFinder.Measure(trainer, Data, 1, null).PeakBytes;
        var e = Assert.Throws<ArgumentException>(() => BatchSizeFinder.Run(trainer, Data, need - 1, 64));
        Assert.Contains("batch 1", e.Message);
        Assert.Contains($"{need} bytes", e.Message);
        Assert.Contains("--memory-budget", e.Message);
        var exact = BatchSizeFinder.Run(trainer, Data, need, 64);
        Assert.True(exact.BatchSize >= 1 && exact.PeakBytes <= need, exact.Describe());
        Assert.Throws<ArgumentOutOfRangeException>(() => BatchSizeFinder.Run(trainer, Data, 0, 64));
        Assert.Throws<ArgumentOutOfRangeException>(() => BatchSizeFinder.Search(0, _ => true));
    }

    [Fact]
    public void The_result_scales_the_learning_rate_linearly_from_the_reference_batch()
    {
        var r = new BatchSizeFinderResult(2048, 1 << 20, null, 65536, []);
        Assert.Equal(3e-3 * 16, r.ScaledLearningRate(3e-3, 128), 15);
        Assert.Equal(0.1 * 2048 / 256, r.ScaledLearningRate(0.1, 256), 15);
        Assert.False(r.ReachedMax);
    }
}
