using System.Text;

namespace IlgpuTrain.Training;

/// <summary>
/// A character-level vocabulary: the distinct Unicode scalar values (runes) of a text, in ordinal
/// order, each a token id in [0, <see cref="Count"/>) (nanoGPT's shakespeare_char vocabulary, over
/// runes so that text beyond ASCII stays whole).
/// </summary>
public sealed class CharVocabulary
{
    private readonly Dictionary<int, int> _ids;

    /// <summary>A vocabulary of the given symbols, in id order.</summary>
    /// <param name="symbols">One Unicode scalar value per id, each once.</param>
    /// <exception cref="ArgumentException">A symbol repeats or is not a Unicode scalar value.</exception>
    public CharVocabulary(IReadOnlyList<int> symbols)
    {
        ArgumentNullException.ThrowIfNull(symbols);
        _ids = new Dictionary<int, int>(symbols.Count);
        for (int i = 0; i < symbols.Count; i++)
        {
            if (!Rune.IsValid(symbols[i]))
                throw new ArgumentException($"CharVocabulary: symbol {i} (U+{symbols[i]:X4}) is not a Unicode scalar value.", nameof(symbols));
            if (!_ids.TryAdd(symbols[i], i))
                throw new ArgumentException($"CharVocabulary: symbol U+{symbols[i]:X4} appears twice (ids {_ids[symbols[i]]} and {i}); each symbol has one id.", nameof(symbols));
        }

        Symbols = symbols;
    }

    /// <summary>The symbol (a Unicode scalar value) of each id.</summary>
    public IReadOnlyList<int> Symbols { get; }

    /// <summary>Number of tokens.</summary>
    public int Count => Symbols.Count;

    /// <summary>Each id's symbol as a string: a language model's output names in its checkpoint (<see cref="CheckpointCallback.OutputNames"/>), which <see cref="TextGenerator"/> reads back.</summary>
    public IReadOnlyList<string> Names => [.. Symbols.Select(s => new Rune(s).ToString())];

    /// <summary>The vocabulary of a text: its distinct runes in ordinal order.</summary>
    /// <param name="text">The text.</param>
    /// <returns>The vocabulary.</returns>
    public static CharVocabulary Of(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var set = new SortedSet<int>();
        foreach (var r in text.EnumerateRunes())
            set.Add(r.Value);
        return new CharVocabulary([.. set]);
    }

    /// <summary>The token ids of <paramref name="text"/>.</summary>
    /// <param name="text">Text whose every rune is in the vocabulary.</param>
    /// <returns>One id per rune.</returns>
    /// <exception cref="ArgumentException">A rune is not in the vocabulary; the message names it and its position.</exception>
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length);
        int at = 0;
        foreach (var r in text.EnumerateRunes())
        {
            if (!_ids.TryGetValue(r.Value, out int id))
                throw new ArgumentException($"CharVocabulary: \"{r}\" (U+{r.Value:X4}, rune {at} of the text) is not in the vocabulary of {Count} symbols; use symbols of the text the model was trained on.", nameof(text));
            ids.Add(id);
            at++;
        }

        return [.. ids];
    }

    /// <summary>The text of token ids.</summary>
    /// <param name="ids">Ids in [0, Count).</param>
    /// <returns>The text.</returns>
    /// <exception cref="ArgumentOutOfRangeException">An id is outside the vocabulary.</exception>
    public string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var sb = new StringBuilder();
        foreach (int id in ids)
        {
            if ((uint)id >= (uint)Count)
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"CharVocabulary: id {id} is outside [0, {Count}).");
            sb.Append(new Rune(Symbols[id]).ToString());
        }

        return sb.ToString();
    }
}

