using System.Diagnostics;
using IlgpuTrain.Functional;
using IlgpuTrain.Kernels;
using IlgpuTrain.Layers;
using IlgpuTrain.Optimizers;
using IlgpuTrain.Training;

namespace IlgpuTrain.Cli;

/// <summary>The data of a run: training, validation and test sets.</summary>
internal sealed record RunData(IDataset Train, IDataset Validation, IDataset Test, string ValidationNote);

/// <summary>What train, evaluate and compare-optimizers share: loading data, building the trainer, running it.</summary>
internal static class Runs
{
    /// <summary>Loads the data set of <paramref name="c"/>: the train split (optionally limited), a validation set (held out from train with --val-size, else the test split) and the test split.</summary>
    public static RunData Load(TrainConfig c)
    {
        var (train, test) = c.Dataset switch
        {
            "fashion-mnist" => FashionMnist.Load(c.DataDir),
            "mnist" => FashionMnist.LoadMnist(c.DataDir),
            "cifar10" => Cifar10.Load(c.DataDir),
            _ => throw new ArgumentException($"Unknown data set {c.Dataset}."),
        };
        if (c.ValSize > 0)
        {
            if (c.ValSize >= train.Count)
                throw new ArgumentException($"--val-size {c.ValSize}: the training split has only {train.Count} samples.");
            var (rest, val) = train.Split((double)c.ValSize / train.Count, c.Seed);
            train = rest;
            if (c.TrainLimit > 0)
                train = train.Take(Math.Min(c.TrainLimit, train.Count));
            return new RunData(train, val, test, $"validation: {val.Count} samples held out of the training split");
        }

        if (c.TrainLimit > 0)
            train = train.Take(Math.Min(c.TrainLimit, train.Count));
        return new RunData(train, test, test, "validation: the test split (use --val-size N to hold out training samples instead)");
    }

    /// <summary>The device: --device, else ILGPUTRAIN_DEVICE, else the best available.</summary>
    public static Device CreateDevice(TrainConfig c) =>
        c.Device is null ? Device.Create() : Device.Create(DeviceOptions.Parse(c.Device, "--device"));

    /// <summary>Builds the trainer of a configuration on a data set.</summary>
    public static (Trainer Trainer, Layer Model, IGradientTransformation Optimizer) Build(TrainConfig c, Device device, IDataset train, IReadOnlyList<TrainingCallback> callbacks, IProgressSink progress)
    {
        var model = Models.Build(c.Model, train.SampleShape, train.Classes, c.EffectiveDropout);
        int batchesPerEpoch = (train.Count + c.BatchSize - 1) / c.BatchSize;
        long totalUpdates = (long)c.Epochs * batchesPerEpoch / c.Accumulate;
        var optimizer = Recipes.Optimizer(c, totalUpdates);
        var options = new TrainerOptions
        {
            Epochs = c.Epochs,
            BatchSize = c.BatchSize,
            Seed = c.Seed,
            Loss = new CrossEntropyOptions { Epsilon = c.LabelSmoothing },
            Augmentation = c.Augmentation(train.SampleShape[^1]),
            LossScale = c.MixedPrecision ? new DynamicLossScale() : null,
            Precision = c.MixedPrecision ? Precision.Float16 : Precision.Float32,
            Callbacks = callbacks,
            Progress = progress,
        };
        return (new Trainer(device, model, train.SampleShape, optimizer, options), model, optimizer);
    }

    /// <summary>Times a block.</summary>
    public static (T Value, double Seconds) Timed<T>(Func<T> f)
    {
        var sw = Stopwatch.StartNew();
        var v = f();
        return (v, sw.Elapsed.TotalSeconds);
    }
}
