using IlgpuTrain.Training.Conformance;
using Conv2dLayer = IlgpuTrain.Layers.Conv2d;
using LayerShapeException = IlgpuTrain.Layers.LayerShapeException;

namespace IlgpuTrain.Properties.Kernels;

/// <summary>
/// 2-D convolution: im2col and col2im equal their references and are adjoint; the im2col + GEMM
/// forward and backward launchers equal the naive references; F.Conv2d's forward equals an
/// explicitly padded float64 convolution and its VJP equals central finite differences of it;
/// shapes are checked; the Conv2d layer declares PyTorch's parameters, init bounds and output shapes.
/// </summary>
public class Conv2dProperties
{
    // A sum of at most C kh kw (<= 80) products of values in [-1, 1], in float32: the rounding error stays well below 1e-5 + 1e-5 |r|.
    private const double SumAtol = 1e-5;
    private const double SumRtol = 1e-5;

    // GEMM sums of up to 5*4*4 = 80 (forward, dX) or N Ho Wo (dW, up to 3 * 22 * 22) float32 products
    // against float64: the GEMM bound shared with the conformance suite.
    private const double GemmAtol = Tolerances.Gemm.Atol;
    private const double GemmRtol = Tolerances.Gemm.Rtol;

    // Finite differences in float64 of a linear map are exact up to rounding; the gap is the float32 VJP (as LinearProperties).
    private const double GradAtol = 2e-4;
    private const double GradRtol = 2e-3;

    [Property(MaxTest = 40)]
    public Property Im2Col_equals_reference() =>
        Prop.ForAll(Gens.ConvKernelCase.ToArbitrary(), c =>
        {
            var g = c.Geometry;
            var x = GradCheck.Values(c.Seed, g.InputLength);
            var expected = new float[g.ColumnsLength];
            Conv2dReference.Im2ColReference(x, expected, g);
            var result = true.Label(c.ToString());
            foreach (var d in Devices.All)
            {
                using var tx = d.Upload(x);
                using var cols = d.Poisoned((int)g.ColumnsLength);
                Conv2d.Im2Col(d.Kernels, tx.View<float>(), cols.View<float>(), g);
                // A copy: bitwise equal.
                result = result.And(Close.All(cols.ToHost(), expected, 0, 0, $"cols on {Devices.Describe(d)}"));
            }

            return result;
        });

    [Property(MaxTest = 40)]
    public Property Col2Im_equals_reference() =>
        Prop.ForAll(Gens.ConvKernelCase.ToArbitrary(), c =>
        {
            var g = c.Geometry;
            var cols = GradCheck.Values(c.Seed, g.ColumnsLength);
            var expected = new float[g.InputLength];
            Conv2dReference.Col2ImReference(cols, expected, g);
            var result = true.Label(c.ToString());
            foreach (var d in Devices.All)
            {
                using var tc = d.Upload(cols);
                using var x = d.Poisoned((int)g.InputLength);
                Conv2d.Col2Im(d.Kernels, tc.View<float>(), x.View<float>(), g);
                result = result.And(Close.All(x.ToHost(), expected, SumAtol, SumRtol, $"x on {Devices.Describe(d)}"));
            }

            return result;
        });

    [Property(MaxTest = 40)]
    public Property Col2Im_is_the_adjoint_of_Im2Col() =>
        Prop.ForAll(Gens.ConvKernelCase.ToArbitrary(), c =>
        {
            // <im2col(x), cols> = <x, col2im(cols)>: an identity of the two kernels alone, with no reference involved.
            var g = c.Geometry;
            var d = Devices.Cpu;
            var x = GradCheck.Values(c.Seed, g.InputLength);
            var cols = GradCheck.Values(c.Seed + 1, g.ColumnsLength);
            using var tx = d.Upload(x);
            using var tc = d.Upload(cols);
            using var ax = d.Poisoned((int)g.ColumnsLength);
            using var at = d.Poisoned((int)g.InputLength);
            Conv2d.Im2Col(d.Kernels, tx.View<float>(), ax.View<float>(), g);
            Conv2d.Col2Im(d.Kernels, tc.View<float>(), at.View<float>(), g);
            var (left, leftAbs) = Dot(ax.ToHost(), cols);
            var (right, rightAbs) = Dot(x, at.ToHost());
            // col2im rounds each sum once in float32: the gap is a few ulps of the sum of |terms|.
            double err = Math.Abs(left - right), allowed = 1e-9 + (1e-6 * Math.Max(leftAbs, rightAbs));
            return (err <= allowed).Label($"<im2col(x), c> = {left:R} but <x, col2im(c)> = {right:R} (|err| {err:E3} > {allowed:E3}); {c}");
        });

