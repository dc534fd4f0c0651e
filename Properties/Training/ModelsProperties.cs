using IlgpuTrain.Layers;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// The ready-made models: their output shapes, parameter counts computed by hand from the
/// architecture, and clear errors for unknown names and bad arguments.
/// </summary>
public class ModelsProperties
{
    // Stem 3x3x3x16 + BN(16); block 16: two 3x3x16x16 + two BN(16); blocks 32 and 64: 3x3 convs
    // (in -> out, out -> out), a 1x1 projection (in -> out) and three BN(out); Dense 64 -> 10 + bias.
    // No convolution has a bias. A BatchNorm has gamma and beta.
    private const long ResNet8Parameters =
        (3 * 3 * 3 * 16) + (2 * 16)
        + (2 * 3 * 3 * 16 * 16) + (2 * 2 * 16)
        + (3 * 3 * 16 * 32) + (3 * 3 * 32 * 32) + (16 * 32) + (3 * 2 * 32)
        + (3 * 3 * 32 * 64) + (3 * 3 * 64 * 64) + (32 * 64) + (3 * 2 * 64)
        + (64 * 10) + 10;

    [Fact]
    public void ResNet8_maps_cifar_images_to_logits_with_the_parameters_of_its_architecture()
    {
        var model = Models.ResNet8(10);
        var input = new Shape(3, 32, 32);
        Assert.Equal(new Shape(10), model.OutputShape(input));
        var (p, s) = model.Init(Devices.Cpu, input, Rng.Create(1));
        using (p)
        using (s)
            Assert.Equal(ResNet8Parameters, p.Count);
    }

    [Fact]
    public void The_mlp_and_cnn_are_the_peer_scripts_models()
    {
        var input = new Shape(1, 28, 28);
        var (mlp, mlpState) = Models.Mlp(10).Init(Devices.Cpu, input, Rng.Create(1));
        var (cnn, cnnState) = Models.Cnn(10).Init(Devices.Cpu, input, Rng.Create(1));
        using (mlp)
        using (mlpState)
        using (cnn)
        using (cnnState)
        {
            // torch_fmnist.py: Linear(784, 256), Linear(256, 10).
            Assert.Equal((784 * 256) + 256 + (256 * 10) + 10, mlp.Count);

            // Conv(1->32, 3x3) + BN(32), Conv(32->64, 3x3) + BN(64), Linear(64*7*7, 128), Linear(128, 10).
            Assert.Equal((9 * 32) + 32 + 64 + (9 * 32 * 64) + 64 + 128 + (64 * 7 * 7 * 128) + 128 + (128 * 10) + 10, cnn.Count);
        }
    }

    [Property(MaxTest = 20)]
    public Property Build_by_name_is_the_named_builder_with_the_default_dropout() =>
        Prop.ForAll(Gen.Elements(Models.Names.Where(n => n != "transformer").ToArray()).ToArbitrary(), Gen.Choose(1, 100).ToArbitrary(), (name, classes) =>
        {
            Layer direct = name switch
            {
                "mlp" => Models.Mlp(classes, 0.2f),
                "cnn" => Models.Cnn(classes, 0.25f),
                "resnet18" => Models.ResNet18(classes),
                "resnet34" => Models.ResNet34(classes),
                "resnet50" => Models.ResNet50(classes),
                "resnet20" => Models.CifarResNet(20, classes),
                "resnet32" => Models.CifarResNet(32, classes),
                "resnet44" => Models.CifarResNet(44, classes),
                "resnet56" => Models.CifarResNet(56, classes),
                "resnet110" => Models.CifarResNet(110, classes),
                _ => Models.ResNet8(classes, 0f),
            };
            var input = new Shape(3, 32, 32);
            return (Models.Build(name, classes).Summary(input).ToString() == direct.Summary(input).ToString()).Label($"{name} summary")
                .And((Models.Build(name, classes).OutputShape(input) == new Shape(classes)).Label("logits"));
        });

    [Theory]
    [InlineData(20)]
    [InlineData(32)]
    [InlineData(44)]
    [InlineData(56)]
    [InlineData(110)]
    public void The_cifar_resnets_have_he_et_als_parameters_with_projection_shortcuts(int depth)
    {
        // Counted by hand from the paper's design: 3 stages of n = (depth - 2) / 6 blocks of two 3x3 convolutions
        // (no bias) with BatchNorm; a 3x3 stem of 16; projection shortcuts 16->32 and 32->64 (1x1, BatchNorm); fc 64->10.
        int n = (depth - 2) / 6;
        long expected = (3 * 3 * 3 * 16) + (2 * 16);                                         // stem conv, bn1
        foreach (var (cin, c) in new[] { (16, 16), (16, 32), (32, 64) })
            expected += (9 * cin * c) + (9 * c * c) + (4 * c) + ((n - 1) * ((2 * 9 * c * c) + (4 * c)));
        expected += (16 * 32) + (2 * 32) + (32 * 64) + (2 * 64);                               // the two projections
        expected += (64 * 10) + 10;                                                           // fc
        var model = Models.CifarResNet(depth);
        var input = new Shape(3, 32, 32);
        Assert.Equal(expected, model.Summary(input).TotalParameters);
        Assert.Equal(new Shape(10), model.OutputShape(input));
        if (depth == 20)
            Assert.Equal(272_474, expected);
        var (p, s) = model.Init(Devices.Cpu, input, Rng.Create(0));
        using (p)
        using (s)
        {
            Assert.Contains(p.Layout.Params, q => q.Path == $"layer3.{n - 1}.conv2.weight");
            Assert.Contains(p.Layout.Params, q => q.Path == "layer2.0.downsample.0.weight");
            Assert.Contains(s.Layout.Params, q => q.Path == "layer1.0.bn1.running_mean");
        }
    }

    [Fact]
    public void Unknown_names_and_bad_arguments_are_refused_by_name()
    {
        var e = Assert.Throws<ArgumentException>(() => Models.Build("vgg", 10));
        Assert.Contains("vgg", e.Message);
        Assert.Contains("resnet", e.Message);
        Assert.Equal("classes", Assert.Throws<ArgumentOutOfRangeException>(() => Models.ResNet8(0)).ParamName);
        Assert.Equal("dropout", Assert.Throws<ArgumentOutOfRangeException>(() => Models.Mlp(10, 1f)).ParamName);
        Assert.Equal("dropout", Assert.Throws<ArgumentOutOfRangeException>(() => Models.Build("cnn", 10, float.NaN)).ParamName);
        Assert.Contains("resnet18 (torchvision's and He et al.'s) has no dropout layer", Assert.Throws<ArgumentException>(() => Models.Build("resnet18", 10, 0.2f)).Message);
        Assert.Contains("the transformer needs its vocabulary, context and width", Assert.Throws<ArgumentException>(() => Models.Build("transformer", 10)).Message);
        Assert.Contains("depth 6n + 2: 20, 32, 44, 56 or 110", Assert.Throws<ArgumentException>(() => Models.CifarResNet(18)).Message);
    }
}
