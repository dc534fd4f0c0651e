using IlgpuTrain.Layers;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// Loading PyTorch state_dicts: every safetensors dtype converted on load to known values, strict and
/// non-strict key matching, key maps, and shape mismatches named with both shapes. The fixtures in
/// Properties/Fixtures were written by make_resnet18.py (beside them) with Debian's python3-torch 1.13.
/// Saving: StateDict.Save round-trips bit for bit and writes PyTorch's key order and dtypes;
/// <c>make_resnet_formula.py check FILE resnet18</c> loads such a file with load_state_dict (by hand, not here).
/// </summary>
public sealed class StateDictProperties
{
    private static readonly string Fixtures = Path.Combine(AppContext.BaseDirectory, "Fixtures");

    // A Dense(3) and a BatchNorm1d on 2 features, named as PyTorch names them in nn.Sequential:
    // 0.weight (3, 2), 0.bias (3), 1.weight, 1.bias, 1.running_mean, 1.running_var, 1.num_batches_tracked.
    private static Layer Small() => new Dense(3) >> new BatchNorm1d();

    private static readonly Shape SmallInput = new(2);

    [Fact]
    public void Every_dtype_converts_to_the_values_pytorch_gives()
    {
        var f = SafeTensors.Load(Path.Combine(Fixtures, "dtypes.safetensors"));

        // From make_resnet18.py: torch.tensor(values, dtype=d).float().tolist() for
        // values = [1.5, -2.25, 1/3, 65504, -0.0, 1e-3].
        float[] f16 = [1.5f, -2.25f, 0.333251953125f, 65504f, -0f, 0.0010004043579101562f];
        float[] bf16 = [1.5f, -2.25f, 0.333984375f, 65536f, -0f, 0.00099945068359375f];
        float[] f64 = [1.5f, -2.25f, 0.3333333432674408f, 65504f, -0f, 0.0010000000474974513f];
        Assert.Equal(Bits(f64), Bits(f.Find("f32")!.ConvertToFloat32()));
        Assert.Equal(Bits(f16), Bits(f.Find("f16")!.ConvertToFloat32()));
        Assert.Equal(Bits(bf16), Bits(f.Find("bf16")!.ConvertToFloat32()));
        Assert.Equal([2L, 3L], f.Find("bf16")!.Shape);
        Assert.Equal(Bits(f64), Bits(f.Find("f64")!.ConvertToFloat32()));
        Assert.Equal([0f, 7f, -3f, 2147483647f, -2147483648f, 123456789012f], f.Find("i64")!.ConvertToFloat32());
        Assert.Equal([0, 7, -3, int.MaxValue, int.MinValue, 5], f.Find("i32")!.ConvertToInt32());
        Assert.Equal([0, 1, 127, 128, 255, 9], f.Find("u8")!.ConvertToInt32());
        Assert.Equal([1f, 0f, 1f, 1f, 0f, 0f], f.Find("bool")!.ConvertToFloat32());
        Assert.Equal([12345], f.Find("nbt")!.ConvertToInt32());

        // Floats truncate toward zero as tensor.int() does; a value outside int is named.
        Assert.Equal([1, -2, 0, 65504, 0, 0], f.Find("f16")!.ConvertToInt32());
        var e = Assert.Throws<OverflowException>(() => f.Find("i64")!.ConvertToInt32());
        Assert.Contains("\"i64\"", e.Message);
        Assert.Contains("123456789012", e.Message);
    }

