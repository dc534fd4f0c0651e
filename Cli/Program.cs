using IlgpuTrain.Cli;

return CliApp.Root().Parse(args).Invoke();
