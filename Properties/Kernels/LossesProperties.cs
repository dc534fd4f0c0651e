using IlgpuTrain.Training.Conformance;

namespace IlgpuTrain.Properties.Kernels;

/// <summary>Pointwise losses (Kernels/Losses.cs, F.MseLoss ... F.BinaryCrossEntropyWithLogits): kernels = references, VJP = finite differences, PyTorch 1.13 known values, stability.</summary>
public class LossesProperties
{
    // Kernel-versus-reference bounds, shared with the conformance suite (the reasoning is there).
    private const double ForwardAtol = Tolerances.Losses.ForwardAtol;
    private const double ForwardRtol = Tolerances.Losses.ForwardRtol;
    private const double ReduceAtol = Tolerances.Losses.ReduceAtol;
    private const double ReduceRtol = Tolerances.Losses.ReduceRtol;
    private const double BackwardAtol = Tolerances.Losses.BackwardAtol;
    private const double BackwardRtol = Tolerances.Losses.BackwardRtol;

    // VJP against central differences (h = 1e-5) of the float64 reference: truncation error of the
    // quadratic pieces is 0, of BCE O(h^2); the rest is float32 rounding of the kernel's output.
    private const double FdAtol = 2e-5;
    private const double FdRtol = 1e-4;

    // Known values: float32 kernels against PyTorch's float64 results.
    private const double KnownAtol = 2e-6;
    private const double KnownRtol = 2e-6;

    /// <summary>The losses under test: 0 MSE, 1 L1, 2 Huber, 3 SmoothL1, 4 BCE, 5 BCE with pos_weight.</summary>
    private static readonly string[] Names = ["MSE", "L1", "Huber", "SmoothL1", "BCE", "BCE pos_weight"];

    private static Gen<LossReduction> Reduction => Gen.Elements(LossReduction.Mean, LossReduction.Sum, LossReduction.None);

    private static Gen<(int Kind, float Param, LossReduction Reduction, int N, int Seed)> KernelCase =>
        from kind in Gen.Choose(0, 5)
        from param in Gen.Elements(1f, 0.5f, 2f, 0f)
        from reduction in Reduction
        from n in Gens.Length
        from seed in Gen.Choose(0, 100000)
        select (kind, kind == 2 && param == 0f ? 1f : param, reduction, n, seed);

    private static (float[] X, float[] T, float[] W) Data(int kind, int n, int seed, int c)
    {
        var x = Gens.Random(seed, n, -5f, 5f);
        var t = kind >= 4 ? Gens.Random(seed + 1, n, 0f, 1f) : Gens.Random(seed + 1, n, -5f, 5f);
        // Exact ties, where L1 and SmoothL1 (beta 0) take sign(0) = 0.
        for (int i = 0; i < n; i += 7)
        {
            if (kind < 4)
                t[i] = x[i];
        }

        var w = kind == 5 ? Gens.Random(seed + 2, c, 0.25f, 4f) : [];
        return (x, t, w);
    }

    private static (Func<double, double, double, double> F, Func<double, double, double, double> Dx, Func<double, double, double, double> Dt) References(int kind, double p) => kind switch
    {
        0 => ((x, t, _) => LossesReference.MseReference(x, t), (x, t, _) => LossesReference.MseGradReference(x, t), (x, t, _) => -LossesReference.MseGradReference(x, t)),
        1 => ((x, t, _) => LossesReference.L1Reference(x, t), (x, t, _) => LossesReference.L1GradReference(x, t), (x, t, _) => -LossesReference.L1GradReference(x, t)),
        2 => ((x, t, _) => LossesReference.HuberReference(x, t, p), (x, t, _) => LossesReference.HuberGradReference(x, t, p), (x, t, _) => -LossesReference.HuberGradReference(x, t, p)),
        3 => ((x, t, _) => LossesReference.SmoothL1Reference(x, t, p), (x, t, _) => LossesReference.SmoothL1GradReference(x, t, p), (x, t, _) => -LossesReference.SmoothL1GradReference(x, t, p)),
        _ => (LossesReference.BceWithLogitsReference, LossesReference.BceWithLogitsGradReference, LossesReference.BceWithLogitsTargetGradReference),
    };

