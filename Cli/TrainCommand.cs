using System.CommandLine;
using System.Globalization;
using IlgpuTrain.Functional;
using IlgpuTrain.Training;

namespace IlgpuTrain.Cli;

/// <summary>
/// <c>ilgpu-train train</c>: trains a model on a data set. With no options it trains the
/// Fashion-MNIST MLP (784-256-10, dropout 0.2, AdamW, one-cycle, label smoothing 0.1, clipping at 1)
/// for 5 epochs, as ../shared/anchors/torch_fmnist.py does in PyTorch.
/// </summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var o = new TrainOptions();
        var command = new Command("train", "Train a model (default: the Fashion-MNIST MLP with AdamW and one-cycle for 5 epochs).");
        o.AddTo(command);
        command.SetAction(parse => Run(o.Read(parse), parse.GetValue(o.Resume)));
        return command;
    }

    private static int Run(TrainConfig config, string? resume)
    {
        if (Cli.Fail(config.Problems()))
            return 2;
        return Cli.Guard(() =>
        {
            Directory.CreateDirectory(config.Output);
            var data = Runs.Load(config);
            using var device = Runs.CreateDevice(config);
            using var progress = new ConsoleProgress();
            string ckptDir = Path.Combine(config.Output, "checkpoints");
            var callbacks = new List<TrainingCallback>
            {
                new LearningRateLogger(Path.Combine(config.Output, "learning_rate.csv")),
                new MetricsLogger(Path.Combine(config.Output, "metrics.csv")),
                new CheckpointCallback(ckptDir, config.ToJson(), saveBest: "val_loss"),
            };
            if (config.EarlyStopping >= 0)
                callbacks.Insert(0, new EarlyStopping("val_loss", patience: config.EarlyStopping, restoreBestWeights: true));
            var (trainer, model, optimizer) = Runs.Build(config, device, data.Train, callbacks, progress);

            Console.WriteLine($"ilgpu-train: {config.Model} on {data.Train.Name} ({data.Train.Count} samples, {data.Train.Classes} classes) on {device}");
            Console.WriteLine($"  {data.ValidationNote}");
            Console.WriteLine($"  optimizer: {Recipes.Describe(config)}; batch {config.BatchSize}; label smoothing {config.LabelSmoothing}; dropout {config.EffectiveDropout}; augmentation {config.Augment}; {(config.MixedPrecision ? "mixed precision fp16 with dynamic loss scaling" : "fp32")}");
            Console.WriteLine(model.Summary(data.Train.SampleShape, config.BatchSize));

            TrainState? from = null;
            if (resume is not null)
                from = Resuming.Resume(resume, device, trainer, optimizer, config, progress);
            var (result, seconds) = Runs.Timed(() => trainer.Fit(data.Train, data.Validation, from));
            using var final = result.State;
            var test = trainer.Evaluate(final.Params, final.State, data.Test);
            long steps = final.History.Epochs.Sum(e => (long)e.Steps + e.SkippedSteps);
            double trainSeconds = final.History.Epochs.Sum(e => e.Seconds);
            Console.WriteLine();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{result.StopReason}: {final.Epoch} epochs in {seconds:F1} s ({trainSeconds / Math.Max(steps, 1) * 1000:F2} ms/step, {final.History.Epochs.Sum(e => e.Samples) / Math.Max(trainSeconds, 1e-9):F0} samples/s)"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"test: loss {test.Loss:F4}, accuracy {test.Accuracy:F4}, top-{test.K} {test.TopK:F4} on {test.Samples} samples"));
            var findings = CurveDiagnosis.Diagnose(final.History, data.Train.Classes);
            Console.WriteLine(CurveDiagnosis.Format(findings));
            string png = Path.Combine(config.Output, "curves.png");
            Plots.SaveCurves(final.History, png, $"{config.Model} on {config.Dataset}");
            Console.WriteLine($"wrote {png}, {Path.Combine(config.Output, "metrics.csv")}, {Path.Combine(config.Output, "learning_rate.csv")}, checkpoints in {ckptDir}");
            return 0;
        });
    }
}

/// <summary>The options of <c>train</c> (shared by compare-optimizers), with PyTorch-peer defaults.</summary>
internal sealed class TrainOptions
{
    private static readonly TrainConfig D = new();

    public Option<string> Model { get; } = new("--model") { Description = "mlp, cnn or resnet.", DefaultValueFactory = _ => D.Model };

    public Option<string> Dataset { get; } = new("--dataset") { Description = "fashion-mnist, mnist or cifar10.", DefaultValueFactory = _ => D.Dataset };

    public Option<string?> Data { get; } = new("--data") { Description = "Folder with the data set's files (default: $ILGPUTRAIN_FASHION_MNIST or /usr/share/datasets/fashion-mnist for Fashion-MNIST)." };

    public Option<string> Optimizer { get; } = new("--optimizer") { Description = "sgd, momentum, nesterov, adam or adamw.", DefaultValueFactory = _ => D.Optimizer };

    public Option<double> Lr { get; } = new("--lr") { Description = "Peak learning rate.", DefaultValueFactory = _ => D.LearningRate };

