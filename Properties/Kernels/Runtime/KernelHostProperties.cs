namespace IlgpuTrain.Properties.Kernels.Runtime;

/// <summary>The kernel cache: each kernel is compiled once per host and its launcher kept alive.</summary>
public class KernelHostProperties
{
    // The CpuAccelerator backend: its launchers load ILGPU kernels (the managed backend's mostly do not).
    private static Device KernelsDevice() => Device.Create(new DeviceOptions { Kind = DeviceKind.Cpu, Backend = KernelBackend.CpuAccelerator });

    [Fact]
    public void Each_kernel_is_loaded_once_and_the_same_launcher_is_returned()
    {
        using var d = KernelsDevice();
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
        using var d = KernelsDevice();
        d.Kernels.Warm([Elementwise.AddDef, Elementwise.SubDef, Elementwise.MulDef, Elementwise.FillDef]);
        Assert.Equal(4, d.Kernels.LoadedKernels);
        using var y = d.Poisoned(3);
        Elementwise.Fill(d.Kernels, y.View<float>(), 2f);
        Assert.Equal(4, d.Kernels.LoadedKernels);
        Assert.Equal([2f, 2f, 2f], y.ToHost());
    }

    [Fact]
    public void The_managed_backend_runs_a_launcher_without_loading_its_kernel()
    {
        using var d = Device.Create(DeviceKind.Cpu);
        Assert.Equal(KernelBackend.Managed, d.Backend);
        using var x = d.Upload([1f, 2f, 3f]);
        using var y = d.Upload([1f, 1f, 1f]);
        Elementwise.Axpy(d.Kernels, 2f, x.View<float>(), y.View<float>());
        Assert.Equal([3f, 5f, 7f], y.ToHost());
        Assert.Equal(0, d.Kernels.LoadedKernels);
    }

    [Fact]
    public void A_backend_that_does_not_fit_the_device_is_refused_with_the_fix()
    {
        var e = Assert.Throws<ArgumentException>(() => Device.Create(new DeviceOptions { Kind = DeviceKind.Cuda, Backend = KernelBackend.Managed }));
        Assert.Contains("Kind = DeviceKind.Cpu", e.Message);
        var k = Assert.Throws<ArgumentException>(() => new KernelHost(Devices.Cpu.Accelerator, Devices.Cpu.Stream, backend: KernelBackend.Cuda));
        Assert.Contains("every other backend its own accelerator type", k.Message);
        Assert.Equal(KernelBackend.CpuAccelerator, DeviceOptions.Parse("cpu-kernels").Backend);
        Assert.Null(DeviceOptions.Parse("cpu").Backend);
    }

    [Fact]
    public void Backend_is_managed_on_the_cpu_unless_the_kernels_are_asked_for()
    {
        Assert.True(Devices.Cpu.Kernels.IsCpu);
        Assert.Equal(KernelBackend.Managed, Devices.Cpu.Backend);
        Assert.Equal(KernelBackend.CpuAccelerator, Devices.CpuKernels.Backend);
        Assert.Equal(KernelBackend.Managed, new KernelHost(Devices.CpuKernels.Accelerator, Devices.CpuKernels.Stream).Backend);

        // The kernels' backend gets 16-thread groups, so the tree reductions and the tiled GEMM
        // run real groups; the managed backend keeps the accelerator small.
        using var kernels = Device.Create(DeviceOptions.Parse("cpu-kernels") with { CpuCores = 1 });
        Assert.Equal(16, kernels.Accelerator.MaxNumThreadsPerGroup);
        Assert.Equal(16, kernels.Kernels.Launch.ReduceGroupSize);
        using var managed = Device.Create(new DeviceOptions { Kind = DeviceKind.Cpu, CpuCores = 1 });
        Assert.Equal(2, managed.Accelerator.MaxNumThreadsPerGroup);
    }

    // On OpenCL, ILGPU sets a launch's arguments on the shared kernel object and then enqueues it:
    // the host serializes each kernel's launches. The wrapper keeps the launcher's type and
    // arguments and never lets two calls overlap.
    [Fact]
    public void A_serialized_launcher_runs_one_call_at_a_time_with_each_calls_arguments()
    {
        int inside = 0, overlaps = 0;
        long total = 0;
        Action<int, long> launch = (a, b) =>
        {
            if (Interlocked.Increment(ref inside) > 1)
                Interlocked.Increment(ref overlaps);
            Thread.SpinWait(5000); // long enough for another thread to arrive
            Interlocked.Add(ref total, a * b);
            Interlocked.Decrement(ref inside);
        };
        var serialized = Assert.IsType<Action<int, long>>(KernelHost.Serialized(launch));
        var threads = Enumerable.Range(0, 4).Select(t => new Thread(() =>
        {
            for (int i = 0; i < 500; i++)
                serialized(i, t + 1);
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        Assert.Equal(0, overlaps);
        Assert.Equal((1 + 2 + 3 + 4) * (499L * 500 / 2), total);
    }

    [Fact]
    public void A_serialized_ilgpu_launcher_launches_its_kernel()
    {
        var host = Devices.CpuKernels.Kernels;
        var axpy = Assert.IsType<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, AxpyOp>>(KernelHost.Serialized(host.Load(Elementwise.AxpyDef)));
        using var x = Devices.CpuKernels.Upload([1f, 2f, 3f]);
        using var y = Devices.CpuKernels.Upload([1f, 1f, 1f]);
        axpy(host.Stream, host.Launch.GridStride(3), x.View<float>(), y.View<float>(), y.View<float>(), new AxpyOp(2f));
        host.Synchronize();
        Assert.Equal([3f, 5f, 7f], y.ToHost());
        Assert.False(host.SerializesLaunches);
        Assert.False(Devices.Cpu.Kernels.SerializesLaunches);
    }
}