    private static Property KernelCheck<TOp>(Device d, TOp op, int kind, double p, LossReduction reduction, float[] xs, float[] ts, float[] ws, float[] dLoss)
        where TOp : struct, ILossOp
    {
        int n = xs.Length;
        var (f, fx, ft) = References(kind, p);
        var losses = new double[n];
        LossesReference.ForwardReference(f, xs, ts, ws, losses);
        var dxRef = new double[n];
        var dtRef = new double[n];
        LossesReference.BackwardReference(fx, xs, ts, ws, dLoss, reduction, dxRef);
        LossesReference.BackwardReference(ft, xs, ts, ws, dLoss, reduction, dtRef);

        using var x = d.Upload(xs);
        using var t = d.Upload(ts);
        using var w = d.Upload(ws);
        using var l = d.Poisoned(n);
        using var r = d.Poisoned(1);
        using var scratch = d.Poisoned(Math.Max(1, Losses.ScratchLength(d.Kernels, n, reduction)));
        using var g = d.Upload(dLoss);
        using var dx = d.Poisoned(n);
        using var dt = d.Poisoned(n);
        Losses.Forward(d.Kernels, op, x.View<float>(), t.View<float>(), w.View<float>(), l.View<float>(), r.View<float>(), scratch.View<float>(), reduction);
        Losses.Backward(d.Kernels, op, x.View<float>(), t.View<float>(), w.View<float>(), g.View<float>(), dx.View<float>(), reduction);
        Losses.Backward(d.Kernels, op, x.View<float>(), t.View<float>(), w.View<float>(), g.View<float>(), dt.View<float>(), reduction, wrtTarget: true);
        var result = Close.All(l.ToHost(), losses, ForwardAtol, ForwardRtol, "per-element losses")
            .And(Close.All(dx.ToHost(), dxRef, BackwardAtol, BackwardRtol, "d/dinput"))
            .And(Close.All(dt.ToHost(), dtRef, BackwardAtol, BackwardRtol, "d/dtarget"));
        if (reduction != LossReduction.None)
            result = result.And(Close.Scalar(r.ToHost()[0], LossesReference.ReduceReference(losses, reduction), ReduceAtol, ReduceRtol, $"{reduction}"));
        return result;
    }

    [Property(MaxTest = 60)]
    public Property Kernels_equal_the_references() =>
        Prop.ForAll(KernelCase.ToArbitrary(), c =>
        {
            int cols = c.N % 3 == 0 && c.N > 0 ? 3 : 1;
            var (xs, ts, ws) = Data(c.Kind, c.N, c.Seed, cols);
            var dLoss = c.Reduction == LossReduction.None ? Gens.Random(c.Seed + 3, c.N, -2f, 2f) : [0.75f];
            var result = true.Label($"{Names[c.Kind]} param {c.Param} {c.Reduction} n = {c.N}");
            foreach (var d in Devices.All)
            {
                var check = c.Kind switch
                {
                    0 => KernelCheck(d, default(MseLossOp), c.Kind, c.Param, c.Reduction, xs, ts, ws, dLoss),
                    1 => KernelCheck(d, default(L1LossOp), c.Kind, c.Param, c.Reduction, xs, ts, ws, dLoss),
                    2 => KernelCheck(d, new HuberLossOp(c.Param), c.Kind, c.Param, c.Reduction, xs, ts, ws, dLoss),
                    3 => KernelCheck(d, new SmoothL1LossOp(c.Param), c.Kind, c.Param, c.Reduction, xs, ts, ws, dLoss),
                    _ => KernelCheck(d, default(BceWithLogitsOp), c.Kind, c.Param, c.Reduction, xs, ts, ws, dLoss),
                };
                result = result.And(check.Label($"on {Devices.Describe(d)}"));
            }

            return result;
        });

