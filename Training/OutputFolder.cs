// The output folder of a run: checked before training, and every write into it turned into one
// message that names the file, the problem and the fix.
//
// A run that would fail at its first checkpoint (an output path that is a file, under a file, in
// /proc or /sys, on a read-only disk) fails before its first step instead, having written
// nothing. A write that fails later (a full disk) names the file; atomic writes leave the previous
// file intact.
namespace IlgpuTrain.Training;

/// <summary>A run's output could not be written: the message names the file, the problem and the fix.</summary>
public sealed class OutputWriteException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="path">The file or folder.</param>
    /// <param name="message">The one-line message.</param>
    /// <param name="inner">The underlying fault, or null.</param>
    public OutputWriteException(string path, string message, Exception? inner = null)
        : base(message, inner)
    {
        Path = path;
    }

    /// <summary>The file or folder that could not be written.</summary>
    public string Path { get; }
}

/// <summary>Checks of a run's output folder, and the wrapping of write faults into <see cref="OutputWriteException"/>.</summary>
public static class OutputFolder
{
    private const int ENOSPC = 28;
    private const int EDQUOT = 122;
    private const int EROFS = 30;

    /// <summary>
    /// Makes sure <paramref name="path"/> is a folder the run can write into: creates it (and its
    /// parents) if missing, then writes and deletes a probe file in it.
    /// </summary>
    /// <param name="path">The folder.</param>
    /// <param name="label">How the user named it, for the message (such as "--output").</param>
    /// <exception cref="OutputWriteException">It is a file or special file, lies under a file, cannot be created, or is not writable; the message says which and what to do.</exception>
    public static void Require(string path, string label = "output folder")
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string full = System.IO.Path.GetFullPath(path);
        string Fail(string problem) => $"{label} {path}: {problem}";
        if (File.Exists(full))
            throw new OutputWriteException(path, Fail("this is a file (or a device), not a folder; choose a folder path (it is created if missing)."));
        if (!Directory.Exists(full))
        {
            for (string? up = System.IO.Path.GetDirectoryName(full); up is not null; up = System.IO.Path.GetDirectoryName(up))
            {
                if (File.Exists(up))
                    throw new OutputWriteException(path, Fail($"{up} is a file, so no folder can be made under it; choose another path."));
                if (Directory.Exists(up))
                    break;
            }

            try
            {
                Directory.CreateDirectory(full);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new OutputWriteException(path, Fail($"cannot create this folder ({Reason(e)}); {Fix(e, "choose a folder on a writable disk")}."), e);
            }
        }

        string probe = System.IO.Path.Combine(full, $".ilgpu-train-probe-{Guid.NewGuid():N}");
        try
        {
            using (var f = new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose))
            {
                f.WriteByte(0);
                f.Flush(flushToDisk: true);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new OutputWriteException(path, Fail($"cannot write into this folder ({Reason(e)}); {Fix(e, "check its permissions or choose another folder")}."), e);
        }
        finally
        {
            try
            {
                File.Delete(probe);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The probe was never made, or went with DeleteOnClose.
            }
        }
    }

    /// <summary>
    /// Makes sure a report can be written at the file <paramref name="path"/> before the work that
    /// produces it starts: it must not be a folder, and its folder must be one the command can
    /// write into (created if missing, see <see cref="Require"/>).
    /// </summary>
    /// <param name="path">The file.</param>
    /// <param name="label">How the user named it, for the message (such as "--json").</param>
    /// <exception cref="OutputWriteException">It is a folder, or its folder is not usable; the message says which and what to do.</exception>
    public static void RequireFile(string path, string label)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        string full = System.IO.Path.GetFullPath(path);
        if (Directory.Exists(full))
            throw new OutputWriteException(path, $"{label} {path}: this is a folder; give the path of a file to write (such as {System.IO.Path.Combine(path, "report.json")}).");
        if (System.IO.Path.GetDirectoryName(full) is { } folder)
            Require(folder, $"{label} {path}: its folder");
    }

    /// <summary>
    /// Runs <paramref name="write"/>, turning an I/O or permission fault into one
    /// <see cref="OutputWriteException"/> that names <paramref name="path"/>, the problem and the fix.
    /// </summary>
    /// <param name="path">The file written.</param>
    /// <param name="what">What it is, for the message ("checkpoint", "metrics log").</param>
    /// <param name="write">The write.</param>
    /// <param name="atomic">Whether the write is atomic (then the message says the previous file is intact).</param>
    /// <exception cref="OutputWriteException">The write failed.</exception>
    public static void Writing(string path, string what, Action write, bool atomic = false)
    {
        ArgumentNullException.ThrowIfNull(write);
        try
        {
            write();
        }
        catch (Exception e) when (e is (IOException or UnauthorizedAccessException) and not OutputWriteException)
        {
            string kept = atomic && File.Exists(path) ? " The previous file is intact." : string.Empty;
            throw new OutputWriteException(path, $"{path}: cannot write the {what} ({Reason(e)}); {Fix(e, "check the folder's permissions, or write the run elsewhere (--output)")}.{kept}", e);
        }
    }

    /// <summary>Whether <paramref name="e"/> is a full disk or an exhausted quota.</summary>
    /// <param name="e">The fault.</param>
    /// <returns>True for ENOSPC or EDQUOT (or their messages).</returns>
    public static bool IsDiskFull(Exception e)
    {
        ArgumentNullException.ThrowIfNull(e);
        int errno = e.HResult & 0xFFFF;
        return (e is IOException && (errno == ENOSPC || errno == EDQUOT))
            || e.Message.Contains("No space left", StringComparison.OrdinalIgnoreCase)
            || e.Message.Contains("quota", StringComparison.OrdinalIgnoreCase);
    }

    private static string Fix(Exception e, string otherwise) =>
        IsDiskFull(e) ? "the disk is full: free space on it, or write the run elsewhere (--output)"
        : (e.HResult & 0xFFFF) == EROFS || e.Message.Contains("Read-only file system", StringComparison.OrdinalIgnoreCase) ? "the file system is read-only: write the run elsewhere (--output)"
        : otherwise;

    // The underlying message on one line, without a trailing period (it goes inside parentheses).
    private static string Reason(Exception e) => e.Message.ReplaceLineEndings(" ").Trim().TrimEnd('.');
}
