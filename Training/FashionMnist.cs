namespace IlgpuTrain.Training;

/// <summary>
/// Fashion-MNIST (Xiao, Rasul, Vollgraf 2017, https://github.com/zalandoresearch/fashion-mnist) and
/// MNIST, from their four IDX files: 60000 training and 10000 test images of 28 x 28 grey pixels,
/// 10 classes. Pixels are scaled to [0, 1] (p / 255) and then normalized with a
/// <see cref="Normalization"/>. SampleShape (1, 28, 28).
/// </summary>
public static class FashionMnist
{
    /// <summary>The environment variable that names the Fashion-MNIST folder.</summary>
    public const string EnvironmentVariable = "ILGPUTRAIN_FASHION_MNIST";

    /// <summary>The environment variable that names the MNIST folder.</summary>
    public const string MnistEnvironmentVariable = "ILGPUTRAIN_MNIST";

    /// <summary>Where the Debian package dataset-fashion-mnist installs the files.</summary>
    public const string DefaultDirectory = "/usr/share/datasets/fashion-mnist";

    /// <summary>Where MNIST is looked for when neither a folder nor the environment variable is given.</summary>
    public const string MnistDefaultDirectory = "/usr/share/datasets/mnist";

    /// <summary>The four file names (the same for MNIST): train images, train labels, test images, test labels.</summary>
    public static IReadOnlyList<string> Files { get; } =
        ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"];

    /// <summary>Fashion-MNIST class names, by label.</summary>
    public static IReadOnlyList<string> ClassNames { get; } =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>The folder that <see cref="Load"/> reads: <paramref name="dir"/> ?? $ILGPUTRAIN_FASHION_MNIST ?? /usr/share/datasets/fashion-mnist.</summary>
    /// <param name="dir">An explicit folder, or null.</param>
    /// <returns>The folder.</returns>
    public static string ResolveDirectory(string? dir = null) =>
        Resolve(dir, EnvironmentVariable, DefaultDirectory);

    /// <summary>Loads Fashion-MNIST.</summary>
    /// <param name="dir">The folder with the four files (gzip or raw, under the names in <see cref="Files"/>); null resolves as <see cref="ResolveDirectory"/>.</param>
    /// <param name="normalization">Applied after scaling to [0, 1]; default <see cref="Normalization.FashionMnist"/>.</param>
    /// <returns>The training (60000) and test (10000) sets.</returns>
    /// <exception cref="DataSetNotFoundException">Files are missing; the message lists them and how to get them.</exception>
    /// <exception cref="InvalidDataException">A file is truncated, corrupt or of the wrong kind.</exception>
    public static (InMemoryDataset Train, InMemoryDataset Test) Load(string? dir = null, Normalization? normalization = null) =>
        LoadFrom(
            "Fashion-MNIST",
            ResolveDirectory(dir),
            normalization ?? Normalization.FashionMnist,
            ClassNames,
            "Install them with `sudo apt-get install dataset-fashion-mnist` (into " + DefaultDirectory + "), or download the four files from https://github.com/zalandoresearch/fashion-mnist (folder data/fashion) into a folder and pass --data DIR (or set " + EnvironmentVariable + ").");

    /// <summary>Loads MNIST (the same format and file names): <paramref name="dir"/> ?? $ILGPUTRAIN_MNIST ?? /usr/share/datasets/mnist.</summary>
    /// <param name="dir">The folder with the four files, or null.</param>
    /// <param name="normalization">Applied after scaling to [0, 1]; default <see cref="Normalization.Mnist"/>.</param>
    /// <returns>The training (60000) and test (10000) sets, class names "0".."9".</returns>
    /// <exception cref="DataSetNotFoundException">Files are missing.</exception>
    /// <exception cref="InvalidDataException">A file is truncated, corrupt or of the wrong kind.</exception>
    public static (InMemoryDataset Train, InMemoryDataset Test) LoadMnist(string? dir = null, Normalization? normalization = null) =>
        LoadFrom(
            "MNIST",
            Resolve(dir, MnistEnvironmentVariable, MnistDefaultDirectory),
            normalization ?? Normalization.Mnist,
            Enumerable.Range(0, 10).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray(),
            "Download the four files from https://yann.lecun.com/exdb/mnist/ (or a mirror) into a folder and pass --data DIR (or set " + MnistEnvironmentVariable + ").");