    [Property(MaxTest = 200)]
    public Property Wide_and_narrow_floats_convert_as_casts() =>
        Prop.ForAll(Gen.Choose(int.MinValue, int.MaxValue).Select(BitConverter.Int32BitsToSingle).Where(float.IsFinite).ToArbitrary(), v =>
        {
            double d = v * 1.0000001;
            var f64 = new SafeTensor("d", SafeTensorDType.F64, [1], BitConverter.GetBytes(d));
            var f16 = new SafeTensor("h", SafeTensorDType.F16, [1], BitConverter.GetBytes(BitConverter.HalfToUInt16Bits((System.Half)v)));
            var bf16 = new SafeTensor("b", SafeTensorDType.BF16, [1], BitConverter.GetBytes((ushort)(BitConverter.SingleToUInt32Bits(v) >> 16)));
            return (f64.ConvertToFloat32()[0] == (float)d).Label("F64 is (float)")
                .And((BitConverter.SingleToUInt32Bits(f16.ConvertToFloat32()[0]) == BitConverter.SingleToUInt32Bits((float)(System.Half)v)).Label("F16 widens exactly"))
                .And((BitConverter.SingleToUInt32Bits(bf16.ConvertToFloat32()[0]) == (BitConverter.SingleToUInt32Bits(v) & 0xFFFF0000u)).Label("BF16 is the top half of the bits"));
        });

    [Fact]
    public void A_strict_load_of_a_matching_file_sets_parameters_and_buffers_with_conversion()
    {
        var (p, s) = Small().Init(Devices.Cpu, SmallInput, Rng.Create(1));
        using (p)
        using (s)
        {
            var file = File(
                F64("0.weight", [3, 2], 1, 2, 3, 4, 5, 6),
                F16("0.bias", [3], 0.5f, -0.5f, 0.25f),
                BF16("1.weight", [3], 1, 2, 3),
                F32("1.bias", [3], 0.1f, 0.2f, 0.3f),
                F32("1.running_mean", [3], -1, 0, 1),
                F32("1.running_var", [3], 2, 3, 4),
                I64("1.num_batches_tracked", [], 42));
            var r = StateDict.Load(file, p, s);
            using (r.Params)
            using (r.State)
            {
                Assert.Empty(r.MissingKeys);
                Assert.Empty(r.UnexpectedKeys);
                var ps = r.Params.Snapshot();
                var ss = r.State.Snapshot();
                Assert.Equal([1f, 2, 3, 4, 5, 6], ps.Get("0.weight"));
                Assert.Equal([0.5f, -0.5f, 0.25f], ps.Get("0.bias"));
                Assert.Equal([1f, 2, 3], ps.Get("1.weight"));
                Assert.Equal([-1f, 0, 1], ss.Get("1.running_mean"));
                Assert.Equal([2f, 3, 4], ss.Get("1.running_var"));
                Assert.Equal([42], ss.Int32);
            }
        }
    }

    [Fact]
    public void Strict_refuses_missing_and_unexpected_keys_naming_them_and_non_strict_reports_them()
    {
        var (p, s) = Small().Init(Devices.Cpu, SmallInput, Rng.Create(2));
        using (p)
        using (s)
        {
            var before = p.Snapshot();
            var file = File(F32("0.bias", [3], 7, 8, 9), F32("head.weight", [1], 1), I64("1.num_batches_tracked", [], 3));
            var e = Assert.Throws<CheckpointMismatchException>(() => StateDict.Load(file, p, s));
            Assert.Contains("\"0.weight\"", e.Message);
            Assert.Contains("\"1.running_var\"", e.Message);
            Assert.Contains("unexpected key(s) in the file: \"head.weight\"", e.Message);
            Assert.Contains("Strict = false", e.Message);
            Assert.DoesNotContain("\"0.bias\"", e.Message);

            var r = StateDict.Load(file, p, s, new StateDictOptions { Strict = false });
            using (r.Params)
            using (r.State)
            {
                Assert.Equal(["0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var"], r.MissingKeys);
                Assert.Equal(["head.weight"], r.UnexpectedKeys);
                Assert.Equal([7f, 8, 9], r.Params.Snapshot().Get("0.bias"));
                Assert.Equal(before.Get("0.weight"), r.Params.Snapshot().Get("0.weight"));
                Assert.Equal([3], r.State.Snapshot().Int32);
            }

            // The input trees are untouched.
            Assert.Equal(before.Get("0.bias"), p.Snapshot().Get("0.bias"));
        }
    }

