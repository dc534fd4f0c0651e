using System.Globalization;
using StbImageSharp;

namespace IlgpuTrain.Training;

/// <summary>How an <see cref="ImageFolderDataset"/> turns its files into samples.</summary>
public sealed record ImageFolderOptions
{
    /// <summary>
    /// Decode-time transforms, in order (torchvision's Compose before ToTensor): for example
    /// Resize(36) then CenterCrop(32). Images of different sizes need one that fixes the size.
    /// None by default: every image must then have the same size.
    /// </summary>
    public IReadOnlyList<ImageTransform> Transforms { get; init; } = [];

    /// <summary>
    /// One luminance channel instead of RGB (false): PIL's convert("L") of the RGB image,
    /// L = (19595 R + 38470 G + 7471 B + 2^15) >> 16 (ITU-R 601-2 luma), before the transforms, as
    /// torchvision's Grayscale() placed first.
    /// </summary>
    public bool Grayscale { get; init; }

    /// <summary>
    /// Decoded samples kept in memory (0, the default: none). The first samples decoded stay until
    /// the cap is reached; the others are decoded each time they are gathered. Memory:
    /// CacheSamples × C × H × W × 4 bytes. The views of one folder (<see cref="ImageFolderDataset.Split"/>,
    /// <see cref="ImageFolderDataset.Take"/>) share one cache.
    /// </summary>
    public int CacheSamples { get; init; }
}

/// <summary>
/// A labelled data set of image files, one subfolder per class (torchvision's
/// <c>datasets.ImageFolder</c>): root/&lt;class&gt;/&lt;image&gt;. Images are decoded lazily, in
/// <see cref="Gather"/>: the data set holds only the paths and labels, so it can be larger than
/// memory, and a <see cref="DataLoader"/> with several workers decodes batches in parallel.
/// </summary>
/// <remarks>
/// <para>What matches torchvision: classes are the subfolder names sorted in ordinal order
/// (Python's sorted) and numbered from 0 (<see cref="ClassToIndex"/> is class_to_idx); images are
/// the files whose lower-cased name ends in .png, .jpg or .jpeg, found in the class folder and its
/// subfolders, ordered as sorted(os.walk(...)) then sorted(names) (<see cref="Samples"/>); each
/// image is converted to RGB as PIL's convert("RGB") does (gray replicated, palette looked up,
/// alpha dropped) and becomes floats (C, H, W) in [0, 1] as ToTensor: byte / 255.</para>
/// <para>Where it differs: names that start with a dot (hidden files and folders, such as
/// .ipynb_checkpoints, which torchvision would take for a class) are skipped; links to folders
/// inside a class folder are not followed; images are decoded with StbImageSharp (a managed port
/// of stb_image), so PNGs decode exactly as PIL does but baseline JPEGs may differ from libjpeg by
/// a level or two (another IDCT and chroma upsampling), and 16-bit PNGs keep the high byte.</para>
/// <para>Normalization (mean, std) is left to the on-device pipeline: samples stay in [0, 1].</para>
/// </remarks>
/// <example>
/// <code>
/// var options = new ImageFolderOptions { Transforms = [new ImageTransform.Resize(32), new ImageTransform.CenterCrop(32)] };
/// var all = new ImageFolderDataset("pets", options);
/// var (train, validation) = all.Split(0.2, seed: 0);
/// </code>
/// </example>
public sealed class ImageFolderDataset : IDataset
{
    /// <summary>The file extensions read (torchvision's IMG_EXTENSIONS less the formats not decoded here).</summary>
    public static IReadOnlyList<string> Extensions { get; } = [".png", ".jpg", ".jpeg"];

    private readonly Folder _folder;

    // The folder's sample numbers of this view: _index[i], or i for the whole folder.
    private readonly int[]? _index;

