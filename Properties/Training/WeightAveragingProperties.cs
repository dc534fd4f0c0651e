using IlgpuTrain.Layers;
using IlgpuTrain.Optimizers;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// Weight averaging in the trainer: the EMA counts every applied update, SWA averages the
/// end-of-epoch weights and refreshes BatchNorm, validation reports both numbers, and a run
/// resumed from a checkpoint continues the average bitwise.
/// </summary>
public class WeightAveragingProperties
{
    private static InMemoryDataset Blobs(int n, int classes, int seed) => TrainerProperties.Blobs(n, classes, seed);

    private static Layer SmallCnn() => TrainerProperties.SmallCnn();

    private static TrainerOptions Options(int epochs, WeightAveraging averaging, params TrainingCallback[] callbacks) =>
        new() { Epochs = epochs, BatchSize = 16, Seed = 3, Averaging = averaging, Callbacks = callbacks, WarmKernels = false };

    private static IGradientTransformation Optimizer() => new Chain(new ClipByGlobalNorm(1.0), new AdamW(new OneCycleLR(1e-2, 4 * 6)));

    [Theory]
    [InlineData("ema")]
    [InlineData("swa")]
    public void A_run_resumed_from_a_checkpoint_continues_the_average_bitwise(string kind)
    {
        var d = Devices.Cpu;
        var data = Blobs(96, 3, 7);
        WeightAveraging averaging = kind == "ema" ? new Ema(0.9, warmup: true) : new Swa(startEpoch: 2);
        var optimizer = Optimizer();

        var straight = new Trainer(d, SmallCnn(), data.SampleShape, optimizer, Options(4, averaging)).Fit(data, data);
        using var s1 = straight.State;

        string path = Path.Combine(Path.GetTempPath(), $"ilgpu-avg-resume-{Guid.NewGuid():N}.safetensors");
        try
        {
            var first = new Trainer(d, SmallCnn(), data.SampleShape, optimizer, Options(2, averaging)).Fit(data, data);
            using (var half = first.State)
                Checkpoint.Save(path, CheckpointCallback.Of(half, 3, "small cnn", null));
            var loaded = CheckpointCallback.ToTrainState(Checkpoint.Load(path, d, optimizer), null);
            Assert.NotNull(loaded.Averaged);
            var resumed = new Trainer(d, SmallCnn(), data.SampleShape, optimizer, Options(4, averaging)).Fit(data, data, loaded);
            using var s2 = resumed.State;

            Assert.Equal(s1.Params.Snapshot().Float32, s2.Params.Snapshot().Float32);
            Assert.Equal(s1.Averaged!.Params.Snapshot().Float32, s2.Averaged!.Params.Snapshot().Float32);
            Assert.Equal(s1.Averaged.State.Snapshot().Float32, s2.Averaged.State.Snapshot().Float32);
            Assert.Equal(s1.Averaged.State.Snapshot().Int32, s2.Averaged.State.Snapshot().Int32);
            Assert.Equal(s1.Averaged.Count, s2.Averaged.Count);
            Assert.Equal(s1.History.Epochs.Select(e => e.AveragedValLoss), s2.History.Epochs.Select(e => e.AveragedValLoss));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void The_ema_counts_every_applied_update_and_validation_reports_both_weights()
    {
        var d = Devices.Cpu;
        var data = Blobs(64, 3, 2);
        var trainer = new Trainer(d, SmallCnn(), data.SampleShape, Optimizer(), Options(3, new Ema(0.95)));
        var result = trainer.Fit(data, data);
        using var s = result.State;
        Assert.Equal(s.History.Epochs.Sum(e => e.Steps), s.Averaged!.Count);
        Assert.All(s.History.Epochs, e => Assert.NotNull(e.AveragedValLoss));
        var again = trainer.EvaluateAveraged(s, data);
        Assert.Equal(s.History.Last!.AveragedValLoss!.Value, again.Loss, 12);
        Assert.Equal(s.History.Last.AveragedValAccuracy!.Value, again.Accuracy, 12);
        // The EMA lags the weights: with decay 0.95 it is not the trained model.
        Assert.NotEqual(s.Params.Snapshot().Float32, s.Averaged.Params.Snapshot().Float32);
    }

    [Fact]
    public void Swa_averages_the_weights_of_its_epochs_and_refreshes_batch_norm_for_them()
    {
        var d = Devices.Cpu;
        var data = Blobs(80, 3, 5);
        var ends = new List<float[]>();
        var trainer = new Trainer(d, SmallCnn(), data.SampleShape, Optimizer(), Options(4, new Swa(startEpoch: 2), new Capture(ends)));
        var result = trainer.Fit(data, data);
        using var s = result.State;
        var avg = s.Averaged!;
        Assert.Equal(3, avg.Count);
        var mean = Enumerable.Range(0, ends[0].Length).Select(i => (float)ends.Skip(1).Average(w => (double)w[i])).ToArray();
        Assert.True(Close.Check(avg.Params.Snapshot().Float32, mean, 1e-5, 1e-5, "swa").Ok);
        Assert.Null(s.History.Epochs[0].AveragedValLoss);
        Assert.All(s.History.Epochs.Skip(1), e => Assert.NotNull(e.AveragedValLoss));
        // update_bn ran for the averaged weights: one pass of 5 batches from reset statistics.
        Assert.Equal([5], avg.State.Snapshot().Int32);
        using var refreshed = trainer.RefreshBatchNorm(avg.Params, s.State, data);
        Assert.Equal(refreshed.Snapshot().Float32, avg.State.Snapshot().Float32);
    }

    [Fact]
    public void Evaluate_averaged_without_averaging_names_the_option()
    {
        var data = Blobs(32, 3, 1);
        var trainer = new Trainer(Devices.Cpu, SmallCnn(), data.SampleShape, Optimizer(), new TrainerOptions { Epochs = 1, BatchSize = 16, WarmKernels = false });
        using var s = trainer.Init();
        var e = Assert.Throws<ArgumentException>(() => trainer.EvaluateAveraged(s, data));
        Assert.Contains("TrainerOptions.Averaging", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_stored_configuration_with_bad_averaging_is_refused_naming_the_field()
    {
        Assert.Null(RunConfig.Decode("""{"Ema": 1.5}""", out var problem));
        Assert.Contains("field \"Ema\" is 1.5", problem, StringComparison.Ordinal);
        Assert.Null(RunConfig.Decode("""{"Epochs": 3, "SwaStart": 4}""", out problem));
        Assert.Contains("field \"SwaStart\" is 4", problem, StringComparison.Ordinal);
        Assert.Null(RunConfig.Decode("""{"Ema": 0.9, "SwaStart": 1}""", out problem));
        Assert.Contains("one weight averaging per run", problem, StringComparison.Ordinal);
        Assert.Equal(new Ema(0.999), RunConfig.FromJson("""{"Ema": 0.999}""").Averaging());
        Assert.Equal(new Swa(2), RunConfig.FromJson("""{"SwaStart": 2}""").Averaging());
        Assert.Null(new RunConfig().Averaging());
    }

    private sealed class Capture(List<float[]> ends) : TrainingCallback
    {
        public override EpochVerdict OnEpochEnd(EpochInfo info)
        {
            ends.Add(info.State.Params.Snapshot().Float32);
            return EpochVerdict.Continue;
        }
    }
}
