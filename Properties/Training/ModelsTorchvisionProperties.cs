using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using IlgpuTrain.Layers;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// The torchvision ResNets: state_dict names and shapes equal to torchvision's, a forward on
/// PyTorch's weights equal to PyTorch's output, and head replacement for fine-tuning. The fixtures
/// were written by Properties/Fixtures/make_resnet18.py with Debian's python3-torch 1.13: a ResNet-18
/// with torchvision's module names and base width 8 instead of 64 (to keep the file small), weights
/// stored as F16, num_batches_tracked as I64. Full width (64, 1000 classes), ResNet-18 and ResNet-50
/// are checked against make_resnet_formula.py's float64 forward on weights that an integer-hash formula
/// defines in both languages, so that fixture holds only the input, the outputs and the key order.
/// </summary>
public sealed class ModelsTorchvisionProperties
{
    private static readonly string Fixtures = Path.Combine(AppContext.BaseDirectory, "Fixtures");

    public static TheoryData<string, int, long, string> Torchvision => new()
    {
        // SHA-256 of the sorted lines "key [d0, d1, ...]" of torchvision's state_dict (1000 classes),
        // entry count and parameter count: printed by the ResNet definitions of make_resnet18.py
        // (plus torchvision's Bottleneck for resnet50) with hashlib, len(state_dict()) and
        // sum(p.numel() for p in model.parameters()).
        { "resnet18", 122, 11_689_512, "867b8d8ae95f5a28c42c5b8a8409d5869ea42922a87e779dc263f79d0c746ff2" },
        { "resnet34", 218, 21_797_672, "d6dbfa48843359d6e6792fe97274f873469f1ad536633545ef9326764e47ce48" },
        { "resnet50", 320, 25_557_032, "2d5b8870b35e15302b693633772b7dd09604c71f966194756edea01b1c1ca347" },
    };

