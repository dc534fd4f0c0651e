using System.Text.Json;
using System.Text.Json.Nodes;

namespace IlgpuTrain.Training;

/// <summary>
/// Continuing a run from a checkpoint whose metadata stores its <see cref="RunConfig"/> (as
/// <c>ilgpu-train train</c>'s <see cref="CheckpointCallback"/> writes it), and the rules for when a
/// checkpoint can continue a run exactly.
/// </summary>
/// <remarks>
/// A checkpoint continues a run when both are the same model on the same data set (its parameters
/// fit no other model), and either both are for the same number of epochs or both use the constant
/// schedule: every other schedule spans the whole run, so a longer run would need another schedule
/// than the one whose position the checkpoint stores. The optimizer, the gradient accumulation and
/// the learning-rate scaling (<see cref="RunConfig.ScaleLr"/>) must be the run's too. Any other
/// option may change; the optimizer state and the schedule's step come from the checkpoint.
/// </remarks>
public static class Resuming
{
    /// <summary>The configuration of the run that wrote <paramref name="path"/>, checked against <see cref="RunConfig.Decode"/>'s schema before anything uses it.</summary>
    /// <param name="path">A checkpoint (.safetensors).</param>
    /// <returns>The stored configuration.</returns>
    /// <exception cref="CheckpointFormatException">The metadata is not valid JSON, stores no configuration, or a field has the wrong type or an out-of-range value (the message names it).</exception>
    public static RunConfig ReadConfig(string path)
    {
        var file = SafeTensors.Load(path);
        if (!file.Metadata.TryGetValue(Checkpoint.MetadataKey, out var text))
            throw new CheckpointFormatException(path, $"no \"{Checkpoint.MetadataKey}\" metadata: this checkpoint was not written by `ilgpu-train train` (or a CheckpointCallback given RunConfig.ToJson()).");
        JsonNode? meta;
        try
        {
            meta = JsonNode.Parse(text);
        }
        catch (JsonException e)
        {
            throw new CheckpointFormatException(path, $"the \"{Checkpoint.MetadataKey}\" metadata is not valid JSON ({e.Message}); the file is damaged, use another checkpoint.");
        }

        if (meta is not JsonObject obj)
            throw new CheckpointFormatException(path, $"the \"{Checkpoint.MetadataKey}\" metadata is not a JSON object; the file is damaged, use another checkpoint.");
        var config = obj["config"];
        if (config is null)
            throw new CheckpointFormatException(path, "this checkpoint stores no run configuration (metadata \"config\" is missing or null); it was not written by `ilgpu-train train` (or a CheckpointCallback given RunConfig.ToJson()).");
        if (config.GetValueKind() != JsonValueKind.String)
        {
            string shown = config.ToJsonString();
            throw new CheckpointFormatException(path, $"metadata \"config\" is {(shown.Length > 60 ? shown[..60] + "..." : shown)}; allowed: a string holding the run configuration as JSON (RunConfig.ToJson()).");
        }

        return RunConfig.Decode(config.GetValue<string>(), out string? problem)
            ?? throw new CheckpointFormatException(path, $"the stored run configuration (metadata \"config\") is not valid: {problem}.");
    }

    /// <summary>
    /// Loads <paramref name="path"/> onto <paramref name="device"/> for the model that <paramref name="config"/> names on
    /// <paramref name="train"/>'s sample shape and classes: its parameter and buffer layout must be that model's.
    /// </summary>
    /// <param name="path">A checkpoint written by train.</param>
    /// <param name="device">Where the state goes.</param>
    /// <param name="config">The checkpoint's own configuration (<see cref="ReadConfig"/>).</param>
    /// <param name="train">A split of the data set (its sample shape and classes shape the model).</param>
    /// <param name="optimizer">The optimizer to restore the state into, or null to skip the optimizer state (evaluation needs none).</param>
    /// <returns>The checkpoint; the caller owns it.</returns>
    /// <exception cref="CheckpointFormatException">The file is malformed, or its parameters are not those of the model its configuration names.</exception>
    public static TrainingCheckpoint LoadFor(string path, Device device, RunConfig config, IDataset train, IGradientTransformation? optimizer = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(train);
        var model = Recipes.Model(config, train);
        ParamLayout ps, ss;
        var (p, s) = model.Init(device, train.SampleShape, Rng.Create(0));
        using (p)
        using (s)
        {
            ps = p.Layout;
            ss = s.Layout;
        }

        try
        {
            return Checkpoint.Load(path, device, optimizer, ps, ss);
        }
        catch (CheckpointMismatchException e) when (e.Problem.StartsWith("the model does not match", StringComparison.Ordinal))
        {
            throw new CheckpointFormatException(path, $"the stored run configuration says \"Model\": \"{config.Model}\" on {config.Dataset}, but the parameters are not that model's: {e.Problem}");
        }
    }