    // The managed loop and the ILGPU kernel run one element body per loss: bit for bit the same
    // per-element losses and gradients, with specials (NaN, infinities, signed zeros) in x half the time.
    [Property(MaxTest = 40)]
    public Property Managed_path_equals_the_kernels_bitwise() =>
        Prop.ForAll(KernelCase.ToArbitrary(), c =>
        {
            int cols = c.N % 3 == 0 && c.N > 0 ? 3 : 1;
            var (xs, ts, ws) = Data(c.Kind, c.N, c.Seed, cols);
            if (c.Seed % 2 == 0)
                xs = KernelParity.Values(c.Seed, c.N, -5f, 5f, specials: true);
            var dLoss = c.Reduction == LossReduction.None ? Gens.Random(c.Seed + 3, c.N, -2f, 2f) : [0.75f];
            float[][] buffers = [xs, ts, ws, dLoss, new float[c.N], new float[c.N], new float[c.N]];
            return KernelParity.Same($"{Names[c.Kind]} param {c.Param} {c.Reduction} n = {c.N} seed {c.Seed}", buffers, (h, v) =>
            {
                switch (c.Kind)
                {
                    case 0: LaunchAll(h, default(MseLossOp), v, c.Reduction); break;
                    case 1: LaunchAll(h, default(L1LossOp), v, c.Reduction); break;
                    case 2: LaunchAll(h, new HuberLossOp(c.Param), v, c.Reduction); break;
                    case 3: LaunchAll(h, new SmoothL1LossOp(c.Param), v, c.Reduction); break;
                    default: LaunchAll(h, default(BceWithLogitsOp), v, c.Reduction); break;
                }
            });
        });

    // Per-element losses into v[4], d/dinput into v[5] and d/dtarget into v[6], from x, t, w, dLoss = v[0..3].
    private static void LaunchAll<TOp>(KernelHost h, TOp op, ArrayView<float>[] v, LossReduction reduction)
        where TOp : struct, ILossOp
    {
        Losses.Forward(h, op, v[0], v[1], v[2], v[4], default, default, LossReduction.None);
        Losses.Backward(h, op, v[0], v[1], v[2], v[3], v[5], reduction);
        Losses.Backward(h, op, v[0], v[1], v[2], v[3], v[6], reduction, wrtTarget: true);
    }

    private static Gen<(int Kind, float Param, LossReduction Reduction, int Rows, int Cols, int Seed)> VjpCase =>
        from kind in Gen.Choose(0, 5)
        from param in Gen.Elements(1f, 0.5f, 2f)
        from reduction in Reduction
        from rows in Gen.Choose(1, 4)
        from cols in Gen.Choose(1, 4)
        from seed in Gen.Choose(0, 100000)
        select (kind, param, reduction, rows, cols, seed);

    [Property(MaxTest = 60)]
    public Property Vjp_matches_finite_differences_away_from_kinks() =>
        Prop.ForAll(VjpCase.ToArbitrary(), c =>
        {
            int n = c.Rows * c.Cols;
            var rnd = new Random(c.Seed);
            var ts = new float[n];
            var xs = new float[n];
            for (int i = 0; i < n; i++)
            {
                if (c.Kind >= 4)
                {
                    ts[i] = (float)rnd.NextDouble();
                    xs[i] = (float)((rnd.NextDouble() * 8) - 4);
                    continue;
                }

                // |d| at least 0.1 away from 0 and from the threshold: either in [0.1, 0.9] or [1.1, 3] times it.
                double m = rnd.Next(2) == 0 ? 0.1 + (0.8 * rnd.NextDouble()) : 1.1 + (1.9 * rnd.NextDouble());
                double d = (rnd.Next(2) == 0 ? -1 : 1) * m * (c.Kind >= 2 ? c.Param : 1);
                ts[i] = (float)((rnd.NextDouble() * 4) - 2);
                xs[i] = (float)(ts[i] + d);
            }

            var ws = c.Kind == 5 ? Gens.Random(c.Seed + 1, c.Cols, 0.25f, 4f) : [];
            var shape = new Shape(c.Rows, c.Cols);
            var (f, _, _) = References(c.Kind, c.Param);
            double[] Reference(double[][] a)
            {
                var l = new double[n];
                for (int i = 0; i < n; i++)
                    l[i] = f(a[0][i], a[1][i], ws.Length == 0 ? 1 : ws[i % ws.Length]);
                return c.Reduction == LossReduction.None ? l : [c.Reduction == LossReduction.Sum ? l.Sum() : l.Average()];
            }

            Tensor Loss(StepScope step, Func<string, Tensor> p) => c.Kind switch
            {
                0 => F.MseLoss(p("input"), p("target"), c.Reduction),
                1 => F.L1Loss(p("input"), p("target"), c.Reduction),
                2 => F.HuberLoss(p("input"), p("target"), c.Param, c.Reduction),
                3 => F.SmoothL1Loss(p("input"), p("target"), c.Param, c.Reduction),
                4 => F.BinaryCrossEntropyWithLogits(p("input"), p("target"), null, c.Reduction),
                _ => F.BinaryCrossEntropyWithLogits(p("input"), p("target"), step.Upload(ws, new Shape(c.Cols)), c.Reduction),
            };

            var dOut = c.Reduction == LossReduction.None ? GradCheck.Values(c.Seed + 2, n) : [-1.5f];
            var inputs = new[] { new GradInput("input", shape, xs), new GradInput("target", shape, ts) };
            return GradCheck.Check(Devices.Cpu, inputs, Loss, Reference, dOut, FdAtol, FdRtol)
                .Label($"{Names[c.Kind]} param {c.Param} {c.Reduction} shape {shape}");
        });

