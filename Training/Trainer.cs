using System.Diagnostics;
using IlgpuTrain.Training.Distributed;

namespace IlgpuTrain.Training;

/// <summary>The end of a <see cref="Trainer.Fit"/>: the final state (which the caller owns) and why training ended.</summary>
/// <param name="State">Parameters, model and optimizer state, history.</param>
/// <param name="StopReason">"completed" or the callback's reason.</param>
public sealed record FitResult(TrainState State, string StopReason)
{
    /// <summary>
    /// With gradient accumulation, the micro-batches at the end of the run that did not complete a
    /// group of k: their gradients were dropped, not applied (0 otherwise). The run's schedule
    /// counts only complete groups (epochs × batches / k, rounded down), so none of its updates is lost.
    /// </summary>
    public int PendingMicroBatches { get; init; }

    /// <summary>The per-epoch metrics.</summary>
    public History History => State.History;
}

/// <summary>Loss and metrics of a model on a data set, in Eval mode.</summary>
/// <param name="Loss">Mean loss per sample (with the trainer's label smoothing).</param>
/// <param name="Accuracy">Top-1 accuracy (NaN for a task without accuracy).</param>
/// <param name="TopK">Top-k accuracy (NaN for a task without it).</param>
/// <param name="K">k (0 for a task without top-k accuracy).</param>
/// <param name="Samples">Samples evaluated.</param>
public sealed record EvalResult(double Loss, double Accuracy, double TopK, int K, int Samples)
{
    /// <summary>Every metric of the trainer's task by name, such as accuracy and top_k, or mae and rmse.</summary>
    public MetricSet Metrics { get; init; } = new([]);
}

/// <summary>
/// Trains a model for a task (<see cref="TrainerOptions.Task"/>: classification by default,
/// multi-label, regression or your own <see cref="ITrainingTask"/>): a model (layers), an
/// optimizer (any gradient transformation: clipping, schedules and gradient accumulation are part
/// of it) and the options. <see cref="Fit"/> runs epochs over a data set with an optional
/// validation set and returns the history.
/// </summary>
/// <remarks>
/// One training step (<see cref="TrainStep"/>): batch → device → augmentation → mixing (MixUp or
/// CutMix into soft targets, when <see cref="TrainerOptions.Mixing"/> is on) → forward with a
/// tape → the task's loss → backward (seeded with the loss scale) → unscale and finite check →
/// optimizer update (or a skip) → metrics. Every random choice is a function of (seed, step), so a
/// run resumed from a checkpoint continues exactly.
/// <para>Gradient accumulation (a <see cref="MultiSteps"/> optimizer) runs across epoch
/// boundaries: the k micro-batches of a group may span two epochs, as they do in one long stream of
/// batches. A run that would make no update at all (fewer batches than k) is refused before its
/// first step. Micro-batches left at the end of the run that do not complete a group are dropped,
/// not applied (<see cref="FitResult.PendingMicroBatches"/> counts them, and a note says so), like
/// PyTorch's <c>if (i + 1) % k == 0: optimizer.step()</c> loop at the end of its data; the
/// schedule counts only complete groups. <see cref="EpochMetrics.Steps"/> and
/// <see cref="StepInfo.Updated"/> count applied updates, not micro-batches.</para>
/// </remarks>
public sealed class Trainer
{
    // Rng purposes folded into the run's seed.
    private const uint DropoutPurpose = 1;
    private const uint AugmentPurpose = 2;
    private const uint InitPurpose = 3;
    private const uint MixingPurpose = 4;
    private const uint RankPurpose = 5;

    private readonly Device _device;
    private readonly Layer _model;
    private readonly Shape _inputShape;
    private readonly IGradientTransformation _optimizer;
    private readonly TrainerOptions _options;
    private readonly ITrainingTask _task;
    private readonly Shape _output;
    private readonly ProcessGroup? _group;
    private IReadOnlyList<GradientBucket>? _buckets;

    /// <summary>Creates a trainer.</summary>
    /// <param name="device">Where to train.</param>
    /// <param name="model">The model: per-sample input <paramref name="inputShape"/>, output (classes) for classification, else what the task needs.</param>
    /// <param name="inputShape">Per-sample input shape, such as (784) or (1, 28, 28).</param>
    /// <param name="optimizer">The optimizer (a chain with clipping, a schedule, MultiSteps for accumulation...).</param>
    /// <param name="options">Epochs, batch size, seed, task, augmentation, loss scaling, callbacks, progress.</param>
    public Trainer(Device device, Layer model, Shape inputShape, IGradientTransformation optimizer, TrainerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(inputShape);
        ArgumentNullException.ThrowIfNull(optimizer);
        _options = options ?? new TrainerOptions();
        _options.Validate();
        _device = device;
        _model = model;
        _inputShape = inputShape;
        _optimizer = WithFrozen(optimizer, _options.Trainable);
        _task = _options.EffectiveTask;
        _output = model.OutputShape(inputShape);
        _group = _options.Distributed?.Group;
        if (_task.OutputProblem(_output) is { } problem)
            throw new LayerShapeException($"Trainer: the model maps {inputShape} to {_output}, but {problem}.");
        Classes = _output.Length > 0 ? _output[0] : 0;
        if (!_options.Mixing.IsNone && _task is not ClassificationTask)
            throw new ArgumentException($"Trainer: mixup and cutmix mix class labels into soft targets for cross-entropy, but the task is {_task.Name}; turn TrainerOptions.Mixing off, or train a ClassificationTask.", nameof(options));
        if (_options.WarmKernels)
            KernelWarmup = device.RunInBackground(WarmUp);
    }

    /// <summary>
    /// The background warm-up (<see cref="TrainerOptions.WarmKernels"/>), or null: one training
    /// step on a synthetic batch with throwaway parameters, which loads exactly the kernels the
    /// device's backend launches in a step (none that a managed path replaces).
    /// </summary>
    public Task? KernelWarmup { get; }

    /// <summary>The number of classes (the model's output width; the labels or values of a multi-label or regression task).</summary>
    public int Classes { get; }

    /// <summary>The task: the loss and metrics (<see cref="TrainerOptions.Task"/>, else classification from <see cref="TrainerOptions.Loss"/>).</summary>
    public ITrainingTask Task => _task;

