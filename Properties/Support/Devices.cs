namespace IlgpuTrain.Properties.Support;

/// <summary>
/// Devices shared by the whole test run (creating a context per test would dominate run time).
/// Test classes run in parallel, so several threads use these at once: launches, the kernel cache
/// and the memory pool are thread-safe, and no test reads a device-wide counter that another
/// test could move (those tests make a device of their own).
/// </summary>
public static class Devices
{
    private static readonly Lazy<Device> CpuDevice = new(() => Device.Create(DeviceKind.Cpu));

    private static readonly Lazy<Device> CpuKernelsDevice = new(() => Device.Create(new DeviceOptions
    {
        Kind = DeviceKind.Cpu,
        Backend = KernelBackend.CpuAccelerator,
    }));

    private static readonly Lazy<Device> GpuSimDevice = new(() => Device.Create(new DeviceOptions
    {
        Kind = DeviceKind.Cpu,
        CpuCores = 2,
        CpuThreadsPerGroup = 16,
        Variant = KernelVariant.Gpu,
    }));

    /// <summary>The production CPU device: the managed backend (SIMD loops on the CPU accelerator's memory).</summary>
    public static Device Cpu => CpuDevice.Value;

    /// <summary>The CPU accelerator running the ILGPU kernels (CPU variants, one group per core): the CpuAccelerator backend.</summary>
    public static Device CpuKernels => CpuKernelsDevice.Value;

    /// <summary>
    /// A CPU accelerator with 16-thread groups that runs the GPU kernel variants (shared memory,
    /// barriers), so those variants are checked against their references without a GPU.
    /// </summary>
    public static Device GpuSim => GpuSimDevice.Value;

    /// <summary>Every backend the tests can run: managed, the CPU accelerator's kernels and the GPU variants.</summary>
    public static IEnumerable<Device> All
    {
        get
        {
            yield return Cpu;
            yield return CpuKernels;
            yield return GpuSim;
        }
    }

    /// <summary>A short name of the device's backend and variant, for labels.</summary>
    /// <param name="device">The device.</param>
    /// <returns>"Managed", "CpuAccelerator" or "CpuAccelerator/Gpu" (and so on).</returns>
    public static string Describe(Device device) =>
        device.Kernels.Variant == KernelVariant.Gpu && device.IsCpu ? "GpuSim" : device.Backend.ToString();
}
