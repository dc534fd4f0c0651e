using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using IlgpuTrain.Functional;
using IlgpuTrain.Training;
using IlgpuTrain.Training.Distributed;

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
        command.Options.Add(o.Profile);
        command.SetAction(parse => Run(o.Read(parse), parse.GetValue(o.Resume), ProfileSteps(parse, o)));
        return (command, o);
    }

    // --profile alone: 50 steps; --profile N: N; absent: 0 (no profile). An absent option with a
    // default value still has a result, marked implicit.
    private static int ProfileSteps(ParseResult parse, TrainOptions o) =>
        parse.GetResult(o.Profile) is not { Implicit: false } r ? 0 : r.Tokens.Count == 0 ? TrainOptions.DefaultProfileSteps : parse.GetValue(o.Profile);

    private static int Run(RunConfig config, string? resume, int profileSteps)
    {
        if (Cli.Fail(TrainOptions.Problems(config)))
            return 2;
        if (resume is not null && config.InitFrom is not null)
            return Cli.Fail([$"--resume {resume} and --init-from {config.InitFrom}: --resume continues a run with its own weights, --init-from starts a new one from a file's; pick one."]) ? 2 : 0;
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
            using var group = config.Distributed ? ProcessGroup.Create(device, CollectivesCommand.ParseBackend(config.Backend), TimeSpan.FromSeconds(config.CollectiveTimeout)) : null;
            var console = Console.Out;
            if (group is { IsMain: false })
                Console.SetOut(TextWriter.Null);                                                   // logs and progress from rank 0 only
            try
            {
                return Train(config, resume, data, device, group, profileSteps);
            }
            finally
            {
                Console.SetOut(console);
            }
        });
    }

    private static int Train(RunConfig config, string? resume, RunData data, ComputeDevice device, ProcessGroup? group, int profileSteps)
    {
        {
            using var progress = new ConsoleProgress();
            string ckptDir = Path.Combine(config.Output, "checkpoints");
            var task = Recipes.Task(config);
            var callbacks = new List<TrainingCallback>
            {
                new LearningRateLogger(Path.Combine(config.Output, "learning_rate.csv")),
                new StepLossLogger(Path.Combine(config.Output, "steps.csv")),
                new MetricsLogger(Path.Combine(config.Output, "metrics.csv")),
                new CheckpointCallback(ckptDir, config.ToJson(), saveBest: task.Monitor)
                {
                    Normalization = Recipes.LoadedNormalization(config.Dataset),
                    Task = ModelTask.Of(task),
                    OutputNames = data.Train switch
                    {
                        InMemoryDataset m => m.ClassNames,
                        ImageFolderDataset f => f.ClassNames,
                        TabularDataset t when t.Classes > 0 => t.ClassNames,
                        TabularDataset t when config.Task != "classification" => t.TargetNames,
                        TextDataset => data.Vocabulary?.Names,
                        _ => null,
                    },
                    Standardization = data.Standardization,
                    FeatureNames = data.Train is TabularDataset tab ? tab.FeatureNames : null,
                },
            };
            if (config.EarlyStopping >= 0)
                callbacks.Insert(0, new EarlyStopping(task.Monitor, patience: config.EarlyStopping, restoreBestWeights: true));
            var profile = profileSteps > 0 ? new StepProfile() : null;
            var (trainer, model, optimizer) = Recipes.BuildTrainer(config, device, data.Train, callbacks, progress, group, o => o with { Profile = profile, ProfileSteps = Math.Max(1, profileSteps) });
            int perRank = Recipes.SamplesPerRank(data.Train.Count, group);
            if (group is not null)
                Console.WriteLine($"  distributed: {group.WorldSize} ranks on {group.Backend.ToString().ToUpperInvariant()}, batch {config.BatchSize} per rank ({group.WorldSize * config.BatchSize} in all), {perRank} samples per rank and epoch");

            string what = config.Dataset == "text" ? $"{task.Name}, a vocabulary of {data.Train.Classes}" : config.Task == "classification" ? $"{data.Train.Classes} classes" : $"{task.Name}, {Recipes.Outputs(config, data.Train)} output(s)";
            Console.WriteLine($"ilgpu-train: {config.Model} on {data.Train.Name} ({data.Train.Count} samples, {what}) on {device}");
            Console.WriteLine($"  {data.ValidationNote}");
            Console.WriteLine($"  optimizer: {Recipes.Describe(config)}; batch {config.BatchSize}; label smoothing {config.LabelSmoothing}; dropout {config.EffectiveDropout}; augmentation {config.Augment}; {(config.MixedPrecision ? "mixed precision fp16 with dynamic loss scaling" : "fp32")}");
            if (ScaledLearningRate.For(config, Recipes.TotalUpdates(config, perRank)) is { } scaled)
                Console.WriteLine($"  {scaled.Describe()}");
            Console.WriteLine(model.Summary(data.Train.SampleShape, config.BatchSize, trainer.Options.Trainable));

            TrainState? from = null;
            try
            {
                from = resume is not null
                    ? Resuming.Resume(resume, device, trainer, optimizer, config, progress)
                    : Recipes.Start(config, trainer, progress);
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
            Console.WriteLine(Describe(test));
            if (final.Averaged is not null)
            {
                var averaged = trainer.EvaluateAveraged(final, data.Test);
                Console.WriteLine($"test ({trainer.Options.Averaging!.Kind} weights): {Describe(averaged).Replace("test: ", string.Empty, StringComparison.Ordinal)}");
            }
            // Tasks other than classification are judged by their losses only (no ln C reference, no accuracy).
            var findings = CurveDiagnosis.Diagnose(final.History, config.Task == "classification" && config.Dataset != "text" ? data.Train.Classes : null, TrainOptions.PlannedUpdates(config, perRank));
            Console.WriteLine(CurveDiagnosis.Format(findings));
            string png = Path.Combine(config.Output, "curves.png");
            if (group is not { IsMain: false })
                OutputFolder.Writing(png, "plot", () => Plots.SaveCurves(final.History, png, $"{config.Model} on {config.Dataset}"), atomic: true);
            Console.WriteLine($"wrote {png}, {Path.Combine(config.Output, "metrics.csv")}, {Path.Combine(config.Output, "learning_rate.csv")}, {Path.Combine(config.Output, "steps.csv")}, checkpoints in {ckptDir}");
            if (profile is { Steps: > 0 } && group is not { IsMain: false })
            {
                string table = profile.Table();
                string file = Path.Combine(config.Output, "profile.txt");
                Console.WriteLine($"where a training step's time went (mean of {profile.Steps} synchronized steps after the first {trainer.Options.ProfileSkip}; an op's forward is the time since the previous recorded op):");
                Console.WriteLine(table);
                OutputFolder.Writing(file, "profile", () => File.WriteAllText(file, table), atomic: true);
                Console.WriteLine($"wrote {file}");
            }
            else if (profile is not null && group is not { IsMain: false })
                Console.WriteLine($"--profile: the run had {final.Step} step(s), all within the first {trainer.Options.ProfileSkip} that are left out; nothing was timed (train longer, e.g. more --epochs or --train-limit).");

            if (group is not { IsMain: false })
                TrainOptions.Warn(findings);
            return 0;
        }
    }

    /// <summary>The test line: loss, accuracy and top-k for classification, else the task's metrics.</summary>
    /// <param name="r">The evaluation.</param>
    /// <returns>The line.</returns>
    internal static string Describe(EvalResult r) => r.K > 0 && !double.IsNaN(r.Accuracy)
        ? string.Create(CultureInfo.InvariantCulture, $"test: loss {r.Loss:F4}, accuracy {r.Accuracy:F4}, top-{r.K} {r.TopK:F4} on {r.Samples} samples")
        : string.Create(CultureInfo.InvariantCulture, $"test: loss {r.Loss:F4}, {string.Join(", ", r.Metrics.Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Key} {kv.Value:F4}")))} on {r.Samples} samples");
}

