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
    public static Command Create() => Build().Command;

    /// <summary>The command and the options it reads (for tests that check every listed option is used).</summary>
    /// <returns>The command and its options.</returns>
    internal static (Command Command, TrainOptions Options) Build()
    {
        var o = new TrainOptions();
        var command = new Command("train", "Train a model (default: the Fashion-MNIST MLP with AdamW and one-cycle for 5 epochs).");
        o.AddTo(command);
        command.SetAction(parse => Run(o.Read(parse), parse.GetValue(o.Resume)));
        return (command, o);
    }

    private static int Run(RunConfig config, string? resume)
    {
        if (Cli.Fail(TrainOptions.Problems(config)))
            return 2;
        if (resume is not null && !File.Exists(resume))
            return Cli.Fail([$"--resume {resume}: no such file. train writes <output>/checkpoints/last.safetensors after every epoch."]) ? 2 : 0;

        // Nothing in the output folder is created or replaced before the options, the data and the
        // checkpoint to resume have been checked, and the logs are written only as epochs end.
        return Cli.Guard(() =>
        {
            var data = Recipes.LoadData(config);
            if (Cli.Fail(TrainOptions.RunProblems(config, data.Train.Count)))
                return 2;
            using var device = Recipes.CreateDevice(config);
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
            var (trainer, model, optimizer) = Recipes.BuildTrainer(config, device, data.Train, callbacks, progress);

            Console.WriteLine($"ilgpu-train: {config.Model} on {data.Train.Name} ({data.Train.Count} samples, {data.Train.Classes} classes) on {device}");
            Console.WriteLine($"  {data.ValidationNote}");
            Console.WriteLine($"  optimizer: {Recipes.Describe(config)}; batch {config.BatchSize}; label smoothing {config.LabelSmoothing}; dropout {config.EffectiveDropout}; augmentation {config.Augment}; {(config.MixedPrecision ? "mixed precision fp16 with dynamic loss scaling" : "fp32")}");
            Console.WriteLine(model.Summary(data.Train.SampleShape, config.BatchSize));

            TrainState? from = null;
            try
            {
                if (resume is not null)
                    from = Resuming.Resume(resume, device, trainer, optimizer, config, progress);
                OutputFolder.Require(config.Output, "--output");
                OutputFolder.Require(ckptDir, "--output");
            }
            catch
            {
                from?.Dispose();
                throw;
            }

            var (result, seconds) = Cli.Timed(() => trainer.Fit(data.Train, data.Validation, from));
            using var final = result.State;
            var test = trainer.Evaluate(final.Params, final.State, data.Test);
            double trainSeconds = final.History.Epochs.Sum(e => e.Seconds);
            Console.WriteLine();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{result.StopReason}: {final.Epoch} epochs in {seconds:F1} s ({trainSeconds / Math.Max(final.Step, 1) * 1000:F2} ms/batch, {final.History.Epochs.Sum(e => e.Samples) / Math.Max(trainSeconds, 1e-9):F0} samples/s)"));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"test: loss {test.Loss:F4}, accuracy {test.Accuracy:F4}, top-{test.K} {test.TopK:F4} on {test.Samples} samples"));
            var findings = CurveDiagnosis.Diagnose(final.History, data.Train.Classes, TrainOptions.PlannedUpdates(config, data.Train.Count));
            Console.WriteLine(CurveDiagnosis.Format(findings));
            string png = Path.Combine(config.Output, "curves.png");
            OutputFolder.Writing(png, "plot", () => Plots.SaveCurves(final.History, png, $"{config.Model} on {config.Dataset}"), atomic: true);
            Console.WriteLine($"wrote {png}, {Path.Combine(config.Output, "metrics.csv")}, {Path.Combine(config.Output, "learning_rate.csv")}, checkpoints in {ckptDir}");
            TrainOptions.Warn(findings);
            return 0;
        });
    }
}

/// <summary>The options of <c>train</c> (shared by compare-optimizers), with PyTorch-peer defaults.</summary>
internal sealed class TrainOptions
{
    private static readonly RunConfig D = new();

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