    /// <summary>Lists the images under <paramref name="root"/> (nothing is decoded yet).</summary>
    /// <param name="root">The folder with one subfolder per class.</param>
    /// <param name="options">Transforms, grayscale, cache; null for the defaults.</param>
    /// <exception cref="DataSetNotFoundException">The folder does not exist.</exception>
    /// <exception cref="InputFileException">The path is a file, not a folder.</exception>
    /// <exception cref="InvalidDataException">There is no class folder, a class folder has no image, or, without a
    /// transform that fixes the size, two images have different sizes or an image's header cannot be read.</exception>
    public ImageFolderDataset(string root, ImageFolderOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        _folder = new Folder(root, options ?? new ImageFolderOptions());
        Name = $"image folder {Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(root)))}";
        Count = _folder.Paths.Length;
    }

    private ImageFolderDataset(ImageFolderDataset parent, string name, int[] index)
    {
        _folder = parent._folder;
        _index = index;
        Name = name;
        Count = index.Length;
    }

    /// <inheritdoc/>
    public string Name { get; }

    /// <inheritdoc/>
    public int Count { get; }

    /// <inheritdoc/>
    public Shape SampleShape => _folder.SampleShape;

    /// <inheritdoc/>
    public int Classes => _folder.ClassNames.Length;

    /// <summary>The folder, as a full path.</summary>
    public string Root => _folder.Root;

    /// <summary>The options.</summary>
    public ImageFolderOptions Options => _folder.Options;

    /// <summary>The class names (subfolder names) in label order (torchvision's classes).</summary>
    public IReadOnlyList<string> ClassNames => _folder.ClassNames;

    /// <summary>The label of each class name (torchvision's class_to_idx).</summary>
    public IReadOnlyDictionary<string, int> ClassToIndex => _folder.ClassToIndex;

    /// <summary>The image files and their labels, in sample order (torchvision's samples).</summary>
    public IReadOnlyList<(string Path, int Label)> Samples =>
        Enumerable.Range(0, Count).Select(i => (_folder.Paths[Source(i)], _folder.Labels[Source(i)])).ToArray();

    /// <summary>Decoded samples held in the cache now (at most <see cref="ImageFolderOptions.CacheSamples"/>; shared by the views of one folder).</summary>
    public int CachedSamples => _folder.Cached;

    /// <summary>How many samples each class has.</summary>
    /// <returns>Classes counts.</returns>
    public int[] LabelCounts()
    {
        var counts = new int[Classes];
        for (int i = 0; i < Count; i++)
            counts[_folder.Labels[Source(i)]]++;
        return counts;
    }

    /// <summary>Decodes the images at <paramref name="indices"/> (or takes them from the cache) into <paramref name="x"/>; safe to call from several threads at once.</summary>
    /// <param name="indices">Sample indices in [0, Count).</param>
    /// <param name="x">Destination features, indices.Length × C × H × W floats in [0, 1].</param>
    /// <param name="labels">Destination labels.</param>
    /// <exception cref="InvalidDataException">An image is corrupt, truncated, not a PNG or JPEG, or of another size than the others (the message names the file).</exception>
    /// <exception cref="InputFileException">An image path is not a readable regular file.</exception>
    public void Gather(ReadOnlySpan<int> indices, Span<float> x, Span<int> labels)
    {
        int sample = checked((int)SampleShape.Length);
        if (x.Length != (long)indices.Length * sample)
            throw new ArgumentException($"{Name}.Gather: {indices.Length} samples of shape {SampleShape} need {(long)indices.Length * sample} floats but x has {x.Length}.", nameof(x));
        if (labels.Length != indices.Length)
            throw new ArgumentException($"{Name}.Gather: {indices.Length} samples need {indices.Length} labels but labels has {labels.Length}.", nameof(labels));
        for (int k = 0; k < indices.Length; k++)
        {
            int s = Source(indices[k]);
            _folder.Sample(s).CopyTo(x.Slice(k * sample, sample));
            labels[k] = _folder.Labels[s];
        }
    }