/// <summary>The options of <c>train</c> (shared by compare-optimizers), with PyTorch-peer defaults.</summary>
internal sealed class TrainOptions
{
    private static readonly RunConfig D = new();

    public Option<string> Model { get; } = new("--model") { Description = "mlp, cnn, transformer (--dataset text), resnet (a small ResNet-8), resnet20, resnet32, resnet44, resnet56, resnet110 (He et al.'s CIFAR ResNets), or resnet18, resnet34, resnet50 (torchvision's, with its state_dict names).", DefaultValueFactory = _ => D.Model };

    public Option<string> Dataset { get; } = new("--dataset") { Description = "fashion-mnist, mnist, cifar10, csv, image-folder (your own images: --data DIR with one subfolder per class), or text (a UTF-8 file or folder for --model transformer; default Debian's fortunes).", DefaultValueFactory = _ => D.Dataset };

    public Option<string?> Data { get; } = new("--data") { Description = "Folder with the data set's files (default: $ILGPUTRAIN_FASHION_MNIST or /usr/share/datasets/fashion-mnist for Fashion-MNIST); the CSV file for --dataset csv; required for image-folder." };

    public Option<string> Task { get; } = new("--task") { Description = "classification, regression or multilabel (regression and multilabel need --dataset csv).", DefaultValueFactory = _ => D.Task };

