using System.CommandLine;
using System.Globalization;
using IlgpuTrain.Functional;
using IlgpuTrain.Kernels.Runtime;
using IlgpuTrain.Training;

namespace IlgpuTrain.Cli;

/// <summary><c>ilgpu-train generate --checkpoint C --prompt TEXT --tokens N --temperature T --top-k K</c>: samples text from a language model.</summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var checkpoint = new Option<string>("--checkpoint") { Description = "A checkpoint of train --dataset text --model transformer (runs/latest/checkpoints/best.safetensors).", Required = true };
        var prompt = new Option<string>("--prompt") { Description = "The text to continue, in the training text's characters (default: a newline).", DefaultValueFactory = _ => "\n" };
        var tokens = new Option<int>("--tokens") { Description = "Characters to generate.", DefaultValueFactory = _ => 200 };
        var temperature = new Option<double>("--temperature") { Description = "Divides the logits (1: the model's distribution; lower is more conservative; 0 is greedy).", DefaultValueFactory = _ => 1.0 };
        var topK = new Option<int?>("--top-k") { Description = "Sample among the K most likely characters only (default: all)." };
        var seed = new Option<ulong>("--seed") { Description = "Seed of the draws: the same seed gives the same text.", DefaultValueFactory = _ => 0 };
        var device = new Option<string?>("--device") { Description = "cpu, cpu-kernels, cuda or opencl." };
        var averaged = new Option<bool>("--averaged") { Description = "Use the checkpoint's averaged weights (a run with --ema or --swa-start)." };
        var command = new Command("generate", "Sample text from a language model's checkpoint.") { checkpoint, prompt, tokens, temperature, topK, seed, device, averaged };
        command.SetAction(parse => Run(parse.GetValue(checkpoint)!, parse.GetValue(prompt)!, parse.GetValue(tokens), parse.GetValue(temperature), parse.GetValue(topK), parse.GetValue(seed), parse.GetValue(device), parse.GetValue(averaged)));
        return command;
    }

    private static int Run(string path, string prompt, int tokens, double temperature, int? topK, ulong seed, string? deviceName, bool averaged)
    {
        var problems = new List<string>();
        if (deviceName is not null and not ("cpu" or "cpu-kernels" or "cuda" or "opencl"))
            problems.Add($"--device {deviceName}: use cpu, cpu-kernels, cuda or opencl.");
        if (!File.Exists(path))
            problems.Add($"--checkpoint {path}: no such file. train writes checkpoints to <output>/checkpoints/best.safetensors and last.safetensors.");
        if (tokens is < 0 or > 1_000_000)
            problems.Add($"--tokens {tokens}: must be from 0 to 1000000.");
        if (!(temperature >= 0 && double.IsFinite(temperature)))
            problems.Add($"--temperature {temperature.ToString(CultureInfo.InvariantCulture)}: must be 0 (greedy) or positive, such as 0.8.");
        if (topK is < 1)
            problems.Add($"--top-k {topK}: must be at least 1.");
        if (prompt.Length == 0)
            problems.Add("--prompt: give at least one character (the default is a newline).");
        if (Cli.Fail(problems))
            return 2;
        return Cli.Guard(() =>
        {
            using var dev = deviceName is null ? ComputeDevice.Create() : ComputeDevice.Create(DeviceOptions.Parse(deviceName, "--device"));
            using var generator = TextGenerator.Load(path, dev, averaged);
            Console.WriteLine(generator.Generate(prompt, tokens, new SamplingOptions { Temperature = temperature, TopK = topK, Seed = seed }));
            return 0;
        });
    }
}
