using System.Globalization;

namespace IlgpuTrain.Training;

/// <summary>The data of a run: the training set, the validation set and the test set.</summary>
/// <param name="Train">The training split (limited by <see cref="RunConfig.TrainLimit"/>, less the held-out samples).</param>
/// <param name="Validation">The held-out samples (<see cref="RunConfig.ValSize"/>), else the test split.</param>
/// <param name="Test">The test split.</param>
/// <param name="ValidationNote">One line saying where the validation set came from.</param>
public sealed record RunData(IDataset Train, IDataset Validation, IDataset Test, string ValidationNote)
{
    /// <summary>
    /// The per-feature standardization fitted on the training rows of a csv data set and applied to every split
    /// (null for other data sets, or with <see cref="RunConfig.Standardize"/> off); save it with the model so that
    /// raw rows are standardized alike when predicting (<see cref="CheckpointCallback.Standardization"/>).
    /// </summary>
    public Standardization? Standardization { get; init; }

    /// <summary>The vocabulary of a text data set (null for other data sets): a language model's output names, which generation reads back.</summary>
    public CharVocabulary? Vocabulary { get; init; }
}

/// <summary>
/// Turns a <see cref="RunConfig"/> (names and numbers, as a command line gives them) into the
/// objects of a run: the learning-rate schedule, the optimizer chain, the data, the device and the
/// <see cref="Trainer"/>. This is what <c>ilgpu-train train</c> runs, so a C# program that builds
/// the same configuration trains the same run.
/// </summary>
public static class Recipes
{
    /// <summary>The optimizer names: sgd, momentum, nesterov, adam, adamw.</summary>
    public static IReadOnlyList<string> Optimizers { get; } = ["sgd", "momentum", "nesterov", "adam", "adamw"];

    /// <summary>The schedule names: onecycle, cosine, step, constant, warmup-cosine, wsd, plateau.</summary>
    public static IReadOnlyList<string> Schedules { get; } = ["onecycle", "cosine", "step", "constant", "warmup-cosine", "wsd", "plateau"];

    /// <summary>The data-set names: fashion-mnist, mnist, cifar10, csv (a CSV file: <see cref="RunConfig.DataDir"/> is its path), image-folder (your own images, <see cref="ImageFolderDataset"/>).</summary>
    public static IReadOnlyList<string> Datasets { get; } = ["fashion-mnist", "mnist", "cifar10", "csv", "image-folder", "text"];

    /// <summary>Where the text data set reads by default: Debian's fortunes (apt-get install fortunes).</summary>
    public const string DefaultText = "/usr/share/games/fortunes";

    /// <summary>The task names: classification, multilabel, regression.</summary>
    public static IReadOnlyList<string> Tasks { get; } = ["classification", "multilabel", "regression"];

    /// <summary>The regression losses: mse, huber, l1, smooth-l1.</summary>
    public static IReadOnlyList<string> RegressionLosses { get; } = ["mse", "huber", "l1", "smooth-l1"];