    [Fact]
    public void A_keep_glob_that_matches_no_key_of_the_model_is_refused_naming_it()
    {
        var (p, s) = Small().Init(Devices.Cpu, SmallInput, Rng.Create(2));
        using (p)
        using (s)
        {
            var file = File(F32("0.bias", [3], 7, 8, 9));
            var e = Assert.Throws<ArgumentException>(() => StateDict.Load(file, p, s, new StateDictOptions { Strict = false, Keep = ParamFilter.Glob("fc.*") }));
            Assert.Contains("StateDictOptions.Keep: the pattern \"fc.*\" matches no parameter; the model has 0.weight, 0.bias, 1.weight, 1.bias, 1.running_mean", e.Message);
            var r = StateDict.Load(file, p, s, new StateDictOptions { Strict = false, Keep = ParamFilter.Glob("1.running_*") });
            r.Params.Dispose();
            r.State.Dispose();
        }
    }

    [Fact]
    public void A_key_map_renames_and_skips_and_two_keys_on_one_are_refused()
    {
        var (p, s) = Small().Init(Devices.Cpu, SmallInput, Rng.Create(3));
        using (p)
        using (s)
        {
            // A DataParallel checkpoint: every key starts with "module."; "module.extra" is dropped by the map.
            var file = File(
                F32("module.0.weight", [3, 2], 1, 2, 3, 4, 5, 6), F32("module.0.bias", [3], 1, 1, 1),
                F32("module.1.weight", [3], 1, 1, 1), F32("module.1.bias", [3], 0, 0, 0),
                F32("module.1.running_mean", [3], 0, 0, 0), F32("module.1.running_var", [3], 1, 1, 1),
                I64("module.1.num_batches_tracked", [], 0), F32("module.extra", [1], 5));
            var strictOnly = Assert.Throws<CheckpointMismatchException>(() => StateDict.Load(file, p, s, new StateDictOptions { MapKey = k => k["module.".Length..] }));
            Assert.Contains("unexpected key(s) in the file: \"extra\".", strictOnly.Message);
            Assert.DoesNotContain("missing", strictOnly.Message);
            var options = new StateDictOptions { MapKey = k => k == "module.extra" ? null : k["module.".Length..] };
            var r = StateDict.Load(file, p, s, options);
            using (r.Params)
            using (r.State)
                Assert.Equal([1f, 2, 3, 4, 5, 6], r.Params.Snapshot().Get("0.weight"));

            Assert.Throws<CheckpointMismatchException>(() => StateDict.Load(file, p, s));
            var e = Assert.Throws<ArgumentException>(() => StateDict.Load(file, p, s, new StateDictOptions { MapKey = k => k.EndsWith("bias", StringComparison.Ordinal) ? "0.bias" : k }));
            Assert.Contains("\"module.0.bias\"", e.Message);
            Assert.Contains("\"module.1.bias\"", e.Message);
        }
    }

    [Fact]
    public void A_shape_mismatch_names_the_key_and_both_shapes_even_when_not_strict()
    {
        var (p, s) = Small().Init(Devices.Cpu, SmallInput, Rng.Create(4));
        using (p)
        using (s)
        {
            var file = File(F32("0.weight", [2, 3], 1, 2, 3, 4, 5, 6));
            var e = Assert.Throws<CheckpointMismatchException>(() => StateDict.Load(file, p, s, new StateDictOptions { Strict = false }));
            Assert.Contains("\"0.weight\": the file has shape [2, 3] but the model has [3, 2]", e.Message);
        }
    }

    [Fact]
    public void An_integer_buffer_that_does_not_fit_is_named()
    {
        var (p, s) = Small().Init(Devices.Cpu, SmallInput, Rng.Create(5));
        using (p)
        using (s)
        {
            var e = Assert.Throws<CheckpointMismatchException>(() =>
                StateDict.Load(File(I64("1.num_batches_tracked", [], 1L << 40)), p, s, new StateDictOptions { Strict = false }));
            Assert.Contains("\"1.num_batches_tracked\"", e.Message);
        }
    }