    [Fact]
    public void Im2Col_of_a_known_image_lists_each_window()
    {
        // x = 1..9 as a 3x3 image, kernel 2x2, padding 1, stride 2: output 2x2, windows of the padded image
        //  0 0 0 0 0
        //  0 1 2 3 0
        //  0 4 5 6 0
        //  0 7 8 9 0
        //  0 0 0 0 0
        var g = new Conv2dGeometry(1, 1, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1);
        Assert.Equal((2, 2), (g.HO, g.WO));
        var d = Devices.Cpu;
        using var x = d.Upload(Enumerable.Range(1, 9).Select(v => (float)v).ToArray());
        using var cols = d.Poisoned(16);
        Conv2d.Im2Col(d.Kernels, x.View<float>(), cols.View<float>(), g);
        // Rows are taps (i, j) = (0,0), (0,1), (1,0), (1,1); columns are output pixels (0,0), (0,1), (1,0), (1,1).
        float[] expected = [0, 0, 0, 5, 0, 0, 4, 6, 0, 2, 0, 8, 1, 3, 7, 9];
        Assert.Equal(expected, cols.ToHost());
    }

    [Property(MaxTest = 30)]
    public Property Forward_and_backward_launchers_equal_references() =>
        Prop.ForAll(Gens.ConvKernelCase.ToArbitrary(), Gen.Elements(true, false).ToArbitrary(), (c, withBias) =>
        {
            var g = c.Geometry;
            var x = GradCheck.Values(c.Seed, g.InputLength);
            var w = GradCheck.Values(c.Seed + 1, c.WShape.Length);
            var b = withBias ? GradCheck.Values(c.Seed + 2, c.O) : [];
            var dy = GradCheck.Values(c.Seed + 3, g.OutputLength(c.O));
            var y = new float[g.OutputLength(c.O)];
            var dx = new float[x.Length];
            var dw = new float[w.Length];
            Conv2dReference.ForwardReference(x, w, b, y, g, c.O);
            Conv2dReference.BackwardReference(x, w, dy, dx, dw, [], g, c.O);
            var result = true.Label($"{c}, bias {withBias}");
            foreach (var d in Devices.All)
            {
                using var tx = d.Upload(x);
                using var tw = d.Upload(w);
                using var tb = d.Upload(b);
                using var tdy = d.Upload(dy);
                using var ty = d.Poisoned(y.Length);
                using var cols = d.Poisoned((int)g.ColumnsLength);
                using var dcols = d.Poisoned((int)g.ColumnsLength);
                using var tdx = d.Poisoned(dx.Length);
                using var tdw = d.Poisoned(dw.Length);
                var k = d.Kernels;
                Conv2d.Forward(k, tx.View<float>(), tw.View<float>(), tb.View<float>(), ty.View<float>(), cols.View<float>(), g, c.O);
                Conv2d.BackwardWeight(k, tdy.View<float>(), cols.View<float>(), tdw.View<float>(), g, c.O);
                Conv2d.BackwardInput(k, tw.View<float>(), tdy.View<float>(), dcols.View<float>(), tdx.View<float>(), g, c.O);
                result = result
                    .And(Close.All(ty.ToHost(), y, GemmAtol, GemmRtol, $"y on {k.Backend}"))
                    .And(Close.All(tdw.ToHost(), dw, GemmAtol, GemmRtol, $"dW on {k.Backend}"))
                    .And(Close.All(tdx.ToHost(), dx, GemmAtol, GemmRtol, $"dx on {k.Backend}"));
            }

            return result;
        });

    [Property(MaxTest = 40)]
    public Property Im2Col_and_Col2Im_managed_equal_the_kernels_bitwise() =>
        Prop.ForAll(Gens.ConvKernelCase.ToArbitrary(), c =>
        {
            var g = c.Geometry;
            var x = GradCheck.Values(c.Seed, g.InputLength);
            var cols = GradCheck.Values(c.Seed + 1, g.ColumnsLength);
            return Same($"im2col, {c}", [x, Garbage(g.ColumnsLength)], (k, v) => Conv2d.Im2Col(k, v[0], v[1], g))
                .And(Same($"col2im, {c}", [cols, Garbage(g.InputLength)], (k, v) => Conv2d.Col2Im(k, v[0], v[1], g)));
        });

