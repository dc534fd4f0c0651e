using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using IlgpuTrain.Cli.Benchmarks;
using IlgpuTrain.Functional;
using IlgpuTrain.Training;
using IlgpuTrain.Training.Conformance;

namespace IlgpuTrain.Cli;

/// <summary>
/// <c>ilgpu-train gpu-report</c>: everything a first session on a GPU machine should bring back, in
/// one command and one JSON file: the devices ILGPU sees, the conformance suite on the device, the
/// bench next to the PyTorch peer on the same device, and a one-epoch training of the Fashion-MNIST
/// MLP and CNN (on the real data when it is there, else on random data of its shapes, which times
/// the steps just as well). Each part that fails is recorded with its error and the others still run;
/// the exit code is 1 when any part or check failed, 2 for bad options or a missing device.
/// </summary>
internal static class GpuReportCommand
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The models trained for one epoch.</summary>
    internal static readonly string[] Models = ["mlp", "cnn"];

    public static Command Create()
    {
        var device = new Option<string>("--device") { Description = "The device to report on: cuda (the default), opencl, cpu or cpu-kernels (to try the report on a machine without a GPU).", DefaultValueFactory = _ => "cuda" };
        var output = new Option<string>("--output") { Description = "Where to write the JSON report.", DefaultValueFactory = _ => "gpu-report.json" };
        var data = new Option<string?>("--data") { Description = "Fashion-MNIST's folder for the training runs (default: the usual places; where none has it, they train on random data of its shapes)." };
        var synthetic = new Option<bool>("--synthetic") { Description = "Train on random data of Fashion-MNIST's shapes even where the data set is installed (step times do not depend on the values)." };
        var quick = new Option<bool>("--quick") { Description = "Quick check sizes and a quick bench (no 4096^3 GEMM, no 25M-parameter step)." };
        var rounds = new Option<int>("--rounds") { Description = "Bench rounds (IlgpuTrain and the peer alternating).", DefaultValueFactory = _ => 3 };
        var benchOnly = new Option<string?>("--bench-only") { Description = $"A comma list of bench row families: {string.Join(", ", BenchPlan.AllFamilies)} (default: all)." };
        var trainLimit = new Option<int>("--train-limit") { Description = "Train on the first N samples only (0: all 60,000).", DefaultValueFactory = _ => 0 };
        var command = new Command("gpu-report", "On a GPU machine: devices, check, bench with the PyTorch peer and a one-epoch MLP and CNN training, in one JSON file.")
        {
            device, output, data, synthetic, quick, rounds, benchOnly, trainLimit,
        };
        command.SetAction(parse => Run(
            parse.GetValue(device)!,
            parse.GetValue(output)!,
            parse.GetValue(data),
            parse.GetValue(synthetic),
            parse.GetValue(quick),
            parse.GetValue(rounds),
            parse.GetValue(benchOnly),
            parse.GetValue(trainLimit)));
        return command;
    }

    private static int Run(string deviceText, string outputPath, string? dataDir, bool synthetic, bool quick, int rounds, string? benchOnly, int trainLimit)
    {
        var problems = new List<string>();
        if (synthetic && dataDir is not null)
            problems.Add($"--synthetic with --data {dataDir}: choose one: --data trains on that folder's Fashion-MNIST, --synthetic on random data.");
        DeviceOptions? options = null;
        try
        {
            options = DeviceOptions.Parse(deviceText, "--device");
        }
        catch (ArgumentException e)
        {
            problems.Add($"--device {deviceText}: {e.Message}");
        }

        if (rounds < 1 || rounds > BenchCommand.MaxRounds)
            problems.Add($"--rounds {rounds}: give 1 to {BenchCommand.MaxRounds} rounds.");
        if (trainLimit < 0)
            problems.Add($"--train-limit {trainLimit}: give 0 (all samples) or a positive count.");
        var families = BenchPlan.ParseFamilies(benchOnly, "--bench-only", problems);

        if (string.IsNullOrWhiteSpace(outputPath))
            problems.Add("--output: give a file path for the JSON report.");
        if (Cli.Fail(problems))
            return 2;

        return Cli.Guard(() =>
        {
            OutputFolder.RequireFile(outputPath, "--output");
            var clock = Stopwatch.StartNew();
            void Log(string msg) => Console.Error.WriteLine($"gpu-report: {msg} ({clock.Elapsed.TotalSeconds:F1} s)");

            var found = ComputeDevice.Describe();
            var devices = DevicesCommand.Json(found);
            Console.WriteLine(found);

            ComputeDevice device;
            try
            {
                device = ComputeDevice.Create(options!);
            }
            catch (Exception e) when (e is DeviceUnavailableException or InvalidOperationException or NotSupportedException)
            {
                Console.Error.WriteLine($"gpu-report: --device {deviceText}: {e.Message} gpu-report is meant for a machine with that device; on this one, try it with --device cpu.");
                return 2;
            }

            object check, bench;
            var training = new List<object>();
            var failures = new List<string>();
            string deviceName;
            using (device)
            {
                deviceName = device.ToString();
                Log($"check on {deviceName}");
                check = Part("check", failures, () => Check(device, quick, failures));
                Log("bench");
                var plan = new BenchPlan(options!.Kind, quick, families) { Rounds = rounds };
                bench = Part("bench", failures, () => Bench(plan, device, Log));
                foreach (var model in Models)
                {
                    Log($"one epoch of the {model}");
                    training.Add(Part($"the {model} epoch", failures, () => Train(model, device, deviceText, dataDir, synthetic, trainLimit)));
                }
            }

            var report = new
            {
                tool = "ilgpu-train gpu-report",
                version = typeof(GpuReportCommand).Assembly.GetName().Version?.ToString(),
                when = DateTimeOffset.UtcNow,
                machine = new { os = Environment.OSVersion.ToString(), cores = Environment.ProcessorCount, dotnet = Environment.Version.ToString() },
                device = deviceName,
                quick,
                seconds = clock.Elapsed.TotalSeconds,
                devices,
                check,
                bench,
                training,
                failures,
            };
            OutputFolder.Writing(outputPath, "JSON report", () => File.WriteAllText(outputPath, JsonSerializer.Serialize(report, Json)));
            Console.WriteLine($"wrote {outputPath}");
            if (failures.Count == 0)
                return 0;
            Console.Error.WriteLine($"gpu-report: {string.Join("; ", failures)} (the report has the details)");
            return 1;
        });
    }

    /// <summary>Runs one part; an exception becomes the part's recorded error (and a failure), so the other parts still run.</summary>
    private static object Part(string name, List<string> failures, Func<object> run)
    {
        try
        {
            return run();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            Console.Error.WriteLine($"gpu-report: {name} failed: {e.GetType().Name}: {e.Message}");
            failures.Add($"{name} failed: {e.Message}");
            return new { error = $"{e.GetType().Name}: {e.Message}" };
        }
    }

    private static object Check(ComputeDevice device, bool quick, List<string> failures)
    {
        var sw = Stopwatch.StartNew();
        var results = Suite.Run(device, new SuiteOptions { Quick = quick });
        int failed = results.Count(r => !r.Passed);
        var missing = Suite.Families.Except(results.Select(r => r.Family)).ToList();
        Console.WriteLine($"check: {results.Count - failed}/{results.Count} passed, {failed} failed{(missing.Count > 0 ? $"; families without checks: {string.Join(", ", missing)}" : string.Empty)}");
        if (failed > 0 || missing.Count > 0)
            failures.Add($"check: {failed} of {results.Count} checks failed{(missing.Count > 0 ? $", {missing.Count} families without checks" : string.Empty)}");
        return new
        {
            passed = results.Count - failed,
            failed,
            seconds = sw.Elapsed.TotalSeconds,
            familiesWithoutChecks = missing,
            failures = results.Where(r => !r.Passed).Select(r => new { r.Family, r.Name, maxError = double.IsFinite(r.MaxError) ? r.MaxError : (double?)null, r.Detail }),
        };
    }

    private static object Bench(BenchPlan plan, ComputeDevice device, Action<string> log)
    {
        bool cuda = device.Accelerator.AcceleratorType == ILGPU.Runtime.AcceleratorType.Cuda;
        var rows = BenchRunner.Run(plan, log, _ => PeerSession.Start(plan, cuda), out string deviceName, out var started);
        using var peer = started;
        Console.WriteLine(BenchCommand.Table(rows, deviceName, plan, peer.Describe));
        return new
        {
            device = deviceName,
            plan.Rounds,
            peer = new { available = peer.Ran, describe = peer.Describe },
            ratio = BenchCommand.RatioNote,
            rows = BenchCommand.JsonRows(rows),
        };
    }

    private static object Train(string model, ComputeDevice device, string deviceText, string? dataDir, bool synthetic, int trainLimit)
    {
        string output = Directory.CreateTempSubdirectory("ilgpu-gpu-report-").FullName;
        try
        {
            var config = new RunConfig { Model = model, Epochs = 1, Device = deviceText, DataDir = dataDir, TrainLimit = trainLimit, Output = output };
            const string Random = "random data of Fashion-MNIST's shapes: the accuracy means nothing, the time does";
            string data;
            IDataset train, validation;
            if (synthetic)
            {
                (train, validation) = Synthetic(trainLimit > 0 ? trainLimit : 60_000);
                data = $"{Random} ({train.Count} training samples; --synthetic)";
            }
            else
            {
                try
                {
                    var loaded = Recipes.LoadData(config);
                    (train, validation) = (loaded.Train, loaded.Validation);
                    data = $"Fashion-MNIST ({train.Count} training samples; {loaded.ValidationNote})";
                }
                catch (DataSetNotFoundException e) when (dataDir is null)
                {
                    // Nothing was asked for: the report still times the steps. A --data that is missing fails the part instead.
                    (train, validation) = Synthetic(trainLimit > 0 ? trainLimit : 60_000);
                    data = $"{Random} ({train.Count} training samples; Fashion-MNIST is not installed: {e.Message.Split('\n')[0]})";
                }
            }

            var (trainer, _, _) = Recipes.BuildTrainer(config, device, train);
            var sw = Stopwatch.StartNew();
            var result = trainer.Fit(train, validation);
            double seconds = sw.Elapsed.TotalSeconds;
            var epoch = result.History.Epochs[^1];
            Console.WriteLine($"{model}: one epoch, {epoch.Steps} steps in {epoch.Seconds:F2} s ({epoch.Seconds * 1000 / Math.Max(1, epoch.Steps):F2} ms per step), val accuracy {epoch.ValAccuracy:F4}");
            return new
            {
                model,
                data,
                epoch.Steps,
                batch = config.BatchSize,
                trainSeconds = epoch.Seconds,
                msPerStep = epoch.Seconds * 1000 / Math.Max(1, epoch.Steps),
                samplesPerSecond = epoch.Samples / Math.Max(epoch.Seconds, 1e-9),
                fitSeconds = seconds,
                trainLoss = epoch.TrainLoss,
                valLoss = epoch.ValLoss,
                valAccuracy = epoch.ValAccuracy,
            };
        }
        finally
        {
            Directory.Delete(output, recursive: true);
        }
    }

    /// <summary>Random 28x28 images in [0, 1] and labels 0-9, seeded: Fashion-MNIST's shapes without its files.</summary>
    private static (IDataset Train, IDataset Validation) Synthetic(int count)
    {
        var r = new Random(1);
        InMemoryDataset Make(string name, int n)
        {
            var x = new float[n * 784];
            for (int i = 0; i < x.Length; i++)
                x[i] = (float)r.NextDouble();
            var y = new int[n];
            for (int i = 0; i < n; i++)
                y[i] = r.Next(10);
            return new InMemoryDataset(name, x, y, new Shape(1, 28, 28), 10);
        }

        return (Make("random train", count), Make("random validation", Math.Min(10_000, Math.Max(count / 6, 128))));
    }
}
