using System.CommandLine;
using IlgpuTrain.Functional;
using IlgpuTrain.Kernels.Runtime;
using IlgpuTrain.Training;

namespace IlgpuTrain.Cli;

/// <summary>
/// <c>ilgpu-train export --checkpoint PATH --onnx OUT.onnx</c>: the trained model as an ONNX file (opset 17) for ONNX
/// Runtime, rebuilt from the model the checkpoint carries (no data set needed); an older checkpoint without its model
/// is rebuilt from its stored configuration and data set, and the output says so.
/// </summary>
internal static class ExportCommand
{
    public static Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "A checkpoint written by train (runs/latest/checkpoints/best.safetensors).", Required = true };
        var onnx = new Option<string>("--onnx") { Description = "The ONNX file to write (input \"input\" with a dynamic batch, output \"output\").", Required = true };
        var data = new Option<string?>("--data") { Description = "Only for older checkpoints that do not carry their model: the data set's files (default: the one the run used), whose sample shape and classes shape the model." };
        var averaged = new Option<bool>("--averaged") { Description = "Export the checkpoint's averaged weights (a run with --ema or --swa-start) instead of the trained ones." };
        var command = new Command("export", "Export a checkpoint's model to ONNX (opset 17) for ONNX Runtime and ML.NET.") { checkpoint, onnx, data, averaged };
        command.SetAction(parse => Run(parse.GetValue(checkpoint)!, parse.GetValue(onnx)!, parse.GetValue(data), parse.GetValue(averaged)));
        return command;
    }

    private static int Run(string path, string onnxPath, string? dataDir, bool averaged)
    {
        if (!File.Exists(path) && !Directory.Exists(path))
            return Cli.Fail([$"--checkpoint {path}: no such file. train writes checkpoints to <output>/checkpoints/best.safetensors and last.safetensors."]) ? 2 : 0;
        string? folder = Path.GetDirectoryName(Path.GetFullPath(onnxPath));
        if (folder is not null && !Directory.Exists(folder))
            return Cli.Fail([$"--onnx {onnxPath}: the folder {folder} does not exist; create it or write the file elsewhere."]) ? 2 : 0;
        return Cli.Guard(() =>
        {
            // The model runs on the CPU; the export reads weights only.
            var file = SafeTensors.Load(path);
            return ModelFile.Carries(file) ? FromModel(file, onnxPath, dataDir, averaged) : FromConfig(path, onnxPath, dataDir, averaged);
        });
    }

    // The checkpoint carries its model: rebuilt from the checkpoint alone, no data set needed.
    private static int FromModel(SafeTensorsFile file, string onnxPath, string? dataDir, bool averaged)
    {
        using var dev = ComputeDevice.Create(DeviceOptions.Parse("cpu", "--device"));
        LoadedModel loaded;
        try
        {
            loaded = ModelFile.Load(file, dev, averaged);
        }
        catch (ArgumentException e) when (e.ParamName == "averaged")
        {
            return AveragedMissing(file.Source);
        }

        using var _ = loaded;
        var m = loaded.Model;
        OnnxExport.Save(m.Layer, m.InputShape, loaded.Params, loaded.State, onnxPath);
        if (dataDir is not null)
            Console.WriteLine($"--data {dataDir} is not used: the checkpoint carries its model.");
        Console.WriteLine($"{onnxPath}: the model stored in {file.Source} ({ModelTask.NameOf(m.Task.Kind)}{(averaged ? ", averaged weights" : string.Empty)}), ONNX opset {OnnxExport.Opset}, input \"{OnnxExport.InputName}\" (batch, {string.Join(", ", m.InputShape)}), output \"{OnnxExport.OutputName}\" (batch, {string.Join(", ", m.Layer.OutputShape(m.InputShape))}).");
        if (m.Normalization is not null || m.Standardization is not null)
            Console.WriteLine($"  the graph takes inputs after the {(m.Standardization is not null ? "feature standardization" : "normalization")} the checkpoint records; apply it before ONNX Runtime (predict does).");
        return 0;
    }

    // An older checkpoint without its model: as evaluate, the stored configuration names the model and the data
    // set's training split gives its sample shape and number of outputs.
    private static int FromConfig(string path, string onnxPath, string? dataDir, bool averaged)
    {
        var config = Resuming.ReadConfig(path);
        config = config with { DataDir = dataDir ?? config.DataDir, Device = "cpu" };
        Console.WriteLine($"{path} does not carry its model (an older checkpoint): rebuilding {config.Model} from its stored configuration and the data set at {config.DataDir ?? "the default location"}.");
        var data = Recipes.LoadData(config with { TrainLimit = 0, ValSize = 0 });
        using var dev = Recipes.CreateDevice(config);
        var model = Recipes.Model(config, data.Train);
        using var ckpt = Resuming.LoadFor(path, dev, config, data.Train);
        if (averaged && ckpt.Averaged is null)
            return AveragedMissing(path);
        var (p, s) = averaged ? (ckpt.Averaged!.Params, ckpt.Averaged.State) : (ckpt.Params, ckpt.State);
        OnnxExport.Save(model, data.Train.SampleShape, p, s, onnxPath);
        Console.WriteLine($"{onnxPath}: {config.Model} on {config.Dataset} (epoch {ckpt.Epoch}, step {ckpt.Step}{(averaged ? ", averaged weights" : string.Empty)}), ONNX opset {OnnxExport.Opset}, input \"{OnnxExport.InputName}\" (batch, {string.Join(", ", data.Train.SampleShape)}), output \"{OnnxExport.OutputName}\" (batch, {string.Join(", ", model.OutputShape(data.Train.SampleShape))}).");
        return 0;
    }

    private static int AveragedMissing(string path) =>
        Cli.Fail([$"--averaged: {path} holds no averaged weights (its run had no --ema or --swa-start, or SWA had not started); export it without --averaged."]) ? 2 : 0;
}