    // Top-k's k of a classification task (0 otherwise).
    private int K => _task is ClassificationTask c ? Math.Min(c.TopK, Classes) : 0;

    /// <summary>The options.</summary>
    public TrainerOptions Options => _options;

    /// <summary>
    /// The optimizer the trainer steps: the one it was given, or with <see cref="TrainerOptions.Trainable"/> that
    /// optimizer over the trainable parameters only and a <see cref="Freeze"/> of the others
    /// (<see cref="Freeze.AllExcept"/>, inside a <see cref="MultiSteps"/>), so that weight decay and moments
    /// never move a frozen parameter, as PyTorch's optimizers skip parameters that have no gradient.
    /// Its <see cref="IGradientTransformation.Init"/> gives the layout of <see cref="TrainState.OptState"/>.
    /// </summary>
    public IGradientTransformation Optimizer => _optimizer;

    /// <summary>The device it trains on.</summary>
    public Device Device => _device;

    /// <summary>The model, for checkpoints and messages: its layers and the input shape.</summary>
    public string ModelDescription => $"{Describe(_model)} on input {_inputShape}";

    /// <summary>A fresh run: parameters initialized from the seed, optimizer state, loss scale.</summary>
    /// <returns>The initial state (the caller owns it, or passes it to <see cref="Fit"/>).</returns>
    public TrainState Init()
    {
        var (p, s) = _model.Init(_device, _inputShape, Rng.Create(_options.Seed).Fold(InitPurpose));
        try
        {
            return Init(p, s);
        }
        catch
        {
            p.Dispose();
            s.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A fresh run from given weights (fine-tuning): fresh optimizer state, loss scale and history
    /// around <paramref name="parameters"/> and <paramref name="state"/>, which the result takes over.
    /// </summary>
    /// <param name="parameters">The model's parameters, such as those of <see cref="StateDict.Load(string, ParamTree, ParamTree, StateDictOptions?)"/>.</param>
    /// <param name="state">The model's buffers (BatchNorm running statistics).</param>
    /// <returns>The initial state (the caller owns it, or passes it to <see cref="Fit"/>).</returns>
    /// <exception cref="ArgumentException">The trees are not this model's (another layout) or live on another device, or a glob of <see cref="TrainerOptions.Trainable"/> matches no parameter.</exception>
    public TrainState Init(ParamTree parameters, ParamTree state)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(state);
        _options.Trainable?.RequireMatches(parameters.Layout, "Trainer.Init: TrainerOptions.Trainable");
        if (!ReferenceEquals(parameters.Device, _device) || !ReferenceEquals(state.Device, _device))
            throw new ArgumentException($"Trainer.Init: the weights live on {(ReferenceEquals(parameters.Device, _device) ? state.Device : parameters.Device)}, but the trainer trains on {_device}; load them onto the trainer's device.", nameof(parameters));
        var (p0, s0) = _model.Init(_device, _inputShape, Rng.Create(0));
        using (p0)
        using (s0)
        {
            p0.Layout.RequireSame(parameters.Layout, "Trainer.Init (parameters)");
            s0.Layout.RequireSame(state.Layout, "Trainer.Init (state)");
        }

        return new TrainState(parameters, state, _optimizer.Init(parameters), _options.LossScale, 0, 0, 0, History.Empty) { Averaged = _options.Averaging?.Start(parameters, state) };
    }

    // The optimizer over the trainable parameters, the others frozen (no decay, no moments), as PyTorch's
    // optimizers skip parameters without a gradient; accumulation stays outermost.
    private static IGradientTransformation WithFrozen(IGradientTransformation optimizer, ParamFilter? trainable)
    {
        if (trainable is null)
            return optimizer;
        var mask = ParamMask.From(trainable);
        return optimizer is MultiSteps m ? m with { Inner = Freeze.AllExcept(mask, m.Inner) } : Freeze.AllExcept(mask, optimizer);
    }

    /// <summary>
    /// Trains for <see cref="TrainerOptions.Epochs"/> epochs (counting those already in
    /// <paramref name="from"/>), validating after each epoch.
    /// </summary>
    /// <param name="train">The training set.</param>
    /// <param name="validation">The validation set, or null.</param>
    /// <param name="from">A state to continue (from <see cref="Init()"/> or a checkpoint; consumed), or null to start fresh.</param>
    /// <returns>The final state and the history.</returns>
    public FitResult Fit(IDataset train, IDataset? validation = null, TrainState? from = null)
    {
        ArgumentNullException.ThrowIfNull(train);
        RequireCompatible(train, nameof(train));
        if (validation is not null)
            RequireCompatible(validation, nameof(validation));
        var s = from ?? Init();
        var progress = Progress;
        var callbacks = _group is { IsMain: false } ? [] : _options.Callbacks;
        try
        {
            s = JoinRun(s, train, validation);                                                                             // world size, fingerprint, broadcast from rank 0
        }
        catch
        {
            s.Dispose();
            throw;
        }

        using var loader = new DataLoader(train, _options.BatchSize, shuffle: true, dropLast: _options.DropLast, seed: _options.Seed, workers: _options.Workers, shard: Shard(pad: true));
        if (loader.BatchesPerEpoch == 0)
            throw new ArgumentException($"Trainer: {train.Name} has {train.Count} samples, fewer than one batch of {_options.BatchSize} with drop-last; lower the batch size.", nameof(train));
        var accumulation = _optimizer as MultiSteps;
        if (accumulation is not null)
        {
            RequireAnUpdate(accumulation, s, loader.BatchesPerEpoch, train);
            progress.Message($"gradient accumulation: {accumulation.EveryK} batches of {_options.BatchSize} per update, effective batch {accumulation.EffectiveBatch(_options.BatchSize)} (linear scaling rule: lr x {LearningRateScaling.Factor(_options.BatchSize, (int)accumulation.EffectiveBatch(_options.BatchSize)):G3} relative to batch {_options.BatchSize})");
        }

        foreach (var c in callbacks)
            c.OnFitStart(new FitStartInfo(s, _options.Epochs) { Task = _task });

        string reason = "completed";
        double? lastValLoss = null;
        long fitSteps = 0;
        try
        {
            while (s.Epoch < _options.Epochs)
            {
                int epoch = s.Epoch + 1;
                var tally = new EpochTally();
                var clock = Stopwatch.StartNew();
                progress.EpochStarted(epoch, _options.Epochs, loader.BatchesPerEpoch);
                using var batches = loader.Epoch(epoch, s.BatchInEpoch).GetEnumerator();
                while (true)
                {
                    long waiting = Stopwatch.GetTimestamp();
                    if (!batches.MoveNext())
                        break;
                    var profile = Profiling(fitSteps++);
                    profile?.Add("data (waiting for the batch)", Stopwatch.GetElapsedTime(waiting));
                    var batch = batches.Current;
                    // The validation loss goes with the first update of the epoch (ReduceOnPlateau reads it).
                    var context = tally.Batches == 0 && lastValLoss is { } v ? new UpdateContext(v) : UpdateContext.None;
                    s = TrainStep(s, batch, epoch, context, tally, collective: true, profile);
                    long start = Start(profile);
                    progress.BatchDone(batch.Index, tally.LastLoss, CurrentLearningRate(s), tally.Samples / Math.Max(clock.Elapsed.TotalSeconds, 1e-9));
                    foreach (var c in callbacks)
                        c.OnStep(new StepInfo(epoch, batch.Index, s.Step, tally.LastLoss, CurrentLearningRate(s), tally.LastSkipped) { Updated = tally.LastUpdated });
                    Stop(profile, "progress and callbacks", start);
                    profile?.EndStep();
                }

                double seconds = clock.Elapsed.TotalSeconds;
                if (_group is not null && _optimizer is MultiSteps { EveryK: > 1 } m && Chain.Expect<MultiStepsState>(s.OptState, m) is { MiniStep: > 0, Accumulated: { } acc })
                    _group.AllReduce(_device, acc.Flat32, Buckets(acc.Layout), ReduceOp.Mean, $"the gradients accumulated by the end of epoch {epoch}"); // a group pending across the epoch's end: every rank holds the mean, so rank 0's checkpoint is every rank's
                if (_group is not null && s.State.Layout.Count > 0)
                    _group.Broadcast(s.State, 0, $"rank 0's buffers after epoch {epoch}");                                // BatchNorm running statistics: rank 0's, as DDP's broadcast_buffers
                s = AverageAfterEpoch(s, epoch, train);                                                                  // SWA snapshot (+ update_bn)
                var val = validation is null ? null : Evaluate(s.Params, s.State, validation);
                var averagedVal = validation is null || s.Averaged is null ? null : EvaluateAveraged(s, validation);
                lastValLoss = val?.Loss;
                var trained = MetricsOf(tally.Totals, tally.Samples);
                var metrics = new EpochMetrics(
                    epoch, tally.MeanLoss, trained.GetValueOrDefault("accuracy", double.NaN), val?.Loss, Finite(val?.Accuracy), Finite(val?.TopK), val?.K ?? K,
                    CurrentLearningRate(s), s.LossScale is DynamicLossScale d ? d.Scale : null, tally.Skipped, tally.Updates, tally.Samples, seconds)
                {
                    Metrics = Extra(trained, val?.Metrics),
                    AveragedValLoss = averagedVal?.Loss,
                    AveragedValAccuracy = averagedVal?.Accuracy,
                };
                s = s with { Epoch = epoch, BatchInEpoch = 0, History = s.History.Add(metrics) };
                progress.EpochDone(metrics);

                EpochVerdict? stop = null;
                foreach (var c in callbacks)
                {
                    var verdict = c.OnEpochEnd(new EpochInfo(metrics, s, ModelDescription, _options.Seed) { Model = _model, InputShape = _inputShape });
                    if (verdict.Stop && stop is null)
                        stop = verdict;
                }

                bool restore = stop?.RestoreParams is not null;
                if (_group is not null)
                    (stop, restore) = AgreeOnStop(_group, stop);                                                        // rank 0 decides for all

                if (stop is not null)
                {
                    if (stop.RestoreParams is not null)
                        s = Restore(s, stop.RestoreParams, stop.RestoreState);
                    if (_group is not null && restore)
                    {
                        _group.Broadcast(s.Params, 0, "the restored best parameters");
                        _group.Broadcast(s.State, 0, "the restored best buffers");
                    }

                    reason = stop.Reason ?? "stopped by a callback";
                    progress.Message(reason);
                    break;
                }
            }
        }
        catch
        {
            s.Dispose();
            throw;
        }

        try
        {
            if (_group is not null)
                CompareReplicas(_group, s, progress);                                                               // every rank must end with the same weights
        }
        catch
        {
            s.Dispose();
            throw;
        }

        int pending = PendingMicroBatches(s);
        if (pending > 0)
            progress.Message($"note: the last {pending} batch(es) of the run did not complete a group of {accumulation!.EveryK} and were not applied (dropped, as PyTorch's drop_last drops a partial batch); make the run's batches a multiple of {accumulation.EveryK} to use them.");
        return new FitResult(s, reason) { PendingMicroBatches = pending };
    }

    /// <summary>
    /// One training step outside <see cref="Fit"/>, for tools that drive training themselves (the
    /// learning-rate range test, the batch-size finder): the same step as Fit's, seeded by
    /// <see cref="TrainState.Step"/>, with no callbacks, progress or epoch bookkeeping.
    /// </summary>
    /// <param name="state">The state (consumed: the result reuses its buffers).</param>
    /// <param name="batch">A batch of samples of the model's input shape.</param>
    /// <returns>
    /// The next state and the batch's loss before the update. A non-finite loss is a skipped step
    /// (parameters unchanged) when <see cref="TrainerOptions.NanGuard"/> is off, and a
    /// <see cref="NonFiniteTrainingException"/> when it is on.
    /// </returns>
    public (TrainState State, double Loss) Step(TrainState state, HostBatch batch)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(batch);
        var expected = new Shape([batch.Count, .. _inputShape]);
        if (batch.Shape != expected)
            throw new ArgumentException($"Trainer.Step: the batch has shape {batch.Shape}, but the model takes {expected}; give a batch of the model's input shape.", nameof(batch));
        var tally = new EpochTally();
        var next = TrainStep(state, batch, state.Epoch + 1, UpdateContext.None, tally, collective: true);
        return (next, tally.LastLoss);
    }

