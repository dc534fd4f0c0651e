using System.Globalization;
using IlgpuTrain.Layers;
using IlgpuTrain.Optimizers;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// The learning-rate range test on a tiny model: the rates are exactly the exponential sweep, the
/// smoothed loss is fastai's bias-corrected average (checked against its closed form in float64),
/// the sweep stops at the first step past 4x the best smoothed loss, the caller's state is left
/// bitwise as it was, and the suggestions are rates of the sweep with the documented optimality.
/// </summary>
public class LearningRateFinderProperties
{
    /// <summary>Three Gaussian blobs in 8 dimensions.</summary>
    private static InMemoryDataset Blobs(int n, int seed)
    {
        var r = new Random(seed);
        var centers = Enumerable.Range(0, 3).Select(_ => Enumerable.Range(0, 8).Select(_ => (float)((r.NextDouble() * 4) - 2)).ToArray()).ToArray();
        var x = new float[n * 8];
        var y = new int[n];
        for (int i = 0; i < n; i++)
        {
            y[i] = i % 3;
            for (int j = 0; j < 8; j++)
                x[(i * 8) + j] = centers[y[i]][j] + (float)(r.NextDouble() - 0.5);
        }

        return new InMemoryDataset("blobs", x, y, new Shape(8), 3);
    }

    private static readonly InMemoryDataset Data = Blobs(96, 5);

    private static Layer Model() => new Dense(16) >> new Tanh() >> new Dense(3);

    private static TrainerOptions Options(ulong seed = 1) => new() { BatchSize = 16, Seed = seed, WarmKernels = false };

    private static Func<Schedule, Trainer> Factory(Func<Schedule, IGradientTransformation> optimizer, ulong seed = 1) =>
        lr => new Trainer(Devices.Cpu, Model(), Data.SampleShape, optimizer(lr), Options(seed));

    private static readonly Gen<LearningRateFinderOptions> Sweeps =
        from start in Gen.Choose(-6, -3).Select(e => Math.Pow(10, e))
        from decades in Gen.Choose(1, 5)
        from n in Gen.Choose(2, 24)
        select new LearningRateFinderOptions { StartLr = start, EndLr = start * Math.Pow(10, decades), NumIter = n, DivergenceFactor = double.PositiveInfinity };

    [Property(MaxTest = 12)]
    public Property The_rates_are_exactly_the_exponential_sweep_from_start_to_end() =>
        Prop.ForAll(Sweeps.ToArbitrary(), o =>
        {
            var r = LearningRateFinder.Run(Factory(lr => new Chain(new ClipByGlobalNorm(1.0), new Sgd(lr))), Data, o);
            bool all = r.Curve.Count == o.NumIter && !r.Diverged;
            bool exact = r.Curve.Select((p, i) => p.Iteration == i && Math.Abs(p.LearningRate - (o.StartLr * Math.Pow(o.EndLr / o.StartLr, (double)i / (o.NumIter - 1)))) <= 1e-12 * p.LearningRate).All(b => b);
            bool ends = Math.Abs(r.Curve[0].LearningRate - o.StartLr) <= 1e-15 * o.StartLr && Math.Abs(r.Curve[^1].LearningRate - o.EndLr) <= 1e-12 * o.EndLr;
            return (all && exact && ends).Label($"{r.Curve.Count} steps of {o.NumIter}; lrs {string.Join(", ", r.Curve.Select(p => p.LearningRate.ToString("G17", CultureInfo.InvariantCulture)))}");
        });

    [Property(MaxTest = 10)]
    public Property The_smoothed_loss_is_the_bias_corrected_average_in_closed_form() =>
        Prop.ForAll(Sweeps.ToArbitrary(), Gen.Elements(0.0, 0.5, 0.9, 0.98).ToArbitrary(), (o, beta) =>
        {
            var r = LearningRateFinder.Run(Factory(lr => new AdamW(lr)), Data, o with { Beta = beta });

            // smoothed_i = Σ_{j≤i} (1−β)·β^(i−j)·loss_j / (1 − β^(i+1)), summed directly in float64.
            var bad = new List<string>();
            for (int i = 0; i < r.Curve.Count; i++)
            {
                double sum = 0;
                for (int j = 0; j <= i; j++)
                    sum += (1 - beta) * Math.Pow(beta, i - j) * r.Curve[j].Loss;
                double reference = sum / (1 - Math.Pow(beta, i + 1));
                if (!(Math.Abs(r.Curve[i].SmoothedLoss - reference) <= 1e-12 * Math.Abs(reference)))
                    bad.Add($"step {i}: {r.Curve[i].SmoothedLoss:G17} vs {reference:G17}");
            }

            return (bad.Count == 0 && r.Curve.Count > 0 && r.Curve.All(p => double.IsFinite(p.Loss))).Label($"{r.Curve.Count} steps; " + string.Join("; ", bad));
        });

