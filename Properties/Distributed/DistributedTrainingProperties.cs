using System.Globalization;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Distributed;

/// <summary>
/// <c>mpirun -np 2 ilgpu-train train --distributed</c> on the CPU device against one process:
/// two ranks with batch B per rank train the same weights as one process with batch 2B; metrics
/// are reduced across ranks; rank 0 alone logs; a resumed run continues exactly; a checkpoint of a
/// 2-rank run is refused by one process with a message that names the world size.
/// </summary>
/// <remarks>
/// Tolerance: the two runs sum the same per-sample gradients in a different order (two per-rank
/// means, averaged, against one mean over 2B), so after 48 SGD updates the weights agree to float
/// rounding amplified by the updates: |a − b| ≤ 2e-5 + 1e-3 |b| (the weights are O(0.1)).
/// </remarks>
[Collection(ProcessState.Name)]
public class DistributedTrainingProperties
{
    private const double Atol = 2e-5, Rtol = 1e-3;

    // SGD without clipping: Adam's update and a clipped gradient hardly depend on the gradients'
    // scale, so they would hide a sum taken for a mean. The MLP without dropout (dropout differs by design: each rank draws its own masks) on 512
    // Fashion-MNIST samples, 16 batches of 32 per epoch in one process, 16 of 16 per rank on two.
    private static readonly string[] Run =
        ["train", "--device", "cpu", "--train-limit", "512", "--val-size", "96", "--dropout", "0", "--optimizer", "sgd", "--lr", "0.1", "--clip", "0", "--schedule", "constant", "--workers", "0"];

    private static readonly Lazy<(string Root, Mpirun.Result ThreeEpochs)> Shared = new(() =>
    {
        string root = Path.Combine(Path.GetTempPath(), "ilgpu-dist-" + Guid.NewGuid().ToString("N"));
        var r = Mpirun.Run(2, TimeSpan.FromMinutes(3), [.. Run, "--distributed", "--batch-size", "16", "--epochs", "3", "--collective-timeout", "60", "--bucket-mb", "0.1", "--output", Path.Combine(root, "two")]);
        return (root, r);
    });

    [MpiFact]
    public void Two_ranks_of_batch_16_train_the_weights_of_one_process_of_batch_32()
    {
        var (root, two) = Shared.Value;
        Assert.True(two.Code == 0, two.ToString());
        Assert.Equal(1, Count(two.Out, "completed: 3 epochs"));                                     // rank 0 alone logs
        Assert.Contains("distributed: 2 ranks on MPI, batch 16 per rank (32 in all)", two.Out, StringComparison.Ordinal);

        var (code, _, err) = CliRun.Invoke([.. Run, "--batch-size", "32", "--epochs", "3", "--output", Path.Combine(root, "one")]);
        Assert.True(code == 0, err);
        var a = Weights(Path.Combine(root, "two", "checkpoints", "last.safetensors"));
        var b = Weights(Path.Combine(root, "one", "checkpoints", "last.safetensors"));
        Assert.Equal(b.Keys.Order(), a.Keys.Order());
        foreach (var (name, want) in b)
        {
            var got = a[name];
            for (int i = 0; i < want.Length; i++)
                Assert.True(Math.Abs(got[i] - want[i]) <= Atol + (Rtol * Math.Abs(want[i])), $"{name}[{i}]: two ranks {got[i]}, one process {want[i]}");
        }

        // The epoch's metrics are over both ranks' samples, validation over both shards.
        var m2 = Metrics(Path.Combine(root, "two", "metrics.csv"));
        var m1 = Metrics(Path.Combine(root, "one", "metrics.csv"));
        Assert.Equal(m1.Count, m2.Count);
        for (int e = 0; e < m1.Count; e++)
        {
            foreach (var column in new[] { "train_loss", "train_accuracy", "val_loss", "val_accuracy", "samples" })
                Assert.True(Math.Abs(m1[e][column] - m2[e][column]) <= 1e-3 * (1 + Math.Abs(m1[e][column])), $"epoch {e + 1} {column}: two ranks {m2[e][column]}, one process {m1[e][column]}");
        }
    }

