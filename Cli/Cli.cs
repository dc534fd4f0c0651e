using System.Diagnostics;
using IlgpuTrain.Functional;
using IlgpuTrain.Training;

namespace IlgpuTrain.Cli;

/// <summary>Exit codes and error reporting of the commands: a clear message on stderr and a non-zero code, never a stack trace for a user error.</summary>
internal static class Cli
{
    /// <summary>Prints the option problems; true when there were any (exit 2 before any work).</summary>
    public static bool Fail(IReadOnlyList<string> problems)
    {
        foreach (var p in problems)
            Console.Error.WriteLine($"error: {p}");
        return problems.Count > 0;
    }

    /// <summary>
    /// Runs a command, turning the errors a user can fix into a message and an exit code:
    /// 2 bad options, 3 bad data or checkpoint files, 4 no usable device, 5 training diverged
    /// (non-finite), 6 an environment fault (a path that is missing, special, unreadable or
    /// unwritable; a full disk), 7 out of memory, 8 a distributed run's launch, library
    /// or mismatch between ranks.
    /// </summary>
    public static int Guard(Func<int> run)
    {
        try
        {
            return run();
        }
        catch (DataSetNotFoundException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 3;
        }
        catch (CheckpointFormatException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 3;
        }
        catch (CheckpointMismatchException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 3;
        }
        catch (InvalidDataException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 3;
        }
        catch (DeviceUnavailableException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 4;
        }
        catch (IlgpuTrain.Training.Distributed.DistributedException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 8;
        }
        catch (NonFiniteTrainingException e)
        {
            Console.Error.WriteLine(e.Message);
            return 5;
        }
        catch (ArgumentException e)
        {
            // The message names the option or file already; the parameter name is for programmers.
            string message = e.ParamName is { } name ? e.Message.Replace($" (Parameter '{name}')", string.Empty, StringComparison.Ordinal) : e.Message;
            Console.Error.WriteLine($"error: {message}");
            return 2;
        }
        catch (UnauthorizedAccessException e)
        {
            Console.Error.WriteLine($"error: {e.Message} Check the path's permissions, or choose another path.");
            return 6;
        }
        catch (IOException e)
        {
            // Missing or special paths, a full disk, a path under a file: the environment, not the options.
            Console.Error.WriteLine($"error: {e.Message}");
            return 6;
        }
        catch (OutOfMemoryException)
        {
            Console.Error.WriteLine("error: out of memory. Use a smaller --batch-size or model, or a machine with more memory.");
            return 7;
        }
    }

    /// <summary>Times a block.</summary>
    public static (T Value, double Seconds) Timed<T>(Func<T> f)
    {
        var sw = Stopwatch.StartNew();
        var v = f();
        return (v, sw.Elapsed.TotalSeconds);
    }
}
