using IlgpuTrain.Training;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using IlgpuTrain.Cli.Benchmarks;
using IlgpuTrain.Functional;

namespace IlgpuTrain.Cli;

/// <summary>
/// <c>ilgpu-train bench</c>: copy bandwidth, kernel throughput (elementwise and reductions against
/// the copy bandwidth, GEMM), the AdamW step, the Fashion-MNIST MLP and CNN forward+backward and
/// training step at batch 128, time to first step and memory per step, for the device in use;
/// with the PyTorch peer (Cli/peer/torch_bench.py) measured in the same invocation when
/// <c>/usr/bin/python3 -c "import torch"</c> works. Prints a table and writes it as JSON.
/// </summary>
internal static class BenchCommand
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The ratio's meaning, printed in the header and stored in the JSON.</summary>
    public const string RatioNote = "ratio = IlgpuTrain time / PyTorch time for the same work (below 1: IlgpuTrain is faster)";

    public static Command Create()
    {
        var json = new Option<string>("--json") { Description = "Where to write the table as JSON.", DefaultValueFactory = _ => "bench.json" };
        var quick = new Option<bool>("--quick") { Description = "A short run: fewer repetitions, 1M-element kernels, no 4096^3 GEMM, no 25M-parameter optimizer step." };
        var synthetic = new Option<bool>("--synthetic") { Description = "Random inputs of Fashion-MNIST's shapes, so no data set is needed (the default and the only mode: bench measures time, not accuracy).", DefaultValueFactory = _ => true };
        var device = new Option<string?>("--device") { Description = "cpu, cuda or opencl (default: $ILGPUTRAIN_DEVICE, else the best available)." };
        var only = new Option<string?>("--only") { Description = $"A comma list of row families to run: {string.Join(", ", BenchPlan.AllFamilies)} (default: all; models includes the memory rows)." };
        var noPeer = new Option<bool>("--no-peer") { Description = "Do not run the PyTorch peer even when it is installed." };
        var command = new Command("bench", "Measure kernels, the optimizer step and the Fashion-MNIST models on this device, next to PyTorch when it is installed.")
        {
            json, quick, synthetic, device, only, noPeer,
        };
        command.SetAction(parse => Run(
            parse.GetValue(json)!,
            parse.GetValue(quick),
            parse.GetValue(synthetic),
            parse.GetValue(device),
            parse.GetValue(only),
            parse.GetValue(noPeer)));
        return command;
    }

    private static int Run(string jsonPath, bool quick, bool synthetic, string? deviceText, string? only, bool noPeer)
    {
        var problems = new List<string>();
        if (!synthetic)
            problems.Add("--synthetic false: bench measures time on random inputs of Fashion-MNIST's shapes only; leave --synthetic on (the default).");
        DeviceKind kind = DeviceKind.Auto;
        try
        {
            kind = deviceText is null ? DeviceOptions.FromEnvironment().Kind : DeviceOptions.ParseKind(deviceText, "--device");
        }
        catch (ArgumentException e)
        {
            problems.Add(deviceText is null ? e.Message : $"--device {deviceText}: use cpu, cuda or opencl ({e.Message})");
        }

        var families = new HashSet<string>(BenchPlan.AllFamilies);
        if (only is not null)
        {
            var asked = only.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => s.ToLowerInvariant()).ToList();
            var unknown = asked.Where(a => !BenchPlan.AllFamilies.Contains(a)).ToList();
            if (asked.Count == 0 || unknown.Count > 0)
                problems.Add($"--only {only}: unknown row famil{(unknown.Count == 1 ? "y" : "ies")} {string.Join(", ", unknown)}; use a comma list of {string.Join(", ", BenchPlan.AllFamilies)}.");
            families = [.. asked];
        }

        if (string.IsNullOrWhiteSpace(jsonPath))
            problems.Add("--json: give a file path for the JSON table.");
        if (Cli.Fail(problems))
            return 2;

        return Cli.Guard(() =>
        {
            OutputFolder.RequireFile(jsonPath, "--json");
            var plan = new BenchPlan(kind, quick, families);
            var clock = Stopwatch.StartNew();
            var rows = BenchRunner.Run(plan, msg => Console.Error.WriteLine($"bench: {msg} ({clock.Elapsed.TotalSeconds:F1} s)"), out string deviceName);
            bool cuda = deviceName.StartsWith("cuda", StringComparison.Ordinal);
            var peer = noPeer ? PeerResult.Off("--no-peer") : RunPeer(plan, rows, cuda);
            rows = rows.Select(r => peer.Ms.TryGetValue(r.Name, out var ms) ? r with { PeerMs = ms } : r).ToList();

            Console.WriteLine(Table(rows, deviceName, plan, peer));
            OutputFolder.Writing(jsonPath, "JSON table", () => File.WriteAllText(jsonPath, JsonSerializer.Serialize(
                new
                {
                    device = deviceName,
                    quick,
                    synthetic,
                    families = BenchPlan.AllFamilies.Where(families.Contains),
                    peer = new { available = peer.Available, peer.Describe },
                    ratio = RatioNote,
                    seconds = clock.Elapsed.TotalSeconds,
                    rows = rows.Select(r => new { r.Family, r.Name, r.Ms, r.Value, r.Unit, r.VsCopy, r.PeerMs, r.Ratio, r.Skipped, r.Note }),
                },
                Json)));
            Console.WriteLine($"wrote {jsonPath}");
            return 0;
        });
    }

    /// <summary>The table as text: one line per row, the device, the peer and the ratio's meaning in the header.</summary>
    internal static string Table(IReadOnlyList<BenchRow> rows, string device, BenchPlan plan, PeerResult peer)
    {
        static string F(double? v, string fmt) => v is { } x ? x.ToString(fmt, CultureInfo.InvariantCulture) : "-";
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"ilgpu-train bench on {device}{(plan.Quick ? " (--quick)" : string.Empty)}; synthetic inputs; times are medians of synchronized calls after warm-up");
        sb.AppendLine(CultureInfo.InvariantCulture, $"peer: {peer.Describe}");
        sb.AppendLine(RatioNote);
        string header = $"{"row",-24} {"ms",10} {"value",10} {"unit",-9} {"vs copy",7} {"torch ms",10} {"ratio",7}  note";
        sb.AppendLine(header);
        sb.AppendLine(new string('-', header.Length + 20));
        foreach (var r in rows)
        {
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"{r.Name,-24} {F(r.Ms, r.Ms >= 100 ? "F0" : "F3"),10} {F(r.Value, r.Value >= 100 ? "F0" : "F2"),10} {r.Unit,-9} {F(r.VsCopy, "F2"),7} {F(r.PeerMs, r.PeerMs >= 100 ? "F0" : "F3"),10} {(r.Ratio is { } q ? q.ToString("F2", CultureInfo.InvariantCulture) + "x" : "-"),7}  {r.Note}");
        }

        return sb.ToString();
    }

    /// <summary>What the PyTorch peer returned: median ms by row name, or why it did not run.</summary>
    internal sealed record PeerResult(bool Available, string Describe, IReadOnlyDictionary<string, double> Ms)
    {
        public static PeerResult Off(string why) => new(false, $"none ({why})", new Dictionary<string, double>());
    }

    private const string Python = "/usr/bin/python3";

    private static PeerResult RunPeer(BenchPlan plan, IReadOnlyList<BenchRow> rows, bool cuda)
    {
        string script = Path.Combine(AppContext.BaseDirectory, "peer", "torch_bench.py");
        if (!File.Exists(script))
            return PeerResult.Off($"{script} is missing");
        if (!File.Exists(Python))
            return PeerResult.Off($"{Python} is missing");
        var specs = rows.Where(r => r.PeerSpec is not null && !r.Skipped)
            .Select(r => new Dictionary<string, object>(r.PeerSpec!) { ["name"] = r.Name })
            .ToList();
        if (specs.Count == 0)
            return PeerResult.Off("no row of this run has a PyTorch counterpart");
        string spec = JsonSerializer.Serialize(new { reps = plan.Reps, budget = plan.BudgetSeconds, rows = specs });
        var psi = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(script);
        psi.ArgumentList.Add(spec);
        // One thread is PyTorch's best on this class of machine, and what the GEMM target compares against.
        psi.Environment["THREADS"] = Environment.GetEnvironmentVariable("THREADS") ?? "1";
        psi.Environment["DEVICE"] = cuda ? "cuda" : "cpu";
        Console.Error.WriteLine($"bench: PyTorch peer ({specs.Count} rows)");
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(10)))
        {
            p.Kill(entireProcessTree: true);
            return PeerResult.Off("the peer script ran past 10 minutes");
        }

        string err = stderr.Result;
        if (p.ExitCode != 0)
        {
            string first = err.Split('\n').LastOrDefault(l => l.Trim().Length > 0) ?? $"exit {p.ExitCode}";
            return PeerResult.Off(first.Contains("No module named 'torch'", StringComparison.Ordinal) ? "PyTorch is not installed" : $"peer failed: {first.Trim()}");
        }

        if (err.Length > 0)
            Console.Error.Write(err);
        using var doc = JsonDocument.Parse(stdout.Result.Trim().Split('\n').Last());
        var root = doc.RootElement;
        var ms = root.GetProperty("ms").EnumerateObject().ToDictionary(e => e.Name, e => e.Value.GetDouble());
        return new PeerResult(true, $"PyTorch {root.GetProperty("torch").GetString()} on {root.GetProperty("device").GetString()}, {root.GetProperty("threads").GetInt32()} thread(s)", ms);
    }
}
