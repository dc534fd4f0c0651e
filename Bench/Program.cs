using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Running;
using IlgpuTrain.Bench.Support;

// dotnet run -c Release --project Bench -- --filter '*Gemm*'
var config = DefaultConfig.Instance
    .AddColumn(ThroughputColumn.Instance)
    .WithOptions(ConfigOptions.JoinSummary)
    .AddLogicalGroupRules(BenchmarkLogicalGroupRule.ByCategory, BenchmarkLogicalGroupRule.ByParams);
BenchmarkSwitcher.FromAssembly(typeof(ThroughputColumn).Assembly).Run(args, config);