    /// <summary>
    /// The task of a run: classification (cross-entropy with <see cref="RunConfig.LabelSmoothing"/>),
    /// multilabel (binary cross-entropy with logits, threshold 0.5) or regression
    /// (<see cref="RunConfig.Loss"/>, mse by default, with <see cref="RunConfig.Delta"/>).
    /// </summary>
    /// <param name="config">The run.</param>
    /// <returns>The task.</returns>
    /// <exception cref="ArgumentException">Unknown task or loss.</exception>
    public static ITrainingTask Task(RunConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.Dataset == "text")
            return new LanguageModelTask { CrossEntropy = new CrossEntropyOptions { Epsilon = config.LabelSmoothing } };
        return config.Task switch
        {
            "classification" => new ClassificationTask { CrossEntropy = new CrossEntropyOptions { Epsilon = config.LabelSmoothing } },
            "multilabel" => new MultiLabelTask(),
            "regression" => new RegressionTask
            {
                Delta = (float)config.Delta,
                LossFunction = config.Loss switch
                {
                    null or "mse" => RegressionLoss.Mse,
                    "huber" => RegressionLoss.Huber,
                    "l1" => RegressionLoss.L1,
                    "smooth-l1" => RegressionLoss.SmoothL1,
                    _ => throw new ArgumentException($"Unknown regression loss \"{config.Loss}\"; use one of: {string.Join(", ", RegressionLosses)}.", nameof(config)),
                },
            },
            _ => throw new ArgumentException($"Unknown task \"{config.Task}\"; use one of: {string.Join(", ", Tasks)}.", nameof(config)),
        };
    }

    /// <summary>The width of the model's output for a run on <paramref name="train"/>: its target values or labels for regression and multilabel, else its classes.</summary>
    /// <param name="config">The run.</param>
    /// <param name="train">The training set.</param>
    /// <returns>The output width.</returns>
    public static int Outputs(RunConfig config, IDataset train)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(train);
        return config.Task != "classification" && config.Dataset != "text" && train is ITargetDataset t ? checked((int)t.TargetShape.Length) : train.Classes;
    }

    /// <summary>
    /// The model of a run on <paramref name="train"/>: <see cref="Models.Build"/>'s, or for the text data set a
    /// <see cref="TransformerLM"/> of <see cref="RunConfig.Layers"/> blocks of width <see cref="RunConfig.ModelDim"/>
    /// with <see cref="RunConfig.Heads"/> heads, feed-forward 4 D, over the vocabulary and a context of
    /// <see cref="RunConfig.BlockSize"/>, with tied weights.
    /// </summary>
    /// <param name="config">The run.</param>
    /// <param name="train">The training set (its classes are the vocabulary of a text data set).</param>
    /// <returns>The model.</returns>
    public static Layer Model(RunConfig config, IDataset train)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(train);
        return config.Model == "transformer"
            ? new TransformerLM(train.Classes, config.BlockSize, config.ModelDim, config.Heads, config.Layers, 4 * config.ModelDim, config.EffectiveDropout)
            : Models.Build(config.Model, Outputs(config, train), config.EffectiveDropout);
    }

    /// <summary>
    /// The learning-rate schedule <paramref name="name"/> over a run of <paramref name="totalUpdates"/> updates.
    /// </summary>
    /// <remarks>
    /// onecycle: PyTorch's OneCycleLR peaking at <paramref name="learningRate"/>.
    /// cosine: CosineAnnealingLR with T_max = the run.
    /// step: StepLR dropping 10x every third of the run.
    /// constant, plateau: constant (plateau adds ReduceOnPlateau in <see cref="Optimizer(RunConfig, long)"/>).
    /// warmup-cosine: linear warmup, then cosine decay to 0.
    /// wsd: linear warmup, 70% of the rest stable, then cosine decay.
    /// Warmup is <paramref name="warmupSteps"/>, or 5% of the run when 0, at most the run.
    /// </remarks>
    /// <param name="name">One of <see cref="Schedules"/>.</param>
    /// <param name="learningRate">The peak learning rate.</param>
    /// <param name="totalUpdates">Optimizer updates in the run (clamped to [1, int.MaxValue]).</param>
    /// <param name="warmupSteps">Warmup updates of warmup-cosine and wsd; 0 for 5% of the run.</param>
    /// <returns>The schedule.</returns>
    /// <exception cref="ArgumentException">Unknown name; the message lists the known ones.</exception>
    public static Schedule LearningRateSchedule(string name, double learningRate, long totalUpdates, int warmupSteps = 0)
    {
        int total = (int)Math.Clamp(totalUpdates, 1, int.MaxValue);
        int warmup = Math.Min(warmupSteps > 0 ? warmupSteps : Math.Max(1, total / 20), total);
        int stable = (total - warmup) * 7 / 10;
        return name switch
        {
            "onecycle" => new OneCycleLR(learningRate, total),
            "cosine" => new CosineAnnealingLR(learningRate, total),
            "step" => new StepLR(learningRate, Math.Max(1, total / 3)),
            "constant" or "plateau" => new Constant(learningRate),
            "warmup-cosine" => new WarmupPlateauDecay(learningRate, warmup, 0, Math.Max(1, total - warmup)),
            "wsd" => new WarmupPlateauDecay(learningRate, warmup, stable, Math.Max(1, total - warmup - stable)),
            _ => throw new ArgumentException($"Unknown schedule \"{name}\"; use one of: {string.Join(", ", Schedules)}.", nameof(name)),
        };
    }

    /// <summary>
    /// The optimizer of a run: [ClipByGlobalNorm] then SGD / momentum / Nesterov / Adam / AdamW with
    /// the schedule over <paramref name="totalUpdates"/>, [ReduceOnPlateau], wrapped in MultiSteps
    /// when accumulating. Under one-cycle, momentum (SGD) or beta1 (Adam) cycles between 0.95 and
    /// 0.85, as PyTorch's OneCycleLR with cycle_momentum does.
    /// </summary>
    /// <remarks>
    /// With <see cref="RunConfig.ScaleLr"/> the schedule peaks at the linearly scaled rate, after a
    /// warmup (<see cref="ScaledLearningRate"/>).
    /// plateau is PyTorch's ReduceLROnPlateau on the validation loss (factor 0.1), with patience 2
    /// epochs (shorter than PyTorch's 10, to act within a short run), after the optimizer's scaling.
    /// </remarks>
    /// <param name="config">The run (Optimizer, LearningRate, WeightDecay, Momentum, Schedule, WarmupSteps, Clip, Accumulate, ScaleLr, BaseBatchSize).</param>
    /// <param name="totalUpdates">Optimizer updates in the run (see <see cref="TotalUpdates"/>).</param>
    /// <returns>The gradient transformation.</returns>
    /// <exception cref="ArgumentException">Unknown optimizer or schedule name.</exception>
    public static IGradientTransformation Optimizer(RunConfig config, long totalUpdates)
    {
        ArgumentNullException.ThrowIfNull(config);
        var c = config;
        var scaled = ScaledLearningRate.For(c, totalUpdates);
        var lr = scaled?.Schedule(c.Schedule, totalUpdates, c.WarmupSteps) ?? LearningRateSchedule(c.Schedule, c.LearningRate, totalUpdates, c.WarmupSteps);
        Schedule? cycled = lr is OneCycleLR one ? one.Momentum() : null;
        var core = Core(c, lr, cycled);
        var steps = new List<IGradientTransformation>();
        if (c.Clip > 0)
            steps.Add(new ClipByGlobalNorm(c.Clip));
        steps.Add(core);
        if (c.Schedule == "plateau")
            steps.Add(ReduceOnPlateau.ForLearningRate(scaled?.LearningRate ?? c.LearningRate, patience: 2));
        var chain = steps.Count == 1 ? core : new Chain([.. steps]);
        return c.Accumulate > 1 ? new MultiSteps(chain, c.Accumulate) : chain;
    }

    /// <summary>
    /// The run's optimizer with <paramref name="learningRate"/> in place of its schedule, as a
    /// learning-rate range test sweeps it: [ClipByGlobalNorm] then the optimizer with constant
    /// momentum (no one-cycle), and no plateau reduction or gradient accumulation.
    /// </summary>
    /// <param name="config">The run (Optimizer, WeightDecay, Momentum, Clip).</param>
    /// <param name="learningRate">The learning-rate schedule.</param>
    /// <returns>The gradient transformation.</returns>
    /// <exception cref="ArgumentException">Unknown optimizer name.</exception>
    public static IGradientTransformation Optimizer(RunConfig config, Schedule learningRate)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(learningRate);
        var core = Core(config, learningRate, null);
        return config.Clip > 0 ? new Chain(new ClipByGlobalNorm(config.Clip), core) : core;
    }

    private static IGradientTransformation Core(RunConfig config, Schedule lr, Schedule? cycled) => config.Optimizer switch
    {
        "sgd" => new Sgd(lr, weightDecay: config.WeightDecay),
        "momentum" => new Sgd(lr, momentum: cycled ?? config.Momentum, weightDecay: config.WeightDecay),
        "nesterov" => new Sgd(lr, momentum: cycled ?? config.Momentum, weightDecay: config.WeightDecay, nesterov: true),
        "adam" => new Adam(lr, beta1: cycled, weightDecay: config.WeightDecay),
        "adamw" => new AdamW(lr, beta1: cycled, weightDecay: config.WeightDecay, decayMask: config.Model == "transformer" ? MatricesOnly : null),
        _ => throw new ArgumentException($"Unknown optimizer \"{config.Optimizer}\"; use one of: {string.Join(", ", Optimizers)}.", nameof(config)),
    };

    /// <summary>Optimizer updates in a run of <paramref name="config"/> over <paramref name="trainSamples"/> samples: epochs × batches per epoch / accumulation.</summary>
    /// <param name="config">The run (Epochs, BatchSize, Accumulate).</param>
    /// <param name="trainSamples">Samples in the training set.</param>
    /// <returns>The number of updates.</returns>
    public static long TotalUpdates(RunConfig config, int trainSamples)
    {
        ArgumentNullException.ThrowIfNull(config);
        int batchesPerEpoch = (trainSamples + config.BatchSize - 1) / config.BatchSize;
        return (long)config.Epochs * batchesPerEpoch / config.Accumulate;
    }

    /// <summary>A one-line description of the optimizer, for logs: "clip 1 -> adamw (lr 0.003, onecycle, weight decay 0.01)".</summary>
    /// <param name="config">The run.</param>
    /// <returns>The description.</returns>
    public static string Describe(RunConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var c = config;
        static string F(double v) => v.ToString("G3", CultureInfo.InvariantCulture);
        string clip = c.Clip > 0 ? $"clip {F(c.Clip)} -> " : string.Empty;
        string momentum = c.Optimizer is "momentum" or "nesterov" ? $", momentum {F(c.Momentum)}" : string.Empty;
        string accumulate = c.Accumulate > 1 ? $", accumulating {c.Accumulate} batches" : string.Empty;
        string lr = c.ScaleLr ? $"{F(LearningRateScaling.Linear(c.LearningRate, c.BaseBatchSize, c.BatchSize * c.Accumulate))} = {F(c.LearningRate)} scaled to batch {c.BatchSize * c.Accumulate}" : F(c.LearningRate);
        return $"{clip}{c.Optimizer} (lr {lr}, {c.Schedule}, weight decay {F(c.WeightDecay)}{momentum}){accumulate}";
    }

    /// <summary>
    /// Loads the data set of <paramref name="config"/>: the train split (limited to
    /// <see cref="RunConfig.TrainLimit"/> samples when set), a validation set (held out of the
    /// train split with <see cref="RunConfig.ValSize"/>, else the test split) and the test split.
    /// </summary>
    /// <remarks>
    /// image-folder: <see cref="RunConfig.DataDir"/> is the folder, read by
    /// <see cref="ImageFolderDataset.LoadTrainTest"/> (root/train and root/val, else a stratified
    /// 20% of each class held out as the test split, seeded by <see cref="RunConfig.Seed"/>), with
    /// Resize(<see cref="RunConfig.ImageSize"/>) and CenterCrop(<see cref="RunConfig.ImageSize"/>)
    /// when it is set. Images are decoded lazily, batch by batch, in the loader's workers.
    /// </remarks>
    /// <param name="config">The run (Dataset, DataDir, ImageSize, ValSize, TrainLimit, Seed).</param>
    /// <returns>The data.</returns>
    /// <exception cref="ArgumentException">Unknown data set, or a validation set as large as the train split.</exception>
    /// <exception cref="DataSetNotFoundException">The data set's files are missing (the message says how to get them).</exception>
    public static RunData LoadData(RunConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var c = config;
        if (c.Dataset == "csv")
            return LoadCsv(c);
        if (c.Dataset == "image-folder")
            return LoadImageFolder(c);
        if (c.Dataset == "text")
            return LoadText(c);
        var (train, test) = c.Dataset switch
        {
            "fashion-mnist" => FashionMnist.Load(c.DataDir),
            "mnist" => FashionMnist.LoadMnist(c.DataDir),
            "cifar10" => Cifar10.Load(c.DataDir),
            _ => throw new ArgumentException($"Unknown data set \"{c.Dataset}\"; use one of: {string.Join(", ", Datasets)}.", nameof(config)),
        };
        if (c.ValSize > 0)
        {
            if (c.ValSize >= train.Count)
                throw new ArgumentException($"ValSize {c.ValSize}: the training split has only {train.Count} samples.", nameof(config));
            var (rest, val) = train.Split((double)c.ValSize / train.Count, c.Seed);
            train = rest;
            if (c.TrainLimit > 0)
                train = train.Take(Math.Min(c.TrainLimit, train.Count));
            return new RunData(train, val, test, $"validation: {val.Count} samples held out of the training split");
        }

        if (c.TrainLimit > 0)
            train = train.Take(Math.Min(c.TrainLimit, train.Count));
        return new RunData(train, test, test, "validation: the test split (hold out training samples with ValSize, --val-size on the command line)");
    }

    // The csv data set: the file's rows, ValSize of them (else a fifth) held out for validation and
    // test, features standardized with the training split's statistics.
    private static RunData LoadCsv(RunConfig c)
    {
        if (string.IsNullOrWhiteSpace(c.DataDir))
            throw new ArgumentException("The csv data set needs its file: --data FILE.csv (RunConfig.DataDir).", nameof(c));
        var targets = (c.Target ?? string.Empty).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (targets.Length == 0)
            throw new ArgumentException($"The csv data set needs its target column(s): --target COLUMN (RunConfig.Target), such as the value to regress or the class column of {c.DataDir}.", nameof(c));
        if (c.Task == "classification" && targets.Length != 1)
            throw new ArgumentException($"--target {c.Target}: classification takes one class column; name one (or use --task multilabel for several 0/1 columns).", nameof(c));
        var features = c.Features?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var all = c.Task == "classification" ? CsvDataset.LoadClassification(c.DataDir, targets[0], features) : CsvDataset.Load(c.DataDir, targets, features);
        int held = c.ValSize > 0 ? c.ValSize : Math.Max(1, all.Count / 5);
        if (held >= all.Count)
            throw new ArgumentException($"ValSize {held}: {c.DataDir} has only {all.Count} rows; hold out fewer (--val-size).", nameof(c));
        var (train, val) = all.Split((double)held / all.Count, c.Seed);
        string note = $"validation and test: {val.Count} rows held out of {all.Count} (seeded)";
        if (!c.Standardize)
            return new RunData(train, val, val, note);

        // Only the features are standardized; targets (regression values, 0/1 labels) stay in their own units.
        var scaler = Standardization.Fit(train);
        (train, val) = (train.Standardize(scaler), val.Standardize(scaler));
        note += "; features standardized with the training rows' mean and standard deviation";
        return new RunData(train, val, val, note) { Standardization = scaler };
    }

    // The text data set: a UTF-8 file or folder (Debian's fortunes by default), its last 10% for validation and
    // test, training windows every half block (so that every phase of the text meets every position).
    private static RunData LoadText(RunConfig c)
    {
        var corpus = TextCorpus.Load(string.IsNullOrEmpty(c.DataDir) ? DefaultText : c.DataDir);
        var (train, val) = TextDataset.FromCorpus(corpus, c.BlockSize, 0.1, trainStride: Math.Max(1, c.BlockSize / 2));
        if (c.TrainLimit > 0 && c.TrainLimit < train.Count)
            train = train.Take(c.TrainLimit);

        return new RunData(train, val, val, $"validation and test: the last 10% of {corpus.Name} ({val.Tokens} characters, {val.Count} windows of {c.BlockSize}); a vocabulary of {corpus.Vocabulary.Count} characters")
        {
            Vocabulary = corpus.Vocabulary,
        };
    }

    // GPT's weight decay: matrices decay, biases, norms' gains and other vectors do not.
    private static readonly ParamMask MatricesOnly = ParamMask.Where(p => p.Shape.Rank >= 2, "matrices (not biases or norms)");

    private static RunData LoadImageFolder(RunConfig c)
    {
        if (string.IsNullOrEmpty(c.DataDir))
            throw new ArgumentException("The image-folder data set needs its folder: pass --data DIR (RunConfig.DataDir), a folder with one subfolder of images per class.", nameof(c));
        var options = new ImageFolderOptions
        {
            Transforms = c.ImageSize > 0 ? [new ImageTransform.Resize(c.ImageSize), new ImageTransform.CenterCrop(c.ImageSize)] : [],
        };
        var (train, test, note) = ImageFolderDataset.LoadTrainTest(c.DataDir, options, 0.2, c.Seed);
        if (c.ValSize > 0)
        {
            if (c.ValSize >= train.Count)
                throw new ArgumentException($"ValSize {c.ValSize}: the training split has only {train.Count} samples.", nameof(c));
            var (rest, val) = train.Split((double)c.ValSize / train.Count, c.Seed, stratified: false);
            train = c.TrainLimit > 0 ? rest.Take(c.TrainLimit) : rest;
            return new RunData(train, val, test, $"validation: {val.Count} samples held out of the training split; {note}");
        }

        if (c.TrainLimit > 0)
            train = train.Take(c.TrainLimit);
        return new RunData(train, test, test, $"validation: the test split ({note})");
    }

    /// <summary>
    /// The Normalize a data set of pixels gets on the device (image-folder loads [0, 1] pixels): ImageNet's
    /// statistics for RGB images (torchvision's convention, and what pretrained weights expect), mean 0.5 and
    /// std 0.5 per channel otherwise; null for data sets normalized when loaded.
    /// </summary>
    /// <param name="dataset">A <see cref="Datasets"/> name.</param>
    /// <param name="train">The training set (its channel count).</param>
    /// <returns>The normalization, or null.</returns>
    public static Normalization? PixelNormalization(string dataset, IDataset train)
    {
        ArgumentNullException.ThrowIfNull(train);
        if (dataset != "image-folder" || train.SampleShape.Rank != 3)
            return null;
        int channels = train.SampleShape[0];
        return channels == 3 ? Normalization.ImageNet : new Normalization([.. Enumerable.Repeat(0.5f, channels)], [.. Enumerable.Repeat(0.5f, channels)]);
    }

    /// <summary>The statistics <see cref="LoadData"/> normalizes a data set with, or null for an unknown one.</summary>
    /// <param name="dataset">A <see cref="Datasets"/> name.</param>
    /// <returns>The normalization.</returns>
    public static Normalization? LoadedNormalization(string dataset) => dataset switch
    {
        "fashion-mnist" => Normalization.FashionMnist,
        "mnist" => Normalization.Mnist,
        "cifar10" => Normalization.Cifar10,
        _ => null,
    };

    /// <summary>The device of <paramref name="config"/>: <see cref="RunConfig.Device"/>, else $ILGPUTRAIN_DEVICE, else the best available; in a <see cref="RunConfig.Distributed"/> run on CUDA, the GPU of the launcher's local rank (modulo the GPUs).</summary>
    /// <param name="config">The run.</param>
    /// <returns>A new device; the caller disposes it.</returns>
    /// <exception cref="ArgumentException">The device name is not cpu, cuda or opencl.</exception>
    public static Device CreateDevice(RunConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var options = config.Device is null ? DeviceOptions.FromEnvironment() : DeviceOptions.Parse(config.Device, "RunConfig.Device");
        if (config.Distributed && options.Kind is DeviceKind.Auto or DeviceKind.Cuda && Distributed.LaunchEnvironment.FromEnvironment() is { } launch)
        {
            // One GPU per rank of a node: the launcher's local rank picks it (round robin when there are fewer GPUs than ranks).
            int gpus = Device.Describe().Found.Count(d => d.Kind == DeviceKind.Cuda);
            if (gpus > 0)
                options = options with { Kind = DeviceKind.Cuda, Ordinal = launch.LocalRank % gpus };
        }

        return Device.Create(options);
    }

    /// <summary>
    /// The trainer of a run on a training set: the model (<see cref="Models.Build"/>), the optimizer
    /// (<see cref="Optimizer(RunConfig, long)"/> over the run's <see cref="TotalUpdates"/>), the cross-entropy with
    /// label smoothing, the augmentation and, with <see cref="RunConfig.MixedPrecision"/>, fp16 with
    /// dynamic loss scaling.
    /// </summary>
    /// <param name="config">The run.</param>
    /// <param name="device">Where it trains.</param>
    /// <param name="train">The training set (its sample shape, classes and size shape the model and schedule).</param>
    /// <param name="callbacks">Callbacks of the fit (metrics logs, checkpoints, early stopping), or null for none.</param>
    /// <param name="progress">Where progress goes, or null for none.</param>
    /// <param name="group">The ranks of a distributed run (<see cref="TrainerOptions.Distributed"/>; the schedule spans each rank's share), or null for one process.</param>
    /// <param name="adjust">Changes to the trainer options the recipe gives (for example <see cref="TrainerOptions.Profile"/>), or null for none.</param>
    /// <returns>The trainer, and the model and the optimizer it steps (<see cref="Trainer.Optimizer"/>: with <see cref="RunConfig.Freeze"/>, over the trainable parameters only).</returns>
    public static (Trainer Trainer, Layer Model, IGradientTransformation Optimizer) BuildTrainer(RunConfig config, Device device, IDataset train, IReadOnlyList<TrainingCallback>? callbacks = null, IProgressSink? progress = null, Distributed.ProcessGroup? group = null, Func<TrainerOptions, TrainerOptions>? adjust = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(train);
        var c = config;
        var model = Model(c, train);
        var options = Options(c, train, callbacks, progress) with { Distributed = group is null ? null : new Distributed.DistributedOptions(group) { SyncBatchNorm = c.SyncBatchNorm, OverlapBackward = c.OverlapBackward, BucketBytes = Math.Max(sizeof(float), (long)(c.BucketMb * 1024 * 1024)) } };
        if (adjust is not null)
            options = adjust(options);
        var trainer = new Trainer(device, model, train.SampleShape, Optimizer(c, TotalUpdates(c, SamplesPerRank(train.Count, group))), options);
        return (trainer, model, trainer.Optimizer);
    }

    /// <summary>The training samples one rank sees per epoch: all of them in one process, ⌈n / ranks⌉ in a distributed run (<see cref="Distributed.DataShard"/>).</summary>
    /// <param name="trainSamples">Samples in the training set.</param>
    /// <param name="group">The ranks, or null.</param>
    /// <returns>Samples per rank and epoch.</returns>
    public static int SamplesPerRank(int trainSamples, Distributed.ProcessGroup? group) =>
        group is null ? trainSamples : new Distributed.DataShard(group.Rank, group.WorldSize).Length(trainSamples);

    /// <summary>
    /// The trainer options of a run: epochs, batch, seed, the cross-entropy with label smoothing,
    /// the augmentation and, with <see cref="RunConfig.MixedPrecision"/>, fp16 with dynamic loss scaling.
    /// </summary>
    /// <param name="config">The run.</param>
    /// <param name="train">The training set (its image side sizes the crop augmentation).</param>
    /// <param name="callbacks">Callbacks of the fit, or null for none.</param>
    /// <param name="progress">Where progress goes, or null for none.</param>
    /// <returns>The options.</returns>
    public static TrainerOptions Options(RunConfig config, IDataset train, IReadOnlyList<TrainingCallback>? callbacks = null, IProgressSink? progress = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(train);
        var c = config;
        return new TrainerOptions
        {
            Epochs = c.Epochs,
            BatchSize = c.BatchSize,
            Seed = c.Seed,
            Workers = c.Workers ?? TrainerOptions.DefaultWorkers,
            Loss = new CrossEntropyOptions { Epsilon = c.LabelSmoothing },
            Task = c.Task == "classification" && c.Dataset != "text" ? null : Task(c),
            Augmentation = c.Augmentation(train.SampleShape[^1], LoadedNormalization(c.Dataset), PixelNormalization(c.Dataset, train)),
            Mixing = c.Mixing(),
            LossScale = c.MixedPrecision ? new DynamicLossScale() : null,
            Precision = c.MixedPrecision ? Precision.Float16 : Precision.Float32,
            Callbacks = callbacks ?? [],
            Progress = progress ?? NullProgress.Instance,
            Averaging = c.Averaging(),
            Trainable = c.Freeze is null ? null : Freezing.Frozen(RunConfig.Globs(c.Freeze)),
        };
    }

    /// <summary>
    /// The state a new run starts from when it does not start from the seed's initialization: the weights of
    /// <see cref="RunConfig.InitFrom"/> (a PyTorch state_dict or an IlgpuTrain checkpoint, loaded as
    /// <see cref="StateDict.Load(SafeTensorsFile, ParamTree, ParamTree, StateDictOptions?)"/> with
    /// <see cref="RunConfig.InitStrict"/> and <see cref="RunConfig.InitSkip"/>). The model's head (the layer of its
    /// last parameter, <c>fc</c> of the ResNets) starts from initialization when its shape differs from the file's,
    /// as when fine-tuning on a new number of classes. Checks <see cref="RunConfig.Freeze"/>'s globs against the
    /// model, and reports what was loaded and what trains through <paramref name="progress"/>.
    /// </summary>
    /// <param name="config">The run.</param>
    /// <param name="trainer">Its trainer (<see cref="BuildTrainer"/>).</param>
    /// <param name="progress">Where the report goes.</param>
    /// <returns>The state to pass to <see cref="Trainer.Fit"/>, or null to start from the seed's initialization.</returns>
    /// <exception cref="ArgumentException">A --freeze or --init-skip glob matches no parameter.</exception>
    /// <exception cref="CheckpointMismatchException">The file does not fit the model (shapes, or missing or unexpected keys when strict); the message lists them.</exception>
    public static TrainState? Start(RunConfig config, Trainer trainer, IProgressSink progress)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(trainer);
        ArgumentNullException.ThrowIfNull(progress);
        if (config.Freeze is null && config.InitFrom is null)
            return null;
        var fresh = trainer.Init();
        try
        {
            var layout = fresh.Params.Layout;
            if (config.Freeze is not null)
            {
                // trainer.Init() above refused a glob that matches no parameter.
                var globs = RunConfig.Globs(config.Freeze);
                var report = Freezing.Report(layout, Freezing.Frozen(globs));
                progress.Message(string.Create(CultureInfo.InvariantCulture, $"--freeze {config.Freeze}: {report.FrozenCount:N0} of {report.TrainableCount + report.FrozenCount:N0} parameter values frozen ({report.Rows.Count(r => !r.Trainable)} of {report.Rows.Count} tensors); they get no gradient and no update"));
            }

            if (config.InitFrom is null)
                return fresh;
            var loaded = InitFrom(config, fresh, progress);
            fresh.Dispose();
            return trainer.Init(loaded.Params, loaded.State);
        }
        catch
        {
            fresh.Dispose();
            throw;
        }
    }

    private static StateDictResult InitFrom(RunConfig config, TrainState fresh, IProgressSink progress)
    {
        string path = config.InitFrom!;
        var file = SafeTensors.Load(path);
        var skip = RunConfig.Globs(config.InitSkip);
        var all = fresh.Params.Layout.Params.Concat(fresh.State.Layout.Params).ToList();
        foreach (var glob in skip)
        {
            if (!all.Any(p => ParamFilter.Glob(glob).Matches(p.Path)))
                throw new ArgumentException($"--init-skip {glob}: matches no parameter or buffer of the model; it has {string.Join(", ", all.Take(8).Select(p => p.Path))}{(all.Count > 8 ? ", ..." : string.Empty)}.", nameof(config));
        }

        // An IlgpuTrain checkpoint holds the weights under their paths, beside the optimizer's and the averaged weights' tensors.
        bool checkpoint = file.Metadata.ContainsKey(Checkpoint.MetadataKey);
        Func<string, string?>? map = checkpoint
            ? k => k.StartsWith(OptStateCodec.DefaultPrefix + "/", StringComparison.Ordinal) || k.StartsWith(Checkpoint.AveragedPrefix, StringComparison.Ordinal) ? null : k
            : null;

        // The head: the layer of the model's last parameter. A file head of another shape is replaced, not loaded.
        var notes = new List<string>();
        string last = fresh.Params.Layout.Params[^1].Path;
        string head = last.Contains('.', StringComparison.Ordinal) ? last[..last.LastIndexOf('.')] : last;
        var headKeys = all.Where(p => p.Path.StartsWith(head + ".", StringComparison.Ordinal) || p.Path == head).ToList();
        var replaced = headKeys.Where(p => file.Find(p.Path) is { } t && !(t.Shape.Count == p.Shape.Rank && t.Shape.Select((d, i) => d == p.Shape[i]).All(b => b))).ToList();
        var keep = skip.ToList();
        if (replaced.Count > 0)
        {
            keep.Add(head + ".*");
            var t = file.Find(replaced[0].Path)!;
            notes.Add($"head {head} replaced: the file's {replaced[0].Path} is [{string.Join(", ", t.Shape)}] and the model's [{string.Join(", ", replaced[0].Shape)}], so {head} starts from initialization");
        }

        var result = StateDict.Load(file, fresh.Params, fresh.State, new StateDictOptions
        {
            Strict = config.InitStrict,
            MapKey = map,
            Keep = keep.Count == 0 ? null : ParamFilter.Glob([.. keep]),
        });
        int kept = all.Count(p => keep.Any(g => ParamFilter.Glob(g).Matches(p.Path)));
        notes.Insert(0, $"--init-from {path}: {all.Count - kept - result.MissingKeys.Count} of {all.Count} tensors loaded ({(checkpoint ? "an IlgpuTrain checkpoint" : "a state_dict")}{(config.InitStrict ? ", strict" : ", not strict")})");
        if (skip.Length > 0)
            notes.Add($"--init-skip {config.InitSkip}: {kept - (replaced.Count > 0 ? headKeys.Count : 0)} tensor(s) keep their initialization");
        if (result.MissingKeys.Count > 0)
            notes.Add($"missing from the file (initialized instead): {string.Join(", ", result.MissingKeys.Take(10))}{(result.MissingKeys.Count > 10 ? $" and {result.MissingKeys.Count - 10} more" : string.Empty)}");
        if (result.UnexpectedKeys.Count > 0)
            notes.Add($"in the file but not the model (ignored): {string.Join(", ", result.UnexpectedKeys.Take(10))}{(result.UnexpectedKeys.Count > 10 ? $" and {result.UnexpectedKeys.Count - 10} more" : string.Empty)}");
        foreach (var n in notes)
            progress.Message(n);
        return result;
    }

    /// <summary>
    /// The trainer of a learning-rate range test of the run (<see cref="LearningRateFinder"/>): the
    /// run's model, loss, augmentation and options, with <see cref="Optimizer(RunConfig, Schedule)"/>
    /// around the swept rate.
    /// </summary>
    /// <param name="config">The run.</param>
    /// <param name="device">Where it trains.</param>
    /// <param name="train">The training set.</param>
    /// <param name="learningRate">The swept learning rate.</param>
    /// <returns>The trainer.</returns>
    public static Trainer RangeTestTrainer(RunConfig config, Device device, IDataset train, Schedule learningRate)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(train);
        var model = Model(config, train);
        return new Trainer(device, model, train.SampleShape, Optimizer(config, learningRate), Options(config, train));
    }
}
