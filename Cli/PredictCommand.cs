using System.CommandLine;
using System.Globalization;
using IlgpuTrain.Functional;
using IlgpuTrain.Kernels.Runtime;
using IlgpuTrain.Training;

namespace IlgpuTrain.Cli;

/// <summary>
/// ilgpu-train predict: what a checkpoint's model gives each image file or CSV row, by the task it was trained for:
/// the class and its probability, the labels above their thresholds with their probabilities, or the target values.
/// </summary>
internal static class PredictCommand
{
    public static Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "A checkpoint written by train (runs/latest/checkpoints/best.safetensors).", Required = true };
        var input = new Option<string>("--input") { Description = "A PNG or JPEG file, a folder of them, or a CSV file of raw feature rows (a header row naming the features selects them; otherwise it is skipped).", Required = true };
        var device = new Option<string?>("--device") { Description = "cpu, cpu-kernels, cuda or opencl." };
        var averaged = new Option<bool>("--averaged") { Description = "Use the checkpoint's averaged weights (a run with --ema or --swa-start)." };
        var command = new Command("predict", "Predict with a checkpoint's model: the class, the labels or the target values of image files or CSV rows.") { checkpoint, input, device, averaged };
        command.SetAction(parse => Run(parse.GetValue(checkpoint)!, parse.GetValue(input)!, parse.GetValue(device), parse.GetValue(averaged)));
        return command;
    }

    private static int Run(string path, string input, string? deviceName, bool averaged)
    {
        if (deviceName is not null and not ("cpu" or "cpu-kernels" or "cuda" or "opencl"))
            return Cli.Fail([$"--device {deviceName}: use cpu, cpu-kernels, cuda or opencl."]) ? 2 : 0;
        if (!File.Exists(path))
            return Cli.Fail([$"--checkpoint {path}: no such file. train writes checkpoints to <output>/checkpoints/best.safetensors and last.safetensors."]) ? 2 : 0;
        bool csv = string.Equals(Path.GetExtension(input), ".csv", StringComparison.OrdinalIgnoreCase);
        var images = Directory.Exists(input)
            ? Directory.EnumerateFiles(input).Where(IsImage).Order(StringComparer.Ordinal).ToList()
            : File.Exists(input) && !csv && IsImage(input) ? [input] : [];
        if (!csv && images.Count == 0)
            return Cli.Fail([$"--input {input}: {(Directory.Exists(input) ? "the folder holds no PNG or JPEG files" : File.Exists(input) ? "not a .png, .jpg, .jpeg or .csv file" : "no such file or folder")}; pass an image, a folder of images or a CSV file."]) ? 2 : 0;
        if (csv && !File.Exists(input))
            return Cli.Fail([$"--input {input}: no such file."]) ? 2 : 0;
        return Cli.Guard(() =>
        {
            using var dev = deviceName is null ? ComputeDevice.Create() : ComputeDevice.Create(DeviceOptions.Parse(deviceName, "--device"));
            using var predictor = Predictor.Load(path, dev, averaged: averaged);
            var x = csv ? predictor.ReadCsv(input) : images.SelectMany(predictor.ReadImage).ToArray();
            var names = csv ? Enumerable.Range(2, int.MaxValue - 2).Select(i => $"row {i - 1}") : images.Select(Path.GetFileName);
            foreach (var (name, line) in names.Zip(Lines(predictor, x)))
                Console.WriteLine($"{name}: {line}");
            return 0;
        });
    }

    // One line per sample, by the task the checkpoint records; numbers in the invariant culture.
    private static IEnumerable<string> Lines(Predictor predictor, float[] x)
    {
        var inv = CultureInfo.InvariantCulture;
        var outputs = predictor.Model.OutputNames;
        string Name(int i) => outputs is not null && i < outputs.Count ? outputs[i] : i.ToString(inv);
        string Values(float[] v) => string.Join(", ", v.Select((y, i) => $"{Name(i)}={y.ToString(inv)}"));
        return predictor.Model.Task.Kind switch
        {
            ModelTaskKind.Classification => predictor.Predict(x).Select(p => string.Create(inv, $"{p.Label ?? p.Class.ToString(inv)} ({p.Probability:F4})")),
            ModelTaskKind.MultiLabel => predictor.PredictLabels(x).Select(p => p.Labels.Count == 0 ? "(none)"
                : string.Join(", ", p.Labels.Select(l => string.Create(inv, $"{Name(l)} ({p.Probabilities[l]:F4})")))),
            ModelTaskKind.Regression => predictor.PredictValues(x).Select(p => Values(p.Values)),
            _ => Chunks(predictor.Outputs(x), checked((int)predictor.OutputShape.Length)).Select(Values),
        };
    }

    private static IEnumerable<float[]> Chunks(float[] y, int width)
    {
        for (int i = 0; i + width <= y.Length && width > 0; i += width)
            yield return y[i..(i + width)];
    }

    private static bool IsImage(string file) =>
        ImageFolderDataset.Extensions.Contains(Path.GetExtension(file).ToLowerInvariant());
}
