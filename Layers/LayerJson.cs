using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace IlgpuTrain.Layers;

/// <summary>
/// A model as data: every layer record to JSON and back. Each layer is an object whose <c>"type"</c> names its record
/// (<c>"Dense"</c>, <c>"Conv2d"</c>, <c>"Sequential"</c>, ...) and whose other members are the record's arguments in
/// camelCase; containers nest their children (<c>"layers"</c>, <c>"block"</c>, <c>"shortcut"</c>). Arguments left at
/// their defaults may be omitted when reading, so hand-written files stay short.
/// </summary>
/// <remarks>
/// <c>FromJson(ToJson(model)) == model</c> for every layer type in this assembly, so the rebuilt model has the same
/// output shape and parameter names. The format is System.Text.Json's <see cref="JsonNode"/> tree, written with a
/// <see cref="System.Text.Json.Serialization.JsonConverter"/> so that a <see cref="Layer"/> can sit inside any other serialized value.
/// </remarks>
public static class LayerJson
{
    /// <summary>The member that names a layer's record type.</summary>
    public const string TypeProperty = "type";

    /// <summary>Options that serialize <see cref="Layer"/> values (and anything holding them) in this format.</summary>
    public static JsonSerializerOptions Options { get; } = CreateOptions();

    /// <summary>The layer type names this format knows, in the order of the docs.</summary>
    public static IReadOnlyList<string> KnownTypes { get; } =
    [
        nameof(Sequential), nameof(NamedSequential), nameof(Residual), nameof(ResNetBlock), nameof(Dense), nameof(Flatten), nameof(Conv2d), nameof(MaxPool2d), nameof(AvgPool2d),
        nameof(GlobalAvgPool), nameof(BatchNorm1d), nameof(BatchNorm2d), nameof(LayerNorm), nameof(Dropout), nameof(Embedding),
        nameof(ReLU), nameof(LeakyReLU), nameof(GELU), nameof(Tanh), nameof(Sigmoid), nameof(SiLU), nameof(Softmax), nameof(LogSoftmax),
        nameof(MultiheadAttention), nameof(PositionalEmbedding), nameof(TransformerBlock), nameof(TransformerLM),
    ];