    [Property(MaxTest = 30)]
    public Property Forward_and_BackwardInput_managed_equal_the_kernel_path_bitwise() =>
        Prop.ForAll(Gens.ConvBatchCase.ToArbitrary(), Gen.Elements(true, false).ToArbitrary(), (c, withBias) =>
        {
            // The CPU path (images in parallel, im2col/col2im fused per image, single-threaded GEMMs)
            // against the kernel path (Im2Col/Col2Im kernels, then per-image multithreaded GEMMs).
            var g = c.Geometry;
            var x = GradCheck.Values(c.Seed, g.InputLength);
            var w = GradCheck.Values(c.Seed + 1, c.WShape.Length);
            float[] b = withBias ? GradCheck.Values(c.Seed + 2, c.O) : [];
            var dy = GradCheck.Values(c.Seed + 3, g.OutputLength(c.O));
            return Same($"forward, {c}, bias {withBias}", [x, w, b, Garbage(g.OutputLength(c.O)), Garbage(g.ColumnsLength)], (k, v) => Conv2d.Forward(k, v[0], v[1], v[2], v[3], v[4], g, c.O))
                .And(Same($"backward input, {c}", [w, dy, Garbage(g.ColumnsLength), Garbage(g.InputLength)], (k, v) => Conv2d.BackwardInput(k, v[0], v[1], v[2], v[3], g, c.O)));
        });

    // Narrow kernels (K = C kh kw at most half of O, as the CNN's first layer: K = 9, O = 32).
    private static Gen<(int N, int O, int Side, int Seed)> NarrowCases { get; } =
        from n in Gen.Choose(1, 20)
        from o in Gen.Choose(18, 40)
        from side in Gen.Choose(3, 12)
        from seed in Gen.Choose(0, 1_000_000)
        select (n, o, side, seed);

    [Property(MaxTest = 25)]
    public Property Narrow_weight_gradient_through_the_transpose_is_bitwise_the_direct_one() =>
        Prop.ForAll(NarrowCases.ToArbitrary(), c =>
        {
            var g = new Conv2dGeometry(c.N, 1, c.Side, c.Side, 3, 3, 1, 1, 1, 1, 1, 1);
            var x = GradCheck.Values(c.Seed, g.InputLength);
            var dy = GradCheck.Values(c.Seed + 3, g.OutputLength(c.O));
            var cols = new float[g.ColumnsLength];
            Conv2dReference.Im2ColReference(x, cols, g);
            var d = Devices.Cpu;
            float[] Run(bool transpose)
            {
                using var tdy = d.Upload(dy);
                using var tc = d.Upload(cols);
                using var tdw = d.Poisoned(c.O * g.K);
                Conv2d.BackwardWeightManaged(d.Kernels, tdy.View<float>(), tc.View<float>(), tdw.View<float>(), g, c.O, transposeNarrow: transpose);
                return tdw.ToHost();
            }

            return Bits.Same(Run(true), Run(false), "dW through dW^T vs direct").Label($"N = {c.N}, O = {c.O}, side {c.Side}");
        });

    [Property(MaxTest = 30)]
    public Property BackwardWeight_managed_is_deterministic_and_equals_the_reference() =>
        Prop.ForAll(Gens.ConvBatchCase.ToArbitrary(), c =>
        {
            // The CPU path sums fixed image groups, then the groups in order: not the kernel path's
            // one running sum, so compare with the float64 reference, and with itself run again.
            var g = c.Geometry;
            var x = GradCheck.Values(c.Seed, g.InputLength);
            var w = GradCheck.Values(c.Seed + 1, c.WShape.Length);
            var dy = GradCheck.Values(c.Seed + 3, g.OutputLength(c.O));
            var cols = new float[g.ColumnsLength];
            Conv2dReference.Im2ColReference(x, cols, g);
            var expected = new float[w.Length];
            Conv2dReference.BackwardReference(x, w, dy, [], expected, [], g, c.O);
            var d = Devices.Cpu;
            float[] Run()
            {
                using var tdy = d.Upload(dy);
                using var tc = d.Upload(cols);
                using var tdw = d.Poisoned(w.Length);
                Conv2d.BackwardWeight(d.Kernels, tdy.View<float>(), tc.View<float>(), tdw.View<float>(), g, c.O);
                return tdw.ToHost();
            }

            var first = Run();
            var second = Run();
            bool same = first.Select(BitConverter.SingleToInt32Bits).SequenceEqual(second.Select(BitConverter.SingleToInt32Bits));
            // Sums of N Ho Wo (up to 20 * 19 * 19) products in float32 against float64.
            return same.Label("two runs differ")
                .And(Close.All(first, expected, GemmAtol * 10, GemmRtol * 10, "dW"))
                .Label(c.ToString());
        });

