namespace IlgpuTrain.Training;

/// <summary>
/// CIFAR-10 (Krizhevsky 2009, https://www.cs.toronto.edu/~kriz/cifar.html), binary version:
/// data_batch_1.bin .. data_batch_5.bin (50000 training images) and test_batch.bin (10000). Each
/// record is 1 label byte then 3072 pixel bytes, channel-major (1024 red, 1024 green, 1024 blue,
/// each 32 x 32 row-major). Pixels are scaled to [0, 1] and normalized per channel;
/// SampleShape (3, 32, 32), 10 classes.
/// </summary>
public static class Cifar10
{
    /// <summary>The environment variable that names the folder.</summary>
    public const string EnvironmentVariable = "ILGPUTRAIN_CIFAR10";

    /// <summary>Where the files are looked for when neither a folder nor the environment variable is given.</summary>
    public const string DefaultDirectory = "/usr/share/datasets/cifar-10";

    /// <summary>Bytes per record: 1 label + 3 x 32 x 32 pixels.</summary>
    public const int RecordBytes = 1 + 3072;

    /// <summary>The training files.</summary>
    public static IReadOnlyList<string> TrainFiles { get; } =
        ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];

    /// <summary>The test file.</summary>
    public const string TestFile = "test_batch.bin";

    /// <summary>Class names, by label.</summary>
    public static IReadOnlyList<string> ClassNames { get; } =
        ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

    /// <summary>Loads CIFAR-10 from <paramref name="dir"/> ?? $ILGPUTRAIN_CIFAR10 ?? /usr/share/datasets/cifar-10 (the files may also sit in a cifar-10-batches-bin subfolder).</summary>
    /// <param name="dir">The folder, or null.</param>
    /// <param name="normalization">Per-channel normalization after scaling to [0, 1]; default <see cref="Normalization.Cifar10"/>.</param>
    /// <returns>The training (50000) and test (10000) sets.</returns>
    /// <exception cref="DataSetNotFoundException">Files are missing; the message lists them and how to get them.</exception>
    /// <exception cref="InvalidDataException">A file is truncated, has a partial record, or a label above 9.</exception>
    public static (InMemoryDataset Train, InMemoryDataset Test) Load(string? dir = null, Normalization? normalization = null)
    {
        string root = FashionMnist.Resolve(dir, EnvironmentVariable, DefaultDirectory);
        string nested = Path.Combine(root, "cifar-10-batches-bin");
        if (!File.Exists(Path.Combine(root, TestFile)) && Directory.Exists(nested))
            root = nested;
        string[] all = [.. TrainFiles, TestFile];
        // A directory or special file under a data file's name is read (and refused with its reason), not reported missing.
        var missing = all.Where(f => !File.Exists(Path.Combine(root, f)) && !Directory.Exists(Path.Combine(root, f))).ToArray();
        if (missing.Length > 0)
        {
            throw new DataSetNotFoundException("CIFAR-10", Path.GetFullPath(root), missing,
                "Download https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz, unpack it (tar xzf) and pass --data DIR with the folder cifar-10-batches-bin (or set " + EnvironmentVariable + ").");
        }

        var norm = normalization ?? Normalization.Cifar10;
        var train = Read("CIFAR-10 train", TrainFiles.Select(f => Path.Combine(root, f)).ToArray(), norm);
        var test = Read("CIFAR-10 test", [Path.Combine(root, TestFile)], norm);
        return (train, test);
    }

    /// <summary>Reads CIFAR-10 binary files, concatenated in order, into one data set.</summary>
    /// <param name="name">The data set's name.</param>
    /// <param name="paths">The files.</param>
    /// <param name="normalization">Per-channel normalization (3 channels).</param>
    /// <returns>The data set.</returns>
    /// <exception cref="InvalidDataException">A file is empty, not a whole number of records, too large, or has a label above 9.</exception>
    public static InMemoryDataset Read(string name, IReadOnlyList<string> paths, Normalization normalization)
    {
        ArgumentNullException.ThrowIfNull(paths);
        ArgumentNullException.ThrowIfNull(normalization);
        long totalRecords = 0;
        var records = new long[paths.Count];
        for (int f = 0; f < paths.Count; f++)
        {
            string file = Path.GetFileName(paths[f]);
            InputFile.RequireRegular(paths[f], "data file", "replace it with the CIFAR-10 binary batch of that name (from cifar-10-batches-bin)");
            long length = new FileInfo(paths[f]).Length;
            if (length == 0)
                throw DataFormat.Error(file, $"the file is empty; expected CIFAR-10 binary records of {RecordBytes} bytes. Download it again.");
            if (length % RecordBytes != 0)
                throw DataFormat.Error(file, $"{length} bytes is {length / RecordBytes} whole records of {RecordBytes} bytes (1 label + 3072 pixels) plus {length % RecordBytes} stray bytes; the file is truncated or not a CIFAR-10 binary batch, download it again.");
            records[f] = length / RecordBytes;
            totalRecords += records[f];
        }

        // Bounded memory: the float array of 3072 floats per record must stay below 2^31 elements.
        if (totalRecords * 3072 > Array.MaxLength)
            throw DataFormat.Error(paths[0], $"{totalRecords} records are more than fit in memory as one array ({Array.MaxLength / 3072} at most); these are not CIFAR-10 batches.");
        int n = (int)totalRecords;
        var x = new float[n * 3072L];
        var y = new int[n];
        var record = new byte[RecordBytes];
        int r = 0;
        for (int f = 0; f < paths.Count; f++)
        {
            string file = Path.GetFileName(paths[f]);
            using var stream = InputFile.OpenRead(paths[f], "data file", "replace it with the CIFAR-10 binary batch of that name (from cifar-10-batches-bin)");
            for (long k = 0; k < records[f]; k++, r++)
            {
                int got = stream.ReadAtLeast(record, RecordBytes, throwOnEndOfStream: false);
                if (got < RecordBytes)
                    throw DataFormat.Error(file, $"record {k} ends after {got} of {RecordBytes} bytes; the file changed while it was read or is truncated, download it again.");
                if (record[0] > 9)
                    throw DataFormat.Error(file, $"record {k} has label {record[0]}, but CIFAR-10 labels are 0..9; the file is corrupt or not a CIFAR-10 binary batch (the CIFAR-100 format has 2 label bytes).");
                y[r] = record[0];
                var dst = x.AsSpan(r * 3072, 3072);
                for (int i = 0; i < 3072; i++)
                    dst[i] = record[1 + i] / 255f;
            }
        }

        var shape = new Shape(3, 32, 32);
        normalization.Apply(x, shape);
        return new InMemoryDataset(name, x, y, shape, 10, ClassNames);
    }
}