    public Option<double> WeightDecay { get; } = new("--weight-decay") { Description = "Weight decay (decoupled for adamw, L2 otherwise).", DefaultValueFactory = _ => D.WeightDecay };

    public Option<double> Momentum { get; } = new("--momentum") { Description = "Momentum of momentum/nesterov SGD (one-cycle cycles it between 0.85 and 0.95).", DefaultValueFactory = _ => D.Momentum };

    public Option<string> Schedule { get; } = new("--schedule") { Description = "onecycle, cosine, step, constant, warmup-cosine, wsd (warmup-stable-decay) or plateau (reduce on validation-loss plateau).", DefaultValueFactory = _ => D.Schedule };

    public Option<int> Warmup { get; } = new("--warmup") { Description = "Warmup steps of warmup-cosine and wsd (default 5% of the run).", DefaultValueFactory = _ => 0 };

    public Option<int> Epochs { get; } = new("--epochs") { Description = "Epochs.", DefaultValueFactory = _ => D.Epochs };

    public Option<int> BatchSize { get; } = new("--batch-size") { Description = "Batch size.", DefaultValueFactory = _ => D.BatchSize };

    public Option<float> LabelSmoothing { get; } = new("--label-smoothing") { Description = "Label smoothing eps.", DefaultValueFactory = _ => D.LabelSmoothing };

    public Option<float?> Dropout { get; } = new("--dropout") { Description = "Dropout probability (default: 0.2 for mlp, 0.25 for cnn, 0 for resnet)." };

    public Option<string> Augment { get; } = new("--augment") { Description = "none, or a comma list of flip, crop, rotate, jitter (on the device).", DefaultValueFactory = _ => D.Augment };

    public Option<bool> MixedPrecision { get; } = new("--mixed-precision") { Description = "FP16 GEMM operands and activations with fp32 master weights and dynamic loss scaling." };

    public Option<int> Accumulate { get; } = new("--accumulate") { Description = "Gradient accumulation: batches per optimizer update.", DefaultValueFactory = _ => D.Accumulate };

    public Option<double> Clip { get; } = new("--clip") { Description = "Clip the global gradient norm at this value (0: off).", DefaultValueFactory = _ => D.Clip };

    public Option<int> EarlyStopping { get; } = new("--early-stopping") { Description = "Stop when val_loss has not improved for this many epochs, restoring the best weights (default: off).", DefaultValueFactory = _ => -1 };

    public Option<string?> Device { get; } = new("--device") { Description = "cpu, cuda or opencl (default: $ILGPUTRAIN_DEVICE, else the best available)." };

    public Option<ulong> Seed { get; } = new("--seed") { Description = "Seed of initialization, shuffling, dropout and augmentation.", DefaultValueFactory = _ => D.Seed };

    public Option<string> Output { get; } = new("--output") { Description = "Folder for metrics, plots and checkpoints.", DefaultValueFactory = _ => D.Output };

    public Option<int> TrainLimit { get; } = new("--train-limit") { Description = "Train on the first N samples only (0: all).", DefaultValueFactory = _ => 0 };

    public Option<int> ValSize { get; } = new("--val-size") { Description = "Hold out N training samples for validation (0: validate on the test split).", DefaultValueFactory = _ => 0 };

    public Option<string?> Resume { get; } = new("--resume") { Description = "Continue a run from a checkpoint (.safetensors) written by an earlier train." };

    public void AddTo(Command c)
    {
        foreach (var opt in new Option[] { Model, Dataset, Data, Optimizer, Lr, WeightDecay, Momentum, Schedule, Warmup, Epochs, BatchSize, LabelSmoothing, Dropout, Augment, MixedPrecision, Accumulate, Clip, EarlyStopping, Device, Seed, Output, TrainLimit, ValSize, Resume })
            c.Options.Add(opt);
    }

    public TrainConfig Read(ParseResult p) => new()
    {
        Model = p.GetValue(Model)!,
        Dataset = p.GetValue(Dataset)!,
        DataDir = p.GetValue(Data),
        Optimizer = p.GetValue(Optimizer)!,
        LearningRate = p.GetValue(Lr),
        WeightDecay = p.GetValue(WeightDecay),
        Momentum = p.GetValue(Momentum),
        Schedule = p.GetValue(Schedule)!,
        WarmupSteps = p.GetValue(Warmup),
        Epochs = p.GetValue(Epochs),
        BatchSize = p.GetValue(BatchSize),
        LabelSmoothing = p.GetValue(LabelSmoothing),
        Dropout = p.GetValue(Dropout),
        Augment = p.GetValue(Augment)!,
        MixedPrecision = p.GetValue(MixedPrecision),
        Accumulate = p.GetValue(Accumulate),
        Clip = p.GetValue(Clip),
        EarlyStopping = p.GetValue(EarlyStopping),
        Device = p.GetValue(Device),
        Seed = p.GetValue(Seed),
        Output = p.GetValue(Output)!,
        TrainLimit = p.GetValue(TrainLimit),
        ValSize = p.GetValue(ValSize),
    };
}
