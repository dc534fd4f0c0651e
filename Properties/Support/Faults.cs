using System.Diagnostics;

namespace IlgpuTrain.Properties.Support;

/// <summary>
/// Making the special files that fault-injection tests feed to readers: dangling links, named pipes,
/// unreadable files. What this machine cannot make is a visible skip (see the attributes below).
/// </summary>
public static class Faults
{
    /// <summary>Whether this process runs as root (uid 0), which reads files whatever their mode.</summary>
    public static bool IsRoot => !OperatingSystem.IsWindows() && Environment.UserName == "root";

    /// <summary>Whether <c>mkfifo</c> can make named pipes here.</summary>
    public static bool CanMakeFifo { get; } = !OperatingSystem.IsWindows() && TryMkfifo(Path.Combine(Path.GetTempPath(), $"fifo-probe-{Environment.ProcessId}-{Guid.NewGuid():N}"), cleanUp: true);

    /// <summary>Makes a named pipe at <paramref name="path"/> with mkfifo(1).</summary>
    /// <param name="path">Where.</param>
    public static void MakeFifo(string path)
    {
        if (!TryMkfifo(path, cleanUp: false))
            throw new InvalidOperationException($"mkfifo {path} failed.");
    }

    /// <summary>
    /// Runs <paramref name="read"/> with a deadline: a reader that blocks (on a pipe, say) fails the
    /// test instead of hanging the suite. Returns what it threw (null when it returned).
    /// </summary>
    /// <param name="read">The read.</param>
    /// <param name="seconds">The deadline.</param>
    /// <returns>The exception, or null.</returns>
    public static Exception? ThrownWithin(Action read, int seconds = 20)
    {
        var task = Task.Run(() => Record.Exception(read));
        if (!task.Wait(TimeSpan.FromSeconds(seconds)))
            Assert.Fail($"the read did not finish within {seconds} s: it blocks.");
        return task.Result;
    }

    private static bool TryMkfifo(string path, bool cleanUp)
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo("mkfifo", [path]) { RedirectStandardError = true, UseShellExecute = false });
            if (p is null || !p.WaitForExit(10_000) || p.ExitCode != 0)
                return false;
            if (cleanUp)
                File.Delete(path);
            return true;
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or IOException)
        {
            return false;
        }
    }
}

/// <summary>A fact that needs named pipes: skipped, with the reason, where mkfifo is unavailable.</summary>
public sealed class FifoFactAttribute : FactAttribute
{
    /// <summary>Sets the skip reason when pipes cannot be made here.</summary>
    public FifoFactAttribute()
    {
        if (!Faults.CanMakeFifo)
            Skip = "mkfifo is not available here, so no named pipe can be made.";
    }
}

/// <summary>A fact about files this user may not read: skipped under root, which reads any file whatever its mode.</summary>
public sealed class NotRootFactAttribute : FactAttribute
{
    /// <summary>Sets the skip reason under root.</summary>
    public NotRootFactAttribute()
    {
        if (Faults.IsRoot)
            Skip = "running as root: chmod 000 does not stop root from reading, so an unreadable file cannot be made.";
    }
}
