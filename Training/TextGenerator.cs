namespace IlgpuTrain.Training;

/// <summary>How <see cref="TextGenerator.Generate"/> picks each next token.</summary>
public sealed record SamplingOptions
{
    /// <summary>Divides the logits before the softmax (1: the model's distribution; lower is more conservative); 0 picks the arg-max (greedy).</summary>
    public double Temperature { get; init; } = 1.0;

    /// <summary>Samples among the K most likely tokens only (ties at the K-th logit kept), or null for all (nanoGPT's top_k).</summary>
    public int? TopK { get; init; }

    /// <summary>The seed of the draws: the same seed, prompt and model give the same text.</summary>
    public ulong Seed { get; init; }

    /// <summary>Throws when a value is out of range, naming it and the fix.</summary>
    public void Validate()
    {
        if (!(Temperature >= 0 && double.IsFinite(Temperature)))
            throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, "The temperature must be 0 (greedy) or a positive number such as 0.8.");
        if (TopK is < 1)
            throw new ArgumentOutOfRangeException(nameof(TopK), TopK, "Top-k must be at least 1 (or null for every token).");
    }
}

/// <summary>
/// Samples text from a language model (a checkpoint trained with <see cref="LanguageModelTask"/>, whose output names
/// are its vocabulary): autoregressively, each step running the model in Eval mode on the last
/// min(length, T) tokens (T the model's context) and drawing the next token from the last position's logits.
/// </summary>
public sealed class TextGenerator : IDisposable
{
    private readonly LoadedModel _model;
    private readonly Device _device;

    /// <summary>A generator over a loaded language model; it takes ownership of <paramref name="model"/>.</summary>
    /// <param name="model">The model, its weights, and its vocabulary as output names.</param>
    /// <param name="device">The device the weights live on.</param>
    /// <exception cref="ArgumentException">The model is not a language model with its vocabulary.</exception>
    public TextGenerator(LoadedModel model, Device device)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(device);
        var saved = model.Model;
        if (saved.Task.Kind != ModelTaskKind.LanguageModel || saved.OutputNames is null || saved.InputShape.Rank != 1)
            throw new ArgumentException($"TextGenerator: the checkpoint's model is a {ModelTask.NameOf(saved.Task.Kind)} model of input {saved.InputShape}{(saved.OutputNames is null ? " without a vocabulary" : string.Empty)}; generate from a language model (trained with LanguageModelTask on a TextDataset).", nameof(model));
        _model = model;
        _device = device;
        Vocabulary = new CharVocabulary([.. saved.OutputNames.Select(SymbolOf)]);
        Context = saved.InputShape[0];
    }

    /// <summary>The vocabulary the model predicts over.</summary>
    public CharVocabulary Vocabulary { get; }

    /// <summary>The model's context: at most this many tokens go into each step.</summary>
    public int Context { get; }

    /// <summary>A generator for the language model a checkpoint carries.</summary>
    /// <param name="path">The checkpoint.</param>
    /// <param name="device">Where to run.</param>
    /// <param name="averaged">Use the averaged weights (EMA or SWA).</param>
    /// <returns>The generator; dispose it to free the weights.</returns>
    public static TextGenerator Load(string path, Device device, bool averaged = false)
    {
        var model = ModelFile.Load(path, device, averaged);
        try
        {
            return new TextGenerator(model, device);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The prompt followed by <paramref name="tokens"/> sampled tokens.</summary>
    /// <param name="prompt">Text in the model's vocabulary (at least one symbol).</param>
    /// <param name="tokens">How many tokens to add.</param>
    /// <param name="options">Temperature, top-k and seed; null for the defaults.</param>
    /// <returns>The prompt and its continuation.</returns>
    /// <exception cref="ArgumentException">The prompt is empty or holds a symbol outside the vocabulary (named).</exception>
    public string Generate(string prompt, int tokens, SamplingOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        options ??= new SamplingOptions();
        options.Validate();
        var ids = new List<int>(Vocabulary.Encode(prompt));
        if (ids.Count == 0)
            throw new ArgumentException("TextGenerator: the prompt is empty; give at least one character of the training text, such as a newline.", nameof(prompt));
        var rng = new Random(unchecked((int)(options.Seed ^ (options.Seed >> 32))));
        int v = Vocabulary.Count;
        for (int i = 0; i < tokens; i++)
        {
            int t = Math.Min(ids.Count, Context);
            var window = ids.GetRange(ids.Count - t, t).Select(id => (float)id).ToArray();
            float[] logits;
            using (var step = _device.BeginStep())
                logits = _model.Model.Layer.Predict(_model.Params, _model.State, step.Upload(window, new Shape(1, t))).ToHost();
            ids.Add(Sample(logits.AsSpan((t - 1) * v, v), options.Temperature, options.TopK, rng));
        }

        return Vocabulary.Decode(ids);
    }

    /// <summary>
    /// One draw from softmax(logits / temperature) restricted to the top-k logits (all ties at the k-th kept),
    /// computed in float64; temperature 0 is the arg-max (the first on ties).
    /// </summary>
    /// <param name="logits">One position's logits.</param>
    /// <param name="temperature">0 (greedy) or positive.</param>
    /// <param name="topK">K, or null for all.</param>
    /// <param name="rng">The source of the draw.</param>
    /// <returns>The token id.</returns>
    public static int Sample(ReadOnlySpan<float> logits, double temperature, int? topK, Random rng)
    {
        ArgumentNullException.ThrowIfNull(rng);
        if (logits.Length == 0)
            throw new ArgumentException("TextGenerator.Sample: no logits.", nameof(logits));
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
            best = logits[i] > logits[best] ? i : best;
        if (temperature == 0)
            return best;
        float cutoff = float.NegativeInfinity;
        if (topK is int k && k < logits.Length)
        {
            var sorted = logits.ToArray();
            Array.Sort(sorted);
            cutoff = sorted[^k];
        }

        double max = logits[best], sum = 0;
        var p = new double[logits.Length];
        for (int i = 0; i < p.Length; i++)
            sum += p[i] = logits[i] >= cutoff ? Math.Exp((logits[i] - max) / temperature) : 0;
        double u = rng.NextDouble() * sum, acc = 0;
        for (int i = 0; i < p.Length; i++)
        {
            acc += p[i];
            if (u < acc)
                return i;
        }

        return best;
    }

    /// <summary>Frees the weights.</summary>
    public void Dispose() => _model.Dispose();

    private static int SymbolOf(string name)
    {
        var e = name.EnumerateRunes().GetEnumerator();
        if (!e.MoveNext())
            throw new ArgumentException("TextGenerator: the vocabulary holds an empty symbol.", nameof(name));
        int value = e.Current.Value;
        if (e.MoveNext())
            throw new ArgumentException($"TextGenerator: the vocabulary symbol \"{name}\" is more than one character; a character vocabulary has one per token.", nameof(name));
        return value;
    }
}