    /// <summary>The first <paramref name="n"/> samples (all of them when n &gt;= Count).</summary>
    /// <param name="n">How many (zero or more).</param>
    /// <returns>The view (it shares the folder's listing and cache).</returns>
    public ImageFolderDataset Take(int n)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(n);
        int m = Math.Min(n, Count);
        return new ImageFolderDataset(this, $"{Name}[..{m}]", Enumerable.Range(0, m).Select(Source).ToArray());
    }

    /// <summary>
    /// A seeded split into a training part and a validation part. Stratified (the default): each
    /// class gives round(<paramref name="validationFraction"/> × its count) samples (half away from
    /// zero), so both parts keep the class proportions; else round(fraction × Count) samples drawn
    /// from the whole set. The draw is a pure function of (<paramref name="seed"/>, the listing);
    /// each part keeps the listing's order.
    /// </summary>
    /// <param name="validationFraction">Fraction of samples for validation, in [0, 1].</param>
    /// <param name="seed">The seed.</param>
    /// <param name="stratified">Split each class by the fraction (true) or the whole set (false).</param>
    /// <returns>The two disjoint parts, whose union is this data set.</returns>
    public (ImageFolderDataset Train, ImageFolderDataset Validation) Split(double validationFraction, ulong seed, bool stratified = true)
    {
        if (!(validationFraction >= 0 && validationFraction <= 1))
            throw new ArgumentOutOfRangeException(nameof(validationFraction), validationFraction, $"{Name}.Split: the validation fraction must be in [0, 1], got {validationFraction}.");
        var isValidation = new bool[Count];
        if (stratified)
        {
            var byClass = Enumerable.Range(0, Classes).Select(_ => new List<int>()).ToArray();
            for (int i = 0; i < Count; i++)
                byClass[_folder.Labels[Source(i)]].Add(i);
            for (int c = 0; c < Classes; c++)
                Draw(byClass[c], validationFraction, seed, (uint)c, isValidation);
        }
        else
        {
            Draw(Enumerable.Range(0, Count).ToList(), validationFraction, seed, uint.MaxValue, isValidation);
        }

        var train = Enumerable.Range(0, Count).Where(i => !isValidation[i]).Select(Source).ToArray();
        var validation = Enumerable.Range(0, Count).Where(i => isValidation[i]).Select(Source).ToArray();
        return (new ImageFolderDataset(this, $"{Name} (train split)", train), new ImageFolderDataset(this, $"{Name} (validation split)", validation));
    }

    /// <summary>
    /// The training and test sets of a folder: root/train and root/val (or root/test), each one
    /// subfolder per class with the same classes, when both exist; else a stratified split of root
    /// itself that holds out <paramref name="testFraction"/> of each class.
    /// </summary>
    /// <param name="root">The folder.</param>
    /// <param name="options">Transforms, grayscale, cache; null for the defaults.</param>
    /// <param name="testFraction">Fraction held out when root is not split into train and val (0.2).</param>
    /// <param name="seed">Seed of that split.</param>
    /// <returns>The two sets and one line saying where the test set came from.</returns>
    /// <exception cref="InvalidDataException">The train and val folders have different classes, or see the constructor.</exception>
    public static (ImageFolderDataset Train, ImageFolderDataset Test, string Note) LoadTrainTest(string root, ImageFolderOptions? options = null, double testFraction = 0.2, ulong seed = 0)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        string train = Path.Combine(root, "train");
        string? test = new[] { "val", "test" }.Select(n => Path.Combine(root, n)).FirstOrDefault(Directory.Exists);
        if (Directory.Exists(train) && test is not null)
        {
            var a = new ImageFolderDataset(train, options);
            var b = new ImageFolderDataset(test, options);
            if (!a.ClassNames.SequenceEqual(b.ClassNames))
            {
                throw DataFormat.Error(root, $"the class folders of {Path.GetFileName(train)} ({string.Join(", ", a.ClassNames)}) and {Path.GetFileName(test)} ({string.Join(", ", b.ClassNames)}) differ, so their labels would not agree; give both the same class folders.");
            }

            return (a, b, $"test: {b.Count} images of {test}");
        }

        var all = new ImageFolderDataset(root, options);
        var (rest, held) = all.Split(testFraction, seed);
        string fraction = testFraction.ToString("G3", CultureInfo.InvariantCulture);
        return (rest, held, $"test: {held.Count} images held out of {all.Root} (a stratified fraction {fraction} of each class; use root/train and root/val folders to choose them)");
    }

    // Marks round(fraction × count) members of a class, picked by a seeded permutation.
    private static void Draw(List<int> members, double fraction, ulong seed, uint stream, bool[] isValidation)
    {
        int take = (int)Math.Round(fraction * members.Count, MidpointRounding.AwayFromZero);
        var order = DataLoader.Permutation(members.Count, seed, SplitStream, stream);
        for (int i = 0; i < take; i++)
            isValidation[members[order[i]]] = true;
    }

    // Keeps the split's permutations apart from the loader's shuffles under the same seed.
    private const uint SplitStream = 0x53504C54; // "SPLT"

    private int Source(int i)
    {
        if ((uint)i >= (uint)Count)
            throw new ArgumentOutOfRangeException(nameof(i), i, $"{Name}: sample index {i} is outside [0, {Count}).");
        return _index is null ? i : _index[i];
    }

    /// <summary>The listing of one folder, its sample shape and the cache its views share.</summary>
    private sealed class Folder
    {
        private readonly Dictionary<int, float[]> _cache = [];

        public Folder(string root, ImageFolderOptions options)
        {
            ArgumentNullException.ThrowIfNull(options);
            ArgumentNullException.ThrowIfNull(options.Transforms);
            if (options.Transforms.Any(t => t is null))
                throw new ArgumentException("ImageFolderOptions.Transforms: an entry is null; list only transforms.", nameof(options));
            if (options.CacheSamples < 0)
                throw new ArgumentOutOfRangeException(nameof(options), options.CacheSamples, $"ImageFolderOptions.CacheSamples must be 0 (no cache) or more samples, got {options.CacheSamples}.");
            Options = options;
            Root = Path.GetFullPath(root);
            RequireFolder(root);
            var classDirs = Directory.EnumerateDirectories(Root, "*", Visible)
                .Where(d => !Hidden(d))
                .OrderBy(d => Path.GetFileName(d), StringComparer.Ordinal)
                .ToArray();
            if (classDirs.Length == 0)
                throw DataFormat.Error(Root, "no class folders: an image folder holds one subfolder per class, each with its images (root/<class>/<image>.png); pass the folder above the class folders.");
            ClassNames = classDirs.Select(d => Path.GetFileName(d)!).ToArray();
            ClassToIndex = ClassNames.Select((n, i) => (n, i)).ToDictionary(t => t.n, t => t.i, StringComparer.Ordinal);
            var paths = new List<string>();
            var labels = new List<int>();
            var empty = new List<string>();
            for (int c = 0; c < classDirs.Length; c++)
            {
                int before = paths.Count;
                paths.AddRange(Images(classDirs[c]));
                labels.AddRange(Enumerable.Repeat(c, paths.Count - before));
                if (paths.Count == before)
                    empty.Add(ClassNames[c]);
            }

            if (empty.Count > 0)
            {
                throw DataFormat.Error(Root, $"the class folder(s) {string.Join(", ", empty)} have no images ({string.Join(", ", Extensions)}; hidden files are skipped); add images or remove the folder(s).");
            }

            Paths = [.. paths];
            Labels = [.. labels];
            int channels = options.Grayscale ? 1 : 3;
            var size = FixedSize(options.Transforms) ?? CommonSize();
            SampleShape = new Shape(channels, size.Height, size.Width);
        }

        public string Root { get; }

        public ImageFolderOptions Options { get; }

        public string[] ClassNames { get; }

        public IReadOnlyDictionary<string, int> ClassToIndex { get; }

        public string[] Paths { get; }

        public int[] Labels { get; }

        public Shape SampleShape { get; }

        /// <summary>Sample <paramref name="s"/> as (C, H, W) floats: from the cache, else decoded (and cached while there is room).</summary>
        public ReadOnlySpan<float> Sample(int s)
        {
            if (Options.CacheSamples > 0)
            {
                lock (_cache)
                {
                    if (_cache.TryGetValue(s, out var hit))
                        return hit;
                }
            }

            var decoded = Decode(s);
            if (Options.CacheSamples > 0)
            {
                lock (_cache)
                {
                    if (_cache.Count < Options.CacheSamples)
                        _cache.TryAdd(s, decoded);
                }
            }

            return decoded;
        }

        /// <summary>The decoded samples held in the cache now.</summary>
        public int Cached
        {
            get
            {
                lock (_cache)
                    return _cache.Count;
            }
        }

        private float[] Decode(int s)
        {
            string path = Paths[s];
            var image = ImageDecoding.Rgb(path);
            if (Options.Grayscale)
                image = ImageDecoding.Luminance(image);
            var (sourceH, sourceW) = (image.Height, image.Width);
            foreach (var t in Options.Transforms)
                image = t.Apply(image);
            if (image.Height != SampleShape[1] || image.Width != SampleShape[2])
            {
                throw DataFormat.Error(path, $"the image is {sourceW} x {sourceH} (width x height), which gives {image.Width} x {image.Height} after the transforms, but the data set's samples are {SampleShape[2]} x {SampleShape[1]}; add a Resize to a fixed size or a CenterCrop (--image-size on the command line), or replace the image.");
            }

            return ImageDecoding.ToTensor(image);
        }

        // The images of a class folder, as torchvision lists them: sorted(os.walk(dir)), then sorted names.
        private static IEnumerable<string> Images(string classDir)
        {
            var dirs = new List<string> { classDir };
            for (int i = 0; i < dirs.Count; i++)
            {
                dirs.AddRange(Directory.EnumerateDirectories(dirs[i], "*", Visible)
                    .Where(d => !Hidden(d) && new DirectoryInfo(d).LinkTarget is null));
            }

            dirs.Sort(StringComparer.Ordinal);
            foreach (var dir in dirs)
            {
                var names = Directory.EnumerateFiles(dir, "*", Visible)
                    .Where(f => !Hidden(f) && Extensions.Any(e => f.EndsWith(e, StringComparison.OrdinalIgnoreCase)))
                    .Order(StringComparer.Ordinal);
                foreach (var f in names)
                    yield return f;
            }
        }

        private static (int Height, int Width)? FixedSize(IReadOnlyList<ImageTransform> transforms)
        {
            (int Height, int Width)? size = null;
            foreach (var t in transforms)
                size = t.FixedSize ?? (size is { } s ? t.OutputSize(s.Height, s.Width) : null);
            return size;
        }

        // Without a transform that fixes the size, every image's size after the transforms, read from
        // its header (nothing is decoded), must agree.
        private (int Height, int Width) CommonSize()
        {
            (int Height, int Width) first = default;
            (int Height, int Width) firstSource = default;
            for (int s = 0; s < Paths.Length; s++)
            {
                var source = ImageDecoding.Size(Paths[s]);
                var size = source;
                foreach (var t in Options.Transforms)
                    size = t.OutputSize(size.Height, size.Width);
                if (s == 0)
                {
                    (first, firstSource) = (size, source);
                }
                else if (size != first)
                {
                    string resize = Options.Transforms.Count == 0 ? "images of different sizes" : "images of different aspect ratios after the transforms";
                    throw DataFormat.Error(Root, $"{resize}: {Paths[0]} is {firstSource.Width} x {firstSource.Height} (width x height) but {Paths[s]} is {source.Width} x {source.Height}; samples of one batch need one size, so add a Resize to a fixed (height, width) or a CenterCrop (on the command line: --image-size N).");
                }
            }

            return first;
        }

        private static void RequireFolder(string root)
        {
            switch (InputFile.KindOf(root))
            {
                case InputFile.Kind.Directory:
                    return;
                case InputFile.Kind.Missing:
                    string full = Path.GetFullPath(root);
                    throw new DataSetNotFoundException("Image folder", Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(full)) ?? full, [Path.GetFileName(Path.TrimEndingDirectorySeparator(full))],
                        "Pass --data with a folder that holds one subfolder of images per class (root/<class>/<image>.png or .jpg).");
                default:
                    throw new InputFileException(root, "not a folder; pass the folder that holds one subfolder of images per class (root/<class>/<image>.png or .jpg).");
            }
        }

        private static bool Hidden(string path) => Path.GetFileName(path).StartsWith('.');

        // Hidden names are skipped by name, not by attribute, so the rule is the same on every system.
        private static readonly EnumerationOptions Visible = new() { AttributesToSkip = 0, IgnoreInaccessible = false, RecurseSubdirectories = false };
    }
}

