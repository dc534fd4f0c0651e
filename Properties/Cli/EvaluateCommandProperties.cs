using IlgpuTrain.Cli;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Cli;

/// <summary>
/// <c>ilgpu-train evaluate</c>: it reads every checkpoint train writes, whatever that run's options
/// (a limited or held-out training split changes the schedule's length, which evaluation does not
/// need); a special or damaged checkpoint gets one line and its exit code.
/// </summary>
[Collection(ProcessState.Name)]
public class EvaluateCommandProperties
{
    private static (int Code, string Out, string Err) Run(params string[] args) => CliRun.Invoke(args);

    [Fact]
    public void A_run_with_train_limit_val_size_and_the_default_schedule_evaluates()
    {
        if (!File.Exists(Path.Combine(FashionMnist.DefaultDirectory, "train-images-idx3-ubyte.gz")))
            Assert.Fail("Fashion-MNIST is not installed: `apt-get install dataset-fashion-mnist` (CI does).");
        string dir = Directory.CreateTempSubdirectory("ilgpu-eval-").FullName;
        try
        {
            // The default one-cycle schedule spans this run's 4 updates, not the full data set's.
            var (code, _, err) = Run("train", "--epochs", "1", "--train-limit", "256", "--val-size", "64", "--batch-size", "64", "--device", "cpu", "--output", dir);
            Assert.True(code == 0, err);
            foreach (var name in new[] { "last.safetensors", "best.safetensors" })
            {
                var (evalCode, evalOut, evalErr) = Run("evaluate", "--checkpoint", Path.Combine(dir, "checkpoints", name), "--device", "cpu");
                Assert.True(evalCode == 0, evalErr);
                Assert.Contains("mlp on fashion-mnist, epoch 1", evalOut);
                Assert.Contains("on 10000 samples", evalOut);
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void A_special_path_exits_6_and_a_damaged_checkpoint_exits_3_with_one_line()
    {
        string dir = Directory.CreateTempSubdirectory("ilgpu-eval-faults-").FullName;
        try
        {
            string dangling = Path.Combine(dir, "dangling.safetensors");
            File.CreateSymbolicLink(dangling, Path.Combine(dir, "gone.safetensors"));
            foreach (var path in new[] { dangling, dir, "/dev/zero" })
            {
                var (code, _, err) = Run("evaluate", "--checkpoint", path, "--device", "cpu");
                Assert.True(code == 6, $"{path}: exit {code}: {err}");
                Assert.Single(err.Trim().Split('\n'));
                Assert.Contains(path, err);
            }

            string bad = Path.Combine(dir, "bad.safetensors");
            var config = new RunConfig().ToJson().Replace("\"BatchSize\":128", "\"BatchSize\":0", StringComparison.Ordinal);
            SafeTensors.Save(bad, [], new Dictionary<string, string> { [Checkpoint.MetadataKey] = $"{{\"config\": {System.Text.Json.JsonSerializer.Serialize(config)}}}" });
            var (badCode, _, badErr) = Run("evaluate", "--checkpoint", bad, "--device", "cpu");
            Assert.True(badCode == 3, badErr);
            Assert.Contains("\"BatchSize\" is 0", badErr);
            Assert.Single(badErr.Trim().Split('\n'));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
