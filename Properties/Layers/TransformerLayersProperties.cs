using IlgpuTrain.Layers;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Layers;

/// <summary>
/// The Transformer layers against PyTorch: MultiheadAttention and TransformerBlock load nn.MultiheadAttention's and
/// nn.TransformerEncoderLayer's state_dicts strictly (the same names and shapes), and their eval forward, input
/// gradient and parameter gradients equal PyTorch's float64 ones on the fixture that make_transformer.py wrote.
/// </summary>
public sealed class TransformerLayersProperties
{
    private static readonly SafeTensorsFile Fixture = SafeTensors.Load(Path.Combine(AppContext.BaseDirectory, "Fixtures", "transformer_io.safetensors"));

    private static Layer Build(string name) => name switch
    {
        "mha" => new MultiheadAttention(16, 4),
        "mha_causal" => new MultiheadAttention(16, 4, Causal: true),
        "enc_post" => new TransformerBlock(16, 4, 32, Dropout: 0, NormFirst: false, Causal: false, Activation: FeedForwardActivation.Gelu),
        _ => new TransformerBlock(16, 4, 32, Dropout: 0, NormFirst: true, Causal: true, Activation: FeedForwardActivation.Gelu),
    };

    public static TheoryData<string> Cases => new() { "mha", "mha_causal", "enc_post", "enc_pre" };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Forward_and_gradients_equal_pytorchs(string name)
    {
        var layer = Build(name);
        var sample = new Shape(5, 16);
        foreach (var device in Devices.All)
        {
            var (p0, s0) = layer.Init(device, sample, Rng.Create(0));
            using (p0)
            using (s0)
            {
                // Strict: every parameter of the layer is in PyTorch's state_dict under the same name, and nothing else is.
                string prefix = name + "/";
                var loaded = StateDict.Load(Fixture, p0, s0, new StateDictOptions
                {
                    MapKey = k => k.StartsWith(prefix, StringComparison.Ordinal) && k[prefix.Length..] is var rest && rest is not ("x" or "y" or "dy" or "dx") && !rest.StartsWith("grad/", StringComparison.Ordinal) ? rest : null,
                });
                using (loaded.Params)
                using (loaded.State)
                {
                    var host = loaded.Params.ToHost();
                    var parameters = host.ToDictionary(kv => kv.Key, kv => (kv.Value.Shape.ToArray(), kv.Value.Data));
                    float[] x = Fixture.Find(prefix + "x")!.ConvertToFloat32();
                    float[] dy = Fixture.Find(prefix + "dy")!.ConvertToFloat32();
                    var (y, grads) = LayerGradCheck.Vjp(device, layer, parameters, loaded.State, new Shape(2, 5, 16), x, dy, Mode.Eval);
                    Close(y, Fixture.Find(prefix + "y")!, $"{name} forward on {Devices.Describe(device)}");
                    Close(grads[LayerGradCheck.InputName], Fixture.Find(prefix + "dx")!, $"{name} dx on {Devices.Describe(device)}");
                    foreach (var key in parameters.Keys)
                        Close(grads[key], Fixture.Find(prefix + "grad/" + key)!, $"{name} d{key} on {Devices.Describe(device)}");
                }
            }
        }
    }

    private static void Close(float[] got, SafeTensor expected, string what)
    {
        var e = expected.ConvertToFloat32();
        Assert.Equal(e.Length, got.Length);
        double scale = Math.Max(1, e.Max(v => Math.Abs((double)v)));
        double worst = 0;
        for (int i = 0; i < e.Length; i++)
            worst = Math.Max(worst, Math.Abs(got[i] - (double)e[i]));
        Assert.True(worst <= 1e-5 * scale, $"{what}: largest difference {worst:G3} (scale {scale:G3})");
    }
}

/// <summary>PositionalEmbedding: the sinusoids' known values, and the learned table's forward and gradient.</summary>
public sealed class PositionalEmbeddingProperties
{
    [Fact]
    public void Sinusoids_have_vaswanis_values()
    {
        var p = PositionalEmbedding.Sinusoids(3, 4);
        Assert.Equal([0f, 1f, 0f, 1f], p[..4]);
        Assert.Equal((float)Math.Sin(1), p[4]);
        Assert.Equal((float)Math.Cos(1), p[5]);
        Assert.Equal((float)Math.Sin(2 / 100.0), p[10]);
        Assert.Equal((float)Math.Cos(2 / 100.0), p[11]);
    }

