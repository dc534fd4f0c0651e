using IlgpuTrain.Layers;
using IlgpuTrain.Optimizers;
using IlgpuTrain.Training;
using Conv2d = IlgpuTrain.Layers.Conv2d;
using Dropout = IlgpuTrain.Layers.Dropout;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// The trainer end to end: learning on real Fashion-MNIST images, exact resume from a checkpoint,
/// gradient accumulation equal to a larger batch, early stopping that restores the best weights,
/// the NaN guard naming its source, and callbacks seeing every step.
/// </summary>
public class TrainerProperties
{
    /// <summary>Two Gaussian blobs per class in 8 dimensions, shaped (2, 2, 2) so convolutions apply too.</summary>
    internal static InMemoryDataset Blobs(int n, int classes, int seed, string name = "blobs")
    {
        var r = new Random(seed);
        var centers = Enumerable.Range(0, classes).Select(_ => Enumerable.Range(0, 8).Select(_ => (float)((r.NextDouble() * 4) - 2)).ToArray()).ToArray();
        var x = new float[n * 8];
        var y = new int[n];
        for (int i = 0; i < n; i++)
        {
            y[i] = i % classes;
            for (int j = 0; j < 8; j++)
                x[(i * 8) + j] = centers[y[i]][j] + (float)(0.7 * Gaussian(r));
        }

        return new InMemoryDataset(name, x, y, new Shape(2, 2, 2), classes);
    }

    private static double Gaussian(Random r) => Math.Sqrt(-2 * Math.Log(1 - r.NextDouble())) * Math.Cos(2 * Math.PI * r.NextDouble());

    internal static Layer SmallCnn() =>
        new Conv2d(4, 2, Padding: 1) >> new BatchNorm2d() >> new ReLU() >> new Flatten() >> new Dropout(0.2f) >> new Dense(3);

    [Fact]
    public void A_trainable_glob_that_matches_no_parameter_fails_init_naming_it()
    {
        var data = Blobs(32, 3, 1);
        var model = new Flatten() >> new Dense(4) >> new ReLU() >> new Dense(3);
        var options = new TrainerOptions { Epochs = 1, BatchSize = 16, WarmKernels = false, Trainable = Freezing.Frozen("layers.0.*") };
        var trainer = new Trainer(Devices.Cpu, model, data.SampleShape, new Adam(1e-2), options);
        var e = Assert.Throws<ArgumentException>(() => trainer.Init());
        Assert.Contains("TrainerOptions.Trainable: the pattern \"layers.0.*\" matches no parameter; the model has 1.weight, 1.bias, 3.weight, 3.bias", e.Message);
        Assert.Throws<ArgumentException>(() => trainer.Fit(data));
        var ok = new Trainer(Devices.Cpu, model, data.SampleShape, new Adam(1e-2), options with { Trainable = Freezing.Frozen("1.*") });
        using var state = ok.Init();
    }

    [Fact]
    public void Training_on_2000_fashion_mnist_images_lowers_the_loss_and_beats_chance_widely()
    {
        if (!File.Exists(Path.Combine(FashionMnist.DefaultDirectory, "train-images-idx3-ubyte.gz")) && Environment.GetEnvironmentVariable(FashionMnist.EnvironmentVariable) is null)
            Assert.Fail($"Fashion-MNIST is not installed: `apt-get install dataset-fashion-mnist` (CI does), or set {FashionMnist.EnvironmentVariable}.");
        var (train, test) = FashionMnist.Load();
        var small = train.Take(2000);
        var model = new Flatten() >> new Dense(64) >> new ReLU() >> new Dense(10);
        var options = new TrainerOptions { Epochs = 3, BatchSize = 64, Seed = 1, Loss = new CrossEntropyOptions { Epsilon = 0.1f } };
        var trainer = new Trainer(Devices.Cpu, model, small.SampleShape, new AdamW(new OneCycleLR(3e-3, 3 * 32)), options);
        var result = trainer.Fit(small, test.Take(1000));
        using var final = result.State;
        var h = final.History.Epochs;
        Assert.Equal(3, h.Count);
        Assert.True(h[^1].TrainLoss < h[0].TrainLoss, $"training loss {h[0].TrainLoss:F3} -> {h[^1].TrainLoss:F3}");
        Assert.True(h[^1].ValAccuracy > 0.7, $"validation accuracy {h[^1].ValAccuracy:F3} (chance 0.1)");
        Assert.True(h[^1].ValTopK >= h[^1].ValAccuracy, "top-5 is at least top-1");
    }

