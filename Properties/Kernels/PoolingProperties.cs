using IlgpuTrain.Layers;
using AvgPool2dLayer = IlgpuTrain.Layers.AvgPool2d;
using GlobalAvgPoolLayer = IlgpuTrain.Layers.GlobalAvgPool;
using MaxPool2dLayer = IlgpuTrain.Layers.MaxPool2d;

namespace IlgpuTrain.Properties.Kernels;

/// <summary>
/// Pooling (Kernels/Pooling.cs, Functional/Ops/Pooling.cs, Layers/Pooling.cs): kernels equal their
/// references on both launch shapes; VJPs equal central finite differences of float64 nested
/// loops written here; invariants of max and average pooling; PyTorch known values; shape errors.
/// </summary>
public class PoolingProperties
{
    // Max and average pooling kernels sum in the references' order (outputs row-major), so they
    // must equal them bit for bit: any tolerance would hide a wrong tap.
    private const double Exact = 0;

    // Global average pooling sums in float per plane; the reference sums in float64. The float
    // sum of S values in [-10, 10] is off by at most S * 2^-24 * 10 before the division by S.
    private const double MeanAtol = 1e-5;
    private const double MeanRtol = 1e-5;

    // Finite differences in float64 against float kernels: as LinearProperties.
    private const double GradAtol = 2e-4;
    private const double GradRtol = 2e-3;

    // A sum of dx against a sum of dy: float additions in different orders, values |dy| <= 2.
    private const double SumAtol = 1e-4;
    private const double SumRtol = 1e-5;

    private static Arbitrary<PoolCase> MaxCases => Gens.Pool(dilated: true).ToArbitrary();

    private static Arbitrary<PoolCase> AvgCases => Gens.Pool(dilated: false).ToArbitrary();

    // ---------------------------------------------------------------- kernels equal references

    [Property(MaxTest = 100)]
    public Property MaxPool2d_forward_equals_reference_values_and_argmax() =>
        Prop.ForAll(MaxCases, c =>
        {
            var x = c.X;
            var (y, idx) = ReferenceMax(x, c.G);
            var result = true.Label(c.ToString());
            foreach (var d in Devices.All)
            {
                var (dy, di) = MaxForward(d, x, c.G);
                result = result
                    .And(Close.All(dy, y, Exact, Exact, $"y on {Devices.Describe(d)}"))
                    .And(di.AsSpan().SequenceEqual(idx).Label($"argmax on {Devices.Describe(d)}: [{string.Join(", ", di.Take(12))}] vs [{string.Join(", ", idx.Take(12))}]"));
            }

            return result;
        });

    [Property(MaxTest = 100)]
    public Property MaxPool2d_backward_equals_scatter_reference() =>
        Prop.ForAll(MaxCases, c =>
        {
            var (_, idx) = ReferenceMax(c.X, c.G);
            var dy = c.Dy;
            var expected = new float[c.G.InputLength];
            PoolingReference.MaxPool2dBackwardReference(dy, idx, expected, c.G);
            var result = true.Label(c.ToString());
            foreach (var d in Devices.All)
                result = result.And(Close.All(MaxBackward(d, dy, idx, c.G), expected, Exact, Exact, $"dx on {Devices.Describe(d)}"));
            return result;
        });

    [Property(MaxTest = 100)]
    public Property AvgPool2d_forward_and_backward_equal_references() =>
        Prop.ForAll(AvgCases, c =>
        {
            var (x, dy) = (c.X, c.Dy);
            var y = new float[c.G.OutputLength];
            var dx = new float[c.G.InputLength];
            PoolingReference.AvgPool2dForwardReference(x, y, c.G, c.CountIncludePad);
            PoolingReference.AvgPool2dBackwardReference(dy, dx, c.G, c.CountIncludePad);
            var result = true.Label(c.ToString());
            foreach (var d in Devices.All)
            {
                result = result
                    .And(Close.All(AvgForward(d, x, c.G, c.CountIncludePad), y, Exact, Exact, $"y on {Devices.Describe(d)}"))
                    .And(Close.All(AvgBackward(d, dy, c.G, c.CountIncludePad), dx, Exact, Exact, $"dx on {Devices.Describe(d)}"));
            }

            return result;
        });

