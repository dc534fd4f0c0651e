using System.Runtime.InteropServices;
using System.Text;
using ILGPU.Backends.OpenCL;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace IlgpuTrain.Functional;

/// <summary>One accelerator that ILGPU can see.</summary>
/// <param name="Kind">CUDA, OpenCL or CPU.</param>
/// <param name="Ordinal">Index among the usable devices of its kind (what <see cref="DeviceOptions.Ordinal"/> selects).</param>
/// <param name="Name">The device name.</param>
/// <param name="Details">Memory, multiprocessors, architecture.</param>
public sealed record DeviceEntry(DeviceKind Kind, int Ordinal, string Name, string Details);

/// <summary>A device ILGPU found but IlgpuTrain cannot use, or a backend that found nothing, with the reason.</summary>
/// <param name="Kind">CUDA or OpenCL.</param>
/// <param name="Name">The device (or backend) name.</param>
/// <param name="Reason">Why it is skipped, and what would fix it.</param>
public sealed record SkippedDevice(DeviceKind Kind, string Name, string Reason);

/// <summary>
/// What <see cref="Device.Describe"/> found: every usable accelerator and every skipped one with
/// its reason. ILGPU drops unusable devices silently (for example OpenCL devices without generic
/// address space); this report says so.
/// </summary>
/// <param name="Found">Usable devices, in preference order (CUDA, OpenCL, CPU).</param>
/// <param name="Skipped">Devices and backends that were not usable, with reasons.</param>
/// <param name="Selected">What <see cref="Device.Create()"/> would pick now (honouring ILGPUTRAIN_DEVICE), or the reason it would fail.</param>
public sealed record DeviceReport(IReadOnlyList<DeviceEntry> Found, IReadOnlyList<SkippedDevice> Skipped, string Selected)
{
    /// <summary>A plain-text table of the report.</summary>
    /// <returns>The text.</returns>
    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.AppendLine("Found:");
        foreach (var d in Found)
            sb.AppendLine($"  [{d.Kind.ToString().ToLowerInvariant()}:{d.Ordinal}] {d.Name} - {d.Details}");
        sb.AppendLine("Skipped:");
        if (Skipped.Count == 0)
            sb.AppendLine("  (none)");
        foreach (var s in Skipped)
            sb.AppendLine($"  [{s.Kind.ToString().ToLowerInvariant()}] {s.Name} - {s.Reason}");
        sb.Append("Selected: ").Append(Selected);
        return sb.ToString();
    }

    internal static DeviceReport Probe()
    {
        NativeLibraries.EnsureResolver();
        var found = new List<DeviceEntry>();
        var skipped = new List<SkippedDevice>();

        ProbeCuda(found, skipped);
        ProbeOpenCL(found, skipped);

        int cores = Environment.ProcessorCount;
        found.Add(new DeviceEntry(DeviceKind.Cpu, 0, "ILGPU CPU accelerator",
            $"{cores} cores ({RuntimeInformation.ProcessArchitecture}), one worker group per core, host memory"));

        string selected;
        try
        {
            var kind = DeviceOptions.FromEnvironment().Kind;
            selected = Pick(found, skipped, kind, 0).Describe();
            if (kind != DeviceKind.Auto)
                selected += $" (forced by {DeviceOptions.EnvironmentVariable})";
        }
        catch (Exception e) when (e is ArgumentException || e is DeviceUnavailableException)
        {
            selected = "none: " + e.Message;
        }
        return new DeviceReport(found, skipped, selected);
    }

    internal static DeviceEntry Pick(IReadOnlyList<DeviceEntry> found, IReadOnlyList<SkippedDevice> skipped, DeviceKind kind, int ordinal)
    {
        if (kind == DeviceKind.Auto)
        {
            foreach (var k in new[] { DeviceKind.Cuda, DeviceKind.OpenCL, DeviceKind.Cpu })
            {
                var first = found.FirstOrDefault(d => d.Kind == k && d.Ordinal == ordinal);
                if (first is not null)
                    return first;
            }
        }
        var match = found.FirstOrDefault(d => d.Kind == kind && d.Ordinal == ordinal);
        if (match is not null)
            return match;

        var ofKind = found.Where(d => d.Kind == kind).ToList();
        var why = skipped.Where(s => s.Kind == kind).Select(s => $"{s.Name}: {s.Reason}").ToList();
        string detail = ofKind.Count > 0
            ? $"only ordinals 0..{ofKind.Count - 1} exist"
            : why.Count > 0 ? string.Join("; ", why) : "no such device was found";
        throw new DeviceUnavailableException(
            $"No usable {kind} device #{ordinal}: {detail}. Run 'ilgpu-train devices' to see what ILGPU found, " +
            $"or set {DeviceOptions.EnvironmentVariable}=cpu (or pass --device cpu) to train on the CPU accelerator.");
    }

    private static void ProbeCuda(List<DeviceEntry> found, List<SkippedDevice> skipped)
    {
        if (!LibraryPresent("libcuda.so.1", "libcuda.so", "nvcuda.dll"))
        {
            skipped.Add(new SkippedDevice(DeviceKind.Cuda, "CUDA driver", "no NVIDIA driver library (libcuda.so.1) on this machine; install the NVIDIA driver to use an NVIDIA GPU"));
            return;
        }
        var seen = new List<CudaDevice>();
        try
        {
            using var ctx = Context.Create(b => b.Cuda(d =>
            {
                seen.Add(d);
                return true;
            }));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            skipped.Add(new SkippedDevice(DeviceKind.Cuda, "CUDA driver", $"the driver failed to initialize: {e.Message}"));
            return;
        }
        if (seen.Count == 0)
            skipped.Add(new SkippedDevice(DeviceKind.Cuda, "CUDA driver", "the driver loaded but reported no devices (check nvidia-smi and CUDA_VISIBLE_DEVICES)"));
        int ordinal = 0;
        foreach (var d in seen)
        {
            if (!d.Architecture.HasValue || !d.InstructionSet.HasValue)
            {
                skipped.Add(new SkippedDevice(DeviceKind.Cuda, d.Name,
                    $"ILGPU 1.5.3 cannot target this GPU/driver pair (architecture {d.Architecture?.ToString() ?? "unknown"}, PTX ISA {d.InstructionSet?.ToString() ?? "unsupported by the driver"}); update the NVIDIA driver"));
                continue;
            }
            found.Add(new DeviceEntry(DeviceKind.Cuda, ordinal++, d.Name,
                $"{d.Architecture}, PTX {d.InstructionSet}, {d.NumMultiprocessors} SMs, {Bytes.Format(d.MemorySize)}, driver {d.DriverVersion}"));
        }
    }

    private static void ProbeOpenCL(List<DeviceEntry> found, List<SkippedDevice> skipped)
    {
        if (!LibraryPresent("libOpenCL.so.1", "libOpenCL.so", "OpenCL.dll"))
        {
            skipped.Add(new SkippedDevice(DeviceKind.OpenCL, "OpenCL ICD loader", "no OpenCL loader (libOpenCL.so.1) on this machine; install ocl-icd-libopencl1 and a vendor driver to use an AMD or Intel GPU"));
            return;
        }
        var seen = new List<CLDevice>();
        try
        {
            using var ctx = Context.Create(b => b.OpenCL(d =>
            {
                seen.Add(d);
                return false;
            }));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            skipped.Add(new SkippedDevice(DeviceKind.OpenCL, "OpenCL", $"the OpenCL runtime failed: {e.Message}"));
            return;
        }
        if (seen.Count == 0)
            skipped.Add(new SkippedDevice(DeviceKind.OpenCL, "OpenCL ICD loader", "the loader is installed but no platform reported a device (no vendor driver registered in /etc/OpenCL/vendors)"));
        int ordinal = 0;
        foreach (var d in seen)
        {
            string name = $"{d.Name} ({d.PlatformName})";
            if (d.CLStdVersion < CLBackend.MinimumVersion)
            {
                skipped.Add(new SkippedDevice(DeviceKind.OpenCL, name, $"OpenCL C {d.CLStdVersion} is below the {CLBackend.MinimumVersion} that ILGPU requires"));
                continue;
            }
            if (!d.Capabilities.GenericAddressSpace)
            {
                skipped.Add(new SkippedDevice(DeviceKind.OpenCL, name, "no generic address space support, which ILGPU requires (e.g. PoCL 3.1 on Debian 12); use a newer driver"));
                continue;
            }
            found.Add(new DeviceEntry(DeviceKind.OpenCL, ordinal++, name,
                $"{d.Vendor}, OpenCL C {d.CLStdVersion}, {d.NumMultiprocessors} compute units, {Bytes.Format(d.MemorySize)}, fp16 {(d.Capabilities.Float16 ? "yes" : "no")}"));
        }
    }

    private static bool LibraryPresent(params string[] names)
    {
        foreach (var n in names)
        {
            if (NativeLibrary.TryLoad(n, out var handle))
            {
                NativeLibrary.Free(handle);
                return true;
            }
        }
        return false;
    }
}

internal static class DeviceEntryExtensions
{
    public static string Describe(this DeviceEntry e) => $"[{e.Kind.ToString().ToLowerInvariant()}:{e.Ordinal}] {e.Name}";
}
