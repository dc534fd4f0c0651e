using System.Diagnostics;
using System.Text.Json;

namespace IlgpuTrain.Cli.Benchmarks;

/// <summary>
/// The PyTorch peer of <c>bench</c> (Cli/peer/torch_bench.py) as one long-lived process: it is asked
/// for each group of rows right after IlgpuTrain measured them, so the two sides alternate through
/// the run and share its drifts (other load, clock changes) instead of one side getting the quiet minutes.
/// Once it fails, it says why in <see cref="Describe"/> and measures nothing more; the bench goes on.
/// </summary>
internal sealed class PeerSession : IDisposable
{
    private const string Python = "/usr/bin/python3";
    private static readonly TimeSpan StartLimit = TimeSpan.FromMinutes(2);
    private static readonly TimeSpan RowsLimit = TimeSpan.FromMinutes(10);

    private readonly Process? _process;
    private readonly BenchPlan _plan;

    private readonly List<string> _errors = [];

    private PeerSession(BenchPlan plan, Process? process, bool available, string describe)
    {
        _plan = plan;
        _process = process;
        Available = available;
        Describe = describe;
    }

    /// <summary>True while the peer answers.</summary>
    public bool Available { get; private set; }

    /// <summary>True once the peer has started and greeted (it may have failed later).</summary>
    public bool Ran { get; private set; }

    /// <summary>"PyTorch 1.13 on cpu, 1 thread(s)", or "none (why)".</summary>
    public string Describe { get; private set; }

    /// <summary>A session that never runs, with the reason.</summary>
    public static PeerSession Off(BenchPlan plan, string why) => new(plan, null, false, $"none ({why})");

    /// <summary>Starts the peer (THREADS from the environment, else 1; DEVICE cuda or cpu) and reads its greeting.</summary>
    public static PeerSession Start(BenchPlan plan, bool cuda)
    {
        string script = Path.Combine(AppContext.BaseDirectory, "peer", "torch_bench.py");
        if (!File.Exists(script))
            return Off(plan, $"{script} is missing");
        if (!File.Exists(Python))
            return Off(plan, $"{Python} is missing");
        var psi = new ProcessStartInfo(Python)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(script);
        psi.ArgumentList.Add("--serve");
        // One thread is PyTorch's best on this class of machine, and what the GEMM target compares against.
        psi.Environment["THREADS"] = Environment.GetEnvironmentVariable("THREADS") ?? "1";
        psi.Environment["DEVICE"] = cuda ? "cuda" : "cpu";
        var process = Process.Start(psi)!;
        var session = new PeerSession(plan, process, true, "PyTorch");
        process.ErrorDataReceived += (_, e) =>
        {
            if (string.IsNullOrWhiteSpace(e.Data))
                return;
            lock (session._errors)
                session._errors.Add(e.Data);
            Console.Error.WriteLine(e.Data);
        };
        process.BeginErrorReadLine();
        string? hello = session.ReadLine(StartLimit, "starting");
        if (hello is null)
            return session;
        try
        {
            using var doc = JsonDocument.Parse(hello);
            var root = doc.RootElement;
            session.Ran = true;
            session.Describe = $"PyTorch {root.GetProperty("torch").GetString()} on {root.GetProperty("device").GetString()}, {root.GetProperty("threads").GetInt32()} thread(s), interleaved with IlgpuTrain row by row";
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            session.Fail($"its greeting is not the expected JSON ({hello.Trim()})");
        }

        return session;
    }

    /// <summary>The peer's median milliseconds for those of <paramref name="rows"/> it has a counterpart of (empty once it has failed).</summary>
    public IReadOnlyDictionary<string, double> Measure(IReadOnlyList<BenchRow> rows)
    {
        var specs = rows.Where(r => r.PeerSpec is not null && !r.Skipped)
            .Select(r => new Dictionary<string, object>(r.PeerSpec!) { ["name"] = r.Name })
            .ToList();
        if (!Available || specs.Count == 0)
            return new Dictionary<string, double>();
        Console.Error.WriteLine($"bench: PyTorch peer ({string.Join(", ", specs.Select(s => s["name"]))})");
        _process!.StandardInput.WriteLine(JsonSerializer.Serialize(new { reps = _plan.Reps, budget = _plan.BudgetSeconds, rows = specs }));
        _process.StandardInput.Flush();
        string? line = ReadLine(RowsLimit, "measuring " + string.Join(", ", specs.Select(s => s["name"])));
        if (line is null)
            return new Dictionary<string, double>();
        try
        {
            using var doc = JsonDocument.Parse(line);
            return doc.RootElement.GetProperty("ms").EnumerateObject().ToDictionary(e => e.Name, e => e.Value.GetDouble());
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            Fail($"its answer is not the expected JSON ({line.Trim()})");
            return new Dictionary<string, double>();
        }
    }

    private string? ReadLine(TimeSpan limit, string doing)
    {
        var read = _process!.StandardOutput.ReadLineAsync();
        if (!read.Wait(limit))
        {
            Fail($"the peer ran past {limit.TotalMinutes:F0} minutes {doing}");
            return null;
        }

        if (read.Result is { } line)
            return line;
        _process.WaitForExit(5000);
        string last;
        lock (_errors)
            last = _errors.LastOrDefault(l => l.Trim().Length > 0)?.Trim() ?? (_process.HasExited ? $"exit {_process.ExitCode}" : "no output");
        Fail(last.Contains("No module named 'torch'", StringComparison.Ordinal) ? "PyTorch is not installed" : $"peer failed {doing}: {last}");
        return null;
    }

    private void Fail(string why)
    {
        Available = false;
        Describe = Describe == "PyTorch" ? $"none ({why})" : $"{Describe}; stopped: {why}";
        Stop();
    }

    private void Stop()
    {
        if (_process is null || _process.HasExited)
            return;
        try
        {
            _process.StandardInput.Close();
            if (!_process.WaitForExit(5000))
                _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // It exited between the checks.
        }
    }

    /// <summary>Closes the peer's input, so it exits, and waits for it.</summary>
    public void Dispose()
    {
        Stop();
        _process?.Dispose();
    }
}
