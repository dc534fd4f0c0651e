using System.Globalization;
using IlgpuTrain.Cli;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Cli;

/// <summary>
/// find-lr, find-batch-size and train --scale-lr as a user runs them: small real runs print their
/// findings and write their files; bad options are refused with the option named; every listed
/// option reaches the run.
/// </summary>
[Collection(ProcessState.Name)]
public class FindCommandProperties
{
    private static (int Code, string Out, string Err) Run(params string[] args) => CliRun.Invoke(args);

    private static void RequireFashionMnist()
    {
        if (!File.Exists(Path.Combine(FashionMnist.DefaultDirectory, "train-images-idx3-ubyte.gz")))
            Assert.Fail("Fashion-MNIST is not installed: `apt-get install dataset-fashion-mnist` (CI does).");
    }

    [Fact]
    public void Find_lr_prints_its_suggestions_and_writes_the_curve_and_the_plot()
    {
        RequireFashionMnist();
        string dir = Directory.CreateTempSubdirectory("ilgpu-find-lr-").FullName;
        try
        {
            var (code, output, err) = Run("find-lr", "--device", "cpu", "--train-limit", "512", "--batch-size", "32", "--num-iter", "30", "--output", dir);
            Assert.True(code == 0, err);
            Assert.Contains("suggested lr: ", output);
            Assert.Contains("(steepest descent of the smoothed loss)", output);
            Assert.Contains("(minimum of the smoothed loss / 10)", output);
            var rows = File.ReadAllLines(Path.Combine(dir, "lr_find.csv"));
            Assert.Equal("iteration,lr,loss,smoothed_loss", rows[0]);
            Assert.InRange(rows.Length - 1, 2, 30);
            Assert.Equal(1e-7, double.Parse(rows[1].Split(',')[1], CultureInfo.InvariantCulture), 1e-20);
            Assert.True(new FileInfo(Path.Combine(dir, "lr_find.png")).Length > 1000);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Find_lr_refuses_a_sweep_that_is_not_one_before_any_work()
    {
        var (code, _, err) = Run("find-lr", "--num-iter", "1", "--start-lr", "1e-2", "--end-lr", "1e-3", "--batch-size", "0");
        Assert.Equal(2, code);
        Assert.Contains("--num-iter 1", err);
        Assert.Contains("--end-lr 0.001: must be greater than --start-lr (0.01)", err);
        Assert.Contains("--batch-size 0", err);

        // Options a range test does not use are not listed.
        var (command, _) = FindLrCommand.Build();
        foreach (var args in new[] { new[] { "--lr", "0.1" }, ["--epochs", "3"], ["--schedule", "cosine"], ["--resume", "x"] })
            Assert.NotEmpty(command.Parse(args).Errors);
    }

    [Fact]
    public void Find_batch_size_reports_the_largest_batch_within_a_budget_and_its_scaled_rate()
    {
        RequireFashionMnist();
        var (code, output, err) = Run("find-batch-size", "--device", "cpu", "--train-limit", "256", "--memory-budget", "16MiB", "--max-batch", "4096", "--lr", "0.003", "--batch-size", "128");
        Assert.True(code == 0, err);
        var line = output.Split('\n').Single(l => l.StartsWith("largest batch: ", StringComparison.Ordinal));
        int batch = int.Parse(line["largest batch: ".Length..].Split(' ')[0], CultureInfo.InvariantCulture);
        Assert.InRange(batch, 2, 4095);
        Assert.Contains($"linear-scaling lr for batch {batch}: {(0.003 * batch / 128).ToString("G4", CultureInfo.InvariantCulture)}", output);

        // The MLP's parameters and AdamW's moments alone take 2.4 MiB: a budget of 1 MiB fits no batch.
        var (small, _, smallErr) = Run("find-batch-size", "--device", "cpu", "--train-limit", "256", "--memory-budget", "1MiB");
        Assert.Equal(2, small);
        Assert.Contains("at batch 1", smallErr);
        Assert.Contains("--memory-budget", smallErr);
        Assert.DoesNotContain("   at ", smallErr);

        var (bad, _, badErr) = Run("find-batch-size", "--memory-budget", "lots", "--max-batch", "0");
        Assert.Equal(2, bad);
        Assert.Contains("--memory-budget lots", badErr);
        Assert.Contains("--max-batch 0", badErr);
    }

    [Fact]
    public void Byte_counts_read_with_decimal_and_binary_units()
    {
        foreach (var (text, bytes) in new[] { ("2GiB", 2L << 30), ("512 MB", 512_000_000L), ("1.5KiB", 1536L), ("1000000", 1_000_000L), ("3tb", 3_000_000_000_000L), ("7B", 7L) })
        {
            Assert.True(FindBatchSizeCommand.TryParseBytes(text, out long b), text);
            Assert.Equal(bytes, b);
        }

        foreach (var bad in new[] { "", "lots", "-1GiB", "0", "1 GiBs", "1e3" })
            Assert.False(FindBatchSizeCommand.TryParseBytes(bad, out _), bad);
    }

    [Fact]
    public void Train_with_scale_lr_says_what_it_did()
    {
        RequireFashionMnist();
        string dir = Directory.CreateTempSubdirectory("ilgpu-scale-lr-").FullName;
        try
        {
            var (code, output, err) = Run("train", "--device", "cpu", "--train-limit", "512", "--epochs", "1", "--batch-size", "64", "--accumulate", "2", "--base-batch-size", "32", "--schedule", "cosine", "--scale-lr", "--lr", "0.001", "--output", dir);
            Assert.True(code == 0, err);
            Assert.Contains("--scale-lr: effective batch 128 is 4x the base batch 32, so lr 0.001 -> 0.004 (linear scaling rule); warmup: gradual, linear from 0.001 over 2 updates (5 epochs, Goyal et al. 2017, capped at half the run)", output);
            Assert.Contains("lr 0.004 = 0.001 scaled to batch 128", output);
            var lrs = File.ReadAllLines(Path.Combine(dir, "learning_rate.csv"));
            Assert.True(lrs.Length > 2, string.Join("\n", lrs));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Every_option_the_finders_list_reaches_the_run()
    {
        foreach (var (name, (command, o)) in new[] { ("find-lr", FindLrCommand.Build()), ("find-batch-size", FindBatchSizeCommand.Build()) })
        {
            var baseline = o.Read(command.Parse([]));
            Assert.Null(new RunConfig { Output = baseline.Output }.Problem());
            Assert.Empty(TrainOptions.Problems(baseline));
            foreach (var option in command.Options.Where(x => o.All.Contains(x)))
            {
                var changed = o.Read(command.Parse(OptionValues.Changed(option)));
                Assert.True(changed != baseline, $"{name} lists {option.Name}, but setting it changes nothing in the run's configuration");
            }
        }
    }
}