    // Models whose state_dicts Save writes: Dense + BatchNorm1d, and the torchvision ResNets at small widths.
    private static readonly (string Name, Layer Model, Shape Input)[] SaveModels =
    [
        ("dense-bn", Small(), SmallInput),
        ("resnet18-w2", Models.ResNet18(classes: 10, width: 2), new Shape(3, 32, 32)),
        ("resnet50-w1", Models.ResNet50(classes: 5, width: 1), new Shape(3, 32, 32)),
    ];

    [Property(MaxTest = 30)]
    public Property Save_then_a_strict_load_gives_the_same_trees_bit_for_bit() =>
        Prop.ForAll(Gen.Choose(0, SaveModels.Length - 1).ToArbitrary(), Gen.Choose(0, int.MaxValue).ToArbitrary(), (which, seed) =>
        {
            var (name, model, input) = SaveModels[which];
            var (p0, s0) = model.Init(Devices.Cpu, input, Rng.Create((ulong)seed));
            using var dir = new TempDir();
            using (p0)
            using (s0)
            {
                // Any float32 bit pattern (NaN payloads, infinities, -0, subnormals) and any Int32 count.
                var random = new Random(seed);
                var ps = p0.Snapshot();
                var ss = s0.Snapshot();
                for (int i = 0; i < ps.Float32.Length; i++)
                    ps.Float32[i] = BitConverter.Int32BitsToSingle(random.Next(int.MinValue, int.MaxValue));
                for (int i = 0; i < ss.Float32.Length; i++)
                    ss.Float32[i] = BitConverter.Int32BitsToSingle(random.Next(int.MinValue, int.MaxValue));
                for (int i = 0; i < ss.Int32.Length; i++)
                    ss.Int32[i] = random.Next(int.MinValue, int.MaxValue);
                using var p = ParamTree.FromSnapshot(Devices.Cpu, ps);
                using var s = ParamTree.FromSnapshot(Devices.Cpu, ss);
                string path = dir.File("model.safetensors");
                StateDict.Save(path, p, s);
                var r = StateDict.Load(path, p0, s0);
                using (r.Params)
                using (r.State)
                {
                    var rp = r.Params.Snapshot();
                    var rs = r.State.Snapshot();
                    return (rp.Layout.Equals(ps.Layout) && rs.Layout.Equals(ss.Layout)).Label("layouts")
                        .And(Bits(rp.Float32).SequenceEqual(Bits(ps.Float32)).Label("parameters bitwise"))
                        .And(Bits(rs.Float32).SequenceEqual(Bits(ss.Float32)).Label("running statistics bitwise"))
                        .And(rs.Int32.SequenceEqual(ss.Int32).Label("num_batches_tracked"))
                        .And((r.MissingKeys.Count == 0 && r.UnexpectedKeys.Count == 0).Label("no missing or unexpected key"))
                        .Label(name);
                }
            }
        });

    [Fact]
    public void Save_writes_pytorchs_keys_order_and_dtypes()
    {
        var (p, s) = Small().Init(Devices.Cpu, SmallInput, Rng.Create(6));
        using var dir = new TempDir();
        using (p)
        using (s)
        {
            string path = dir.File("small.safetensors");
            StateDict.Save(path, p, s);
            var file = SafeTensors.Load(path);
            Assert.Equal(["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked"], file.Tensors.Select(t => t.Name));
            Assert.Equal("0.weight: F32 [3, 2]", file.Tensors[0].ToString());
            Assert.Equal("1.num_batches_tracked: I64 []", file.Tensors[6].ToString());
            Assert.Equal(8, file.Tensors[6].Data.Length);
            Assert.Equal("pt", file.Metadata["format"]);
        }

        // The ResNets' keys come out in the order of PyTorch's state_dict, as make_resnet_formula.py
        // recorded it from PyTorch (at width 64; the names do not depend on the width or the classes).
        var io = SafeTensors.Load(Path.Combine(Fixtures, "resnet_formula_io.safetensors"));
        foreach (var (name, model) in new[] { ("resnet18", Models.ResNet18(classes: 2, width: 1)), ("resnet50", Models.ResNet50(classes: 2, width: 1)) })
        {
            var (pp, ss) = model.Init(Devices.Cpu, new Shape(3, 32, 32), Rng.Create(0));
            using (pp)
            using (ss)
                Assert.Equal(io.Metadata[name + "_keys"].Split('\n'), StateDict.ToTensors(pp, ss).Select(t => t.Name));
        }
    }

