using System.Globalization;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Distributed;

/// <summary>
/// Data-parallel training with the step's other parts, under <c>mpirun -np 2</c> on the CPU device
/// against one process: gradient accumulation (2 ranks × 16 with k = 3 train the weights of one
/// process × 32 with k = 3); a run checkpointed at the end of epoch 2 while a group of
/// micro-batches is half accumulated (32 micro-batches, k = 3), resumed to epoch 3, ends with the
/// bits of the uninterrupted run; mixed precision with dynamic loss scaling, where one training
/// row's target makes the loss overflow on the one rank whose batch holds it: that step is skipped
/// on both ranks, the scale backs off on both (the ranks end with identical parameters, step and
/// scale), and the run matches one process × 32, which skips the same steps.
/// </summary>
/// <remarks>
/// The trainer checkpoints at epoch ends only, so the resume is from the end of epoch 2 of 3 (not
/// the first), taken with a partial accumulation group pending. Tolerances as in
/// <see cref="DistributedTrainingProperties"/>: two per-rank means averaged against one mean over
/// 2B, |a − b| ≤ 2e-5 + 1e-3 |b|.
/// </remarks>
[Collection(ProcessState.Name)]
public class DistributedRecipesProperties
{
    private const double Atol = 2e-5, Rtol = 1e-3;

    private static readonly string[] Accumulating =
        ["train", "--device", "cpu", "--train-limit", "512", "--val-size", "96", "--dropout", "0", "--optimizer", "sgd", "--lr", "0.1", "--clip", "0", "--schedule", "constant", "--workers", "0", "--accumulate", "3"];

    private static readonly string[] Distributed = ["--distributed", "--batch-size", "16", "--collective-timeout", "60", "--bucket-mb", "0.1"];