    public Option<string?> Target { get; } = new("--target") { Description = "--dataset csv: the target column(s), comma-separated (the class column for classification, 0/1 label columns for multilabel)." };

    public Option<string?> Features { get; } = new("--features") { Description = "--dataset csv: the feature columns, comma-separated (default: every other column)." };

    public Option<string?> Loss { get; } = new("--loss") { Description = "Regression loss: mse (default), huber, l1 or smooth-l1." };

    public Option<double> Delta { get; } = new("--delta") { Description = "Huber's delta and smooth-l1's beta.", DefaultValueFactory = _ => D.Delta };
    public Option<int> BlockSize { get; } = new("--block-size") { Description = "--dataset text: characters per sample, the transformer's context.", DefaultValueFactory = _ => D.BlockSize };

    public Option<int> Dim { get; } = new("--dim") { Description = "--model transformer: the model width D (feed-forward 4 D).", DefaultValueFactory = _ => D.ModelDim };

    public Option<int> Layers { get; } = new("--layers") { Description = "--model transformer: the number of blocks.", DefaultValueFactory = _ => D.Layers };

    public Option<int> Heads { get; } = new("--heads") { Description = "--model transformer: attention heads (a divisor of --dim).", DefaultValueFactory = _ => D.Heads };

    public Option<int> ImageSize { get; } = new("--image-size") { Description = "image-folder: resize the shorter side to N, then center-crop N x N (0: keep the images' size, which must then be one).", DefaultValueFactory = _ => D.ImageSize };

    public Option<int?> Workers { get; } = new("--workers") { Description = "Threads that load batches ahead of training (default: min(4, cores); 0: the training thread). The batches are the same whatever the number." };

    public Option<string> Optimizer { get; } = new("--optimizer") { Description = "sgd, momentum, nesterov, adam or adamw.", DefaultValueFactory = _ => D.Optimizer };

    public Option<double> Lr { get; } = new("--lr") { Description = "Peak learning rate.", DefaultValueFactory = _ => D.LearningRate };

    public Option<double> WeightDecay { get; } = new("--weight-decay") { Description = "Weight decay (decoupled for adamw, L2 otherwise).", DefaultValueFactory = _ => D.WeightDecay };

    public Option<double> Momentum { get; } = new("--momentum") { Description = "Momentum of momentum/nesterov SGD (one-cycle cycles it between 0.85 and 0.95).", DefaultValueFactory = _ => D.Momentum };

    public Option<string> Schedule { get; } = new("--schedule") { Description = "onecycle, cosine, step, constant, warmup-cosine, wsd (warmup-stable-decay) or plateau (reduce on validation-loss plateau).", DefaultValueFactory = _ => D.Schedule };

    public Option<int> Warmup { get; } = new("--warmup") { Description = "Warmup steps of warmup-cosine and wsd (default 5% of the run), and of --scale-lr's gradual warmup.", DefaultValueFactory = _ => 0 };

    public Option<int> Epochs { get; } = new("--epochs") { Description = "Epochs.", DefaultValueFactory = _ => D.Epochs };

    public Option<int> BatchSize { get; } = new("--batch-size") { Description = "Batch size.", DefaultValueFactory = _ => D.BatchSize };

    public Option<float> LabelSmoothing { get; } = new("--label-smoothing") { Description = "Label smoothing eps.", DefaultValueFactory = _ => D.LabelSmoothing };

    public Option<float?> Dropout { get; } = new("--dropout") { Description = "Dropout probability (default: 0.2 for mlp, 0.25 for cnn, 0 for resnet)." };