/// <summary>Decoding of image files into 8-bit RGB (StbImageSharp), PIL's luminance conversion and ToTensor.</summary>
internal static class ImageDecoding
{
    private const string What = "image file";
    private const string Fix = "replace it with a PNG or JPEG image or remove it from the folder";

    /// <summary>The file decoded to 8-bit RGB (PIL's convert("RGB")).</summary>
    /// <exception cref="InvalidDataException">The file is not a PNG or JPEG image, or is corrupt or truncated.</exception>
    public static Image8 Rgb(string path)
    {
        byte[] bytes;
        using (var stream = InputFile.OpenRead(path, What, Fix))
        {
            bytes = new byte[stream.Length];
            stream.ReadExactly(bytes);
        }

        if (bytes.Length == 0)
            throw DataFormat.Error(path, $"the file is empty; {Fix}.");
        // stb_image reads past the end of a JPEG as zeros and returns a partial picture; PIL refuses
        // a JPEG whose last scan has no end-of-image marker (FF D9) after it as truncated, and so
        // does this reader. The last markers are compared because an EXIF thumbnail carries a
        // start-of-scan (FF DA) and an end-of-image of its own; entropy-coded data never holds either.
        if (bytes is [0xFF, 0xD8, ..] && bytes.AsSpan().LastIndexOf([(byte)0xFF, (byte)0xD9]) is int end && (end < 0 || end < bytes.AsSpan().LastIndexOf([(byte)0xFF, (byte)0xDA])))
            throw DataFormat.Error(path, $"the JPEG image is truncated (no end-of-image marker after its last scan); {Fix}.");
        ImageResult image;
        try
        {
            image = ImageResult.FromMemory(bytes, ColorComponents.RedGreenBlue);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A decoder that dies on a damaged file may throw any exception type: each becomes the file's error.
            throw DataFormat.Error(path, $"cannot be decoded as a PNG or JPEG image ({e.Message}): the file is corrupt, truncated or of another format; {Fix}.", e);
        }

        if (image.Width < 1 || image.Height < 1 || image.Data.Length != (long)image.Width * image.Height * 3)
            throw DataFormat.Error(path, $"decodes to {image.Width} x {image.Height} pixels with {image.Data.Length} bytes; {Fix}.");
        return new Image8(image.Height, image.Width, 3, image.Data);
    }

