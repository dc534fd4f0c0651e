using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// The run configuration a checkpoint stores: JSON round trips it exactly, keeps the field names
/// older checkpoints were written with, and the augmentation names map to their documented values.
/// </summary>
public class RunConfigProperties
{
    private static readonly Gen<RunConfig> Configs =
        from model in Gen.Elements(Models.Names.ToArray())
        from optimizer in Gen.Elements(Recipes.Optimizers.ToArray())
        from schedule in Gen.Elements(Recipes.Schedules.ToArray())
        from lr in Gen.Choose(1, 10_000).Select(k => k * 1.37e-5)
        from dropout in Gen.Elements<float?>(null, 0f, 0.3f)
        from augment in Gen.Elements("none", "flip", "flip,crop,rotate,jitter")
        from epochs in Gen.Choose(1, 100)
        from seed in Gen.Choose(0, int.MaxValue).Select(s => (ulong)s * 3)
        from device in Gen.Elements<string?>(null, "cpu", "cuda")
        from scaleLr in Gen.Elements(false, true)
        from baseBatch in Gen.Choose(1, 65536)
        from block in Gen.Elements(16, 128, 256)
        select new RunConfig { Model = model, Dataset = model == "transformer" ? "text" : "fashion-mnist", BlockSize = block, Optimizer = optimizer, Schedule = schedule, LearningRate = lr, Dropout = dropout, Augment = augment, Epochs = epochs, Seed = seed, Device = device, ScaleLr = scaleLr, BaseBatchSize = baseBatch };

    [Property(MaxTest = 200)]
    public Property Json_round_trips_exactly() =>
        Prop.ForAll(Configs.ToArbitrary(), c => (RunConfig.FromJson(c.ToJson()) == c).Label(c.ToJson()));

    [Fact]
    public void A_checkpoint_of_an_earlier_version_reads_back()
    {
        // The configuration JSON as train wrote it before RunConfig moved into the library.
        const string stored = """{"Model":"cnn","Dataset":"fashion-mnist","DataDir":null,"Optimizer":"momentum","LearningRate":0.05,"WeightDecay":0,"Momentum":0.9,"Schedule":"cosine","WarmupSteps":0,"Epochs":3,"BatchSize":64,"LabelSmoothing":0.1,"Dropout":null,"Augment":"flip","MixedPrecision":false,"Accumulate":2,"Clip":1,"EarlyStopping":-1,"Device":"cpu","Seed":7,"Output":"runs/x","TrainLimit":512,"ValSize":0,"EffectiveDropout":0.25}""";
        var c = RunConfig.FromJson(stored);
        Assert.Equal(new RunConfig { Model = "cnn", Optimizer = "momentum", LearningRate = 0.05, WeightDecay = 0, Schedule = "cosine", Epochs = 3, BatchSize = 64, Augment = "flip", Accumulate = 2, Device = "cpu", Seed = 7, Output = "runs/x", TrainLimit = 512 }, c);
        Assert.Equal(0.25f, c.EffectiveDropout);
    }

    [Fact]
    public void Augmentation_names_map_to_their_documented_values()
    {
        Assert.Equal(Augmentation.None, new RunConfig().Augmentation(28));
        var all = new RunConfig { Augment = "flip, crop,rotate,jitter" };
        Assert.Equal(new Augmentation(HorizontalFlip: true, CropPadding: 4, RotationDegrees: 10, Brightness: 0.2f, Contrast: 0.2f), all.Augmentation(32));
        Assert.Equal(2, all.Augmentation(28).CropPadding);
        var e = Assert.Throws<ArgumentException>(() => new RunConfig { Augment = "flip,sharpen" }.Augmentation(28));
        Assert.Contains("sharpen", e.Message);
    }

    [Fact]
    public void New_augmentation_names_take_defaults_or_values_and_mixing_comes_apart()
    {
        var c = new RunConfig { Augment = "vflip,crop=3,rotate=5,jitter=0.3,saturation,hue=0.05,resized-crop=0.5,erasing=0.25,mixup=0.2,cutmix" };
        var a = c.Augmentation(32, Normalization.Cifar10);
        Assert.True(a.VerticalFlip);
        Assert.False(a.HorizontalFlip);
        Assert.Equal(3, a.CropPadding);
        Assert.Equal(5f, a.RotationDegrees);
        Assert.Equal((0.3f, 0.3f, 0.2f, 0.05f), (a.Brightness, a.Contrast, a.Saturation, a.Hue));
        Assert.Equal(new RandomResizedCrop(ScaleLo: 0.5f), a.ResizedCrop);
        Assert.Equal(new RandomErasing(P: 0.25f), a.Erasing);
        Assert.Equal(Normalization.Cifar10, a.Normalize);
        Assert.True(a.NormalizedInput);
        Assert.Equal(new Mixing(0.2f, 1f), c.Mixing());
        Assert.Equal(Mixing.None, new RunConfig { Augment = "flip" }.Mixing());
        Assert.Null(c.Problem());

        // Colour ops on data of unknown statistics stay on the normalized values; hue needs them.
        var unknown = new RunConfig { Augment = "jitter" }.Augmentation(32);
        Assert.Null(unknown.Normalize);
        var h = Assert.Throws<ArgumentException>(() => new RunConfig { Augment = "hue" }.Augmentation(32));
        Assert.Contains("hue", h.Message);
    }

    [Theory]
    [InlineData("flip=2", "flip takes no value")]
    [InlineData("crop=2.5", "whole number")]
    [InlineData("hue=0.7", "up to 0.5")]
    [InlineData("erasing=-1", "positive number")]
    [InlineData("mixup=x", "positive number")]
    [InlineData("blur", "unknown augmentation")]
    public void Bad_augment_values_are_named_with_the_allowed_range(string augment, string expected)
    {
        Assert.Contains(expected, RunConfig.AugmentProblem(augment));
        Assert.Contains(expected, new RunConfig { Augment = augment }.Problem());
    }
}
