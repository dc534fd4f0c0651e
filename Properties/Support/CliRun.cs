using IlgpuTrain.Cli;

namespace IlgpuTrain.Properties.Support;

/// <summary>
/// Runs <c>ilgpu-train</c> in process, as a user's command line, capturing what it prints. It
/// swaps the process-wide Console writers, so test classes that use it belong to
/// <see cref="ProcessState"/>'s collection.
/// </summary>
public static class CliRun
{
    /// <summary>Parses and invokes the command line.</summary>
    /// <param name="args">The arguments, command first.</param>
    /// <returns>The exit code and what was written to stdout and stderr.</returns>
    public static (int Code, string Out, string Err) Invoke(params string[] args) => Capture(() => CliApp.Root().Parse(args).Invoke());

    /// <summary>Runs <paramref name="command"/> with stdout and stderr captured.</summary>
    /// <param name="command">The work; returns an exit code.</param>
    /// <returns>The exit code and what was written to stdout and stderr.</returns>
    public static (int Code, string Out, string Err) Capture(Func<int> command)
    {
        ArgumentNullException.ThrowIfNull(command);
        var (oldOut, oldErr) = (Console.Out, Console.Error);
        var (o, e) = (new StringWriter(), new StringWriter());
        Console.SetOut(o);
        Console.SetError(e);
        try
        {
            int code = command();
            return (code, o.ToString(), e.ToString());
        }
        finally
        {
            Console.SetOut(oldOut);
            Console.SetError(oldErr);
        }
    }
}
