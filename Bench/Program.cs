using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Running;
using IlgpuTrain.Bench.Support;

// dotnet run -c Release --project Bench -- --filter '*Gemm*'
// dotnet run -c Release --project Bench -- layers [reps]      (forward+backward next to PyTorch)
// dotnet run -c Release --project Bench -- gemm-shapes [reps]  (the CPU GEMM on the training steps' shapes)
// dotnet run -c Release --project Bench -- attention [reps]    (F.ScaledDotProductAttention next to PyTorch)
if (args.Length > 0 && args[0] == "layers")
    return IlgpuTrain.Bench.Layers.LayersPeer.Run(args[1..]);
if (args.Length > 0 && args[0] == "attention")
    return IlgpuTrain.Bench.Kernels.AttentionPeer.Run(args[1..]);
if (args.Length > 0 && args[0] == "gemm-shapes")
    return IlgpuTrain.Bench.Kernels.GemmShapes.Run(args[1..]);

var config = DefaultConfig.Instance
    .AddColumn(ThroughputColumn.Instance)
    .WithOptions(ConfigOptions.JoinSummary)
    .AddLogicalGroupRules(BenchmarkLogicalGroupRule.ByCategory, BenchmarkLogicalGroupRule.ByParams);
BenchmarkSwitcher.FromAssembly(typeof(ThroughputColumn).Assembly).Run(args, config);
return 0;
