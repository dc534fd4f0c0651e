using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Support;

/// <summary>Generators and temp-file helpers for data sets, loaders and augmentation.</summary>
public static partial class Gens
{
    /// <summary>A small IDX array: labels (rank 1) or images (rank 3), with random bytes.</summary>
    public static Gen<IdxArray> IdxArrays { get; } =
        from images in Gen.Elements(false, true)
        from n in Gen.Elements(0, 1, 2, 3, 7, 17)
        from rows in Gen.Elements(1, 2, 5)
        from cols in Gen.Elements(1, 3, 4)
        from seed in Gen.Choose(0, int.MaxValue)
        let dims = images ? new[] { n, rows, cols } : new[] { n }
        select new IdxArray(dims, RandomBytes(seed, dims.Aggregate(1, (a, b) => a * b)));

    /// <summary>A small labelled data set size and shape: (count, sample length).</summary>
    public static Gen<(int Count, int Batch)> LoaderSizes { get; } =
        from count in Gen.OneOf(Gen.Elements(0, 1, 2, 15, 16, 17, 97), Gen.Choose(0, 300))
        from batch in Gen.OneOf(Gen.Elements(1, 2, 16, 17, 128), Gen.Choose(1, 64))
        select (count, batch);

    /// <summary>Deterministic random bytes.</summary>
    /// <param name="seed">The seed.</param>
    /// <param name="n">Length.</param>
    /// <returns>The bytes.</returns>
    public static byte[] RandomBytes(int seed, int n)
    {
        var b = new byte[n];
        new Random(seed).NextBytes(b);
        return b;
    }

    /// <summary>A data set of <paramref name="count"/> samples of shape (2, 3) whose features encode the sample index (x = index * 10 + element) and label = index % classes.</summary>
    /// <param name="count">Samples.</param>
    /// <param name="classes">Classes.</param>
    /// <returns>The data set.</returns>
    public static InMemoryDataset IndexDataset(int count, int classes = 10)
    {
        var x = new float[count * 6];
        for (int i = 0; i < x.Length; i++)
            x[i] = ((i / 6) * 10) + (i % 6);
        var y = Enumerable.Range(0, count).Select(i => i % classes).ToArray();
        return new InMemoryDataset("index", x, y, new Shape(2, 3), classes);
    }
}

/// <summary>A temporary folder deleted on dispose.</summary>
public sealed class TempDir : IDisposable
{
    /// <summary>Creates the folder.</summary>
    public TempDir()
    {
        Path = Directory.CreateTempSubdirectory("ilgputrain-data-").FullName;
    }

    /// <summary>Its path.</summary>
    public string Path { get; }

    /// <summary>A path inside it.</summary>
    /// <param name="name">The file name.</param>
    /// <returns>The path.</returns>
    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <inheritdoc/>
    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temp folder is harmless.
        }
    }
}