    public Option<string> Augment { get; } = new("--augment") { Description = "none, or a comma list of flip, vflip, crop, rotate, jitter, saturation, hue, resized-crop, erasing, mixup, cutmix, each optionally name=value (e.g. crop=4, hue=0.1, mixup=0.2; on the device).", DefaultValueFactory = _ => D.Augment };

    public Option<bool> MixedPrecision { get; } = new("--mixed-precision") { Description = "FP16 GEMM operands and activations with fp32 master weights and dynamic loss scaling." };

    public Option<int> Accumulate { get; } = new("--accumulate") { Description = "Gradient accumulation: batches per optimizer update.", DefaultValueFactory = _ => D.Accumulate };

    public Option<double> Clip { get; } = new("--clip") { Description = "Clip the global gradient norm at this value (0: off).", DefaultValueFactory = _ => D.Clip };

    public Option<int> EarlyStopping { get; } = new("--early-stopping") { Description = "Stop when val_loss has not improved for this many epochs, restoring the best weights (default: off).", DefaultValueFactory = _ => -1 };

    public Option<string?> Device { get; } = new("--device") { Description = "cpu, cpu-kernels, cuda or opencl (default: $ILGPUTRAIN_DEVICE, else the best available)." };

    public Option<ulong> Seed { get; } = new("--seed") { Description = "Seed of initialization, shuffling, dropout and augmentation.", DefaultValueFactory = _ => D.Seed };

    public Option<string> Output { get; } = new("--output") { Description = "Folder for metrics, plots and checkpoints.", DefaultValueFactory = _ => D.Output };

    public Option<int> TrainLimit { get; } = new("--train-limit") { Description = "Train on the first N samples only (0: all).", DefaultValueFactory = _ => 0 };

    public Option<int> ValSize { get; } = new("--val-size") { Description = "Hold out N training samples for validation (0: validate on the test split).", DefaultValueFactory = _ => 0 };

    public Option<string?> Resume { get; } = new("--resume") { Description = "Continue a run from a checkpoint (.safetensors) written by an earlier train." };

    /// <summary>Every option, in help order.</summary>
    public IReadOnlyList<Option> All => [Model, Dataset, Data, Optimizer, Lr, WeightDecay, Momentum, Schedule, Warmup, Epochs, BatchSize, LabelSmoothing, Dropout, Augment, MixedPrecision, Accumulate, Clip, EarlyStopping, Device, Seed, Output, TrainLimit, ValSize, Resume];

    /// <summary>Adds the options to a command, less those it does not use (a command lists only options that work).</summary>
    /// <param name="c">The command.</param>
    /// <param name="except">Options the command does not use.</param>
    public void AddTo(Command c, params Option[] except)
    {
        foreach (var opt in All.Except(except))
            c.Options.Add(opt);
    }

    /// <summary>The problems of a run that only the data reveal: a gradient accumulation larger than the run, which would make no update.</summary>
    /// <param name="c">The run.</param>
    /// <param name="trainSamples">Samples in its training set.</param>
    /// <returns>The problems, each naming the numbers and the fix; empty when none.</returns>
    public static IReadOnlyList<string> RunProblems(RunConfig c, int trainSamples)
    {
        long batches = ((long)trainSamples + c.BatchSize - 1) / c.BatchSize;
        long total = c.Epochs * batches;
        if (c.Accumulate <= total)
            return [];
        return [$"--accumulate {c.Accumulate}: the run has only {total} batch(es) ({c.Epochs} epoch(s) of {batches} batch(es) of {c.BatchSize} from {trainSamples} samples), so it would make no optimizer update; use --accumulate {Math.Max(1, total)} or less, or more --epochs or --train-limit."];
    }

    /// <summary>The updates the run's learning-rate schedule spans, or null for a schedule that does not depend on the run's length.</summary>
    /// <param name="c">The run.</param>
    /// <param name="trainSamples">Samples in its training set.</param>
    /// <returns>The planned updates, or null.</returns>
    public static long? PlannedUpdates(RunConfig c, int trainSamples) =>
        c.Schedule is "constant" or "plateau" ? null : Recipes.TotalUpdates(c, trainSamples);

