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

    /// <summary>Runs a command, turning the errors a user can fix into a message and an exit code.</summary>
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
        catch (NonFiniteTrainingException e)
        {
            Console.Error.WriteLine(e.Message);
            return 5;
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 2;
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
