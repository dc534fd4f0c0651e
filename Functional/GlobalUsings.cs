global using ILGPU;
global using ILGPU.Runtime;
global using IlgpuTrain.Kernels;
global using IlgpuTrain.Kernels.Runtime;
global using Half = ILGPU.Half;
// Inside the project, Device names ComputeDevice (its public name avoids ILGPU.Runtime.Device).
global using Device = IlgpuTrain.Functional.ComputeDevice;
