using Google.Protobuf;
using IlgpuTrain.Layers;
using IlgpuTrain.Training;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Xunit.Abstractions;
using Conv2d = IlgpuTrain.Layers.Conv2d;
using Dropout = IlgpuTrain.Layers.Dropout;
using Embedding = IlgpuTrain.Layers.Embedding;
using LayerNorm = IlgpuTrain.Layers.LayerNorm;
using LogSoftmax = IlgpuTrain.Layers.LogSoftmax;
using Softmax = IlgpuTrain.Layers.Softmax;
using Tensor = IlgpuTrain.Functional.Tensor;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// ONNX export: ONNX Runtime running the exported graph gives IlgpuTrain's evaluation forward
/// (Predict) for the CLI's models and for a model of every exportable layer, at batch 1 and 7 through
/// the one dynamic batch dimension; a layer without an export fails with a message naming it.
/// </summary>
public class OnnxExportProperties(ITestOutputHelper output)
{
    // Both sides compute in float32 with different summation orders (ONNX Runtime's MLAS GEMM and
    // convolution against IlgpuTrain's CPU kernels); the differences measured are a few 1e-7.
    private const float Atol = 1e-5f;
    private const float Rtol = 1e-5f;

    public static TheoryData<string, int> CliModels => new()
    {
        { "mlp", 1 }, { "mlp", 7 }, { "cnn", 1 }, { "cnn", 7 }, { "resnet", 1 }, { "resnet", 7 },
    };

    [Theory]
    [MemberData(nameof(CliModels))]
    public void The_exported_cli_models_run_in_onnx_runtime_as_in_predict(string name, int batch)
    {
        var model = Models.Build(name, classes: 10);
        var sample = name == "resnet" ? new Shape(3, 32, 32) : new Shape(1, 28, 28);
        var diff = Compare(model, sample, batch, seed: name.Length + batch);
        output.WriteLine($"{name}, batch {batch}: largest |onnxruntime - predict| = {diff:G3}");
    }