    [Property(MaxTest = 25)]
    public Property F_Conv2d_forward_and_vjp_match_finite_differences_of_a_padded_float64_convolution() =>
        Prop.ForAll(Gens.ConvGradCase.ToArbitrary(), Gen.Elements(true, false).ToArbitrary(), (c, withBias) =>
        {
            var inputs = new List<GradInput>
            {
                new("x", c.XShape, GradCheck.Values(c.Seed, c.XShape.Length)),
                new("weight", c.WShape, GradCheck.Values(c.Seed + 1, c.WShape.Length)),
            };
            if (withBias)
                inputs.Add(new GradInput("bias", new Shape(c.O), GradCheck.Values(c.Seed + 2, c.O)));
            var (ho, wo) = OutputSize(c);
            var dOut = GradCheck.Values(c.Seed + 3, (long)c.N * c.O * ho * wo);
            var result = true.Label($"{c}, bias {withBias}");
            foreach (var d in Devices.All)
            {
                result = result.And(GradCheck.Check(
                    d,
                    inputs,
                    (_, p) => F.Conv2d(p("x"), p("weight"), withBias ? p("bias") : null, (c.SH, c.SW), (c.PH, c.PW), (c.DH, c.DW)),
                    v => PaddedConvolution(c, v[0], v[1], withBias ? v[2] : null),
                    dOut,
                    GradAtol,
                    GradRtol).Label($"on {Devices.Describe(d)}"));
            }

            return result;
        });

    [Property(MaxTest = 20)]
    public Property Backward_reference_matches_finite_differences() =>
        Prop.ForAll(Gens.ConvGradCase.ToArbitrary(), c =>
        {
            // The spec's own backward against finite differences of the independent padded convolution.
            var g = c.Geometry;
            var x = GradCheck.Values(c.Seed, g.InputLength);
            var w = GradCheck.Values(c.Seed + 1, c.WShape.Length);
            var b = GradCheck.Values(c.Seed + 2, c.O);
            var dy = GradCheck.Values(c.Seed + 3, g.OutputLength(c.O));
            var dx = new float[x.Length];
            var dw = new float[w.Length];
            var db = new float[c.O];
            Conv2dReference.BackwardReference(x, w, dy, dx, dw, db, g, c.O);
            double[][] v = [x.Select(f => (double)f).ToArray(), w.Select(f => (double)f).ToArray(), b.Select(f => (double)f).ToArray()];
            var seed = dy.Select(f => (double)f).ToArray();
            double[] Ref(double[][] a) => PaddedConvolution(c, a[0], a[1], a[2]);
            return Close.All(dx, GradCheck.FiniteDifference(Ref, v, 0, seed), GradAtol, GradRtol, "dx")
                .And(Close.All(dw, GradCheck.FiniteDifference(Ref, v, 1, seed), GradAtol, GradRtol, "dW"))
                .And(Close.All(db, GradCheck.FiniteDifference(Ref, v, 2, seed), GradAtol, GradRtol, "db"))
                .Label(c.ToString());
        });

    [Fact]
    public void F_Conv2d_backward_is_bitwise_reproducible()
    {
        var c = new ConvCase(3, 4, 5, 9, 8, 3, 3, 2, 1, 1, 2, 2, 1, 7);
        var inputs = new[]
        {
            new GradInput("x", c.XShape, GradCheck.Values(1, c.XShape.Length)),
            new GradInput("weight", c.WShape, GradCheck.Values(2, c.WShape.Length)),
            new GradInput("bias", new Shape(c.O), GradCheck.Values(3, c.O)),
        };
        var (ho, wo) = OutputSize(c);
        var dOut = GradCheck.Values(4, (long)c.N * c.O * ho * wo);
        Tensor Run(StepScope s, Func<string, Tensor> p) => F.Conv2d(p("x"), p("weight"), p("bias"), (c.SH, c.SW), (c.PH, c.PW), (c.DH, c.DW));
        var first = GradCheck.Vjp(Devices.Cpu, inputs, Run, dOut);
        var second = GradCheck.Vjp(Devices.Cpu, inputs, Run, dOut);
        foreach (var name in new[] { "x", "weight", "bias" })
            Assert.Equal(first.Grads[name], second.Grads[name]);
    }