/// <summary>
/// A text as token ids and its vocabulary, read from a UTF-8 file or a folder of text files, with a fixed split
/// into training and validation text (the first and the last part, as nanoGPT splits its corpora).
/// </summary>
/// <param name="Name">A short name for messages.</param>
/// <param name="Text">The whole text.</param>
/// <param name="Vocabulary">The vocabulary of the whole text.</param>
public sealed record TextCorpus(string Name, string Text, CharVocabulary Vocabulary)
{
    /// <summary>
    /// Reads a UTF-8 text file, or every text file of a folder (recursively, in ordinal path order; files that are
    /// symbolic links, start with a dot, end in .dat, .gz or .zip, or hold a NUL byte are skipped), joined by newlines.
    /// The Debian package <c>fortunes</c> is such a folder: /usr/share/games/fortunes.
    /// </summary>
    /// <param name="path">The file or folder.</param>
    /// <returns>The corpus, with the vocabulary of its whole text.</returns>
    /// <exception cref="FileNotFoundException">No such file or folder.</exception>
    /// <exception cref="InvalidDataException">The file or folder holds no text, or a file is not valid UTF-8; the message names it.</exception>
    public static TextCorpus Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string[] files;
        if (File.Exists(path))
        {
            files = [path];
        }
        else if (Directory.Exists(path))
        {
            files = [.. Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories)
                .Where(f => !Path.GetFileName(f).StartsWith('.') && new FileInfo(f).LinkTarget is null
                    && Path.GetExtension(f).ToLowerInvariant() is not (".dat" or ".gz" or ".zip"))
                .Order(StringComparer.Ordinal)];
        }
        else
        {
            throw new FileNotFoundException($"{path}: no such text file or folder. For the fortunes corpus: sudo apt-get install fortunes (into /usr/share/games/fortunes).", path);
        }

        var utf8 = new UTF8Encoding(false, throwOnInvalidBytes: true);
        var parts = new List<string>();
        foreach (var f in files)
        {
            var bytes = File.ReadAllBytes(f);
            if (bytes.AsSpan().Contains((byte)0))
            {
                if (files.Length == 1)
                    throw new InvalidDataException($"{f}: holds NUL bytes, so it is not a text file; give a UTF-8 text file.");
                continue;
            }

            try
            {
                parts.Add(utf8.GetString(bytes).Replace("\r\n", "\n", StringComparison.Ordinal));
            }
            catch (DecoderFallbackException e)
            {
                throw new InvalidDataException($"{f}: not valid UTF-8 (byte {e.Index}); convert it to UTF-8 or leave it out.", e);
            }
        }

        string text = string.Join("\n", parts);
        if (text.Length == 0)
            throw new InvalidDataException($"{path}: holds no text ({files.Length} file(s) read); give a UTF-8 text file or a folder of them.");
        return new TextCorpus(Path.GetFileName(Path.TrimEndingDirectorySeparator(path)), text, CharVocabulary.Of(text));
    }

    /// <summary>
    /// The token ids of the first 1 − <paramref name="validationFraction"/> of the text (training) and of the rest
    /// (validation): a fixed split, the same on every run.
    /// </summary>
    /// <param name="validationFraction">The share of the text, by tokens, for validation, in (0, 1).</param>
    /// <returns>The two parts' token ids.</returns>
    public (int[] Train, int[] Validation) Split(double validationFraction = 0.1)
    {
        if (!(validationFraction > 0 && validationFraction < 1))
            throw new ArgumentOutOfRangeException(nameof(validationFraction), validationFraction, "TextCorpus.Split: the validation fraction must be in (0, 1), such as 0.1.");
        var ids = Vocabulary.Encode(Text);
        int cut = (int)Math.Round(ids.Length * (1 - validationFraction));
        return (ids[..cut], ids[cut..]);
    }
}

/// <summary>
/// Next-token prediction windows over token ids: sample i is the <see cref="BlockSize"/> ids from offset
/// i × <see cref="Stride"/> (the input, float ids that an Embedding takes) and the same window shifted by one (the
/// targets). With the default stride, the windows tile the text and an epoch reads it once.
/// </summary>
/// <remarks>
/// Labels (<see cref="IDataset.Gather"/>) are 0: the targets are the (T) next ids (<see cref="ITargetDataset"/>),
/// which <see cref="LanguageModelTask"/> trains on. <see cref="IDataset.Classes"/> is the vocabulary size.
/// </remarks>
public sealed class TextDataset : ITargetDataset
{
    private readonly int[] _ids;

