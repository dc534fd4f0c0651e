using Google.Protobuf;
using Onnx;
using Conv2d = IlgpuTrain.Layers.Conv2d;
using Dropout = IlgpuTrain.Layers.Dropout;
using Embedding = IlgpuTrain.Layers.Embedding;
using LayerNorm = IlgpuTrain.Layers.LayerNorm;
using LogSoftmax = IlgpuTrain.Layers.LogSoftmax;
using Softmax = IlgpuTrain.Layers.Softmax;

namespace IlgpuTrain.Training;

/// <summary>
/// Exports a model with its trained parameters and buffers to an ONNX file (opset 17), the format
/// ONNX Runtime (and ML.NET on top of it) loads for deployment. The graph computes the model's
/// evaluation forward, what <see cref="Layer.Predict"/> computes.
/// </summary>
/// <remarks>
/// The graph's input is named <c>input</c>, of shape (batch, ...per-sample input shape) with a dynamic
/// batch dimension named <c>batch</c>, float32 (int32 indices when the model starts with an Embedding);
/// its output is named <c>output</c>, (batch, ...per-sample output shape), float32.
/// Initializers carry the state_dict names (<c>0.weight</c>, <c>1.running_mean</c>).
/// Layer by layer:
/// Dense → Gemm (transB = 1) on (N, D) inputs, MatMul with Wᵀ and Add on (N, ..., D);
/// Conv2d → Conv; MaxPool2d → MaxPool; AvgPool2d → AveragePool (count_include_pad as the layer);
/// GlobalAvgPool → GlobalAveragePool and Flatten; BatchNorm1d/2d → BatchNormalization with the running
/// statistics (evaluation); LayerNorm → LayerNormalization over the trailing dimensions; Dropout →
/// Identity; ReLU, LeakyReLU, Tanh, Sigmoid, Softmax, LogSoftmax → their ONNX operators (axis −1);
/// SiLU → x·Sigmoid(x); GELU → 0.5·x·(1 + Erf(x/√2)), or 0.5·x·(1 + Tanh(√(2/π)(x + 0.044715 x³))) for
/// the tanh approximation (opset 17 has no Gelu); Flatten → Flatten (axis 1); Residual → Add of its
/// block and its shortcut (or the identity); Embedding → Gather on axis 0.
/// Any other layer fails the export with an <see cref="ArgumentException"/> naming it and its path.
/// </remarks>
/// <example>
/// <code>
/// OnnxExport.Save(model, new Shape(1, 28, 28), parameters, state, "model.onnx");
/// </code>
/// </example>
public static class OnnxExport
{
    /// <summary>The ONNX operator set the export targets.</summary>
    public const int Opset = 17;

    /// <summary>The name of the graph's input.</summary>
    public const string InputName = "input";

    /// <summary>The name of the graph's output.</summary>
    public const string OutputName = "output";

    /// <summary>The name of the dynamic batch dimension of the input and the output.</summary>
    public const string BatchDimension = "batch";

    // ONNX's TensorProto.DataType values.
    private const int OnnxFloat = 1;
    private const int OnnxInt32 = 6;

    // IR version 8 is the one that goes with opset 17 (ONNX 1.12).
    private const long IrVersion = 8;

    /// <summary>Writes the model as an ONNX file.</summary>
    /// <param name="model">The model.</param>
    /// <param name="inputShape">Per-sample input shape, without the batch, such as (1, 28, 28).</param>
    /// <param name="parameters">The trained parameters (from Init, training or a checkpoint).</param>
    /// <param name="state">The buffers (BatchNorm's running statistics); an empty tree when the model has none.</param>
    /// <param name="path">The file to write (its folder must exist).</param>
    /// <exception cref="ArgumentException">A layer has no ONNX export, or a parameter or buffer is missing.</exception>
    public static void Save(Layer model, Shape inputShape, ParamTree parameters, ParamTree state, string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var proto = Build(model, inputShape, parameters, state);
        using var file = File.Create(path);
        proto.WriteTo(file);
    }

