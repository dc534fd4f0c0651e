using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>Training/FashionMnist.cs: generated files load; the real data set (when installed) has the documented counts and statistics; missing files say what to do.</summary>
[Collection(ProcessState.Name)]
public class FashionMnistProperties
{
    // Normalized pixels are (p / 255 - mean) / std in float; the reference computes the same in float64.
    private const double PixelTol = 1e-6;

    private static void WriteSet(string dir, int train, int test, int seed, bool gzip)
    {
        foreach (var (prefix, n) in new[] { ("train", train), ("t10k", test) })
        {
            string ext = gzip ? ".gz" : string.Empty;
            Idx.Write(Path.Combine(dir, $"{prefix}-images-idx3-ubyte{ext}"), new IdxArray([n, 28, 28], Gens.RandomBytes(seed, n * 784)), gzip);
            Idx.Write(Path.Combine(dir, $"{prefix}-labels-idx1-ubyte{ext}"), new IdxArray([n], Enumerable.Range(0, n).Select(i => (byte)((i * 7) % 10)).ToArray()), gzip);
        }
    }

    [Property(MaxTest = 10)]
    public Property Generated_files_load_scaled_and_normalized() =>
        Prop.ForAll(Gen.Choose(0, 1000).ToArbitrary(), Gen.Elements(false, true).ToArbitrary(), (seed, gzip) =>
        {
            using var dir = new TempDir();
            WriteSet(dir.Path, 5, 3, seed, gzip);
            var (train, test) = FashionMnist.Load(dir.Path);
            var pixels = Gens.RandomBytes(seed, 5 * 784);
            var expected = pixels.Select(p => (float)(((p / 255.0) - 0.2860f) / 0.3530f)).ToArray();
            var got = Enumerable.Range(0, 5).SelectMany(i => train.Features(i).ToArray()).ToArray();
            return Close.All(got, expected, PixelTol, PixelTol, "pixels")
                .And((train.Count == 5 && test.Count == 3).Label("counts"))
                .And(train.SampleShape.Equals(new Shape(1, 28, 28)).Label("shape"))
                .And((train.Label(3) == 1 && train.Classes == 10 && train.ClassNames[9] == "Ankle boot").Label("labels and names"));
        });

    [Fact]
    public void Missing_files_are_listed_with_how_to_get_them()
    {
        using var dir = new TempDir();
        WriteSet(dir.Path, 2, 2, 1, gzip: true);
        File.Delete(dir.File("t10k-labels-idx1-ubyte.gz"));
        File.Delete(dir.File("train-images-idx3-ubyte.gz"));
        var e = Assert.Throws<DataSetNotFoundException>(() => FashionMnist.Load(dir.Path));
        Assert.Equal(["train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"], e.Missing);
        Assert.Contains(dir.Path, e.Message);
        Assert.Contains("sudo apt-get install dataset-fashion-mnist", e.Message);
        Assert.Contains("https://github.com/zalandoresearch/fashion-mnist", e.Message);
        Assert.Contains("--data DIR", e.Message);
    }

    [Fact]
    public void Mismatched_counts_are_rejected()
    {
        using var dir = new TempDir();
        WriteSet(dir.Path, 4, 2, 1, gzip: false);
        Idx.Write(dir.File("train-labels-idx1-ubyte"), new IdxArray([3], [0, 1, 2]), gzip: false);
        var e = Assert.Throws<InvalidDataException>(() => FashionMnist.Load(dir.Path));
        Assert.Contains("has 3 labels but train-images-idx3-ubyte has 4 images", e.Message);
    }

    [Fact]
    public void The_directory_resolves_argument_then_environment_then_default()
    {
        string? old = Environment.GetEnvironmentVariable(FashionMnist.EnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(FashionMnist.EnvironmentVariable, "/from/env");
            Assert.Equal("/given", FashionMnist.ResolveDirectory("/given"));
            Assert.Equal("/from/env", FashionMnist.ResolveDirectory());
            Environment.SetEnvironmentVariable(FashionMnist.EnvironmentVariable, null);
            Assert.Equal(FashionMnist.DefaultDirectory, FashionMnist.ResolveDirectory());
        }
        finally
        {
            Environment.SetEnvironmentVariable(FashionMnist.EnvironmentVariable, old);
        }
    }

    // Runs where the Debian package dataset-fashion-mnist is installed (CI installs it); passes quietly elsewhere.
    [Fact]
    public void The_installed_data_set_has_60000_and_10000_samples_balanced_classes_and_the_documented_statistics()
    {
        if (!File.Exists(Path.Combine(FashionMnist.DefaultDirectory, FashionMnist.Files[0])))
            return;
        var (train, test) = FashionMnist.Load(FashionMnist.DefaultDirectory, Normalization.Identity(1));
        Assert.Equal(60000, train.Count);
        Assert.Equal(10000, test.Count);
        Assert.All(train.LabelCounts(), c => Assert.Equal(6000, c));
        Assert.All(test.LabelCounts(), c => Assert.Equal(1000, c));
        var stats = Normalization.Compute(train);
        Assert.InRange(stats.Mean[0], 0.28595f, 0.28605f);
        Assert.InRange(stats.Std[0], 0.35295f, 0.35305f);
    }
}
