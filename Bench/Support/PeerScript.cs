using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace IlgpuTrain.Bench.Support;

/// <summary>Runs a PyTorch peer script of Bench/peer with Debian's python3 and reads its medians.</summary>
internal static class PeerScript
{
    /// <summary>
    /// Runs <c>peer/<paramref name="script"/> reps</c> (THREADS from the environment, else 1) and parses its last
    /// output line, {"torch": version, ["device": str,] "threads": int, "ms": {row: median ms}}.
    /// </summary>
    /// <param name="script">The script's file name, such as torch_layers.py.</param>
    /// <param name="reps">Timed repetitions per row.</param>
    /// <returns>A description of the peer (or why it did not run) and its medians by row name.</returns>
    public static (string Describe, Dictionary<string, double> Ms) Run(string script, int reps)
    {
        string path = Path.Combine(AppContext.BaseDirectory, "peer", script);
        if (!File.Exists(path) || !File.Exists("/usr/bin/python3"))
            return ("not run (no /usr/bin/python3 or script)", new());
        var psi = new ProcessStartInfo("/usr/bin/python3", [path, reps.ToString(CultureInfo.InvariantCulture)])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        psi.Environment["THREADS"] = Environment.GetEnvironmentVariable("THREADS") ?? "1";
        using var proc = Process.Start(psi)!;
        string output = proc.StandardOutput.ReadToEnd();
        string err = proc.StandardError.ReadToEnd();
        proc.WaitForExit();
        if (proc.ExitCode != 0)
            return ($"failed: {err.Split('\n').LastOrDefault(l => l.Length > 0)}", new());
        using var doc = JsonDocument.Parse(output.Trim().Split('\n')[^1]);
        var root = doc.RootElement;
        var ms = root.GetProperty("ms").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetDouble());
        string device = root.TryGetProperty("device", out var d) ? " " + d.GetString() : string.Empty;
        return ($"PyTorch {root.GetProperty("torch").GetString()}{device}, {root.GetProperty("threads").GetInt32()} thread(s)", ms);
    }
}