    /// <summary>Reads one IDX images + labels pair into a data set (pixels / 255, then normalized).</summary>
    /// <param name="name">The data set's name.</param>
    /// <param name="imagesPath">The images file (magic 0x00000803).</param>
    /// <param name="labelsPath">The labels file (magic 0x00000801).</param>
    /// <param name="normalization">The normalization (one channel).</param>
    /// <param name="classNames">The class names; labels must be below their count.</param>
    /// <returns>The data set, SampleShape (1, rows, columns).</returns>
    /// <exception cref="InvalidDataException">A file is invalid, the counts disagree or a label is out of range.</exception>
    public static InMemoryDataset ReadPair(string name, string imagesPath, string labelsPath, Normalization normalization, IReadOnlyList<string> classNames)
    {
        ArgumentNullException.ThrowIfNull(normalization);
        ArgumentNullException.ThrowIfNull(classNames);
        var images = Idx.ReadImages(imagesPath);
        var labels = Idx.ReadLabels(labelsPath);
        int count = images.Dimensions[0], rows = images.Dimensions[1], cols = images.Dimensions[2];
        if (labels.Dimensions[0] != count)
            throw DataFormat.Error(Path.GetFileName(labelsPath), $"has {labels.Dimensions[0]} labels but {Path.GetFileName(imagesPath)} has {count} images; the files do not belong together, download them again.");
        var y = new int[count];
        for (int i = 0; i < count; i++)
        {
            y[i] = labels.Data[i];
            if (y[i] >= classNames.Count)
                throw DataFormat.Error(Path.GetFileName(labelsPath), $"label {i} is {y[i]}, but there are {classNames.Count} classes; the file is corrupt, download it again.");
        }

        var x = new float[images.Data.Length];
        for (int i = 0; i < x.Length; i++)
            x[i] = images.Data[i] / 255f;
        var shape = new Shape(1, rows, cols);
        normalization.Apply(x, shape);
        return new InMemoryDataset(name, x, y, shape, classNames.Count, classNames);
    }

    private static (InMemoryDataset Train, InMemoryDataset Test) LoadFrom(string dataSet, string dir, Normalization normalization, IReadOnlyList<string> classNames, string howToGet)
    {
        var paths = Files.Select(f => Find(dir, f)).ToArray();
        var missing = Files.Where((f, i) => paths[i] is null).ToArray();
        if (missing.Length > 0)
            throw new DataSetNotFoundException(dataSet, Path.GetFullPath(dir), missing, howToGet);
        var train = ReadPair($"{dataSet} train", paths[0]!, paths[1]!, normalization, classNames);
        var test = ReadPair($"{dataSet} test", paths[2]!, paths[3]!, normalization, classNames);
        return (train, test);
    }

    // Accepts the gzip name or the same name without .gz (some mirrors ship the files unpacked). A
    // directory or special file under the name is returned too, for the reader to refuse with its reason.
    private static string? Find(string dir, string file)
    {
        string gz = Path.Combine(dir, file);
        string raw = Path.Combine(dir, Path.GetFileNameWithoutExtension(file));
        foreach (var candidate in new[] { gz, raw })
        {
            if (File.Exists(candidate))
                return candidate;
        }

        return Directory.Exists(gz) ? gz : Directory.Exists(raw) ? raw : null;
    }

    internal static string Resolve(string? dir, string variable, string fallback)
    {
        if (!string.IsNullOrWhiteSpace(dir))
            return dir;
        string? env = Environment.GetEnvironmentVariable(variable);
        return string.IsNullOrWhiteSpace(env) ? fallback : env;
    }
}