    [MpiFact]
    public void Accumulation_over_two_ranks_matches_one_process_and_a_resume_from_a_half_accumulated_group_is_exact()
    {
        string root = Directory.CreateTempSubdirectory("ilgpu-dist-acc-").FullName;
        try
        {
            var two = Mpirun.Run(2, TimeSpan.FromMinutes(3), [.. Accumulating, .. Distributed, "--epochs", "3", "--output", Path.Combine(root, "two")]);
            Assert.True(two.Code == 0, two.ToString());
            Assert.Contains("the 2 ranks end with identical parameters (step 48)", two.Out, StringComparison.Ordinal);
            var (code, _, err) = CliRun.Invoke([.. Accumulating, "--batch-size", "32", "--epochs", "3", "--output", Path.Combine(root, "one")]);
            Assert.True(code == 0, err);
            Assert.Null(Mismatch(Weights(Path.Combine(root, "two")), Weights(Path.Combine(root, "one"))));
            var steps = Metrics(Path.Combine(root, "two")).Select(m => m["steps"]).ToList();
            Assert.Equal([5.0, 5.0, 6.0], steps);                                                                   // 48 micro-batches, 16 updates; epoch 2 ends with 2 pending

            var first = Mpirun.Run(2, TimeSpan.FromMinutes(3), [.. Accumulating, .. Distributed, "--epochs", "2", "--output", Path.Combine(root, "first")]);
            Assert.True(first.Code == 0, first.ToString());
            var resumed = Mpirun.Run(2, TimeSpan.FromMinutes(3), [.. Accumulating, .. Distributed, "--epochs", "3", "--resume", Path.Combine(root, "first", "checkpoints", "last.safetensors"), "--output", Path.Combine(root, "resumed")]);
            Assert.True(resumed.Code == 0, resumed.ToString());
            var straight = Weights(Path.Combine(root, "two"));
            var continued = Weights(Path.Combine(root, "resumed"));
            foreach (var (name, want) in straight)
                Assert.True(want.AsSpan().SequenceEqual(continued[name]), $"{name}: the run resumed from epoch 2 differs from the uninterrupted one");
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [MpiFact]
    public void A_loss_that_overflows_on_one_rank_skips_the_step_on_both_and_both_back_off_the_scale()
    {
        string root = Directory.CreateTempSubdirectory("ilgpu-dist-amp-").FullName;
        try
        {
            string csv = Path.Combine(root, "table.csv");
            File.WriteAllLines(csv, Table());
            string[] run =
                ["train", "--task", "regression", "--dataset", "csv", "--data", csv, "--target", "y", "--features", "x1,x2,x3", "--val-size", "32", "--dropout", "0", "--optimizer", "sgd", "--lr", "0.05",
                 "--clip", "0", "--schedule", "constant", "--workers", "0", "--mixed-precision", "--epochs", "3", "--device", "cpu"];
            var two = Mpirun.Run(2, TimeSpan.FromMinutes(3), [.. run, .. Distributed, "--output", Path.Combine(root, "two")]);
            Assert.True(two.Code == 0, two.ToString());
            Assert.Contains("the 2 ranks end with identical parameters (step 6, loss scale 8192)", two.Out, StringComparison.Ordinal);
            var (code, _, err) = CliRun.Invoke([.. run, "--batch-size", "32", "--output", Path.Combine(root, "one")]);
            Assert.True(code == 0, err);

            // The row lands in one batch of one rank each epoch: one skip per epoch, the scale halved each time.
            var m2 = Metrics(Path.Combine(root, "two"));
            var m1 = Metrics(Path.Combine(root, "one"));
            Assert.Equal([1.0, 1.0, 1.0], m2.Select(m => m["skipped_steps"]));
            Assert.Equal([32768.0, 16384.0, 8192.0], m2.Select(m => m["loss_scale"]));
            Assert.Equal(m1.Select(m => m["skipped_steps"]), m2.Select(m => m["skipped_steps"]));
            Assert.Equal(m1.Select(m => m["loss_scale"]), m2.Select(m => m["loss_scale"]));
            Assert.Null(Mismatch(Weights(Path.Combine(root, "two")), Weights(Path.Combine(root, "one"))));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    // 96 rows, y a small linear function of three features, except one training row whose target
    // (1e20) makes its squared error overflow float.
    private static IEnumerable<string> Table()
    {
        var r = new Random(7);
        yield return "x1,x2,x3,y";
        for (int i = 0; i < 96; i++)
        {
            double x1 = (r.NextDouble() * 2) - 1, x2 = (r.NextDouble() * 2) - 1, x3 = (r.NextDouble() * 2) - 1;
            double y = i == OutlierRow ? 1e20 : (0.05 * x1) - (0.03 * x2) + (0.02 * x3);
            yield return string.Create(CultureInfo.InvariantCulture, $"{x1:F4},{x2:F4},{x3:F4},{y:R}");
        }
    }

    private const int OutlierRow = 40;

    private static Dictionary<string, float[]> Weights(string output) =>
        SafeTensors.Load(Path.Combine(output, "checkpoints", "last.safetensors")).Tensors
            .Where(t => t.DType == SafeTensorDType.F32 && !t.Name.Contains('/', StringComparison.Ordinal)).ToDictionary(t => t.Name, t => t.ToFloat32());

    private static string? Mismatch(Dictionary<string, float[]> got, Dictionary<string, float[]> want)
    {
        Assert.Equal(want.Keys.Order(), got.Keys.Order());
        foreach (var (name, w) in want)
        {
            for (int i = 0; i < w.Length; i++)
            {
                if (!(Math.Abs(got[name][i] - w[i]) <= Atol + (Rtol * Math.Abs(w[i]))))
                    return $"{name}[{i}]: two ranks {got[name][i]}, one process {w[i]}";
            }
        }

        return null;
    }

    private static List<Dictionary<string, double>> Metrics(string output)
    {
        var lines = File.ReadAllLines(Path.Combine(output, "metrics.csv"));
        var header = lines[0].Split(',');
        return [.. lines.Skip(1).Select(l => l.Split(',')).Select(cells => header.Zip(cells).Where(p => p.Second.Length > 0).ToDictionary(p => p.First, p => double.Parse(p.Second, CultureInfo.InvariantCulture)))];
    }
}