    /// <summary>A warning on stderr for each finding that makes the run's result suspect (it still exits 0: the run did finish).</summary>
    /// <param name="findings">The run's diagnosis.</param>
    public static void Warn(IReadOnlyList<Finding> findings)
    {
        foreach (var f in findings.Where(CurveDiagnosis.IsWarning))
            Console.Error.WriteLine($"warning: {f.Summary} {f.Evidence}");
    }

    /// <summary>Every problem with the options, each naming the option and the fix; empty when valid.</summary>
    public static IReadOnlyList<string> Problems(RunConfig c)
    {
        var p = new List<string>();
        void Require(bool ok, string message)
        {
            if (!ok)
                p.Add(message);
        }

        static string F(double v) => v.ToString(CultureInfo.InvariantCulture);
        Require(Models.Names.Contains(c.Model), $"--model {c.Model}: unknown; use one of {string.Join(", ", Models.Names)}.");
        Require(Recipes.Datasets.Contains(c.Dataset), $"--dataset {c.Dataset}: unknown; use one of {string.Join(", ", Recipes.Datasets)}.");
        Require(Recipes.Optimizers.Contains(c.Optimizer), $"--optimizer {c.Optimizer}: unknown; use one of {string.Join(", ", Recipes.Optimizers)}.");
        Require(Recipes.Schedules.Contains(c.Schedule), $"--schedule {c.Schedule}: unknown; use one of {string.Join(", ", Recipes.Schedules)}.");
        Require(double.IsFinite(c.LearningRate) && c.LearningRate > 0 && c.LearningRate <= 10, $"--lr {F(c.LearningRate)}: the learning rate must be in (0, 10].");
        Require(double.IsFinite(c.WeightDecay) && c.WeightDecay >= 0 && c.WeightDecay < 1, $"--weight-decay {F(c.WeightDecay)}: must be in [0, 1).");
        Require(double.IsFinite(c.Momentum) && c.Momentum >= 0 && c.Momentum < 1, $"--momentum {F(c.Momentum)}: must be in [0, 1).");
        Require(c.WarmupSteps >= 0, $"--warmup {c.WarmupSteps}: must be 0 or more steps.");
        Require(c.Epochs >= 1 && c.Epochs <= 10000, $"--epochs {c.Epochs}: must be between 1 and 10000.");
        Require(c.BatchSize >= 1 && c.BatchSize <= 65536, $"--batch-size {c.BatchSize}: must be between 1 and 65536.");
        Require(c.LabelSmoothing >= 0 && c.LabelSmoothing < 1, $"--label-smoothing {F(c.LabelSmoothing)}: must be in [0, 1).");
        Require(c.Dropout is null || (c.Dropout >= 0 && c.Dropout < 1), $"--dropout {(c.Dropout is { } d ? F(d) : "")}: must be in [0, 1).");
        Require(c.Accumulate >= 1 && c.Accumulate <= 1024, $"--accumulate {c.Accumulate}: must be between 1 and 1024 batches.");
        Require(double.IsFinite(c.Clip) && c.Clip >= 0, $"--clip {F(c.Clip)}: the gradient-norm limit must be 0 (off) or more.");
        Require(c.EarlyStopping >= -1, $"--early-stopping {c.EarlyStopping}: the patience must be 0 or more (or leave it out).");
        Require(c.TrainLimit >= 0, $"--train-limit {c.TrainLimit}: must be 0 (all) or more.");
        Require(c.ValSize >= 0, $"--val-size {c.ValSize}: must be 0 (validate on the test split) or more.");
        Require(c.Device is null or "cpu" or "cpu-kernels" or "cuda" or "opencl", $"--device {c.Device}: use cpu, cpu-kernels, cuda or opencl.");
        Require(RunConfig.AugmentProblem(c.Augment) is null, $"--augment {c.Augment}: {RunConfig.AugmentProblem(c.Augment)}.");
        return p;
    }

    public RunConfig Read(ParseResult p) => new()
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