    // The torchvision-named ResNets (NamedSequential stages of ResNetBlocks, with downsample projections).
    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    public void The_torchvision_resnet18_exports(int batch)
    {
        var diff = Compare(Models.ResNet18(10, width: 8), new Shape(3, 32, 32), batch, seed: 11 + batch);
        output.WriteLine($"resnet18 (width 8), batch {batch}: largest |onnxruntime - predict| = {diff:G3}");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    public void Every_activation_norm_and_dense_layer_exports(int batch)
    {
        // A (4, 6) sample keeps a leading position per sample, so Dense takes the MatMul path and
        // LayerNorm, BatchNorm1d (as (C, L)) and Softmax act on a real last axis.
        var model = new Dense(8) >> new LayerNorm(8) >> new GELU() >> new Dense(8, UseBias: false) >> new GELU(GeluApproximation.Tanh)
            >> new LeakyReLU(0.2f) >> new BatchNorm1d() >> new SiLU() >> new Tanh() >> new LayerNorm(new Shape(4, 8), ElementwiseAffine: false)
            >> new Sigmoid() >> new Dropout(0.3f) >> new Residual(new Dense(8) >> new ReLU()) >> new Softmax()
            >> new Flatten() >> new Dense(5) >> new BatchNorm1d(Affine: false) >> new LogSoftmax();
        var diff = Compare(model, new Shape(4, 6), batch, seed: 3 + batch);
        output.WriteLine($"activations, norms and dense, batch {batch}: largest difference {diff:G3}");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    public void Every_pooling_and_convolution_layer_exports(int batch)
    {
        var model = new Conv2d(4, 3, Stride: 2, Padding: 1) { KernelHW = (3, 2), DilationHW = (1, 2), PaddingHW = (1, 2) } >> new BatchNorm2d(Affine: false)
            >> new AvgPool2d(3, 1, 1, CountIncludePad: false) >> new AvgPool2d(2, 1, 1)
            >> new MaxPool2d(3, 2, 1) >> new Residual(new Conv2d(6, 1) >> new BatchNorm2d(), new Conv2d(6, 1, UseBias: false)) >> new GlobalAvgPool() >> new Dense(3);
        var diff = Compare(model, new Shape(2, 11, 13), batch, seed: 5 + batch);
        output.WriteLine($"convolutions and pools, batch {batch}: largest difference {diff:G3}");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    public void An_embedding_model_takes_int32_indices(int batch)
    {
        const int V = 11, L = 5;
        var model = new Embedding(V, 6, PaddingIdx: 0) >> new LayerNorm(6) >> new Flatten() >> new Dense(4);
        var sample = new Shape(L);
        var (p, s) = model.Init(Devices.Cpu, sample, Rng.Create(9));
        using (p)
        using (s)
        {
            var ids = Enumerable.Range(0, batch * L).Select(i => ((i * 7) + batch) % V).ToArray();
            float[] expected;
            using (var step = Devices.Cpu.BeginStep())
                expected = model.Predict(p, s, step.Upload(ids, new Shape(batch, L))).ToHost();
            var proto = OnnxExport.Build(model, sample, p, s);
            Assert.Equal(6, proto.Graph.Input[0].Type.TensorType.ElemType);
            using var session = new InferenceSession(proto.ToByteArray());
            using var results = session.Run([NamedOnnxValue.CreateFromTensor(OnnxExport.InputName, new DenseTensor<int>(ids, [batch, L]))]);
            var actual = results.Single(r => r.Name == OnnxExport.OutputName).AsEnumerable<float>().ToArray();
            var diff = MaxDifference(expected, actual);
            output.WriteLine($"embedding, batch {batch}: largest difference {diff:G3}");
        }
    }

    [Fact]
    public void The_graph_has_the_standard_opset_names_and_a_dynamic_batch()
    {
        var model = Models.Mlp(10);
        var (p, s) = model.Init(Devices.Cpu, new Shape(1, 28, 28), Rng.Create(1));
        using (p)
        using (s)
        {
            var proto = OnnxExport.Build(model, new Shape(1, 28, 28), p, s);
            Assert.Equal(17, proto.OpsetImport.Single().Version);
            var input = Assert.Single(proto.Graph.Input);
            Assert.Equal("input", input.Name);
            Assert.Equal(["batch", "1", "28", "28"], input.Type.TensorType.Shape.Dim.Select(d => d.DimParam.Length > 0 ? d.DimParam : d.DimValue.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            var outputInfo = Assert.Single(proto.Graph.Output);
            Assert.Equal("output", outputInfo.Name);
            Assert.Equal(["batch", "10"], outputInfo.Type.TensorType.Shape.Dim.Select(d => d.DimParam.Length > 0 ? d.DimParam : d.DimValue.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            Assert.Equal(["1.weight", "1.bias", "4.weight", "4.bias"], proto.Graph.Initializer.Select(t => t.Name));
            Assert.Equal(["Flatten", "Gemm", "Relu", "Identity", "Gemm", "Identity"], proto.Graph.Node.Select(n => n.OpType));
        }
    }

    [Fact]
    public void Save_writes_a_file_onnx_runtime_loads()
    {
        var model = Models.Mlp(3);
        var (p, s) = model.Init(Devices.Cpu, new Shape(4), Rng.Create(2));
        using (p)
        using (s)
        {
            string path = Path.Combine(Path.GetTempPath(), $"onnx-export-{Guid.NewGuid():N}.onnx");
            try
            {
                OnnxExport.Save(model, new Shape(4), p, s, path);
                using var session = new InferenceSession(path);
                Assert.Equal("input", Assert.Single(session.InputMetadata).Key);
                Assert.Equal([-1, 4], session.InputMetadata["input"].Dimensions);
                Assert.Equal("output", Assert.Single(session.OutputMetadata).Key);
            }
            finally
            {
                File.Delete(path);
            }
        }
    }

    [Fact]
    public void An_unsupported_layer_fails_the_export_naming_it_and_its_path()
    {
        var model = new Dense(4) >> new Residual(new Dense(4) >> new Doubler()) >> new Dense(2);
        var (p, s) = model.Init(Devices.Cpu, new Shape(3), Rng.Create(3));
        using (p)
        using (s)
        {
            var e = Assert.Throws<ArgumentException>(() => OnnxExport.Build(model, new Shape(3), p, s));
            Assert.Contains("Doubler", e.Message, StringComparison.Ordinal);
            Assert.Contains("\"1.block.1\"", e.Message, StringComparison.Ordinal);
            Assert.Contains("supported layers", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Missing_parameters_fail_the_export_naming_the_path()
    {
        var model = new Dense(4) >> new BatchNorm1d();
        var (p, s) = model.Init(Devices.Cpu, new Shape(3), Rng.Create(3));
        using (p)
        using (s)
        using (var empty = ParamTree.FromSnapshot(Devices.Cpu, new ParamSnapshot(new ParamLayout([]), [], [], [])))
        {
            var e = Assert.Throws<ArgumentException>(() => OnnxExport.Build(model, new Shape(3), p, empty));
            Assert.Contains("\"1.running_mean\"", e.Message, StringComparison.Ordinal);
        }
    }

    // Exports with parameters and running statistics moved away from their initial values (so
    // BatchNorm's mean, variance, scale and shift all matter), runs ONNX Runtime on `batch` samples and
    // compares with Predict; returns the largest absolute difference.
    private static float Compare(Layer model, Shape sample, int batch, int seed)
    {
        var (p0, s0) = model.Init(Devices.Cpu, sample, Rng.Create((ulong)seed));
        using var p = Perturb(p0, seed, positive: false);
        using var s = Perturb(s0, seed + 100, positive: true);
        p0.Dispose();
        s0.Dispose();
        var x = GradCheck.Values(seed, batch * (int)sample.Length);
        float[] expected;
        using (var step = Devices.Cpu.BeginStep())
            expected = model.Predict(p, s, step.Upload(x, new Shape([batch, .. sample]))).ToHost();

        var proto = OnnxExport.Build(model, sample, p, s);
        using var session = new InferenceSession(proto.ToByteArray());
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(OnnxExport.InputName, new DenseTensor<float>(x, [batch, .. sample]))]);
        var result = results.Single(r => r.Name == OnnxExport.OutputName);
        Assert.Equal([batch, .. model.OutputShape(sample)], result.AsTensor<float>().Dimensions.ToArray());
        return MaxDifference(expected, result.AsEnumerable<float>().ToArray());
    }

    private static float MaxDifference(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        float max = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            float d = MathF.Abs(actual[i] - expected[i]);
            Assert.True(d <= Atol + (Rtol * MathF.Abs(expected[i])), $"element {i}: onnxruntime {actual[i]}, predict {expected[i]}");
            max = MathF.Max(max, d);
        }

        return max;
    }

    // Adds U(-0.25, 0.25) to every 1-D float tensor (biases, norm scales and shifts, running means;
    // running variances get 0.5 + U(0, 1) instead, so they stay positive). Weight matrices and kernels
    // keep their initialization, so activations keep the scale of a trained model's.
    private static ParamTree Perturb(ParamTree tree, int seed, bool positive)
    {
        var snap = tree.Snapshot();
        var f = (float[])snap.Float32.Clone();
        var noise = GradCheck.Values(seed, f.Length);
        foreach (var info in snap.Layout.Params.Where(i => i.DType == DType.Float32 && i.Shape.Rank == 1))
        {
            bool variance = positive && info.Path.EndsWith("running_var", StringComparison.Ordinal);
            for (long i = info.Offset; i < info.Offset + info.Length; i++)
                f[i] = variance ? 0.5f + MathF.Abs(noise[i]) : f[i] + (0.25f * noise[i]);
        }

        return ParamTree.FromSnapshot(Devices.Cpu, snap with { Float32 = f });
    }

    // A layer with no ONNX export.
    private sealed record Doubler : ElementwiseLayer
    {
        public override Tensor Forward(LayerContext ctx, Tensor x) => F.Add(x, x);
    }
}