    public Option<string> Augment { get; } = new("--augment") { Description = "none, or a comma list of flip, vflip, crop, rotate, jitter, saturation, hue, resized-crop, erasing, mixup, cutmix, each optionally name=value (e.g. crop=4, hue=0.1, mixup=0.2; on the device).", DefaultValueFactory = _ => D.Augment };

    public Option<bool> MixedPrecision { get; } = new("--mixed-precision") { Description = "FP16 GEMM operands and activations with fp32 master weights and dynamic loss scaling." };

    public Option<int> Accumulate { get; } = new("--accumulate") { Description = "Gradient accumulation: batches per optimizer update.", DefaultValueFactory = _ => D.Accumulate };

    public Option<bool> ScaleLr { get; } = new("--scale-lr") { Description = "Linear scaling rule: multiply --lr by (batch x accumulate)/--base-batch-size, with warmup (the schedule's own, else 5 epochs, at most half the run, or --warmup updates)." };

    public Option<int> BaseBatchSize { get; } = new("--base-batch-size") { Description = "The batch --lr was tuned for: the reference of --scale-lr.", DefaultValueFactory = _ => D.BaseBatchSize };

    public Option<double> Clip { get; } = new("--clip") { Description = "Clip the global gradient norm at this value (0: off).", DefaultValueFactory = _ => D.Clip };

    public Option<int> EarlyStopping { get; } = new("--early-stopping") { Description = "Stop when val_loss has not improved for this many epochs, restoring the best weights (default: off).", DefaultValueFactory = _ => -1 };

    public Option<string?> Device { get; } = new("--device") { Description = "cpu, cpu-kernels, cuda or opencl (default: $ILGPUTRAIN_DEVICE, else the best available)." };

    public Option<ulong> Seed { get; } = new("--seed") { Description = "Seed of initialization, shuffling, dropout and augmentation.", DefaultValueFactory = _ => D.Seed };

    public Option<string> Output { get; } = new("--output") { Description = "Folder for metrics, plots and checkpoints.", DefaultValueFactory = _ => D.Output };

    public Option<int> TrainLimit { get; } = new("--train-limit") { Description = "Train on the first N samples only (0: all).", DefaultValueFactory = _ => 0 };

    public Option<int> ValSize { get; } = new("--val-size") { Description = "Hold out N training samples for validation (0: validate on the test split).", DefaultValueFactory = _ => 0 };

    public Option<double?> Ema { get; } = new("--ema") { Description = "Keep an exponential moving average of the weights with this decay (e.g. 0.999; timm's ModelEmaV3) and evaluate it too." };

    public Option<int> SwaStart { get; } = new("--swa-start") { Description = "Stochastic weight averaging: average the weights at the end of every epoch from this one (from 1), then refresh BatchNorm statistics (0: off).", DefaultValueFactory = _ => 0 };

    public Option<string?> Resume { get; } = new("--resume") { Description = "Continue a run from a checkpoint (.safetensors) written by an earlier train." };

    public Option<string?> InitFrom { get; } = new("--init-from") { Description = "Start from the weights of a safetensors file instead of a random initialization (fine-tuning): a PyTorch state_dict (torchvision's names for resnet18/34/50) or a checkpoint of train. A head of another shape (new classes) starts fresh." };

    public Option<bool> Strict { get; } = new("--strict") { Description = "With --init-from: every parameter and buffer must be in the file and every tensor of the file in the model (true, PyTorch's default); false loads what matches and lists the rest.", DefaultValueFactory = _ => D.InitStrict };

    public Option<string?> InitSkip { get; } = new("--init-skip") { Description = "With --init-from: parameter globs that keep their initialization, comma-separated (e.g. 'fc.*')." };

    public Option<bool> Distributed { get; } = new("--distributed") { Description = "Data-parallel training across the ranks of mpirun -np N (--batch-size is per rank); rank 0 logs and writes checkpoints." };

    public Option<string> Backend { get; } = new("--backend") { Description = "With --distributed: auto (NCCL when every rank has a CUDA device, else MPI), mpi or nccl.", DefaultValueFactory = _ => D.Backend };

    public Option<bool> SyncBatchNorm { get; } = new("--sync-batchnorm") { Description = "With --distributed: BatchNorm statistics over every rank's batch (PyTorch's SyncBatchNorm) instead of each rank's own." };

