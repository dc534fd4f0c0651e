namespace IlgpuTrain.Training;

/// <summary>
/// How <see cref="Trainer"/> trains: epochs, batch size, seed, the loss, augmentation, loss
/// scaling, callbacks and progress. The optimizer (with its clipping, schedule and gradient
/// accumulation) is a gradient transformation given to the trainer itself.
/// </summary>
public sealed record TrainerOptions
{
    /// <summary>Epochs to train (5).</summary>
    public int Epochs { get; init; } = 5;

    /// <summary>
    /// Compiles the kernels a training step uses on a background thread from the trainer's
    /// construction on (true), so compilation overlaps parameter initialization and data loading
    /// instead of delaying the first step.
    /// </summary>
    public bool WarmKernels { get; init; } = true;

    /// <summary>Samples per training batch (128).</summary>
    public int BatchSize { get; init; } = 128;

    /// <summary>Samples per evaluation batch (1000); evaluation keeps no tape, so it can be larger.</summary>
    public int EvalBatchSize { get; init; } = 1000;

    /// <summary>
    /// Threads that gather training and evaluation batches ahead of the step (PyTorch's
    /// num_workers): min(4, processor count) by default; 0 gathers on the training thread. The
    /// batches are the same whatever the number; more workers help when gathering is slow, as when
    /// an <see cref="ImageFolderDataset"/> decodes images.
    /// </summary>
    public int Workers { get; init; } = DefaultWorkers;

    /// <summary>The default of <see cref="Workers"/>: min(4, <see cref="Environment.ProcessorCount"/>).</summary>
    public static int DefaultWorkers => Math.Min(4, Environment.ProcessorCount);

    /// <summary>Drops the last short batch of an epoch (false, as PyTorch's DataLoader).</summary>
    public bool DropLast { get; init; }

    /// <summary>
    /// The seed of everything random in the run: the order of each epoch, dropout masks and
    /// augmentation all derive from it and the step number, so a run is reproducible and a resumed
    /// run continues exactly.
    /// </summary>
    public ulong Seed { get; init; }

    /// <summary>The cross-entropy loss of the default classification task: reduction Mean, label smoothing, ignore_index (unused when <see cref="Task"/> is set).</summary>
    public CrossEntropyOptions Loss { get; init; } = CrossEntropyOptions.Default;

    /// <summary>The k of the default classification task's top-k accuracy (5; capped at the number of classes; unused when <see cref="Task"/> is set).</summary>
    public int TopK { get; init; } = 5;

    /// <summary>
    /// What to train for: a <see cref="ClassificationTask"/>, <see cref="MultiLabelTask"/>,
    /// <see cref="RegressionTask"/> or your own <see cref="ITrainingTask"/>; null (the default) for
    /// classification with <see cref="Loss"/> and <see cref="TopK"/>.
    /// </summary>
    public ITrainingTask? Task { get; init; }

    /// <summary>The task the trainer uses: <see cref="Task"/>, else classification with <see cref="Loss"/> and <see cref="TopK"/>.</summary>
    public ITrainingTask EffectiveTask => Task ?? new ClassificationTask { CrossEntropy = Loss, TopK = TopK };

    /// <summary>On-device augmentation of training batches (none by default).</summary>
    public Augmentation Augmentation { get; init; } = Augmentation.None;

    /// <summary>MixUp or CutMix of training batches into soft targets (none by default); classification only.</summary>
    public Mixing Mixing { get; init; } = Mixing.None;

    /// <summary>
    /// Loss scaling: null for none (fp32). A <see cref="DynamicLossScale"/> multiplies the loss
    /// (seeds the backward) by its scale, unscales the gradients, skips steps whose gradients are
    /// not finite and adapts the scale (PyTorch's GradScaler).
    /// </summary>
    public ILossScale? LossScale { get; init; }

    /// <summary>
    /// The numeric policy of forward and backward: <see cref="Precision.Float32"/>, or
    /// <see cref="Precision.Float16"/> mixed precision (fp16 GEMM operands and outputs, fp32 master
    /// weights, moments, losses and reductions); pair Float16 with a <see cref="DynamicLossScale"/>.
    /// </summary>
    public Precision Precision { get; init; } = Precision.Float32;

    /// <summary>Which parameters train; the others are frozen (fine-tuning). All by default. A glob that matches no parameter of the model fails <see cref="Trainer.Init()"/>, naming it.</summary>
    public ParamFilter? Trainable { get; init; }

    /// <summary>
    /// Stop with a diagnosis when the loss or a gradient goes non-finite outside a loss-scaling skip
    /// (true). Off: such steps are skipped and counted.
    /// </summary>
    public bool NanGuard { get; init; } = true;

