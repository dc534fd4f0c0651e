using System.Text.Json;
using IlgpuTrain.Cli;

namespace IlgpuTrain.Properties.Cli;

/// <summary>
/// <c>ilgpu-train bench</c> as a user runs it: a quick run of the cheap row families prints the
/// table and writes JSON with those rows and sane figures; the PyTorch peer, where installed, fills
/// in its times and the ratios; bad options exit 2 with a message before anything is measured.
/// </summary>
[Collection(ProcessState.Name)]
public class BenchCommandProperties
{
    private static (int Code, string Out, string Err) Run(params string[] args) => CliRun.Invoke(args);

    private static (int Code, string Out, string Err, JsonElement[] Rows, JsonElement Root) Bench(params string[] args)
    {
        string dir = Directory.CreateTempSubdirectory("ilgpu-bench-").FullName;
        try
        {
            string json = Path.Combine(dir, "sub", "bench.json");
            var (code, o, e) = Run(["bench", "--quick", "--device", "cpu", "--json", json, .. args]);
            Assert.True(code == 0, $"exit {code}: {e}");
            using var doc = JsonDocument.Parse(File.ReadAllText(json));
            var root = doc.RootElement.Clone();
            return (code, o, e, root.GetProperty("rows").EnumerateArray().ToArray(), root);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static JsonElement Row(JsonElement[] rows, string prefix) =>
        Assert.Single(rows, r => r.GetProperty("name").GetString()!.StartsWith(prefix, StringComparison.Ordinal));

    private static double Num(JsonElement row, string name) => row.GetProperty(name).GetDouble();

    [Fact]
    public void Quick_kernel_rows_print_a_table_and_write_every_row_as_json()
    {
        var (_, output, _, rows, root) = Bench("--only", "copy,elementwise,reductions", "--no-peer", "--rounds", "1");
        Assert.Equal(["copy", "elementwise", "reductions"], root.GetProperty("families").EnumerateArray().Select(f => f.GetString()));
        Assert.StartsWith("cpu", root.GetProperty("device").GetString());
        Assert.False(root.GetProperty("peer").GetProperty("available").GetBoolean());
        Assert.Equal(6, rows.Length);
        double copy = Num(Row(rows, "copy "), "value");
        Assert.True(copy > 0 && double.IsFinite(copy), $"copy {copy} GB/s");
        foreach (var name in new[] { "axpy ", "add ", "relu ", "sum ", "l2norm " })
        {
            var r = Row(rows, name);
            double ms = Num(r, "ms"), gbs = Num(r, "value");
            Assert.True(ms > 0 && gbs > 0 && double.IsFinite(gbs), $"{name}: {ms} ms, {gbs} GB/s");
            Assert.Equal("GB/s", r.GetProperty("unit").GetString());
            Assert.Equal(gbs / copy, Num(r, "vsCopy"), 9);
            Assert.Equal(JsonValueKind.Null, r.GetProperty("ratio").ValueKind);
            Assert.Contains(r.GetProperty("name").GetString()!, output);
        }

        // The bytes counted are the kernel headers': axpy 12 B per element over 2^20 elements.
        var axpy = Row(rows, "axpy ");
        Assert.Equal(12.0 * (1 << 20) / (Num(axpy, "ms") * 1e6), Num(axpy, "value"), 6);
        Assert.Contains(BenchCommand.RatioNote, output);
    }

    [Fact]
    public void Quick_gemm_and_optimizer_rows_skip_4096_cubed_with_the_reason()
    {
        var (_, output, _, rows, _) = Bench("--only", "gemm,optimizer", "--no-peer", "--rounds", "1");
        Assert.Equal(4, rows.Length);
        foreach (var name in new[] { "gemm 256x784x256", "gemm 1024x1024x1024" })
        {
            var r = Row(rows, name);
            Assert.Equal(2.0 * r.GetProperty("name").GetString()!.Split(' ')[1].Split('x').Select(double.Parse).Aggregate((a, b) => a * b) / (Num(r, "ms") * 1e6), Num(r, "value"), 6);
        }

        var big = Row(rows, "gemm 4096");
        Assert.True(big.GetProperty("skipped").GetBoolean());
        Assert.Contains("--quick", big.GetProperty("note").GetString());
        var adam = Row(rows, "adamw 1M");
        Assert.Equal(28.0 * (1 << 20) / (Num(adam, "ms") * 1e6), Num(adam, "value"), 6);
        Assert.Contains("skipped: --quick", output);
    }

    [Fact]
    public void The_pytorch_peer_fills_in_its_times_and_the_ratios_when_installed()
    {
        bool torch = File.Exists("/usr/bin/python3") && RunsOk("/usr/bin/python3", "-c", "import torch");
        var (_, output, err, rows, root) = Bench("--only", "copy", "--rounds", "2");
        var copy = Row(rows, "copy ");
        Assert.Equal(torch, root.GetProperty("peer").GetProperty("available").GetBoolean());
        if (!torch)
        {
            Assert.Equal(JsonValueKind.Null, copy.GetProperty("peerMs").ValueKind);
            return;
        }

        double peer = Num(copy, "peerMs");
        Assert.True(peer > 0, $"peer {peer} ms");
        var peerSpread = copy.GetProperty("peerSpread");
        Assert.Equal(2, peerSpread.GetProperty("count").GetInt32());
        Assert.Equal((Num(peerSpread, "min") + Num(peerSpread, "max")) / 2, peer, 12);

        // The ratio is the median of the rounds' own ratios (each taken a moment apart), inside their range.
        var ratios = copy.GetProperty("ratioSpread");
        Assert.Equal(2, ratios.GetProperty("count").GetInt32());
        Assert.Equal(Num(ratios, "median"), Num(copy, "ratio"), 12);
        Assert.InRange(Num(copy, "ratio"), Num(ratios, "min"), Num(ratios, "max"));
        Assert.Contains("PyTorch", output);

        // Interleaved: the peer measures round 1's copy before IlgpuTrain starts round 2.
        int peerFirst = err.IndexOf("PyTorch peer (copy", StringComparison.Ordinal);
        int oursSecond = err.IndexOf("round 2/2: copy", StringComparison.Ordinal);
        Assert.True(peerFirst >= 0 && oursSecond > peerFirst, err);
        Assert.True(err.IndexOf("PyTorch peer (copy", oursSecond, StringComparison.Ordinal) > oursSecond, err);
    }

    [Fact]
    public void Rounds_give_each_row_its_median_and_range_and_keep_throughput_consistent_with_the_median()
    {
        var (_, output, _, rows, root) = Bench("--only", "copy,elementwise", "--no-peer", "--rounds", "3");
        Assert.Equal(3, root.GetProperty("rounds").GetInt32());
        Assert.Equal(4, rows.Length);
        double copy = Num(Row(rows, "copy "), "value");
        foreach (var r in rows)
        {
            var s = r.GetProperty("msSpread");
            Assert.Equal(3, s.GetProperty("count").GetInt32());
            double ms = Num(r, "ms");
            Assert.Equal(Num(s, "median"), ms, 12);
            Assert.True(Num(s, "min") <= ms && ms <= Num(s, "max"), r.ToString());
            Assert.Contains($"[{FormatMs(Num(s, "min"))}-{FormatMs(Num(s, "max"))}]", output);
        }

        // Throughput follows the median time: axpy counts 12 B per element over 2^20 elements.
        var axpy = Row(rows, "axpy ");
        Assert.Equal(12.0 * (1 << 20) / (Num(axpy, "ms") * 1e6), Num(axpy, "value"), 6);
        Assert.Equal(Num(axpy, "value") / copy, Num(axpy, "vsCopy"), 9);
        Assert.Contains("3 rounds", output);
    }

    [Fact]
    public void Profile_times_each_model_step_op_by_op_and_the_pieces_add_up()
    {
        var (_, output, _, rows, root) = Bench("--only", "models", "--no-peer", "--rounds", "1", "--profile");
        var profiles = root.GetProperty("profiles");
        foreach (var model in new[] { "mlp", "cnn", "transformer" })
        {
            var p = profiles.GetProperty($"{model} train step");
            Assert.Equal(5, p.GetProperty("steps").GetInt32());
            var ops = p.GetProperty("ops").EnumerateArray().ToList();
            string[] names = [.. ops.Select(o => o.GetProperty("op").GetString()!)];
            Assert.Contains("Linear", names);
            Assert.Contains("CrossEntropy", names);
            Assert.Contains("optimizer (clip, AdamW)", names);
            if (model == "cnn")
                Assert.Contains("Conv2d", names);
            if (model == "transformer")
                Assert.Contains("ScaledDotProductAttention", names);
            double sum = ops.Sum(o => Num(o, "forwardMs") + Num(o, "backwardMs") + Num(o, "otherMs"));
            Assert.Equal(sum / 5, Num(p, "msPerStep"), 6);
            var linear = ops.Single(o => o.GetProperty("op").GetString() == "Linear");
            Assert.Equal(linear.GetProperty("forwardCalls").GetInt32(), linear.GetProperty("backwardCalls").GetInt32());
            Assert.Contains($"{model} train step, op by op", output);
        }

        Assert.Equal(12, rows.Length);
    }

    private static string FormatMs(double v) => v.ToString(v >= 100 ? "F0" : v >= 10 ? "F1" : "F3", System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public void Compare_prints_each_rows_change_and_a_verdict_only_when_the_ranges_separate()
    {
        string dir = Directory.CreateTempSubdirectory("ilgpu-bench-ref-").FullName;
        try
        {
            // A reference far slower than any real copy (1e6 ms, a tight range over 3 rounds) and one far faster.
            string slow = Path.Combine(dir, "slow.json"), fast = Path.Combine(dir, "fast.json");
            static string Ref(double ms) => JsonSerializer.Serialize(new
            {
                device = "cpu: reference",
                rows = new object[]
                {
                    new { name = "copy 1048576", ms, ratio = 0.5, msSpread = new { median = ms, min = ms, max = ms * 1.01, count = 3 } },
                    new { name = "gone 1", ms = 1.0, ratio = (double?)null, msSpread = (object?)null },
                },
            });
            File.WriteAllText(slow, Ref(1e6));
            File.WriteAllText(fast, Ref(1e-9));
            var (_, outSlow, _, _, _) = Bench("--only", "copy", "--no-peer", "--rounds", "2", "--compare", slow);
            var line = Assert.Single(outSlow.Split('\n'), l => l.StartsWith("copy 1048576", StringComparison.Ordinal) && l.EndsWith("faster", StringComparison.Ordinal));
            Assert.Contains("-100.0%", line);
            Assert.Contains("0.50x", line);
            Assert.Contains("not in this run: gone 1", outSlow);
            Assert.Contains("note: the reference ran on cpu: reference", outSlow);

            var (_, outFast, _, _, _) = Bench("--only", "copy", "--no-peer", "--rounds", "2", "--compare", fast);
            Assert.Contains(outFast.Split('\n'), l => l.StartsWith("copy 1048576", StringComparison.Ordinal) && l.EndsWith("slower", StringComparison.Ordinal));

            // One round on either side: the change is printed, no verdict is made up.
            var (_, outOne, _, _, _) = Bench("--only", "copy", "--no-peer", "--rounds", "1", "--compare", slow);
            Assert.Contains(outOne.Split('\n'), l => l.StartsWith("copy 1048576", StringComparison.Ordinal) && l.EndsWith("(one round: no range)", StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("", "no such file")]
    [InlineData("{ not json", "not JSON")]
    [InlineData("{\"device\": \"cpu\"}", "no \"rows\" array")]
    [InlineData("{\"rows\": [{\"name\": \"copy 1\", \"ms\": null}]}", "no timed rows")]
    [InlineData("{\"rows\": [{\"name\": \"copy 1\", \"ms\": 1, \"msSpread\": {\"min\": 1}}]}", "msSpread without min, max and count")]
    public void A_bad_compare_file_exits_2_naming_the_problem_before_anything_is_measured(string content, string expected)
    {
        string dir = Directory.CreateTempSubdirectory("ilgpu-bench-bad-").FullName;
        try
        {
            string reference = Path.Combine(dir, "ref.json");
            if (content.Length > 0)
                File.WriteAllText(reference, content);
            string json = Path.Combine(dir, "out.json");
            var (code, _, err) = Run("bench", "--quick", "--only", "copy", "--no-peer", "--compare", reference, "--json", json);
            Assert.Equal(2, code);
            Assert.Contains("--compare", err);
            Assert.Contains(expected, err);
            Assert.False(File.Exists(json));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static bool RunsOk(string file, params string[] args)
    {
        using var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo(file, args) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        p.WaitForExit(60_000);
        return p.HasExited && p.ExitCode == 0;
    }

    [Theory]
    [InlineData("--only", "gemm,fft", "fft")]
    [InlineData("--only", ",", "--only")]
    [InlineData("--device", "tpu", "--device tpu")]
    [InlineData("--synthetic", "false", "--synthetic false")]
    [InlineData("--rounds", "0", "--rounds 0")]
    [InlineData("--rounds", "51", "--rounds 51")]
    public void Bad_options_exit_2_with_a_message_naming_them(string option, string value, string expected)
    {
        string json = Path.Combine(Path.GetTempPath(), $"ilgpu-bench-never-{Guid.NewGuid():N}.json");
        var (code, _, err) = Run("bench", option, value, "--json", json);
        Assert.Equal(2, code);
        Assert.Contains(expected, err);
        Assert.False(File.Exists(json));
    }

    [Fact]
    public void Unparsable_options_are_refused_by_the_parser()
    {
        var (code, _, err) = Run("bench", "--quick", "often");
        Assert.NotEqual(0, code);
        Assert.Contains("often", err);
    }
}
