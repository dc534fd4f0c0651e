global using ILGPU;
global using ILGPU.Runtime;
global using IlgpuTrain.Kernels;
global using IlgpuTrain.Kernels.Runtime;
global using Half = ILGPU.Half;
