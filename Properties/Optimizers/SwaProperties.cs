using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>Swa: the average of k snapshots is their mean, its epochs, buffers copied, and bad options refused.</summary>
public class SwaProperties
{
    private static ParamTree Tree(Device d, float[] v) => ParamTree.FromHost(d, new Dictionary<string, (int[], float[])> { ["w"] = ([v.Length], v) });

    [Property(MaxTest = 40)]
    public Property The_average_of_k_snapshots_is_their_mean() =>
        Prop.ForAll((from n in Gens.Length from k in Gen.Choose(1, 12) from ws in Gen.ArrayOf(Gens.Floats(n), k) select ws).ToArbitrary(), Gen.Elements(false, true).ToArbitrary(), (ws, kernels) =>
        {
            var d = kernels ? Devices.CpuKernels : Devices.Cpu;
            var swa = new Swa(startEpoch: 1);
            using var s = ParamTree.FromHost(d, []);
            AveragedWeights? avg = null;
            try
            {
                foreach (var w in ws)
                {
                    using var p = Tree(d, w);
                    avg = swa.Update(avg, p, s);
                }

                var got = avg!.Params.Snapshot().Float32;
                var mean = Enumerable.Range(0, got.Length).Select(i => (float)ws.Average(w => (double)w[i])).ToArray();
                // Each of the k running-mean steps rounds a few times at the scale of the values (at most 10).
                return Close.All(got, mean, 2e-6 * ws.Length, 0, "swa vs mean").And((avg.Count == ws.Length).Label($"count {avg.Count} after {ws.Length} snapshots"));
            }
            finally
            {
                avg?.Dispose();
            }
        });

    [Fact]
    public void It_averages_at_the_start_epoch_and_every_k_after_it()
    {
        var swa = new Swa(startEpoch: 3, every: 2);
        Assert.Equal([3, 5, 7], Enumerable.Range(1, 8).Where(swa.AveragesAt));
        Assert.Equal([1, 2, 3], Enumerable.Range(1, 3).Where(new Swa(1).AveragesAt));
    }

    [Fact]
    public void The_model_state_is_copied_unless_buffers_are_averaged()
    {
        var d = Devices.Cpu;
        ParamTree State(float v) => ParamTree.FromHost(d, new Dictionary<string, (int[], float[])> { ["1.running_mean"] = ([1], [v]) });
        using var p = Tree(d, [1f]);
        using var s1 = State(2f);
        using var s2 = State(6f);
        using var copied = new Swa(1).Update(new Swa(1).Update(null, p, s1), p, s2);
        using var averaged = new Swa(1, averageBuffers: true).Update(new Swa(1).Update(null, p, s1), p, s2);
        Assert.Equal([6f], copied.State.Snapshot().Float32);
        Assert.Equal([4f], averaged.State.Snapshot().Float32);
    }

    [Fact]
    public void Bad_options_are_refused_naming_the_option_and_the_fix()
    {
        Assert.Contains("epochs count from 1", Assert.Throws<ArgumentOutOfRangeException>(() => new Swa(0)).Message, StringComparison.Ordinal);
        Assert.Contains("every", Assert.Throws<ArgumentOutOfRangeException>(() => new Swa(1, every: 0)).Message, StringComparison.Ordinal);
        var beyond = Assert.Throws<ArgumentOutOfRangeException>(() => new IlgpuTrain.Training.TrainerOptions { Epochs = 5, Averaging = new Swa(6) }.Validate());
        Assert.Contains("beyond the run's 5 epochs", beyond.Message, StringComparison.Ordinal);
    }
}