    [Property(MaxTest = 40)]
    public Property GlobalAvgPool_forward_and_backward_equal_references() =>
        Prop.ForAll(AvgCases, c =>
        {
            var g = c.G;
            int s = g.H * g.W;
            var x = c.X;
            var dy = Gens.Random(c.Seed + 2, g.N * g.C, -2f, 2f);
            var y = new float[g.N * g.C];
            var dx = new float[x.Length];
            PoolingReference.GlobalAvgPoolForwardReference(x, y, s);
            PoolingReference.GlobalAvgPoolBackwardReference(dy, dx, s);
            var result = true.Label($"(N, C, S) = ({g.N}, {g.C}, {s})");
            foreach (var d in Devices.All)
            {
                using var tx = d.Upload(x);
                using var ty = d.Poisoned(y.Length);
                using var tdy = d.Upload(dy);
                using var tdx = d.Poisoned(dx.Length);
                Pooling.GlobalAvgPoolForward(d.Kernels, tx.View<float>(), ty.View<float>(), g.N, g.C, s);
                Pooling.GlobalAvgPoolBackward(d.Kernels, tdy.View<float>(), tdx.View<float>(), g.N, g.C, s);
                result = result
                    .And(Close.All(ty.ToHost(), y, MeanAtol, MeanRtol, $"y on {Devices.Describe(d)}"))
                    .And(Close.All(tdx.ToHost(), dx, Exact, Exact, $"dx on {Devices.Describe(d)}"));
            }

            return result;
        });

    // ---------------------------------------------------------------- VJPs against finite differences

    [Property(MaxTest = 30)]
    public Property MaxPool2d_vjp_matches_finite_differences() =>
        Prop.ForAll(Gens.Pool(dilated: true, wide: false, maxSide: 8).Where(c => !HasEmptyWindow(c.G)).ToArbitrary(), c =>
        {
            var g = c.G;
            var inputs = new[] { new GradInput("x", new Shape(g.N, g.C, g.H, g.W), c.DistinctX) };
            return GradCheck.Check(Devices.Cpu, inputs, (_, p) => F.MaxPool2d(p("x"), (g.KernelH, g.KernelW), (g.StrideH, g.StrideW), (g.PadH, g.PadW), (g.DilationH, g.DilationW)),
                    v => Max64(v[0], g), c.Dy, GradAtol, GradRtol)
                .Label(c.ToString());
        });

    [Property(MaxTest = 30)]
    public Property AvgPool2d_vjp_matches_finite_differences() =>
        Prop.ForAll(Gens.Pool(dilated: false, wide: false, maxSide: 8).ToArbitrary(), c =>
        {
            var g = c.G;
            var inputs = new[] { new GradInput("x", new Shape(g.N, g.C, g.H, g.W), c.X) };
            return GradCheck.Check(Devices.Cpu, inputs, (_, p) => F.AvgPool2d(p("x"), (g.KernelH, g.KernelW), (g.StrideH, g.StrideW), (g.PadH, g.PadW), c.CountIncludePad),
                    v => Avg64(v[0], g, c.CountIncludePad), c.Dy, GradAtol, GradRtol)
                .Label(c.ToString());
        });

    [Property(MaxTest = 30)]
    public Property GlobalAvgPool_is_the_mean_per_plane_and_its_vjp_matches_finite_differences() =>
        Prop.ForAll(Gens.Pool(dilated: false, wide: false, maxSide: 8).ToArbitrary(), c =>
        {
            var g = c.G;
            int s = g.H * g.W;
            double[] Mean64(double[][] v)
            {
                var y = new double[g.N * g.C];
                for (int p = 0; p < y.Length; p++)
                    y[p] = v[0].Skip(p * s).Take(s).Average();
                return y;
            }

            var inputs = new[] { new GradInput("x", new Shape(g.N, g.C, g.H, g.W), c.X) };
            return GradCheck.Check(Devices.Cpu, inputs, (_, p) => F.GlobalAvgPool(p("x")), Mean64, Gens.Random(c.Seed + 2, g.N * g.C, -2f, 2f), GradAtol, GradRtol)
                .Label($"(N, C, H, W) = ({g.N}, {g.C}, {g.H}, {g.W})");
        });

    // ---------------------------------------------------------------- invariants

    [Property(MaxTest = 40)]
    public Property Max_is_at_least_every_window_element_and_is_the_element_at_its_argmax() =>
        Prop.ForAll(MaxCases, c =>
        {
            var g = c.G;
            var x = c.X;
            var (y, idx) = MaxForward(Devices.Cpu, x, g);
            for (int p = 0; p < g.N * g.C; p++)
            {
                for (int oh = 0; oh < g.OutH; oh++)
                {
                    for (int ow = 0; ow < g.OutW; ow++)
                    {
                        int o = (((p * g.OutH) + oh) * g.OutW) + ow;
                        var window = Taps(g, oh, ow).ToList();
                        if (window.Count == 0)
                        {
                            if (!float.IsNegativeInfinity(y[o]))
                                return false.Label($"{c}: output {o} has an empty window but is {y[o]}, not -inf");
                            continue;
                        }

                        foreach (var (ih, iw) in window)
                        {
                            if (x[(p * g.H * g.W) + (ih * g.W) + iw] > y[o])
                                return false.Label($"{c}: output {o} = {y[o]} is below x at ({ih}, {iw})");
                        }

                        if (!window.Contains((idx[o] / g.W, idx[o] % g.W)) || x[(p * g.H * g.W) + idx[o]] != y[o])
                            return false.Label($"{c}: output {o} = {y[o]} has argmax {idx[o]}, not a window element holding it");
                    }
                }
            }

            return true.Label(c.ToString());
        });