    /// <summary>The (height, width) in the file's header, without decoding the pixels.</summary>
    /// <exception cref="InvalidDataException">The header is not a PNG or JPEG image's.</exception>
    public static (int Height, int Width) Size(string path)
    {
        using var stream = InputFile.OpenRead(path, What, Fix);
        ImageInfo? info;
        try
        {
            info = ImageInfo.FromStream(stream);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A damaged header can throw from inside the decoder as well as return nothing.
            info = null;
        }

        if (info is not { Width: >= 1, Height: >= 1 } i)
            throw DataFormat.Error(path, $"the header is not a PNG or JPEG image's: the file is corrupt, truncated or of another format; {Fix}.");
        return (i.Height, i.Width);
    }

    /// <summary>PIL's convert("L") of an RGB image: L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16.</summary>
    public static Image8 Luminance(Image8 rgb)
    {
        int n = rgb.Height * rgb.Width;
        var l = new byte[n];
        var p = rgb.Pixels;
        for (int i = 0; i < n; i++)
            l[i] = (byte)((p[3 * i] * 19595 + p[3 * i + 1] * 38470 + p[3 * i + 2] * 7471 + 0x8000) >> 16);
        return new Image8(rgb.Height, rgb.Width, 1, l);
    }

    /// <summary>torchvision's ToTensor: (H, W, C) bytes to (C, H, W) floats byte / 255 (a float32 division).</summary>
    public static float[] ToTensor(Image8 image)
    {
        int c = image.Channels, plane = image.Height * image.Width;
        var x = new float[checked(c * plane)];
        var p = image.Pixels;
        for (int ch = 0; ch < c; ch++)
        {
            for (int i = 0; i < plane; i++)
                x[ch * plane + i] = p[i * c + ch] / 255f;
        }

        return x;
    }
}
