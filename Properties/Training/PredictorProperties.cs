using IlgpuTrain.Layers;
using IlgpuTrain.Optimizers;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// ModelFile and Predictor: a checkpoint written during training carries its model, so ModelFile.Load rebuilds it
/// with no code and predicts what the live model predicts; batching does not change predictions; checkpoints without
/// a model and inputs of the wrong size fail with a message naming the problem.
/// </summary>
public sealed class PredictorProperties : IDisposable
{
    // The same float32 kernels on the same device: only the batch's accumulation order can differ.
    private const float Atol = 1e-5f;
    private const float Rtol = 1e-5f;

    private static readonly Normalization Norm = new([0.5f, -0.25f], [2f, 0.5f]);

    private static readonly string[] Names = ["cat", "dog", "eel"];

    private readonly string _dir = Directory.CreateTempSubdirectory("predictor-props").FullName;

    private static Layer Model() => TrainerProperties.SmallCnn();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // One epoch of training with a checkpoint callback; returns the final state and the checkpoint's path.
    private (TrainState State, string Path) Train(string name)
    {
        var data = TrainerProperties.Blobs(60, 3, seed: 4);
        string dir = Path.Combine(_dir, name);
        var callback = new CheckpointCallback(dir, saveBest: null) { Normalization = Norm, ClassNames = Names };
        var trainer = new Trainer(Devices.Cpu, Model(), data.SampleShape, new AdamW(1e-2), new TrainerOptions { Epochs = 1, BatchSize = 16, Seed = 2, Callbacks = [callback] });
        var result = trainer.Fit(data);
        return (result.State, callback.LastPath);
    }

    private static float[] Inputs(int n, int seed)
    {
        var r = new Random(seed);
        return [.. Enumerable.Range(0, n * 8).Select(_ => (float)((r.NextDouble() * 6) - 3))];
    }

    private static bool Close(float[] a, float[] r) =>
        a.Length == r.Length && a.Zip(r).All(t => Math.Abs(t.First - t.Second) <= Atol + (Rtol * Math.Abs(t.Second)));

    [Fact]
    public void A_checkpoint_rebuilds_its_model_and_predicts_what_the_live_model_predicts()
    {
        var (state, path) = Train("live");
        using var _ = state;
        var x = Inputs(11, 5);

        // The live model on inputs normalized by hand: (x - mean) / std per channel of (2, 2, 2).
        var normalized = x.ToArray();
        for (int i = 0; i < normalized.Length; i++)
        {
            int c = (i % 8) / 4;
            normalized[i] = (normalized[i] - Norm.Mean[c]) / Norm.Std[c];
        }

        float[] live;
        using (var step = Devices.Cpu.BeginStep())
            live = Model().Predict(state.Params, state.State, step.Upload(normalized, new Shape(11, 2, 2, 2))).ToHost();

        using var predictor = Predictor.Load(path, Devices.Cpu);
        Assert.Equal(Model(), predictor.Model.Layer);
        Assert.Equal(new Shape(2, 2, 2), predictor.InputShape);
        Assert.Equal(Names, predictor.Model.ClassNames);
        var outputs = predictor.Outputs(x);
        Assert.True(Close(outputs, live), $"outputs {string.Join(", ", outputs.Take(6))} vs live {string.Join(", ", live.Take(6))}");

        var predictions = predictor.Predict(x);
        Assert.Equal(11, predictions.Count);
        for (int i = 0; i < 11; i++)
        {
            var z = live.AsSpan(i * 3, 3).ToArray();
            int best = Array.IndexOf(z, z.Max());
            Assert.Equal(best, predictions[i].Class);
            Assert.Equal(Names[best], predictions[i].Label);
            Assert.InRange(predictions[i].Probabilities.Sum(), 1 - 1e-5f, 1 + 1e-5f);
            Assert.Equal(predictions[i].Probabilities.Max(), predictions[i].Probability);
        }
    }

    [Property(MaxTest = 12)]
    public Property Predicting_in_batches_equals_predicting_at_once() =>
        Prop.ForAll(Gen.Choose(0, 23).ToArbitrary(), Gen.Elements(1, 2, 5, 7, 64).ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), (n, batch, seed) =>
        {
            using var once = new Predictor(ModelFile.Load(SharedCheckpoint.Value, Devices.Cpu), Devices.Cpu, batchSize: 64);
            using var batched = new Predictor(ModelFile.Load(SharedCheckpoint.Value, Devices.Cpu), Devices.Cpu, batchSize: batch);
            var x = Inputs(n, seed);
            var a = once.Outputs(x);
            var b = batched.Outputs(x);
            return Close(b, a).Label($"{n} samples in batches of {batch}")
                .And((a.Length == n * 3).Label("one output row per sample"));
        });

    private static readonly Lazy<string> SharedCheckpoint = new(() =>
    {
        string dir = Directory.CreateTempSubdirectory("predictor-shared").FullName;
        var data = TrainerProperties.Blobs(30, 3, seed: 9);
        var callback = new CheckpointCallback(dir, saveBest: null) { Normalization = Norm };
        var trainer = new Trainer(Devices.Cpu, Model(), data.SampleShape, new Sgd(0.05), new TrainerOptions { Epochs = 1, BatchSize = 10, Seed = 1, Callbacks = [callback] });
        trainer.Fit(data).State.Dispose();
        return callback.LastPath;
    });

    [Fact]
    public void A_checkpoint_without_its_model_is_refused_with_the_way_out()
    {
        var (state, path) = Train("old");
        using var _ = state;

        // What older versions wrote: the same checkpoint without the model.
        using (var c = Checkpoint.Load(path, Devices.Cpu))
            Checkpoint.Save(path, c with { Model = null });
        var e = Assert.Throws<CheckpointFormatException>(() => ModelFile.Load(path, Devices.Cpu));
        Assert.Contains("does not carry its model", e.Message, StringComparison.Ordinal);
        Assert.Contains("Checkpoint.Load", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Inputs_that_are_not_whole_samples_are_refused()
    {
        using var predictor = Predictor.Load(SharedCheckpoint.Value, Devices.Cpu);
        var e = Assert.Throws<ArgumentException>(() => predictor.Predict(new float[13]));
        Assert.Contains("13 floats are not whole samples of shape (2, 2, 2)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_checkpoint_keeps_the_model_through_save_and_load()
    {
        var (state, path) = Train("roundtrip");
        using var _ = state;
        using var c = Checkpoint.Load(path, Devices.Cpu);
        Assert.NotNull(c.Model);
        Assert.Equal(Model(), c.Model!.Layer);
        Assert.Equal(Norm.Mean, c.Model.Normalization!.Mean);
        Assert.Equal(Norm.Std, c.Model.Normalization.Std);
    }
}