    [Property(MaxTest = 40)]
    public Property Every_dy_reaches_exactly_one_input_in_max_pooling() =>
        Prop.ForAll(MaxCases.Generator.Where(c => !HasEmptyWindow(c.G)).ToArbitrary(), c =>
        {
            var (_, idx) = MaxForward(Devices.Cpu, c.X, c.G);
            var dy = c.Dy;
            var dx = MaxBackward(Devices.Cpu, dy, idx, c.G);
            return Close.Scalar(dx.Sum(v => (double)v), dy.Sum(v => (double)v), SumAtol, SumRtol, "sum dx vs sum dy").Label(c.ToString());
        });

    [Property(MaxTest = 40)]
    public Property Average_pooling_passes_all_of_dy_back_when_padding_does_not_count() =>
        Prop.ForAll(AvgCases, c =>
        {
            // Each output spreads dy over divisor-many taps; when the divisor counts only taps
            // inside the plane (count_include_pad false, or no padding), all of dy arrives.
            var g = c.G;
            bool all = !c.CountIncludePad || (g.PadH == 0 && g.PadW == 0);
            var dy = c.Dy;
            var dx = AvgBackward(Devices.Cpu, dy, g, c.CountIncludePad);
            double lost = 0;
            if (!all)
            {
                for (int p = 0; p < g.N * g.C; p++)
                {
                    for (int oh = 0; oh < g.OutH; oh++)
                    {
                        for (int ow = 0; ow < g.OutW; ow++)
                            lost += dy[(((p * g.OutH) + oh) * g.OutW) + ow] * (1 - (Taps(g, oh, ow).Count() / (double)(g.KernelH * g.KernelW)));
                    }
                }
            }

            return Close.Scalar(dx.Sum(v => (double)v), dy.Sum(v => (double)v) - lost, SumAtol, SumRtol, "sum dx vs sum dy minus the padding's share").Label(c.ToString());
        });

    [Fact]
    public void Non_overlapping_average_pooling_then_global_average_is_the_global_average()
    {
        // (2, 3, 6, 4) pooled 2x2 with stride 2 tiles each plane exactly, so the mean of the means is the mean.
        var d = Devices.Cpu;
        var x = Gens.Random(5, 2 * 3 * 6 * 4);
        using var step = d.BeginStep();
        var tx = step.Upload(x, new Shape(2, 3, 6, 4));
        var twice = F.GlobalAvgPool(F.AvgPool2d(tx, 2)).ToHost();
        var once = F.GlobalAvgPool(tx).ToHost();
        Assert.True(Close.Check(twice, once, 1e-6, 1e-5, "mean of 2x2 means vs mean").Ok);
    }

    // ---------------------------------------------------------------- known values from PyTorch

    // x = torch.tensor([[[[1.,3.,2.,0.,5.],[4.,4.,-1.,2.,2.],[0.,6.,6.,1.,-3.],[2.,-2.,7.,7.,1.]]]], requires_grad=True)
    // dy = torch.tensor([[[[1.,2.,3.],[4.,5.,6.]]]])
    private static readonly float[] KnownX = [1, 3, 2, 0, 5, 4, 4, -1, 2, 2, 0, 6, 6, 1, -3, 2, -2, 7, 7, 1];
    private static readonly float[] KnownDy = [1, 2, 3, 4, 5, 6];

    [Fact]
    public void Max_pooling_matches_PyTorch_on_a_padded_overlapping_case_with_ties()
    {
        // y, i = F.max_pool2d(x, 3, stride=2, padding=1, return_indices=True); y.backward(dy)   (PyTorch 1.13 CPU)
        float[] y = [4, 4, 5, 6, 7, 7];
        int[] i = [5, 6, 4, 11, 17, 18];
        float[] dx = [0, 0, 0, 0, 3, 1, 2, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 5, 6, 0];
        var (gy, gi, gdx) = RunF(x => F.MaxPool2dWithIndices(x, (3, 3), (2, 2), (1, 1)));
        Assert.Equal(y, gy);
        Assert.Equal(i, gi);
        Assert.Equal(dx, gdx);
    }