    [Fact]
    public void F_Conv2d_shape_errors_name_the_op_the_argument_and_both_shapes()
    {
        var d = Devices.Cpu;
        using var step = d.BeginStep();
        var x = step.Upload(new float[2 * 3 * 5 * 5], new Shape(2, 3, 5, 5));
        var w = step.Upload(new float[4 * 3 * 3 * 3], new Shape(4, 3, 3, 3));

        var e = Assert.Throws<ArgumentException>(() => F.Conv2d(step.Upload(new float[75], new Shape(3, 5, 5)), w));
        Assert.Contains("Conv2d", e.Message);
        Assert.Contains("(N, C, H, W)", e.Message);
        Assert.Contains("(3, 5, 5)", e.Message);

        var w2 = step.Upload(new float[4 * 2 * 9], new Shape(4, 2, 3, 3));
        e = Assert.Throws<ArgumentException>(() => F.Conv2d(x, w2));
        Assert.Contains("Conv2d", e.Message);
        Assert.Contains("(2, 3, 5, 5)", e.Message);
        Assert.Contains("(4, 2, 3, 3)", e.Message);

        var big = step.Upload(new float[4 * 3 * 36], new Shape(4, 3, 6, 6));
        e = Assert.Throws<ArgumentException>(() => F.Conv2d(x, big));
        Assert.Contains("(6, 6)", e.Message);
        Assert.Contains("(2, 3, 5, 5)", e.Message);
        Assert.Equal(new Shape(2, 4, 2, 2), F.Conv2d(x, big, padding: (1, 1)).Shape);
        e = Assert.Throws<ArgumentException>(() => F.Conv2d(x, w, dilation: (3, 1)));
        Assert.Contains("dilation (3, 1)", e.Message);

        e = Assert.Throws<ArgumentException>(() => F.Conv2d(x, w, step.Upload(new float[3], new Shape(3))));
        Assert.Contains("bias", e.Message);
        Assert.Contains("(4)", e.Message);

        var r = Assert.Throws<ArgumentOutOfRangeException>(() => F.Conv2d(x, w, stride: (0, 1)));
        Assert.Contains("stride", r.Message);
        r = Assert.Throws<ArgumentOutOfRangeException>(() => F.Conv2d(x, w, dilation: (1, -1)));
        Assert.Contains("dilation", r.Message);
        r = Assert.Throws<ArgumentOutOfRangeException>(() => F.Conv2d(x, w, padding: (0, -1)));
        Assert.Contains("padding", r.Message);
    }

