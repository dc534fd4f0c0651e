global using FsCheck;
global using FsCheck.Fluent;
global using FsCheck.Xunit;
global using ILGPU;
global using ILGPU.Runtime;
global using IlgpuTrain.Functional;
global using IlgpuTrain.Kernels;
global using IlgpuTrain.Kernels.Runtime;
global using IlgpuTrain.Properties.Support;
global using Half = ILGPU.Half;
global using Device = IlgpuTrain.Functional.Device;

// Kernels already use every core; tests share one device and one stream, so run them one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