    private static float[] Flat(Func<StepScope, Tensor> f)
    {
        using var step = Devices.Cpu.BeginStep();
        return f(step).ToHost();
    }

    private static (float Loss, float[] Dx, float[] Dt) WithGrads(Func<StepScope, Tensor, Tensor, Tensor> f, float[] x, float[] t, Shape shape)
    {
        var (y, g) = GradCheck.Vjp(Devices.Cpu, [new GradInput("x", shape, x), new GradInput("t", shape, t)], (step, p) => f(step, p("x"), p("t")), null);
        return (y[0], g["x"], g["t"]);
    }

    private static void AssertClose(double[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= KnownAtol + (KnownRtol * Math.Abs(expected[i])), $"{what}[{i}] = {actual[i]:R}, PyTorch {expected[i]:R}");
    }

    // x = torch.tensor([0.5, -1.5, 2.0, 0.0, 3.25, -0.25], dtype=float64, requires_grad=True)
    // t = torch.tensor([1.0, 0.5, -1.0, 0.0, 3.0, 0.75],  dtype=float64, requires_grad=True)
    // (d = x - t has a tie at 0 and |d| = 1 exactly at the Huber/SmoothL1 boundary.)
    private static readonly float[] KnownX = [0.5f, -1.5f, 2.0f, 0.0f, 3.25f, -0.25f];
    private static readonly float[] KnownT = [1.0f, 0.5f, -1.0f, 0.0f, 3.0f, 0.75f];