    [MpiFact]
    public void A_resumed_two_rank_run_continues_exactly_and_one_process_refuses_its_checkpoint()
    {
        var (root, three) = Shared.Value;
        Assert.True(three.Code == 0, three.ToString());
        string first = Path.Combine(root, "first-two");
        var r = Mpirun.Run(2, TimeSpan.FromMinutes(3), [.. Run, "--distributed", "--batch-size", "16", "--epochs", "2", "--collective-timeout", "60", "--output", first]);
        Assert.True(r.Code == 0, r.ToString());
        string last = Path.Combine(first, "checkpoints", "last.safetensors");

        var (code, _, err) = CliRun.Invoke([.. Run, "--batch-size", "16", "--epochs", "3", "--resume", last, "--output", Path.Combine(root, "alone")]);
        Assert.Equal(8, code);
        Assert.Contains("trained by 2 process(es)", err, StringComparison.Ordinal);
        Assert.Contains("mpirun -np 2", err, StringComparison.Ordinal);

        string resumed = Path.Combine(root, "resumed");
        r = Mpirun.Run(2, TimeSpan.FromMinutes(3), [.. Run, "--distributed", "--batch-size", "16", "--epochs", "3", "--collective-timeout", "60", "--resume", last, "--output", resumed]);
        Assert.True(r.Code == 0, r.ToString());
        var straight = Weights(Path.Combine(root, "two", "checkpoints", "last.safetensors"));
        var continued = Weights(Path.Combine(resumed, "checkpoints", "last.safetensors"));
        foreach (var (name, want) in straight)
            Assert.True(want.AsSpan().SequenceEqual(continued[name]), $"{name}: the resumed run differs from the uninterrupted one");
    }

    /// <summary>
    /// The buckets (0.1 MiB: the MLP's gradients in several) overlapped with the backward against
    /// all of them after it, in the default 25 MiB (one bucket): the same bits.
    /// </summary>
    [MpiFact]
    public void Overlapped_buckets_and_one_all_reduce_after_the_backward_train_the_same_bits()
    {
        var (root, two) = Shared.Value;
        Assert.True(two.Code == 0, two.ToString());
        Assert.Contains("the 2 ranks end with identical parameters (step 48)", two.Out, StringComparison.Ordinal);
        var r = Mpirun.Run(2, TimeSpan.FromMinutes(3), [.. Run, "--distributed", "--batch-size", "16", "--epochs", "3", "--collective-timeout", "60", "--no-overlap", "--output", Path.Combine(root, "after")]);
        Assert.True(r.Code == 0, r.ToString());
        var overlapped = Weights(Path.Combine(root, "two", "checkpoints", "last.safetensors"));
        var after = Weights(Path.Combine(root, "after", "checkpoints", "last.safetensors"));
        foreach (var (name, want) in after)
            Assert.True(want.AsSpan().SequenceEqual(overlapped[name]), $"{name}: the overlapped run differs from the one that all-reduces after the backward");
    }

    private static int Count(string text, string what) => text.Split(what).Length - 1;

    private static Dictionary<string, float[]> Weights(string path) =>
        SafeTensors.Load(path).Tensors.Where(t => t.DType == SafeTensorDType.F32 && !t.Name.Contains('/', StringComparison.Ordinal)).ToDictionary(t => t.Name, t => t.ToFloat32());

    private static List<Dictionary<string, double>> Metrics(string path)
    {
        var lines = File.ReadAllLines(path);
        var header = lines[0].Split(',');
        return [.. lines.Skip(1).Select(l => l.Split(',')).Select(cells => header.Zip(cells).Where(p => p.Second.Length > 0).ToDictionary(p => p.First, p => double.Parse(p.Second, CultureInfo.InvariantCulture)))];
    }
}
