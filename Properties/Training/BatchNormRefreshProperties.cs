using IlgpuTrain.Layers;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// BatchNormRefresh (PyTorch's update_bn): for a model of one BatchNorm, the refreshed running
/// statistics are the mean over batches of each batch's mean and unbiased variance (with one
/// batch: the data's exact mean and variance), and num_batches_tracked counts the batches.
/// </summary>
public class BatchNormRefreshProperties
{
    private static Gen<(int N, int C, int B, float[] X)> Data { get; } =
        from n in Gen.Choose(2, 60)
        from c in Gen.Choose(1, 5)
        from b in Gen.Choose(2, n)
        where n % b != 1 // a last batch of one sample has no variance (BatchNorm refuses it in Train mode)
        from x in Gens.Floats(n * c, -5f, 5f)
        select (n, c, b, x);

    [Property(MaxTest = 30)]
    public Property Refreshed_statistics_are_the_mean_of_the_batch_means_and_unbiased_variances() =>
        Prop.ForAll(Data.ToArbitrary(), Gen.Elements(false, true).ToArbitrary(), (data, kernels) =>
        {
            var (n, c, b, x) = data;
            var d = kernels ? Devices.CpuKernels : Devices.Cpu;
            var model = new BatchNorm1d(Momentum: 0.3f);
            var set = new InMemoryDataset("bn", x, new int[n], new Shape(c), 1);
            var (p, s) = model.Init(d, new Shape(c), Rng.Create(1));
            using (p)
            using (s)
            using (var refreshed = BatchNormRefresh.Refresh(d, model, p, s, set, b))
            {
                var snap = refreshed.Snapshot();
                int batches = (n + b - 1) / b;
                var mean = new double[c];
                var variance = new double[c];
                for (int k = 0; k < batches; k++)
                {
                    int lo = k * b, m = Math.Min(n, lo + b) - lo;
                    for (int ch = 0; ch < c; ch++)
                    {
                        var v = Enumerable.Range(lo, m).Select(i => (double)x[(i * c) + ch]).ToArray();
                        double mu = v.Average();
                        mean[ch] += mu / batches;
                        variance[ch] += v.Sum(z => (z - mu) * (z - mu)) / (m - 1) / batches;
                    }
                }

                // Float32 batch statistics, then one running update per batch: a few float roundings
                // of values at most 25 in size, per batch.
                double atol = 2e-6 * batches * 25;
                return Close.All(snap.Get("running_mean"), mean, atol, 0, "running_mean")
                    .And(Close.All(snap.Get("running_var"), variance, atol, 1e-5, "running_var"))
                    .And((snap.Int32[0] == batches).Label($"num_batches_tracked {snap.Int32[0]}, batches {batches}"))
                    .Label($"n={n} c={c} batch={b}");
            }
        });

    [Fact]
    public void One_batch_gives_the_exact_mean_and_unbiased_variance_of_the_activations()
    {
        // Dense(2) >> BatchNorm1d on 4 samples: the statistics are those of x W^T + b, not of x.
        var d = Devices.Cpu;
        var model = new Dense(2) >> new BatchNorm1d();
        float[] x = [1, 2, 3, 4, 5, 6, 7, 9];
        var set = new InMemoryDataset("four", x, new int[4], new Shape(2), 1);
        var (p, s) = model.Init(d, new Shape(2), Rng.Create(5));
        using (p)
        using (s)
        using (var refreshed = BatchNormRefresh.Refresh(d, model, p, s, set, batchSize: 4))
        {
            var w = p.Snapshot().Get("0.weight");
            var bias = p.Snapshot().Get("0.bias");
            var snap = refreshed.Snapshot();
            for (int f = 0; f < 2; f++)
            {
                var a = Enumerable.Range(0, 4).Select(i => (w[f * 2] * (double)x[i * 2]) + (w[(f * 2) + 1] * (double)x[(i * 2) + 1]) + bias[f]).ToArray();
                double mu = a.Average();
                double var = a.Sum(z => (z - mu) * (z - mu)) / 3;
                Assert.True(Math.Abs(snap.Get("1.running_mean")[f] - mu) <= 1e-5 * (1 + Math.Abs(mu)), $"mean {snap.Get("1.running_mean")[f]} vs {mu}");
                Assert.True(Math.Abs(snap.Get("1.running_var")[f] - var) <= 1e-5 * (1 + var), $"var {snap.Get("1.running_var")[f]} vs {var}");
            }

            Assert.Equal([1], snap.Int32);
            // The weights were only read.
            Assert.Equal(w, p.Snapshot().Get("0.weight"));
        }
    }

    [Fact]
    public void A_model_without_batch_norm_has_nothing_to_refresh()
    {
        Assert.False(BatchNormRefresh.Has(new Dense(3) >> new ReLU()));
        Assert.True(BatchNormRefresh.Has(new Dense(3) >> new Residual(new Dense(3) >> new BatchNorm1d())));
    }
}
