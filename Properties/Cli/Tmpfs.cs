using System.Diagnostics;

namespace IlgpuTrain.Properties.Cli;

/// <summary>
/// A small tmpfs mounted for one test (a full disk, a read-only file system), unmounted on dispose.
/// Mounting needs root and a kernel that allows it; where it cannot, <see cref="TmpfsFactAttribute"/>
/// skips the test visibly with the reason.
/// </summary>
internal sealed class Tmpfs : IDisposable
{
    private Tmpfs(string path) => Path = path;

    /// <summary>The mount point.</summary>
    public string Path { get; }

    /// <summary>Why tmpfs cannot be mounted here, or null when it can (probed once).</summary>
    public static string? Unavailable => Probe.Value;

    private static readonly Lazy<string?> Probe = new(() =>
    {
        try
        {
            using var t = Mount("size=16k");
            return t is null ? "mount -t tmpfs failed (needs root and a kernel that allows mounts in this container)" : null;
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or IOException or InvalidOperationException)
        {
            return $"cannot run mount: {e.Message}";
        }
    });

    /// <summary>Mounts a tmpfs with <paramref name="options"/> (such as "size=600k" or "ro,size=64k") on a fresh folder.</summary>
    /// <param name="options">mount -o options.</param>
    /// <returns>The mount, or null when mount failed.</returns>
    public static Tmpfs? Mount(string options)
    {
        string dir = Directory.CreateTempSubdirectory("ilgpu-tmpfs-").FullName;
        if (Exec("mount", "-t", "tmpfs", "-o", options, "tmpfs", dir))
            return new Tmpfs(dir);
        Directory.Delete(dir);
        return null;
    }

    /// <summary>Unmounts and removes the mount point.</summary>
    public void Dispose()
    {
        if (Exec("umount", Path))
            Directory.Delete(Path, recursive: true);
    }

    private static bool Exec(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args)
            info.ArgumentList.Add(a);
        using var p = Process.Start(info) ?? throw new InvalidOperationException($"{file} did not start");
        if (!p.WaitForExit(10_000))
        {
            p.Kill();
            return false;
        }

        return p.ExitCode == 0;
    }
}

/// <summary>A fact that needs <see cref="Tmpfs"/>: skipped, with the reason, where tmpfs cannot be mounted.</summary>
internal sealed class TmpfsFactAttribute : FactAttribute
{
    public TmpfsFactAttribute()
    {
        if (Tmpfs.Unavailable is { } why)
            Skip = why;
    }
}
