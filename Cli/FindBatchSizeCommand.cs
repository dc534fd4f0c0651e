using System.CommandLine;
using System.Globalization;
using System.Text.RegularExpressions;
using IlgpuTrain.Functional;
using IlgpuTrain.Training;

namespace IlgpuTrain.Cli;

/// <summary>
/// <c>ilgpu-train find-batch-size</c>: the largest batch whose training step fits the device's
/// memory, or a memory budget (<see cref="BatchSizeFinder"/>), and the linear-scaling learning rate
/// for it relative to --batch-size and --lr.
/// </summary>
internal static partial class FindBatchSizeCommand
{
    public static Command Create() => Build().Command;

    /// <summary>The command and the train options it reads (for tests that check every listed option is used).</summary>
    /// <returns>The command and its options.</returns>
    internal static (Command Command, TrainOptions Options) Build()
    {
        var o = new TrainOptions();
        var budget = new Option<string?>("--memory-budget") { Description = "Most device memory a training step may use, e.g. 2GiB or 512MB (default: on a GPU its memory, on the CPU the memory available to the process)." };
        var max = new Option<int>("--max-batch") { Description = "Largest batch to try.", DefaultValueFactory = _ => 65536 };
        var command = new Command("find-batch-size", "Find the largest batch whose training step fits the device's memory (doubling, then bisection, over real steps), and its linearly scaled learning rate.");

        // Memory depends on the model, precision and optimizer; the schedule, epochs and outputs of a run do not matter.
        o.AddTo(command, o.Schedule, o.Warmup, o.Epochs, o.Accumulate, o.ScaleLr, o.BaseBatchSize, o.EarlyStopping, o.Output, o.ValSize, o.Resume, o.InitFrom, o.Strict, o.InitSkip, o.Distributed, o.Backend, o.SyncBatchNorm, o.NoOverlap, o.BucketMb, o.CollectiveTimeout);
        o.BatchSize.Description = "The batch --lr was tuned for: the reference of the scaled learning rate.";
        o.Lr.Description = "The learning rate tuned for --batch-size: the reference of the scaled learning rate.";
        command.Options.Add(budget);
        command.Options.Add(max);
        command.SetAction(parse => Run(o.Read(parse), parse.GetValue(budget), parse.GetValue(max)));
        return (command, o);
    }

    /// <summary>Parses a byte count: a number with an optional unit B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024).</summary>
    /// <param name="text">The text, e.g. "2GiB", "512 MB", "1.5GiB" or "1000000".</param>
    /// <param name="bytes">The count.</param>
    /// <returns>Whether it parsed to a count of at least 1 byte.</returns>
    internal static bool TryParseBytes(string text, out long bytes)
    {
        bytes = 0;
        var m = ByteCount().Match(text);
        if (!m.Success || !double.TryParse(m.Groups[1].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out double v))
            return false;
        string unit = m.Groups[2].Value.ToUpperInvariant();
        double scale = unit switch
        {
            "" or "B" => 1,
            "KB" => 1e3,
            "MB" => 1e6,
            "GB" => 1e9,
            "TB" => 1e12,
            "KIB" => 1L << 10,
            "MIB" => 1L << 20,
            "GIB" => 1L << 30,
            _ => 1L << 40,
        };
        double b = Math.Floor(v * scale);
        if (!(b >= 1 && b < long.MaxValue))
            return false;
        bytes = (long)b;
        return true;
    }

    [GeneratedRegex(@"^\s*([0-9]+(?:\.[0-9]+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?\s*$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex ByteCount();

    private static int Run(RunConfig config, string? budgetText, int maxBatch)
    {
        var problems = new List<string>(TrainOptions.Problems(config));
        long budget = 0;
        if (budgetText is not null && !TryParseBytes(budgetText, out budget))
            problems.Add($"--memory-budget {budgetText}: expected a size such as 2GiB, 512MB or 1000000 (bytes), at least 1 byte.");
        if (maxBatch < 1)
            problems.Add($"--max-batch {maxBatch}: must be at least 1.");
        if (Cli.Fail(problems))
            return 2;
        return Cli.Guard(() =>
        {
            var data = Recipes.LoadData(config);
            using var device = Recipes.CreateDevice(config);
            long? limit = budgetText is not null ? budget : device.IsCpu ? GC.GetGCMemoryInfo().TotalAvailableMemoryBytes : null;
            string limitText = limit is { } l ? $"{Bytes.Format(l)}{(budgetText is null ? " (the memory available to the process; set --memory-budget)" : string.Empty)}" : "the device's memory";
            var (trainer, _, _) = Recipes.BuildTrainer(config, device, data.Train);
            Console.WriteLine($"ilgpu-train find-batch-size: {config.Model} on {data.Train.Name} on {device}, {Recipes.Describe(config)}, {(config.MixedPrecision ? "mixed precision" : "fp32")}");
            Console.WriteLine($"  limit: {limitText}; batches up to {maxBatch}");
            BatchSizeFinderResult result;
            double seconds;
            try
            {
                (result, seconds) = Cli.Timed(() => BatchSizeFinder.Run(trainer, data.Train, limit, maxBatch));
            }
            catch (OutOfMemoryException e)
            {
                // Batch 1 does not fit the device: the finder's message says so (Guard's is about --batch-size).
                Console.Error.WriteLine($"error: {e.Message}");
                return 7;
            }

            Console.WriteLine($"{"batch",8} {"peak",12} {"fits",5}");
            foreach (var p in result.Probes)
                Console.WriteLine($"{p.BatchSize,8} {(p.OutOfMemory ? "out of mem." : Bytes.Format(p.PeakBytes)),12} {(p.Fits ? "yes" : "no"),5}");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"largest batch: {result.BatchSize} (peak {Bytes.Format(result.PeakBytes)}; {result.Probes.Count} steps in {seconds:F1} s){(result.ReachedMax ? $"; that is --max-batch {maxBatch}, raise it to look further" : string.Empty)}"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"linear-scaling lr for batch {result.BatchSize}: {result.ScaledLearningRate(config.LearningRate, config.BatchSize):G4} (= --lr {config.LearningRate:G4} x {result.BatchSize}/{config.BatchSize}; warm up to it, e.g. train --batch-size {result.BatchSize} --scale-lr --base-batch-size {config.BatchSize} --lr {config.LearningRate:G4})"));
            return 0;
        });
    }
}