    [Fact]
    public void Average_pooling_matches_PyTorch_with_and_without_counting_padding()
    {
        // a = F.avg_pool2d(x, 3, stride=2, padding=1); a.backward(dy)   (PyTorch 1.13 CPU)
        float[] y = [1.3333333730697632f, 1.1111111640930176f, 1.0f, 1.5555555820465088f, 3.3333332538604736f, 1.1111111640930176f];
        float[] dx =
        [
            0.1111111119389534f, 0.3333333432674408f, 0.2222222238779068f, 0.5555555820465088f, 0.3333333432674408f,
            0.5555555820465088f, 1.3333333730697632f, 0.7777777910232544f, 1.777777910232544f, 1.0f,
            0.4444444477558136f, 1.0f, 0.5555555820465088f, 1.2222223281860352f, 0.6666666865348816f,
            0.4444444477558136f, 1.0f, 0.5555555820465088f, 1.2222223281860352f, 0.6666666865348816f,
        ];
        var (gy, _, gdx) = RunF(x => (F.AvgPool2d(x, 3, 2, 1), null));
        Assert.True(Close.Check(gy, y, 1e-6, 1e-6, "y").Ok, string.Join(", ", gy));
        Assert.True(Close.Check(gdx, dx, 1e-6, 1e-6, "dx").Ok, string.Join(", ", gdx));

        // a = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False); a.backward(dy)
        y = [3.0f, 1.6666666269302368f, 2.25f, 2.3333332538604736f, 3.3333332538604736f, 1.6666666269302368f];
        dx =
        [
            0.25f, 0.5833333730697632f, 0.3333333432674408f, 1.0833333730697632f, 0.75f,
            0.9166666865348816f, 1.8055555820465088f, 0.888888955116272f, 2.6388888359069824f, 1.75f,
            0.6666666865348816f, 1.2222223281860352f, 0.5555555820465088f, 1.5555555820465088f, 1.0f,
            0.6666666865348816f, 1.2222223281860352f, 0.5555555820465088f, 1.5555555820465088f, 1.0f,
        ];
        (gy, _, gdx) = RunF(x => (F.AvgPool2d(x, 3, 2, 1, countIncludePad: false), null));
        Assert.True(Close.Check(gy, y, 1e-6, 1e-6, "y").Ok, string.Join(", ", gy));
        Assert.True(Close.Check(gdx, dx, 1e-6, 1e-6, "dx").Ok, string.Join(", ", gdx));
    }

    [Fact]
    public void Max_pooling_propagates_NaN_and_reports_PyTorch_indices_for_all_minus_infinity_windows()
    {
        var d = Devices.Cpu;

        // x = torch.tensor([[[[1.,nan,3.],[nan,0.,1.],[2.,2.,2.]]]]); F.max_pool2d(x, 2, 1, return_indices=True)
        //   -> [[nan, nan], [nan, 2.]], indices [[3, 1], [3, 7]]   (the last NaN of a window wins)
        var g = Pool2dGeometry.Create("test", 1, 1, 3, 3, (2, 2), (1, 1), (0, 0), (1, 1));
        var (y, i) = MaxForward(d, [1, float.NaN, 3, float.NaN, 0, 1, 2, 2, 2], g);
        Assert.True(float.IsNaN(y[0]) && float.IsNaN(y[1]) && float.IsNaN(y[2]) && y[3] == 2, string.Join(", ", y));
        Assert.Equal([3, 1, 3, 7], i);

        // F.max_pool2d(torch.full((1,1,2,2), -inf), 2, 1, padding=1, return_indices=True)
        //   -> all -inf, indices [[0, 0, 1], [0, 0, 1], [2, 2, 3]]
        g = Pool2dGeometry.Create("test", 1, 1, 2, 2, (2, 2), (1, 1), (1, 1), (1, 1));
        (y, i) = MaxForward(d, [float.NegativeInfinity, float.NegativeInfinity, float.NegativeInfinity, float.NegativeInfinity], g);
        Assert.All(y, v => Assert.True(float.IsNegativeInfinity(v)));
        Assert.Equal([0, 0, 1, 0, 0, 1, 2, 2, 3], i);

        // F.max_pool2d(torch.tensor([[[[1.]]]]), 2, padding=1, dilation=2, return_indices=True)
        //   -> -inf, index 2: the window's taps (-1, 1) both miss the 1x1 plane
        g = Pool2dGeometry.Create("test", 1, 1, 1, 1, (2, 2), (2, 2), (1, 1), (2, 2));
        (y, i) = MaxForward(d, [1], g);
        Assert.True(float.IsNegativeInfinity(y[0]));
        Assert.Equal([2], i);
        Assert.Equal([0f], MaxBackward(d, [5f], i, g));
    }

    [Fact]
    public void A_window_whose_taps_all_miss_the_plane_passes_no_gradient_even_when_its_index_aliases_an_element()
    {
        // Found by MaxPool2d_backward_equals_scatter_reference (seed (10746808884568661584,11716946700384250411,97)):
        // (N, C, H, W) = (2, 1, 15, 1), kernel (4, 2), stride (3, 2), padding (1, 1), dilation (1, 2).
        // Every window's columns are -1 and 1, outside the 1-wide plane, so y = -inf and PyTorch's
        // index (first tap past the border) is ih W + 1: a real element of the next row. A scatter
        // by index would credit it; the gradient of a constant is 0.
        var d = Devices.Cpu;
        var g = Pool2dGeometry.Create("test", 2, 1, 15, 1, (4, 2), (3, 2), (1, 1), (1, 2));
        var (y, idx) = MaxForward(d, Gens.Random(1, 30), g);
        Assert.All(y, v => Assert.True(float.IsNegativeInfinity(v)));
        Assert.Contains(idx, i => i > 0 && i < 15);
        var dy = Gens.Random(2, (int)g.OutputLength, 1f, 2f);
        var expected = new float[30];
        PoolingReference.MaxPool2dBackwardReference(dy, idx, expected, g);
        Assert.All(expected, v => Assert.Equal(0f, v));
        foreach (var dev in Devices.All)
            Assert.All(MaxBackward(dev, dy, idx, g), v => Assert.Equal(0f, v));
    }

