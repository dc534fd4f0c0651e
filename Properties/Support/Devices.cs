namespace IlgpuTrain.Properties.Support;

/// <summary>
/// Devices shared by the whole test run (creating a context per test would dominate run time).
/// Tests run one at a time (see GlobalUsings), so sharing one stream is safe.
/// </summary>
public static class Devices
{
    private static readonly Lazy<Device> CpuDevice = new(() => Device.Create(DeviceKind.Cpu));

    private static readonly Lazy<Device> GpuSimDevice = new(() => Device.Create(new DeviceOptions
    {
        Kind = DeviceKind.Cpu,
        CpuCores = 2,
        CpuThreadsPerGroup = 16,
        Variant = KernelVariant.Gpu,
    }));

    /// <summary>The production CPU accelerator (CPU kernel variants, one group per core).</summary>
    public static Device Cpu => CpuDevice.Value;

    /// <summary>
    /// A CPU accelerator with 16-thread groups that runs the GPU kernel variants (shared memory,
    /// barriers), so those variants are checked against their references without a GPU.
    /// </summary>
    public static Device GpuSim => GpuSimDevice.Value;

    /// <summary>Both devices, for properties that must hold on every variant.</summary>
    public static IEnumerable<Device> All
    {
        get
        {
            yield return Cpu;
            yield return GpuSim;
        }
    }
}