    /// <summary>Consecutive loss-scaling skips after which the run counts as diverged and the NaN guard fires (25).</summary>
    public int MaxConsecutiveSkips { get; init; } = 25;

    /// <summary>
    /// Weight averaging: an <see cref="Ema"/> of the weights updated after every optimizer update,
    /// <see cref="Swa"/> from a start epoch, or null (none). The average travels in
    /// <see cref="TrainState.Averaged"/>; validation evaluates it too
    /// (<see cref="EpochMetrics.AveragedValLoss"/>), and <see cref="Trainer.EvaluateAveraged"/> evaluates it on request.
    /// </summary>
    public WeightAveraging? Averaging { get; init; }

    /// <summary>Callbacks: early stopping, checkpoints, learning-rate logging, or your own.</summary>
    public IReadOnlyList<TrainingCallback> Callbacks { get; init; } = [];

    /// <summary>Where progress goes (nothing by default; the CLI shows a progress bar).</summary>
    public IProgressSink Progress { get; init; } = NullProgress.Instance;

    /// <summary>
    /// Data-parallel training across the processes of an <c>mpirun</c> launch (null: this process
    /// alone). Rank 0 broadcasts the parameters and buffers at the start, each rank trains on its
    /// shard of every epoch (<see cref="DataLoader"/>'s distributed split), the gradients are
    /// averaged in buckets, metrics and validation are reduced across ranks, and callbacks (early
    /// stopping, checkpoints, logs) and progress run on rank 0, whose decisions every rank follows.
    /// </summary>
    public Distributed.DistributedOptions? Distributed { get; init; }

    /// <summary>
    /// Where training steps' time goes, op by op (null: no timing, the default). The trainer times
    /// <see cref="ProfileSteps"/> steps of each fit after its first <see cref="ProfileSkip"/> (which
    /// include compilation and the JIT's first tiers): every op of the forward and backward under
    /// the tape's names, and the step's work outside the tape (the input's upload and augmentation,
    /// the gradient all-reduce, the metrics and their copy to the host, unscaling, the optimizer
    /// update, waiting for the next batch, progress and callbacks), each after synchronizing the
    /// device, so profiled steps run a little slower on a GPU. Read it with <see cref="StepProfile.Table"/>.
    /// </summary>
    public StepProfile? Profile { get; init; }

    /// <summary>Steps of each fit that <see cref="Profile"/> leaves out before it starts timing (10).</summary>
    public int ProfileSkip { get; init; } = 10;

    /// <summary>Steps of each fit that <see cref="Profile"/> times (50), or fewer when the fit is shorter.</summary>
    public int ProfileSteps { get; init; } = 50;

    /// <summary>Throws when an option is out of range, naming it and the fix.</summary>
    public void Validate()
    {
        if (Epochs < 1)
            throw new ArgumentOutOfRangeException(nameof(Epochs), Epochs, "Epochs must be at least 1.");
        if (BatchSize < 1)
            throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "BatchSize must be at least 1.");
        if (EvalBatchSize < 1)
            throw new ArgumentOutOfRangeException(nameof(EvalBatchSize), EvalBatchSize, "EvalBatchSize must be at least 1.");
        if (TopK < 1)
            throw new ArgumentOutOfRangeException(nameof(TopK), TopK, "TopK must be at least 1.");
        if (Workers is < 0 or > DataLoader.MaxWorkers)
            throw new ArgumentOutOfRangeException(nameof(Workers), Workers, $"Workers must be from 0 (gather on the training thread) to {DataLoader.MaxWorkers}.");
        if (MaxConsecutiveSkips < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxConsecutiveSkips), MaxConsecutiveSkips, "MaxConsecutiveSkips must be at least 1.");
        if (ProfileSkip < 0)
            throw new ArgumentOutOfRangeException(nameof(ProfileSkip), ProfileSkip, "ProfileSkip must be 0 or more (10 leaves out the steps that compile and warm up).");
        if (ProfileSteps < 1)
            throw new ArgumentOutOfRangeException(nameof(ProfileSteps), ProfileSteps, "ProfileSteps must be at least 1; set Profile to null to time nothing.");
        Averaging?.Validate(Epochs);
        ArgumentNullException.ThrowIfNull(Loss, nameof(Loss));
        ArgumentNullException.ThrowIfNull(Augmentation, nameof(Augmentation));
        ArgumentNullException.ThrowIfNull(Mixing, nameof(Mixing));
        ArgumentNullException.ThrowIfNull(Callbacks, nameof(Callbacks));
        ArgumentNullException.ThrowIfNull(Progress, nameof(Progress));
        Distributed?.Validate();
    }
}
