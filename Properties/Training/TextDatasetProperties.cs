using IlgpuTrain.Layers;
using IlgpuTrain.Optimizers;
using IlgpuTrain.Training;
using Embedding = IlgpuTrain.Layers.Embedding;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// Text as training data: a character vocabulary that round-trips any text, a corpus read from a file or a folder
/// (fortunes' layout: index files and symbolic links skipped), a fixed split, next-token windows whose targets are
/// the inputs shifted by one, and a language-model task whose bits per token equal a float64 reference and reach
/// zero on a text that a bigram model predicts exactly.
/// </summary>
public sealed class TextDatasetProperties : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ilgpu-train-text-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Property(MaxTest = 100)]
    public Property A_vocabulary_of_a_text_encodes_and_decodes_it_unchanged() =>
        Prop.ForAll(TextGen().ToArbitrary(), text =>
        {
            var v = CharVocabulary.Of(text);
            var ids = v.Encode(text);
            return (v.Decode(ids) == text).Label("round trip")
                .And(ids.All(i => i >= 0 && i < v.Count).Label("ids in range"))
                .And(v.Symbols.SequenceEqual(v.Symbols.Order()).Label("ordinal order"))
                .And((ids.Length == text.EnumerateRunes().Count()).Label("one id per rune"));
        });

    // Text of ASCII, Latin-1, CJK and astral runes (emoji), as strings of whole runes.
    private static Gen<string> TextGen() =>
        Gen.Choose(0, 3).SelectMany(kind => kind switch
        {
            0 => Gen.Choose(32, 126),
            1 => Gen.Choose(0xA0, 0x17F),
            2 => Gen.Choose(0x4E00, 0x4FFF),
            _ => Gen.Choose(0x1F600, 0x1F64F),
        }).ListOf().Select(runes => string.Concat(runes.Select(r => new System.Text.Rune(r).ToString())));

    [Fact]
    public void Encode_names_a_symbol_outside_the_vocabulary()
    {
        var v = CharVocabulary.Of("abc");
        Assert.Equal([0, 1, 2, 0], v.Encode("abca"));
        var e = Assert.Throws<ArgumentException>(() => v.Encode("abzc"));
        Assert.Contains("\"z\" (U+007A, rune 2 of the text) is not in the vocabulary of 3 symbols", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => v.Decode([3]));
        Assert.Equal("é😀", CharVocabulary.Of("😀é").Decode([0, 1]));
    }

    [Property(MaxTest = 60)]
    public Property Windows_tile_the_text_and_targets_are_the_inputs_shifted_by_one() =>
        Prop.ForAll(Gen.Choose(2, 300).ToArbitrary(), Gen.Choose(1, 20).ToArbitrary(), Gen.Choose(1, 25).ToArbitrary(), (len, block, stride) =>
        {
            var r = new Random(len * 31 + block);
            int v = 7;
            var ids = Enumerable.Range(0, len).Select(_ => r.Next(v)).ToArray();
            if (len < block + 1)
            {
                var thrown = Record.Exception(() => new TextDataset("t", ids, v, block, stride));
                return (thrown is ArgumentException a && a.Message.Contains("too few for one sample", StringComparison.Ordinal)).Label("a text shorter than a window is refused");
            }

            var data = new TextDataset("t", ids, v, block, stride);
            int n = data.Count;
            var all = Enumerable.Range(0, n).ToArray();
            var x = new float[n * block];
            var y = new float[n * block];
            data.Gather(all, x, new int[n]);
            data.GatherTargets(all, y);
            bool windows = Enumerable.Range(0, n).All(i => Enumerable.Range(0, block).All(j => x[(i * block) + j] == ids[(i * stride) + j] && y[(i * block) + j] == ids[(i * stride) + j + 1]));
            bool count = (n - 1) * stride + block + 1 <= len && n * stride + block + 1 > len;
            int k = (len % n) + 1;
            var head = data.Take(k);
            var hx = new float[k * block];
            head.Gather(all[..k], hx, new int[k]);
            bool take = head.Count == k && hx.SequenceEqual(x[..(k * block)]);
            return windows.Label("x = ids[i s + j], y = ids[i s + j + 1]").And(count.Label($"{n} windows: the last that fits"))
                .And(take.Label($"Take({k}) keeps the first {k} windows"));
        });

    [Fact]
    public void A_corpus_folder_reads_its_text_files_in_order_and_skips_indexes_links_and_binaries()
    {
        string folder = Path.Combine(_dir, "fortunes");
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "b"), "second\n%\nthird\n");
        File.WriteAllText(Path.Combine(folder, "a"), "first\n");
        File.WriteAllBytes(Path.Combine(folder, "a.dat"), [0, 0, 0, 2, 1, 2]);
        File.WriteAllBytes(Path.Combine(folder, "binary"), [65, 0, 66]);
        File.CreateSymbolicLink(Path.Combine(folder, "a.u8"), "a");
        var c = TextCorpus.Load(folder);
        Assert.Equal("first\n\nsecond\n%\nthird\n", c.Text);
        Assert.Equal("fortunes", c.Name);
        var (train, val) = c.Split(0.25);
        Assert.Equal(c.Vocabulary.Encode(c.Text), train.Concat(val).ToArray());
        Assert.Equal((int)Math.Round(c.Text.Length * 0.75), train.Length);

        File.WriteAllBytes(Path.Combine(_dir, "latin1.txt"), [0x63, 0x61, 0x66, 0xE9]);
        var e = Assert.Throws<InvalidDataException>(() => TextCorpus.Load(Path.Combine(_dir, "latin1.txt")));
        Assert.Contains("latin1.txt: not valid UTF-8 (byte 3)", e.Message);
        Assert.Throws<FileNotFoundException>(() => TextCorpus.Load(Path.Combine(_dir, "none")));
    }

    [Fact]
    public void A_bigram_model_reaches_the_texts_conditional_entropy_and_the_metric_equals_a_float64_reference()
    {
        // "the cat " repeated: "h", "e", "c" and "a" determine the next character; each of the two "t"s is followed
        // by "h" or " ", and each of the two spaces by "c" or "t". A model of the current token alone (Embedding
        // then Dense per position) can at best reach H(next | current) = 4/8 x 1 bit = 0.5 bits per character,
        // with a next-character accuracy of 4/8 + 4/8 x 1/2 = 0.75.
        string text = string.Concat(Enumerable.Repeat("the cat ", 200));
        var corpus = new TextCorpus("cats", text, CharVocabulary.Of(text));
        var (train, val) = TextDataset.FromCorpus(corpus, blockSize: 16);
        int v = corpus.Vocabulary.Count;
        var model = new Embedding(v, 16) >> new Dense(v);
        var trainer = new Trainer(Devices.Cpu, model, train.SampleShape, new Adam(3e-2), new TrainerOptions { Epochs = 30, BatchSize = 16, Seed = 2, Task = new LanguageModelTask() });
        using var final = trainer.Fit(train, val).State;
        var eval = trainer.Evaluate(final.Params, final.State, val);
        Assert.True(Math.Abs(eval.Metrics["bits_per_token"] - 0.5) < 0.02, $"bits per character {eval.Metrics["bits_per_token"]:F4}, the entropy 0.5");

        // The metric against float64 cross-entropy of the model's own logits, and the loss as the mean over tokens.
        var n = val.Count;
        var x = new float[n * 16];
        var y = new float[n * 16];
        var all = Enumerable.Range(0, n).ToArray();
        val.Gather(all, x, new int[n]);
        val.GatherTargets(all, y);
        float[] logits;
        using (var step = Devices.Cpu.BeginStep())
            logits = model.Predict(final.Params, final.State, step.Upload(x, new Shape(n, 16))).ToHost();
        double nll = 0, hits = 0;
        for (int row = 0; row < n * 16; row++)
        {
            var z = logits.AsSpan(row * v, v);
            float target = z[(int)y[row]];
            int above = 0;
            foreach (float q in z)
                above += q > target ? 1 : 0;
            hits += above == 0 ? 1 : 0;
            double max = double.NegativeInfinity;
            foreach (float q in z)
                max = Math.Max(max, q);
            double sum = 0;
            foreach (float q in z)
                sum += Math.Exp(q - max);
            nll += max + Math.Log(sum) - z[(int)y[row]];
        }

        double bits = nll / (n * 16) / Math.Log(2);
        Assert.Equal(hits / (n * 16), eval.Metrics["accuracy"], 1e-9);
        Assert.True(Math.Abs(eval.Metrics["accuracy"] - 0.75) < 0.02, $"accuracy {eval.Metrics["accuracy"]:F4}, the best 0.75");
        Assert.True(Math.Abs(bits - eval.Metrics["bits_per_token"]) <= 1e-4 + 1e-3 * bits, $"bits {eval.Metrics["bits_per_token"]} against the float64 reference {bits}");
        Assert.True(Math.Abs(eval.Loss - (nll / (n * 16))) <= 1e-4 + 1e-3 * eval.Loss, $"loss {eval.Loss} against the mean token cross-entropy {nll / (n * 16)}");
    }

    [Fact]
    public void The_task_refuses_a_model_or_data_of_the_wrong_shape()
    {
        var ids = Enumerable.Range(0, 100).Select(i => i % 5).ToArray();
        var data = new TextDataset("t", ids, 5, 8);
        var task = new LanguageModelTask();
        var e = Assert.Throws<LayerShapeException>(() => new Trainer(Devices.Cpu, new Embedding(5, 4) >> new Flatten() >> new Dense(5), data.SampleShape, new Adam(1e-2), new TrainerOptions { Task = task }));
        Assert.Contains("a language model must output (positions, vocabulary) logits per sample", e.Message);
        var small = new Trainer(Devices.Cpu, new Embedding(5, 4) >> new Dense(3), data.SampleShape, new Adam(1e-2), new TrainerOptions { Task = task, Epochs = 1 });
        var e2 = Assert.ThrowsAny<ArgumentException>(() => small.Fit(data));
        Assert.Contains("make its last layer Dense(5)", e2.Message);
    }
}

