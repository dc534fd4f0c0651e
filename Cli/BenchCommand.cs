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
        var rounds = new Option<int>("--rounds") { Description = "Rounds of every row, IlgpuTrain and PyTorch alternating group by group; the table gives the median and the range over the rounds.", DefaultValueFactory = _ => 3 };
        var profile = new Option<bool>("--profile") { Description = "Also time each model's train step op by op (forward, backward, the optimizer, uploads) and print where the time goes." };
        var compare = new Option<string?>("--compare") { Description = "An earlier bench.json: print each row's change against it (for A/B work on one machine)." };
        var command = new Command("bench", "Measure kernels, the optimizer step and the Fashion-MNIST models on this device, next to PyTorch when it is installed.")
        {
            json, quick, synthetic, device, only, noPeer, rounds, compare, profile,
        };
        command.SetAction(parse => Run(
            parse.GetValue(json)!,
            parse.GetValue(quick),
            parse.GetValue(synthetic),
            parse.GetValue(device),
            parse.GetValue(only),
            parse.GetValue(noPeer),
            parse.GetValue(rounds),
            parse.GetValue(compare),
            parse.GetValue(profile)));
        return command;
    }

    /// <summary>The most rounds a run may ask for.</summary>
    public const int MaxRounds = 50;

    private static int Run(string jsonPath, bool quick, bool synthetic, string? deviceText, string? only, bool noPeer, int rounds, string? comparePath, bool profile)
    {
        var problems = new List<string>();
        if (rounds < 1 || rounds > MaxRounds)
            problems.Add($"--rounds {rounds}: give 1 to {MaxRounds} rounds (3, the default, shows the spread; 1 is quickest).");
        BenchReference? reference = null;
        if (comparePath is not null)
        {
            try
            {
                reference = BenchReference.Load(comparePath);
            }
            catch (InvalidDataException e)
            {
                problems.Add($"--compare {comparePath}: {e.Message}");
            }
        }

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

        var families = BenchPlan.ParseFamilies(only, "--only", problems);

        if (string.IsNullOrWhiteSpace(jsonPath))
            problems.Add("--json: give a file path for the JSON table.");
        if (Cli.Fail(problems))
            return 2;

        return Cli.Guard(() =>
        {
            OutputFolder.RequireFile(jsonPath, "--json");
            if (profile && !families.Contains("models"))
                Console.Error.WriteLine("bench: --profile times the model rows, and --only leaves them out; nothing to profile.");
            var plan = new BenchPlan(kind, quick, families) { Rounds = rounds, Profile = profile };
            var clock = Stopwatch.StartNew();
            var rows = BenchRunner.Run(
                plan,
                msg => Console.Error.WriteLine($"bench: {msg} ({clock.Elapsed.TotalSeconds:F1} s)"),
                device => noPeer ? PeerSession.Off(plan, "--no-peer") : PeerSession.Start(plan, cuda: device.Accelerator.AcceleratorType == ILGPU.Runtime.AcceleratorType.Cuda),
                out string deviceName,
                out var started);
            using var peer = started;

            Console.WriteLine(Table(rows, deviceName, plan, peer.Describe));
            foreach (var r in rows.Where(r => r.Profile is not null))
            {
                Console.WriteLine($"{r.Name}, op by op (mean of {r.Profile!.Steps} synchronized steps; an op's forward is the time since the previous recorded op):");
                Console.WriteLine(r.Profile.Table());
            }

            if (reference is not null)
                Console.WriteLine(reference.Compare(rows, deviceName));
            OutputFolder.Writing(jsonPath, "JSON table", () => File.WriteAllText(jsonPath, JsonSerializer.Serialize(
                new
                {
                    device = deviceName,
                    quick,
                    synthetic,
                    rounds,
                    families = BenchPlan.AllFamilies.Where(families.Contains),
                    peer = new { available = peer.Ran, describe = peer.Describe },
                    ratio = RatioNote,
                    seconds = clock.Elapsed.TotalSeconds,
                    rows = JsonRows(rows),
                    profiles = rows.Where(r => r.Profile is not null).ToDictionary(r => r.Name, r => new
                    {
                        r.Profile!.Steps,
                        msPerStep = r.Profile.TotalMs / Math.Max(1, r.Profile.Steps),
                        ops = r.Profile.Ops.Select(o => new { o.Op, o.ForwardMs, o.ForwardCalls, o.BackwardMs, o.BackwardCalls, o.OtherMs, o.OtherCalls }),
                    }),
                },
                Json)));
            Console.WriteLine($"wrote {jsonPath}");
            return 0;
        });
    }

    /// <summary>The rows as the JSON of bench.json (and of gpu-report's bench part) writes them.</summary>
    internal static IEnumerable<object> JsonRows(IEnumerable<BenchRow> rows) =>
        rows.Select(r => new { r.Family, r.Name, r.Ms, r.Value, r.Unit, r.VsCopy, r.PeerMs, r.Ratio, r.MsSpread, r.PeerSpread, r.RatioSpread, r.Skipped, r.Note });

    /// <summary>The table as text: one line per row, the device, the peer and the ratio's meaning in the header; with several rounds, each median has its range over the rounds.</summary>
    internal static string Table(IReadOnlyList<BenchRow> rows, string device, BenchPlan plan, string peer)
    {
        static string F(double? v) => v is { } x ? x.ToString(x >= 100 ? "F0" : x >= 10 ? "F1" : "F3", CultureInfo.InvariantCulture) : "-";
        static string WithRange(double? median, Spread? spread) =>
            spread is { Count: > 1 } s ? $"{F(median)} [{F(s.Min)}-{F(s.Max)}]" : F(median);
        static string Ratio(BenchRow r) => r.Ratio is not { } q ? "-"
            : r.RatioSpread is { Count: > 1 } s ? string.Create(CultureInfo.InvariantCulture, $"{q:F2}x [{s.Min:F2}-{s.Max:F2}]")
            : string.Create(CultureInfo.InvariantCulture, $"{q:F2}x");
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"ilgpu-train bench on {device}{(plan.Quick ? " (--quick)" : string.Empty)}; synthetic inputs; times are medians of synchronized calls after warm-up");
        if (plan.Rounds > 1)
            sb.AppendLine(CultureInfo.InvariantCulture, $"{plan.Rounds} rounds, IlgpuTrain and the peer alternating; each figure is the median over the rounds [least-most], the ratio the median of the rounds' ratios");
        sb.AppendLine(CultureInfo.InvariantCulture, $"peer: {peer}");
        sb.AppendLine(RatioNote);
        bool spread = rows.Any(r => r.MsSpread is { Count: > 1 });
        int msWidth = spread ? 22 : 10, ratioWidth = spread ? 20 : 7;
        string header = $"{"row",-24} {"ms".PadLeft(msWidth)} {"value",10} {"unit",-9} {"vs copy",7} {"torch ms".PadLeft(msWidth)} {"ratio".PadLeft(ratioWidth)}  note";
        sb.AppendLine(header);
        sb.AppendLine(new string('-', header.Length + 20));
        foreach (var r in rows)
        {
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"{r.Name,-24} {WithRange(r.Ms, r.MsSpread).PadLeft(msWidth)} {F(r.Value),10} {r.Unit,-9} {(r.VsCopy is { } v ? v.ToString("F2", CultureInfo.InvariantCulture) : "-"),7} {WithRange(r.PeerMs, r.PeerSpread).PadLeft(msWidth)} {Ratio(r).PadLeft(ratioWidth)}  {r.Note}");
        }

        return sb.ToString();
    }
}
