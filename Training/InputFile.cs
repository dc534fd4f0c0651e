using System.Runtime.InteropServices;

namespace IlgpuTrain.Training;

/// <summary>
/// An input path that cannot be read as a regular file: a dangling symbolic link, a directory, a
/// named pipe, a device, a socket, or a file this user may not read. An environment fault (the
/// command line exits 6), not bad content. The message is one line: the path, the problem, the fix.
/// </summary>
public sealed class InputFileException : IOException
{
    /// <summary>An error about <paramref name="path"/>.</summary>
    /// <param name="path">The path as given.</param>
    /// <param name="problem">What is wrong and what to do about it.</param>
    /// <param name="inner">The underlying error, if any.</param>
    public InputFileException(string path, string problem, Exception? inner = null)
        : base($"{path}: {problem}", inner)
    {
        Path = path;
        Problem = problem;
    }

    /// <summary>The path as given.</summary>
    public string Path { get; }

    /// <summary>What is wrong and what to do about it.</summary>
    public string Problem { get; }
}

/// <summary>
/// Opens the files the readers take (data files, checkpoints): regular files only. The file type is
/// checked before the file is opened, so a named pipe cannot block the reader and a device such as
/// /dev/zero is never read; the length a reader sees is then the length of a real file, which it
/// checks against its format's header before it allocates anything.
/// </summary>
public static partial class InputFile
{
    /// <summary>The kinds of file a path can name (the S_IFMT type of stat(2)).</summary>
    public enum Kind
    {
        /// <summary>Nothing there (or a dangling symbolic link).</summary>
        Missing,

        /// <summary>A regular file.</summary>
        Regular,

        /// <summary>A directory.</summary>
        Directory,

        /// <summary>A named pipe (FIFO).</summary>
        Fifo,

        /// <summary>A character device such as /dev/zero.</summary>
        CharacterDevice,

        /// <summary>A block device.</summary>
        BlockDevice,

        /// <summary>A Unix-domain socket.</summary>
        Socket,

        /// <summary>A path whose type could not be read (a folder on the way is not searchable).</summary>
        Unknown,
    }

    /// <summary>
    /// The type of what <paramref name="path"/> names, following symbolic links (a link to nothing is
    /// <see cref="Kind.Missing"/>).
    /// </summary>
    /// <param name="path">The path.</param>
    /// <returns>Its kind.</returns>
    public static Kind KindOf(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (OperatingSystem.IsWindows())
            return File.Exists(path) ? Kind.Regular : Directory.Exists(path) ? Kind.Directory : Kind.Missing;
        FileStatus status;
        int rc;
        try
        {
            rc = Stat(path, out status);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // A runtime without the native shim: fall back to what FileInfo can tell.
            return File.Exists(path) ? Kind.Regular : Directory.Exists(path) ? Kind.Directory : Kind.Missing;
        }

        if (rc != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            return errno is ENOENT or ENOTDIR or ELOOP ? Kind.Missing : Kind.Unknown;
        }

        return (status.Mode & S_IFMT) switch
        {
            S_IFREG => Kind.Regular,
            S_IFDIR => Kind.Directory,
            S_IFIFO => Kind.Fifo,
            S_IFCHR => Kind.CharacterDevice,
            S_IFBLK => Kind.BlockDevice,
            S_IFSOCK => Kind.Socket,
            _ => Kind.Unknown,
        };
    }

    /// <summary>
    /// Checks that <paramref name="path"/> is a regular file, before anything opens it.
    /// </summary>
    /// <param name="path">The path.</param>
    /// <param name="what">What the file should be, for the message ("data file", "checkpoint").</param>
    /// <param name="fix">What to pass instead, one sentence (e.g. "pass the .safetensors file that train wrote").</param>
    /// <exception cref="FileNotFoundException">Nothing is there.</exception>
    /// <exception cref="InputFileException">A dangling link, a directory, a pipe, a device, a socket.</exception>
    public static void RequireRegular(string path, string what, string fix)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        switch (KindOf(path))
        {
            case Kind.Regular:
                return;
            case Kind.Missing:
                if (new FileInfo(path).LinkTarget is { } target)
                    throw new InputFileException(path, $"a symbolic link to {target}, which does not exist; point the link at the {what} or {fix}.");
                throw new FileNotFoundException($"{path}: no such {what}; {fix}.", path);
            case Kind.Directory:
                throw new InputFileException(path, $"a directory, not a {what}; {fix}.");
            case Kind.Fifo:
                throw new InputFileException(path, $"a named pipe (FIFO), not a regular file: a {what} is read from a regular file (reading a pipe could block forever); {fix}.");
            case Kind.CharacterDevice:
            case Kind.BlockDevice:
                throw new InputFileException(path, $"a device, not a regular file: a {what} is read from a regular file; {fix}.");
            case Kind.Socket:
                throw new InputFileException(path, $"a socket, not a regular file: a {what} is read from a regular file; {fix}.");
            default:
                throw new InputFileException(path, $"cannot be examined (permission denied on a folder on the way?); make the path readable by this user or {fix}.");
        }
    }

    /// <summary>Opens <paramref name="path"/> for reading after <see cref="RequireRegular"/>; permission problems become an <see cref="InputFileException"/> naming the fix.</summary>
    /// <param name="path">The path.</param>
    /// <param name="what">What the file should be ("data file", "checkpoint").</param>
    /// <param name="fix">What to pass instead, one sentence.</param>
    /// <returns>The open stream; its length is the regular file's.</returns>
    /// <exception cref="FileNotFoundException">Nothing is there.</exception>
    /// <exception cref="InputFileException">Not a regular file, or not readable by this user.</exception>
    public static FileStream OpenRead(string path, string what, string fix)
    {
        RequireRegular(path, what, fix);
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new InputFileException(path, $"permission denied: this user cannot read the {what}; make it readable (chmod u+r {path}) or copy it somewhere readable.", e);
        }
    }

    private const int ENOENT = 2;
    private const int ENOTDIR = 20;
    private const int ELOOP = 40;

    // The file-type bits of FileStatus.Mode (the runtime's own constants, the same on every Unix).
    private const int S_IFMT = 0xF000;
    private const int S_IFIFO = 0x1000;
    private const int S_IFCHR = 0x2000;
    private const int S_IFDIR = 0x4000;
    private const int S_IFBLK = 0x6000;
    private const int S_IFREG = 0x8000;
    private const int S_IFSOCK = 0xC000;

    // stat(2) through the runtime's own shim (libSystem.Native, which File and Directory use), whose
    // FileStatus starts with Flags then Mode on every platform; the struct is sized well past the
    // runtime's so that a longer one in a later runtime is still written into our memory.
    [LibraryImport("libSystem.Native", EntryPoint = "SystemNative_Stat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Stat(string path, out FileStatus status);

#pragma warning disable CS0649 // written by the native call
    [StructLayout(LayoutKind.Sequential, Size = 512)]
    private struct FileStatus
    {
        public int Flags;
        public int Mode;
    }
#pragma warning restore CS0649
}
