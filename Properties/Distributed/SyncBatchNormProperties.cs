using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Distributed;

/// <summary>
/// PyTorch's SyncBatchNorm semantics: the CNN (two BatchNorm2d layers) trained on 2 ranks × batch
/// 8 with --sync-batchnorm ends with the weights and running statistics of plain BatchNorm on
/// one process with batch 16; without it (each rank normalizes its own 8, DDP's default) it does not.
/// </summary>
/// <remarks>
/// Two SGD updates (32 samples), tolerance |a − b| ≤ 2e-6 + 1e-4 |b|: the synchronized statistics
/// are combined in double from per-rank float means and variances and the gradient sums are taken
/// in another order, so the runs agree to float rounding (measured: 3e-7 on the weights, 2e-6 on
/// the running means). Over more steps a rounding-level difference can flip a max-pool or ReLU
/// near a tie and the runs part by 1e-4 after 4 steps, so the test stays at two. Each rank
/// normalizing its own batch differs by about 1e-3.
/// </remarks>
[Collection(ProcessState.Name)]
public class SyncBatchNormProperties
{
    private const double Atol = 2e-6, Rtol = 1e-4;

    private static readonly string[] Run =
        ["train", "--device", "cpu", "--model", "cnn", "--train-limit", "32", "--val-size", "32", "--dropout", "0", "--optimizer", "sgd", "--lr", "0.05", "--clip", "0", "--schedule", "constant", "--epochs", "1", "--workers", "0"];

    [MpiFact]
    public void Two_ranks_of_8_with_sync_batchnorm_train_as_batchnorm_on_one_batch_of_16()
    {
        string root = Path.Combine(Path.GetTempPath(), "ilgpu-syncbn-" + Guid.NewGuid().ToString("N"));
        try
        {
            var (code, _, err) = CliRun.Invoke([.. Run, "--batch-size", "16", "--output", Path.Combine(root, "one")]);
            Assert.True(code == 0, err);
            var one = Tensors(Path.Combine(root, "one"));

            var sync = Mpirun.Run(2, TimeSpan.FromMinutes(4), [.. Run, "--distributed", "--sync-batchnorm", "--batch-size", "8", "--collective-timeout", "120", "--output", Path.Combine(root, "sync")]);
            Assert.True(sync.Code == 0, sync.ToString());
            Assert.Null(Mismatch(Tensors(Path.Combine(root, "sync")), one));

            var own = Mpirun.Run(2, TimeSpan.FromMinutes(4), [.. Run, "--distributed", "--batch-size", "8", "--collective-timeout", "120", "--output", Path.Combine(root, "own")]);
            Assert.True(own.Code == 0, own.ToString());
            Assert.NotNull(Mismatch(Tensors(Path.Combine(root, "own")), one));
        }
        finally
        {
            if (Directory.Exists(root))
                Directory.Delete(root, recursive: true);
        }
    }

    // Parameters and running statistics (Float32), by name.
    private static Dictionary<string, float[]> Tensors(string output) =>
        SafeTensors.Load(Path.Combine(output, "checkpoints", "last.safetensors")).Tensors
            .Where(t => t.DType == SafeTensorDType.F32 && !t.Name.Contains('/', StringComparison.Ordinal)).ToDictionary(t => t.Name, t => t.ToFloat32());

    private static string? Mismatch(Dictionary<string, float[]> got, Dictionary<string, float[]> want)
    {
        Assert.Contains(want.Keys, k => k.EndsWith("running_var", StringComparison.Ordinal));
        foreach (var (name, w) in want)
        {
            var g = got[name];
            for (int i = 0; i < w.Length; i++)
            {
                if (Math.Abs(g[i] - w[i]) > Atol + (Rtol * Math.Abs(w[i])))
                    return $"{name}[{i}]: {g[i]} against {w[i]}";
            }
        }

        return null;
    }
}
