using IlgpuTrain.Optimizers;
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

    [Property(MaxTest = 10)]
    public Property With_Normalize_the_pixel_pipeline_composes_the_references_and_normalizes_last() =>
        Prop.ForAll(Gen.Choose(0, 1000).ToArbitrary(), Gen.Choose(0, 100).ToArbitrary(), (seed, counter) =>
        {
            const int n = 3, c = 3, h = 8, w = 7;
            var norm = Normalization.Cifar10;
            var aug = new Augmentation(Brightness: 0.3f, Contrast: 0.3f)
            {
                VerticalFlip = true,
                Saturation = 0.4f,
                Hue = 0.2f,
                ResizedCrop = new RandomResizedCrop(6, 5),
                Normalize = norm,
                Erasing = new RandomErasing(P: 0.6f),
            };
            var rng = Rng.Create((ulong)seed).At((uint)counter);
            var x = Gens.Random(seed, n * c * h * w, 0f, 1f);
            float[] got;
            using (var step = Devices.Cpu.BeginStep())
                got = aug.Apply(step, step.Upload(x, new Shape(n, c, h, w)), rng).ToHost();

            const int oh = 6, ow = 5;
            var k = rng.Fold(6);
            var crop = new float[n * c * oh * ow];
            var boxes = AugmentReference.BoxesReference(n, h, w, 1, 0.08, 1, 3 / 4.0, 4 / 3.0, 1, k.Seed, k.Stream, k.Counter);
            AugmentReference.ResampleReference(x, crop, boxes, n, c, h, w, oh, ow);
            var a = new float[crop.Length];
            k = rng.Fold(5);
            AugmentReference.VerticalFlipReference(crop, a, n, c, oh, ow, 0.5f, k.Seed, k.Stream, k.Counter);
            var b = new float[crop.Length];
            k = rng.Fold(4);
            AugmentReference.JitterReference(a, b, n, c, oh, ow, new JitterRanges(0.7f, 1.3f, 0.7f, 1.3f, 0.6f, 1.4f, -0.2f, 0.2f, 1, 1), k.Seed, k.Stream, k.Counter);
            AugmentReference.NormalizeReference(b, a, norm.Mean, norm.Std, n, oh, ow);
            k = rng.Fold(7);
            var erased = AugmentReference.BoxesReference(n, oh, ow, 2, 0.02, 0.33, 0.3, 3.3, 0.6, k.Seed, k.Stream, k.Counter);
            AugmentReference.EraseReference(a, b, erased, n, c, oh, ow, 0f);
            // Colour stages (2e-5 on pixels) grow by 1 / std <= 4.1 through Normalize.
            return Close.All(got, b, 1e-4, 1e-5, "resized crop, vflip, colour jitter, normalize, erase");
        });

    [Property(MaxTest = 10)]
    public Property Normalized_input_jitters_the_recovered_pixels_and_normalizes_them_back() =>
        Prop.ForAll(Gen.Choose(0, 1000).ToArbitrary(), seed =>
        {
            const int n = 4, c = 1, h = 5, w = 6;
            var norm = Normalization.FashionMnist;
            var aug = new Augmentation(Brightness: 0.4f, Contrast: 0.4f) { Normalize = norm, NormalizedInput = true };
            var rng = Rng.Create((ulong)seed);
            var pixels = Gens.Random(seed, n * c * h * w, 0f, 1f);
            var x = new float[pixels.Length];
            AugmentReference.NormalizeReference(pixels, x, norm.Mean, norm.Std, n, h, w);
            float[] got;
            using (var step = Devices.Cpu.BeginStep())
                got = aug.Apply(step, step.Upload(x, new Shape(n, c, h, w)), rng).ToHost();
            var k = rng.Fold(4);
            var j = new float[x.Length];
            AugmentReference.JitterReference(pixels, j, n, c, h, w, new JitterRanges(0.6f, 1.4f, 0.6f, 1.4f, 1f, 1f, 0f, 0f, 1, 1), k.Seed, k.Stream, k.Counter);
            var expected = new float[x.Length];
            AugmentReference.NormalizeReference(j, expected, norm.Mean, norm.Std, n, h, w);
            var flipOnly = new Augmentation(HorizontalFlip: true) { Normalize = norm, NormalizedInput = true };
            float[] flipped;
            using (var step = Devices.Cpu.BeginStep())
                flipped = flipOnly.Apply(step, step.Upload(x, new Shape(n, c, h, w)), rng).ToHost();
            var flipRef = new float[x.Length];
            k = rng.Fold(1);
            AugmentReference.FlipReference(x, flipRef, n, c, h, w, 0.5f, k.Seed, k.Stream, k.Counter);
            return Close.All(got, expected, 1e-4, 1e-5, "x std + mean, jitter with clamping, normalize")
                .And(got.All(v => v >= ((0 - norm.Mean[0]) / norm.Std[0]) - 1e-4 && v <= ((1 - norm.Mean[0]) / norm.Std[0]) + 1e-4).Label("the pixels stayed in [0, 1]"))
                .And(Close.All(flipped, flipRef, 0, 0, "without colour ops the normalized values pass through"));
        });

    [Fact]
    public void New_options_are_checked_described_and_shape_the_output()
    {
        using var step = Devices.Cpu.BeginStep();
        var x = step.Upload(new float[2 * 3 * 4 * 4], new Shape(2, 3, 4, 4));
        var rng = Rng.Create(1);
        var hue = Assert.Throws<ArgumentException>(() => new Augmentation { Hue = 0.1f }.Apply(step, x, rng));
        Assert.Contains("Normalize", hue.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new Augmentation { Hue = 0.6f, Normalize = Normalization.Cifar10 }.Apply(step, x, rng));
        Assert.Throws<ArgumentException>(() => new Augmentation { NormalizedInput = true }.Apply(step, x, rng));
        var channels = Assert.Throws<ArgumentException>(() => new Augmentation { Normalize = Normalization.FashionMnist }.Apply(step, x, rng));
        Assert.Contains("C = 3", channels.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new Augmentation { Erasing = new RandomErasing(ScaleHi: 2f) }.Apply(step, x, rng));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Augmentation { ResizedCrop = new RandomResizedCrop(RatioLo: 0f) }.Apply(step, x, rng));

        var resized = new Augmentation { Resize = new ImageSize(6, 5), ResizedCrop = new RandomResizedCrop(3, 2) };
        Assert.Equal(new Shape(3, 3, 2), resized.OutputShape(new Shape(3, 4, 4)));
        Assert.Equal(new Shape(2, 3, 3, 2), resized.Apply(step, x, rng).Shape);
        Assert.Equal(new Shape(2, 3, 6, 5), new Augmentation { Resize = new ImageSize(6, 5) }.Apply(step, x, rng).Shape);
        Assert.Equal("vflip, saturation 0.2, hue 0.1, normalize mean (0.2860), std (0.3530)", new Augmentation { VerticalFlip = true, Saturation = 0.2f, Hue = 0.1f, Normalize = Normalization.FashionMnist }.Description);
    }

    // Evaluation sees the pipeline's deterministic part: a model trained on pixels normalized on the device scores
    // the same as on data normalized beforehand, and a Resize to another size reaches the evaluation batches too.
    [Fact]
    public void Evaluation_runs_the_pipelines_resize_and_normalize()
    {
        var pixels = TrainerProperties.Blobs(60, 3, 5);
        var stats = new Normalization([0.5f, -0.25f], [2f, 0.5f]);
        float[] normalized = new float[pixels.Count * 8];
        for (int i = 0; i < pixels.Count; i++)
        {
            pixels.Features(i).CopyTo(normalized.AsSpan(i * 8, 8));
            stats.Apply(normalized.AsSpan(i * 8, 8), pixels.SampleShape);
        }

        var pre = new InMemoryDataset("pre", normalized, [.. Enumerable.Range(0, pixels.Count).Select(pixels.Label)], pixels.SampleShape, 3);
        var model = TrainerProperties.SmallCnn();
        var plain = new Trainer(Devices.Cpu, model, pixels.SampleShape, new Adam(0.01), new TrainerOptions { Epochs = 1, BatchSize = 16, WarmKernels = false });
        var onDevice = new Trainer(Devices.Cpu, model, pixels.SampleShape, new Adam(0.01), new TrainerOptions
        {
            Epochs = 1, BatchSize = 16, WarmKernels = false, Augmentation = new Augmentation { Normalize = stats },
        });
        using var s = plain.Init();
        var a = plain.Evaluate(s.Params, s.State, pre);
        var b = onDevice.Evaluate(s.Params, s.State, pixels);
        Assert.Equal(a.Loss, b.Loss, 5);
        Assert.Equal(a.Accuracy, b.Accuracy);

        // Resize 2x2 -> 4x4 in training: evaluation batches are resized too, so the model (built for 4x4) accepts them.
        var resized = new Trainer(Devices.Cpu, TrainerProperties.SmallCnn(), new Shape(2, 4, 4), new Adam(0.01), new TrainerOptions
        {
            Epochs = 1, BatchSize = 16, WarmKernels = false, Augmentation = new Augmentation { Resize = new ImageSize(4, 4) },
        });
        using var fit = resized.Fit(pixels, pixels).State;
        Assert.True(fit.History.Last!.ValLoss is double v && double.IsFinite(v));
    }

    // The command line's image folders are pixels in [0, 1]: the pipeline normalizes them on the device with ImageNet's
    // statistics (training and evaluation), and colour jitter, hue included, runs on the pixels, clamped.
    [Fact]
    public void Image_folders_are_normalized_on_the_device_and_jittered_as_pixels()
    {
        var rgb = new InMemoryDataset("rgb", new float[3 * 4 * 4], [0], new Shape(3, 4, 4), 2);
        Assert.Equal(Normalization.ImageNet, Recipes.PixelNormalization("image-folder", rgb));
        Assert.Null(Recipes.PixelNormalization("cifar10", rgb));
        var plain = new RunConfig { Dataset = "image-folder", DataDir = "pets" }.Augmentation(4, null, Normalization.ImageNet);
        Assert.Equal(Normalization.ImageNet, plain.Normalize);
        Assert.False(plain.NormalizedInput);
        var hue = new RunConfig { Dataset = "image-folder", DataDir = "pets", Augment = "flip,hue" }.Augmentation(4, null, Normalization.ImageNet);
        Assert.Equal((Normalization.ImageNet, false, 0.1f), (hue.Normalize, hue.NormalizedInput, hue.Hue));
    }
}