    [Fact]
    public void A_loss_that_explodes_at_high_rates_stops_the_sweep_at_the_first_step_past_4x_the_best()
    {
        // Plain SGD with no clipping up to lr 1e4, on a linear model and labels it cannot separate
        // (separable data would only drive the loss to 0 as the weights grow): the loss blows up.
        var noise = Blobs(96, 9);
        var labels = Enumerable.Range(0, noise.Count).Select(i => (i * 7 / 3) % 3).ToArray();
        var x = Enumerable.Range(0, noise.Count).SelectMany(i => noise.Features(i).ToArray()).ToArray();
        var data = new InMemoryDataset("noise", x, labels, noise.SampleShape, 3);
        Func<Schedule, Trainer> sgd = lr => new Trainer(Devices.Cpu, new Dense(3), data.SampleShape, new Sgd(lr), Options());
        var o = new LearningRateFinderOptions { StartLr = 1e-4, EndLr = 1e4, NumIter = 100 };
        var r = LearningRateFinder.Run(sgd, data, o);
        Assert.True(r.Diverged, r.StopReason);
        Assert.True(r.Curve.Count < o.NumIter, $"{r.Curve.Count} steps");
        Assert.Contains("exceeded 4 x the best", r.StopReason);
        double best = double.PositiveInfinity;
        for (int i = 0; i < r.Curve.Count; i++)
        {
            best = Math.Min(best, r.Curve[i].SmoothedLoss);
            bool past = r.Curve[i].SmoothedLoss > 4 * best;
            Assert.True(past == (i == r.Curve.Count - 1), $"step {i}: smoothed {r.Curve[i].SmoothedLoss}, best {best}");
        }

        // Never stopping early, the same sweep runs to the end (or to a non-finite loss).
        var all = LearningRateFinder.Run(sgd, data, o with { DivergenceFactor = double.PositiveInfinity });
        Assert.True(all.Curve.Count > r.Curve.Count);
        Assert.Equal(r.Curve, all.Curve.Take(r.Curve.Count));
    }

    [Fact]
    public void The_callers_state_is_bitwise_untouched_and_a_second_test_from_it_gives_the_same_curve()
    {
        // A state with moments: a trained epoch of AdamW.
        var trainer = new Trainer(Devices.Cpu, Model(), Data.SampleShape, new AdamW(1e-2), Options() with { Epochs = 1 });
        using var s = trainer.Fit(Data).State;
        var before = (s.Params.Snapshot().Float32, s.State.Snapshot().Float32, Moments(s));
        var o = new LearningRateFinderOptions { NumIter = 30 };

        var first = LearningRateFinder.Run(Factory(lr => new AdamW(lr)), Data, o, from: s);
        var second = LearningRateFinder.Run(Factory(lr => new AdamW(lr)), Data, o, from: s);

        Assert.False(s.Params.IsConsumed || s.State.IsConsumed || s.OptState.IsConsumed);
        Assert.Equal(before.Item1, s.Params.Snapshot().Float32);
        Assert.Equal(before.Item2, s.State.Snapshot().Float32);
        Assert.Equal(before.Item3, Moments(s));
        Assert.Equal(first.Curve, second.Curve);

        // It did start from the given weights, not from a fresh initialization.
        var fresh = LearningRateFinder.Run(Factory(lr => new AdamW(lr)), Data, o);
        Assert.NotEqual(fresh.Curve[0].Loss, first.Curve[0].Loss);
        Assert.True(first.Curve[0].Loss < fresh.Curve[0].Loss, $"trained {first.Curve[0].Loss} vs fresh {fresh.Curve[0].Loss}");
    }