    /// <summary>The ONNX model of <paramref name="model"/> with its parameters and buffers as initializers.</summary>
    /// <param name="model">The model.</param>
    /// <param name="inputShape">Per-sample input shape, without the batch.</param>
    /// <param name="parameters">The trained parameters.</param>
    /// <param name="state">The buffers; an empty tree when the model has none.</param>
    /// <returns>The model proto (serialize it with <c>WriteTo</c> or <c>ToByteArray</c>).</returns>
    /// <exception cref="ArgumentException">A layer has no ONNX export, or a parameter or buffer is missing.</exception>
    public static ModelProto Build(Layer model, Shape inputShape, ParamTree parameters, ParamTree state)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(inputShape);
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(state);
        var outputShape = model.OutputShape(inputShape);
        var unsupported = Unsupported(model, string.Empty).ToList();
        if (unsupported.Count > 0)
            throw new ArgumentException($"OnnxExport: no ONNX export for {string.Join(", ", unsupported)}; supported layers: {Supported}. Replace the layer or export the model without it.", nameof(model));

        var graph = new GraphProto { Name = model.Describe() };
        var emitter = new Emitter(graph, parameters.Snapshot(), state.Snapshot());
        string y = emitter.Emit(model, string.Empty, InputName, inputShape);
        emitter.Node("Identity", [y], OutputName, "output");

