using IlgpuTrain.Layers;
using Conv2d = IlgpuTrain.Layers.Conv2d;
using Dropout = IlgpuTrain.Layers.Dropout;
using Embedding = IlgpuTrain.Layers.Embedding;
using LayerNorm = IlgpuTrain.Layers.LayerNorm;
using LogSoftmax = IlgpuTrain.Layers.LogSoftmax;
using Softmax = IlgpuTrain.Layers.Softmax;

namespace IlgpuTrain.Properties.Layers;

/// <summary>
/// LayerJson: every layer type round-trips (FromJson(ToJson(m)) == m, with the same output shape and parameter
/// names), hand-written files may omit defaults, and unknown types or bad JSON fail with a message that names them.
/// </summary>
public class LayerJsonProperties
{
    private static readonly Gen<float> Eps = Gen.Elements(1e-5f, 1e-3f, 0.1f, 3.14159e-7f);

    private static readonly Gen<bool> Bools = Gen.Elements(false, true);

    private static readonly Gen<WeightInit> Inits = Gen.Elements(Enum.GetValues<WeightInit>());

    // A layer that maps per-sample features (d) to (d') with d' returned beside it.
    private static Gen<(Layer Layer, int Out)> VectorLayer(int d, int depth) =>
        Gen.OneOf(
            from f in Gens.Width from bias in Bools from init in Inits select ((Layer)new Dense(f, bias, init), f),
            Gen.Elements<Layer>(new ReLU(), new Tanh(), new Sigmoid(), new SiLU(), new Softmax(), new LogSoftmax(), new Flatten()).Select(l => (l, d)),
            from s in Gen.Elements(0.01f, 0.2f, 0.333f) select ((Layer)new LeakyReLU(s), d),
            from a in Gen.Elements(Enum.GetValues<GeluApproximation>()) select ((Layer)new GELU(a), d),
            from p in Gen.Elements(0f, 0.1f, 0.5f, 0.9f) select ((Layer)new Dropout(p), d),
            from e in Eps from m in Gen.Elements(0.1f, 0.01f) from a in Bools select ((Layer)new BatchNorm1d(e, m, a), d),
            from e in Eps from a in Bools select ((Layer)new LayerNorm(new Shape(d), e, a), d),
            depth <= 0
                ? Gen.Constant(((Layer)new ReLU(), d))
                : from block in VectorModel(d, depth - 1)
                  from proj in Bools
                  select block.Out == d && !proj
                      ? ((Layer)new Residual(block.Layer), d)
                      : ((Layer)new Residual(block.Layer, new Dense(block.Out, UseBias: false)), block.Out));

    private static Gen<(Layer Layer, int Out)> VectorModel(int d, int depth) =>
        from n in Gen.Choose(1, 3)
        from layers in Chain(d, n, depth)
        select layers.Count == 1 ? (layers[0].Layer, layers[0].Out) : ((Layer)new Sequential([.. layers.Select(l => l.Layer)]), layers[^1].Out);

    private static Gen<List<(Layer Layer, int Out)>> Chain(int d, int n, int depth) =>
        n == 0
            ? Gen.Constant(new List<(Layer, int)>())
            : from head in VectorLayer(d, depth)
              from tail in Chain(head.Out, n - 1, depth)
              select new List<(Layer, int)> { head }.Concat(tail).ToList();

    // A small CNN over (C, H, W): conv (square or rectangular), pool, norm, then a head.
    private static Gen<Layer> ImageModel =>
        from c in Gen.Elements(1, 3, 8)
        from k in Gen.Elements(1, 3)
        from rect in Bools
        from bias in Bools
        from init in Inits
        from pool in Gen.Elements<Layer>(new MaxPool2d(2), new MaxPool2d(3, 2, 1), new AvgPool2d(2), new AvgPool2d(3, 1, 1, CountIncludePad: false))
        from head in Gen.Elements<Layer>(new GlobalAvgPool(), new Flatten())
        from f in Gens.Width
        let conv = rect ? new Conv2d(c, k, UseBias: bias, WeightInit: init) { KernelHW = (k, k + 2), PaddingHW = (k / 2, (k + 2) / 2), StrideHW = (1, 2) } : new Conv2d(c, k, 1, k / 2, 1, bias, init)
        select (Layer)new Sequential(conv, new BatchNorm2d(), new ReLU(), pool, new Residual(new Conv2d(c, 3, Padding: 1) >> new BatchNorm2d(1e-3f, 0.2f, Affine: false)), head, new Dense(f));

    private static Gen<(Layer Model, Shape Input)> Models =>
        Gen.OneOf(
            from d in Gens.Width from m in VectorModel(d, 2) select (m.Layer, new Shape(d)),
            ImageModel.Select(m => (m, new Shape(2, 6, 7))),
            from v in Gen.Elements(1, 5, 17) from dim in Gen.Elements(1, 4) from pad in Gen.Elements<int?>(null, 0) select ((Layer)(new Embedding(v, dim, pad) >> new Flatten() >> new Dense(3)), new Shape(4)),
            from heads in Gen.Elements(1, 2, 4) from learned in Gen.Elements(true, false) from normFirst in Gen.Elements(true, false) from causal in Gen.Elements(true, false)
            from act in Gen.Elements(FeedForwardActivation.Relu, FeedForwardActivation.Gelu) from packed in Gen.Elements(true, false) from p in Gen.Elements(0f, 0.1f)
            select ((Layer)(new Embedding(11, 8) >> new PositionalEmbedding(6, 8, learned) >> new TransformerBlock(8, heads, 16, p, normFirst, causal, act)
                >> new MultiheadAttention(8, heads, p, Bias: !causal, Causal: causal, PackedProjections: packed) >> new Dense(11)), new Shape(5)),
            from tie in Gen.Elements(true, false) from learned in Gen.Elements(true, false) from normFirst in Gen.Elements(true, false) from layers in Gen.Elements(0, 1, 2)
            select ((Layer)new TransformerLM(9, 6, 8, 2, layers, 12, 0.1f, tie, learned, normFirst), new Shape(6)));

