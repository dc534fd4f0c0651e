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

    /// <summary>Drops the last short batch of an epoch (false, as PyTorch's DataLoader).</summary>
    public bool DropLast { get; init; }

    /// <summary>
    /// The seed of everything random in the run: the order of each epoch, dropout masks and
    /// augmentation all derive from it and the step number, so a run is reproducible and a resumed
    /// run continues exactly.
    /// </summary>
    public ulong Seed { get; init; }

    /// <summary>The cross-entropy loss: reduction Mean, label smoothing, ignore_index.</summary>
    public CrossEntropyOptions Loss { get; init; } = CrossEntropyOptions.Default;

    /// <summary>The k of the validation top-k accuracy (5; capped at the number of classes).</summary>
    public int TopK { get; init; } = 5;

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

    /// <summary>Which parameters train; the others are frozen (fine-tuning). All by default.</summary>
    public ParamFilter? Trainable { get; init; }

    /// <summary>
    /// Stop with a diagnosis when the loss or a gradient goes non-finite outside a loss-scaling skip
    /// (true). Off: such steps are skipped and counted.
    /// </summary>
    public bool NanGuard { get; init; } = true;

    /// <summary>Consecutive loss-scaling skips after which the run counts as diverged and the NaN guard fires (25).</summary>
    public int MaxConsecutiveSkips { get; init; } = 25;

    /// <summary>Callbacks: early stopping, checkpoints, learning-rate logging, or your own.</summary>
    public IReadOnlyList<TrainingCallback> Callbacks { get; init; } = [];

    /// <summary>Where progress goes (nothing by default; the CLI shows a progress bar).</summary>
    public IProgressSink Progress { get; init; } = NullProgress.Instance;

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
        if (MaxConsecutiveSkips < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxConsecutiveSkips), MaxConsecutiveSkips, "MaxConsecutiveSkips must be at least 1.");
        ArgumentNullException.ThrowIfNull(Loss, nameof(Loss));
        ArgumentNullException.ThrowIfNull(Augmentation, nameof(Augmentation));
        ArgumentNullException.ThrowIfNull(Mixing, nameof(Mixing));
        ArgumentNullException.ThrowIfNull(Callbacks, nameof(Callbacks));
        ArgumentNullException.ThrowIfNull(Progress, nameof(Progress));
    }
}