    [Fact]
    public void Launchers_reject_wrong_lengths_naming_the_op_and_both_sizes()
    {
        var d = Devices.Cpu;
        var g = new Conv2dGeometry(2, 3, 5, 5, 3, 3, 1, 1, 0, 0, 1, 1);
        using var x = d.Upload(new float[g.InputLength - 1]);
        using var cols = d.Upload(new float[g.ColumnsLength]);
        var e = Assert.Throws<ArgumentException>(() => Conv2d.Im2Col(d.Kernels, x.View<float>(), cols.View<float>(), g));
        Assert.Contains("Conv2d.Im2Col", e.Message);
        Assert.Contains($"x has {g.InputLength - 1}", e.Message);
        Assert.Contains("(N, C, H, W) = (2, 3, 5, 5)", e.Message);
        Assert.Throws<ArgumentException>(() => new Conv2dGeometry(1, 1, 2, 2, 3, 3, 1, 1, 0, 0, 1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Conv2dGeometry(1, 1, 5, 5, 3, 3, 0, 1, 0, 0, 1, 1));
    }

    [Fact]
    public void Output_size_follows_PyTorch()
    {
        // torch.nn.Conv2d(1, 1, k, stride, padding, dilation)(torch.zeros(1, 1, H, W)).shape[2:], printed by PyTorch 1.13.
        Assert.Equal((28, 28), HoWo(new Conv2dGeometry(1, 1, 28, 28, 3, 3, 1, 1, 1, 1, 1, 1)));
        Assert.Equal((14, 14), HoWo(new Conv2dGeometry(1, 1, 28, 28, 3, 3, 2, 2, 1, 1, 1, 1)));
        Assert.Equal((3, 2), HoWo(new Conv2dGeometry(1, 1, 7, 6, 3, 3, 2, 2, 0, 0, 1, 1)));
        Assert.Equal((1, 1), HoWo(new Conv2dGeometry(1, 1, 5, 5, 3, 3, 1, 1, 0, 0, 2, 2)));
        Assert.Equal((4, 2), HoWo(new Conv2dGeometry(1, 1, 5, 5, 2, 3, 1, 2, 0, 1, 1, 2)));
    }

    // ---------------------------------------------------------------- layer

    [Fact]
    public void Layer_declares_PyTorch_parameters_and_output_shapes()
    {
        var conv = new Conv2dLayer(32, 3, Padding: 1);
        var input = new Shape(1, 28, 28);
        Assert.Equal(new Shape(32, 28, 28), conv.OutputShape(input));
        var ps = conv.Parameters(input);
        Assert.Equal(["weight", "bias"], ps.Select(p => p.Name));
        Assert.Equal(new Shape(32, 1, 3, 3), ps[0].Shape);
        Assert.Equal(new Shape(32), ps[1].Shape);
        Assert.Equal(new Shape(64, 7, 7), new Conv2dLayer(64, 3, Stride: 2, Padding: 1).OutputShape(new Shape(32, 14, 14)));
        Assert.Single(new Conv2dLayer(8, 3, UseBias: false).Parameters(input));

        var odd = new Conv2dLayer(4, 1) { KernelHW = (3, 5), StrideHW = (1, 2), PaddingHW = (0, 2), DilationHW = (2, 1) };
        Assert.Equal(new Shape(4, 5, 5), odd.OutputShape(new Shape(2, 9, 10)));
        Assert.Equal(new Shape(4, 2, 3, 5), odd.Parameters(new Shape(2, 9, 10))[0].Shape);
    }

    [Fact]
    public void Layer_shape_errors_name_the_layer_and_both_shapes()
    {
        var conv = new Conv2dLayer(16, 5);
        var e = Assert.Throws<LayerShapeException>(() => conv.OutputShape(new Shape(784)));
        Assert.Contains("Conv2d(16, 5x5)", e.Message);
        Assert.Contains("(784,)", e.Message);
        Assert.Contains("(C, H, W)", e.Message);
        e = Assert.Throws<LayerShapeException>(() => conv.OutputShape(new Shape(3, 4, 9)));
        Assert.Contains("Conv2d(16, 5x5)", e.Message);
        Assert.Contains("(3, 4, 9)", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new Conv2dLayer(16, 3, Stride: 0).OutputShape(new Shape(1, 8, 8)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Conv2dLayer(0, 3).OutputShape(new Shape(1, 8, 8)));
    }

    [Property(MaxTest = 10)]
    public Property Layer_init_draws_weight_and_bias_from_U_of_one_over_sqrt_fan_in() =>
        Prop.ForAll(Gen.Choose(1, 8).ToArbitrary(), Gen.Choose(1, 5).ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), (cin, k, seed) =>
        {
            // 64 output channels: fan_out = 64 k^2 differs from fan_in = C k^2, and 64 bias draws all
            // below 0.8 of the bound have probability 0.8^64 (about 1e-6).
            var conv = new Conv2dLayer(64, k);
            var (p, s) = conv.Init(Devices.Cpu, new Shape(cin, 8, 8), Rng.Create((ulong)seed));
            using (p)
            using (s)
            {
                var host = p.ToHost();
                double bound = 1 / Math.Sqrt(cin * k * k);
                var w = host["weight"].Data;
                var b = host["bias"].Data;
                // Inside the bound, and spread over it (the largest of n uniform draws is near the bound).
                bool inside = w.All(v => Math.Abs(v) <= bound) && b.All(v => Math.Abs(v) <= bound);
                bool spread = w.Max(v => Math.Abs(v)) > 0.8 * bound && b.Max(v => Math.Abs(v)) > 0.8 * bound;
                return (inside && spread).Label($"C {cin}, k {k}: bound {bound}, max |w| {w.Max(v => Math.Abs(v))}, max |b| {b.Max(v => Math.Abs(v))}");
            }
        });

    [Fact]
    public void Layer_forward_equals_reference_with_its_own_parameters()
    {
        var conv = new Conv2dLayer(3, 3) { StrideHW = (2, 1), PaddingHW = (1, 0) };
        var input = new Shape(2, 6, 5);
        var d = Devices.Cpu;
        var (p, s) = conv.Init(d, input, Rng.Create(5));
        using (p)
        using (s)
        {
            var host = p.ToHost();
            var g = new Conv2dGeometry(2, 2, 6, 5, 3, 3, 2, 1, 1, 0, 1, 1);
            var x = GradCheck.Values(9, g.InputLength);
            var expected = new float[g.OutputLength(3)];
            Conv2dReference.ForwardReference(x, host["weight"].Data, host["bias"].Data, expected, g, 3);
            using var step = d.BeginStep();
            var y = conv.Predict(p, s, step.Upload(x, new Shape(2, 2, 6, 5)));
            Assert.Equal(new Shape(2, 3, g.HO, g.WO), y.Shape);
            var (ok, label) = Close.Check(y.ToHost(), expected, GemmAtol, GemmRtol, "layer y");
            Assert.True(ok, label);
        }
    }

    // ---------------------------------------------------------------- independent float64 model

    private static (int Ho, int Wo) HoWo(Conv2dGeometry g) => (g.HO, g.WO);

    private static (int Ho, int Wo) OutputSize(ConvCase c) =>
        ((((c.H + (2 * c.PH) - (c.DH * (c.KH - 1)) - 1) / c.SH) + 1), (((c.W + (2 * c.PW) - (c.DW * (c.KW - 1)) - 1) / c.SW) + 1));

    /// <summary>Convolution in float64 over an explicitly zero-padded copy of x: no bounds tests, no im2col.</summary>
    private static double[] PaddedConvolution(ConvCase c, double[] x, double[] w, double[]? b)
    {
        int hp = c.H + (2 * c.PH), wp = c.W + (2 * c.PW);
        var (ho, wo) = OutputSize(c);
        var y = new double[c.N * c.O * ho * wo];
        var padded = new double[hp * wp];
        for (int n = 0; n < c.N; n++)
        {
            for (int ci = 0; ci < c.C; ci++)
            {
                Array.Clear(padded);
                for (int r = 0; r < c.H; r++)
                {
                    for (int q = 0; q < c.W; q++)
                        padded[((r + c.PH) * wp) + q + c.PW] = x[(((n * c.C) + ci) * c.H * c.W) + (r * c.W) + q];
                }

                for (int o = 0; o < c.O; o++)
                {
                    for (int oy = 0; oy < ho; oy++)
                    {
                        for (int ox = 0; ox < wo; ox++)
                        {
                            double s = 0;
                            for (int i = 0; i < c.KH; i++)
                            {
                                for (int j = 0; j < c.KW; j++)
                                    s += w[(((o * c.C) + ci) * c.KH * c.KW) + (i * c.KW) + j] * padded[(((oy * c.SH) + (i * c.DH)) * wp) + (ox * c.SW) + (j * c.DW)];
                            }

                            y[(((n * c.O) + o) * ho * wo) + (oy * wo) + ox] += s;
                        }
                    }
                }
            }
        }

        if (b is not null)
        {
            for (int e = 0; e < y.Length; e++)
                y[e] += b[(e / (ho * wo)) % c.O];
        }

        return y;
    }

    private static (double Value, double Abs) Dot(float[] a, float[] b)
    {
        double s = 0, abs = 0;
        for (int i = 0; i < a.Length; i++)
        {
            s += (double)a[i] * b[i];
            abs += Math.Abs((double)a[i] * b[i]);
        }

        return (s, abs);
    }

    // Output buffers start as this pattern (NaNs among values) in both runs: an entry left unwritten shows.
    private static float[] Garbage(long n) =>
        Enumerable.Range(0, checked((int)n)).Select(i => i % 3 == 0 ? float.NaN : i * 0.25f).ToArray();

    // Runs launch on fresh copies of the buffers, the managed CPU path then the ILGPU kernels
    // (Devices.CpuKernels), and compares every buffer bit for bit.
    private static Property Same(string what, float[][] buffers, Action<KernelHost, ArrayView<float>[]> launch) =>
        KernelParity.Same(what, buffers, launch);
}
