using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// Training/ImageFolderDataset.cs: torchvision ImageFolder's listing (classes, class_to_idx,
/// samples), pixels as PIL's convert("RGB") then ToTensor, resize at load as PIL, lazy decoding,
/// the bounded cache, seeded splits, the train/val layout, and an error naming the file and the
/// fix for every way a folder can be wrong.
/// </summary>
public sealed class ImageFolderDatasetProperties : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("ilgpu-imagefolder-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string P(params string[] parts) => Path.Combine([_root, .. parts]);

    private static void Png(string path, int h = 2, int w = 3, byte value = 7) =>
        ImageFolders.WritePng(path, h, w, 3, ImageFolders.Solid(h, w, (value, value, value)));

    private static (float[] X, int[] Labels) All(IDataset d, params int[] indices)
    {
        indices = indices.Length > 0 ? indices : Enumerable.Range(0, d.Count).ToArray();
        var x = new float[indices.Length * d.SampleShape.Length];
        var y = new int[indices.Length];
        d.Gather(indices, x, y);
        return (x, y);
    }

    [Fact]
    public void Classes_and_samples_are_listed_as_torchvision_lists_them()
    {
        // Ordinal order puts "B" before "a"; hidden names and other extensions are skipped; folders
        // come in the order of their paths (sorted(os.walk(...))): a, a/sub, a/sub b, a/sub/deep,
        // since "sub" is a prefix of "sub b" and ' ' sorts before '/'.
        Png(P("b", "2.png"));
        Png(P("b", "10.PNG"));
        Png(P("a", "z.jpeg"));
        Png(P("a", "y.JPG"));
        Png(P("a", "sub", "deep", "x.png"));
        Png(P("a", "sub", "v.png"));
        Png(P("a", "sub b", "w.png"));
        Png(P("B", "only.png"));
        Png(P("a", ".hidden.png"));
        Png(P(".ipynb_checkpoints", "c.png"));
        File.WriteAllText(P("a", "notes.txt"), "not an image");
        File.WriteAllText(P("README.md"), "a file beside the class folders");

        var d = new ImageFolderDataset(_root);
        Assert.Equal(["B", "a", "b"], d.ClassNames);
        Assert.Equal(new Dictionary<string, int> { ["B"] = 0, ["a"] = 1, ["b"] = 2 }, d.ClassToIndex);
        var expected = new (string, int)[]
        {
            (P("B", "only.png"), 0),
            (P("a", "y.JPG"), 1),
            (P("a", "z.jpeg"), 1),
            (P("a", "sub", "v.png"), 1),
            (P("a", "sub b", "w.png"), 1),
            (P("a", "sub", "deep", "x.png"), 1),
            (P("b", "10.PNG"), 2),
            (P("b", "2.png"), 2),
        };
        Assert.Equal(expected, d.Samples);
        Assert.Equal(new Shape(3, 2, 3), d.SampleShape);
        Assert.Equal([1, 5, 2], d.LabelCounts());
        Assert.Equal([0, 1, 1, 1, 1, 1, 2, 2], All(d).Labels);
    }

    // PNGs made with Pillow 9.4.0 (palette, gray with alpha, RGBA; 3 x 2 pixels), base64 of the file,
    // with list(Image.open(f).convert("RGB").getdata()) and .convert("RGB").convert("L") flattened.
    private static readonly (string Name, string Png, byte[] Rgb, byte[] L)[] PilConverted =
    [
        ("palette", "iVBORw0KGgoAAAANSUhEUgAAAAMAAAACAgMAAADgGo6JAAAADFBMVEX/AAAAgP8KFB7IyADaXyEvAAAADElEQVR4nGOQYLgAAAEcAOn8lUkKAAAAAElFTkSuQmCC",
            [255, 0, 0, 0, 128, 255, 10, 20, 30, 200, 200, 0, 0, 128, 255, 255, 0, 0], [76, 104, 18, 177, 104, 76]),
        ("gray-alpha", "iVBORw0KGgoAAAANSUhEUgAAAAMAAAACCAQAAAA3fa6RAAAAFklEQVR4nGNg+J/CcKKB4T+7kREjIwAi1AQYDP244QAAAABJRU5ErkJggg==",
            [0, 0, 0, 100, 100, 100, 200, 200, 200, 255, 255, 255, 50, 50, 50, 1, 1, 1], [0, 100, 200, 255, 50, 1]),
        ("rgba", "iVBORw0KGgoAAAANSUhEUgAAAAMAAAACCAYAAACddGYaAAAAIklEQVR4nGNgZGJm+JVi9J+Tg72BgYGBgeH///9ccjZRJwBS5Qex2V6RtQAAAABJRU5ErkJggg==",
            [1, 2, 3, 250, 100, 50, 9, 8, 7, 0, 0, 0, 255, 255, 255, 30, 60, 90], [2, 139, 8, 0, 255, 54]),
    ];

    [Fact]
    public void Pixels_are_ToTensor_of_PILs_RGB_and_L_conversions()
    {
        foreach (var (name, png, _, _) in PilConverted)
            File.WriteAllBytes(Directory.CreateDirectory(P(name)).FullName + "/x.png", Convert.FromBase64String(png));
        var rgb = new ImageFolderDataset(_root);
        var gray = new ImageFolderDataset(_root, new ImageFolderOptions { Grayscale = true });
        Assert.Equal(new Shape(3, 2, 3), rgb.SampleShape);
        Assert.Equal(new Shape(1, 2, 3), gray.SampleShape);
        foreach (var (name, _, expectedRgb, expectedL) in PilConverted)
        {
            int i = rgb.ClassToIndex[name];
            // ToTensor: channel planes, byte / 255 in float32.
            var chw = Enumerable.Range(0, 3).SelectMany(c => Enumerable.Range(0, 6).Select(p => expectedRgb[p * 3 + c] / 255f)).ToArray();
            Assert.Equal(chw, All(rgb, i).X);
            Assert.Equal(expectedL.Select(v => v / 255f).ToArray(), All(gray, i).X);
        }
    }

    [Fact]
    public void A_resize_at_load_gives_PILs_pixels()
    {
        // The pattern image and Pillow's Image.BILINEAR resize to 4 x 3 of ImageTransformProperties.
        var pixels = new byte[5 * 7 * 3];
        for (int y = 0; y < 5; y++)
        {
            for (int x = 0; x < 7; x++)
                (pixels[(y * 7 + x) * 3], pixels[(y * 7 + x) * 3 + 1], pixels[(y * 7 + x) * 3 + 2]) = ((byte)((x * 37 + y * 91) % 256), (byte)((x * x * 13 + y * 7 + 50) % 256), (byte)((x * y * 29 + 200) % 256));
        }

        ImageFolders.WritePng(P("c", "pattern.png"), 5, 7, 3, pixels);
        byte[] pil = [58, 61, 201, 116, 115, 138, 162, 75, 139, 137, 57, 158, 137, 72, 133, 88, 126, 76, 117, 86, 130, 132, 68, 130, 88, 83, 133, 146, 137, 119, 109, 97, 96, 126, 79, 115];
        var d = new ImageFolderDataset(_root, new ImageFolderOptions { Transforms = [new ImageTransform.Resize(3)] });
        Assert.Equal(new Shape(3, 3, 4), d.SampleShape);
        var chw = Enumerable.Range(0, 3).SelectMany(c => Enumerable.Range(0, 12).Select(p => pil[p * 3 + c] / 255f)).ToArray();
        Assert.Equal(chw, All(d).X);
    }

    [Fact]
    public void Images_are_decoded_in_gather_not_when_the_folder_is_listed()
    {
        Png(P("a", "good.png"));
        File.WriteAllText(P("a", "broken.png"), "this is no PNG");
        // A fixed size needs no header: listing reads no file, so only gathering the broken one fails.
        var d = new ImageFolderDataset(_root, new ImageFolderOptions { Transforms = [new ImageTransform.Resize(2, 3)] });
        Assert.Equal(2, d.Count);
        var e = Assert.Throws<InvalidDataException>(() => All(d, 0));
        Assert.Contains(P("a", "broken.png"), e.Message);
        Assert.Contains("cannot be decoded", e.Message);
        Assert.Equal(Enumerable.Repeat(7 / 255f, 18), All(d, 1).X);
    }

    [Fact]
    public void The_cache_keeps_the_first_decoded_samples_up_to_its_bound()
    {
        for (int i = 0; i < 5; i++)
            Png(P("a", $"{i}.png"), value: (byte)i);
        var d = new ImageFolderDataset(_root, new ImageFolderOptions { CacheSamples = 2 });
        var (first, _) = All(d, 0, 1, 2, 3, 4);
        Assert.Equal(2, d.CachedSamples);
        // Change every file: cached samples 0 and 1 keep their decoded pixels, the others are decoded anew.
        for (int i = 0; i < 5; i++)
            Png(P("a", $"{i}.png"), value: (byte)(100 + i));
        var (again, _) = All(d.Split(0, seed: 0).Train, 0, 1, 2, 3, 4);
        Assert.Equal(first.AsSpan(0, 36).ToArray(), again.AsSpan(0, 36).ToArray());
        Assert.Equal(Enumerable.Range(2, 3).SelectMany(i => Enumerable.Repeat((100 + i) / 255f, 18)), again.Skip(36));
        Assert.Equal(2, d.CachedSamples);
    }

    [Property(MaxTest = 15)]
    public Property A_split_is_seeded_disjoint_complete_and_stratified_per_class() =>
        Prop.ForAll(Gen.ArrayOf(Gen.Choose(1, 9)).Where(a => a.Length is >= 1 and <= 4).ToArbitrary(), Gen.Elements(0.0, 0.2, 0.5, 1.0).ToArbitrary(), Gen.Choose(0, 100).ToArbitrary(), (sizes, fraction, seed) =>
        {
            string root = Directory.CreateTempSubdirectory("ilgpu-split-").FullName;
            try
            {
                for (int c = 0; c < sizes.Length; c++)
                {
                    for (int i = 0; i < sizes[c]; i++)
                        Png(Path.Combine(root, $"class{c}", $"{i}.png"), 1, 1);
                }

                var d = new ImageFolderDataset(root);
                var (train, val) = d.Split(fraction, (ulong)seed);
                var (train2, val2) = d.Split(fraction, (ulong)seed);
                var (plainTrain, plainVal) = d.Split(fraction, (ulong)seed, stratified: false);
                var trainPaths = train.Samples.Select(s => s.Path).ToArray();
                var valPaths = val.Samples.Select(s => s.Path).ToArray();
                var perClass = sizes.Select(n => (int)Math.Round(fraction * n, MidpointRounding.AwayFromZero)).ToArray();
                bool complete = trainPaths.Concat(valPaths).Order(StringComparer.Ordinal).SequenceEqual(d.Samples.Select(s => s.Path).Order(StringComparer.Ordinal));
                bool disjoint = !trainPaths.Intersect(valPaths).Any();
                bool seeded = train2.Samples.SequenceEqual(train.Samples) && val2.Samples.SequenceEqual(val.Samples);
                bool plain = plainVal.Count == (int)Math.Round(fraction * d.Count, MidpointRounding.AwayFromZero) && plainTrain.Count + plainVal.Count == d.Count;
                return complete.Label("union is the folder").And(disjoint.Label("disjoint")).And(seeded.Label("same seed, same split"))
                    .And(val.LabelCounts().SequenceEqual(perClass).Label($"per-class validation counts {string.Join(",", val.LabelCounts())}, expected {string.Join(",", perClass)}"))
                    .And(plain.Label("plain split size"));
            }
            finally
            {
                Directory.Delete(root, recursive: true);
            }
        });

    [Fact]
    public void Another_seed_draws_another_split()
    {
        for (int i = 0; i < 30; i++)
            Png(P(i % 2 == 0 ? "a" : "b", $"{i}.png"), 1, 1);
        var d = new ImageFolderDataset(_root);
        Assert.NotEqual(d.Split(0.3, 1).Validation.Samples, d.Split(0.3, 2).Validation.Samples);
        Assert.Equal(new[] { 10, 10 }, d.Split(0.3, 1).Train.LabelCounts());
    }

    [Fact]
    public void Train_and_val_folders_are_the_train_and_test_sets_else_a_stratified_fifth_is_held_out()
    {
        foreach (var split in new[] { "train", "val" })
        {
            foreach (var c in new[] { "cat", "dog" })
                Png(P(split, c, "1.png"));
        }

        Png(P("train", "dog", "2.png"));
        var (train, test, note) = ImageFolderDataset.LoadTrainTest(_root);
        Assert.Equal((3, 2), (train.Count, test.Count));
        Assert.Contains("val", note);

        Png(P("val", "fox", "1.png"));
        var e = Assert.Throws<InvalidDataException>(() => ImageFolderDataset.LoadTrainTest(_root));
        Assert.Contains("cat, dog, fox", e.Message);
        Assert.Contains("same class folders", e.Message);

        string flat = P("flat");
        for (int i = 0; i < 10; i++)
            Png(Path.Combine(flat, i < 5 ? "x" : "y", $"{i}.png"));
        var (rest, held, flatNote) = ImageFolderDataset.LoadTrainTest(flat, seed: 3);
        Assert.Equal([1, 1], held.LabelCounts());
        Assert.Equal([4, 4], rest.LabelCounts());
        Assert.Contains("held out", flatNote);
    }

    [Fact]
    public void A_missing_folder_a_file_no_classes_and_empty_classes_are_refused_naming_the_fix()
    {
        var missing = Assert.Throws<DataSetNotFoundException>(() => new ImageFolderDataset(P("nowhere")));
        Assert.Contains("nowhere", missing.Message);
        Assert.Contains("one subfolder of images per class", missing.Message);

        File.WriteAllText(P("file.png"), "x");
        var file = Assert.Throws<InputFileException>(() => new ImageFolderDataset(P("file.png")));
        Assert.Contains("not a folder", file.Message);

        Directory.CreateDirectory(P("empty"));
        var none = Assert.Throws<InvalidDataException>(() => new ImageFolderDataset(P("empty")));
        Assert.Contains("no class folders", none.Message);

        Png(P("some", "full", "1.png"));
        Directory.CreateDirectory(P("some", "bare"));
        Png(P("some", "hollow", ".hidden.png"));
        File.WriteAllText(P("some", "hollow", "readme.txt"), "x");
        var empty = Assert.Throws<InvalidDataException>(() => new ImageFolderDataset(P("some")));
        Assert.Contains("bare, hollow have no images", empty.Message);
        Assert.Contains(".png, .jpg, .jpeg", empty.Message);
    }

    [Fact]
    public void Images_of_different_sizes_without_a_resize_name_two_files_their_sizes_and_the_fix()
    {
        Png(P("a", "1.png"), 4, 6);
        Png(P("a", "2.png"), 4, 6);
        Png(P("b", "3.png"), 6, 4);
        var e = Assert.Throws<InvalidDataException>(() => new ImageFolderDataset(_root));
        Assert.Contains($"{P("a", "1.png")} is 6 x 4", e.Message);
        Assert.Contains($"{P("b", "3.png")} is 4 x 6", e.Message);
        Assert.Contains("add a Resize", e.Message);
        Assert.Contains("--image-size", e.Message);

        // Resize(4) gives 4 x 6 and 6 x 4: still two sizes; a square crop after it makes one.
        Assert.Throws<InvalidDataException>(() => new ImageFolderDataset(_root, new ImageFolderOptions { Transforms = [new ImageTransform.Resize(4)] }));
        var d = new ImageFolderDataset(_root, new ImageFolderOptions { Transforms = [new ImageTransform.Resize(4), new ImageTransform.CenterCrop(4)] });
        Assert.Equal(new Shape(3, 4, 4), d.SampleShape);
        Assert.Equal(3 * 48, All(d).X.Length);
    }

    [Fact]
    public void Corrupt_truncated_and_foreign_files_are_refused_naming_the_file()
    {
        var pixels = Gens.RandomBytes(5, 16 * 16 * 3);
        ImageFolders.WritePng(P("a", "ok.png"), 16, 16, 3, pixels);
        var smooth = Enumerable.Range(0, 256).SelectMany(i => new[] { (byte)(i % 16 * 16), (byte)(i / 16 * 16), (byte)128 }).ToArray();
        ImageFolders.WriteJpg(P("a", "ok.jpg"), 16, 16, smooth);
        byte[] png = File.ReadAllBytes(P("a", "ok.png"));
        byte[] jpg = File.ReadAllBytes(P("a", "ok.jpg"));
        File.WriteAllBytes(P("a", "cut.png"), png[..(png.Length / 2)]);
        File.WriteAllBytes(P("a", "cut.jpg"), jpg[..(jpg.Length * 2 / 3)]);
        File.WriteAllBytes(P("a", "cut-scan.jpg"), jpg[..^4]);
        File.WriteAllBytes(P("a", "gif.png"), "GIF89a"u8.ToArray());
        File.WriteAllBytes(P("a", "empty.jpeg"), []);
        var d = new ImageFolderDataset(_root, new ImageFolderOptions { Transforms = [new ImageTransform.CenterCrop(16)] });
        var names = d.Samples.Select(s => Path.GetFileName(s.Path)).ToList();
        foreach (var bad in new[] { "cut.png", "cut.jpg", "cut-scan.jpg", "gif.png", "empty.jpeg" })
        {
            var e = Assert.Throws<InvalidDataException>(() => All(d, names.IndexOf(bad)));
            Assert.Contains(P("a", bad), e.Message);
            Assert.Contains("replace it", e.Message);
        }

        var (x, _) = All(d, names.IndexOf("ok.png"), names.IndexOf("ok.jpg"));
        var chw = Enumerable.Range(0, 3).SelectMany(c => Enumerable.Range(0, 256).Select(p => pixels[p * 3 + c] / 255f)).ToArray();
        Assert.Equal(chw, x[..768]);
        // A smooth JPEG at quality 90 decodes to within a few levels of what was written.
        var smoothChw = Enumerable.Range(0, 3).SelectMany(c => Enumerable.Range(0, 256).Select(p => smooth[p * 3 + c] / 255f)).ToArray();
        Assert.InRange(x[768..].Zip(smoothChw, (a, b) => Math.Abs(a - b)).Average(), 0, 4 / 255.0);

        // Without a fixed size the headers are read at listing, so a foreign file fails there, by name.
        var e2 = Assert.Throws<InvalidDataException>(() => new ImageFolderDataset(_root));
        Assert.Contains("header", e2.Message);
    }
}