    /// <summary>The model as an indented JSON document.</summary>
    /// <exception cref="ArgumentException">A layer in the model is of a type this format does not know.</exception>
    public static string ToJson(Layer layer) => ToNode(layer).ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    /// <summary>The model written by <see cref="ToJson"/> (or by hand in the same format).</summary>
    /// <exception cref="ArgumentException">The text is not JSON, names an unknown layer type, or has a member of the wrong kind.</exception>
    public static Layer FromJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json);
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"LayerJson: the model is not valid JSON ({e.Message}); pass the text written by LayerJson.ToJson.", nameof(json), e);
        }

        return FromNode(node, "$");
    }

    /// <summary>The model as a JSON object tree.</summary>
    /// <exception cref="ArgumentException">A layer in the model is of a type this format does not know.</exception>
    public static JsonObject ToNode(Layer layer)
    {
        ArgumentNullException.ThrowIfNull(layer);
        var o = new JsonObject { [TypeProperty] = layer.GetType().Name };
        switch (layer)
        {
            case Sequential s:
                o["layers"] = new JsonArray([.. s.Layers.Select(l => (JsonNode)ToNode(l))]);
                break;
            case NamedSequential ns:
                o["layers"] = new JsonArray([.. ns.Layers.Select(l => (JsonNode)new JsonObject { ["name"] = l.Name, ["layer"] = ToNode(l.Layer) })]);
                break;
            case ResNetBlock rb:
                o["body"] = ToNode(rb.Body);
                if (rb.Downsample is not null)
                    o["downsample"] = ToNode(rb.Downsample);
                break;
            case Residual r:
                o["block"] = ToNode(r.Block);
                if (r.Shortcut is not null)
                    o["shortcut"] = ToNode(r.Shortcut);
                break;
            case Dense d:
                o["features"] = d.Features;
                o["useBias"] = d.UseBias;
                o["weightInit"] = d.WeightInit.ToString();
                break;
            case Conv2d c:
                o["outChannels"] = c.OutChannels;
                o["kernelSize"] = c.KernelSize;
                o["stride"] = c.Stride;
                o["padding"] = c.Padding;
                o["dilation"] = c.Dilation;
                AddPair(o, "kernelHW", c.KernelHW);
                AddPair(o, "strideHW", c.StrideHW);
                AddPair(o, "paddingHW", c.PaddingHW);
                AddPair(o, "dilationHW", c.DilationHW);
                o["useBias"] = c.UseBias;
                o["weightInit"] = c.WeightInit.ToString();
                break;
            case MaxPool2d m:
                o["kernelSize"] = m.KernelSize;
                o["stride"] = m.Stride;
                o["padding"] = m.Padding;
                break;
            case AvgPool2d a:
                o["kernelSize"] = a.KernelSize;
                o["stride"] = a.Stride;
                o["padding"] = a.Padding;
                o["countIncludePad"] = a.CountIncludePad;
                break;
            case BatchNorm1d b:
                o["eps"] = b.Eps;
                o["momentum"] = b.Momentum;
                o["affine"] = b.Affine;
                break;
            case BatchNorm2d b:
                o["eps"] = b.Eps;
                o["momentum"] = b.Momentum;
                o["affine"] = b.Affine;
                break;
            case LayerNorm n:
                o["normalizedShape"] = new JsonArray([.. n.NormalizedShape.Select(d => (JsonNode)d)]);
                o["eps"] = n.Eps;
                o["elementwiseAffine"] = n.ElementwiseAffine;
                break;
            case Dropout d:
                o["p"] = d.P;
                break;
            case Embedding e:
                o["numEmbeddings"] = e.NumEmbeddings;
                o["embeddingDim"] = e.EmbeddingDim;
                o["paddingIdx"] = e.PaddingIdx;
                o["initStd"] = e.InitStd;
                break;
            case LeakyReLU l:
                o["negativeSlope"] = l.NegativeSlope;
                break;
            case GELU g:
                o["approximate"] = g.Approximate.ToString();
                break;
            case MultiheadAttention m:
                o["embedDim"] = m.EmbedDim;
                o["numHeads"] = m.NumHeads;
                o["dropout"] = m.Dropout;
                o["bias"] = m.Bias;
                o["causal"] = m.Causal;
                o["packedProjections"] = m.PackedProjections;
                break;
            case PositionalEmbedding pe:
                o["maxLength"] = pe.MaxLength;
                o["dim"] = pe.Dim;
                o["learned"] = pe.Learned;
                break;
            case TransformerBlock tb:
                o["dim"] = tb.Dim;
                o["heads"] = tb.Heads;
                o["feedForward"] = tb.FeedForward;
                o["dropout"] = tb.Dropout;
                o["normFirst"] = tb.NormFirst;
                o["causal"] = tb.Causal;
                o["activation"] = tb.Activation.ToString();
                o["eps"] = tb.Eps;
                break;
            case TransformerLM lm:
                o["vocab"] = lm.Vocab;
                o["context"] = lm.Context;
                o["dim"] = lm.Dim;
                o["heads"] = lm.Heads;
                o["layers"] = lm.Layers;
                o["feedForward"] = lm.FeedForward;
                o["dropout"] = lm.Dropout;
                o["tieWeights"] = lm.TieWeights;
                o["learnedPositions"] = lm.LearnedPositions;
                o["normFirst"] = lm.NormFirst;
                break;
            case Flatten or GlobalAvgPool or ReLU or Tanh or Sigmoid or SiLU or Softmax or LogSoftmax:
                break;
            default:
                throw new ArgumentException(
                    $"LayerJson: layer type {layer.GetType().FullName} cannot be written as JSON; build the model from the library's layers ({string.Join(", ", KnownTypes)}).",
                    nameof(layer));
        }

        return o;
    }

    /// <summary>The layer described by a JSON object tree; <paramref name="path"/> (e.g. <c>"$"</c>) prefixes error messages.</summary>
    /// <exception cref="ArgumentException">The tree names an unknown layer type or has a member of the wrong kind.</exception>
    public static Layer FromNode(JsonNode? node, string path = "$")
    {
        ArgumentNullException.ThrowIfNull(path);
        if (node is not JsonObject o)
            throw Bad(path, $"expected a layer object such as {{\"type\": \"Dense\", \"features\": 10}}, got {Kind(node)}");
        var type = o[TypeProperty] is JsonValue tv && tv.TryGetValue<string>(out var t)
            ? t
            : throw Bad(path, $"the layer has no string \"{TypeProperty}\" member; add one naming its type ({string.Join(", ", KnownTypes)})");
        var r = new Reader(o, path);
        Layer layer = type switch
        {
            nameof(Sequential) => new Sequential([.. r.Array("layers").Select((n, i) => FromNode(n, $"{path}.layers[{i}]"))]),
            nameof(NamedSequential) => Named(r.Array("layers"), path + ".layers"),
            nameof(ResNetBlock) => new ResNetBlock(
                FromNode(o["body"], path + ".body") as NamedSequential ?? throw Bad(path + ".body", "a ResNetBlock's body must be a NamedSequential"),
                o["downsample"] is null ? null : FromNode(o["downsample"], path + ".downsample")),
            nameof(Residual) => new Residual(FromNode(o["block"], path + ".block"), o["shortcut"] is null ? null : FromNode(o["shortcut"], path + ".shortcut")),
            nameof(Dense) => new Dense(r.Int("features"), r.Bool("useBias", true), r.Enum("weightInit", WeightInit.Default)),
            nameof(Conv2d) => Conv(r),
            nameof(MaxPool2d) => new MaxPool2d(r.Int("kernelSize"), r.IntOrNull("stride"), r.Int("padding", 0)),
            nameof(AvgPool2d) => new AvgPool2d(r.Int("kernelSize"), r.IntOrNull("stride"), r.Int("padding", 0), r.Bool("countIncludePad", true)),
            nameof(BatchNorm1d) => new BatchNorm1d(r.Float("eps", 1e-5f), r.Float("momentum", 0.1f), r.Bool("affine", true)),
            nameof(BatchNorm2d) => new BatchNorm2d(r.Float("eps", 1e-5f), r.Float("momentum", 0.1f), r.Bool("affine", true)),
            nameof(LayerNorm) => new LayerNorm(new Shape([.. r.Array("normalizedShape").Select((n, i) => r.Int(n, $"normalizedShape[{i}]"))]), r.Float("eps", 1e-5f), r.Bool("elementwiseAffine", true)),
            nameof(Dropout) => new Dropout(r.Float("p", 0.5f)),
            nameof(Embedding) => new Embedding(r.Int("numEmbeddings"), r.Int("embeddingDim"), r.IntOrNull("paddingIdx")) { InitStd = r.Double("initStd", 1) },
            nameof(Flatten) => new Flatten(),
            nameof(GlobalAvgPool) => new GlobalAvgPool(),
            nameof(ReLU) => new ReLU(),
            nameof(LeakyReLU) => new LeakyReLU(r.Float("negativeSlope", LeakyReluOp.DefaultNegativeSlope)),
            nameof(GELU) => new GELU(r.Enum("approximate", GeluApproximation.None)),
            nameof(Tanh) => new Tanh(),
            nameof(Sigmoid) => new Sigmoid(),
            nameof(SiLU) => new SiLU(),
            nameof(Softmax) => new Softmax(),
            nameof(LogSoftmax) => new LogSoftmax(),
            nameof(MultiheadAttention) => new MultiheadAttention(r.Int("embedDim"), r.Int("numHeads"), r.Float("dropout", 0f), r.Bool("bias", true), r.Bool("causal", false), r.Bool("packedProjections", true)),
            nameof(PositionalEmbedding) => new PositionalEmbedding(r.Int("maxLength"), r.Int("dim"), r.Bool("learned", true)),
            nameof(TransformerLM) => new TransformerLM(r.Int("vocab"), r.Int("context"), r.Int("dim"), r.Int("heads"), r.Int("layers"), r.Int("feedForward"), r.Float("dropout", 0.1f), r.Bool("tieWeights", true), r.Bool("learnedPositions", true), r.Bool("normFirst", true)),
            nameof(TransformerBlock) => new TransformerBlock(r.Int("dim"), r.Int("heads"), r.Int("feedForward"), r.Float("dropout", 0.1f), r.Bool("normFirst", true), r.Bool("causal", false), r.Enum("activation", FeedForwardActivation.Gelu), r.Float("eps", 1e-5f)),
            _ => throw Bad(path, $"unknown layer type \"{type}\"; use one of {string.Join(", ", KnownTypes)}"),
        };
        return layer;
    }

    // [{"name": "conv1", "layer": {...}}, ...]
    private static NamedSequential Named(IEnumerable<JsonNode?> items, string path) =>
        new([.. items.Select((n, i) =>
        {
            string at = $"{path}[{i}]";
            if (n is not JsonObject item || item["name"] is not JsonValue nv || !nv.TryGetValue<string>(out var name))
                throw Bad(at, "expected {\"name\": ..., \"layer\": {...}}");
            return (name, FromNode(item["layer"], at + ".layer"));
        })]);

    private static Conv2d Conv(Reader r) =>
        new(r.Int("outChannels"), r.Int("kernelSize"), r.Int("stride", 1), r.Int("padding", 0), r.Int("dilation", 1), r.Bool("useBias", true), r.Enum("weightInit", WeightInit.Default))
        {
            KernelHW = r.PairOrNull("kernelHW"),
            StrideHW = r.PairOrNull("strideHW"),
            PaddingHW = r.PairOrNull("paddingHW"),
            DilationHW = r.PairOrNull("dilationHW"),
        };

    // Rectangular kernels, strides, paddings and dilations are [h, w]; a square one lives in the integer argument.
    private static void AddPair(JsonObject o, string name, (int H, int W)? v)
    {
        if (v is { } p)
            o[name] = new JsonArray(p.H, p.W);
    }

    private static string Kind(JsonNode? n) => n switch
    {
        null => "null",
        JsonArray => "an array",
        JsonObject => "an object",
        _ => n.ToJsonString(),
    };

    private static ArgumentException Bad(string path, string what) => new($"LayerJson: at {path}: {what}.");

    private static JsonSerializerOptions CreateOptions()
    {
        var o = new JsonSerializerOptions { WriteIndented = true };
        o.Converters.Add(new Converter());
        o.TypeInfoResolver = new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver();
        o.MakeReadOnly();
        return o;
    }

    private sealed class Converter : System.Text.Json.Serialization.JsonConverter<Layer>
    {
        public override bool CanConvert(Type typeToConvert) => typeof(Layer).IsAssignableFrom(typeToConvert);

        public override Layer Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
        {
            var layer = FromNode(JsonNode.Parse(ref reader));
            return typeToConvert.IsInstanceOfType(layer)
                ? layer
                : throw new JsonException($"LayerJson: expected a {typeToConvert.Name}, read a {layer.GetType().Name}.");
        }

        public override void Write(Utf8JsonWriter writer, Layer value, JsonSerializerOptions options) => ToNode(value).WriteTo(writer);
    }

    private readonly struct Reader(JsonObject o, string path)
    {
        public int Int(string name) => o[name] is { } n ? Int(n, name) : throw Bad(path, $"the {o[TypeProperty]} layer needs an integer \"{name}\"");

        public int Int(string name, int fallback) => o[name] is { } n ? Int(n, name) : fallback;

        public int? IntOrNull(string name) => o[name] is { } n ? Int(n, name) : null;

        public int Int(JsonNode? n, string name) =>
            n is JsonValue v && v.TryGetValue<int>(out var i) ? i : throw Bad(path, $"\"{name}\" must be an integer, got {Kind(n)}");

        public bool Bool(string name, bool fallback) => o[name] switch
        {
            null => fallback,
            JsonValue v when v.TryGetValue<bool>(out var b) => b,
            var n => throw Bad(path, $"\"{name}\" must be true or false, got {Kind(n)}"),
        };

        public float Float(string name, float fallback) => o[name] switch
        {
            null => fallback,
            JsonValue v when v.TryGetValue<float>(out var f) => f,
            var n => throw Bad(path, $"\"{name}\" must be a number, got {Kind(n)}"),
        };

        public double Double(string name, double fallback) => o[name] switch
        {
            null => fallback,
            JsonValue v when v.TryGetValue<double>(out var d) => d,
            var n => throw Bad(path, $"\"{name}\" must be a number, got {Kind(n)}"),
        };

        public T Enum<T>(string name, T fallback)
            where T : struct, System.Enum => o[name] switch
            {
                null => fallback,
                JsonValue v when v.TryGetValue<string>(out var s) && System.Enum.TryParse<T>(s, ignoreCase: false, out var e) && System.Enum.IsDefined(e) => e,
                var n => throw Bad(path, $"\"{name}\" must be one of {string.Join(", ", System.Enum.GetNames<T>())}, got {Kind(n)}"),
            };

        public JsonArray Array(string name) =>
            o[name] as JsonArray ?? throw Bad(path, $"the {o[TypeProperty]} layer needs an array \"{name}\", got {Kind(o[name])}");

        public (int H, int W)? PairOrNull(string name) => o[name] switch
        {
            null => null,
            JsonArray { Count: 2 } a => (Int(a[0], name + "[0]"), Int(a[1], name + "[1]")),
            var n => throw Bad(path, $"\"{name}\" must be [h, w], got {Kind(n)}"),
        };
    }
}