    /// <summary>
    /// The learning rate to report after a step: that of the last update, or, before the first
    /// update (micro-batches that only accumulate), the one the first update will use; never NaN
    /// when the optimizer has a learning-rate schedule.
    /// </summary>
    private static double CurrentLearningRate(TrainState s) => double.IsNaN(s.LearningRate) ? s.NextLearningRate : s.LearningRate;

    /// <summary>Micro-batches accumulated into a group that the run ended before completing (0 without accumulation).</summary>
    private static int PendingMicroBatches(TrainState s) => s.OptState.FindAll<MultiStepsState>().FirstOrDefault()?.MiniStep ?? 0;

    /// <summary>
    /// Refuses, before any step, a run that would make no optimizer update: fewer batches left
    /// than the accumulation group needs (a silent no-op that would save the untrained model).
    /// </summary>
    private void RequireAnUpdate(MultiSteps accumulation, TrainState s, int batchesPerEpoch, IDataset train)
    {
        long left = ((long)(_options.Epochs - s.Epoch) * batchesPerEpoch) - s.BatchInEpoch;
        if (left <= 0 || PendingMicroBatches(s) + left >= accumulation.EveryK)
            return;
        throw new ArgumentException(
            $"Trainer: accumulating {accumulation.EveryK} batches per update, but the run has only {PendingMicroBatches(s) + left} batch(es) to train " +
            $"({_options.Epochs - s.Epoch} epoch(s) of {batchesPerEpoch} batch(es) of {_options.BatchSize} from {train.Count} samples), so it would make no optimizer update; " +
            $"accumulate at most {PendingMicroBatches(s) + left} batches (MultiSteps k, --accumulate), or train for more epochs or on more samples.",
            nameof(train));
    }