    /// <summary>Why a checkpoint of run <paramref name="stored"/> cannot continue run <paramref name="run"/>, or null when it can (see the remarks of <see cref="Resuming"/>).</summary>
    /// <param name="stored">The configuration the checkpoint stores.</param>
    /// <param name="run">The configuration of the run to continue.</param>
    /// <returns>The reason, naming the fix, or null.</returns>
    public static string? Incompatibility(RunConfig stored, RunConfig run)
    {
        ArgumentNullException.ThrowIfNull(stored);
        ArgumentNullException.ThrowIfNull(run);
        if (stored.Model != run.Model || stored.Dataset != run.Dataset)
            return $"the checkpoint is {stored.Model} on {stored.Dataset}, but this run is {run.Model} on {run.Dataset}; use the same model and data set.";
        if (stored.Epochs != run.Epochs && (stored.Schedule != "constant" || run.Schedule != "constant"))
            return $"the run was for {stored.Epochs} epochs and its {stored.Schedule} schedule spans them all, so it continues exactly only with --epochs {stored.Epochs} (RunConfig.Epochs). To train longer, use the constant schedule for both runs or start a new run.";
        if (stored.Optimizer != run.Optimizer)
            return $"the run used --optimizer {stored.Optimizer} and this one {run.Optimizer}; the optimizer state does not carry over, so resume with --optimizer {stored.Optimizer} or start a new run.";
        if (stored.Ema != run.Ema || stored.SwaStart != run.SwaStart)
            return $"the run averaged its weights with {Averaging(stored)} and this one with {Averaging(run)}; the average does not carry over, so resume with {Averaging(stored)} or start a new run.";
        if (stored.Accumulate != run.Accumulate)
            return $"the run accumulated gradients over --accumulate {stored.Accumulate} batch(es) per update and this one over {run.Accumulate}; the optimizer state (and where an update falls) differs, so resume with --accumulate {stored.Accumulate} or start a new run.";
        if (RunConfig.Globs(stored.Freeze).SequenceEqual(RunConfig.Globs(run.Freeze)) is false)
            return $"the run froze {Frozen(stored)} and this one {Frozen(run)}; the optimizer state covers the trainable parameters only, so resume with {(stored.Freeze is null ? "no --freeze" : $"--freeze {stored.Freeze}")}, or start a new run from the checkpoint's weights with --init-from and the new --freeze (gradual unfreezing).";
        if (stored.Task != run.Task || stored.Target != run.Target)
            return $"the checkpoint trained --task {stored.Task} (target {stored.Target ?? "the labels"}) and this run --task {run.Task} (target {run.Target ?? "the labels"}); its output layer and metrics are another task's, so resume with --task {stored.Task}{(stored.Target is null ? string.Empty : $" --target {stored.Target}")} or start a new run.";

        if (stored.ScaleLr != run.ScaleLr || (stored.ScaleLr && stored.BaseBatchSize != run.BaseBatchSize))
        {
            static string Scaling(RunConfig c) => c.ScaleLr ? $"--scale-lr --base-batch-size {c.BaseBatchSize}" : "no --scale-lr";
            return $"the run was trained with {Scaling(stored)} and this one with {Scaling(run)}; its learning-rate schedule differs, so resume with {Scaling(stored)} or start a new run.";
        }

        return null;
    }

    private static string Frozen(RunConfig c) => c.Freeze is null ? "nothing (no --freeze)" : $"--freeze {c.Freeze}";

    private static string Averaging(RunConfig c) =>
        c.Ema is { } e ? $"--ema {e.ToString("R", System.Globalization.CultureInfo.InvariantCulture)}" : c.SwaStart > 0 ? $"--swa-start {c.SwaStart}" : "no --ema or --swa-start";

    /// <summary>Whether <paramref name="run"/> differs from <paramref name="stored"/> in more than the epochs, where the run reads and writes (output, device, data folder) and its data workers.</summary>
    /// <param name="stored">The configuration the checkpoint stores.</param>
    /// <param name="run">The configuration of the run to continue.</param>
    /// <returns>True when some training option changed.</returns>
    public static bool OptionsDiffer(RunConfig stored, RunConfig run)
    {
        ArgumentNullException.ThrowIfNull(stored);
        ArgumentNullException.ThrowIfNull(run);
        return stored with { Epochs = run.Epochs, Output = run.Output, Device = run.Device, DataDir = run.DataDir, Workers = run.Workers } != run;
    }

    /// <summary>
    /// Loads <paramref name="path"/> as the state to continue <paramref name="config"/> from, after
    /// checking <see cref="Incompatibility"/>; a note goes to <paramref name="progress"/> when other
    /// options differ (the run continues with the new ones).
    /// </summary>
    /// <param name="path">A checkpoint written with the run's configuration.</param>
    /// <param name="device">Where the state goes.</param>
    /// <param name="trainer">The run's trainer (its loss scale is restored).</param>
    /// <param name="optimizer">The run's optimizer (the state's layout).</param>
    /// <param name="config">The run to continue.</param>
    /// <param name="progress">Where notes go.</param>
    /// <returns>The state to pass to <see cref="Trainer.Fit"/>.</returns>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="ArgumentException">The checkpoint cannot continue this run; the message says why and what to change.</exception>
    public static TrainState Resume(string path, Device device, Trainer trainer, IGradientTransformation optimizer, RunConfig config, IProgressSink progress)
    {
        ArgumentNullException.ThrowIfNull(trainer);
        ArgumentNullException.ThrowIfNull(progress);
        var stored = ReadConfig(path);
        if (Incompatibility(stored, config) is { } why)
            throw new ArgumentException($"{path}: {why}", nameof(path));
        if (OptionsDiffer(stored, config))
            progress.Message("note: options differ from the checkpoint's run; the run continues with the new ones (the schedule and optimizer state come from the checkpoint).");
        TrainingCheckpoint c;
        using (var fresh = trainer.Init())
        {
            try
            {
                c = Checkpoint.Load(path, device, optimizer, fresh.Params.Layout, fresh.State.Layout);
            }
            catch (CheckpointMismatchException e) when (e.Problem.StartsWith("the model does not match", StringComparison.Ordinal))
            {
                throw new CheckpointFormatException(path, $"the stored run configuration says \"Model\": \"{stored.Model}\" on {stored.Dataset}, but the parameters are not that model's: {e.Problem}");
            }
        }

        progress.Message($"resuming from {path}: epoch {c.Epoch}, batch {c.BatchInEpoch}, step {c.Step}");
        return CheckpointCallback.ToTrainState(c, trainer.Options.LossScale);
    }
}
