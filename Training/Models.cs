using Conv2d = IlgpuTrain.Layers.Conv2d;
using Dropout = IlgpuTrain.Layers.Dropout;

namespace IlgpuTrain.Training;

/// <summary>
/// Ready-made image classifiers: the Fashion-MNIST MLP and CNN of the PyTorch peer script, and a
/// ResNet-8 for CIFAR-10. Each is a plain <see cref="Layer"/> pipeline, so it can be extended,
/// summarized or serialized like any other; <see cref="Build"/> picks one by name, as
/// <c>ilgpu-train --model</c> does.
/// </summary>
/// <example>
/// <code>
/// Layer model = Models.ResNet8(classes: 10);
/// using var device = Device.Create();
/// var (parameters, state) = model.Init(device, new Shape(3, 32, 32), Rng.Create(0));
/// </code>
/// </example>
public static class Models
{
    /// <summary>The names <see cref="Build"/> accepts: mlp, cnn, resnet.</summary>
    public static IReadOnlyList<string> Names { get; } = ["mlp", "cnn", "resnet"];

    /// <summary>
    /// The MLP of torch_fmnist.py: Flatten, Dense(256), ReLU, Dropout, Dense(<paramref name="classes"/>).
    /// </summary>
    /// <param name="classes">Outputs (logits), at least 1.</param>
    /// <param name="dropout">Dropout probability in [0, 1) (the peer's 0.2 by default).</param>
    /// <returns>The model.</returns>
    public static Layer Mlp(int classes, float dropout = 0.2f)
    {
        Check(classes, dropout);
        return new Flatten() >> new Dense(256) >> new ReLU() >> new Dropout(dropout) >> new Dense(classes);
    }

    /// <summary>
    /// The CNN of torch_fmnist.py: two stages of 3x3 convolution (32, then 64 channels, padding 1),
    /// BatchNorm, ReLU and 2x2 max pooling, then Flatten, Dropout, Dense(128), ReLU,
    /// Dense(<paramref name="classes"/>).
    /// </summary>
    /// <param name="classes">Outputs (logits), at least 1.</param>
    /// <param name="dropout">Dropout probability in [0, 1) (the peer's 0.25 by default).</param>
    /// <returns>The model.</returns>
    public static Layer Cnn(int classes, float dropout = 0.25f)
    {
        Check(classes, dropout);
        return new Conv2d(32, 3, Padding: 1) >> new BatchNorm2d() >> new ReLU() >> new MaxPool2d(2)
            >> new Conv2d(64, 3, Padding: 1) >> new BatchNorm2d() >> new ReLU() >> new MaxPool2d(2)
            >> new Flatten() >> new Dropout(dropout) >> new Dense(128) >> new ReLU() >> new Dense(classes);
    }

    /// <summary>
    /// A ResNet-8 in the style of He et al.'s CIFAR ResNets ("Deep Residual Learning for Image
    /// Recognition", 2015): a 3x3 stem of 16 channels without bias, BatchNorm and ReLU; three stages
    /// of one basic block each (16, 32, 64 channels; stride 2 with a 1x1 projection shortcut between
    /// stages), each followed by ReLU; global average pooling, Dropout and a linear classifier.
    /// </summary>
    /// <param name="classes">Outputs (logits), at least 1.</param>
    /// <param name="dropout">Dropout probability before the classifier, in [0, 1) (default 0).</param>
    /// <returns>The model.</returns>
    public static Layer ResNet8(int classes, float dropout = 0f)
    {
        Check(classes, dropout);
        return new Conv2d(16, 3, Padding: 1, UseBias: false) >> new BatchNorm2d() >> new ReLU()
            >> BasicBlock(16, 1, project: false) >> new ReLU() >> BasicBlock(32, 2, project: true) >> new ReLU() >> BasicBlock(64, 2, project: true) >> new ReLU()
            >> new GlobalAvgPool() >> new Dropout(dropout) >> new Dense(classes);
    }

    /// <summary>The model named <paramref name="name"/> (one of <see cref="Names"/>).</summary>
    /// <param name="name">mlp, cnn or resnet.</param>
    /// <param name="classes">Outputs (logits), at least 1.</param>
    /// <param name="dropout">Dropout probability in [0, 1), or null for the model's <see cref="DefaultDropout"/>.</param>
    /// <returns>The model.</returns>
    /// <exception cref="ArgumentException">Unknown name; the message lists the known ones.</exception>
    public static Layer Build(string name, int classes, float? dropout = null)
    {
        float p = dropout ?? DefaultDropout(name);
        return name switch
        {
            "mlp" => Mlp(classes, p),
            "cnn" => Cnn(classes, p),
            "resnet" => ResNet8(classes, p),
            _ => throw new ArgumentException($"Unknown model \"{name}\"; use one of: {string.Join(", ", Names)}.", nameof(name)),
        };
    }

    /// <summary>The default dropout of a model: the peer script's 0.2 (mlp) and 0.25 (cnn), else 0.</summary>
    /// <param name="name">A model name.</param>
    /// <returns>The probability.</returns>
    public static float DefaultDropout(string name) => name switch
    {
        "mlp" => 0.2f,
        "cnn" => 0.25f,
        _ => 0f,
    };

    // Two 3x3 convolutions with BatchNorm (ReLU between them); the block's input is added back,
    // through a strided 1x1 convolution and BatchNorm where the shape changes.
    private static Residual BasicBlock(int channels, int stride, bool project)
    {
        var body = new Conv2d(channels, 3, Stride: stride, Padding: 1, UseBias: false) >> new BatchNorm2d() >> new ReLU()
            >> new Conv2d(channels, 3, Padding: 1, UseBias: false) >> new BatchNorm2d();
        Layer? shortcut = project ? new Conv2d(channels, 1, Stride: stride, UseBias: false) >> new BatchNorm2d() : null;
        return new Residual(body, shortcut);
    }

    private static void Check(int classes, float dropout)
    {
        if (classes < 1)
            throw new ArgumentOutOfRangeException(nameof(classes), classes, "A classifier needs at least 1 class.");
        if (!(dropout >= 0 && dropout < 1))
            throw new ArgumentOutOfRangeException(nameof(dropout), dropout, "The dropout probability must be in [0, 1).");
    }
}
