global using IlgpuTrain.Functional;
global using IlgpuTrain.Kernels;
global using IlgpuTrain.Layers;
global using IlgpuTrain.Optimizers;
global using Device = IlgpuTrain.Functional.ComputeDevice;