    public Option<bool> NoOverlap { get; } = new("--no-overlap") { Description = "With --distributed: all-reduce the gradient buckets after the backward instead of during it (the same gradients; for timing the overlap)." };

    public Option<double> BucketMb { get; } = new("--bucket-mb") { Description = "With --distributed: the gradient bucket size in MiB (default 25, as DDP's bucket_cap_mb); smaller buckets start their all-reduce earlier in the backward.", DefaultValueFactory = _ => D.BucketMb };

    public Option<double> CollectiveTimeout { get; } = new("--collective-timeout") { Description = "With --distributed: seconds a collective may wait for the other ranks before the job is aborted with a message (default 300).", DefaultValueFactory = _ => D.CollectiveTimeout };

    public Option<int> Profile { get; } = new("--profile") { Description = "Time N training steps (after the first 10) op by op, forward and backward, and the work around them; print the table at the end and write <output>/profile.txt. The timed steps synchronize the device.", Arity = ArgumentArity.ZeroOrOne, DefaultValueFactory = _ => 0, CustomParser = ProfileSteps };

    /// <summary>The steps --profile times when it is given without a number.</summary>
    public const int DefaultProfileSteps = 50;

    /// <summary>--profile N: N steps (a positive integer).</summary>
    private static int ProfileSteps(ArgumentResult r)
    {
        if (r.Tokens.Count == 0)
            return DefaultProfileSteps;
        string text = r.Tokens[0].Value;
        if (int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out int steps) && steps > 0)
            return steps;
        r.AddError($"--profile {text}: give the number of steps to time, a positive integer (--profile alone times 50).");
        return 0;
    }

    public Option<string?> Freeze { get; } = new("--freeze") { Description = "Parameter globs that do not train, comma-separated: * within a path segment, ** across (e.g. 'conv1.*,bn1.*,layer1.**'). Frozen parameters get no gradient and no update." };

    /// <summary>Every option, in help order.</summary>
    public IReadOnlyList<Option> All => [Model, Dataset, Data, BlockSize, Dim, Layers, Heads, ImageSize, Workers, Task, Target, Features, Loss, Delta, Optimizer, Lr, WeightDecay, Momentum, Schedule, Warmup, Epochs, BatchSize, LabelSmoothing, Dropout, Augment, MixedPrecision, Accumulate, ScaleLr, BaseBatchSize, Clip, EarlyStopping, Device, Seed, Output, TrainLimit, ValSize, Ema, SwaStart, Resume, InitFrom, Strict, InitSkip, Freeze, Distributed, Backend, SyncBatchNorm, NoOverlap, BucketMb, CollectiveTimeout];

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
        Require(c.Dataset != "text" || c.Model == "transformer", $"--dataset text: trains a language model; add --model transformer.");
        Require(c.Model != "transformer" || c.Dataset == "text", $"--model transformer: trains on text; add --dataset text [--data FILE] (default: Debian's fortunes).");
        Require(c.Dataset != "text" || c.Task == "classification", $"--task {c.Task}: --dataset text trains next-character prediction; leave --task out.");
        Require(c.BlockSize is >= 2 and <= 8192, $"--block-size {c.BlockSize}: must be from 2 to 8192 characters.");
        Require(c.ModelDim is >= 1 and <= 16384, $"--dim {c.ModelDim}: must be from 1 to 16384.");
        Require(c.Layers is >= 0 and <= 256, $"--layers {c.Layers}: must be from 0 to 256.");
        Require(c.Heads >= 1 && c.ModelDim % c.Heads == 0, $"--heads {c.Heads}: must divide --dim {c.ModelDim}.");
        Require(Recipes.Datasets.Contains(c.Dataset), $"--dataset {c.Dataset}: unknown; use one of {string.Join(", ", Recipes.Datasets)}.");
        Require(Recipes.Tasks.Contains(c.Task), $"--task {c.Task}: unknown; use one of {string.Join(", ", Recipes.Tasks)}.");
        Require(c.Task is not ("regression" or "multilabel") || c.Dataset == "csv", $"--task {c.Task}: trains on tabular data; use --dataset csv --data FILE.csv --target COLUMN.");
        Require(c.Dataset != "csv" || !string.IsNullOrWhiteSpace(c.DataDir), "--dataset csv: give the file with --data FILE.csv.");
        Require(c.Dataset != "csv" || !string.IsNullOrWhiteSpace(c.Target), "--dataset csv: name the target column(s) with --target COLUMN.");
        Require(c.Loss is null || (c.Task == "regression" && Recipes.RegressionLosses.Contains(c.Loss)), $"--loss {c.Loss}: use one of {string.Join(", ", Recipes.RegressionLosses)} with --task regression.");
        Require(double.IsFinite(c.Delta) && c.Delta > 0, $"--delta {F(c.Delta)}: must be positive.");
        Require(c.Dataset != "image-folder" || !string.IsNullOrEmpty(c.DataDir), "--dataset image-folder needs --data DIR: a folder with one subfolder of images per class.");
        Require(c.ImageSize is >= 0 and <= RunConfig.MaxImageSize, $"--image-size {c.ImageSize}: must be 0 (keep the images' size) or a side from 1 to {RunConfig.MaxImageSize} pixels.");
        Require(c.Workers is null or (>= 0 and <= DataLoader.MaxWorkers), $"--workers {c.Workers}: must be from 0 (load on the training thread) to {DataLoader.MaxWorkers}.");
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
        Require(c.BaseBatchSize >= 1 && c.BaseBatchSize <= 65536, $"--base-batch-size {c.BaseBatchSize}: must be between 1 and 65536.");
        Require(double.IsFinite(c.Clip) && c.Clip >= 0, $"--clip {F(c.Clip)}: the gradient-norm limit must be 0 (off) or more.");
        Require(c.EarlyStopping >= -1, $"--early-stopping {c.EarlyStopping}: the patience must be 0 or more (or leave it out).");
        Require(c.TrainLimit >= 0, $"--train-limit {c.TrainLimit}: must be 0 (all) or more.");
        Require(c.ValSize >= 0, $"--val-size {c.ValSize}: must be 0 (validate on the test split) or more.");
        Require(c.Device is null or "cpu" or "cpu-kernels" or "cuda" or "opencl", $"--device {c.Device}: use cpu, cpu-kernels, cuda or opencl.");
        Require(c.Ema is null || (c.Ema >= 0 && c.Ema <= 1), $"--ema {(c.Ema is { } e ? F(e) : "")}: the decay must be in [0, 1] (for example 0.999).");
        Require(c.SwaStart >= 0, $"--swa-start {c.SwaStart}: must be 0 (off) or an epoch from 1.");
        Require(c.SwaStart <= c.Epochs, $"--swa-start {c.SwaStart}: the run has only {c.Epochs} epoch(s), so nothing would be averaged; start at an epoch from 1 to {c.Epochs}, or train for more --epochs.");
        Require(c.Ema is null || c.SwaStart == 0, $"--ema and --swa-start: a run averages its weights one way; pick one.");
        Require(RunConfig.AugmentProblem(c.Augment) is null, $"--augment {c.Augment}: {RunConfig.AugmentProblem(c.Augment)}.");
        Require(c.InitFrom is null || File.Exists(c.InitFrom), $"--init-from {c.InitFrom}: no such file; give a safetensors file (a PyTorch state_dict saved with safetensors.torch.save_file, or a checkpoint of train).");
        Require(c.InitSkip is null || c.InitFrom is not null, $"--init-skip {c.InitSkip}: names weights not to load, but nothing is loaded; add --init-from FILE or leave it out.");
        Require(c.InitStrict || c.InitFrom is not null, "--strict false: says how to load --init-from, which is not given; add --init-from FILE or leave it out.");
        Require(c.Freeze is null || RunConfig.Globs(c.Freeze).Length > 0, $"--freeze '{c.Freeze}': give parameter globs, comma-separated, such as 'conv1.*,layer1.**'.");
        Require(c.Backend is "auto" or "mpi" or "nccl", $"--backend {c.Backend}: use auto, mpi or nccl.");
        Require(c.Distributed || c.Backend == "auto", $"--backend {c.Backend}: chooses the engine of a distributed run; add --distributed (under mpirun -np N) or leave it out.");
        Require(c.Distributed || c.OverlapBackward, "--no-overlap: changes when a distributed run all-reduces its gradients; add --distributed (under mpirun -np N) or leave it out.");
        Require(double.IsFinite(c.BucketMb) && c.BucketMb * 1024 * 1024 >= sizeof(float), $"--bucket-mb {F(c.BucketMb)}: a bucket must hold at least one float; give MiB such as 25 (the default) or 0.5.");
        Require(c.Distributed || c.BucketMb == D.BucketMb, $"--bucket-mb {F(c.BucketMb)}: sizes the gradient buckets of a distributed run; add --distributed (under mpirun -np N) or leave it out.");
        Require(c.Distributed || !c.SyncBatchNorm, "--sync-batchnorm: synchronizes BatchNorm across the ranks of a distributed run; add --distributed (under mpirun -np N) or leave it out.");
        Require(double.IsFinite(c.CollectiveTimeout) && c.CollectiveTimeout > 0, $"--collective-timeout {F(c.CollectiveTimeout)}: give a positive number of seconds (default 300).");
        Require(!c.Model.StartsWith("resnet", StringComparison.Ordinal) || c.Model == "resnet" || c.Dropout is null or 0, $"--dropout {c.Dropout?.ToString(CultureInfo.InvariantCulture)}: {c.Model} has no dropout layer; leave --dropout out.");
        return p;
    }

    /// <summary>The run's configuration from the parsed options; an option the command does not list keeps RunConfig's default.</summary>
    public RunConfig Read(ParseResult p)
    {
        T V<T>(Option<T> option, T fallback) => p.CommandResult.Command.Options.Contains(option) ? p.GetValue(option)! : fallback;
        return new RunConfig
        {
            Model = V(Model, D.Model),
            Dataset = V(Dataset, D.Dataset),
            DataDir = V(Data, D.DataDir),
            Task = V(Task, D.Task),
            Target = V(Target, D.Target),
            Features = V(Features, D.Features),
            Loss = V(Loss, D.Loss),
            Delta = V(Delta, D.Delta),
            ImageSize = V(ImageSize, D.ImageSize),
            BlockSize = V(BlockSize, D.BlockSize),
            ModelDim = V(Dim, D.ModelDim),
            Layers = V(Layers, D.Layers),
            Heads = V(Heads, D.Heads),
            Workers = V(Workers, D.Workers),
            Optimizer = V(Optimizer, D.Optimizer),
            LearningRate = V(Lr, D.LearningRate),
            WeightDecay = V(WeightDecay, D.WeightDecay),
            Momentum = V(Momentum, D.Momentum),
            Schedule = V(Schedule, D.Schedule),
            WarmupSteps = V(Warmup, D.WarmupSteps),
            Epochs = V(Epochs, D.Epochs),
            BatchSize = V(BatchSize, D.BatchSize),
            LabelSmoothing = V(LabelSmoothing, D.LabelSmoothing),
            Dropout = V(Dropout, D.Dropout),
            Augment = V(Augment, D.Augment),
            MixedPrecision = V(MixedPrecision, D.MixedPrecision),
            Accumulate = V(Accumulate, D.Accumulate),
            ScaleLr = V(ScaleLr, D.ScaleLr),
            BaseBatchSize = V(BaseBatchSize, D.BaseBatchSize),
            Clip = V(Clip, D.Clip),
            EarlyStopping = V(EarlyStopping, D.EarlyStopping),
            Device = V(Device, D.Device),
            Seed = V(Seed, D.Seed),
            Output = V(Output, D.Output),
            TrainLimit = V(TrainLimit, D.TrainLimit),
            ValSize = V(ValSize, D.ValSize),
            Ema = V(Ema, D.Ema),
            SwaStart = V(SwaStart, D.SwaStart),
            InitFrom = V(InitFrom, D.InitFrom),
            InitStrict = V(Strict, D.InitStrict),
            InitSkip = V(InitSkip, D.InitSkip),
            Freeze = V(Freeze, D.Freeze),
            Distributed = V(Distributed, D.Distributed),
            Backend = V(Backend, D.Backend),
            CollectiveTimeout = V(CollectiveTimeout, D.CollectiveTimeout),
            SyncBatchNorm = V(SyncBatchNorm, D.SyncBatchNorm),
            OverlapBackward = !V(NoOverlap, !D.OverlapBackward),
            BucketMb = V(BucketMb, D.BucketMb),
        };
    }
}
