using IlgpuTrain.Layers;
using IlgpuTrain.Optimizers;
using IlgpuTrain.Training;
using Conv2d = IlgpuTrain.Layers.Conv2d;
using Dropout = IlgpuTrain.Layers.Dropout;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// Kernel warm-up at trainer construction: the background compilation covers every kernel a
/// training step launches, so the first step compiles nothing, and the option turns it off.
/// </summary>
public class StepKernelsProperties
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

    [Theory]
    [MemberData(nameof(Models))]
    public async Task The_warm_up_covers_every_kernel_of_a_training_step(string model)
    {
        // A device of its own: the shared one has kernels loaded by other tests.
        using var device = Device.Create(DeviceKind.Cpu);
        var trainer = new Trainer(device, Model(model), new Shape(2, 2, 2), new AdamW(), new TrainerOptions { Epochs = 1, BatchSize = 8, Seed = 1 });
        Assert.NotNull(trainer.KernelWarmup);
        await trainer.KernelWarmup!.WaitAsync(TimeSpan.FromSeconds(60));
        int warmed = device.Kernels.LoadedKernels;
        Assert.True(warmed > 0);
        using var result = trainer.Fit(Data(16)).State;
        Assert.Equal(warmed, device.Kernels.LoadedKernels);
    }

    [Fact]
    public void WarmKernels_false_compiles_nothing_at_construction()
    {
        using var device = Device.Create(DeviceKind.Cpu);
        var trainer = new Trainer(device, Model("mlp"), new Shape(2, 2, 2), new AdamW(), new TrainerOptions { WarmKernels = false });
        Assert.Null(trainer.KernelWarmup);
        Assert.Equal(0, device.Kernels.LoadedKernels);
    }
}
