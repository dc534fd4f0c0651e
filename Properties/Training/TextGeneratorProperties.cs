using IlgpuTrain.Layers;
using IlgpuTrain.Optimizers;
using IlgpuTrain.Training;
using Embedding = IlgpuTrain.Layers.Embedding;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// Sampling text: temperature 0 and top-1 are the arg-max, top-k never leaves the k most likely tokens, the draws
/// follow softmax(logits / T) (measured on a fixed seed), and a language model's checkpoint carries its vocabulary,
/// so TextGenerator continues a prompt with the text it learned.
/// </summary>
public sealed class TextGeneratorProperties : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ilgpu-train-generate-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Gen<float[]> Logits() =>
        Gen.Choose(2, 12).SelectMany(n => Gen.Choose(-4000, 4000).Select(i => i / 1000f).ArrayOf(n));

    [Property(MaxTest = 200)]
    public Property Greedy_and_top_1_are_the_arg_max_and_top_k_stays_in_the_top_k() =>
        Prop.ForAll(Logits().ToArbitrary(), Gen.Choose(1, 12).ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), (z, k, seed) =>
        {
            var rng = new Random(seed);
            int argmax = Array.IndexOf(z, z.Max());
            float kth = z.OrderDescending().ElementAt(Math.Min(k, z.Length) - 1);
            var draws = Enumerable.Range(0, 50).Select(_ => TextGenerator.Sample(z, 1.0, k, rng)).ToList();
            return (TextGenerator.Sample(z, 0, null, rng) == argmax).Label("temperature 0")
                .And((TextGenerator.Sample(z, 0.7, 1, rng) == argmax || z[TextGenerator.Sample(z, 0.7, 1, rng)] == z[argmax]).Label("top-1"))
                .And(draws.All(i => z[i] >= kth).Label($"top-{k}: every draw among the k largest"));
        });

    [Fact]
    public void Draws_follow_the_tempered_softmax()
    {
        float[] z = [1f, 0f, -1f, 2f, 0.5f];
        foreach (double t in new[] { 1.0, 0.5, 2.0 })
        {
            var p = z.Select(v => Math.Exp(v / t)).ToArray();
            double sum = p.Sum();
            var rng = new Random(12345);
            var counts = new int[z.Length];
            const int Draws = 40000;
            for (int i = 0; i < Draws; i++)
                counts[TextGenerator.Sample(z, t, null, rng)]++;
            for (int i = 0; i < z.Length; i++)
                Assert.True(Math.Abs((counts[i] / (double)Draws) - (p[i] / sum)) < 0.01, $"T {t}: token {i} drawn {counts[i] / (double)Draws:F4}, softmax {p[i] / sum:F4}");
        }
    }

    [Fact]
    public void A_language_models_checkpoint_generates_the_text_it_learned()
    {
        // "abcdefg\n" repeated: every character determines the next, so greedy generation continues the cycle.
        string text = string.Concat(Enumerable.Repeat("abcdefg\n", 150));
        var corpus = new TextCorpus("letters", text, CharVocabulary.Of(text));
        var (train, val) = TextDataset.FromCorpus(corpus, blockSize: 8);
        int v = corpus.Vocabulary.Count;
        var model = new Embedding(v, 16) >> new Dense(v);
        string dir = Path.Combine(_dir, "ckpt");
        var callback = new CheckpointCallback(dir) { OutputNames = corpus.Vocabulary.Names };
        var trainer = new Trainer(Devices.Cpu, model, train.SampleShape, new Adam(3e-2), new TrainerOptions { Epochs = 20, BatchSize = 16, Seed = 4, Task = new LanguageModelTask(), Callbacks = [callback] });
        using (trainer.Fit(train, val).State)
        {
        }

        using var generator = TextGenerator.Load(Path.Combine(dir, "last.safetensors"), Devices.Cpu);
        Assert.Equal(8, generator.Context);
        Assert.Equal(corpus.Vocabulary.Symbols, generator.Vocabulary.Symbols);
        Assert.Equal("cdefg\nabcdefg\nabc", generator.Generate("c", 16, new SamplingOptions { Temperature = 0 }));
        string sampled = generator.Generate("ab", 30, new SamplingOptions { Temperature = 0.8, TopK = 3, Seed = 7 });
        Assert.Equal(sampled, generator.Generate("ab", 30, new SamplingOptions { Temperature = 0.8, TopK = 3, Seed = 7 }));
        Assert.Equal(32, sampled.Length);
        var e = Assert.Throws<ArgumentException>(() => generator.Generate("xyz", 3));
        Assert.Contains("\"x\"", e.Message);
        Assert.Throws<ArgumentException>(() => generator.Generate(string.Empty, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => generator.Generate("a", 3, new SamplingOptions { TopK = 0 }));
    }

    [Fact]
    public void A_classifier_checkpoint_is_refused_with_what_it_is()
    {
        var data = TrainerProperties.Blobs(32, 3, 1);
        string dir = Path.Combine(_dir, "cls");
        var trainer = new Trainer(Devices.Cpu, new Flatten() >> new Dense(3), data.SampleShape, new Sgd(0.1), new TrainerOptions { Epochs = 1, BatchSize = 16, Callbacks = [new CheckpointCallback(dir)] });
        using (trainer.Fit(data).State)
        {
        }

        var e = Assert.Throws<ArgumentException>(() => TextGenerator.Load(Path.Combine(dir, "last.safetensors"), Devices.Cpu));
        Assert.Contains("is a classification model", e.Message);
    }
}
