using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>Training/Cifar10.cs: generated binary batches read back channel-major and normalized; malformed files are rejected cleanly.</summary>
public class Cifar10Properties
{
    // (p / 255 - mean) / std in float against float64.
    private const double PixelTol = 1e-6;

    private static byte[] Records(int seed, int n)
    {
        var b = Gens.RandomBytes(seed, n * Cifar10.RecordBytes);
        for (int r = 0; r < n; r++)
            b[r * Cifar10.RecordBytes] = (byte)((r + seed) % 10);
        return b;
    }

    [Property(MaxTest = 10)]
    public Property Generated_batches_read_back_in_order_and_normalized_per_channel() =>
        Prop.ForAll(Gen.Choose(0, 1000).ToArbitrary(), Gen.Choose(1, 4).ToArbitrary(), Gen.Choose(1, 3).ToArbitrary(), (seed, n1, n2) =>
        {
            using var dir = new TempDir();
            var a = Records(seed, n1);
            var b = Records(seed + 1, n2);
            File.WriteAllBytes(dir.File("a.bin"), a);
            File.WriteAllBytes(dir.File("b.bin"), b);
            var ds = Cifar10.Read("t", [dir.File("a.bin"), dir.File("b.bin")], Normalization.Cifar10);
            var all = a.Concat(b).ToArray();
            var result = (ds.Count == n1 + n2).Label($"count {ds.Count}").And(ds.SampleShape.Equals(new Shape(3, 32, 32)).Label("shape"));
            for (int r = 0; r < ds.Count; r++)
            {
                var expected = new double[3072];
                for (int i = 0; i < 3072; i++)
                {
                    int c = i / 1024;
                    expected[i] = ((all[(r * Cifar10.RecordBytes) + 1 + i] / 255.0) - Normalization.Cifar10.Mean[c]) / Normalization.Cifar10.Std[c];
                }

                result = result.And(Close.All(ds.Features(r), expected, PixelTol, PixelTol, $"record {r}"))
                    .And((ds.Label(r) == all[r * Cifar10.RecordBytes]).Label($"label {r}"));
            }

            return result;
        });

    [Fact]
    public void Partial_records_bad_labels_and_empty_files_are_rejected_cleanly()
    {
        using var dir = new TempDir();
        var good = Records(3, 2);
        File.WriteAllBytes(dir.File("short.bin"), good[..^1]);
        Assert.Contains("plus 3072 stray bytes", Assert.Throws<InvalidDataException>(() => Cifar10.Read("t", [dir.File("short.bin")], Normalization.Cifar10)).Message);
        var bad = (byte[])good.Clone();
        bad[Cifar10.RecordBytes] = 10;
        File.WriteAllBytes(dir.File("label.bin"), bad);
        Assert.Contains("record 1 has label 10", Assert.Throws<InvalidDataException>(() => Cifar10.Read("t", [dir.File("label.bin")], Normalization.Cifar10)).Message);
        File.WriteAllBytes(dir.File("empty.bin"), []);
        Assert.StartsWith("empty.bin: the file is empty", Assert.Throws<InvalidDataException>(() => Cifar10.Read("t", [dir.File("empty.bin")], Normalization.Cifar10)).Message);
    }

    [Fact]
    public void Missing_files_are_listed_with_the_download_address()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("data_batch_1.bin"), Records(1, 1));
        var e = Assert.Throws<DataSetNotFoundException>(() => Cifar10.Load(dir.Path));
        Assert.Equal(["data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"], e.Missing);
        Assert.Contains("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", e.Message);
    }

    [Fact]
    public void A_complete_folder_loads_from_the_nested_cifar_10_batches_bin()
    {
        using var dir = new TempDir();
        string nested = Directory.CreateDirectory(dir.File("cifar-10-batches-bin")).FullName;
        foreach (var f in Cifar10.TrainFiles.Append(Cifar10.TestFile))
            File.WriteAllBytes(Path.Combine(nested, f), Records(f.Length, 2));
        var (train, test) = Cifar10.Load(dir.Path);
        Assert.Equal(10, train.Count);
        Assert.Equal(2, test.Count);
        Assert.Equal("airplane", train.ClassNames[0]);
    }
}