    [Fact]
    public void Regression_losses_match_PyTorch_1_13()
    {
        var shape = new Shape(6);

        // F.mse_loss(x, t); .backward() -> x.grad, t.grad
        var mse = WithGrads((_, x, t) => F.MseLoss(x, t), KnownX, KnownT, shape);
        AssertClose([2.3854166666666665], [mse.Loss], "mse mean");
        AssertClose([-0.166666666667, -0.666666666667, 1.0, 0.0, 0.083333333333, -0.333333333333], mse.Dx, "mse mean dx");
        AssertClose([0.166666666667, 0.666666666667, -1.0, 0.0, -0.083333333333, 0.333333333333], mse.Dt, "mse mean dt");
        // F.mse_loss(x, t, reduction='sum'), 'none'
        AssertClose([14.3125], [WithGrads((_, x, t) => F.MseLoss(x, t, LossReduction.Sum), KnownX, KnownT, shape).Loss], "mse sum");
        AssertClose([0.25, 4.0, 9.0, 0.0, 0.0625, 1.0], Flat(s => F.MseLoss(s.Upload(KnownX, shape), s.Upload(KnownT, shape), LossReduction.None)), "mse none");

        // F.l1_loss(x, t): sign(0) = 0 at element 3
        var l1 = WithGrads((_, x, t) => F.L1Loss(x, t), KnownX, KnownT, shape);
        AssertClose([1.125], [l1.Loss], "l1 mean");
        AssertClose([-0.166666666667, -0.166666666667, 0.166666666667, 0.0, 0.166666666667, -0.166666666667], l1.Dx, "l1 mean dx");
        AssertClose([0.166666666667, 0.166666666667, -0.166666666667, 0.0, -0.166666666667, 0.166666666667], l1.Dt, "l1 mean dt");
        AssertClose([6.75], [WithGrads((_, x, t) => F.L1Loss(x, t, LossReduction.Sum), KnownX, KnownT, shape).Loss], "l1 sum");

        // F.huber_loss(x, t, delta=1.0) (equals smooth_l1_loss with beta=1.0)
        var huber = WithGrads((_, x, t) => F.HuberLoss(x, t), KnownX, KnownT, shape);
        AssertClose([0.7760416666666666], [huber.Loss], "huber mean");
        AssertClose([-0.083333333333, -0.166666666667, 0.166666666667, 0.0, 0.041666666667, -0.166666666667], huber.Dx, "huber mean dx");
        AssertClose([0.083333333333, 0.166666666667, -0.166666666667, 0.0, -0.041666666667, 0.166666666667], huber.Dt, "huber mean dt");
        var smooth = WithGrads((_, x, t) => F.SmoothL1Loss(x, t), KnownX, KnownT, shape);
        AssertClose([0.7760416666666666], [smooth.Loss], "smooth_l1 mean");
        AssertClose(huber.Dx.Select(v => (double)v).ToArray(), smooth.Dx, "smooth_l1 mean dx");

        // F.huber_loss(x, t, reduction='sum', delta=0.5); reduction='none'
        var huberHalf = WithGrads((_, x, t) => F.HuberLoss(x, t, 0.5f, LossReduction.Sum), KnownX, KnownT, shape);
        AssertClose([2.78125], [huberHalf.Loss], "huber 0.5 sum");
        AssertClose([-0.5, -0.5, 0.5, 0.0, 0.25, -0.5], huberHalf.Dx, "huber 0.5 sum dx");
        AssertClose([0.125, 0.875, 1.375, 0.0, 0.03125, 0.375], Flat(s => F.HuberLoss(s.Upload(KnownX, shape), s.Upload(KnownT, shape), 0.5f, LossReduction.None)), "huber 0.5 none");

        // F.smooth_l1_loss(x, t, reduction='sum', beta=2.0); reduction='none'
        var smooth2 = WithGrads((_, x, t) => F.SmoothL1Loss(x, t, 2f, LossReduction.Sum), KnownX, KnownT, shape);
        AssertClose([3.328125], [smooth2.Loss], "smooth_l1 2 sum");
        AssertClose([-0.25, -1.0, 1.0, 0.0, 0.125, -0.5], smooth2.Dx, "smooth_l1 2 sum dx");
        AssertClose([0.0625, 1.0, 2.0, 0.0, 0.015625, 0.25], Flat(s => F.SmoothL1Loss(s.Upload(KnownX, shape), s.Upload(KnownT, shape), 2f, LossReduction.None)), "smooth_l1 2 none");
    }

