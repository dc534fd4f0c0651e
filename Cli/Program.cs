using System.CommandLine;
using IlgpuTrain.Cli;

var root = new RootCommand("ilgpu-train: train neural networks in pure C# on GPUs (CUDA, OpenCL) or the CPU, with ILGPU.")
{
    TrainCommand.Create(),
    EvaluateCommand.Create(),
    CompareCommand.Create(),
    DevicesCommand.Create(),
};
return root.Parse(args).Invoke();
