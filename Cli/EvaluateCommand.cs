using System.CommandLine;
using System.Globalization;
using IlgpuTrain.Training;

namespace IlgpuTrain.Cli;

/// <summary><c>ilgpu-train evaluate --checkpoint PATH</c>: loss and accuracy of a trained model on its data set's test split.</summary>
internal static class EvaluateCommand
{
    public static Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "A checkpoint written by train (runs/latest/checkpoints/best.safetensors).", Required = true };
        var data = new Option<string?>("--data") { Description = "Folder with the data set's files (default: the one the run used)." };
        var device = new Option<string?>("--device") { Description = "cpu, cpu-kernels, cuda or opencl." };
        var averaged = new Option<bool>("--averaged") { Description = "Evaluate the checkpoint's averaged weights (a run with --ema or --swa-start) instead of the trained ones." };
        var command = new Command("evaluate", "Evaluate a checkpoint on the test split of its data set.") { checkpoint, data, device, averaged };
        command.SetAction(parse => Run(parse.GetValue(checkpoint)!, parse.GetValue(data), parse.GetValue(device), parse.GetValue(averaged)));
        return command;
    }

    private static int Run(string path, string? dataDir, string? deviceName, bool averaged)
    {
        if (deviceName is not null and not ("cpu" or "cpu-kernels" or "cuda" or "opencl"))
            return Cli.Fail([$"--device {deviceName}: use cpu, cpu-kernels, cuda or opencl."]) ? 2 : 0;
        if (!File.Exists(path) && !Directory.Exists(path))
            return Cli.Fail([$"--checkpoint {path}: no such file. train writes checkpoints to <output>/checkpoints/best.safetensors and last.safetensors."]) ? 2 : 0;
        return Cli.Guard(() =>
        {
            // The stored configuration is validated before anything uses it. Evaluation needs the model
            // and the data set, not the optimizer: its state (whose schedule spans the run's own, possibly
            // limited, data) is not loaded.
            var config = Resuming.ReadConfig(path);
            config = config with { DataDir = dataDir ?? config.DataDir, Device = deviceName ?? config.Device };
            var data = Recipes.LoadData(config with { TrainLimit = 0, ValSize = 0 });
            using var dev = Recipes.CreateDevice(config);
            var (trainer, _, _) = Recipes.BuildTrainer(config, dev, data.Train);
            using var ckpt = Resuming.LoadFor(path, dev, config, data.Train);
            if (averaged && ckpt.Averaged is null)
                return Cli.Fail([$"--averaged: {path} holds no averaged weights (its run had no --ema or --swa-start, or SWA had not started); evaluate it without --averaged."]) ? 2 : 0;
            var r = averaged ? trainer.Evaluate(ckpt.Averaged!.Params, ckpt.Averaged.State, data.Test) : trainer.Evaluate(ckpt.Params, ckpt.State, data.Test);
            Console.WriteLine($"{path}: {config.Model} on {config.Dataset}, epoch {ckpt.Epoch}, step {ckpt.Step}{(averaged ? $", averaged weights ({(config.Ema is not null ? "ema" : "swa")}, {ckpt.Averaged!.Count} updates)" : string.Empty)}");
            Console.WriteLine(TrainCommand.Describe(r));
            return 0;
        });
    }
}
