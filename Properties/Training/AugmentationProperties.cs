using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>Training/Augmentation.cs: off returns x; on, the pipeline equals the kernel references composed with the documented folds.</summary>
public class AugmentationProperties
{
    // The rotation and jitter stages compare float kernels with float64 references (see AugmentProperties).
    private const double Atol = 1e-4;

    [Fact]
    public void None_returns_x_itself_and_describes_itself()
    {
        using var step = Devices.Cpu.BeginStep();
        var x = step.Upload(new float[12], new Shape(1, 1, 3, 4));
        Assert.Same(x, Augmentation.None.Apply(step, x, Rng.Create(1)));
        Assert.Equal("none", Augmentation.None.Description);
        Assert.Equal("flip, crop pad 4, rotate ±15°, brightness 0.2, contrast 0.3", new Augmentation(true, 4, 15, 0.2f, 0.3f).Description);
    }

    [Property(MaxTest = 10)]
    public Property Apply_composes_the_references_with_one_fold_per_transform() =>
        Prop.ForAll(Gen.Choose(0, 1000).ToArbitrary(), Gen.Choose(0, 100).ToArbitrary(), (seed, counter) =>
        {
            const int n = 3, c = 3, h = 8, w = 8;
            var aug = new Augmentation(true, 2, 10, 0.2f, 0.3f);
            var rng = Rng.Create((ulong)seed).At((uint)counter);
            var x = Gens.Random(seed, n * c * h * w, -1f, 1f);
            float[] got;
            using (var step = Devices.Cpu.BeginStep())
                got = aug.Apply(step, step.Upload(x, new Shape(n, c, h, w)), rng).ToHost();
            float[] again;
            using (var step = Devices.Cpu.BeginStep())
                again = aug.Apply(step, step.Upload(x, new Shape(n, c, h, w)), rng.Next()).ToHost();

            var a = new float[x.Length];
            var b = new float[x.Length];
            var k = rng.Fold(1);
            AugmentReference.FlipReference(x, a, n, c, h, w, 0.5f, k.Seed, k.Stream, k.Counter);
            k = rng.Fold(2);
            AugmentReference.CropReference(a, b, n, c, h, w, h, w, 2, k.Seed, k.Stream, k.Counter);
            k = rng.Fold(3);
            AugmentReference.RotateReference(b, a, n, c, h, w, -10f, 10f, k.Seed, k.Stream, k.Counter);
            k = rng.Fold(4);
            AugmentReference.JitterReference(a, b, n, c, h, w, new JitterRanges(0.8f, 1.2f, 0.7f, 1.3f, 1f, 1f, 0f, 0f, 0, 0), k.Seed, k.Stream, k.Counter);
            return Close.All(got, b, Atol, Atol, "pipeline").And((!got.SequenceEqual(again)).Label("the next counter differs"));
        });

    [Fact]
    public void Bad_inputs_are_rejected_with_the_shape()
    {
        using var step = Devices.Cpu.BeginStep();
        var x = step.Upload(new float[12], new Shape(3, 4));
        var e = Assert.Throws<ArgumentException>(() => new Augmentation(HorizontalFlip: true).Apply(step, x, Rng.Create(1)));
        Assert.Contains("(3, 4)", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new Augmentation(CropPadding: -1).Apply(step, x, Rng.Create(1)));
    }
}