    /// <summary>Windows of <paramref name="blockSize"/> over <paramref name="ids"/>.</summary>
    /// <param name="name">A short name for messages.</param>
    /// <param name="ids">The token ids.</param>
    /// <param name="vocabularySize">Ids are in [0, vocabularySize).</param>
    /// <param name="blockSize">Tokens per sample (the context length T).</param>
    /// <param name="stride">Offset between samples (default: the block size).</param>
    /// <exception cref="ArgumentException">The text is too short for one window, or an id is outside the vocabulary.</exception>
    public TextDataset(string name, int[] ids, int vocabularySize, int blockSize, int? stride = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentOutOfRangeException.ThrowIfLessThan(vocabularySize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        int s = stride ?? blockSize;
        ArgumentOutOfRangeException.ThrowIfLessThan(s, 1, nameof(stride));
        if (ids.Length < blockSize + 1)
            throw new ArgumentException($"{name}: {ids.Length} tokens are too few for one sample of {blockSize} tokens and its next token; use a smaller block size or more text.", nameof(ids));
        int bad = Array.FindIndex(ids, i => (uint)i >= (uint)vocabularySize);
        if (bad >= 0)
            throw new ArgumentException($"{name}: token {bad} is id {ids[bad]}, outside the vocabulary [0, {vocabularySize}).", nameof(ids));
        Name = name;
        _ids = ids;
        Classes = vocabularySize;
        BlockSize = blockSize;
        Stride = s;
        Count = ((ids.Length - blockSize - 1) / s) + 1;
        SampleShape = new Shape(blockSize);
        TargetShape = new Shape(blockSize);
    }

    /// <summary>
    /// The training and validation windows of a corpus (its fixed <see cref="TextCorpus.Split"/>). Validation windows
    /// tile its text; training windows start every <paramref name="trainStride"/> tokens, so that with a stride below
    /// the block size a model sees every phase of the text at every position, as nanoGPT's random offsets give it.
    /// </summary>
    /// <param name="corpus">The text.</param>
    /// <param name="blockSize">Tokens per sample.</param>
    /// <param name="validationFraction">The share of the text for validation.</param>
    /// <param name="trainStride">Offset between training windows (default: the block size).</param>
    /// <returns>The two data sets.</returns>
    public static (TextDataset Train, TextDataset Validation) FromCorpus(TextCorpus corpus, int blockSize, double validationFraction = 0.1, int? trainStride = null)
    {
        ArgumentNullException.ThrowIfNull(corpus);
        var (train, val) = corpus.Split(validationFraction);
        return (new TextDataset($"{corpus.Name} train", train, corpus.Vocabulary.Count, blockSize, trainStride),
                new TextDataset($"{corpus.Name} validation", val, corpus.Vocabulary.Count, blockSize));
    }

    /// <inheritdoc/>
    public string Name { get; }

    /// <inheritdoc/>
    public int Count { get; }

    /// <inheritdoc/>
    public Shape SampleShape { get; }

    /// <inheritdoc/>
    public Shape TargetShape { get; }

    /// <summary>The vocabulary size: ids are in [0, Classes).</summary>
    public int Classes { get; }

    /// <summary>Tokens per sample (T).</summary>
    public int BlockSize { get; }

    /// <summary>Offset between consecutive samples.</summary>
    public int Stride { get; }

    /// <summary>The tokens the windows read (the text's ids).</summary>
    public int Tokens => _ids.Length;

    /// <inheritdoc/>
    public void Gather(ReadOnlySpan<int> indices, Span<float> x, Span<int> labels)
    {
        int t = BlockSize;
        if (x.Length != (long)indices.Length * t || labels.Length != indices.Length)
            throw new ArgumentException($"{Name}.Gather: {indices.Length} samples need {(long)indices.Length * t} floats and {indices.Length} labels but got {x.Length} and {labels.Length}.", nameof(x));
        for (int k = 0; k < indices.Length; k++)
        {
            var window = _ids.AsSpan(Offset(indices[k]), t);
            var dst = x.Slice(k * t, t);
            for (int j = 0; j < t; j++)
                dst[j] = window[j];
            labels[k] = 0;
        }
    }

    /// <inheritdoc/>
    public void GatherTargets(ReadOnlySpan<int> indices, Span<float> targets)
    {
        int t = BlockSize;
        if (targets.Length != (long)indices.Length * t)
            throw new ArgumentException($"{Name}.GatherTargets: {indices.Length} samples of {t} targets need {(long)indices.Length * t} floats but got {targets.Length}.", nameof(targets));
        for (int k = 0; k < indices.Length; k++)
        {
            var window = _ids.AsSpan(Offset(indices[k]) + 1, t);
            var dst = targets.Slice(k * t, t);
            for (int j = 0; j < t; j++)
                dst[j] = window[j];
        }
    }

    /// <summary>The first <paramref name="count"/> samples (windows) only, over the tokens they read.</summary>
    /// <param name="count">Samples to keep, from 1 to <see cref="Count"/>.</param>
    /// <returns>The shorter data set (it shares nothing it could change).</returns>
    public TextDataset Take(int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, Count);
        return new TextDataset(Name, _ids[..(((count - 1) * Stride) + BlockSize + 1)], Classes, BlockSize, Stride);
    }

    private int Offset(int i) => (uint)i < (uint)Count ? i * Stride
        : throw new ArgumentOutOfRangeException(nameof(i), i, $"{Name}: sample index {i} is outside [0, {Count}).");
}