    [Fact]
    public void Bce_with_logits_matches_PyTorch_1_13_including_pos_weight_and_logits_of_100()
    {
        // xb = torch.tensor([[0.5, -1.5, 2.0], [0.0, 100.0, -100.0]], dtype=float64)
        // tb = torch.tensor([[1.0, 0.0, 0.25], [0.5, 0.0, 1.0]], dtype=float64); pw = torch.tensor([2.0, 0.5, 3.0])
        float[] x = [0.5f, -1.5f, 2.0f, 0.0f, 100.0f, -100.0f];
        float[] t = [1.0f, 0.0f, 0.25f, 0.5f, 0.0f, 1.0f];
        float[] pw = [2.0f, 0.5f, 3.0f];
        var shape = new Shape(2, 3);

        // F.binary_cross_entropy_with_logits(xb, tb); .backward()
        var mean = WithGrads((_, a, b) => F.BinaryCrossEntropyWithLogits(a, b), x, t, shape);
        AssertClose([33.8325942422943], [mean.Loss], "bce mean");
        AssertClose([-0.0629234448, 0.030404253968, 0.10513284633, 0.0, 0.166666666667, -0.166666666667], mean.Dx, "bce mean dx");
        AssertClose([-0.083333333333, 0.25, -0.333333333333, 0.0, -16.666666666667, 16.666666666667], mean.Dt, "bce mean dt");
        // reduction='none'
        AssertClose([0.47407698418, 0.201413277983, 1.626928011043, 0.69314718056, 100.0, 100.0], Flat(s => F.BinaryCrossEntropyWithLogits(s.Upload(x, shape), s.Upload(t, shape), null, LossReduction.None)), "bce none");

        // F.binary_cross_entropy_with_logits(xb, tb, pos_weight=pw, reduction='sum'); .backward()
        var sum = WithGrads((s, a, b) => F.BinaryCrossEntropyWithLogits(a, b, s.Upload(pw, new Shape(3)), LossReduction.Sum), x, t, shape);
        AssertClose([403.87968003374726], [sum.Loss], "bce pw sum");
        AssertClose([-0.755081337596, 0.182425523806, 0.571195616967, -0.25, 1.0, -3.0], sum.Dx, "bce pw sum dx");
        AssertClose([-0.02592301582, 0.649293361009, -1.746143977914, 0.69314718056, -100.0, 300.0], sum.Dt, "bce pw sum dt");
        // pos_weight=pw, reduction='none'
        AssertClose([0.94815396836, 0.201413277983, 1.690392016564, 1.03972077084, 100.0, 300.0], Flat(s => F.BinaryCrossEntropyWithLogits(s.Upload(x, shape), s.Upload(t, shape), s.Upload(pw, new Shape(3)), LossReduction.None)), "bce pw none");

        // float32: x = torch.tensor([100., -100., 100., -100.]), t = [1., 0., 0., 1.], reduction='none' -> [0, 0, 100, 100];
        // .sum().backward() -> x.grad = [0, 0, 1, -1]. Also |x| = 1e4: still finite and exact.
        var big = WithGrads((_, a, b) => F.BinaryCrossEntropyWithLogits(a, b, null, LossReduction.Sum), [100f, -100f, 100f, -100f, 1e4f, -1e4f], [1f, 0f, 0f, 1f, 0f, 1f], new Shape(6));
        AssertClose([200f + 20000f], [big.Loss], "bce sum at |x| = 100 and 1e4");
        AssertClose([0, 0, 1, -1, 1, -1], big.Dx, "bce dx at |x| = 100 and 1e4");
        Assert.All(big.Dt, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void Empty_inputs_give_NaN_mean_and_zero_sum_and_bad_arguments_throw()
    {
        var empty = new Shape(0, 3);
        Assert.True(float.IsNaN(Flat(s => F.MseLoss(s.Upload(Array.Empty<float>(), empty), s.Upload(Array.Empty<float>(), empty)))[0]));
        Assert.Equal(0f, Flat(s => F.L1Loss(s.Upload(Array.Empty<float>(), empty), s.Upload(Array.Empty<float>(), empty), LossReduction.Sum))[0]);

        using var step = Devices.Cpu.BeginStep();
        var a = step.Upload(new float[6], new Shape(2, 3));
        var b = step.Upload(new float[6], new Shape(3, 2));
        Assert.Contains("(3, 2)", Assert.Throws<ArgumentException>(() => F.MseLoss(a, b)).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => F.HuberLoss(a, a, 0f));
        Assert.Throws<ArgumentOutOfRangeException>(() => F.HuberLoss(a, a, float.NaN));
        Assert.Throws<ArgumentOutOfRangeException>(() => F.SmoothL1Loss(a, a, -1f));
        Assert.Throws<ArgumentException>(() => F.BinaryCrossEntropyWithLogits(a, a, step.Upload(new float[2], new Shape(2))));
        Assert.Throws<ArgumentOutOfRangeException>(() => F.MseLoss(a, a, (LossReduction)7));
    }
}
