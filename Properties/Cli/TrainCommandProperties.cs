using IlgpuTrain.Cli;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Cli;

/// <summary>
/// The <c>ilgpu-train</c> commands as a user runs them: bad options and missing files give a clear
/// message and a non-zero exit before any training; a tiny real run writes its outputs and a
/// checkpoint that evaluate reads back.
/// </summary>
[Collection(ProcessState.Name)]
public class TrainCommandProperties
{
    private static (int Code, string Out, string Err) Run(params string[] args) => CliRun.Invoke(args);

    [Fact]
    public void Bad_options_are_refused_with_every_problem_named_before_training()
    {
        var (code, _, err) = Run("train", "--epochs", "0", "--lr", "-1", "--optimizer", "lamb", "--model", "vgg", "--augment", "blur", "--label-smoothing", "1.5");
        Assert.Equal(2, code);
        Assert.Contains("--epochs 0", err);
        Assert.Contains("--lr -1", err);
        Assert.Contains("--optimizer lamb", err);
        Assert.Contains("adamw", err);
        Assert.Contains("--model vgg", err);
        Assert.Contains("--augment blur", err);
        Assert.Contains("--label-smoothing 1.5", err);

        var (parseCode, _, parseErr) = Run("train", "--epochs", "five");
        Assert.NotEqual(0, parseCode);
        Assert.Contains("five", parseErr);
    }

    [Fact]
    public void Missing_data_files_say_exactly_how_to_get_them()
    {
        string empty = Directory.CreateTempSubdirectory("ilgpu-nodata-").FullName;
        try
        {
            var (code, _, err) = Run("train", "--data", empty, "--output", Path.Combine(empty, "out"));
            Assert.Equal(3, code);
            Assert.Contains("train-images-idx3-ubyte", err);
            Assert.Contains("apt-get install dataset-fashion-mnist", err);
            Assert.Contains(empty, err);
        }
        finally
        {
            Directory.Delete(empty, recursive: true);
        }
    }

