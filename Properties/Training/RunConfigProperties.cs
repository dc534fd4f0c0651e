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
        select new RunConfig { Model = model, Optimizer = optimizer, Schedule = schedule, LearningRate = lr, Dropout = dropout, Augment = augment, Epochs = epochs, Seed = seed, Device = device, ScaleLr = scaleLr, BaseBatchSize = baseBatch };

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
        var e = Assert.Throws<ArgumentException>(() => new RunConfig { Augment = "flip,mixup" }.Augmentation(28));
        Assert.Contains("mixup", e.Message);
    }
}