    private static float[] Moments(TrainState s)
    {
        var adam = s.OptState.Find<ScaleByAdamState>();
        return [.. adam.Mu.Snapshot().Float32, .. adam.Nu.Snapshot().Float32];
    }

    private static readonly Gen<(LearningRatePoint[] Curve, int NumIter)> Curves =
        from n in Gen.Choose(0, 40)
        from numIter in Gen.Choose(Math.Max(n, 2), 60)
        from losses in Gen.ArrayOf(Gen.Choose(1, 100_000).Select(k => k / 1000.0), n)
        select (losses.Select((l, i) => new LearningRatePoint(i, 1e-7 * Math.Pow(1e8, (double)i / (numIter - 1)), l, l)).ToArray(), numIter);

    [Property(MaxTest = 300)]
    public Property Suggestions_are_rates_of_the_sweep_at_the_steepest_descent_and_a_tenth_of_the_minimum() =>
        Prop.ForAll(Curves.ToArbitrary(), t =>
        {
            var (curve, numIter) = t;
            var (steep, min10) = LearningRateFinder.Suggest(curve, numIter);
            if (curve.Length == 0)
                return (steep is null && min10 is null).Label("empty curve");
            int skip = numIter / 10;
            var w = curve.Skip(skip).Take(curve.Length - skip - LearningRateFinder.SkipEnd).ToList();
            if (w.Count < 2)
                w = [.. curve];
            bool minOk = min10 is { } m && w.Any(p => p.LearningRate / 10 == m) && w.All(p => p.SmoothedLoss >= w.First(q => q.LearningRate / 10 == m).SmoothedLoss);
            if (w.Count < 2)
                return (steep is null && minOk).Label("one point");
            double Slope(int j) => (w[j + 1].SmoothedLoss - w[j].SmoothedLoss) / Math.Log(w[j + 1].LearningRate / w[j].LearningRate);
            int at = w.FindIndex(p => p.LearningRate == steep);
            bool steepOk = at >= 0 && at + 1 < w.Count && Enumerable.Range(0, w.Count - 1).All(j => Slope(at) <= Slope(j) + 1e-9);
            bool inside = curve[0].LearningRate <= steep && steep <= curve[^1].LearningRate;
            return (minOk && steepOk && inside).Label($"steep {steep} (index {at}), min/10 {min10}, window {w.Count}");
        });

    [Fact]
    public void An_optimizer_that_ignores_the_swept_rate_is_refused_by_name()
    {
        var e = Assert.Throws<ArgumentException>(() => LearningRateFinder.Run(Factory(_ => new Sgd(0.1)), Data, new LearningRateFinderOptions { NumIter = 5 }));
        Assert.Contains("build the optimizer around the schedule", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => LearningRateFinder.Run(Factory(lr => new Sgd(lr)), Data, new LearningRateFinderOptions { NumIter = 1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => LearningRateFinder.Run(Factory(lr => new Sgd(lr)), Data, new LearningRateFinderOptions { StartLr = 1, EndLr = 0.1 }));
    }

    [Fact]
    public void The_csv_holds_the_curve_and_the_png_is_written()
    {
        var r = LearningRateFinder.Run(Factory(lr => new AdamW(lr)), Data, new LearningRateFinderOptions { NumIter = 40 });
        string dir = Directory.CreateTempSubdirectory("ilgpu-lrfind-").FullName;
        try
        {
            string csv = Path.Combine(dir, "lr_find.csv"), png = Path.Combine(dir, "lr_find.png");
            r.WriteCsv(csv);
            Plots.SaveLearningRateFinder(r, png, "tiny");
            var rows = File.ReadAllLines(csv);
            Assert.Equal("iteration,lr,loss,smoothed_loss", rows[0]);
            var read = rows.Skip(1).Select(l => l.Split(',')).Select(f => new LearningRatePoint(int.Parse(f[0], CultureInfo.InvariantCulture), double.Parse(f[1], CultureInfo.InvariantCulture), double.Parse(f[2], CultureInfo.InvariantCulture), double.Parse(f[3], CultureInfo.InvariantCulture)));
            Assert.Equal(r.Curve, read);
            Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], File.ReadAllBytes(png).Take(4));
            Assert.NotNull(r.Steepest);
            Assert.NotNull(r.MinimumOverTen);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
