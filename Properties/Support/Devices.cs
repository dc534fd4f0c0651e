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

    // Two cores of 16-thread groups: the GPU kernels' groups, shared memory and barriers run as
    // they would on a GPU (OS threads simulate the group), at a cost the suite can afford.
    private static readonly Lazy<Device> CpuKernelsDevice = new(() => Device.Create(new DeviceOptions
    {
        Kind = DeviceKind.Cpu,
        Backend = KernelBackend.CpuAccelerator,
        CpuCores = 2,
    }));

    /// <summary>The production CPU device: the managed backend (SIMD loops on the CPU accelerator's memory).</summary>
    public static Device Cpu => CpuDevice.Value;

    /// <summary>
    /// The CPU accelerator running the ILGPU (GPU) kernels in 16-thread groups: the CpuAccelerator
    /// backend, so the GPU algorithms (shared memory, barriers) are checked without a GPU.
    /// </summary>
    public static Device CpuKernels => CpuKernelsDevice.Value;

    /// <summary>The variable that adds GPU or OpenCL devices to <see cref="All"/>: <c>cuda</c>, <c>opencl</c> or both, comma-separated.</summary>
    public const string ExtraVariable = "ILGPUTRAIN_TEST_DEVICES";

    // Devices named by ILGPUTRAIN_TEST_DEVICES (none by default, as in CI): every property that
    // sweeps the backends then checks them against the references too.
    private static readonly Lazy<IReadOnlyList<Device>> ExtraDevices = new(() =>
        (Environment.GetEnvironmentVariable(ExtraVariable) ?? string.Empty)
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(name => DeviceOptions.Parse(name, ExtraVariable))
            .Select(options => options.Kind is DeviceKind.Cuda or DeviceKind.OpenCL
                ? Device.Create(options)
                : throw new InvalidOperationException($"{ExtraVariable}: '{options.Kind}' is always tested; name cuda or opencl (comma-separated)."))
            .ToList());

    /// <summary>
    /// Every backend the tests run: managed and the CPU accelerator's kernels, then the devices
    /// named by <see cref="ExtraVariable"/> (e.g. <c>ILGPUTRAIN_TEST_DEVICES=opencl dotnet test</c>).
    /// </summary>
    public static IEnumerable<Device> All
    {
        get
        {
            yield return Cpu;
            yield return CpuKernels;
            foreach (var device in ExtraDevices.Value)
                yield return device;
        }
    }

    /// <summary>A short name of the device's backend, for labels.</summary>
    /// <param name="device">The device.</param>
    /// <returns>"Managed", "CpuAccelerator" (and so on).</returns>
    public static string Describe(Device device) => device.Backend.ToString();
}

/// <summary>
/// A fact that needs a device of a GPU kind (CUDA or OpenCL): skipped where this machine has none,
/// with ILGPU's reason (CI has neither; a developer with a GPU or a PoCL build runs these).
/// </summary>
public sealed class GpuFactAttribute : FactAttribute
{
    private static readonly Lazy<DeviceReport> Report = new(Device.Describe);

    /// <summary>Skips when no device of <paramref name="kind"/> is usable here.</summary>
    /// <param name="kind"><see cref="DeviceKind.Cuda"/> or <see cref="DeviceKind.OpenCL"/>.</param>
    public GpuFactAttribute(DeviceKind kind)
    {
        if (Report.Value.Found.Any(d => d.Kind == kind))
            return;
        var why = Report.Value.Skipped.Where(s => s.Kind == kind).Select(s => $"{s.Name}: {s.Reason}").ToList();
        Skip = $"no usable {kind} device here ({(why.Count > 0 ? string.Join("; ", why) : "none found")}).";
    }
}
