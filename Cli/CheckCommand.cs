using IlgpuTrain.Training;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using IlgpuTrain.Functional;
using IlgpuTrain.Kernels.Runtime;
using IlgpuTrain.Training.Conformance;

namespace IlgpuTrain.Cli;

/// <summary>
/// <c>ilgpu-train check</c>: the backend-conformance suite (<see cref="Suite"/>). Every kernel family
/// runs on the chosen device against its CPU reference on random inputs; one line per check, a
/// summary, and a non-zero exit when any check fails. This is what shows a CUDA or OpenCL backend computes what
/// the CPU does, on a machine that has the published CLI but no .NET SDK.
/// </summary>
internal static class CheckCommand
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    public static Command Create()
    {
        var device = new Option<string?>("--device") { Description = "cuda, opencl, cpu or cpu-kernels (ILGPU's GPU kernels on the CPU accelerator, in 16-thread groups; default: $ILGPUTRAIN_DEVICE, else the best available)." };
        var json = new Option<string?>("--json") { Description = "Also write the results as JSON to this path." };
        var quick = new Option<bool>("--quick") { Description = "Small sizes only (seconds on the CPU accelerator)." };
        var seed = new Option<int>("--seed") { Description = "Seed of the random inputs.", DefaultValueFactory = _ => 1234 };
        var command = new Command("check", "Backend conformance: every kernel family against its CPU reference on random inputs, on the chosen device.") { device, json, quick, seed };
        command.SetAction(parse => Cli.Guard(() => Run(parse.GetValue(device), parse.GetValue(json), new SuiteOptions { Quick = parse.GetValue(quick), Seed = parse.GetValue(seed) })));
        return command;
    }

    /// <summary>Runs the suite on the named device and prints it; 0 when every family has checks and all pass, 1 when not, 2 for a bad device.</summary>
    internal static int Run(string? deviceName, string? jsonPath, SuiteOptions options)
    {
        bool quick = options.Quick;
        int seed = options.Seed;
        if (jsonPath is not null)
            OutputFolder.RequireFile(jsonPath, "--json");
        ComputeDevice dev;
        try
        {
            dev = deviceName is null ? ComputeDevice.Create() : ComputeDevice.Create(DeviceOptions.Parse(deviceName, "--device"));
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or NotSupportedException)
        {
            Console.Error.WriteLine($"check: {e.Message}");
            return 2;
        }

        using (dev)
        {
            var sw = Stopwatch.StartNew();
            Console.WriteLine($"check on {dev}, {dev.Backend} backend ({(quick ? "quick" : "full")} sizes, seed {seed})");
            var results = Suite.Run(dev, options);
            foreach (var r in results)
            {
                string err = double.IsNaN(r.MaxError) ? "NaN" : r.MaxError.ToString("0.###E+0", CultureInfo.InvariantCulture);
                string tol = double.IsNaN(r.Tolerance) ? "-" : r.Tolerance.ToString("0.###E+0", CultureInfo.InvariantCulture);
                Console.WriteLine($"{(r.Passed ? "pass" : "FAIL")}  {r.Family,-13} {r.Name,-36} max err {err,-10} tol {tol,-10}{(r.Passed ? "" : "  " + r.Detail)}");
            }

            int failed = results.Count(r => !r.Passed);
            var families = results.Select(r => r.Family).Distinct().ToList();
            var missing = Suite.Families.Except(families).ToList();
            Console.WriteLine($"{results.Count - failed}/{results.Count} checks passed in {families.Count} families on {dev} in {sw.Elapsed.TotalSeconds:0.0} s; {failed} failed"
                + (missing.Count > 0 ? $"; families without checks: {string.Join(", ", missing)}" : ""));
            if (jsonPath is not null)
            {
                OutputFolder.Writing(jsonPath, "JSON report", () => File.WriteAllText(jsonPath, JsonSerializer.Serialize(new
                {
                    device = dev.ToString(),
                    backend = dev.Backend.ToString(),
                    quick,
                    seed,
                    seconds = sw.Elapsed.TotalSeconds,
                    passed = results.Count - failed,
                    failed,
                    checks = results.Select(r => new
                    {
                        r.Family,
                        r.Name,
                        maxError = double.IsFinite(r.MaxError) ? r.MaxError : (double?)null,
                        tolerance = double.IsFinite(r.Tolerance) ? r.Tolerance : (double?)null,
                        r.Passed,
                        r.Detail,
                    }),
                }, Json)));
            }

            return failed == 0 && missing.Count == 0 ? 0 : 1;
        }
    }
}
