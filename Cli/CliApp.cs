using System.CommandLine;

namespace IlgpuTrain.Cli;

/// <summary>The <c>ilgpu-train</c> command tree.</summary>
internal static class CliApp
{
    public static RootCommand Root() => new("ilgpu-train: train neural networks in pure C# on GPUs (CUDA, OpenCL) or the CPU, with ILGPU.")
    {
        TrainCommand.Create(),
        EvaluateCommand.Create(),
        PredictCommand.Create(),
        GenerateCommand.Create(),
        ExportCommand.Create(),
        DiagnoseCommand.Create(),
        CompareCommand.Create(),
        FindLrCommand.Create(),
        FindBatchSizeCommand.Create(),
        DevicesCommand.Create(),
        BenchCommand.Create(),
        CheckCommand.Create(),
        GpuReportCommand.Create(),
        CollectivesCommand.Create(),
    };
}
