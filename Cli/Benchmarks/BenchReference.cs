using System.Globalization;
using System.Text;
using System.Text.Json;

namespace IlgpuTrain.Cli.Benchmarks;

/// <summary>
/// An earlier <c>bench.json</c>, read for <c>bench --compare</c>: each row's time (with its range
/// over the rounds when it had several) and its ratio against the peer, by row name.
/// </summary>
/// <param name="Path">The file it came from.</param>
/// <param name="Device">The device it was measured on.</param>
/// <param name="Rows">Its timed rows by name.</param>
internal sealed record BenchReference(string Path, string Device, IReadOnlyDictionary<string, BenchReference.Row> Rows)
{
    /// <summary>One timed row of the reference.</summary>
    /// <param name="Ms">Median milliseconds.</param>
    /// <param name="Min">Least milliseconds over its rounds (the median when it had one round).</param>
    /// <param name="Max">Greatest milliseconds over its rounds.</param>
    /// <param name="Rounds">How many rounds gave the median.</param>
    /// <param name="Ratio">Its ratio against the peer, if the peer ran.</param>
    internal sealed record Row(double Ms, double Min, double Max, int Rounds, double? Ratio);

    /// <summary>Reads a bench.json; <see cref="InvalidDataException"/> says what is wrong with the file.</summary>
    public static BenchReference Load(string path)
    {
        if (!File.Exists(path))
            throw new InvalidDataException("no such file; give the bench.json of an earlier `ilgpu-train bench` run (its --json).");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"not JSON ({e.Message}); give the bench.json of an earlier `ilgpu-train bench` run.");
        }

        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("rows", out var rows) || rows.ValueKind != JsonValueKind.Array)
                throw new InvalidDataException("has no \"rows\" array, so it is not a bench.json; give the --json file of an earlier `ilgpu-train bench` run.");
            string device = root.TryGetProperty("device", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString()! : "an unknown device";
            var byName = new Dictionary<string, Row>();
            foreach (var r in rows.EnumerateArray())
            {
                if (r.ValueKind != JsonValueKind.Object || !r.TryGetProperty("name", out var n) || n.ValueKind != JsonValueKind.String)
                    throw new InvalidDataException("a row has no \"name\"; give an unedited bench.json.");
                if (!Number(r, "ms", out double ms))
                    continue;
                double min = ms, max = ms;
                int count = 1;
                if (r.TryGetProperty("msSpread", out var s) && s.ValueKind == JsonValueKind.Object)
                {
                    if (!Number(s, "min", out min) || !Number(s, "max", out max) || !s.TryGetProperty("count", out var c) || !c.TryGetInt32(out count))
                        throw new InvalidDataException($"row '{n.GetString()}' has an msSpread without min, max and count; give an unedited bench.json.");
                }

                byName[n.GetString()!] = new Row(ms, min, max, count, Number(r, "ratio", out double ratio) ? ratio : null);
            }

            if (byName.Count == 0)
                throw new InvalidDataException("has no timed rows to compare against; run bench with the row families you want to compare (--only).");
            return new BenchReference(path, device, byName);
        }
    }

    private static bool Number(JsonElement e, string name, out double value)
    {
        value = 0;
        return e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out value);
    }

    /// <summary>
    /// The change of each row both runs timed: reference and new median, the change in percent,
    /// both ratios against the peer, and a verdict where both runs have ranges: "faster" or "slower"
    /// when the ranges do not overlap, else "within the spread".
    /// </summary>
    public string Compare(IReadOnlyList<BenchRow> rows, string device)
    {
        static string F(double v) => v.ToString(v >= 100 ? "F0" : v >= 10 ? "F1" : "F3", CultureInfo.InvariantCulture);
        static string R(double? v) => v is { } x ? x.ToString("F2", CultureInfo.InvariantCulture) + "x" : "-";
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"change against {Path} ({Device}); change = this run's median / the reference's - 1");
        if (Device != device)
            sb.AppendLine(CultureInfo.InvariantCulture, $"note: the reference ran on {Device}, this run on {device}; the change mixes the devices' difference in");
        string header = $"{"row",-24} {"ref ms",10} {"ms",10} {"change",8} {"ref ratio",9} {"ratio",7}  verdict";
        sb.AppendLine(header);
        sb.AppendLine(new string('-', header.Length + 10));
        foreach (var r in rows)
        {
            if (r.Ms is not { } ms || !Rows.TryGetValue(r.Name, out var old))
                continue;
            double change = (ms / old.Ms) - 1;
            var spread = r.MsSpread ?? new Spread(ms, ms, ms, 1);
            string verdict = old.Rounds < 2 || spread.Count < 2 ? "(one round: no range)"
                : spread.Max < old.Min ? "faster"
                : spread.Min > old.Max ? "slower"
                : "within the spread";
            sb.AppendLine(CultureInfo.InvariantCulture, $"{r.Name,-24} {F(old.Ms),10} {F(ms),10} {change,8:+0.0%;-0.0%;0.0%} {R(old.Ratio),9} {R(r.Ratio),7}  {verdict}");
        }

        var missing = Rows.Keys.Where(k => rows.All(r => r.Name != k)).ToList();
        if (missing.Count > 0)
            sb.AppendLine(CultureInfo.InvariantCulture, $"not in this run: {string.Join(", ", missing)}");
        var added = rows.Where(r => r.Ms is not null && !Rows.ContainsKey(r.Name)).Select(r => r.Name).ToList();
        if (added.Count > 0)
            sb.AppendLine(CultureInfo.InvariantCulture, $"not in the reference: {string.Join(", ", added)}");
        return sb.ToString();
    }
}