        graph.Input.Add(ValueInfo(InputName, StartsWithEmbedding(model) ? OnnxInt32 : OnnxFloat, inputShape));
        graph.Output.Add(ValueInfo(OutputName, OnnxFloat, outputShape));
        var proto = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = "IlgpuTrain",
            ProducerVersion = typeof(OnnxExport).Assembly.GetName().Version?.ToString() ?? "0",
            Graph = graph,
        };
        proto.OpsetImport.Add(new OperatorSetIdProto { Domain = string.Empty, Version = Opset });
        return proto;
    }

    private const string Supported =
        "Sequential, NamedSequential, Residual, ResNetBlock, Dense, Flatten, Conv2d, MaxPool2d, AvgPool2d, GlobalAvgPool, BatchNorm1d, BatchNorm2d, LayerNorm, Dropout, Embedding, ReLU, LeakyReLU, GELU, Tanh, Sigmoid, SiLU, Softmax, LogSoftmax";

    private static IEnumerable<string> Unsupported(Layer layer, string path)
    {
        bool known = layer is Sequential or NamedSequential or Residual or ResNetBlock or Dense or Flatten or Conv2d or MaxPool2d or AvgPool2d or GlobalAvgPool
            or BatchNorm1d or BatchNorm2d or LayerNorm or Dropout or Embedding or ReLU or LeakyReLU or GELU or Tanh or Sigmoid or SiLU or Softmax or LogSoftmax;
        if (!known)
        {
            yield return $"{layer.Describe()} (a {layer.GetType().Name}) at \"{(path.Length == 0 ? "the root" : path.TrimEnd('.'))}\"";
            yield break;
        }

        foreach (var (name, child) in layer.Children())
        {
            foreach (var u in Unsupported(child, path + name + "."))
                yield return u;
        }
    }

    private static bool StartsWithEmbedding(Layer layer) => layer switch
    {
        Embedding => true,
        Sequential s => s.Count > 0 && StartsWithEmbedding(s[0]),
        _ => false,
    };

    private static ValueInfoProto ValueInfo(string name, int elemType, Shape sample)
    {
        var shape = new TensorShapeProto();
        shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimParam = BatchDimension });
        foreach (int d in sample)
            shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = d });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = elemType, Shape = shape } },
        };
    }

    /// <summary>Appends nodes and initializers to a graph, one layer at a time.</summary>
    private sealed class Emitter(GraphProto graph, ParamSnapshot parameters, ParamSnapshot state)
    {
        private readonly HashSet<string> _names = [];

        // Emits the layer's evaluation forward on value x of per-sample shape `shape`; returns its output's name.
        public string Emit(Layer layer, string prefix, string x, Shape shape)
        {
            string at = prefix.Length == 0 ? "model" : prefix.TrimEnd('.');
            switch (layer)
            {
                case Sequential seq:
                {
                    var shapes = seq.ChildInputShapes(shape);
                    string h = x;
                    int i = 0;
                    foreach (var (name, child) in seq.Children())
                        h = Emit(child, prefix + name + ".", h, shapes[i++]);
                    return h;
                }

                case NamedSequential ns:
                {
                    var shapes = ns.ChildInputShapes(shape);
                    string h = x;
                    int i = 0;
                    foreach (var (name, child) in ns.Children())
                        h = Emit(child, prefix + name + ".", h, shapes[i++]);
                    return h;
                }

                case ResNetBlock rb:
                {
                    // torchvision's block: relu(body(x) + downsample(x)); the body's layers sit under the block's own prefix.
                    string y = Emit(rb.Body, prefix, x, shape);
                    string s = rb.Downsample is null ? x : Emit(rb.Downsample, prefix + ResNetBlock.DownsampleName + ".", x, shape);
                    return Node("Relu", [Node("Add", [y, s], at + ".add")], at + ".relu");
                }

                case Residual r:
                {
                    string y = Emit(r.Block, prefix + "block.", x, shape);
                    string s = r.Shortcut is null ? x : Emit(r.Shortcut, prefix + "shortcut.", x, shape);
                    return Node("Add", [y, s], at + ".add");
                }

                case Dense d:
                {
                    if (shape.Rank == 1)
                    {
                        var w = Param(prefix + "weight");
                        var gemm = d.UseBias ? Node("Gemm", [x, w, Param(prefix + "bias")], at) : Node("Gemm", [x, w], at);
                        Last.Attribute.Add(Int("transB", 1));
                        return gemm;
                    }

                    // (N, ..., D) inputs: MatMul broadcasts over the leading dimensions, Gemm does not.
                    var wt = Transposed(prefix + "weight", shape[-1], d.Features);
                    string m = Node("MatMul", [x, wt], at + ".matmul");
                    return d.UseBias ? Node("Add", [m, Param(prefix + "bias")], at + ".bias") : m;
                }

                case Flatten:
                {
                    string f = Node("Flatten", [x], at);
                    Last.Attribute.Add(Int("axis", 1));
                    return f;
                }

                case Conv2d c:
                {
                    var inputs = c.UseBias ? new[] { x, Param(prefix + "weight"), Param(prefix + "bias") } : [x, Param(prefix + "weight")];
                    string y = Node("Conv", inputs, at);
                    Last.Attribute.Add(Ints("kernel_shape", c.Kernel.H, c.Kernel.W));
                    Last.Attribute.Add(Ints("strides", c.Strides.H, c.Strides.W));
                    Last.Attribute.Add(Ints("pads", c.Paddings.H, c.Paddings.W, c.Paddings.H, c.Paddings.W));
                    Last.Attribute.Add(Ints("dilations", c.Dilations.H, c.Dilations.W));
                    Last.Attribute.Add(Int("group", 1));
                    return y;
                }

                case MaxPool2d p:
                    return Pool("MaxPool", x, at, p.KernelSize, p.Stride ?? p.KernelSize, p.Padding, null);

                case AvgPool2d p:
                    return Pool("AveragePool", x, at, p.KernelSize, p.Stride ?? p.KernelSize, p.Padding, p.CountIncludePad);

                case GlobalAvgPool:
                {
                    string g = Node("GlobalAveragePool", [x], at);
                    string f = Node("Flatten", [g], at + ".flatten");
                    Last.Attribute.Add(Int("axis", 1));
                    return f;
                }

                case BatchNorm1d b:
                    return BatchNorm(x, prefix, at, shape[0], b.Eps, b.Momentum, b.Affine);

                case BatchNorm2d b:
                    return BatchNorm(x, prefix, at, shape[0], b.Eps, b.Momentum, b.Affine);

                case LayerNorm ln:
                {
                    var scale = ln.ElementwiseAffine ? Param(prefix + "weight") : Constant(at + ".scale", ln.NormalizedShape, 1f);
                    var bias = ln.ElementwiseAffine ? Param(prefix + "bias") : Constant(at + ".bias", ln.NormalizedShape, 0f);
                    string y = Node("LayerNormalization", [x, scale, bias], at);
                    Last.Attribute.Add(Int("axis", -ln.NormalizedShape.Rank));
                    Last.Attribute.Add(Float("epsilon", ln.Eps));
                    return y;
                }

                case Dropout:
                    return Node("Identity", [x], at);

                case Embedding:
                {
                    string y = Node("Gather", [Param(prefix + "weight"), x], at);
                    Last.Attribute.Add(Int("axis", 0));
                    return y;
                }

                case ReLU:
                    return Node("Relu", [x], at);

                case LeakyReLU lr:
                {
                    string y = Node("LeakyRelu", [x], at);
                    Last.Attribute.Add(Float("alpha", lr.NegativeSlope));
                    return y;
                }

                case Tanh:
                    return Node("Tanh", [x], at);

                case Sigmoid:
                    return Node("Sigmoid", [x], at);

                case SiLU:
                    return Node("Mul", [x, Node("Sigmoid", [x], at + ".sigmoid")], at);

                case Softmax:
                {
                    string y = Node("Softmax", [x], at);
                    Last.Attribute.Add(Int("axis", -1));
                    return y;
                }

                case LogSoftmax:
                {
                    string y = Node("LogSoftmax", [x], at);
                    Last.Attribute.Add(Int("axis", -1));
                    return y;
                }

                case GELU g:
                    return Gelu(x, at, g.Approximate);

                default:
                    throw new ArgumentException($"OnnxExport: no ONNX export for {layer.Describe()} at \"{at}\".", nameof(layer));
            }
        }

        // Adds a node with one output named after `name` (made unique); returns the output's name.
        public string Node(string op, IEnumerable<string> inputs, string name, string? output = null)
        {
            string unique = Unique(name);
            var node = new NodeProto { OpType = op, Name = unique };
            node.Input.AddRange(inputs);
            node.Output.Add(output ?? unique);
            graph.Node.Add(node);
            return output ?? unique;
        }

        private NodeProto Last => graph.Node[^1];

        private string Unique(string name)
        {
            string n = name;
            for (int i = 1; !_names.Add(n); i++)
                n = $"{name}_{i}";
            return n;
        }

        // 0.5 x (1 + Erf(x / √2)), or 0.5 x (1 + Tanh(√(2/π) (x + 0.044715 x³))): GELU is an operator from opset 20 on only.
        private string Gelu(string x, string at, GeluApproximation approximate)
        {
            string inner;
            if (approximate == GeluApproximation.Tanh)
            {
                string x3 = Node("Mul", [Node("Mul", [x, x], at + ".x2"), x], at + ".x3");
                string sum = Node("Add", [x, Node("Mul", [x3, Scalar(at + ".c", 0.044715f)], at + ".cx3")], at + ".sum");
                inner = Node("Tanh", [Node("Mul", [sum, Scalar(at + ".k", MathF.Sqrt(2f / MathF.PI))], at + ".scaled")], at + ".tanh");
            }
            else
            {
                inner = Node("Erf", [Node("Mul", [x, Scalar(at + ".rsqrt2", 1f / MathF.Sqrt(2f))], at + ".scaled")], at + ".erf");
            }

            string onePlus = Node("Add", [inner, Scalar(at + ".one", 1f)], at + ".oneplus");
            string half = Node("Mul", [x, Scalar(at + ".half", 0.5f)], at + ".halfx");
            return Node("Mul", [half, onePlus], at);
        }

        private string Pool(string op, string x, string at, int kernel, int stride, int padding, bool? countIncludePad)
        {
            string y = Node(op, [x], at);
            Last.Attribute.Add(Ints("kernel_shape", kernel, kernel));
            Last.Attribute.Add(Ints("strides", stride, stride));
            Last.Attribute.Add(Ints("pads", padding, padding, padding, padding));
            Last.Attribute.Add(Int("ceil_mode", 0));
            if (countIncludePad is bool include)
                Last.Attribute.Add(Int("count_include_pad", include ? 1 : 0));
            return y;
        }

        private string BatchNorm(string x, string prefix, string at, int channels, float eps, float momentum, bool affine)
        {
            var c = new Shape(channels);
            var scale = affine ? Param(prefix + "weight") : Constant(at + ".scale", c, 1f);
            var bias = affine ? Param(prefix + "bias") : Constant(at + ".bias", c, 0f);
            string y = Node("BatchNormalization", [x, scale, bias, Buffer(prefix + "running_mean"), Buffer(prefix + "running_var")], at);
            Last.Attribute.Add(Float("epsilon", eps));

            // ONNX's momentum weighs the running statistics, PyTorch's the batch's; it only matters in training mode.
            Last.Attribute.Add(Float("momentum", 1f - momentum));
            return y;
        }

        private string Param(string path) => Initializer(path, parameters, "parameter");

        private string Buffer(string path) => Initializer(path, state, "buffer");

        private string Initializer(string path, ParamSnapshot from, string what)
        {
            if (_names.Contains(path))
                return path;
            if (!from.Layout.Contains(path))
                throw new ArgumentException($"OnnxExport: the {what} \"{path}\" is missing from the {(what == "buffer" ? "state" : "parameters")} ({from.Layout.Count} tensors); pass the trees Init or the checkpoint made for this model.");
            var info = from.Layout[path];
            float[] values = info.DType switch
            {
                DType.Float32 => from.Get(path),
                DType.Float16 => from.Float16.AsSpan((int)info.Offset, (int)info.Length).ToArray().Select(h => (float)h).ToArray(),
                _ => throw new ArgumentException($"OnnxExport: the {what} \"{path}\" is {info.DType}; only floating-point tensors export as weights."),
            };
            return Add(path, info.Shape, values);
        }

        // The (F, D) weight at `path` stored as its (D, F) transpose, for MatMul.
        private string Transposed(string path, int d, int f)
        {
            string name = path + ".T";
            if (_names.Contains(name))
                return name;
            if (!parameters.Layout.Contains(path))
                throw new ArgumentException($"OnnxExport: the parameter \"{path}\" is missing from the parameters ({parameters.Layout.Count} tensors); pass the trees Init or the checkpoint made for this model.");
            var w = parameters.Get(path);
            var t = new float[w.Length];
            for (int o = 0; o < f; o++)
            {
                for (int i = 0; i < d; i++)
                    t[(i * f) + o] = w[(o * d) + i];
            }

            return Add(name, new Shape(d, f), t);
        }

        private string Constant(string name, Shape shape, float value)
        {
            var v = new float[shape.Length];
            Array.Fill(v, value);
            return Add(Unique(name), shape, v, unique: false);
        }

        private string Scalar(string name, float value) => Add(Unique(name), Shape.Scalar, [value], unique: false);

        private string Add(string name, Shape shape, float[] values, bool unique = true)
        {
            if (unique)
                _names.Add(name);
            var t = new TensorProto { Name = name, DataType = OnnxFloat };
            foreach (int d in shape)
                t.Dims.Add(d);

            // Little-endian raw bytes, as ONNX stores raw_data.
            var bytes = new byte[values.Length * sizeof(float)];
            for (int i = 0; i < values.Length; i++)
                System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * sizeof(float)), values[i]);
            t.RawData = ByteString.CopyFrom(bytes);
            graph.Initializer.Add(t);
            return name;
        }

        private static AttributeProto Int(string name, long value) =>
            new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

        private static AttributeProto Float(string name, float value) =>
            new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

        private static AttributeProto Ints(string name, params long[] values)
        {
            var a = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
            a.Ints.AddRange(values);
            return a;
        }
    }
}