    [Theory]
    [MemberData(nameof(Torchvision))]
    public void State_dict_names_and_shapes_are_torchvisions(string name, int entries, long parameters, string sha256)
    {
        var model = name switch
        {
            "resnet18" => Models.ResNet18(),
            "resnet34" => Models.ResNet34(),
            _ => Models.ResNet50(),
        };
        Assert.Equal(new Shape(1000), model.OutputShape(new Shape(3, 224, 224)));
        var (p, s) = model.Init(Devices.Cpu, new Shape(3, 224, 224), Rng.Create(0));
        using (p)
        using (s)
        {
            var lines = p.Layout.Params.Concat(s.Layout.Params)
                .Select(e => $"{e.Path} [{string.Join(", ", e.Shape)}]")
                .OrderBy(l => l, StringComparer.Ordinal)
                .ToList();
            Assert.Equal(entries, lines.Count);
            Assert.Equal(parameters, p.Count);
            Assert.Contains("layer1.0.conv1.weight [64, 64, " + (name == "resnet50" ? "1, 1]" : "3, 3]"), lines);
            Assert.Contains("layer2.0.downsample.1.running_mean [" + (name == "resnet50" ? "512]" : "128]"), lines);
            Assert.Equal(sha256, Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Join("\n", lines)))));
        }
    }

    [Fact]
    public void ResNet18_on_pytorch_weights_gives_pytorchs_eval_output()
    {
        var model = Models.ResNet18(classes: 10, width: 8);
        var io = SafeTensors.Load(Path.Combine(Fixtures, "resnet18_w8_io.safetensors"));
        var x = io.Find("input")!;
        float[] expected = io.Find("output")!.ToFloat32();
        var (p0, s0) = model.Init(Devices.Cpu, new Shape(3, 64, 64), Rng.Create(0));
        StateDictResult loaded;
        using (p0)
        using (s0)
            loaded = StateDict.Load(Path.Combine(Fixtures, "resnet18_w8.safetensors"), p0, s0);
        using (loaded.Params)
        using (loaded.State)
        {
            Assert.Equal([7], loaded.State.Snapshot().Int32.Distinct());
            using var step = Devices.Cpu.BeginStep();
            float[] y = model.Predict(loaded.Params, loaded.State, step.Upload(x.ToFloat32(), new Shape(2, 3, 64, 64))).ToHost();
            Assert.Equal(expected.Length, y.Length);
            double worst = expected.Zip(y, (a, b) => Math.Abs(a - b)).Max();
            Assert.True(worst <= 1e-4, $"largest difference from PyTorch {worst:E3}");
        }
    }

    [Theory]
    [InlineData("resnet18")]
    [InlineData("resnet50")]
    public void Full_width_resnet_on_formula_weights_gives_pytorchs_float64_eval_output(string name)
    {
        // Fixtures/make_resnet_formula.py: torchvision's width 64 and 1000 classes, weights from an
        // integer-hash formula (FormulaWeights), the eval forward of PyTorch in float64 on two
        // 3x64x64 images; the file holds only the input, the outputs and the state_dict key order.
        var model = name == "resnet18" ? Models.ResNet18() : Models.ResNet50();
        var io = SafeTensors.Load(Path.Combine(Fixtures, "resnet_formula_io.safetensors"));
        var expected = MemoryMarshal.Cast<byte, double>(io.Find(name)!.Data.Span).ToArray();
        var (p0, s0) = model.Init(Devices.Cpu, new Shape(3, 64, 64), Rng.Create(0));
        ParamTree p, s;
        using (p0)
        using (s0)
        {
            var order = TorchStateDictOrder(p0.Layout, s0.Layout);
            Assert.Equal(io.Metadata[name + "_keys"].Split('\n'), order.Select(e => e.Path));
            (p, s) = FormulaWeights(p0, s0, order);
        }

        // The weights are the script's bit for bit: SHA-256 of the float32 entries' bytes in state_dict order.
        var snaps = new[] { p.Snapshot(), s.Snapshot() };
        using (var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
        {
            foreach (var e in TorchStateDictOrder(p.Layout, s.Layout).Where(e => e.DType == DType.Float32))
                sha.AppendData(MemoryMarshal.AsBytes(snaps[p.Layout.Contains(e.Path) ? 0 : 1].Float32.AsSpan((int)e.Offset, (int)e.Length)));
            Assert.Equal(io.Metadata[name + "_sha256"], Convert.ToHexStringLower(sha.GetHashAndReset()));
        }

        using (p)
        using (s)
        {
            using var step = Devices.Cpu.BeginStep();
            float[] y = model.Predict(p, s, step.Upload(io.Find("input")!.ToFloat32(), new Shape(2, 3, 64, 64))).ToHost();
            Assert.Equal(expected.Length, y.Length);
            double worst = expected.Zip(y, (a, b) => Math.Abs(a - b)).Max();
            Assert.True(worst <= 1e-4, $"{name}: largest difference from PyTorch's float64 output {worst:E3} (largest |output| {expected.Max(Math.Abs):F3})");
        }
    }

    // PyTorch's state_dict order: module by module in registration order (the order of their first
    // entry in our layouts), each module's parameters, then its buffers.
    private static List<ParamInfo> TorchStateDictOrder(ParamLayout parameters, ParamLayout state)
    {
        static string Module(string path) => path[..Math.Max(0, path.LastIndexOf('.'))];
        var all = parameters.Params.Concat(state.Params).ToList();
        return all.Select(e => Module(e.Path)).Distinct().SelectMany(m => all.Where(e => Module(e.Path) == m)).ToList();
    }

    // The formula of make_resnet_formula.py: the k-th state_dict entry's element i is
    // float32(offset + scale * (u - 0.5)), u = ((i * 2654435761 + k * 40503 + 12345) mod 2^32) / 2^32,
    // in the same float64 operations as the script; num_batches_tracked stays as Init left it.
    private static (ParamTree Params, ParamTree State) FormulaWeights(ParamTree parameters, ParamTree state, List<ParamInfo> order)
    {
        var snaps = new[] { parameters.Snapshot(), state.Snapshot() };
        long fcIn = parameters.Layout["fc.weight"].Shape[1];
        for (int k = 0; k < order.Count; k++)
        {
            var e = order[k];
            if (e.DType != DType.Float32)
                continue;
            string last = e.Path[(e.Path.LastIndexOf('.') + 1)..];
            (double offset, double scale) = e.Path.StartsWith("fc.", StringComparison.Ordinal) ? (0.0, 2 * (1.0 / Math.Sqrt(fcIn)))
                : last == "weight" && e.Shape.Rank == 4 ? (0.0, 2 * Math.Sqrt(6.0 / (e.Shape[1] * e.Shape[2] * e.Shape[3])))
                : last switch
                {
                    "weight" or "running_var" => (1.0, 1.0),
                    "bias" or "running_mean" => (0.0, 0.4),
                    _ => throw new InvalidOperationException($"no formula for \"{e.Path}\""),
                };
            var dst = snaps[parameters.Layout.Contains(e.Path) ? 0 : 1].Float32.AsSpan((int)e.Offset, (int)e.Length);
            for (int i = 0; i < dst.Length; i++)
            {
                uint x = unchecked(((uint)i * 2654435761u) + ((uint)k * 40503u) + 12345u);
                dst[i] = (float)(offset + (scale * ((x / 4294967296.0) - 0.5)));
            }
        }

        var p = ParamTree.FromSnapshot(parameters.Device, snaps[0]);
        return (p, ParamTree.FromSnapshot(state.Device, snaps[1]));
    }

    [Fact]
    public void Replacing_the_head_loads_everything_but_fc_for_fine_tuning()
    {
        var model = Models.ReplaceHead(Models.ResNet18(classes: 10, width: 8), classes: 5);
        Assert.Equal(new Shape(5), model.OutputShape(new Shape(3, 64, 64)));
        Assert.Equal(new Dense(5), model["fc"]);
        var (p0, s0) = model.Init(Devices.Cpu, new Shape(3, 64, 64), Rng.Create(0));
        using (p0)
        using (s0)
        {
            var options = new StateDictOptions { Strict = false, MapKey = k => k.StartsWith("fc.", StringComparison.Ordinal) ? null : k };
            var r = StateDict.Load(Path.Combine(Fixtures, "resnet18_w8.safetensors"), p0, s0, options);
            using (r.Params)
            using (r.State)
            {
                Assert.Equal(["fc.weight", "fc.bias"], r.MissingKeys);
                Assert.Empty(r.UnexpectedKeys);
                Assert.Equal(p0.Snapshot().Get("fc.weight"), r.Params.Snapshot().Get("fc.weight"));
            }

            // Without the map the old head's shape is refused by name.
            var e = Assert.Throws<CheckpointMismatchException>(() => StateDict.Load(Path.Combine(Fixtures, "resnet18_w8.safetensors"), p0, s0, new StateDictOptions { Strict = false }));
            Assert.Contains("\"fc.weight\": the file has shape [10, 64] but the model has [5, 64]", e.Message);
        }

        var bad = Assert.Throws<ArgumentException>(() => Models.ReplaceHead(new NamedSequential(("head", new Dense(2))), 3));
        Assert.Contains("fc", bad.Message);
    }
}
