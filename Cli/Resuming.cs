using System.Text.Json.Nodes;
using IlgpuTrain.Functional;
using IlgpuTrain.Optimizers;
using IlgpuTrain.Training;

namespace IlgpuTrain.Cli;

/// <summary>Continuing a run from a checkpoint, and reading the run configuration a checkpoint stores.</summary>
internal static class Resuming
{
    /// <summary>The configuration of the run that wrote <paramref name="path"/>.</summary>
    public static TrainConfig ReadConfig(string path)
    {
        var file = SafeTensors.Load(path);
        if (!file.Metadata.TryGetValue(Checkpoint.MetadataKey, out var text) || JsonNode.Parse(text)?["config"]?.GetValue<string>() is not { } config)
            throw new InvalidDataException($"{path}: this checkpoint has no ilgpu-train run configuration; it was not written by `ilgpu-train train`.");
        return TrainConfig.FromJson(config);
    }

    /// <summary>
    /// Loads <paramref name="path"/> as the state to continue: the checkpoint's model and data set
    /// must be the run's; the epochs option may extend it.
    /// </summary>
    public static TrainState Resume(string path, Device device, Trainer trainer, IGradientTransformation optimizer, TrainConfig config, IProgressSink progress)
    {
        if (!File.Exists(path))
            throw new ArgumentException($"--resume {path}: no such file. train writes <output>/checkpoints/last.safetensors after every epoch.");
        var stored = ReadConfig(path);
        if (stored.Model != config.Model || stored.Dataset != config.Dataset)
            throw new ArgumentException($"--resume {path}: the checkpoint is {stored.Model} on {stored.Dataset}, but this run is {config.Model} on {config.Dataset}; pass the same --model and --dataset.");
        if (stored.Epochs != config.Epochs && (stored.Schedule != "constant" || config.Schedule != "constant"))
            throw new ArgumentException($"--resume {path}: the run was for {stored.Epochs} epochs and its {stored.Schedule} schedule spans them all, so it continues exactly only with --epochs {stored.Epochs}. To train longer, use --schedule constant for both runs or start a new run.");
        if (stored with { Epochs = config.Epochs, Output = config.Output, Device = config.Device, DataDir = config.DataDir } != config)
            progress.Message("note: options differ from the checkpoint's run; the run continues with the new ones (the schedule and optimizer state come from the checkpoint).");
        var c = Checkpoint.Load(path, device, optimizer);
        progress.Message($"resuming from {path}: epoch {c.Epoch}, batch {c.BatchInEpoch}, step {c.Step}");
        return CheckpointCallback.ToTrainState(c, trainer.Options.LossScale);
    }
}
