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