    [Property(MaxTest = 150)]
    public Property Round_trip_keeps_the_model_its_output_shape_and_parameter_names() =>
        Prop.ForAll(Models.ToArbitrary(), t =>
        {
            var json = LayerJson.ToJson(t.Model);
            var back = LayerJson.FromJson(json);
            var names = Names(t.Model, t.Input);
            var namesBack = Names(back, t.Input);
            return (back.Equals(t.Model)).Label("equal record\n" + json)
                .And((back.OutputShape(t.Input) == t.Model.OutputShape(t.Input)).Label("output shape"))
                .And(names.SequenceEqual(namesBack).Label("parameter and buffer names"))
                .And((LayerJson.ToJson(back) == json).Label("JSON is stable"))
                .And(Equals(System.Text.Json.JsonSerializer.Deserialize<Layer>(System.Text.Json.JsonSerializer.Serialize(t.Model, LayerJson.Options), LayerJson.Options), t.Model).Label("through JsonSerializer"));
        });

    private static List<(string, Shape)> Names(Layer model, Shape input)
    {
        var (p, s) = model.Init(Devices.Cpu, input, Rng.Create(1));
        using (p)
        using (s)
            return [.. p.Layout.Params.Concat(s.Layout.Params).Select(i => (i.Path, i.Shape))];
    }

    [Fact]
    public void Every_layer_type_of_the_library_is_known()
    {
        var types = typeof(Layer).Assembly.GetTypes().Where(t => t.IsSubclassOf(typeof(Layer)) && !t.IsAbstract).Select(t => t.Name).Order();
        Assert.Equal(types, LayerJson.KnownTypes.Order());
    }

    [Fact]
    public void Hand_written_models_may_omit_defaults()
    {
        var model = LayerJson.FromJson("""{"type": "Sequential", "layers": [{"type": "Conv2d", "outChannels": 4, "kernelSize": 3}, {"type": "MaxPool2d", "kernelSize": 2}, {"type": "Dense", "features": 10}]}""");
        Assert.Equal(new Sequential(new Conv2d(4, 3), new MaxPool2d(2), new Dense(10)), model);
    }

    [Theory]
    [InlineData("""{"type": "Transformer"}""", "unknown layer type \"Transformer\"")]
    [InlineData("""{"type": "Dense"}""", "needs an integer \"features\"")]
    [InlineData("""{"type": "Dense", "features": "ten"}""", "\"features\" must be an integer")]
    [InlineData("""{"type": "Sequential", "layers": [{"type": "ReLU"}, {"features": 3}]}""", "at $.layers[1]: the layer has no string \"type\"")]
    [InlineData("""{"type": "GELU", "approximate": "Fast"}""", "must be one of None, Tanh")]
    [InlineData("""[1, 2]""", "expected a layer object")]
    [InlineData("""{"type": "Dense", """, "not valid JSON")]
    public void Bad_models_fail_with_a_message_naming_the_problem(string json, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => LayerJson.FromJson(json));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    private sealed record Custom : Layer
    {
        public override Shape OutputShape(Shape input) => input;

        public override Tensor Forward(LayerContext ctx, Tensor x) => x;
    }

    [Fact]
    public void A_layer_type_outside_the_library_cannot_be_written()
    {
        var e = Assert.Throws<ArgumentException>(() => LayerJson.ToJson(new Dense(2) >> new Custom()));
        Assert.Contains("Custom cannot be written as JSON", e.Message, StringComparison.Ordinal);
    }

    // The torchvision-named ResNets (NamedSequential stages of ResNetBlocks) round-trip with their state_dict names.
    [Fact]
    public void Torchvision_resnets_round_trip_with_their_names()
    {
        foreach (var model in new[] { IlgpuTrain.Training.Models.ResNet18(10, width: 8), IlgpuTrain.Training.Models.ResNet50(10, width: 8) })
        {
            string json = LayerJson.ToJson(model);
            var back = LayerJson.FromJson(json);
            Assert.Equal(model, back);
            Assert.Equal(json, LayerJson.ToJson(back));
            var input = new Shape(3, 32, 32);
            Assert.Equal(model.OutputShape(input), back.OutputShape(input));
            var (p1, s1) = model.Init(Devices.Cpu, input, Rng.Create(1));
            var (p2, s2) = back.Init(Devices.Cpu, input, Rng.Create(1));
            using (p1)
            using (s1)
            using (p2)
            using (s2)
            {
                Assert.Equal(p1.Layout.Params.Select(i => i.Path), p2.Layout.Params.Select(i => i.Path));
                Assert.Contains("layer1.0.conv1.weight", p1.Layout.Params.Select(i => i.Path));
            }
        }
    }
}
