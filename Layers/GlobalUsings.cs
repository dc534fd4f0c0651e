global using System.Collections.Immutable;
global using IlgpuTrain.Functional;
global using IlgpuTrain.Kernels;
global using Device = IlgpuTrain.Functional.ComputeDevice;
