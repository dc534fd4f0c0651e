using System.Diagnostics;

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

/// <summary>Loss and accuracies of a model on a data set, in Eval mode.</summary>
/// <param name="Loss">Mean loss (with the trainer's label smoothing).</param>
/// <param name="Accuracy">Top-1 accuracy.</param>
/// <param name="TopK">Top-k accuracy.</param>
/// <param name="K">k.</param>
/// <param name="Samples">Samples evaluated.</param>
public sealed record EvalResult(double Loss, double Accuracy, double TopK, int K, int Samples);

/// <summary>
/// Trains a classifier: a model (layers), an optimizer (any gradient transformation: clipping,
/// schedules and gradient accumulation are part of it) and the options. <see cref="Fit"/> runs
/// epochs over a data set with an optional validation set and returns the history.
/// </summary>
/// <remarks>
/// One training step (<see cref="TrainStep"/>): batch → device → augmentation → mixing (MixUp or
/// CutMix into soft targets, when <see cref="TrainerOptions.Mixing"/> is on) → forward with a
/// tape → cross-entropy → backward (seeded with the loss scale) → unscale and finite check →
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

    private readonly Device _device;
    private readonly Layer _model;
    private readonly Shape _inputShape;
    private readonly IGradientTransformation _optimizer;
    private readonly TrainerOptions _options;

    /// <summary>Creates a trainer.</summary>
    /// <param name="device">Where to train.</param>
    /// <param name="model">The model: per-sample input <paramref name="inputShape"/>, output (classes).</param>
    /// <param name="inputShape">Per-sample input shape, such as (784) or (1, 28, 28).</param>
    /// <param name="optimizer">The optimizer (a chain with clipping, a schedule, MultiSteps for accumulation...).</param>
    /// <param name="options">Epochs, batch size, seed, loss, augmentation, loss scaling, callbacks, progress.</param>
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
        _optimizer = optimizer;
        var output = model.OutputShape(inputShape);
        if (output.Rank != 1)
            throw new LayerShapeException($"Trainer: the model maps {inputShape} to {output}, but a classifier must output (classes); end it with Flatten and Dense(classes).");
        Classes = output[0];
        if (_options.WarmKernels)
            KernelWarmup = device.RunInBackground(WarmUp);
    }

    /// <summary>
    /// The background warm-up (<see cref="TrainerOptions.WarmKernels"/>), or null: one training
    /// step on a synthetic batch with throwaway parameters, which loads exactly the kernels the
    /// device's backend launches in a step (none that a managed path replaces).
    /// </summary>
    public Task? KernelWarmup { get; }

    /// <summary>The number of classes (the model's output width).</summary>
    public int Classes { get; }

    /// <summary>The options.</summary>
    public TrainerOptions Options => _options;

    /// <summary>The model, for checkpoints and messages: its layers and the input shape.</summary>
    public string ModelDescription => $"{Describe(_model)} on input {_inputShape}";

    /// <summary>A fresh run: parameters initialized from the seed, optimizer state, loss scale.</summary>
    /// <returns>The initial state (the caller owns it, or passes it to <see cref="Fit"/>).</returns>
    public TrainState Init()
    {
        var (p, s) = _model.Init(_device, _inputShape, Rng.Create(_options.Seed).Fold(InitPurpose));
        return new TrainState(p, s, _optimizer.Init(p), _options.LossScale, 0, 0, 0, History.Empty);
    }

    /// <summary>
    /// Trains for <see cref="TrainerOptions.Epochs"/> epochs (counting those already in
    /// <paramref name="from"/>), validating after each epoch.
    /// </summary>
    /// <param name="train">The training set.</param>
    /// <param name="validation">The validation set, or null.</param>
    /// <param name="from">A state to continue (from <see cref="Init"/> or a checkpoint; consumed), or null to start fresh.</param>
    /// <returns>The final state and the history.</returns>
    public FitResult Fit(IDataset train, IDataset? validation = null, TrainState? from = null)
    {
        ArgumentNullException.ThrowIfNull(train);
        RequireCompatible(train, nameof(train));
        if (validation is not null)
            RequireCompatible(validation, nameof(validation));
        var s = from ?? Init();
        var progress = _options.Progress;
        using var loader = new DataLoader(train, _options.BatchSize, shuffle: true, dropLast: _options.DropLast, seed: _options.Seed);
        if (loader.BatchesPerEpoch == 0)
            throw new ArgumentException($"Trainer: {train.Name} has {train.Count} samples, fewer than one batch of {_options.BatchSize} with drop-last; lower the batch size.", nameof(train));
        var accumulation = _optimizer as MultiSteps;
        if (accumulation is not null)
        {
            RequireAnUpdate(accumulation, s, loader.BatchesPerEpoch, train);
            progress.Message($"gradient accumulation: {accumulation.EveryK} batches of {_options.BatchSize} per update, effective batch {accumulation.EffectiveBatch(_options.BatchSize)} (linear scaling rule: lr x {LearningRateScaling.Factor(_options.BatchSize, (int)accumulation.EffectiveBatch(_options.BatchSize)):G3} relative to batch {_options.BatchSize})");
        }

        foreach (var c in _options.Callbacks)
            c.OnFitStart(new FitStartInfo(s, _options.Epochs));

        string reason = "completed";
        double? lastValLoss = null;
        try
        {
            while (s.Epoch < _options.Epochs)
            {
                int epoch = s.Epoch + 1;
                var tally = new EpochTally();
                var clock = Stopwatch.StartNew();
                progress.EpochStarted(epoch, _options.Epochs, loader.BatchesPerEpoch);
                foreach (var batch in loader.Epoch(epoch, s.BatchInEpoch))
                {
                    // The validation loss goes with the first update of the epoch (ReduceOnPlateau reads it).
                    var context = tally.Batches == 0 && lastValLoss is { } v ? new UpdateContext(v) : UpdateContext.None;
                    s = TrainStep(s, batch, epoch, context, tally);
                    progress.BatchDone(batch.Index, tally.LastLoss, CurrentLearningRate(s), tally.Samples / Math.Max(clock.Elapsed.TotalSeconds, 1e-9));
                    foreach (var c in _options.Callbacks)
                        c.OnStep(new StepInfo(epoch, batch.Index, s.Step, tally.LastLoss, CurrentLearningRate(s), tally.LastSkipped) { Updated = tally.LastUpdated });
                }

                double seconds = clock.Elapsed.TotalSeconds;
                var val = validation is null ? null : Evaluate(s.Params, s.State, validation);
                lastValLoss = val?.Loss;
                var metrics = new EpochMetrics(
                    epoch, tally.MeanLoss, tally.Accuracy, val?.Loss, val?.Accuracy, val?.TopK, val?.K ?? Math.Min(_options.TopK, Classes),
                    CurrentLearningRate(s), s.LossScale is DynamicLossScale d ? d.Scale : null, tally.Skipped, tally.Updates, tally.Samples, seconds);
                s = s with { Epoch = epoch, BatchInEpoch = 0, History = s.History.Add(metrics) };
                progress.EpochDone(metrics);

                EpochVerdict? stop = null;
                foreach (var c in _options.Callbacks)
                {
                    var verdict = c.OnEpochEnd(new EpochInfo(metrics, s, ModelDescription, _options.Seed));
                    if (verdict.Stop && stop is null)
                        stop = verdict;
                }

                if (stop is not null)
                {
                    if (stop.RestoreParams is not null)
                        s = Restore(s, stop.RestoreParams, stop.RestoreState);
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

        int pending = PendingMicroBatches(s);
        if (pending > 0)
            progress.Message($"note: the last {pending} batch(es) of the run did not complete a group of {accumulation!.EveryK} and were not applied (dropped, as PyTorch's drop_last drops a partial batch); make the run's batches a multiple of {accumulation.EveryK} to use them.");
        return new FitResult(s, reason) { PendingMicroBatches = pending };
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

    /// <summary>Loss, top-1 and top-k accuracy on <paramref name="data"/> in Eval mode (running statistics, no dropout).</summary>
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
        int k = Math.Min(_options.TopK, Classes);
        var sumLoss = _options.Loss with { Reduction = LossReduction.Sum };
        double loss = 0, top1 = 0, topk = 0;
        int n = 0;
        using var loader = new DataLoader(data, _options.EvalBatchSize, shuffle: false, dropLast: false, seed: 0);
        foreach (var batch in loader.Epoch(1))
        {
            using var step = _device.BeginStep();
            step.Precision = _options.Precision;
            var x = step.Upload(batch.X, batch.Shape);
            var y = step.Upload(batch.Labels, new Shape(batch.Count));
            var logits = _model.Predict(parameters, state, x);
            var m = ReadLossAndHits(step, F.CrossEntropy(logits, y, sumLoss), logits, y, 1, k);
            loss += m[0];
            top1 += m[1];
            topk += m[2];
            n += batch.Count;
        }

        return new EvalResult(loss / Math.Max(n, 1), top1 / Math.Max(n, 1), topk / Math.Max(n, 1), k, n);
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
            var batch = new HostBatch(0, n, new Shape([n, .. _inputShape]), new float[n * _inputShape.Length], new int[n]);
            var s = Init();
            try
            {
                s = TrainStep(s, batch, 1, UpdateContext.None, new EpochTally());
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
    private TrainState TrainStep(TrainState s, HostBatch batch, int epoch, UpdateContext context, EpochTally tally)
    {
        using var step = _device.BeginStep();
        step.Precision = _options.Precision;
        var rng = Rng.Create(_options.Seed).At(checked((uint)s.Step));
        var x = _options.Augmentation.Apply(step, step.Upload(batch.X, batch.Shape), rng.Fold(AugmentPurpose));   // batch -> device -> augment
        var y = step.Upload(batch.Labels, new Shape(batch.Count));
        (x, var targets) = _options.Mixing.Apply(step, x, y, Classes, rng.Fold(MixingPurpose));                     // mixup / cutmix -> soft targets
        var lossScale = s.LossScale ?? NoScale;
        var (loss, logits, grads, modelState) = ForwardBackward(step, s, x, targets, rng.Fold(DropoutPurpose), lossScale.Scale); // forward -> loss -> backward
        var metrics = ReadLossAndHits(step, loss, logits, y, 1);                                                   // metrics
        float lossValue = metrics[0];
        bool finite = lossScale.UnscaleInPlace(grads) && float.IsFinite(lossValue);                               // unscale + finite check
        var nextScale = s.LossScale?.Adjust(finite);
        bool emits = _optimizer is not MultiSteps accumulation || accumulation.EmitsNext(s.OptState);
        tally.Record(lossValue, metrics[1], batch.Count, stepped: finite, updated: finite && emits);

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
        var (parameters, optState) = _optimizer.Step(s.Params, grads, s.OptState, context);                        // clip -> update -> apply
        if (!ReferenceEquals(modelState, s.State))
            s.State.Dispose();
        return s with { Params = parameters, State = modelState, OptState = optState, LossScale = nextScale, Step = s.Step + 1, BatchInEpoch = batch.Index + 1 };
    }

    private (Tensor Loss, Tensor Logits, ParamTree Grads, ParamTree State) ForwardBackward(StepScope step, TrainState s, Tensor x, Tensor y, Rng dropout, float seed)
    {
        Tensor? logits = null;
        ParamTree? modelState = null;
        var (loss, grads) = Autodiff.ValueAndGrad(
            step,
            s.Params,
            p =>
            {
                (logits, modelState) = _model.Apply(p, s.State, x, Mode.Train, dropout);
                return F.CrossEntropy(logits, y, _options.Loss);
            },
            new GradOptions { Seed = seed, Trainable = _options.Trainable });
        return (loss, logits!, grads, modelState!);
    }

    private static readonly StaticLossScale NoScale = new(1f);

    /// <summary>
    /// The loss and the number of top-k hits for each k, gathered on the device and read in one
    /// host transfer (one synchronization per step instead of one per value).
    /// </summary>
    private static float[] ReadLossAndHits(StepScope step, Tensor loss, Tensor logits, Tensor y, params int[] ks)
    {
        int n = logits.Shape[0], c = logits.Shape[1];
        var host = step.Device.Kernels;
        var values = step.Allocate(new Shape(1 + ks.Length));
        var view = values.View<float>();
        Transfer.Copy(host.Stream, loss.View<float>(), view.SubView(0, 1));
        var hits = step.Scratch<float>(Math.Max(n, 1)).SubView(0, n);
        var scratch = step.Scratch<float>(Math.Max(1, Reductions.ScratchLength(host, n)));
        for (int i = 0; i < ks.Length; i++)
        {
            Metrics.TopKHits(host, logits.View<float>(), y.View<int>(), hits, n, c, ks[i]);
            Reductions.Sum(host, hits, view.SubView(1 + i, 1), scratch);
        }

        return values.ToHost();
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
        if (data.SampleShape != _inputShape)
            throw new ArgumentException($"Trainer: {data.Name} has samples of shape {data.SampleShape}, but the model takes {_inputShape}; pick the model for this data set (for example --model mlp takes (784) from Fashion-MNIST flattened).", name);
        if (data.Classes > Classes)
            throw new ArgumentException($"Trainer: {data.Name} has {data.Classes} classes, but the model outputs {Classes}; make its last layer Dense({data.Classes}).", name);
    }

    private static string Describe(Layer model) =>
        model is Sequential seq ? string.Join(" >> ", seq.Layers.Select(Describe)) : model.Describe();

    /// <summary>Running sums of one epoch.</summary>
    private sealed class EpochTally
    {
        private double _lossSum;
        private double _hits;

        public int Batches { get; private set; }

        public long Samples { get; private set; }

        public int Updates { get; private set; }

        public int Skipped { get; private set; }

        public int ConsecutiveSkips { get; set; }

        public double LastLoss { get; private set; }

        public bool LastSkipped { get; private set; }

        public bool LastUpdated { get; private set; }

        public double MeanLoss => Samples == 0 ? double.NaN : _lossSum / Samples;

        public double Accuracy => Samples == 0 ? double.NaN : _hits / Samples;

        // stepped: the gradients were finite and went to the optimizer; updated: and it applied an
        // update (not a micro-batch that only accumulates).
        public void Record(float loss, float hits, int count, bool stepped, bool updated)
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
                _hits += hits;
                Samples += count;
            }
            else
            {
                Skipped++;
            }
        }
    }
}
