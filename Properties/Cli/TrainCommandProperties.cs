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
    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        var (o, e) = (new StringWriter(), new StringWriter());
        Console.SetOut(o);
        Console.SetError(e);
        try
        {
            int code = CliApp.Root().Parse(args).Invoke();
            return (code, o.ToString(), e.ToString());
        }
        finally
        {
            Console.SetOut(oldOut);
            Console.SetError(oldErr);
        }
    }

    [Fact]
    public void Bad_options_are_refused_with_every_problem_named_before_training()
    {
        var (code, _, err) = Run("train", "--epochs", "0", "--lr", "-1", "--optimizer", "lamb", "--model", "vgg", "--augment", "mixup", "--label-smoothing", "1.5");
        Assert.Equal(2, code);
        Assert.Contains("--epochs 0", err);
        Assert.Contains("--lr -1", err);
        Assert.Contains("--optimizer lamb", err);
        Assert.Contains("adamw", err);
        Assert.Contains("--model vgg", err);
        Assert.Contains("--augment mixup", err);
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
}
