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
        var (_, output, _, rows, root) = Bench("--only", "copy,elementwise,reductions", "--no-peer");
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
        var (_, output, _, rows, _) = Bench("--only", "gemm,optimizer", "--no-peer");
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
        var (_, output, _, rows, root) = Bench("--only", "copy");
        var copy = Row(rows, "copy ");
        Assert.Equal(torch, root.GetProperty("peer").GetProperty("available").GetBoolean());
        if (!torch)
        {
            Assert.Equal(JsonValueKind.Null, copy.GetProperty("peerMs").ValueKind);
            return;
        }

        double peer = Num(copy, "peerMs");
        Assert.True(peer > 0, $"peer {peer} ms");
        Assert.Equal(Num(copy, "ms") / peer, Num(copy, "ratio"), 9);
        Assert.Contains("PyTorch", output);
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