    /// <summary>Loss and the task's metrics (top-1 and top-k accuracy for classification) on <paramref name="data"/> in Eval mode (running statistics, no dropout), exact over the whole set.</summary>
    /// <param name="parameters">The parameters.</param>
    /// <param name="state">The model state.</param>
    /// <param name="data">The data set.</param>
    /// <returns>The result.</returns>
    public EvalResult Evaluate(ParamTree parameters, ParamTree state, IDataset data)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(data);
        RequireCompatible(data, nameof(data));
        double loss = 0;
        double[]? totals = null;
        int n = 0;
        using var loader = new DataLoader(data, _options.EvalBatchSize, shuffle: false, dropLast: false, seed: 0, workers: _options.Workers, shard: Shard(pad: false));
        foreach (var batch in loader.Epoch(1))
        {
            using var step = _device.BeginStep();
            step.Precision = _options.Precision;
            var x = _options.Augmentation.ApplyEval(step, step.Upload(batch.X, batch.Shape));   // the eval transform: Resize, Normalize
            var y = UploadTarget(step, batch);
            var prediction = _model.Predict(parameters, state, x);
            var m = ReadLossAndStatistics(step, _task.Loss(step, prediction, y, LossReduction.Sum), _task.Statistics(step, prediction, y));
            loss += m[0];
            totals ??= new double[m.Length - 1];
            for (int i = 0; i < totals.Length; i++)
                totals[i] += m[1 + i];
            n += batch.Count;
        }

