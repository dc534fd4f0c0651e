using System.Diagnostics;
using System.Text;

namespace IlgpuTrain.Properties.Distributed;

/// <summary>
/// Launches the CLI's apphost under <c>mpirun -np N</c> on this machine (as root where needed,
/// oversubscribed: the CI machines have fewer cores than ranks), with a wall-clock limit so a
/// hung job fails the test instead of the suite.
/// </summary>
public static class Mpirun
{
    /// <summary>The CLI beside the test assembly.</summary>
    public static string Cli => Path.Combine(AppContext.BaseDirectory, "ilgpu-train");

    /// <summary>Why mpirun tests cannot run here, or null.</summary>
    public static readonly string? SkipReason = Find("mpirun") is null
        ? "mpirun is not on PATH (install openmpi-bin libopenmpi-dev, as .ci/run does), so no multi-rank job can be launched."
        : null;

    /// <summary>What a finished (or killed) job left.</summary>
    /// <param name="Code">mpirun's exit code (-1 when the limit killed it).</param>
    /// <param name="Out">Standard output of every rank.</param>
    /// <param name="Err">Standard error of every rank and of mpirun.</param>
    /// <param name="Elapsed">Wall-clock time.</param>
    public sealed record Result(int Code, string Out, string Err, TimeSpan Elapsed)
    {
        /// <inheritdoc/>
        public override string ToString() => $"exit {Code} after {Elapsed.TotalSeconds:F1} s\n--- stdout\n{Out}\n--- stderr\n{Err}";
    }

    /// <summary>Runs <c>mpirun -np <paramref name="ranks"/> ilgpu-train args</c>.</summary>
    /// <param name="ranks">Processes.</param>
    /// <param name="limit">Wall-clock limit; the job is killed past it.</param>
    /// <param name="args">The CLI's arguments.</param>
    /// <param name="whileRunning">Called with mpirun's process and a reader of the output so far once started (to stop or kill a rank), or null.</param>
    /// <returns>The result.</returns>
    public static Result Run(int ranks, TimeSpan limit, IEnumerable<string> args, Action<Process, Func<string>>? whileRunning = null) =>
        Launch(limit, ["-np", ranks.ToString(System.Globalization.CultureInfo.InvariantCulture), "--oversubscribe", "--bind-to", "none", Cli, .. args], whileRunning);

    /// <summary>Runs one rank per argument list (mpirun's MPMD form: <c>-np 1 ilgpu-train A : -np 1 ilgpu-train B</c>).</summary>
    /// <param name="limit">Wall-clock limit; the job is killed past it.</param>
    /// <param name="perRank">Each rank's CLI arguments.</param>
    /// <returns>The result.</returns>
    public static Result RunEach(TimeSpan limit, params string[][] perRank) =>
        Launch(limit, ["--oversubscribe", "--bind-to", "none", .. perRank.SelectMany((a, i) => (i == 0 ? Array.Empty<string>() : [":"]).Concat(["-np", "1", Cli, .. a]))], null);

    private static Result Launch(TimeSpan limit, IEnumerable<string> arguments, Action<Process, Func<string>>? whileRunning)
    {
        var info = new ProcessStartInfo(Find("mpirun")!) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in arguments)
            info.ArgumentList.Add(a);
        info.Environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1";
        info.Environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1";
        info.Environment["OMPI_MCA_btl"] = "self,vader";
        var clock = Stopwatch.StartNew();
        using var p = Process.Start(info)!;
        var (o, e) = (new StringBuilder(), new StringBuilder());
        p.OutputDataReceived += (_, d) => { lock (o) o.AppendLine(d.Data); };
        p.ErrorDataReceived += (_, d) => { lock (e) e.AppendLine(d.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        whileRunning?.Invoke(p, () =>
        {
            lock (o)
                return o.ToString();
        });
        bool finished = p.WaitForExit(limit);
        if (!finished)
        {
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
        }

        p.WaitForExit();
        lock (o)
        lock (e)
            return new Result(finished ? p.ExitCode : -1, o.ToString(), e.ToString(), clock.Elapsed);
    }

    /// <summary>The pid of rank <paramref name="rank"/> under <paramref name="mpirun"/> (its environment says OMPI_COMM_WORLD_RANK), once it has started.</summary>
    /// <param name="mpirun">The launcher.</param>
    /// <param name="rank">The rank.</param>
    /// <param name="limit">How long to look.</param>
    /// <returns>The pid.</returns>
    public static int RankPid(Process mpirun, int rank, TimeSpan limit)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < limit)
        {
            foreach (var dir in Directory.EnumerateDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(dir), out int pid) || !Descends(pid, mpirun.Id))
                    continue;
                try
                {
                    var env = File.ReadAllText(Path.Combine(dir, "environ")).Split('\0');
                    if (env.Contains($"OMPI_COMM_WORLD_RANK={rank}") && File.ReadAllText(Path.Combine(dir, "cmdline")).Contains("ilgpu-train", StringComparison.Ordinal))
                        return pid;
                }
                catch (IOException)
                {
                }
                catch (UnauthorizedAccessException)
                {
                }
            }

            Assert.False(mpirun.HasExited, "mpirun exited before its ranks could be found");
            Thread.Sleep(50);
        }

        throw new TimeoutException($"rank {rank} did not start within {limit}");
    }

    private static bool Descends(int pid, int ancestor)
    {
        for (int depth = 0; depth < 8 && pid > 1; depth++)
        {
            if (pid == ancestor)
                return true;
            try
            {
                var stat = File.ReadAllText($"/proc/{pid}/stat");
                pid = int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
            }
            catch (IOException)
            {
                return false;
            }
        }

        return false;
    }

    private static string? Find(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, tool)).FirstOrDefault(File.Exists);
}

/// <summary>A fact that launches mpirun: skipped, with the reason, where Open MPI is not installed.</summary>
public sealed class MpiFactAttribute : FactAttribute
{
    /// <summary>Sets the skip reason when mpirun is missing.</summary>
    public MpiFactAttribute()
    {
        if (Mpirun.SkipReason is { } why)
            Skip = why;
    }
}