    [Fact]
    public void A_tiny_run_writes_metrics_curves_and_checkpoints_that_evaluate_and_resume_read()
    {
        if (!File.Exists(Path.Combine(FashionMnist.DefaultDirectory, "train-images-idx3-ubyte.gz")))
            Assert.Fail("Fashion-MNIST is not installed: `apt-get install dataset-fashion-mnist` (CI does).");
        string dir = Directory.CreateTempSubdirectory("ilgpu-run-").FullName;
        try
        {
            // A constant schedule does not depend on the run's length, so the run can be extended on resume.
            var (code, output, err) = Run("train", "--epochs", "1", "--schedule", "constant", "--lr", "0.001", "--train-limit", "512", "--batch-size", "64", "--device", "cpu", "--output", dir);
            Assert.True(code == 0, err);
            Assert.Contains("test: loss", output);
            foreach (var f in new[] { "metrics.csv", "learning_rate.csv", "curves.png", "checkpoints/last.safetensors", "checkpoints/best.safetensors" })
                Assert.True(File.Exists(Path.Combine(dir, f)), f);
            Assert.Single(MetricsLog.Read(Path.Combine(dir, "metrics.csv")).Epochs);

            var (evalCode, evalOut, evalErr) = Run("evaluate", "--checkpoint", Path.Combine(dir, "checkpoints", "best.safetensors"), "--device", "cpu");
            Assert.True(evalCode == 0, evalErr);
            Assert.Contains("mlp on fashion-mnist, epoch 1", evalOut);

            // Resume the finished epoch-1 run for a second epoch.
            var (resumeCode, resumeOut, resumeErr) = Run("train", "--epochs", "2", "--schedule", "constant", "--lr", "0.001", "--train-limit", "512", "--batch-size", "64", "--device", "cpu", "--output", dir, "--resume", Path.Combine(dir, "checkpoints", "last.safetensors"));
            Assert.True(resumeCode == 0, resumeErr);
            Assert.Contains("completed: 2 epochs", resumeOut);
            Assert.Equal(2, MetricsLog.Read(Path.Combine(dir, "metrics.csv")).Epochs.Count);

            var (wrongCode, _, wrongErr) = Run("train", "--model", "cnn", "--epochs", "2", "--output", dir, "--resume", Path.Combine(dir, "checkpoints", "last.safetensors"));
            Assert.Equal(2, wrongCode);
            Assert.Contains("mlp on fashion-mnist", wrongErr);

            var (longerCode, _, longerErr) = Run("train", "--epochs", "3", "--train-limit", "512", "--output", dir, "--resume", Path.Combine(dir, "checkpoints", "last.safetensors"));
            Assert.Equal(2, longerCode);
            Assert.Contains("--epochs 2", longerErr);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
    private const string TinyRun = "--device cpu --train-limit 256 --batch-size 64 --epochs 1 --schedule constant --lr 0.001";

    private static string[] Args(string command, string extra, params string[] more) =>
        [command, .. (TinyRun + " " + extra).Split(' ', StringSplitOptions.RemoveEmptyEntries), .. more];

    [Fact]
    public void Profile_prints_and_writes_where_the_step_time_went_only_when_asked_and_refuses_a_bad_count()
    {
        RequireFashionMnist();
        string dir = Directory.CreateTempSubdirectory("ilgpu-profile-").FullName;
        try
        {
            // 256 samples in batches of 16: 16 steps, so 5 of them after the 10 left out.
            var (code, output, err) = Run("train", "--epochs", "1", "--train-limit", "256", "--batch-size", "16", "--device", "cpu", "--profile", "5", "--output", dir);
            Assert.True(code == 0, err);
            Assert.Contains("where a training step's time went (mean of 5 synchronized steps after the first 10", output);
            string table = File.ReadAllText(Path.Combine(dir, "profile.txt"));
            foreach (var piece in new[] { "Linear", "optimizer", "metrics and loss to host", "data (waiting for the batch)" })
                Assert.Contains(piece, table);

            // Without --profile nothing is timed: no synchronized steps, no table, no profile.txt.
            string plainDir = Path.Combine(dir, "plain");
            var (plainCode, plainOut, plainErr) = Run("train", "--epochs", "1", "--train-limit", "256", "--batch-size", "16", "--device", "cpu", "--output", plainDir);
            Assert.True(plainCode == 0, plainErr);
            Assert.DoesNotContain("where a training step's time went", plainOut);
            Assert.False(File.Exists(Path.Combine(plainDir, "profile.txt")), "a run without --profile wrote profile.txt");

            var (shortCode, shortOut, shortErr) = Run("train", "--epochs", "1", "--train-limit", "64", "--batch-size", "16", "--device", "cpu", "--profile", "--output", Path.Combine(dir, "short"));
            Assert.True(shortCode == 0, shortErr);
            Assert.Contains("--profile: the run had 4 step(s), all within the first 10", shortOut);

            foreach (var bad in new[] { "0", "-3", "many" })
            {
                var (badCode, _, badErr) = Run("train", "--profile", bad, "--output", Path.Combine(dir, "bad"));
                Assert.Equal(1, Math.Min(1, badCode));
                Assert.Contains($"--profile {bad}: give the number of steps to time", badErr);
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static void RequireFashionMnist()
    {
        if (!File.Exists(Path.Combine(FashionMnist.DefaultDirectory, "train-images-idx3-ubyte.gz")))
            Assert.Fail("Fashion-MNIST is not installed: `apt-get install dataset-fashion-mnist` (CI does).");
    }

    private static void OneLineError(string err, string mustContain)
    {
        Assert.Contains(mustContain, err);
        Assert.DoesNotContain("   at ", err);
        Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void An_output_that_cannot_be_used_is_one_line_and_exit_6_before_training()
    {
        RequireFashionMnist();
        string dir = Directory.CreateTempSubdirectory("ilgpu-badout-").FullName;
        try
        {
            string file = Path.Combine(dir, "a-file");
            File.WriteAllText(file, "keep");
            foreach (var bad in new[] { file, Path.Combine(file, "sub"), "/proc/ilgpu-x", "/sys/ilgpu-x", "/dev/null" })
            {
                var (code, output, err) = Run(Args("train", "", "--output", bad));
                Assert.True(code == 6, $"--output {bad}: exit {code}, {err}");
                OneLineError(err, $"--output {bad}");
                Assert.DoesNotContain("epoch 1/1", output);
            }

            Assert.Equal("keep", File.ReadAllText(file));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [TmpfsFact]
    public void A_read_only_output_folder_is_exit_6_naming_it()
    {
        RequireFashionMnist();
        using var ro = Tmpfs.Mount("ro,size=64k")!;
        foreach (var bad in new[] { ro.Path, Path.Combine(ro.Path, "run") })
        {
            var (code, output, err) = Run(Args("train", "", "--output", bad));
            Assert.True(code == 6, $"--output {bad}: exit {code}, {err}");
            OneLineError(err, bad);
            Assert.Contains("read-only", err);
            Assert.DoesNotContain("epoch 1/1", output);
        }
    }

    [TmpfsFact]
    public void A_disk_that_fills_during_the_run_is_exit_6_naming_the_file_with_no_stray_temporary()
    {
        RequireFashionMnist();
        using var small = Tmpfs.Mount("size=600k")!;
        string output = Path.Combine(small.Path, "run");
        var (code, _, err) = Run(Args("train", "", "--output", output));
        Assert.True(code == 6, $"exit {code}, {err}");
        OneLineError(err, Path.Combine(output, "checkpoints", "last.safetensors"));
        Assert.Contains("disk is full", err);
        Assert.Empty(Directory.GetFiles(output, "*.tmp-*", SearchOption.AllDirectories));
    }

    [Fact]
    public void Accumulation_that_makes_no_update_is_refused_with_exit_2_and_nothing_written()
    {
        RequireFashionMnist();
        string dir = Directory.CreateTempSubdirectory("ilgpu-acc-").FullName;
        try
        {
            string lr = Path.Combine(dir, "learning_rate.csv");
            File.WriteAllText(lr, "step,epoch,learning_rate\n1,1,0.5\n");
            var (code, _, err) = Run(Args("train", "--accumulate 8", "--output", dir));
            Assert.Equal(2, code);
            OneLineError(err, "--accumulate 8");
            Assert.Contains("4 batch", err);
            Assert.Equal("step,epoch,learning_rate\n1,1,0.5\n", File.ReadAllText(lr));
            Assert.Equal([lr], Directory.GetFileSystemEntries(dir));

            string fresh = Path.Combine(dir, "fresh");
            var (code2, _, _) = Run("compare-optimizers", "--device", "cpu", "--train-limit", "256", "--batch-size", "64", "--epochs", "1", "--accumulate", "5", "--output", fresh);
            Assert.Equal(2, code2);
            Assert.False(Directory.Exists(fresh), "nothing is created before the run is validated");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Accumulation_logs_no_NaN_and_a_resume_continues_the_learning_rate_log()
    {
        RequireFashionMnist();
        string dir = Directory.CreateTempSubdirectory("ilgpu-accres-").FullName;
        try
        {
            var (code, _, err) = Run(Args("train", "--accumulate 3", "--output", dir));
            Assert.True(code == 0, err);
            string lr = Path.Combine(dir, "learning_rate.csv");
            var first = File.ReadAllLines(lr);
            Assert.Equal(["step,epoch,learning_rate", "3,1,0.001"], first);

            var more = TinyRun.Replace("--epochs 1", "--epochs 2", StringComparison.Ordinal).Split(' ');
            var (code2, _, err2) = Run(["train", .. more, "--accumulate", "3", "--output", dir, "--resume", Path.Combine(dir, "checkpoints", "last.safetensors")]);
            Assert.True(code2 == 0, err2);
            Assert.Equal(["step,epoch,learning_rate", "3,1,0.001", "6,2,0.001"], File.ReadAllLines(lr));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void A_learning_rate_that_blows_the_loss_up_ends_with_a_warning()
    {
        RequireFashionMnist();
        string dir = Directory.CreateTempSubdirectory("ilgpu-blowup-").FullName;
        try
        {
            var (code, output, err) = Run("train", "--device", "cpu", "--train-limit", "1024", "--epochs", "1", "--lr", "10", "--output", dir);
            Assert.True(code == 0, err);
            Assert.Contains("LearningRateTooHigh", output);
            Assert.Contains("warning: training loss ended above where an untrained model starts", err);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Every_option_train_lists_reaches_the_run()
    {
        var (command, o) = TrainCommand.Build();
        var baseline = o.Read(command.Parse([]));
        foreach (var option in command.Options.Where(x => o.All.Contains(x)))
        {
            if (option == o.Resume)
                continue; // Read by the command itself, beside the run's options (the resume tests use it).
            var changed = o.Read(command.Parse(OptionValues.Changed(option)));
            Assert.True(changed != baseline, $"train lists {option.Name}, but setting it changes nothing in the run's configuration");
        }
    }

    [Fact]
    public void Averaging_options_out_of_range_are_refused_naming_the_option()
    {
        var (code, _, err) = Run("train", "--ema", "1.5", "--epochs", "3", "--swa-start", "4");
        Assert.Equal(2, code);
        Assert.Contains("--ema 1.5: the decay must be in [0, 1]", err);
        Assert.Contains("--swa-start 4: the run has only 3 epoch(s)", err);
        Assert.Contains("pick one", err);
        (code, _, err) = Run("train", "--ema", "NaN");
        Assert.Equal(2, code);
        Assert.Contains("--ema NaN", err);
    }

    [Fact]
    public void A_run_with_ema_reports_its_test_result_and_evaluate_averaged_reads_the_checkpoint()
    {
        RequireFashionMnist();
        string output = Path.Combine(Path.GetTempPath(), "ilgpu-ema-" + Guid.NewGuid().ToString("N"));
        try
        {
            var (code, stdout, err) = Run(Args("train", $"--ema 0.9 --output {output}"));
            Assert.True(code == 0, err);
            Assert.Contains("test (ema weights): loss", stdout);
            string last = Path.Combine(output, "checkpoints", "last.safetensors");
            (code, stdout, err) = Run("evaluate", "--checkpoint", last, "--averaged", "--device", "cpu");
            Assert.True(code == 0, err);
            Assert.Contains("averaged weights (ema, 4 updates)", stdout);
            (code, _, err) = Run("train", "--device", "cpu", "--train-limit", "256", "--batch-size", "64", "--epochs", "2", "--schedule", "constant", "--lr", "0.001", "--output", output, "--resume", last);
            Assert.Equal(2, code);
            Assert.Contains("resume with --ema 0.9", err);

            (code, _, err) = Run(Args("train", $"--output {output}"));
            Assert.True(code == 0, err);
            (code, _, err) = Run("evaluate", "--checkpoint", last, "--averaged", "--device", "cpu");
            Assert.Equal(2, code);
            Assert.Contains("holds no averaged weights", err);
        }
        finally
        {
            if (Directory.Exists(output))
                Directory.Delete(output, recursive: true);
        }
    }

    [Fact]
    public void A_resume_with_another_accumulation_is_refused_naming_the_option_to_use()
    {
        string output = Path.Combine(Path.GetTempPath(), "ilgpu-resume-acc-" + Guid.NewGuid().ToString("N"));
        try
        {
            var (code, _, err) = Run("train", "--epochs", "1", "--train-limit", "256", "--val-size", "64", "--schedule", "constant", "--device", "cpu", "--output", output);
            Assert.True(code == 0, err);
            string last = Path.Combine(output, "checkpoints", "last.safetensors");
            (code, _, err) = Run("train", "--epochs", "2", "--train-limit", "256", "--val-size", "64", "--schedule", "constant", "--device", "cpu", "--accumulate", "2", "--output", output, "--resume", last);
            Assert.Equal(2, code);
            Assert.Contains("resume with --accumulate 1", err);
            Assert.DoesNotContain("(Parameter", err);
            Assert.DoesNotContain("   at ", err);
        }
        finally
        {
            if (Directory.Exists(output))
                Directory.Delete(output, recursive: true);
        }
    }
}
