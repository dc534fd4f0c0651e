using System.Text.Json;
using IlgpuTrain.Cli;

namespace IlgpuTrain.Properties.Cli;

/// <summary>
/// <c>ilgpu-train gpu-report</c>, tried on this machine's CPU with small settings: one JSON with
/// the devices, the conformance suite, the bench rows and a one-epoch MLP and CNN; a part that fails
/// is recorded and makes the exit code 1 while the others still run; bad options and a missing device
/// exit 2 before anything runs.
/// </summary>
[Collection(ProcessState.Name)]
public class GpuReportCommandProperties
{
    private static (int Code, string Out, string Err, JsonElement Root) Report(params string[] args)
    {
        string dir = Directory.CreateTempSubdirectory("ilgpu-gpu-report-").FullName;
        try
        {
            string json = Path.Combine(dir, "sub", "report.json");
            var (code, o, e) = CliRun.Invoke(["gpu-report", "--device", "cpu", "--quick", "--rounds", "1", "--bench-only", "copy", "--train-limit", "256", "--output", json, .. args]);
            Assert.True(File.Exists(json), $"exit {code}, no report: {e}");
            using var doc = JsonDocument.Parse(File.ReadAllText(json));
            return (code, o, e, doc.RootElement.Clone());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void One_command_writes_devices_check_bench_and_a_one_epoch_training_of_each_model()
    {
        var (code, output, err, root) = Report("--synthetic");
        Assert.True(code == 0, err);
        Assert.StartsWith("cpu", root.GetProperty("device").GetString());
        Assert.Contains(root.GetProperty("devices").GetProperty("found").EnumerateArray(), d => d.GetProperty("kind").GetString() == "cpu");

        var check = root.GetProperty("check");
        Assert.Equal(0, check.GetProperty("failed").GetInt32());
        Assert.True(check.GetProperty("passed").GetInt32() >= 150, check.ToString());
        Assert.Empty(check.GetProperty("familiesWithoutChecks").EnumerateArray());

        var rows = root.GetProperty("bench").GetProperty("rows").EnumerateArray().ToList();
        var copy = Assert.Single(rows);
        Assert.StartsWith("copy ", copy.GetProperty("name").GetString());
        Assert.True(copy.GetProperty("ms").GetDouble() > 0);

        var training = root.GetProperty("training").EnumerateArray().ToList();
        Assert.Equal(GpuReportCommand.Models, training.Select(t => t.GetProperty("model").GetString()));
        foreach (var t in training)
        {
            Assert.Equal(2, t.GetProperty("steps").GetInt32()); // 256 samples in batches of 128
            double ms = t.GetProperty("msPerStep").GetDouble();
            Assert.Equal(t.GetProperty("trainSeconds").GetDouble() * 1000 / 2, ms, 9);
            Assert.True(ms > 0 && double.IsFinite(t.GetProperty("trainLoss").GetDouble()), t.ToString());
            Assert.StartsWith("random data of Fashion-MNIST's shapes", t.GetProperty("data").GetString());
        }

        Assert.Empty(root.GetProperty("failures").EnumerateArray());
        Assert.Contains("check: ", output);
        Assert.Contains("mlp: one epoch, 2 steps", output);
    }

    [Fact]
    public void A_part_that_fails_is_recorded_the_others_run_and_the_exit_code_is_1()
    {
        string missing = Path.Combine(Path.GetTempPath(), $"ilgpu-no-fmnist-{Guid.NewGuid():N}");
        var (code, _, err, root) = Report("--data", missing);
        Assert.Equal(1, code);
        Assert.Equal(0, root.GetProperty("check").GetProperty("failed").GetInt32());
        Assert.Single(root.GetProperty("bench").GetProperty("rows").EnumerateArray());
        foreach (var t in root.GetProperty("training").EnumerateArray())
            Assert.Contains(missing, t.GetProperty("error").GetString());
        Assert.Equal(2, root.GetProperty("failures").GetArrayLength());
        Assert.Contains("the mlp epoch failed", err);
        Assert.Contains("the cnn epoch failed", err);
    }

    [Theory]
    [InlineData("--device", "tpu", "--device tpu")]
    [InlineData("--rounds", "0", "--rounds 0")]
    [InlineData("--bench-only", "gemm,fft", "fft")]
    [InlineData("--train-limit", "-1", "--train-limit -1")]
    [InlineData("--data", "/somewhere", "--synthetic with --data")]
    public void Bad_options_exit_2_naming_them_before_anything_runs(string option, string value, string expected)
    {
        string json = Path.Combine(Path.GetTempPath(), $"ilgpu-gpu-report-never-{Guid.NewGuid():N}.json");
        var (code, _, err) = CliRun.Invoke("gpu-report", "--synthetic", option, value, "--output", json);
        Assert.Equal(2, code);
        Assert.Contains(expected, err);
        Assert.False(File.Exists(json));
    }

    [NoCudaFact]
    public void Without_the_device_it_exits_2_and_says_how_to_try_it_here()
    {
        string json = Path.Combine(Path.GetTempPath(), $"ilgpu-gpu-report-never-{Guid.NewGuid():N}.json");
        var (code, _, err) = CliRun.Invoke("gpu-report", "--device", "cuda", "--output", json);
        Assert.Equal(2, code);
        Assert.Contains("--device cpu", err);
        Assert.False(File.Exists(json));
    }
}

/// <summary>A fact about a machine without CUDA: skipped, with the reason, where a CUDA device is present.</summary>
public sealed class NoCudaFactAttribute : FactAttribute
{
    /// <summary>Skips when ILGPU finds a CUDA device.</summary>
    public NoCudaFactAttribute()
    {
        if (IlgpuTrain.Functional.ComputeDevice.Describe().Found.Any(d => d.Kind == IlgpuTrain.Functional.DeviceKind.Cuda))
            Skip = "this machine has a CUDA device, so gpu-report --device cuda runs rather than refusing.";
    }
}