    [Fact]
    public void Float16_entries_are_saved_as_f16_and_load_back_unchanged()
    {
        var layout = new ParamLayout([("w", new Shape(2, 2), DType.Float16), ("b", new Shape(2), DType.Float32)]);
        Half[] half = [(Half)1.5f, (Half)(-0.0009765625f), (Half)65504f, (Half)float.NegativeInfinity];
        var snap = new ParamSnapshot(layout, [0.25f, -3f], half, []);
        using var p = ParamTree.FromSnapshot(Devices.Cpu, snap);
        using var s = ParamTree.FromSnapshot(Devices.Cpu, new ParamSnapshot(new ParamLayout([]), [], [], []));
        var tensors = StateDict.ToTensors(p, s);
        Assert.Equal(["w: F16 [2, 2]", "b: F32 [2]"], tensors.Select(t => t.ToString()));
        using var dir = new TempDir();
        StateDict.Save(dir.File("half.safetensors"), p, s);
        using var zeros = ParamTree.Zeros(Devices.Cpu, layout);
        var r = StateDict.Load(dir.File("half.safetensors"), zeros, s);
        using (r.Params)
        using (r.State)
        {
            var back = r.Params.Snapshot();
            Assert.Equal(half.Select(h => BitConverter.HalfToUInt16Bits((System.Half)(float)h)), back.Float16.Select(h => BitConverter.HalfToUInt16Bits((System.Half)(float)h)));
            Assert.Equal([0.25f, -3f], back.Float32);
        }
    }

    [Fact]
    public void Save_refuses_a_key_in_both_trees_and_a_consumed_tree_naming_them()
    {
        var (p, s) = Small().Init(Devices.Cpu, SmallInput, Rng.Create(7));
        using var dir = new TempDir();
        using (p)
        using (s)
        {
            var e = Assert.Throws<ArgumentException>(() => StateDict.Save(dir.File("x.safetensors"), p, p));
            Assert.Contains("\"0.weight\"", e.Message);
            Assert.Contains("parameters and the state of one model", e.Message);
            Assert.False(System.IO.File.Exists(dir.File("x.safetensors")));

            var consumed = p.Clone();
            using var moved = consumed.Consume("a test step");
            var c = Assert.Throws<ConsumedValueException>(() => StateDict.Save(dir.File("y.safetensors"), consumed, s));
            Assert.Contains("a test step", c.Message);
        }
    }

    internal static int[] Bits(float[] v) => v.Select(BitConverter.SingleToInt32Bits).ToArray();

    private static SafeTensorsFile File(params SafeTensor[] tensors)
    {
        var ms = new MemoryStream();
        SafeTensors.Write(ms, tensors);
        return SafeTensors.Read(ms.ToArray(), "test.safetensors");
    }

    private static SafeTensor F32(string name, long[] shape, params float[] v) => SafeTensor.Float32(name, shape, v);

    private static SafeTensor F16(string name, long[] shape, params float[] v) => SafeTensor.Float16(name, shape, v.Select(x => (Half)x).ToArray());

    private static SafeTensor F64(string name, long[] shape, params double[] v) =>
        new(name, SafeTensorDType.F64, shape, v.SelectMany(BitConverter.GetBytes).ToArray());

    private static SafeTensor BF16(string name, long[] shape, params float[] v) =>
        new(name, SafeTensorDType.BF16, shape, v.SelectMany(x => BitConverter.GetBytes((ushort)(BitConverter.SingleToUInt32Bits(x) >> 16))).ToArray());

    private static SafeTensor I64(string name, long[] shape, params long[] v) =>
        new(name, SafeTensorDType.I64, shape, v.SelectMany(BitConverter.GetBytes).ToArray());
}
