using System.CommandLine;
using System.Globalization;
using IlgpuTrain.Training;

namespace IlgpuTrain.Cli;

/// <summary>
/// <c>ilgpu-train find-lr</c>: the learning-rate range test (<see cref="LearningRateFinder"/>) of a
/// train configuration; prints the suggested rates and writes the curve (lr_find.csv) and its plot
/// (lr_find.png).
/// </summary>
internal static class FindLrCommand
{
    public static Command Create() => Build().Command;

    /// <summary>The command and the train options it reads (for tests that check every listed option is used).</summary>
    /// <returns>The command and its options.</returns>
    internal static (Command Command, TrainOptions Options) Build()
    {
        var o = new TrainOptions();
        var d = new LearningRateFinderOptions();
        var start = new Option<double>("--start-lr") { Description = "Learning rate of the first step.", DefaultValueFactory = _ => d.StartLr };
        var end = new Option<double>("--end-lr") { Description = "Learning rate of the last step.", DefaultValueFactory = _ => d.EndLr };
        var steps = new Option<int>("--num-iter") { Description = "Steps of the exponential sweep.", DefaultValueFactory = _ => d.NumIter };
        var command = new Command("find-lr", "Learning-rate range test: train a few steps while the rate grows exponentially, plot the loss and suggest a rate (fastai's lr_find).");

        // The rate is what the test sweeps; the schedule, epochs, accumulation and resuming belong to a run, not to the test.
        o.AddTo(command, o.Lr, o.Schedule, o.Warmup, o.Epochs, o.MixedPrecision, o.Accumulate, o.ScaleLr, o.BaseBatchSize, o.EarlyStopping, o.ValSize, o.Resume, o.InitFrom, o.Strict, o.InitSkip, o.Distributed, o.Backend, o.SyncBatchNorm, o.NoOverlap, o.BucketMb, o.CollectiveTimeout);
        o.Output.Description = "Folder for lr_find.png and lr_find.csv.";
        o.Output.DefaultValueFactory = _ => "runs/find-lr";
        command.Options.Add(start);
        command.Options.Add(end);
        command.Options.Add(steps);
        command.SetAction(parse => Run(o.Read(parse), new LearningRateFinderOptions { StartLr = parse.GetValue(start), EndLr = parse.GetValue(end), NumIter = parse.GetValue(steps) }));
        return (command, o);
    }

    /// <summary>The problems of the sweep's options, each naming the option and the fix; empty when valid.</summary>
    /// <param name="f">The sweep.</param>
    /// <returns>The problems.</returns>
    internal static IReadOnlyList<string> Problems(LearningRateFinderOptions f)
    {
        static string F(double v) => v.ToString(CultureInfo.InvariantCulture);
        var p = new List<string>();
        if (!(double.IsFinite(f.StartLr) && f.StartLr > 0))
            p.Add($"--start-lr {F(f.StartLr)}: must be a number greater than 0.");
        if (!(double.IsFinite(f.EndLr) && f.EndLr > f.StartLr))
            p.Add($"--end-lr {F(f.EndLr)}: must be greater than --start-lr ({F(f.StartLr)}).");
        if (f.NumIter < 2)
            p.Add($"--num-iter {f.NumIter}: must be at least 2 steps.");
        return p;
    }

    private static int Run(RunConfig config, LearningRateFinderOptions sweep)
    {
        if (Cli.Fail([.. TrainOptions.Problems(config), .. Problems(sweep)]))
            return 2;
        return Cli.Guard(() =>
        {
            var data = Recipes.LoadData(config);
            OutputFolder.Require(config.Output, "--output");
            using var device = Recipes.CreateDevice(config);
            Console.WriteLine($"ilgpu-train find-lr: {config.Model} on {data.Train.Name} ({data.Train.Count} samples) on {device}");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {config.Optimizer}, batch {config.BatchSize}; lr from {sweep.StartLr:G3} to {sweep.EndLr:G3} over {sweep.NumIter} steps (exponential), loss smoothed with beta {sweep.Beta}, stop at {sweep.DivergenceFactor}x the best"));
            var (result, seconds) = Cli.Timed(() => LearningRateFinder.Run(lr => Recipes.RangeTestTrainer(config, device, data.Train, lr), data.Train, sweep));
            static string F(double? v) => v is { } x ? x.ToString("0.##e+00", CultureInfo.InvariantCulture) : "none (the curve is too short)";
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{result.StopReason}: {result.Curve.Count} steps in {seconds:F1} s"));
            Console.WriteLine($"suggested lr: {F(result.Steepest)} (steepest descent of the smoothed loss)");
            Console.WriteLine($"              {F(result.MinimumOverTen)} (minimum of the smoothed loss / 10)");
            string png = Path.Combine(config.Output, "lr_find.png");
            string csv = Path.Combine(config.Output, "lr_find.csv");
            OutputFolder.Writing(csv, "learning-rate curve", () => result.WriteCsv(csv), atomic: true);
            OutputFolder.Writing(png, "plot", () => Plots.SaveLearningRateFinder(result, png, $"{config.Model} on {config.Dataset}: learning-rate range test"), atomic: true);
            Console.WriteLine($"wrote {png}, {csv}");
            return 0;
        });
    }
}
