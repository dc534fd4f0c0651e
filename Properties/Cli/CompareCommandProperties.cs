using System.CommandLine;
using System.Diagnostics;
using IlgpuTrain.Cli;

namespace IlgpuTrain.Properties.Cli;

/// <summary>
/// <c>compare-optimizers</c> lists only options that reach its runs: those it sets itself for each
/// optimizer (--optimizer, --lr) or cannot honour (--resume) are not listed, and every listed one
/// changes the configuration of at least one of the four runs.
/// </summary>
[Collection(ProcessState.Name)]
public class CompareCommandProperties
{
    // The whole command as a user runs it, on a tiny run: the four optimizers train and the table
    // and plot are written (the options' own checks must accept what the command sets per run).
    [Fact]
    public void A_tiny_comparison_runs_all_four_optimizers_and_writes_its_plot()
    {
        string output = Path.Combine(Path.GetTempPath(), "ilgpu-compare-" + Guid.NewGuid().ToString("N"));
        var (code, printed, err) = CliRun.Invoke("compare-optimizers", "--epochs", "1", "--train-limit", "256", "--val-size", "64", "--device", "cpu", "--output", output);
        try
        {
            Assert.True(code == 0, $"exit {code}: {err}");
            foreach (var name in CompareCommand.Optimizers)
                Assert.Matches($@"(?m)^{name}\s+0\.\d+", printed);
            Assert.True(File.Exists(Path.Combine(output, "compare-optimizers.png")));
        }
        finally
        {
            if (Directory.Exists(output))
                Directory.Delete(output, recursive: true);
        }
    }

    [Fact]
    public void Every_option_compare_optimizers_lists_reaches_at_least_one_run()
    {
        var (command, o) = CompareCommand.Build();
        var none = new Dictionary<string, double>();
        var baseline = o.Read(command.Parse([]));
        var listed = command.Options.Where(x => o.All.Contains(x)).ToList();
        Assert.NotEmpty(listed);
        foreach (var option in listed)
        {
            var changed = o.Read(command.Parse(OptionValues.Changed(option)));
            Assert.True(
                CompareCommand.Optimizers.Any(n => CompareCommand.ForOptimizer(changed, n, none) != CompareCommand.ForOptimizer(baseline, n, none)),
                $"compare-optimizers lists {option.Name}, but setting it changes none of its runs");
        }
    }

    [Fact]
    public void Options_compare_optimizers_would_ignore_are_refused_by_the_parser()
    {
        var (command, _) = CompareCommand.Build();
        foreach (var args in new[] { new[] { "--optimizer", "sgd" }, ["--lr", "0.5"], ["--resume", "x.safetensors"] })
            Assert.NotEmpty(command.Parse(args).Errors);
        Assert.Empty(command.Parse(["--lrs", "sgd=0.2"]).Errors);
    }

    [Fact]
    public void Learning_rates_that_are_not_finite_and_in_range_are_refused()
    {
        foreach (var bad in new[] { "sgd=Infinity", "adam=NaN", "adamw=0", "momentum=11", "lamb=0.1" })
            Assert.Contains($"--lrs {bad}", string.Join("\n", CompareCommand.LrProblems(bad, out _)));
        Assert.Empty(CompareCommand.LrProblems("sgd=0.2, adam=1e-3", out var lrs));
        Assert.Equal(0.2, lrs["sgd"]);
        Assert.Equal(1e-3, lrs["adam"]);
    }
}

/// <summary>A value other than the default for each option of train and compare-optimizers, to check that setting it reaches the run.</summary>
internal static class OptionValues
{
    private static readonly Dictionary<string, string[]> Values = new()
    {
        ["--model"] = ["cnn"],
        ["--dataset"] = ["mnist"],
        ["--data"] = ["/elsewhere"],
        ["--task"] = ["regression"],
        ["--target"] = ["y"],
        ["--features"] = ["a,b"],
        ["--loss"] = ["huber"],
        ["--delta"] = ["0.5"],
        ["--image-size"] = ["24"],
        ["--workers"] = ["3"],
        ["--optimizer"] = ["sgd"],
        ["--lr"] = ["0.5"],
        ["--weight-decay"] = ["0.2"],
        ["--momentum"] = ["0.5"],
        ["--schedule"] = ["cosine"],
        ["--warmup"] = ["7"],
        ["--epochs"] = ["3"],
        ["--batch-size"] = ["7"],
        ["--label-smoothing"] = ["0.3"],
        ["--dropout"] = ["0.4"],
        ["--augment"] = ["flip"],
        ["--mixed-precision"] = [],
        ["--accumulate"] = ["2"],
        ["--scale-lr"] = [],
        ["--base-batch-size"] = ["256"],
        ["--clip"] = ["2.5"],
        ["--early-stopping"] = ["3"],
        ["--device"] = ["opencl"],
        ["--seed"] = ["99"],
        ["--output"] = ["/elsewhere"],
        ["--train-limit"] = ["9"],
        ["--val-size"] = ["9"],
        ["--ema"] = ["0.99"],
        ["--swa-start"] = ["2"],
        ["--resume"] = ["x.safetensors"],
        ["--init-from"] = ["resnet18.safetensors"],
        ["--block-size"] = ["64"],
        ["--dim"] = ["96"],
        ["--layers"] = ["2"],
        ["--heads"] = ["2"],
        ["--strict"] = ["false"],
        ["--init-skip"] = ["fc.*"],
        ["--freeze"] = ["conv1.*"],
        ["--distributed"] = [],
        ["--backend"] = ["mpi"],
        ["--sync-batchnorm"] = [],
        ["--no-overlap"] = [],
        ["--bucket-mb"] = ["0.5"],
        ["--collective-timeout"] = ["12"],
    };

    /// <summary>The arguments that set <paramref name="option"/> to a value other than its default.</summary>
    /// <param name="option">An option of train or compare-optimizers.</param>
    /// <returns>The arguments.</returns>
    public static string[] Changed(Option option)
    {
        Assert.True(Values.TryGetValue(option.Name, out var v), $"{option.Name}: add a non-default value to OptionValues, then check the option reaches the run.");
        return [option.Name, .. v];
    }
}