    [Fact]
    public void Mixed_precision_trains_to_within_one_point_of_fp32_accuracy_on_a_fashion_mnist_subset()
    {
        if (!File.Exists(Path.Combine(FashionMnist.DefaultDirectory, "train-images-idx3-ubyte.gz")) && Environment.GetEnvironmentVariable(FashionMnist.EnvironmentVariable) is null)
            Assert.Fail($"Fashion-MNIST is not installed: `apt-get install dataset-fashion-mnist` (CI does), or set {FashionMnist.EnvironmentVariable}.");
        var (train, test) = FashionMnist.Load();
        var small = train.Take(2000);
        var check = test.Take(1000);
        EvalResult Run(Precision precision, ILossScale? scale, out History history)
        {
            var model = new Flatten() >> new Dense(64) >> new ReLU() >> new Dense(10);
            var options = new TrainerOptions { Epochs = 3, BatchSize = 64, Seed = 4, Precision = precision, LossScale = scale };
            var trainer = new Trainer(Devices.Cpu, model, small.SampleShape, new AdamW(new OneCycleLR(3e-3, 3 * 32)), options);
            var result = trainer.Fit(small, check);
            using var final = result.State;
            history = final.History;
            return trainer.Evaluate(final.Params, final.State, check);
        }

        var fp32 = Run(Precision.Float32, null, out var h32);
        var fp16 = Run(Precision.Float16, new DynamicLossScale(), out var h16);
        // The fp16 path really ran: its rounding changes the losses.
        Assert.NotEqual(h32.Epochs.Select(e => e.TrainLoss), h16.Epochs.Select(e => e.TrainLoss));
        Assert.True(Math.Abs(fp32.Accuracy - fp16.Accuracy) <= 0.01, $"fp32 accuracy {fp32.Accuracy:F4}, fp16 {fp16.Accuracy:F4}");
        Assert.True(fp32.Accuracy > 0.7, $"fp32 accuracy {fp32.Accuracy:F4}");
        // The loss scale and the skipped steps are part of the history.
        Assert.All(h16.Epochs, e => Assert.NotNull(e.LossScale));
        Assert.True(h16.Epochs.Sum(e => e.Steps + e.SkippedSteps) == 3 * 32);
    }

