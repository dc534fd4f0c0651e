using IlgpuTrain.Cli;
using IlgpuTrain.Training.Conformance;

namespace IlgpuTrain.Properties.Cli;

/// <summary>
/// <c>ilgpu-train check</c> on the CPU accelerator: every family is present and passes, and a
/// deliberately wrong reference makes the command fail, so a green run on a GPU means something.
/// </summary>
[Collection(ProcessState.Name)]
public class CheckCommandProperties
{
    private static (int Code, string Out, string Err) Run(params string[] args) => CliRun.Invoke(args);

    private static (int Code, string Out, string Err) Capture(Func<int> command) => CliRun.Capture(command);

    [Fact]
    public void Quick_check_on_the_cpu_passes_every_family()
    {
        string json = Path.Combine(Path.GetTempPath(), $"check-{Guid.NewGuid():N}.json");
        try
        {
            var (code, output, err) = Run("check", "--device", "cpu", "--quick", "--json", json);
            Assert.True(code == 0, output + err);
            Assert.DoesNotContain("FAIL", output);
            foreach (var family in Suite.Families)
                Assert.Matches($@"(?m)^pass  {family}\s", output);
            Assert.Contains($"in {Suite.Families.Count} families", output);
            Assert.Contains("\"failed\": 0", File.ReadAllText(json));
        }
        finally
        {
            File.Delete(json);
        }
    }

    [Fact]
    public void Quick_check_of_the_gpu_kernels_on_the_cpu_accelerator_passes_every_family()
    {
        var (code, output, err) = Run("check", "--device", "cpu-kernels", "--quick");
        Assert.True(code == 0, output + err);
        Assert.Contains("CpuAccelerator backend", output);
        foreach (var family in Suite.Families)
            Assert.Matches($@"(?m)^pass  {family}\s", output);
    }

    [Theory]
    [InlineData("Gemm")]
    [InlineData("CrossEntropy")]
    [InlineData("Philox")]
    public void A_wrong_reference_fails_the_check(string family)
    {
        var (code, output, _) = Capture(() => CheckCommand.Run("cpu", null, new SuiteOptions { Quick = true, PerturbReferenceOf = family }));
        Assert.Equal(1, code);
        Assert.Matches($@"(?m)^FAIL  {family}\s", output);
        Assert.DoesNotMatch(@"(?m)^FAIL  Elementwise\s", output);
    }

    [Fact]
    public void An_unknown_device_is_refused()
    {
        var (code, _, err) = Run("check", "--device", "tpu", "--quick");
        Assert.NotEqual(0, code);
        Assert.Contains("tpu", err);
    }

    // A report path that cannot be written fails before the checks run, in one line naming it:
    // a folder, a path under a file, a folder that cannot be made, a device that is full.
    [Theory]
    [InlineData("/tmp", "this is a folder")]
    [InlineData("/dev/null/report.json", "is a file (or a device), not a folder")]
    [InlineData("/proc/ilgpu-train-no/report.json", "cannot create this folder")]
    public void An_unusable_json_path_exits_6_before_any_check(string path, string problem)
    {
        var (code, output, err) = Run("check", "--device", "cpu", "--quick", "--json", path);
        Assert.Equal(6, code);
        Assert.Contains(path, err);
        Assert.Contains(problem, err);
        Assert.DoesNotContain("   at ", err);
        Assert.DoesNotContain("pass  ", output);
    }

    [Fact]
    public void A_full_disk_at_the_report_names_it_and_exits_6()
    {
        var (code, _, err) = Run("check", "--device", "cpu", "--quick", "--json", "/dev/full");
        Assert.Equal(6, code);
        Assert.Contains("/dev/full", err);
        Assert.Contains("disk is full", err);
        Assert.DoesNotContain("   at ", err);
    }
}
