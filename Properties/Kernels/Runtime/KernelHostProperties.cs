namespace IlgpuTrain.Properties.Kernels.Runtime;

/// <summary>The kernel cache: each kernel is compiled once per host and its launcher kept alive.</summary>
public class KernelHostProperties
{
    [Fact]
    public void Each_kernel_is_loaded_once_and_the_same_launcher_is_returned()
    {
        using var d = Device.Create(DeviceKind.Cpu);
        var host = d.Kernels;
        Assert.Equal(0, host.LoadedKernels);
        var first = host.Load(Elementwise.AxpyDef);
        var second = host.Load(Elementwise.AxpyDef);
        Assert.Same(first, second);
        Assert.Equal(1, host.LoadedKernels);
        using var x = d.Upload([1f, 2f, 3f]);
        using var y = d.Upload([1f, 1f, 1f]);
        for (int i = 0; i < 5; i++)
            Elementwise.Axpy(host, 1f, x.View<float>(), y.View<float>());
        Assert.Equal(1, host.LoadedKernels);
        Assert.Equal([6f, 11f, 16f], y.ToHost());
        Assert.True(host.CompileTime > TimeSpan.Zero);
    }

    [Fact]
    public void Warm_compiles_kernels_ahead_of_their_first_launch()
    {
        using var d = Device.Create(DeviceKind.Cpu);
        d.Kernels.Warm([Elementwise.AddDef, Elementwise.SubDef, Elementwise.MulDef, Elementwise.FillDef]);
        Assert.Equal(4, d.Kernels.LoadedKernels);
        using var y = d.Poisoned(3);
        Elementwise.Fill(d.Kernels, y.View<float>(), 2f);
        Assert.Equal(4, d.Kernels.LoadedKernels);
        Assert.Equal([2f, 2f, 2f], y.ToHost());
    }

    [Fact]
    public void Variant_follows_the_accelerator_unless_forced()
    {
        Assert.Equal(KernelVariant.Cpu, Devices.Cpu.Kernels.Variant);
        Assert.Equal(KernelVariant.Gpu, Devices.GpuSim.Kernels.Variant);
        Assert.True(Devices.Cpu.Kernels.IsCpu);
    }
}
