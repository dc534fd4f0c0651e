using IlgpuTrain.Functional;
using IlgpuTrain.Layers;
using Conv2d = IlgpuTrain.Layers.Conv2d;
using Dropout = IlgpuTrain.Layers.Dropout;

namespace IlgpuTrain.Cli;

/// <summary>The models <c>ilgpu-train</c> knows: the Fashion-MNIST MLP and CNN of the PyTorch peer script, and a small ResNet for CIFAR-10.</summary>
internal static class Models
{
    public static readonly string[] Names = ["mlp", "cnn", "resnet"];

    /// <summary>Builds a model for per-sample input <paramref name="input"/> (C, H, W) and <paramref name="classes"/> outputs.</summary>
    public static Layer Build(string name, Shape input, int classes, float dropout) => name switch
    {
        // torch_fmnist.py: Linear(784, 256), ReLU, Dropout(0.2), Linear(256, 10) on flattened images.
        "mlp" => new Flatten() >> new Dense(256) >> new ReLU() >> new Dropout(dropout) >> new Dense(classes),

        // torch_fmnist.py's CNN: two conv-BN-ReLU-pool stages, then Dropout(0.25), Dense(128), Dense(10).
        "cnn" => new Conv2d(32, 3, Padding: 1) >> new BatchNorm2d() >> new ReLU() >> new MaxPool2d(2)
            >> new Conv2d(64, 3, Padding: 1) >> new BatchNorm2d() >> new ReLU() >> new MaxPool2d(2)
            >> new Flatten() >> new Dropout(dropout) >> new Dense(128) >> new ReLU() >> new Dense(classes),

        // A ResNet-8 in the style of He et al.'s CIFAR ResNets: a 3x3 stem, three stages of one basic
        // block each (16, 32, 64 channels; stride 2 with a 1x1 projection shortcut between stages),
        // global average pooling and a linear classifier.
        "resnet" => new Conv2d(16, 3, Padding: 1, UseBias: false) >> new BatchNorm2d() >> new ReLU()
            >> Block(16, 1, project: false) >> new ReLU() >> Block(32, 2, project: true) >> new ReLU() >> Block(64, 2, project: true) >> new ReLU()
            >> new GlobalAvgPool() >> new Dropout(dropout) >> new Dense(classes),

        _ => throw new ArgumentException($"Unknown model \"{name}\"; use one of: {string.Join(", ", Names)}."),
    };

    /// <summary>The default dropout of each model (the peer script's values).</summary>
    public static float DefaultDropout(string name) => name switch
    {
        "mlp" => 0.2f,
        "cnn" => 0.25f,
        _ => 0f,
    };

    private static Residual Block(int channels, int stride, bool project)
    {
        var body = new Conv2d(channels, 3, Stride: stride, Padding: 1, UseBias: false) >> new BatchNorm2d() >> new ReLU()
            >> new Conv2d(channels, 3, Padding: 1, UseBias: false) >> new BatchNorm2d();
        Layer? shortcut = project ? new Conv2d(channels, 1, Stride: stride, UseBias: false) >> new BatchNorm2d() : null;
        return new Residual(body, shortcut);
    }
}
