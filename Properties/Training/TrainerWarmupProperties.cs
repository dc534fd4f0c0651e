using IlgpuTrain.Layers;
using IlgpuTrain.Optimizers;
using IlgpuTrain.Training;
using Conv2d = IlgpuTrain.Layers.Conv2d;
using Dropout = IlgpuTrain.Layers.Dropout;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// Kernel warm-up at trainer construction: a background step on a synthetic batch loads exactly
/// the kernels the device's backend launches, so the first real step compiles nothing, a managed
/// backend compiles only what has no managed path, the run's results do not depend on it, and the
/// option turns it off. Every test makes a device of its own, so its kernel cache counts only
/// this trainer's loads.
/// </summary>
public class TrainerWarmupProperties
{
    private static InMemoryDataset Data(int n)
    {
        var r = new Random(5);
        var x = new float[n * 8];
        for (int i = 0; i < x.Length; i++)
            x[i] = (float)((r.NextDouble() * 2) - 1);
        var y = Enumerable.Range(0, n).Select(i => i % 3).ToArray();
        return new InMemoryDataset("warm", x, y, new Shape(2, 2, 2), 3);
    }

    public static TheoryData<string> Models => ["mlp", "cnn"];

    private static Layer Model(string name) => name == "mlp"
        ? new Flatten() >> new Dense(16) >> new ReLU() >> new Dropout(0.2f) >> new Dense(3)
        : new Conv2d(4, 2, Padding: 1) >> new BatchNorm2d() >> new ReLU() >> new MaxPool2d(2) >> new Flatten() >> new Dense(3);

    private static Device Create(KernelBackend backend) =>
        Device.Create(new DeviceOptions { Kind = DeviceKind.Cpu, Backend = backend });

    private static async Task<(int Warmed, IReadOnlyList<string> Names, int AfterFit)> WarmThenFit(KernelBackend backend, string model)
    {
        using var device = Create(backend);
        var trainer = new Trainer(device, Model(model), new Shape(2, 2, 2), new Chain(new ClipByGlobalNorm(1), new AdamW()), new TrainerOptions { Epochs = 1, BatchSize = 8, Seed = 1 });
        Assert.NotNull(trainer.KernelWarmup);
        await trainer.KernelWarmup!.WaitAsync(TimeSpan.FromSeconds(120));
        int warmed = device.Kernels.LoadedKernels;
        var names = device.Kernels.LoadedKernelNames;
        using var result = trainer.Fit(Data(16)).State;
        return (warmed, names, device.Kernels.LoadedKernels);
    }

    [Theory]
    [MemberData(nameof(Models))]
    public async Task On_the_cpu_accelerator_the_warm_up_loads_every_kernel_of_a_training_step(string model)
    {
        var (warmed, names, afterFit) = await WarmThenFit(KernelBackend.CpuAccelerator, model);
        Assert.True(warmed >= 8, $"only {warmed} kernels warmed: {string.Join(", ", names)}");
        Assert.True(warmed == afterFit, $"the first step loaded {afterFit - warmed} kernels the warm-up missed; warmed: {string.Join(", ", names)}");
        Assert.Contains(names, n => n.Contains("AdamUpdate.", StringComparison.Ordinal));
        Assert.Contains(names, n => n.Contains("CrossEntropy.", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Models))]
    public async Task On_the_managed_backend_only_kernels_without_a_managed_path_are_compiled(string model)
    {
        var (managed, names, afterFit) = await WarmThenFit(KernelBackend.Managed, model);
        var (kernels, _, _) = await WarmThenFit(KernelBackend.CpuAccelerator, model);
        Assert.True(managed == afterFit, $"the first step loaded {afterFit - managed} kernels the warm-up missed");
        Assert.True(managed < kernels / 2, $"managed backend compiled {managed} kernels (the CPU accelerator {kernels}): {string.Join(", ", names)}");
        Assert.DoesNotContain(names, n => n.Contains("AdamUpdate.", StringComparison.Ordinal) || n.StartsWith("Gemm.", StringComparison.Ordinal));
    }

    [Fact]
    public void The_warm_up_does_not_change_the_run()
    {
        float[] Train(bool warm)
        {
            using var device = Device.Create(DeviceKind.Cpu);
            var trainer = new Trainer(device, Model("mlp"), new Shape(2, 2, 2), new AdamW(), new TrainerOptions { Epochs = 2, BatchSize = 4, Seed = 3, WarmKernels = warm });
            trainer.KernelWarmup?.Wait(TimeSpan.FromSeconds(120));
            using var state = trainer.Fit(Data(16)).State;
            return state.Params.Flat();
        }

        Assert.Equal(Train(false), Train(true));
    }

    // Fit does not wait for the warm-up: its step and the first real steps launch the same kernels
    // from two threads at once. The run is the one without a warm-up, on the GPU kernels here and
    // on a GPU or OpenCL device where this machine has one (on OpenCL this crashed the driver, or
    // could swap two launches' arguments, until each kernel's launches were serialized).
    private static void SameWithOrWithoutWarmUp(Func<Device> create, string model)
    {
        float[] Train(bool warm)
        {
            using var device = create();
            var trainer = new Trainer(device, Model(model), new Shape(2, 2, 2), new AdamW(), new TrainerOptions { Epochs = 2, BatchSize = 4, Seed = 3, WarmKernels = warm });
            using var state = trainer.Fit(Data(32)).State;
            return state.Params.Flat();
        }

        Assert.Equal(Train(false), Train(true));
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void A_warm_up_beside_the_first_steps_does_not_change_the_run_on_the_gpu_kernels(string model) =>
        SameWithOrWithoutWarmUp(() => Create(KernelBackend.CpuAccelerator), model);

    [GpuFact(DeviceKind.OpenCL)]
    public void A_warm_up_beside_the_first_steps_does_not_change_the_run_on_opencl()
    {
        SameWithOrWithoutWarmUp(() => Device.Create(DeviceKind.OpenCL), "cnn");
        SameWithOrWithoutWarmUp(() => Device.Create(DeviceKind.OpenCL), "mlp");
    }

    [GpuFact(DeviceKind.Cuda)]
    public void A_warm_up_beside_the_first_steps_does_not_change_the_run_on_cuda()
    {
        SameWithOrWithoutWarmUp(() => Device.Create(DeviceKind.Cuda), "cnn");
        SameWithOrWithoutWarmUp(() => Device.Create(DeviceKind.Cuda), "mlp");
    }

    // The warm-up writes the device's buffers from a background thread: disposing the device right
    // after building a trainer must wait for it, not free memory under it.
    [Fact]
    public void Disposing_the_device_waits_for_the_warm_up()
    {
        Task? warmup;
        using (var device = Create(KernelBackend.Managed))
        {
            var trainer = new Trainer(device, Model("cnn"), new Shape(2, 2, 2), new AdamW(), new TrainerOptions { BatchSize = 8 });
            warmup = trainer.KernelWarmup;
            Assert.NotNull(warmup);
        }

        Assert.True(warmup!.IsCompleted);
        var disposed = Create(KernelBackend.Managed);
        disposed.Dispose();
        Assert.Throws<ObjectDisposedException>(() => { _ = disposed.RunInBackground(() => { }); });
    }

    [Fact]
    public void WarmKernels_false_compiles_nothing_at_construction()
    {
        using var device = Create(KernelBackend.CpuAccelerator);
        var trainer = new Trainer(device, Model("mlp"), new Shape(2, 2, 2), new AdamW(), new TrainerOptions { WarmKernels = false });
        Assert.Null(trainer.KernelWarmup);
        Assert.Equal(0, device.Kernels.LoadedKernels);
    }
}