/// <summary>Debian's fortunes as a corpus: the real text the language-model recipe trains on.</summary>
public sealed class FortunesCorpusProperties
{
    /// <summary>Where the package puts its text.</summary>
    public const string Folder = "/usr/share/games/fortunes";

    [FortunesFact]
    public void Debians_fortunes_read_as_one_text_of_its_43_files_without_indexes_or_links()
    {
        var c = TextCorpus.Load(Folder);
        var files = Directory.EnumerateFiles(Folder).Where(f => new FileInfo(f).LinkTarget is null && !f.EndsWith(".dat", StringComparison.Ordinal)).ToList();
        long bytes = files.Sum(f => new FileInfo(f).Length);
        Assert.True(c.Text.Length > 2_000_000 && c.Text.Length <= bytes + files.Count, $"{c.Text.Length} characters from {files.Count} files of {bytes} bytes");
        Assert.DoesNotContain('\0', c.Text);
        Assert.InRange(c.Vocabulary.Count, 90, 200);
        Assert.Contains("%\n", c.Text, StringComparison.Ordinal);
        var (train, val) = TextDataset.FromCorpus(c, blockSize: 128);
        Assert.Equal(c.Vocabulary.Encode(c.Text).Length - (int)Math.Round(c.Vocabulary.Encode(c.Text).Length * 0.9), val.Tokens);
        Assert.Equal(c.Vocabulary.Count, train.Classes);
    }
}

/// <summary>A fact that reads Debian's fortunes: skipped, with the reason, where the package is not installed.</summary>
public sealed class FortunesFactAttribute : FactAttribute
{
    /// <summary>Skips when /usr/share/games/fortunes is missing.</summary>
    public FortunesFactAttribute()
    {
        if (!Directory.Exists(FortunesCorpusProperties.Folder))
            Skip = $"{FortunesCorpusProperties.Folder} is missing: apt-get install fortunes (CI does).";
    }
}
