using System.CommandLine;
using System.Globalization;
using IlgpuTrain.Training;

namespace IlgpuTrain.Cli;

/// <summary>
/// <c>ilgpu-train compare-optimizers</c>: the same model, data, seed and schedule trained with SGD,
/// momentum, Adam and AdamW; a table of final accuracy and time, and one plot of the curves.
/// </summary>
internal static class CompareCommand
{
    public static Command Create() => Build().Command;

    /// <summary>The command and the options it reads (for tests that check every listed option is used).</summary>
    /// <returns>The command and its options.</returns>
    internal static (Command Command, TrainOptions Options) Build()
    {
        var o = new TrainOptions();
        var lrs = new Option<string>("--lrs") { Description = "Peak learning rates per optimizer, name=value (defaults: sgd=0.1, momentum=0.05, adam=0.003, adamw=0.003).", DefaultValueFactory = _ => "sgd=0.1,momentum=0.05,adam=0.003,adamw=0.003" };
        var command = new Command("compare-optimizers", "Train the same model with SGD, momentum, Adam and AdamW and compare their curves.");

        // Each run sets its own optimizer and learning rate (--lrs), and every run starts fresh.
        o.AddTo(command, o.Optimizer, o.Lr, o.Resume, o.InitFrom, o.Strict, o.InitSkip, o.Distributed, o.Backend, o.SyncBatchNorm, o.NoOverlap, o.BucketMb, o.CollectiveTimeout);
        o.WeightDecay.Description = "Weight decay of adamw (decoupled); sgd, momentum and adam train without it, so the table compares the optimizers alone.";
        o.EarlyStopping.Description = "Stop each run when val_loss has not improved for this many epochs, restoring its best weights (default: off).";
        command.Options.Add(lrs);
        command.SetAction(parse => Run(o.Read(parse), parse.GetValue(lrs)!));
        return (command, o);
    }

    /// <summary>The optimizers compared, in table order.</summary>
    public static IReadOnlyList<string> Optimizers { get; } = ["sgd", "momentum", "adam", "adamw"];

    /// <summary>The run of one optimizer: the command's options, with that optimizer, its rate from --lrs (or the default) and weight decay for adamw only.</summary>
    /// <param name="baseConfig">The options of the command.</param>
    /// <param name="name">One of <see cref="Optimizers"/>.</param>
    /// <param name="lrs">Rates given with --lrs.</param>
    /// <returns>The run's configuration.</returns>
    public static RunConfig ForOptimizer(RunConfig baseConfig, string name, IReadOnlyDictionary<string, double> lrs) => baseConfig with
    {
        Optimizer = name,
        LearningRate = lrs.GetValueOrDefault(name, name.StartsWith("adam", StringComparison.Ordinal) ? 3e-3 : name == "sgd" ? 0.1 : 0.05),
        WeightDecay = name == "adamw" ? baseConfig.WeightDecay : 0,
    };

    /// <summary>Parses --lrs (name=rate, comma-separated).</summary>
    /// <param name="lrSpec">The option's text.</param>
    /// <param name="lrs">The rates given.</param>
    /// <returns>The problems, each naming the part and the fix; empty when valid.</returns>
    internal static IReadOnlyList<string> LrProblems(string lrSpec, out Dictionary<string, double> lrs)
    {
        lrs = new Dictionary<string, double>();
        var problems = new List<string>();
        foreach (var part in lrSpec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var kv = part.Split('=');
            if (kv.Length != 2 || !Optimizers.Contains(kv[0]) || !double.TryParse(kv[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var v) || !(v > 0 && v <= 10))
                problems.Add($"--lrs {part}: expected optimizer=learning_rate with optimizer one of sgd, momentum, adam, adamw and a rate in (0, 10].");
            else
                lrs[kv[0]] = v;
        }

        return problems;
    }

    private static int Run(RunConfig baseConfig, string lrSpec)
    {
        // The command sets each run's optimizer and rate itself: check the four configurations it runs.
        var problems = new List<string>(LrProblems(lrSpec, out var lrs));
        foreach (var problem in Optimizers.SelectMany(name => TrainOptions.Problems(ForOptimizer(baseConfig, name, lrs))).Distinct().ToList())
        {
            if (!problems.Contains(problem))
                problems.Add(problem);
        }
        if (Cli.Fail(problems))
            return 2;
        return Cli.Guard(() =>
        {
            var data = Recipes.LoadData(baseConfig);
            if (Cli.Fail(TrainOptions.RunProblems(baseConfig, data.Train.Count)))
                return 2;
            OutputFolder.Require(baseConfig.Output, "--output");
            using var device = Recipes.CreateDevice(baseConfig);
            var runs = new Dictionary<string, History>();
            var rows = new List<(string Name, double Acc, double Loss, double Seconds)>();
            var warnings = new List<string>();
            foreach (var name in Optimizers)
            {
                var c = ForOptimizer(baseConfig, name, lrs);
                using var progress = new ConsoleProgress();
                progress.Message($"== {name}: {Recipes.Describe(c)}");
                TrainingCallback[] callbacks = c.EarlyStopping >= 0 ? [new EarlyStopping("val_loss", patience: c.EarlyStopping, restoreBestWeights: true)] : [];
                var (trainer, _, _) = Recipes.BuildTrainer(c, device, data.Train, callbacks, progress);
                var (result, seconds) = Cli.Timed(() => trainer.Fit(data.Train, data.Validation));
                using var final = result.State;
                var test = trainer.Evaluate(final.Params, final.State, data.Test);
                runs[name] = final.History;
                rows.Add((name, test.Accuracy, test.Loss, seconds));
                foreach (var f in CurveDiagnosis.Diagnose(final.History, c.Task == "classification" ? data.Train.Classes : null, TrainOptions.PlannedUpdates(c, data.Train.Count)).Where(CurveDiagnosis.IsWarning))
                    warnings.Add($"warning: {name}: {f.Summary} {f.Evidence}");
            }

            Console.WriteLine();
            Console.WriteLine($"{"optimizer",-10} {"test acc",9} {"test loss",10} {"time s",8}");
            foreach (var r in rows)
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{r.Name,-10} {r.Acc,9:F4} {r.Loss,10:F4} {r.Seconds,8:F1}"));
            string png = Path.Combine(baseConfig.Output, "compare-optimizers.png");
            OutputFolder.Writing(png, "plot", () => Plots.SaveComparison(runs, png, $"{baseConfig.Model} on {baseConfig.Dataset}: optimizers"), atomic: true);
            foreach (var (name, h) in runs)
            {
                string csv = Path.Combine(baseConfig.Output, $"metrics-{name}.csv");
                OutputFolder.Writing(csv, "metrics log", () => MetricsLog.Write(csv, h), atomic: true);
            }

            Console.WriteLine($"wrote {png}");
            foreach (var w in warnings)
                Console.Error.WriteLine(w);
            return 0;
        });
    }
}