    // ---------------------------------------------------------------- shape errors

    [Fact]
    public void F_ops_reject_bad_ranks_windows_strides_and_too_small_inputs_with_clear_messages()
    {
        using var step = Devices.Cpu.BeginStep();
        var x3 = step.Upload(new float[12], new Shape(1, 3, 4));
        var x = step.Upload(new float[2 * 3 * 4 * 5], new Shape(2, 3, 4, 5));

        var e = Assert.ThrowsAny<ArgumentException>(() => F.MaxPool2d(x3, 2));
        Assert.Contains("MaxPool2d", e.Message);
        Assert.Contains("(N, C, H, W)", e.Message);
        Assert.Contains("(1, 3, 4)", e.Message);
        Assert.Contains("(N, C, H, W)", Assert.ThrowsAny<ArgumentException>(() => F.AvgPool2d(x3, 2)).Message);
        Assert.Contains("(N, C, H, W)", Assert.ThrowsAny<ArgumentException>(() => F.GlobalAvgPool(x3)).Message);

        e = Assert.Throws<ArgumentOutOfRangeException>(() => F.MaxPool2d(x, 3, padding: 2));
        Assert.Contains("at most half the kernel", e.Message);
        Assert.Contains("(2, 2)", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => F.AvgPool2d(x, 2, padding: 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => F.AvgPool2d(x, 2, padding: -1));

        foreach (int s in new[] { 0, -1 })
        {
            e = Assert.Throws<ArgumentOutOfRangeException>(() => F.MaxPool2d(x, 2, stride: s));
            Assert.Contains("stride must be at least 1", e.Message);
            Assert.Throws<ArgumentOutOfRangeException>(() => F.AvgPool2d(x, 2, stride: s));
        }

        Assert.Throws<ArgumentOutOfRangeException>(() => F.MaxPool2d(x, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => F.MaxPool2d(x, 2, dilation: 0));

        e = Assert.ThrowsAny<ArgumentException>(() => F.MaxPool2d(x, 5));
        Assert.Contains("MaxPool2d", e.Message);
        Assert.Contains("(OH, OW) = (0, 1)", e.Message);
        Assert.Contains("(2, 3, 4, 5)", e.Message);
        e = Assert.ThrowsAny<ArgumentException>(() => F.AvgPool2d(x, (4, 6)));
        Assert.Contains("(OH, OW) = (1, 0)", e.Message);
    }

    [Fact]
    public void Launchers_name_the_op_the_argument_and_both_sizes()
    {
        var d = Devices.Cpu;
        var g = Pool2dGeometry.Create("test", 2, 3, 4, 4, (2, 2), (2, 2), (0, 0), (1, 1));
        using var x = d.Upload(new float[96]);
        using var y = d.Upload(new float[23]);
        using var idx = d.Upload(new int[24]);
        var e = Assert.ThrowsAny<ArgumentException>(() => Pooling.MaxPool2dForward(d.Kernels, x.View<float>(), y.View<float>(), idx.View<int>(), g));
        Assert.Contains("Pooling.MaxPool2dForward", e.Message);
        Assert.Contains("y has 23", e.Message);
        Assert.Contains("(N, C, OH, OW) = (2, 3, 2, 2) needs 24", e.Message);
        e = Assert.ThrowsAny<ArgumentException>(() => Pooling.AvgPool2dBackward(d.Kernels, y.View<float>(), x.View<float>(), g));
        Assert.Contains("Pooling.AvgPool2dBackward", e.Message);
        using var y12 = d.Upload(new float[12]);
        e = Assert.ThrowsAny<ArgumentException>(() => Pooling.AvgPool2dForward(d.Kernels, x.View<float>(), y12.View<float>(), g with { DilationH = 2, OutH = 1 }));
        Assert.Contains("dilation", e.Message);
        e = Assert.ThrowsAny<ArgumentException>(() => Pooling.MaxPool2dForward(d.Kernels, x.View<float>(), y.View<float>(), idx.View<int>(), g with { OutH = 3 }));
        Assert.Contains("(3, 2)", e.Message);
        e = Assert.ThrowsAny<ArgumentException>(() => Pooling.GlobalAvgPoolForward(d.Kernels, x.View<float>(), y.View<float>(), 2, 3, 16));
        Assert.Contains("Pooling.GlobalAvgPoolForward", e.Message);
        Assert.Contains("(N, C) = (2, 3) needs 6", e.Message);
    }

    // ---------------------------------------------------------------- layers

    [Property(MaxTest = 40)]
    public Property Layer_output_shapes_count_the_windows_and_match_the_F_ops() =>
        Prop.ForAll(AvgCases, c =>
        {
            var g = c.G;
            int k = g.KernelH, s = g.StrideH, p = g.PadH;
            var input = new Shape(g.C, g.H, g.W);

            // Count the window positions that fit, independent of the closed form.
            static int Fits(int size, int k, int s, int p)
            {
                int count = 0;
                for (int start = -p; start + k <= size + p; start += s)
                    count++;
                return count;
            }

            int oh = Fits(g.H, k, s, p), ow = Fits(g.W, k, s, p);
            Layer max = new MaxPool2dLayer(k, s, p), avg = new AvgPool2dLayer(k, s, p, c.CountIncludePad);
            if (oh < 1 || ow < 1)
            {
                return Throws(() => max.OutputShape(input)).And(Throws(() => avg.OutputShape(input))).Label($"{input}, k {k}, s {s}, p {p}: no window fits");
            }

            using var step = Devices.Cpu.BeginStep();
            var x = step.Upload(new float[g.C * g.H * g.W], new Shape(1, g.C, g.H, g.W));
            var expected = new Shape(g.C, oh, ow);
            return (max.OutputShape(input) == expected).Label($"MaxPool2d {max.OutputShape(input)} vs {expected}")
                .And((avg.OutputShape(input) == expected).Label($"AvgPool2d {avg.OutputShape(input)} vs {expected}"))
                .And((F.MaxPool2d(x, k, s, p).Shape == new Shape(1, g.C, oh, ow)).Label("F.MaxPool2d shape"))
                .And((new GlobalAvgPoolLayer().OutputShape(input) == new Shape(g.C)).Label("GlobalAvgPool"))
                .Label($"{input}, k {k}, s {s}, p {p}");

            static Property Throws(Action a)
            {
                try
                {
                    a();
                    return false.Label("did not throw");
                }
                catch (LayerShapeException)
                {
                    return true.Label("threw");
                }
            }
        });

    [Fact]
    public void Layer_shape_errors_name_the_layer_and_both_shapes()
    {
        var e = Assert.Throws<LayerShapeException>(() => new MaxPool2dLayer(3).OutputShape(new Shape(4, 2, 2)));
        Assert.Contains("MaxPool2d(3)", e.Message);
        Assert.Contains("(4, 2, 2)", e.Message);
        Assert.Contains("(4, 0, 0)", e.Message);
        e = Assert.Throws<LayerShapeException>(() => new AvgPool2dLayer(2, 1, 1, CountIncludePad: false).OutputShape(new Shape(8, 5)));
        Assert.Contains("AvgPool2d(2, stride 1, padding 1, count_include_pad false)", e.Message);
        Assert.Contains("(C, H, W)", e.Message);
        e = Assert.Throws<LayerShapeException>(() => new GlobalAvgPoolLayer().OutputShape(new Shape(10)));
        Assert.Contains("GlobalAvgPool", e.Message);
        Assert.Contains("(10,)", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new MaxPool2dLayer(2, 0).OutputShape(new Shape(1, 4, 4)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new AvgPool2dLayer(2, Padding: 2).OutputShape(new Shape(1, 4, 4)));
    }

    [Fact]
    public void A_pooling_pipeline_runs_as_a_model_and_equals_the_F_ops()
    {
        var d = Devices.Cpu;
        var model = new MaxPool2dLayer(2) >> new AvgPool2dLayer(3, 1, 1) >> new GlobalAvgPoolLayer();
        Assert.Equal(new Shape(3), model.OutputShape(new Shape(3, 6, 7)));
        var (parameters, state) = model.Init(d, new Shape(3, 6, 7), Rng.Create(1));
        using (parameters)
        using (state)
        {
            var x = Gens.Random(9, 2 * 3 * 6 * 7);
            using var step = d.BeginStep();
            var tx = step.Upload(x, new Shape(2, 3, 6, 7));
            var y = model.Predict(parameters, state, tx);
            Assert.Equal(new Shape(2, 3), y.Shape);
            Assert.Equal(F.GlobalAvgPool(F.AvgPool2d(F.MaxPool2d(tx, 2), 3, 1, 1)).ToHost(), y.ToHost());
        }
    }

    // ---------------------------------------------------------------- managed CPU path = ILGPU kernel

    // The generated cases; the 2x2, stride 2 window the managed max pooling special-cases (odd
    // sides included); and now and then one with enough planes that CpuLoops splits them over threads.
    private static Arbitrary<PoolCase> ParityCases(bool dilated) =>
        Gen.Frequency(
            (4, Gens.Pool(dilated)),
            (2, from n in Gen.Elements(0, 1, 2, 3)
                from c in Gen.Elements(1, 2, 5)
                from h in Gen.Elements(2, 3, 4, 7, 16, 17)
                from w in Gen.Elements(2, 3, 5, 8, 17, 28)
                from seed in Gen.Choose(0, 1_000_000)
                from ties in Gen.Elements(true, false)
                select new PoolCase(Pool2dGeometry.Create("gen", n, c, h, w, (2, 2), (2, 2), (0, 0), (1, 1)), seed, seed % 2 == 0, ties)),
            (1, from n in Gen.Elements(3, 4)
                from k in Gen.Elements(2, 3)
                from seed in Gen.Choose(0, 1_000_000)
                from ties in Gen.Elements(true, false)
                select new PoolCase(Pool2dGeometry.Create("gen", n, 11, 45, 47, (k, k), (2, 2), (1, 1), (1, 1)), seed, seed % 2 == 0, ties))).ToArbitrary();

    [Property(MaxTest = 40)]
    public Property MaxPool2d_managed_equals_kernel_forward_and_backward() =>
        Prop.ForAll(ParityCases(dilated: true), Gen.Choose(0, 3).ToArbitrary(), (c, flags) =>
        {
            var g = c.G;
            bool corrupt = (flags & 1) != 0, specials = (flags & 2) != 0;
            var x = c.X;
            if (specials && x.Length > 0)
            {
                // NaNs (the last one of a window wins) and -inf (all -inf windows keep the first tap).
                var r = new Random(c.Seed + 7);
                for (int k = 0; k < Math.Max(1, x.Length / 8); k++)
                    x[r.Next(x.Length)] = r.Next(3) == 0 ? float.NaN : float.NegativeInfinity;
            }

            int outLen = (int)g.OutputLength;
            // The backward's argmax: the forward's, or with some entries moved anywhere (outside
            // the plane, outside the window), which both paths must skip the same way.
            var (_, idx) = ReferenceMax(x, g);
            if (corrupt && outLen > 0)
            {
                var r = new Random(c.Seed);
                for (int k = 0; k < Math.Max(1, outLen / 4); k++)
                    idx[r.Next(outLen)] = r.Next(-2, (g.H * g.W) + 2);
            }

            return KernelParity.Same($"MaxPool2dForward {c}, specials {specials}", [x, new float[outLen]], [new int[outLen]], (h, f, i) =>
                    Pooling.MaxPool2dForward(h, f[0], f[1], i[0], g))
                .And(KernelParity.Same($"MaxPool2dBackward {c}, corrupt {corrupt}", [c.Dy, new float[g.InputLength]], [idx], (h, f, i) =>
                    Pooling.MaxPool2dBackward(h, f[0], i[0], f[1], g)));
        });

    [Property(MaxTest = 40)]
    public Property AvgPool2d_managed_equals_kernel_forward_and_backward() =>
        Prop.ForAll(ParityCases(dilated: false), c =>
        {
            var g = c.G;
            return KernelParity.Same($"AvgPool2dForward {c}", [c.X, new float[g.OutputLength]], [], (h, f, _) =>
                    Pooling.AvgPool2dForward(h, f[0], f[1], g, c.CountIncludePad))
                .And(KernelParity.Same($"AvgPool2dBackward {c}", [c.Dy, new float[g.InputLength]], [], (h, f, _) =>
                    Pooling.AvgPool2dBackward(h, f[0], f[1], g, c.CountIncludePad)));
        });

    [Property(MaxTest = 30)]
    public Property GlobalAvgPool_managed_equals_kernel_forward_and_backward() =>
        Prop.ForAll(ParityCases(dilated: false), Gen.Elements(false, true).ToArbitrary(), (c, specials) =>
        {
            var g = c.G;
            int s = g.H * g.W, planes = g.N * g.C;
            return KernelParity.Same($"GlobalAvgPoolForward {c}", [KernelParity.Values(c.Seed, (int)g.InputLength, -10f, 10f, specials), new float[planes]], [], (h, f, _) =>
                    Pooling.GlobalAvgPoolForward(h, f[0], f[1], g.N, g.C, s))
                .And(KernelParity.Same($"GlobalAvgPoolBackward {c}", [KernelParity.Values(c.Seed + 1, planes, -2f, 2f, specials), new float[g.InputLength]], [], (h, f, _) =>
                    Pooling.GlobalAvgPoolBackward(h, f[0], f[1], g.N, g.C, s)));
        });

    // ---------------------------------------------------------------- helpers

    private static (float[] Y, int[] Idx) ReferenceMax(float[] x, Pool2dGeometry g)
    {
        var y = new float[g.OutputLength];
        var idx = new int[g.OutputLength];
        PoolingReference.MaxPool2dForwardReference(x, y, idx, g);
        return (y, idx);
    }

    private static (float[] Y, int[] Idx) MaxForward(Device d, float[] x, Pool2dGeometry g)
    {
        using var tx = d.Upload(x);
        using var ty = d.Poisoned((int)g.OutputLength);
        using var ti = d.Upload(Enumerable.Repeat(int.MinValue, (int)g.OutputLength).ToArray());
        Pooling.MaxPool2dForward(d.Kernels, tx.View<float>(), ty.View<float>(), ti.View<int>(), g);
        return (ty.ToHost(), ti.ToHost<int>());
    }

    private static float[] MaxBackward(Device d, float[] dy, int[] idx, Pool2dGeometry g)
    {
        using var tdy = d.Upload(dy);
        using var ti = d.Upload(idx);
        using var tdx = d.Poisoned((int)g.InputLength);
        Pooling.MaxPool2dBackward(d.Kernels, tdy.View<float>(), ti.View<int>(), tdx.View<float>(), g);
        return tdx.ToHost();
    }

    private static float[] AvgForward(Device d, float[] x, Pool2dGeometry g, bool countIncludePad)
    {
        using var tx = d.Upload(x);
        using var ty = d.Poisoned((int)g.OutputLength);
        Pooling.AvgPool2dForward(d.Kernels, tx.View<float>(), ty.View<float>(), g, countIncludePad);
        return ty.ToHost();
    }

    private static float[] AvgBackward(Device d, float[] dy, Pool2dGeometry g, bool countIncludePad)
    {
        using var tdy = d.Upload(dy);
        using var tdx = d.Poisoned((int)g.InputLength);
        Pooling.AvgPool2dBackward(d.Kernels, tdy.View<float>(), tdx.View<float>(), g, countIncludePad);
        return tdx.ToHost();
    }

    /// <summary>Runs an F op on the known (1, 1, 4, 5) input and returns y, the indices if any, and dx for dy = KnownDy.</summary>
    private static (float[] Y, int[]? Idx, float[] Dx) RunF(Func<Tensor, (Tensor Y, Tensor? Idx)> op)
    {
        int[]? idx = null;
        var inputs = new[] { new GradInput("x", new Shape(1, 1, 4, 5), KnownX) };
        var (y, grads) = GradCheck.Vjp(Devices.Cpu, inputs, (_, p) =>
        {
            var (yt, it) = op(p("x"));
            idx = it?.ToHost<int>();
            return yt;
        }, KnownDy);
        return (y, idx, grads["x"]);
    }

    /// <summary>The in-plane taps (ih, iw) of output (oh, ow), in row-major window order.</summary>
    private static IEnumerable<(int Ih, int Iw)> Taps(Pool2dGeometry g, int oh, int ow)
    {
        for (int r = 0; r < g.KernelH; r++)
        {
            for (int s = 0; s < g.KernelW; s++)
            {
                int ih = (oh * g.StrideH) - g.PadH + (r * g.DilationH);
                int iw = (ow * g.StrideW) - g.PadW + (s * g.DilationW);
                if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W)
                    yield return (ih, iw);
            }
        }
    }

    private static bool HasEmptyWindow(Pool2dGeometry g)
    {
        for (int oh = 0; oh < g.OutH; oh++)
        {
            for (int ow = 0; ow < g.OutW; ow++)
            {
                if (!Taps(g, oh, ow).Any())
                    return true;
            }
        }

        return false;
    }

    /// <summary>Float64 max pooling by nested loops over (plane, oh, ow, taps).</summary>
    private static double[] Max64(double[] x, Pool2dGeometry g)
    {
        var y = new double[g.OutputLength];
        int o = 0;
        for (int p = 0; p < g.N * g.C; p++)
        {
            for (int oh = 0; oh < g.OutH; oh++)
            {
                for (int ow = 0; ow < g.OutW; ow++)
                    y[o++] = Taps(g, oh, ow).Max(t => x[(p * g.H * g.W) + (t.Ih * g.W) + t.Iw]);
            }
        }

        return y;
    }

    /// <summary>Float64 average pooling by nested loops: the in-plane sum over K*K or over the in-plane count.</summary>
    private static double[] Avg64(double[] x, Pool2dGeometry g, bool countIncludePad)
    {
        var y = new double[g.OutputLength];
        int o = 0;
        for (int p = 0; p < g.N * g.C; p++)
        {
            for (int oh = 0; oh < g.OutH; oh++)
            {
                for (int ow = 0; ow < g.OutW; ow++)
                {
                    var taps = Taps(g, oh, ow).ToList();
                    double sum = taps.Sum(t => x[(p * g.H * g.W) + (t.Ih * g.W) + t.Iw]);
                    y[o++] = sum / (countIncludePad ? g.KernelH * g.KernelW : taps.Count);
                }
            }
        }

        return y;
    }
}
