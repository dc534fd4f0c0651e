global using ILGPU;
global using ILGPU.Runtime;
global using IlgpuTrain.Functional;
// Kernels store half precision as ILGPU.Half; the BCL's half type does not compile for GPUs.
global using Half = ILGPU.Half;