        if (_group is not null)
            (loss, totals, n) = SumAcrossRanks(_group, loss, totals, n);                          // each rank evaluated its share
        var metrics = MetricsOf(totals ?? [], n);
        return new EvalResult(loss / Math.Max(n, 1), metrics.GetValueOrDefault("accuracy", double.NaN), metrics.GetValueOrDefault("top_k", double.NaN), K, n) { Metrics = metrics };
    }

    /// <summary>
    /// Loss and accuracies of the averaged weights (<see cref="TrainState.Averaged"/>: the EMA, or
    /// the SWA average with its refreshed BatchNorm statistics) on <paramref name="data"/>, in Eval mode.
    /// </summary>
    /// <param name="s">A state of a run with <see cref="TrainerOptions.Averaging"/>.</param>
    /// <param name="data">The data set.</param>
    /// <returns>The result.</returns>
    public EvalResult EvaluateAveraged(TrainState s, IDataset data)
    {
        ArgumentNullException.ThrowIfNull(s);
        var averaged = s.Averaged ?? throw new ArgumentException(
            _options.Averaging is null
                ? "Trainer.EvaluateAveraged: this run averages no weights; set TrainerOptions.Averaging (an Ema or Swa) or evaluate s.Params with Evaluate."
                : $"Trainer.EvaluateAveraged: the run has no averaged weights yet ({_options.Averaging.Kind} starts later); evaluate s.Params with Evaluate.",
            nameof(s));
        return Evaluate(averaged.Params, averaged.State, data);
    }

    /// <summary>
    /// The model state with its BatchNorm statistics recomputed for <paramref name="parameters"/>
    /// over <paramref name="data"/> (<see cref="BatchNormRefresh"/>, PyTorch's update_bn), at this
    /// trainer's batch size and precision.
    /// </summary>
    /// <param name="parameters">The weights (read).</param>
    /// <param name="state">The model state (read).</param>
    /// <param name="data">The data, usually the training set.</param>
    /// <returns>A new state tree, which the caller owns.</returns>
    public ParamTree RefreshBatchNorm(ParamTree parameters, ParamTree state, IDataset data)
    {
        ArgumentNullException.ThrowIfNull(data);
        RequireCompatible(data, nameof(data));
        return BatchNormRefresh.Refresh(_device, _model, parameters, state, data, _options.BatchSize, _options.DropLast, _options.Seed, _options.Precision);
    }

    /// <summary>
    /// The end-of-epoch averaging (SWA's snapshot), then, when the average changed and the model has
    /// BatchNorm layers, its statistics refreshed from the training data (SWA's update_bn).
    /// </summary>
    private TrainState AverageAfterEpoch(TrainState s, int epoch, IDataset train)
    {
        var averaging = _options.Averaging;
        if (averaging is null)
            return s;
        long before = s.Averaged?.Count ?? -1;
        var averaged = averaging.AfterEpoch(s.Averaged, s.Params, s.State, epoch);
        if (averaged is not null && averaged.Count != before && averaging.RefreshesBatchNorm && BatchNormRefresh.Has(_model))
        {
            ParamTree refreshed;
            try
            {
                refreshed = RefreshBatchNorm(averaged.Params, averaged.State, train);
            }
            catch
            {
                averaged.Dispose();
                throw;
            }

            averaged.State.Dispose();
            averaged = averaged with { State = refreshed };
        }

        return s with { Averaged = averaged };
    }

    /// <summary>
    /// Runs one step of this trainer on a synthetic batch of zeros, with parameters and optimizer
    /// state of its own that are thrown away, on a background thread (the device's dispose waits
    /// for it). What it loads into the
    /// device's kernel cache is, by construction, what a real step of this model, loss, optimizer
    /// and precision launches on this backend: facts, not a list of names. The real run does not
    /// depend on it (its own state and random streams), so results are the same with or without.
    /// </summary>
    /// <remarks>
    /// A step that fails here (a kernel that does not compile, a model that rejects two samples)
    /// is left to fail again, with its message, in the real step; the warm-up only saves time.
    /// </remarks>
    private void WarmUp()
    {
        try
        {
            int n = Math.Min(2, _options.BatchSize);
            var batch = new HostBatch(0, n, new Shape([n, .. _inputShape]), new float[n * _inputShape.Length], new int[n])
            {
                Targets = _task.UsesTargets ? new float[n * _output.Length] : null,
                TargetShape = _task.UsesTargets ? new Shape([n, .. _output]) : null,
            };
            var s = Init();
            try
            {
                s = TrainStep(s, batch, 1, UpdateContext.None, new EpochTally(), collective: false);
            }
            finally
            {
                s.Dispose();
            }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The real step reports it.
        }
    }

    /// <summary>One training step: the table of contents of training.</summary>
    /// <remarks>collective: in a distributed run, average the gradients and reduce the metrics and the finite check across ranks (false only for the warm-up, which runs alone).</remarks>
    /// <remarks>profile: times this step's pieces (null: not profiled).</remarks>
    private TrainState TrainStep(TrainState s, HostBatch batch, int epoch, UpdateContext context, EpochTally tally, bool collective, StepProfile? profile = null)
    {
        using var step = _device.BeginStep();
        step.Precision = _options.Precision;
        var group = collective ? _group : null;
        if (group is not null && _options.Distributed!.SyncBatchNorm)
            step.BatchNormSync = group;                                                                               // SyncBatchNorm: statistics over all ranks
        var rng = Rng.Create(_options.Seed).At(checked((uint)s.Step));
        if (group is { WorldSize: > 1 })
            rng = rng.Fold(RankPurpose).Fold((uint)group.Rank);                                                      // each rank its own dropout and augmentation
        long start = Start(profile);
        var x = _options.Augmentation.Apply(step, step.Upload(batch.X, batch.Shape), rng.Fold(AugmentPurpose));   // batch -> device -> augment
        var y = UploadTarget(step, batch);
        (x, var targets) = _options.Mixing.Apply(step, x, y, Classes, rng.Fold(MixingPurpose));                     // mixup / cutmix -> soft targets
        Stop(profile, "input (upload, augmentation)", start);
        var lossScale = s.LossScale ?? NoScale;
        bool emits = _optimizer is not MultiSteps accumulation || accumulation.EmitsNext(s.OptState);
        // Accumulating across ranks (DDP's no_sync): micro-batches that do not complete a group keep their gradients on
        // their rank; the group's last one adds the rank's accumulated sum into its own gradient and all-reduces that once.
        var reduce = emits ? group : null;
        string? gradients = reduce is null ? null : $"the gradients of step {s.Step}";                               // for a timeout's message; no string per step in a single process
        var folded = reduce is not null && s.OptState is MultiStepsState { MiniStep: > 0, Accumulated: { } sum } ? sum : null;
        var overlap = reduce is not null && _options.Distributed!.OverlapBackward
            ? new OverlappedGradients(reduce, _device, s.Params.Layout, Buckets(s.Params.Layout), ReduceOp.Mean, gradients!, folded, lossScale.Scale) // buckets start during the backward
            : null;
        step.Profile = profile;                                                                                       // the tape's ops, forward and backward
        var (loss, prediction, grads, modelState) = ForwardBackward(step, s, x, targets, rng.Fold(DropoutPurpose), lossScale.Scale, overlap); // forward -> loss -> backward
        step.Profile = null;
        start = Start(profile);
        if (overlap is not null)
        {
            overlap.Complete(grads);                                                                                  // average across ranks: wait for every bucket
            Stop(profile, "gradient all-reduce (waiting)", start);
        }
        else if (reduce is not null)
        {
            if (folded is not null)
                OverlappedGradients.Fold(_device, grads, folded, lossScale.Scale, new GradientBucket(0, grads.Flat32.Length));
            reduce.AllReduce(_device, grads.Flat32, Buckets(grads.Layout), ReduceOp.Mean, gradients!);                // average across ranks after the backward
            Stop(profile, "gradient all-reduce", start);
        }

        start = Start(profile);
        var metrics = ReadLossAndStatistics(step, loss, _task.Statistics(step, prediction, y));                       // metrics against the unmixed labels
        Stop(profile, "metrics and loss to host", start);
        float lossValue = metrics[0];
        start = Start(profile);
        bool finite = lossScale.UnscaleInPlace(grads) && float.IsFinite(lossValue);                               // unscale + finite check
        Stop(profile, "unscale and finite check", start);
        int count = batch.Count;
        if (group is not null)
            (lossValue, metrics, count, finite) = ReduceStep(group, metrics, count, finite, s.Step);                // every rank sees the same loss, metrics, verdict
        if (finite && folded is not null)
            Elementwise.Fill(_device.Kernels, folded.Flat32, 0f);                                                    // the group's sum now rides in the gradient
        var nextScale = s.LossScale?.Adjust(finite);
        tally.Record(lossValue, metrics.AsSpan(1), count, stepped: finite, updated: finite && emits);

        if (!finite)
        {
            tally.ConsecutiveSkips++;
            bool scaling = s.LossScale is DynamicLossScale;
            if (_options.NanGuard && (!scaling || tally.ConsecutiveSkips >= _options.MaxConsecutiveSkips))
            {
                var diagnosis = NanGuard.Diagnose(_device, _model, s, batch, rng.Fold(DropoutPurpose), grads, lossValue, epoch, scaling ? tally.ConsecutiveSkips : 0);
                grads.Dispose();
                DisposeIfNew(modelState, s.State);
                throw new NonFiniteTrainingException(diagnosis);
            }

            // A skipped step: parameters, moments and the schedule do not move (GradScaler's rule).
            grads.Dispose();
            DisposeIfNew(modelState, s.State);
            return s with { LossScale = nextScale, Step = s.Step + 1, BatchInEpoch = batch.Index + 1 };
        }

        tally.ConsecutiveSkips = 0;
        start = Start(profile);
        var (parameters, optState) = _optimizer.Step(s.Params, grads, s.OptState, context);                        // clip -> update -> apply
        Stop(profile, "optimizer", start);
        var averaged = s.Averaged;
        if (emits && _options.Averaging is { } averaging)
        {
            start = Start(profile);
            averaged = averaging.AfterUpdate(s.Averaged, parameters, modelState);                                     // EMA of the weights
            Stop(profile, "weight averaging", start);
        }
        if (!ReferenceEquals(modelState, s.State))
            s.State.Dispose();
        return s with { Params = parameters, State = modelState, OptState = optState, LossScale = nextScale, Step = s.Step + 1, BatchInEpoch = batch.Index + 1, Averaged = averaged };
    }

    private (Tensor Loss, Tensor Logits, ParamTree Grads, ParamTree State) ForwardBackward(StepScope step, TrainState s, Tensor x, Tensor y, Rng dropout, float seed, IGradientReadyObserver? ready)
    {
        Tensor? logits = null;
        ParamTree? modelState = null;
        var (loss, grads) = Autodiff.ValueAndGrad(
            step,
            s.Params,
            p =>
            {
                (logits, modelState) = _model.Apply(p, s.State, x, Mode.Train, dropout);
                return _task.Loss(step, logits, y, LossReduction.Mean);
            },
            new GradOptions { Seed = seed, Trainable = _options.Trainable, GradientReady = ready });
        return (loss, logits!, grads, modelState!);
    }

    private static readonly StaticLossScale NoScale = new(1f);

    /// <summary>The profile that times the fit's step number <paramref name="fitStep"/> (from 0), or null when it is not profiled.</summary>
    private StepProfile? Profiling(long fitStep) =>
        _options.Profile is { } p && fitStep >= _options.ProfileSkip && fitStep < (long)_options.ProfileSkip + _options.ProfileSteps ? p : null;

    /// <summary>Starts timing a piece of a profiled step (0 when the step is not profiled).</summary>
    private long Start(StepProfile? profile) => profile?.Start(_device) ?? 0;

    /// <summary>Ends a piece begun with <see cref="Start(StepProfile?)"/>, under <paramref name="name"/>, when the step is profiled.</summary>
    private void Stop(StepProfile? profile, string name, long start) => profile?.Stop(name, _device, start);

    /// <summary>Progress goes to the options' sink on rank 0 (or in a single process) and nowhere on the other ranks.</summary>
    private IProgressSink Progress => _group is { IsMain: false } ? NullProgress.Instance : _options.Progress;

    /// <summary>This rank's share of the data in a distributed run (null otherwise): padded to equal shares for training, plain for evaluation.</summary>
    private DataShard? Shard(bool pad) => _group is null ? null : new DataShard(_group.Rank, _group.WorldSize, pad);

    /// <summary>The gradient buckets of a layout (planned once: the layout is the model's).</summary>
    private IReadOnlyList<GradientBucket> Buckets(ParamLayout layout) =>
        _buckets ??= GradientBuckets.Plan(layout, _options.Distributed?.BucketBytes ?? DistributedOptions.DefaultBucketBytes);

    /// <summary>
    /// The start of a distributed run (the state as it is in a single process): the world size
    /// of a resumed state must be this run's; every rank must run the same model on the same data
    /// with the same options (a fingerprint is all-gathered and compared); then rank 0's
    /// parameters and buffers (and averaged weights) are broadcast, so every rank starts from the same values.
    /// </summary>
    private TrainState JoinRun(TrainState s, IDataset train, IDataset? validation)
    {
        bool resumed = s.Step > 0 || s.Epoch > 0;
        int world = _group?.WorldSize ?? 1;
        if (resumed && s.WorldSize != world)
            throw new DistributedException(
                $"Trainer: the state to resume was trained by {s.WorldSize} process(es) (epoch {s.Epoch}, batch {s.BatchInEpoch}), but this run has {world}; each rank's share of an epoch and its batches depend on the number of ranks, so the run would not continue exactly. " +
                $"Resume with {(s.WorldSize == 1 ? "one process (no --distributed)" : $"mpirun -np {s.WorldSize}")}, or start a new run from its weights (--init-from).");
        if (_group is null)
            return s;

        var lines = new List<string>
        {
            $"world size: {_group.WorldSize}",
            $"model: {ModelDescription}",
            $"parameters: {s.Params.Layout.Count} tensors, {s.Params.Count} floats; buffers: {s.State.Layout.Count} tensors",
            $"optimizer: {_optimizer.GetType().Name}",
            $"task: {_task.Name}",
            $"training data: {train.Name}, {train.Count} samples of {train.SampleShape}",
            $"validation data: {(validation is null ? "none" : $"{validation.Name}, {validation.Count} samples")}",
            $"batch size: {_options.BatchSize}; drop last: {_options.DropLast}; epochs: {_options.Epochs}",
            $"seed: {_options.Seed}",
            $"precision: {_options.Precision}; loss scaling: {_options.LossScale?.GetType().Name ?? "none"}",
            $"sync batchnorm: {_options.Distributed?.SyncBatchNorm ?? false}; bucket bytes: {_options.Distributed?.BucketBytes}; overlap backward: {_options.Distributed?.OverlapBackward}",
            $"starts at: epoch {s.Epoch}, batch {s.BatchInEpoch}, step {s.Step}",
        };
        if (Fingerprint.Differences(Fingerprint.Gather(_group, lines)) is { } differences)
            throw new DistributedException($"Trainer: the ranks were not launched with the same run, so their gradients cannot be averaged:\n{differences}\nLaunch every rank with the same command, data and checkpoint.");

        _group.Broadcast(s.Params, 0, "the parameters at the start");
        _group.Broadcast(s.State, 0, "the buffers at the start");
        if (s.Averaged is { } averaged)
        {
            _group.Broadcast(averaged.Params, 0, "the averaged parameters at the start");
            _group.Broadcast(averaged.State, 0, "the averaged buffers at the start");
        }

        return s with { WorldSize = _group.WorldSize };
    }

    /// <summary>
    /// The end of a distributed run: every rank's parameters (and loss scale and step) hashed and
    /// all-gathered. Identical replicas are what the averaged gradients and the agreed skips
    /// promise; rank 0 says so, or names the ranks that differ (a divergence: a collective that was
    /// skipped on one rank, or a nondeterministic reduction).
    /// </summary>
    private static void CompareReplicas(ProcessGroup group, TrainState s, IProgressSink progress)
    {
        var snapshot = s.Params.Snapshot();
        ulong hash = 14695981039346656037UL;
        void Mix(ulong v)
        {
            hash ^= v;
            hash *= 1099511628211UL;
        }

        foreach (float v in snapshot.Float32)
            Mix(BitConverter.SingleToUInt32Bits(v));
        Mix((ulong)s.Step);
        Mix(BitConverter.SingleToUInt32Bits(s.LossScale?.Scale ?? 1f));
        var all = group.AllGather(BitConverter.GetBytes(hash), "the parameters' hash at the end of the run").Select(b => BitConverter.ToUInt64(b)).ToArray();
        if (all.All(h => h == all[0]))
        {
            progress.Message($"distributed: the {group.WorldSize} ranks end with identical parameters (step {s.Step}{(s.LossScale is DynamicLossScale d ? $", loss scale {d.Scale:G}" : string.Empty)})");
            return;
        }

        var differ = Enumerable.Range(1, all.Length - 1).Where(r => all[r] != all[0]);
        progress.Message($"warning: the ranks' parameters differ at the end of the run (rank(s) {string.Join(", ", differ)} against rank 0; hashes {string.Join(", ", all.Select(h => h.ToString("x16", System.Globalization.CultureInfo.InvariantCulture)))}): the replicas diverged, so the checkpoint holds rank 0's weights only; check that every rank ran the same command and report it if they did.");
    }

    /// <summary>Rank 0's verdict (its callbacks ran) on every rank: whether to stop, why, and whether its weights were restored (then broadcast).</summary>
    private static (EpochVerdict? Stop, bool Restore) AgreeOnStop(ProcessGroup group, EpochVerdict? mine)
    {
        Span<int> flags = [mine is null ? 0 : 1, mine?.RestoreParams is null ? 0 : 1];
        group.Broadcast(flags, 0, "rank 0's stop decision");
        if (flags[0] == 0)
            return (null, false);
        var reason = System.Text.Encoding.UTF8.GetString(group.AllGather(System.Text.Encoding.UTF8.GetBytes(mine?.Reason ?? string.Empty), "rank 0's stop reason")[0]);
        return (group.IsMain ? mine : new EpochVerdict(true, reason.Length == 0 ? null : reason), flags[1] == 1);
    }

    /// <summary>
    /// A step's loss, statistics, sample count and finite check summed over the ranks in one
    /// all-reduce: the loss is the mean over every rank's samples, and the step is skipped (or the
    /// NaN guard fires) on every rank when it is not finite on one.
    /// </summary>
    private static (float Loss, float[] Metrics, int Count, bool Finite) ReduceStep(ProcessGroup group, float[] metrics, int count, bool finite, long step)
    {
        var sums = new double[metrics.Length + 2];
        sums[0] = (double)metrics[0] * count;
        for (int i = 1; i < metrics.Length; i++)
            sums[i] = metrics[i];
        sums[^2] = count;
        sums[^1] = finite ? 0 : 1;
        group.AllReduce(sums.AsSpan(), ReduceOp.Sum, $"the loss and metrics of step {step}");
        int total = (int)sums[^2];
        var reduced = new float[metrics.Length];
        reduced[0] = (float)(sums[0] / Math.Max(total, 1));
        for (int i = 1; i < metrics.Length; i++)
            reduced[i] = (float)sums[i];
        return (reduced[0], reduced, total, sums[^1] == 0 && float.IsFinite(reduced[0]));
    }

    /// <summary>An evaluation's loss sum, statistics' totals and sample count summed over the ranks (a rank with no batch has no totals yet).</summary>
    private static (double Loss, double[]? Totals, int N) SumAcrossRanks(ProcessGroup group, double loss, double[]? totals, int n)
    {
        Span<int> width = [totals?.Length ?? 0];
        group.AllReduce(width, ReduceOp.Max, "the number of evaluation statistics");
        var sums = new double[width[0] + 2];
        sums[0] = loss;
        sums[1] = n;
        totals?.CopyTo(sums, 2);
        group.AllReduce(sums.AsSpan(), ReduceOp.Sum, "the evaluation's sums");
        int all = (int)sums[1];
        return (sums[0], all == 0 ? null : sums[2..], all);
    }

    /// <summary>
    /// The loss and the task's statistics, gathered on the device and read in one host transfer
    /// (one synchronization per step instead of one per value).
    /// </summary>
    private static float[] ReadLossAndStatistics(StepScope step, Tensor loss, IReadOnlyList<Tensor> statistics)
    {
        var host = step.Device.Kernels;
        long length = 1 + statistics.Sum(t => t.Length);
        var values = step.Allocate(new Shape(checked((int)length)));
        var view = values.View<float>();
        Transfer.Copy(host.Stream, loss.View<float>(), view.SubView(0, 1));
        long at = 1;
        foreach (var t in statistics)
        {
            if (t.DType != DType.Float32)
                throw new InvalidOperationException($"Trainer: the task's statistics must be Float32 tensors, but one is {t.DType}; return float sums.");
            Transfer.Copy(host.Stream, t.View<float>(), view.SubView(at, t.Length));
            at += t.Length;
        }

        return values.ToHost();
    }

    /// <summary>The batch's target on the device: int labels (N), or the float targets (N, ...) of an <see cref="ITargetDataset"/>.</summary>
    private Tensor UploadTarget(StepScope step, HostBatch batch)
    {
        if (!_task.UsesTargets)
            return step.Upload(batch.Labels, new Shape(batch.Count));
        if (batch.Targets is null || batch.TargetShape is null)
            throw new ArgumentException($"Trainer: the task {_task.Name} trains on float targets, but the batch has none; use a data set that implements ITargetDataset (CsvDataset, TabularDataset).");
        return step.Upload(batch.Targets, batch.TargetShape);
    }

    /// <summary>The task's metrics by name from the statistics' totals.</summary>
    private MetricSet MetricsOf(IReadOnlyList<double> totals, long samples)
    {
        if (samples == 0)
            return new MetricSet(_task.Metrics.Select(m => new KeyValuePair<string, double>(m.Name, double.NaN)));
        var values = _task.Finish(totals, samples);
        if (values.Count != _task.Metrics.Count)
            throw new InvalidOperationException($"Trainer: the task {_task.Name} declares {_task.Metrics.Count} metrics but its Finish returned {values.Count} values; return one per metric.");
        return new MetricSet(_task.Metrics.Select((m, i) => new KeyValuePair<string, double>(m.Name, values[i])));
    }

    /// <summary>The metrics that have no member of their own in <see cref="EpochMetrics"/>: name on the training set, val_name on the validation set; null when none.</summary>
    private static MetricSet? Extra(MetricSet trained, MetricSet? validation)
    {
        static bool Own(string name) => name is "accuracy" or "top_k";
        var values = trained.Where(kv => !Own(kv.Key))
            .Concat((validation ?? new MetricSet([])).Where(kv => !Own(kv.Key)).Select(kv => new KeyValuePair<string, double>("val_" + kv.Key, kv.Value)))
            .ToList();
        return values.Count == 0 ? null : new MetricSet(values);
    }

    private static double? Finite(double? v) => v is double d && double.IsNaN(d) ? null : v;

    /// <summary>
    /// Why <paramref name="data"/> cannot feed a task trained on float targets of the model's
    /// output shape, or null: it must be an <see cref="ITargetDataset"/> whose target shape is the output.
    /// </summary>
    /// <param name="data">The data set.</param>
    /// <param name="output">The model's per-sample output shape.</param>
    /// <param name="what">What the targets are, for the message ("labels", "target values").</param>
    /// <returns>The problem, or null.</returns>
    internal static string? TargetProblem(IDataset data, Shape output, string what)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(output);
        if (data is not ITargetDataset t)
            return $"{data.Name} has class labels but no float {what}; use a data set that implements ITargetDataset (CsvDataset, TabularDataset).";
        return t.TargetShape == output ? null : $"{data.Name} has {what} of shape {t.TargetShape} per sample, but the model outputs {output}; make its last layer Dense({t.TargetShape.Length}).";
    }

    private static void DisposeIfNew(ParamTree candidate, ParamTree original)
    {
        if (!ReferenceEquals(candidate, original))
            candidate.Dispose();
    }

    private TrainState Restore(TrainState s, ParamSnapshot parameters, ParamSnapshot? state)
    {
        var p = ParamTree.FromSnapshot(_device, parameters);
        s.Params.Dispose();
        var st = s.State;
        if (state is not null)
        {
            st = ParamTree.FromSnapshot(_device, state);
            s.State.Dispose();
        }

        return s with { Params = p, State = st };
    }

    private void RequireCompatible(IDataset data, string name)
    {
        // Resize and RandomResizedCrop change the shape the model sees (in training and evaluation alike).
        var seen = _options.Augmentation.OutputShape(data.SampleShape);
        if (seen != _inputShape)
            throw new ArgumentException(seen == data.SampleShape
                ? $"Trainer: {data.Name} has samples of shape {data.SampleShape}, but the model takes {_inputShape}; pick the model for this data set (for example --model mlp takes (784) from Fashion-MNIST flattened)."
                : $"Trainer: {data.Name} has samples of shape {data.SampleShape}, which the augmentation resizes to {seen}, but the model takes {_inputShape}; build the model for {seen} or resize to the model's input.", name);
        if (_task.DataProblem(data, _output) is { } problem)
            throw new ArgumentException($"Trainer: {problem}", name);
    }

    private static string Describe(Layer model) =>
        model is Sequential seq ? string.Join(" >> ", seq.Layers.Select(Describe)) : model.Describe();

    /// <summary>Running sums of one epoch.</summary>
    private sealed class EpochTally
    {
        private double _lossSum;
        private double[] _totals = [];

        public int Batches { get; private set; }

        public long Samples { get; private set; }

        public int Updates { get; private set; }

        public int Skipped { get; private set; }

        public int ConsecutiveSkips { get; set; }

        public double LastLoss { get; private set; }

        public bool LastSkipped { get; private set; }

        public bool LastUpdated { get; private set; }

        public double MeanLoss => Samples == 0 ? double.NaN : _lossSum / Samples;

        /// <summary>Each statistic element's total over the stepped batches.</summary>
        public IReadOnlyList<double> Totals => _totals;

        // stepped: the gradients were finite and went to the optimizer; updated: and it applied an
        // update (not a micro-batch that only accumulates).
        public void Record(float loss, ReadOnlySpan<float> statistics, int count, bool stepped, bool updated)
        {
            Batches++;
            LastLoss = loss;
            LastSkipped = !stepped;
            LastUpdated = updated;
            if (updated)
                Updates++;
            if (stepped)
            {
                _lossSum += (double)loss * count;
                if (_totals.Length != statistics.Length)
                    _totals = Samples == 0 ? new double[statistics.Length] : throw new InvalidOperationException($"Trainer: the task's statistics had {_totals.Length} values in an earlier batch and {statistics.Length} now; return the same number every batch.");
                for (int i = 0; i < statistics.Length; i++)
                    _totals[i] += statistics[i];
                Samples += count;
            }
            else
            {
                Skipped++;
            }
        }
    }
}
