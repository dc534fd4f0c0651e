global using ILGPU;
global using ILGPU.Runtime;
global using IlgpuTrain.Functional;
global using IlgpuTrain.Kernels;
global using IlgpuTrain.Kernels.Runtime;
global using Device = IlgpuTrain.Functional.ComputeDevice;
global using Half = ILGPU.Half;
