using System.Runtime.InteropServices;

namespace IlgpuTrain.Functional;

/// <summary>
/// Lets ILGPU find the GPU driver libraries under their versioned sonames. ILGPU imports
/// "cuda" and "OpenCL", which the runtime probes as libcuda.so and libOpenCL.so; distributions
/// ship only libcuda.so.1 and libOpenCL.so.1 in their runtime packages (the unversioned names
/// come with -dev packages), and ILGPU then reports no device at all, silently.
/// </summary>
internal static class NativeLibraries
{
    private static int _installed;

    public static void EnsureResolver()
    {
        if (Interlocked.Exchange(ref _installed, 1) != 0)
            return;
        try
        {
            NativeLibrary.SetDllImportResolver(typeof(Context).Assembly, Resolve);
        }
        catch (InvalidOperationException)
        {
            // The host application installed its own resolver for ILGPU; leave it in charge.
        }
    }

    private static IntPtr Resolve(string name, System.Reflection.Assembly assembly, DllImportSearchPath? path)
    {
        string[] candidates = name switch
        {
            "cuda" => ["libcuda.so.1", "libcuda.so"],
            "OpenCL" => ["libOpenCL.so.1", "libOpenCL.so"],
            _ => [],
        };
        if (candidates.Length == 0 || OperatingSystem.IsWindows())
            return IntPtr.Zero;
        foreach (var c in candidates)
        {
            if (NativeLibrary.TryLoad(c, out var handle))
                return handle;
        }
        return IntPtr.Zero;
    }
}
