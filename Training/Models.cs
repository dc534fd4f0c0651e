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
    /// <summary>The names <see cref="Build"/> accepts: mlp, cnn, resnet (ResNet-8), the CIFAR ResNets resnet20 to resnet110, and torchvision's resnet18, resnet34, resnet50.</summary>
    public static IReadOnlyList<string> Names { get; } = ["mlp", "cnn", "transformer", "resnet", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet18", "resnet34", "resnet50"];

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

    /// <summary>
    /// The ResNets for CIFAR-10 of He et al. (2016, section 4.2): a 3x3 convolution of 16 channels, three stages of
    /// n = (depth − 2) / 6 basic blocks of 16, 32 and 64 channels (the first block of stages 2 and 3 with stride 2),
    /// global average pooling and a linear classifier; depth 20, 32, 44, 56 or 110. Where the shape changes the
    /// shortcut is a strided 1x1 convolution with BatchNorm (the paper's option B, torchvision's downsample), so
    /// ResNet-20 has 272,474 parameters for 10 classes (option A's zero padding gives the paper's 0.27M less 2,752).
    /// Names follow torchvision: <c>conv1</c>, <c>bn1</c>, <c>layer1.0.conv1.weight</c>, <c>layer2.0.downsample.0.weight</c>, <c>fc</c>.
    /// </summary>
    /// <param name="depth">20, 32, 44, 56 or 110.</param>
    /// <param name="classes">Outputs of <c>fc</c>.</param>
    /// <returns>The model, for (3, 32, 32) inputs (any size from 8 works).</returns>
    /// <exception cref="ArgumentException">Another depth.</exception>
    public static NamedSequential CifarResNet(int depth, int classes = 10)
    {
        Check(classes, 0f);
        if (depth is not (20 or 32 or 44 or 56 or 110))
            throw new ArgumentException($"Models.CifarResNet: depth {depth}; the CIFAR ResNets have depth 6n + 2: 20, 32, 44, 56 or 110.", nameof(depth));
        int n = (depth - 2) / 6, inplanes = 16;
        var layers = new List<(string, Layer)>
        {
            ("conv1", new Conv2d(16, 3, Padding: 1, UseBias: false)),
            ("bn1", new BatchNorm2d()),
            ("relu", new ReLU()),
        };
        for (int stage = 0; stage < 3; stage++)
        {
            int planes = 16 << stage;
            var blocks = new List<(string, Layer)>();
            for (int b = 0; b < n; b++)
            {
                int stride = stage > 0 && b == 0 ? 2 : 1;
                Layer? downsample = stride != 1 || inplanes != planes ? new Conv2d(planes, 1, Stride: stride, UseBias: false) >> new BatchNorm2d() : null;
                var body = new NamedSequential(
                    ("conv1", new Conv2d(planes, 3, Stride: stride, Padding: 1, UseBias: false)), ("bn1", new BatchNorm2d()), ("relu", new ReLU()),
                    ("conv2", new Conv2d(planes, 3, Padding: 1, UseBias: false)), ("bn2", new BatchNorm2d()));
                blocks.Add((b.ToString(System.Globalization.CultureInfo.InvariantCulture), new ResNetBlock(body, downsample)));
                inplanes = planes;
            }

            layers.Add(($"layer{stage + 1}", new NamedSequential([.. blocks])));
        }

        layers.Add(("avgpool", new GlobalAvgPool()));
        layers.Add(("fc", new Dense(classes)));
        return new NamedSequential([.. layers]);
    }

    /// <summary>
    /// torchvision.models.resnet18: BasicBlocks [2, 2, 2, 2]. Its state_dict names and shapes are
    /// torchvision's (<c>conv1.weight</c>, <c>bn1.running_mean</c>, <c>layer1.0.conv1.weight</c>,
    /// <c>layer2.0.downsample.0.weight</c>, <c>fc.weight</c>), so PyTorch weights load with
    /// <see cref="StateDict.Load(string, ParamTree, ParamTree, StateDictOptions?)"/>. Input (3, H, W), H and W at least 32 (224 for ImageNet).
    /// </summary>
    /// <param name="classes">Outputs of <c>fc</c> (1000 for ImageNet weights).</param>
    /// <param name="width">Channels of the stem and of layer1 (torchvision's 64); layers 2 to 4 have 2, 4 and 8 times as many.</param>
    /// <returns>The model: a <see cref="NamedSequential"/> conv1, bn1, relu, maxpool, layer1 to layer4, avgpool, fc.</returns>
    /// <remarks>Weights start at this library's PyTorch layer defaults, not torchvision's kaiming_normal_(fan_out) init.</remarks>
    public static NamedSequential ResNet18(int classes = 1000, int width = 64) => TorchvisionResNet(false, [2, 2, 2, 2], classes, width);

    /// <summary>torchvision.models.resnet34: BasicBlocks [3, 4, 6, 3], with torchvision's state_dict names (see <see cref="ResNet18"/>).</summary>
    /// <param name="classes">Outputs of <c>fc</c> (1000 for ImageNet weights).</param>
    /// <param name="width">Channels of the stem and of layer1 (torchvision's 64).</param>
    /// <returns>The model.</returns>
    public static NamedSequential ResNet34(int classes = 1000, int width = 64) => TorchvisionResNet(false, [3, 4, 6, 3], classes, width);

    /// <summary>
    /// torchvision.models.resnet50: Bottlenecks [3, 4, 6, 3] (ResNet v1.5: the stride sits on the 3x3
    /// convolution, conv2), four times as many output channels as planes; torchvision's state_dict names
    /// (see <see cref="ResNet18"/>; the blocks add <c>conv3</c> and <c>bn3</c>).
    /// </summary>
    /// <param name="classes">Outputs of <c>fc</c> (1000 for ImageNet weights).</param>
    /// <param name="width">Channels of the stem and planes of layer1 (torchvision's 64).</param>
    /// <returns>The model.</returns>
    public static NamedSequential ResNet50(int classes = 1000, int width = 64) => TorchvisionResNet(true, [3, 4, 6, 3], classes, width);

    /// <summary>
    /// The model with its classifier <c>fc</c> replaced by a fresh Dense of <paramref name="classes"/>
    /// outputs, as <c>model.fc = nn.Linear(model.fc.in_features, classes)</c> in PyTorch: the
    /// first step of fine-tuning on a new label set.
    /// </summary>
    /// <param name="model">A model whose last layer is named <c>fc</c> (the torchvision ResNets).</param>
    /// <param name="classes">The new number of outputs, at least 1.</param>
    /// <returns>The new model; load the other weights with a key map that drops <c>fc.*</c>.</returns>
    /// <exception cref="ArgumentException">The model has no layer named fc.</exception>
    public static NamedSequential ReplaceHead(NamedSequential model, int classes)
    {
        ArgumentNullException.ThrowIfNull(model);
        Check(classes, 0f);
        if (!model.Layers.Any(l => l.Name == "fc"))
            throw new ArgumentException($"Models.ReplaceHead: the model has no layer named \"fc\" (its layers: {string.Join(", ", model.Layers.Select(l => l.Name))}); it replaces torchvision's classifier.", nameof(model));
        return model.With("fc", new Dense(classes));
    }

    /// <summary>The model named <paramref name="name"/> (one of <see cref="Names"/>).</summary>
    /// <param name="name">mlp, cnn, resnet (the small ResNet-8), or resnet18, resnet34 or resnet50 (torchvision's, with its state_dict names, at full width).</param>
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
            "transformer" => throw new ArgumentException("Models.Build: the transformer needs its vocabulary, context and width; build a TransformerLM, or use Recipes.Model with a RunConfig on a text data set.", nameof(name)),
            "resnet18" or "resnet34" or "resnet50" or "resnet20" or "resnet32" or "resnet44" or "resnet56" or "resnet110" when p > 0 => throw new ArgumentException($"Dropout {p}: {name} (torchvision's and He et al.'s) has no dropout layer; leave the dropout out (0).", nameof(dropout)),
            "resnet20" or "resnet32" or "resnet44" or "resnet56" or "resnet110" => CifarResNet(int.Parse(name.AsSpan(6), System.Globalization.CultureInfo.InvariantCulture), classes),
            "resnet18" => ResNet18(classes),
            "resnet34" => ResNet34(classes),
            "resnet50" => ResNet50(classes),
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
        "transformer" => 0.1f,
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

    // torchvision/models/resnet.py: conv1 7x7/2 (no bias), bn1, relu, maxpool 3x3/2 pad 1, four stages
    // of blocks (planes width, 2 width, 4 width, 8 width; stride 1, 2, 2, 2), adaptive average pool, fc.
    // _make_layer: the first block of a stage gets the stride and a downsample (1x1 conv with that
    // stride, no bias, then BatchNorm) when the stride is not 1 or the channels change.
    private static NamedSequential TorchvisionResNet(bool bottleneck, int[] blocks, int classes, int width)
    {
        Check(classes, 0f);
        if (width < 1)
            throw new ArgumentOutOfRangeException(nameof(width), width, "The width (torchvision's 64) must be at least 1.");
        int expansion = bottleneck ? 4 : 1;
        int inplanes = width;
        var layers = new List<(string, Layer)>
        {
            ("conv1", new Conv2d(width, 7, Stride: 2, Padding: 3, UseBias: false)),
            ("bn1", new BatchNorm2d()),
            ("relu", new ReLU()),
            ("maxpool", new MaxPool2d(3, 2, 1)),
        };
        for (int stage = 0; stage < blocks.Length; stage++)
        {
            int planes = width << stage, stride = stage == 0 ? 1 : 2;
            var stageBlocks = new List<(string, Layer)>();
            for (int b = 0; b < blocks[stage]; b++)
            {
                int s = b == 0 ? stride : 1;
                Layer? downsample = b == 0 && (s != 1 || inplanes != planes * expansion)
                    ? new Conv2d(planes * expansion, 1, Stride: s, UseBias: false) >> new BatchNorm2d()
                    : null;
                var body = bottleneck
                    ? new NamedSequential(
                        ("conv1", new Conv2d(planes, 1, UseBias: false)), ("bn1", new BatchNorm2d()), ("relu1", new ReLU()),
                        ("conv2", new Conv2d(planes, 3, Stride: s, Padding: 1, UseBias: false)), ("bn2", new BatchNorm2d()), ("relu2", new ReLU()),
                        ("conv3", new Conv2d(planes * expansion, 1, UseBias: false)), ("bn3", new BatchNorm2d()))
                    : new NamedSequential(
                        ("conv1", new Conv2d(planes, 3, Stride: s, Padding: 1, UseBias: false)), ("bn1", new BatchNorm2d()), ("relu", new ReLU()),
                        ("conv2", new Conv2d(planes, 3, Padding: 1, UseBias: false)), ("bn2", new BatchNorm2d()));
                stageBlocks.Add((b.ToString(System.Globalization.CultureInfo.InvariantCulture), new ResNetBlock(body, downsample)));
                inplanes = planes * expansion;
            }

            layers.Add(($"layer{stage + 1}", new NamedSequential([.. stageBlocks])));
        }

        layers.Add(("avgpool", new GlobalAvgPool()));
        layers.Add(("fc", new Dense(classes)));
        return new NamedSequential([.. layers]);
    }

    private static void Check(int classes, float dropout)
    {
        if (classes < 1)
            throw new ArgumentOutOfRangeException(nameof(classes), classes, "A classifier needs at least 1 class.");
        if (!(dropout >= 0 && dropout < 1))
            throw new ArgumentOutOfRangeException(nameof(dropout), dropout, "The dropout probability must be in [0, 1).");
    }
}
