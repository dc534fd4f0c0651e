namespace IlgpuTrain.Properties.Functional;

/// <summary>Device choice, the environment override and the device report.</summary>
[Collection(ProcessState.Name)]
public class DeviceProperties
{
    [Fact]
    public void Cpu_device_has_one_group_per_core()
    {
        using var d = Device.Create(DeviceKind.Cpu);
        Assert.Equal(DeviceKind.Cpu, d.Kind);
        Assert.True(d.IsCpu);
        Assert.Equal(Environment.ProcessorCount, d.Accelerator.NumMultiprocessors);
        Assert.Equal(KernelBackend.Managed, d.Backend);
        var cfg = d.Kernels.Launch.GridStride(1_000_000);
        Assert.Equal(Environment.ProcessorCount, cfg.GridDim.X);
        Assert.Equal(1, cfg.GroupDim.X);
    }

    [Theory]
    [InlineData("cpu", DeviceKind.Cpu)]
    [InlineData("CUDA", DeviceKind.Cuda)]
    [InlineData(" opencl ", DeviceKind.OpenCL)]
    [InlineData("auto", DeviceKind.Auto)]
    [InlineData("", DeviceKind.Auto)]
    [InlineData(null, DeviceKind.Auto)]
    public void Device_kinds_parse(string? text, DeviceKind kind) => Assert.Equal(kind, DeviceOptions.ParseKind(text));

    [Fact]
    public void Unknown_device_kind_names_the_choices()
    {
        var e = Assert.Throws<ArgumentException>(() => DeviceOptions.ParseKind("tpu", DeviceOptions.EnvironmentVariable));
        Assert.Contains("ILGPUTRAIN_DEVICE='tpu'", e.Message);
        Assert.Contains("cuda, opencl, cpu", e.Message);
    }

    [Fact]
    public void Environment_variable_forces_the_device()
    {
        var old = Environment.GetEnvironmentVariable(DeviceOptions.EnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(DeviceOptions.EnvironmentVariable, "cpu");
            using var d = Device.Create();
            Assert.Equal(DeviceKind.Cpu, d.Kind);
            Environment.SetEnvironmentVariable(DeviceOptions.EnvironmentVariable, "quantum");
            Assert.Throws<ArgumentException>(() => Device.Create());
        }
        finally
        {
            Environment.SetEnvironmentVariable(DeviceOptions.EnvironmentVariable, old);
        }
    }

    [Fact]
    public void Describe_lists_the_cpu_and_explains_every_missing_backend()
    {
        var report = Device.Describe();
        Assert.Contains(report.Found, d => d.Kind == DeviceKind.Cpu);
        foreach (var kind in new[] { DeviceKind.Cuda, DeviceKind.OpenCL })
        {
            bool found = report.Found.Any(d => d.Kind == kind);
            bool explained = report.Skipped.Any(s => s.Kind == kind && s.Reason.Length > 10);
            Assert.True(found || explained, $"{kind}: neither found nor skipped with a reason:\n{report}");
        }
        var text = report.ToString();
        Assert.Contains("Found:", text);
        Assert.Contains("Skipped:", text);
        Assert.Contains("Selected:", text);
    }

    [Fact]
    public void Forcing_a_missing_gpu_says_why_and_what_to_do()
    {
        var report = Device.Describe();
        if (report.Found.Any(d => d.Kind == DeviceKind.Cuda))
            return; // a machine with CUDA cannot show the failure
        var e = Assert.Throws<DeviceUnavailableException>(() => Device.Create(DeviceKind.Cuda));
        Assert.Contains("Cuda", e.Message);
        Assert.Contains("cpu", e.Message);
        Assert.Contains("ilgpu-train devices", e.Message);
    }

    [Fact]
    public void Invalid_cpu_options_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Device.Create(new DeviceOptions { Kind = DeviceKind.Cpu, CpuThreadsPerGroup = 3 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => Device.Create(new DeviceOptions { Kind = DeviceKind.Cpu, CpuCores = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => Device.Create(new DeviceOptions { Kind = DeviceKind.Cpu, Ordinal = -1 }));
    }
}