    [Property(MaxTest = 20)]
    public Property The_table_is_added_at_each_position_and_its_gradient_sums_over_the_batch() =>
        Prop.ForAll(Gen.Choose(1, 6).ToArbitrary(), Gen.Choose(1, 4).ToArbitrary(), Gen.Elements(true, false).ToArbitrary(), (t, n, learned) =>
        {
            const int Max = 6, D = 3;
            var layer = new PositionalEmbedding(Max, D, learned);
            var r = new Random((t * 10) + n);
            var x = Enumerable.Range(0, n * t * D).Select(_ => (float)r.NextDouble()).ToArray();
            var dy = Enumerable.Range(0, n * t * D).Select(_ => (float)r.NextDouble()).ToArray();
            var table = learned ? Enumerable.Range(0, Max * D).Select(_ => (float)r.NextDouble()).ToArray() : PositionalEmbedding.Sinusoids(Max, D);
            var parameters = learned ? new Dictionary<string, (int[], float[])> { ["weight"] = ([Max, D], table) } : [];
            var (p0, s0) = layer.Init(Devices.Cpu, new Shape(t, D), Rng.Create(0));
            using (p0)
            using (s0)
            {
                var (y, grads) = LayerGradCheck.Vjp(Devices.Cpu, layer, parameters, s0, new Shape(n, t, D), x, dy, Mode.Eval);
                bool forward = Enumerable.Range(0, n * t * D).All(i => y[i] == x[i] + table[i % (t * D)]);
                bool dx = grads[LayerGradCheck.InputName].SequenceEqual(dy);
                bool dw = !learned || Enumerable.Range(0, Max * D).All(i => Math.Abs(grads["weight"][i] - (i < t * D ? Enumerable.Range(0, n).Sum(b => (double)dy[(b * t * D) + i]) : 0)) < 1e-5);
                return forward.Label("y = x + P").And(dx.Label("dx = dy")).And(dw.Label("dP = sum of dy over the batch, 0 past T"));
            }
        });
}

/// <summary>
/// TransformerLM: weight tying gives the shared matrix the sum of both uses' gradients, and a small model learns a
/// text that its context determines, through the Trainer, to near zero bits per character, then generates it.
/// </summary>
public sealed class TransformerLMProperties : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ilgpu-train-lm-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void A_tied_head_gets_the_sum_of_the_embeddings_and_the_heads_gradients()
    {
        var tied = new TransformerLM(7, 6, 8, 2, 1, 16, Dropout: 0);
        var untied = tied with { TieWeights = false };
        var sample = new Shape(5);
        var (pt, st) = tied.Init(Devices.Cpu, sample, Rng.Create(3));
        var (pu, su) = untied.Init(Devices.Cpu, sample, Rng.Create(3));
        using (pt)
        using (st)
        using (pu)
        using (su)
        {
            var tiedHost = pt.ToHost().ToDictionary(kv => kv.Key, kv => (kv.Value.Shape.ToArray(), kv.Value.Data));
            var untiedHost = new Dictionary<string, (int[], float[])>();
            foreach (var kv in pu.ToHost())
                untiedHost[kv.Key] = kv.Key == "head.weight" ? tiedHost["tok_emb.weight"] : tiedHost[kv.Key];
            var r = new Random(1);
            float[] x = [1, 4, 0, 6, 2, 3, 3, 5, 1, 0];
            var dy = Enumerable.Range(0, 2 * 5 * 7).Select(_ => (float)(r.NextDouble() - 0.5)).ToArray();
            var (yt, gt) = LayerGradCheck.Vjp(Devices.Cpu, tied, tiedHost, st, new Shape(2, 5), x, dy, Mode.Eval);
            var (yu, gu) = LayerGradCheck.Vjp(Devices.Cpu, untied, untiedHost, su, new Shape(2, 5), x, dy, Mode.Eval);
            Assert.Equal(yu, yt);
            var sum = gu["tok_emb.weight"].Zip(gu["head.weight"], (a, b) => a + b).ToArray();
            for (int i = 0; i < sum.Length; i++)
                Assert.True(Math.Abs(sum[i] - gt["tok_emb.weight"][i]) <= 1e-6, $"element {i}: tied {gt["tok_emb.weight"][i]}, embedding + head {sum[i]}");
            Assert.DoesNotContain(pt.Layout.Params, p => p.Path.StartsWith("head", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void A_small_model_learns_a_text_its_context_determines_and_generates_it()
    {
        // "the cat " repeated: one previous character leaves 0.5 bits per character (see TextDatasetProperties),
        // two determine the next; a causal Transformer with a context of 16 can reach near zero. Training windows
        // start at every offset (stride 3, coprime to the period 8), so every phase meets every position, as it must
        // for generation past the context, where the window slides.
        string text = string.Concat(Enumerable.Repeat("the cat ", 100));
        var corpus = new TextCorpus("cats", text, CharVocabulary.Of(text));
        var (train, val) = TextDataset.FromCorpus(corpus, blockSize: 16, trainStride: 3);
        var model = new TransformerLM(corpus.Vocabulary.Count, 16, 32, 4, 2, 64, Dropout: 0);
        string dir = Path.Combine(_dir, "ckpt");
        var trainer = new Trainer(Devices.Cpu, model, train.SampleShape, new IlgpuTrain.Optimizers.AdamW(3e-3), new TrainerOptions
        {
            Epochs = 12, BatchSize = 16, Seed = 5, Task = new LanguageModelTask(),
            Callbacks = [new CheckpointCallback(dir) { OutputNames = corpus.Vocabulary.Names }],
        });
        using (var final = trainer.Fit(train, val).State)
        {
            var eval = trainer.Evaluate(final.Params, final.State, val);
            Assert.True(eval.Metrics["bits_per_token"] < 0.1, $"bits per character {eval.Metrics["bits_per_token"]:F4}; a bigram model cannot go below 0.5");
        }

        using var generator = TextGenerator.Load(Path.Combine(dir, "last.safetensors"), Devices.Cpu);
        Assert.Equal("the cat the cat the cat the cat the cat", generator.Generate("the c", 34, new SamplingOptions { Temperature = 0 }));
    }
}