    [Fact]
    public void A_run_resumed_from_a_checkpoint_ends_with_bitwise_the_same_parameters()
    {
        var d = Devices.Cpu;
        var data = Blobs(96, 3, 7);
        var optimizer = new Chain(new ClipByGlobalNorm(1.0), new AdamW(new OneCycleLR(1e-2, 4 * 6)));
        TrainerOptions Options(int epochs) => new() { Epochs = epochs, BatchSize = 16, Seed = 3, Loss = new CrossEntropyOptions { Epsilon = 0.1f } };

        var straight = new Trainer(d, SmallCnn(), data.SampleShape, optimizer, Options(4)).Fit(data, data);
        using var s1 = straight.State;

        string path = Path.Combine(Path.GetTempPath(), $"ilgpu-resume-{Guid.NewGuid():N}.safetensors");
        try
        {
            var first = new Trainer(d, SmallCnn(), data.SampleShape, optimizer, Options(2)).Fit(data, data);
            using (var half = first.State)
                Checkpoint.Save(path, CheckpointCallback.Of(half, 3, "small cnn", null));
            var resumedTrainer = new Trainer(d, SmallCnn(), data.SampleShape, optimizer, Options(4));
            var loaded = CheckpointCallback.ToTrainState(Checkpoint.Load(path, d, optimizer), null);
            var resumed = resumedTrainer.Fit(data, data, loaded);
            using var s2 = resumed.State;

            Assert.Equal(s1.Params.Snapshot().Float32, s2.Params.Snapshot().Float32);
            Assert.Equal(s1.State.Snapshot().Float32, s2.State.Snapshot().Float32);
            Assert.Equal(s1.History.Epochs.Select(e => e.TrainLoss), s2.History.Epochs.Select(e => e.TrainLoss));
            Assert.Equal(4, s2.Epoch);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Accumulating_k_batches_matches_one_batch_k_times_larger()
    {
        var d = Devices.Cpu;
        var data = Blobs(128, 3, 11);
        var model = new Flatten() >> new Dense(16) >> new Tanh() >> new Dense(3);
        var inner = new Sgd(0.1, momentum: 0.9);
        var big = new Trainer(d, model, data.SampleShape, inner, new TrainerOptions { Epochs = 2, BatchSize = 32, Seed = 5 }).Fit(data);
        var acc = new Trainer(d, model, data.SampleShape, new MultiSteps(inner, 4), new TrainerOptions { Epochs = 2, BatchSize = 8, Seed = 5 }).Fit(data);
        using var a = big.State;
        using var b = acc.State;
        var pa = a.Params.Snapshot().Float32;
        var pb = b.Params.Snapshot().Float32;
        // The mean over 4 micro-batch means equals the batch mean up to float rounding of the sums.
        for (int i = 0; i < pa.Length; i++)
            Assert.True(Math.Abs(pa[i] - pb[i]) <= 1e-4 + (1e-3 * Math.Abs(pa[i])), $"parameter {i}: {pa[i]} vs {pb[i]}");
        Assert.NotEqual(model.Init(d, data.SampleShape, Rng.Create(0)).Params.Snapshot().Float32, pa);
    }

    [Fact]
    public void Early_stopping_stops_and_restores_the_weights_of_the_best_epoch()
    {
        var d = Devices.Cpu;
        var data = Blobs(96, 3, 13);
        var validation = Blobs(60, 3, 99, "shifted");   // other centers: validation loss rises as training fits
        var stopper = new EarlyStopping("val_loss", patience: 1, restoreBestWeights: true);
        var snapshots = new List<float[]>();
        var recorder = new EpochRecorder(snapshots);
        var trainer = new Trainer(d, new Flatten() >> new Dense(32) >> new ReLU() >> new Dense(3), data.SampleShape, new Adam(0.05),
            new TrainerOptions { Epochs = 30, BatchSize = 16, Seed = 2, Callbacks = [recorder, stopper] });
        var result = trainer.Fit(data, validation);
        using var final = result.State;
        Assert.True(stopper.StoppedEpoch > 0, "early stopping fired");
        Assert.True(final.Epoch < 30);
        Assert.Contains("early stopping", result.StopReason);
        var vals = final.History.Epochs.Select(e => e.ValLoss!.Value).ToList();
        int best = vals.IndexOf(vals.Min()) + 1;
        Assert.Equal(best, stopper.BestEpoch);
        Assert.Equal(snapshots[best - 1], final.Params.Snapshot().Float32);
    }

    [Fact]
    public void The_nan_guard_names_a_planted_nan_in_the_input_and_a_poisoned_parameter()
    {
        var d = Devices.Cpu;
        var clean = Blobs(64, 3, 17);
        var x = new float[64 * 8];
        var y = new int[64];
        clean.Gather(Enumerable.Range(0, 64).ToArray(), x, y);
        x[10 * 8] = float.NaN;
        var poisoned = new InMemoryDataset("poisoned", x, y, clean.SampleShape, 3);
        var model = new Flatten() >> new Dense(8) >> new ReLU() >> new Dense(3);
        var trainer = new Trainer(d, model, clean.SampleShape, new Sgd(0.1), new TrainerOptions { Epochs = 1, BatchSize = 64 });
        var e = Assert.Throws<NonFiniteTrainingException>(() => trainer.Fit(poisoned));
        Assert.Equal("input batch", e.Report.Source);
        Assert.Contains("check the input data", e.Message);
        Assert.Contains("step 0", e.Message);

        // A learning rate of 1e30 blows the weights up: the guard names the layer output or a gradient, with the rate.
        var wild = new Trainer(d, model, clean.SampleShape, new Sgd(1e30), new TrainerOptions { Epochs = 3, BatchSize = 16 });
        var e2 = Assert.Throws<NonFiniteTrainingException>(() => wild.Fit(clean));
        Assert.Matches("parameter|output of layer|gradient of|loss", e2.Report.Source);
        Assert.Contains("lower the learning rate", e2.Message);
    }

    [Fact]
    public void Callbacks_see_every_step_and_epoch_and_options_are_checked()
    {
        var d = Devices.Cpu;
        var data = Blobs(50, 3, 19);
        var lr = new LearningRateLogger();
        var progress = new RecordingProgress();
        var trainer = new Trainer(d, new Flatten() >> new Dense(3), data.SampleShape, new Sgd(new StepLR(0.1, 3)),
            new TrainerOptions { Epochs = 2, BatchSize = 16, Callbacks = [lr], Progress = progress });
        var result = trainer.Fit(data);
        using var final = result.State;
        Assert.Equal(8, lr.Rows.Count);                       // 4 batches (16, 16, 16, 2) x 2 epochs
        Assert.Equal(0.1, lr.Rows[0].LearningRate, 12);
        Assert.Equal(0.01, lr.Rows[3].LearningRate, 12);      // StepLR: lr(3) = 0.1 * 0.1
        Assert.Equal(2, progress.Epochs.Count);
        Assert.Equal(8, progress.BatchLosses.Count);
        Assert.Equal(50, final.History.Epochs[0].Samples);

        Assert.Throws<ArgumentOutOfRangeException>(() => new Trainer(d, new Flatten() >> new Dense(3), data.SampleShape, new Sgd(0.1), new TrainerOptions { BatchSize = 0 }));
        var wrong = Assert.Throws<ArgumentException>(() => new Trainer(d, new Flatten() >> new Dense(3), new Shape(7), new Sgd(0.1)).Fit(data));
        Assert.Contains("(2, 2, 2)", wrong.Message);
    }

    private sealed class EpochRecorder(List<float[]> snapshots) : TrainingCallback
    {
        public override EpochVerdict OnEpochEnd(EpochInfo info)
        {
            snapshots.Add(info.State.Params.Snapshot().Float32);
            return EpochVerdict.Continue;
        }
    }
}
