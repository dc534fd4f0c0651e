using IlgpuTrain.Training.Conformance;

namespace IlgpuTrain.Properties.Training.Conformance;

/// <summary>
/// The conformance suite that <c>ilgpu-train check</c> runs, run here on both CPU backends (managed,
/// and the GPU kernels on the CPU accelerator): every family has checks, every check passes, and
/// every kernel is launched. A perturbed reference fails
/// its family only, so a green suite on a GPU means something.
/// </summary>
public class SuiteProperties
{
    [Fact]
    public void Every_check_passes_on_the_cpu_device() => AllPass(Devices.Cpu);

    /// <summary>
    /// On a device of its own (so no other test's launches count), the suite passes on the GPU
    /// kernels and loads every kernel of the catalog: a kernel that <c>check</c> would never run on a
    /// GPU fails here by name.
    /// </summary>
    [Fact]
    public void Every_check_passes_on_the_cpu_accelerator_backend_and_every_kernel_is_checked()
    {
        using var device = Device.Create(new DeviceOptions { Kind = DeviceKind.Cpu, Backend = KernelBackend.CpuAccelerator, CpuCores = 2 });
        AllPass(device);
        var loaded = device.Kernels.LoadedKernelNames.ToHashSet(StringComparer.Ordinal);
        var missing = KernelCatalog.All.Select(d => d.Name).Where(name => !loaded.Contains(name)).ToList();
        Assert.True(missing.Count == 0, $"{missing.Count} of {KernelCatalog.All.Count} kernels are never launched by the conformance suite: {string.Join(", ", missing)}");
    }

    /// <summary>
    /// <c>check</c> on a GPU or OpenCL device of this machine, on a device of its own: every check
    /// passes there too (skipped, with the reason, where there is none).
    /// </summary>
    /// <param name="kind">The kind.</param>
    private static void AllPassOn(DeviceKind kind)
    {
        using var device = Device.Create(kind);
        AllPass(device);
    }

    [GpuFact(DeviceKind.OpenCL)]
    public void Every_check_passes_on_an_opencl_device() => AllPassOn(DeviceKind.OpenCL);

    [GpuFact(DeviceKind.Cuda)]
    public void Every_check_passes_on_a_cuda_device() => AllPassOn(DeviceKind.Cuda);

    // Every family of the suite (a family added to Suite.Families is covered without editing this
    // list), and one spelled in another case.
    public static TheoryData<string> EveryFamily => [.. Suite.Families, "metrics"];

    [Theory]
    [MemberData(nameof(EveryFamily))]
    public void A_perturbed_reference_fails_its_family_only(string family)
    {
        var results = Suite.Run(Devices.Cpu, new SuiteOptions { Quick = true, PerturbReferenceOf = family });
        var failed = results.Where(r => !r.Passed).Select(r => r.Family).Distinct().ToList();
        Assert.Equal([Suite.Families.Single(f => f.Equals(family, StringComparison.OrdinalIgnoreCase))], failed);
    }

    [Fact]
    public void An_unknown_family_to_perturb_is_refused_by_name()
    {
        var e = Assert.Throws<ArgumentException>(() => Suite.Run(Devices.Cpu, new SuiteOptions { Quick = true, PerturbReferenceOf = "Gemmm" }));
        Assert.Contains("Gemmm", e.Message);
        Assert.Contains("LayerNorm", e.Message);
    }

    private static void AllPass(Device device)
    {
        var results = Suite.Run(device, new SuiteOptions { Quick = true });
        var failures = results.Where(r => !r.Passed).Select(r => $"{r.Family} {r.Name}: {r.Detail}").ToList();
        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
        Assert.Equal(Suite.Families.Order(), results.Select(r => r.Family).Distinct().Order());
    }
}
