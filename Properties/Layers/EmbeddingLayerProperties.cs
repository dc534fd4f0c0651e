using IlgpuTrain.Layers;
using IlgpuTrain.Optimizers;
using IlgpuTrain.Training;
using Embedding = IlgpuTrain.Layers.Embedding;

namespace IlgpuTrain.Properties.Layers;

/// <summary>
/// The Embedding layer takes token ids as a data set's float samples carry them (F.Indices converts whole
/// numbers exactly), so a token model trains through the Trainer; a float id that is not a whole number is
/// refused by name.
/// </summary>
public sealed class EmbeddingLayerProperties
{
    [Property(MaxTest = 20)]
    public Property Float_ids_look_up_the_rows_int_ids_do_on_every_backend() =>
        Prop.ForAll(Gen.Choose(0, 10000).ToArbitrary(), seed =>
        {
            var r = new Random(seed);
            int v = r.Next(1, 40), n = r.Next(1, 30);
            var ids = Enumerable.Range(0, n).Select(_ => r.Next(v)).ToArray();
            var layer = new Embedding(v, 3);
            var ok = true.ToProperty();
            foreach (var d in Devices.All)
            {
                var (p, s) = layer.Init(d, new Shape(n), Rng.Create((ulong)seed));
                using (p)
                using (s)
                using (var step = d.BeginStep())
                {
                    var fromFloats = layer.Predict(p, s, step.Upload(ids.Select(i => (float)i).ToArray(), new Shape(1, n))).ToHost();
                    var fromInts = layer.Predict(p, s, step.Upload(ids, new Shape(1, n))).ToHost();
                    var w = p.Snapshot().Get("weight");
                    var expected = ids.SelectMany(i => w.Skip(3 * i).Take(3)).ToArray();
                    ok = ok.And(fromFloats.SequenceEqual(expected).Label($"{Devices.Describe(d)}: float ids"))
                        .And(fromInts.SequenceEqual(expected).Label($"{Devices.Describe(d)}: int ids"));
                }
            }

            return ok;
        });

    [Fact]
    public void A_fractional_id_is_refused_naming_it()
    {
        var layer = new Embedding(10, 2);
        var (p, s) = layer.Init(Devices.Cpu, new Shape(3), Rng.Create(0));
        using (p)
        using (s)
        using (var step = Devices.Cpu.BeginStep())
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => { layer.Predict(p, s, step.Upload(new[] { 1f, 2.5f, 3f }, new Shape(1, 3))); });
            Assert.Contains("indices[1] (flat position) = -2147483648 (a float id that is not a whole number", e.Message);
        }
    }

    [Fact]
    public void A_bag_of_tokens_model_trains_on_float_ids_through_the_trainer()
    {
        // Class = whether token 7 occurs in the sequence of 6 ids from a vocabulary of 12.
        var r = new Random(3);
        int n = 400, t = 6;
        var x = new float[n * t];
        var y = new int[n];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < t; j++)
                x[(i * t) + j] = r.Next(12);
            y[i] = x.AsSpan(i * t, t).Contains(7f) ? 1 : 0;
        }

        var data = new InMemoryDataset("tokens", x, y, new Shape(t), 2);
        var model = new Embedding(12, 8) >> new Flatten() >> new Dense(16) >> new ReLU() >> new Dense(2);
        var trainer = new Trainer(Devices.Cpu, model, data.SampleShape, new Adam(1e-2), new TrainerOptions { Epochs = 15, BatchSize = 32, Seed = 1 });
        using var final = trainer.Fit(data).State;
        var h = final.History.Epochs;
        Assert.True(h[^1].TrainAccuracy > 0.9, $"training accuracy {h[^1].TrainAccuracy:F3} after {h.Count} epochs (chance about 0.6)");
    }
}
