using IlgpuTrain.Layers;
using IlgpuTrain.Optimizers;
using Conv2dLayer = IlgpuTrain.Layers.Conv2d;

namespace IlgpuTrain.Properties.Functional;

/// <summary>
/// The Float16 mixed-precision policy: MatMul, Linear and Conv2d compute the half-rounded product of
/// half-rounded operands, overflow to inf past 65504, give VJPs within fp16 rounding of the fp32 ones,
/// lose tiny gradients without a loss scale and keep them with one; Float32 is unchanged bit for bit;
/// and small models trained with SGD and a dynamic loss scale under Float16 reach the fp32 loss.
/// </summary>
public class PrecisionProperties
{
    // Unit roundoff of binary16: each cast to half is off by at most 2^-11 relative.
    private const double U16 = 1.0 / 2048;

    // Float accumulation over K terms: (K + 3) * 2u32 * sum |terms| (Higham 3.1 with a factor 2 margin).
    private const double Eps32 = 1.0 / (1 << 23);

    // The spacing of fp16 subnormals, 2^-24.
    private const double SubnormalStep = 1.0 / (1 << 24);

    // Values so small that no product of the generated operands is below them; keeps an all-zero bound from rejecting +-0 noise.
    private const double Atol = 1e-30;

    private static Gen<(int N, int D, int F, int Seed)> LinearCase =>
        from n in Gen.Elements(0, 1, 2, 5, 16, 17)
        from d in Gen.Elements(1, 3, 16, 17, 33)
        from f in Gen.Elements(1, 4, 15, 17)
        from seed in Gen.Choose(0, 100000)
        select (n, d, f, seed);

    private static Gen<(int M, int K, int N, bool TA, bool TB, int Seed)> MatMulCase =>
        from m in Gen.Elements(0, 1, 3, 16, 17)
        from k in Gen.Elements(1, 2, 7, 17)
        from n in Gen.Elements(1, 5, 16)
        from ta in Gen.Elements(false, true)
        from tb in Gen.Elements(false, true)
        from seed in Gen.Choose(0, 100000)
        select (m, k, n, ta, tb, seed);

    private static Gen<(Conv2dGeometry G, int O, int Seed)> ConvCase =>
        from n in Gen.Elements(1, 2)
        from c in Gen.Elements(1, 3)
        from hw in Gen.Elements(4, 5, 7)
        from o in Gen.Elements(1, 4)
        from kernel in Gen.Elements(1, 3)
        from stride in Gen.Elements(1, 2)
        from pad in Gen.Elements(0, 1)
        from seed in Gen.Choose(0, 100000)
        select (new Conv2dGeometry(n, c, hw, hw, kernel, kernel, stride, stride, pad, pad, 1, 1), o, seed);

    // ---------------------------------------------------------------- forward: half-rounded products

    [Property(MaxTest = 30)]
    public Property Linear_under_Float16_is_the_half_rounded_float64_product_of_half_rounded_x_and_W() =>
        Prop.ForAll(LinearCase.ToArbitrary(), c =>
        {
            var (n, d, f, seed) = c;
            var x = Gens.Random(seed, n * d, -4f, 4f);
            var w = Gens.Random(seed + 1, f * d, -4f, 4f);
            var (exact, abs) = Product(H(x), H(w), n, f, d, (i, p) => (i * d) + p, (p, j) => (j * d) + p);
            return Devices.All.Select(dev =>
            {
                var y = Forward(dev, Precision.Float16, [("x", new Shape(n, d), x), ("w", new Shape(f, d), w)], p => F.Linear(p("x"), p("w")));
                return HalfOfProduct(y, exact, abs, d, $"{dev} Linear N {n} D {d} F {f}");
            }).Aggregate((p, q) => p.And(q));
        });

    [Property(MaxTest = 30)]
    public Property MatMul_under_Float16_is_the_half_rounded_float64_product_for_every_transpose() =>
        Prop.ForAll(MatMulCase.ToArbitrary(), c =>
        {
            var a = Gens.Random(c.Seed, c.M * c.K, -4f, 4f);
            var b = Gens.Random(c.Seed + 1, c.K * c.N, -4f, 4f);
            var (exact, abs) = Product(H(a), H(b), c.M, c.N, c.K,
                (i, p) => c.TA ? (p * c.M) + i : (i * c.K) + p,
                (p, j) => c.TB ? (j * c.K) + p : (p * c.N) + j);
            var aShape = c.TA ? new Shape(c.K, c.M) : new Shape(c.M, c.K);
            var bShape = c.TB ? new Shape(c.N, c.K) : new Shape(c.K, c.N);
            return Devices.All.Select(dev =>
            {
                var y = Forward(dev, Precision.Float16, [("a", aShape, a), ("b", bShape, b)], p => F.MatMul(p("a"), p("b"), c.TA, c.TB));
                return HalfOfProduct(y, exact, abs, c.K, $"{dev} MatMul {c}");
            }).Aggregate((p, q) => p.And(q));
        });

    [Property(MaxTest = 20)]
    public Property Conv2d_under_Float16_is_the_half_rounded_float64_convolution_of_half_rounded_x_and_w() =>
        Prop.ForAll(ConvCase.ToArbitrary(), c =>
        {
            var (g, o, seed) = c;
            var x = Gens.Random(seed, (int)g.InputLength, -4f, 4f);
            var w = Gens.Random(seed + 1, o * g.K, -4f, 4f);
            var (exact, abs) = Convolve(H(x), H(w), g, o);
            return Devices.All.Select(dev =>
            {
                var y = Forward(dev, Precision.Float16, [("x", new Shape(g.N, g.C, g.H, g.W), x), ("w", new Shape(o, g.C, g.KH, g.KW), w)],
                    p => F.Conv2d(p("x"), p("w"), stride: (g.SH, g.SW), padding: (g.PH, g.PW)));
                return HalfOfProduct(y, exact, abs, g.K, $"{dev} Conv2d {g} O {o}");
            }).Aggregate((p, q) => p.And(q));
        });

    // 300 * 300 = 90000 > 65504: inf in fp16, as an fp16 output register would hold; 200 * 300 = 60000
    // is a half (a multiple of 32 in [2^15, 2^16)). 70000 overflows already when x is cast. Float32 keeps all.
    [Fact]
    public void A_product_beyond_65504_is_inf_under_Float16_and_finite_under_Float32()
    {
        foreach (var dev in Devices.All)
        {
            float[] Linear(Precision pr, float xv, float[] wv) =>
                Forward(dev, pr, [("x", new Shape(1, 1), [xv]), ("w", new Shape(wv.Length, 1), wv)], p => F.Linear(p("x"), p("w")));
            Assert.Equal(new[] { float.PositiveInfinity, 60000f }, Linear(Precision.Float16, 300f, [300f, 200f]));
            Assert.Equal(new[] { 90000f, 60000f }, Linear(Precision.Float32, 300f, [300f, 200f]));
            Assert.Equal(new[] { float.PositiveInfinity }, Linear(Precision.Float16, 70000f, [1f / 1024]));
            Assert.Equal(new[] { 70000f / 1024 }, Linear(Precision.Float32, 70000f, [1f / 1024]));

            var mm = Forward(dev, Precision.Float16, [("a", new Shape(1, 1), [-300f]), ("b", new Shape(1, 1), [300f])], p => F.MatMul(p("a"), p("b")));
            Assert.Equal(new[] { float.NegativeInfinity }, mm);
            var conv = Forward(dev, Precision.Float16, [("x", new Shape(1, 1, 1, 1), [300f]), ("w", new Shape(1, 1, 1, 1), [300f])], p => F.Conv2d(p("x"), p("w")));
            Assert.Equal(new[] { float.PositiveInfinity }, conv);
        }
    }

    // ---------------------------------------------------------------- backward

    // |g16 - g32| <= 3 u16 sum |terms|: each backward GEMM multiplies two half-rounded factors (2 u16
    // relative per term, plus u16^2), and the float accumulation adds (K + 3) 2u32 sum |terms|.
    // sum |terms| of each gradient is the fp32 VJP evaluated at |inputs| and |dOut| (every term positive).
    [Property(MaxTest = 20)]
    public Property Vjps_under_Float16_are_within_fp16_rounding_of_the_fp32_vjps() =>
        Prop.ForAll(LinearCase.ToArbitrary(), MatMulCase.ToArbitrary(), ConvCase.ToArbitrary(), (lc, mc, cc) =>
        {
            var (n, d, f, seed) = lc;
            var linear = Ops(
                [("x", new Shape(n, d), Gens.Random(seed, n * d, -1f, 1f)), ("w", new Shape(f, d), Gens.Random(seed + 1, f * d, -1f, 1f)), ("b", new Shape(f), Gens.Random(seed + 2, f, -1f, 1f))],
                Gens.Random(seed + 3, n * f, -1f, 1f), d + f + n, p => F.Linear(p("x"), p("w"), p("b")), $"Linear N {n} D {d} F {f}");
            var aShape = mc.TA ? new Shape(mc.K, mc.M) : new Shape(mc.M, mc.K);
            var bShape = mc.TB ? new Shape(mc.N, mc.K) : new Shape(mc.K, mc.N);
            var matmul = Ops(
                [("a", aShape, Gens.Random(mc.Seed, mc.M * mc.K, -1f, 1f)), ("b", bShape, Gens.Random(mc.Seed + 1, mc.K * mc.N, -1f, 1f))],
                Gens.Random(mc.Seed + 2, mc.M * mc.N, -1f, 1f), mc.M + mc.N + mc.K, p => F.MatMul(p("a"), p("b"), mc.TA, mc.TB), $"MatMul {mc}");
            var (g, o, cs) = cc;
            var conv = Ops(
                [("x", new Shape(g.N, g.C, g.H, g.W), Gens.Random(cs, (int)g.InputLength, -1f, 1f)), ("w", new Shape(o, g.C, g.KH, g.KW), Gens.Random(cs + 1, o * g.K, -1f, 1f)), ("b", new Shape(o), Gens.Random(cs + 2, o, -1f, 1f))],
                Gens.Random(cs + 3, (int)g.OutputLength(o), -1f, 1f), g.N * g.P + g.K + o,
                p => F.Conv2d(p("x"), p("w"), p("b"), (g.SH, g.SW), (g.PH, g.PW)), $"Conv2d {g} O {o}");
            return linear.And(matmul).And(conv);
        });

    // dOut of 5e-9 .. 1e-8 is below 2^-25, half the smallest fp16 subnormal: cast to half it is 0, so
    // the weight gradient vanishes under Float16. Seeding the backward with 65536 (GradScaler's init
    // scale) lifts dOut to ~6e-4, a normal half; unscaling the fp32 gradient by 1/65536 recovers the fp32
    // gradient within fp16 rounding. The bias gradient sums the fp32 dOut and survives either way.
    [Fact]
    public void A_tiny_gradient_underflows_without_a_loss_scale_and_survives_with_one()
    {
        const int N = 4, D = 3, Fo = 2;
        const float Scale = 65536f;
        GradInput[] inputs =
        [
            new("x", new Shape(N, D), Gens.Random(1, N * D, 0.5f, 1f)),
            new("w", new Shape(Fo, D), Gens.Random(2, Fo * D, 0.5f, 1f)),
            new("b", new Shape(Fo), Gens.Random(3, Fo, 0.5f, 1f)),
        ];
        var dOut = Gens.Random(4, N * Fo, 0.5f, 1f).Select(v => v * 1e-8f).ToArray();
        Tensor Op(Func<string, Tensor> p) => F.Linear(p("x"), p("w"), p("b"));
        foreach (var dev in Devices.All)
        {
            var fp32 = Vjp(dev, inputs, Op, dOut, Precision.Float32);
            var plain = Vjp(dev, inputs, Op, dOut, Precision.Float16);
            var scaled = Vjp(dev, inputs, Op, dOut, Precision.Float16, Scale);
            Assert.All(fp32.Grads["w"], v => Assert.True(v > 0, $"{dev}: fp32 dW {v} should be positive"));
            Assert.All(plain.Grads["w"], v => Assert.Equal(0f, v));
            Assert.All(plain.Grads["x"], v => Assert.Equal(0f, v));
            Assert.Equal(fp32.Grads["b"], plain.Grads["b"]);
            for (int i = 0; i < fp32.Grads["w"].Length; i++)
            {
                double r = fp32.Grads["w"][i], got = scaled.Grads["w"][i];
                // Every term is positive here, so sum |terms| is the gradient itself.
                Assert.True(Math.Abs(got - r) <= 3 * U16 * r, $"{dev}: scaled and unscaled dW[{i}] = {got:R}, fp32 {r:R}");
            }
        }
    }

    // ---------------------------------------------------------------- Float32 is unchanged

    // The default policy runs exactly the float32 kernels the ops ran before the policy existed:
    // forward and every gradient equal direct Gemm/BiasAdd/SumColumns and Conv2d kernel calls bit for bit.
    [Fact]
    public void Float32_is_the_default_and_bitwise_equal_to_the_plain_float_kernels()
    {
        var dev = Devices.Cpu;
        using (var s = dev.BeginStep())
            Assert.Equal(Precision.Float32, s.Precision);

        const int N = 5, D = 7, Fo = 3;
        var x = Gens.Random(11, N * D, -2f, 2f);
        var w = Gens.Random(12, Fo * D, -2f, 2f);
        var b = Gens.Random(13, Fo, -2f, 2f);
        var dy = Gens.Random(14, N * Fo, -2f, 2f);
        var got = Vjp(dev, [new("x", new Shape(N, D), x), new("w", new Shape(Fo, D), w), new("b", new Shape(Fo), b)], p => F.Linear(p("x"), p("w"), p("b")), dy, null);
        using var tx = dev.Upload(x);
        using var tw = dev.Upload(w);
        using var tb = dev.Upload(b);
        using var tdy = dev.Upload(dy);
        using var ty = dev.Upload(new float[N * Fo]);
        using var tdx = dev.Upload(new float[N * D]);
        using var tdw = dev.Upload(new float[Fo * D]);
        using var tdb = dev.Upload(new float[Fo]);
        var k = dev.Kernels;
        Gemm.Run(k, false, true, N, Fo, D, 1f, tx.View<float>(), tw.View<float>(), 0f, ty.View<float>());
        IlgpuTrain.Kernels.BiasAdd.Forward(k, ty.View<float>(), tb.View<float>(), ty.View<float>(), N, Fo);
        Gemm.Run(k, false, false, N, D, Fo, 1f, tdy.View<float>(), tw.View<float>(), 0f, tdx.View<float>());
        Gemm.Run(k, true, false, Fo, D, N, 1f, tdy.View<float>(), tx.View<float>(), 0f, tdw.View<float>());
        Reductions.SumColumns(k, tdy.View<float>(), N, Fo, tdb.View<float>());
        AssertBits(ty.ToHost(), got.Y, "Linear y");
        AssertBits(tdx.ToHost(), got.Grads["x"], "Linear dx");
        AssertBits(tdw.ToHost(), got.Grads["w"], "Linear dW");
        AssertBits(tdb.ToHost(), got.Grads["b"], "Linear db");

        var g = new Conv2dGeometry(2, 3, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1);
        const int O = 4;
        var cx = Gens.Random(21, (int)g.InputLength, -2f, 2f);
        var cw = Gens.Random(22, O * g.K, -2f, 2f);
        var cdy = Gens.Random(23, (int)g.OutputLength(O), -2f, 2f);
        var conv = Vjp(dev, [new("x", new Shape(g.N, g.C, g.H, g.W), cx), new("w", new Shape(O, g.C, g.KH, g.KW), cw)], p => F.Conv2d(p("x"), p("w"), padding: (1, 1)), cdy, Precision.Float32);
        using var cxt = dev.Upload(cx);
        using var cwt = dev.Upload(cw);
        using var cdyt = dev.Upload(cdy);
        using var cyt = dev.Upload(new float[g.OutputLength(O)]);
        using var cols = dev.Upload(new float[g.ColumnsLength]);
        using var dcols = dev.Upload(new float[g.ColumnsLength]);
        using var cdxt = dev.Upload(new float[g.InputLength]);
        using var cdwt = dev.Upload(new float[O * g.K]);
        IlgpuTrain.Kernels.Conv2d.Forward(k, cxt.View<float>(), cwt.View<float>(), ArrayView<float>.Empty, cyt.View<float>(), cols.View<float>(), g, O);
        IlgpuTrain.Kernels.Conv2d.BackwardWeight(k, cdyt.View<float>(), cols.View<float>(), cdwt.View<float>(), g, O);
        IlgpuTrain.Kernels.Conv2d.BackwardInput(k, cwt.View<float>(), cdyt.View<float>(), dcols.View<float>(), cdxt.View<float>(), g, O);
        AssertBits(cyt.ToHost(), conv.Y, "Conv2d y");
        AssertBits(cdxt.ToHost(), conv.Grads["x"], "Conv2d dx");
        AssertBits(cdwt.ToHost(), conv.Grads["w"], "Conv2d dW");
    }

    // ---------------------------------------------------------------- training

    private const double LossMargin = 0.03;

    // A 2-16-2 MLP on a separable problem, SGD lr 0.5: under Float16 with a dynamic loss scale (growth
    // every 10 clean steps, so it grows into fp16 overflow and backs off) the loss ends within a small
    // margin of the fp32 run's.
    [Property(MaxTest = 2)]
    public Property Mlp_trained_under_Float16_with_a_dynamic_loss_scale_reaches_the_fp32_loss() =>
        Prop.ForAll(Gens.LayerSeed.ToArbitrary(), seed =>
        {
            var (x, labels) = TwoClasses(seed, 64);
            var model = new Dense(16) >> new IlgpuTrain.Layers.Tanh() >> new Dense(2);
            var fp32 = Train(model, new Shape(2), x, labels, new Shape(64, 2), Precision.Float32, 150, 0.5, seed);
            var fp16 = Train(model, new Shape(2), x, labels, new Shape(64, 2), Precision.Float16, 150, 0.5, seed);
            return Compare(fp32, fp16);
        });

    [Property(MaxTest = 1)]
    public Property Cnn_trained_under_Float16_with_a_dynamic_loss_scale_reaches_the_fp32_loss() =>
        Prop.ForAll(Gens.LayerSeed.ToArbitrary(), seed =>
        {
            const int Batch = 32;
            var (x, labels) = Bars(seed, Batch);
            var model = new Conv2dLayer(4, 3, Padding: 1) >> new BatchNorm2d() >> new ReLU() >> new MaxPool2d(2) >> new Flatten() >> new Dense(2);
            var fp32 = Train(model, new Shape(1, 8, 8), x, labels, new Shape(Batch, 1, 8, 8), Precision.Float32, 60, 0.1, seed);
            var fp16 = Train(model, new Shape(1, 8, 8), x, labels, new Shape(Batch, 1, 8, 8), Precision.Float16, 60, 0.1, seed);
            return Compare(fp32, fp16);
        });

    private static Property Compare((double First, double Last, int Skipped, float Scale) fp32, (double First, double Last, int Skipped, float Scale) fp16) =>
        (Math.Abs(fp16.Last - fp32.Last) <= LossMargin && fp32.Last < 0.5 * fp32.First)
            .Label($"fp32 loss {fp32.First:F4} -> {fp32.Last:F4}; fp16 loss {fp16.First:F4} -> {fp16.Last:F4} with {fp16.Skipped} skipped steps, final scale {fp16.Scale} (margin {LossMargin})");

    private static (double First, double Last, int Skipped, float Scale) Train(Layer model, Shape sample, float[] x, int[] labels, Shape batch, Precision precision, int steps, double lr, int seed)
    {
        var device = Devices.Cpu;
        var (p, s) = model.Init(device, sample, Rng.Create((ulong)seed));
        var sgd = new Sgd(lr);
        var state = sgd.Init(p);
        var scale = new DynamicLossScale(growthInterval: 10);
        double first = double.NaN, last = double.NaN;
        int skipped = 0;
        for (int t = 0; t < steps; t++)
        {
            using var step = device.BeginStep();
            step.Precision = precision;
            var xt = step.Upload(x, batch);
            var yt = step.Upload(labels, new Shape(labels.Length));
            ParamTree? next = null;
            bool mixed = precision == Precision.Float16;
            var (loss, grads) = Autodiff.ValueAndGrad(step, p, q =>
            {
                var (logits, ns) = model.Apply(q, s, xt, Mode.Train, Rng.Create((ulong)seed).At((uint)t));
                next = ns;
                return F.CrossEntropy(logits, yt);
            }, new GradOptions { Seed = mixed ? scale.Scale : 1f });
            if (mixed)
            {
                (p, state, scale, bool stepped) = LossScaling.Step(sgd, p, grads, state, scale);
                skipped += stepped ? 0 : 1;
            }
            else
            {
                (p, state) = sgd.Step(p, grads, state);
            }

            if (!ReferenceEquals(next, s))
            {
                s.Dispose();
                s = next!;
            }

            if (t == 0)
                first = loss.ToHost()[0];
            if (t == steps - 1)
                last = loss.ToHost()[0];
        }

        p.Dispose();
        s.Dispose();
        state.Dispose();
        return (first, last, skipped, scale.Scale);
    }

    // ---------------------------------------------------------------- helpers

    // The values of x after a round trip through binary16, via the BCL (independent of Cast and GemmHalf).
    private static float[] H(float[] x) => x.Select(v => (float)(System.Half)v).ToArray();

    private static double R16(double v) => (double)(System.Half)v;

    // y must be round16(s) for a float sum s within (K + 3) 2u32 sum |terms| of the exact sum: so y lies
    // between round16 of the interval's ends (round16 is monotone).
    private static Property HalfOfProduct(float[] y, double[] exact, double[] abs, int k, string what)
    {
        if (y.Length != exact.Length)
            return false.Label($"{what}: length {y.Length} versus {exact.Length}");
        for (int i = 0; i < y.Length; i++)
        {
            double slack = Atol + ((k + 3) * Eps32 * abs[i]);
            double lo = R16(exact[i] - slack), hi = R16(exact[i] + slack);
            if (!(y[i] >= lo && y[i] <= hi) || R16(y[i]) != y[i])
                return false.Label($"{what}: [{i}] = {y[i]:R}, expected the half nearest {exact[i]:R} (between {lo:R} and {hi:R})");
        }
        return true.Label(what);
    }

    // C[i, j] = sum_p A(i, p) B(p, j) in float64, and sum_p |A(i, p) B(p, j)|.
    private static (double[] Exact, double[] Abs) Product(float[] a, float[] b, int m, int n, int k, Func<int, int, int> ai, Func<int, int, int> bi)
    {
        var exact = new double[m * n];
        var abs = new double[m * n];
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                for (int p = 0; p < k; p++)
                {
                    double t = (double)a[ai(i, p)] * b[bi(p, j)];
                    exact[(i * n) + j] += t;
                    abs[(i * n) + j] += Math.Abs(t);
                }
            }
        }
        return (exact, abs);
    }

    // Direct convolution in float64 (no im2col), zero padding.
    private static (double[] Exact, double[] Abs) Convolve(float[] x, float[] w, Conv2dGeometry g, int o)
    {
        var exact = new double[g.OutputLength(o)];
        var abs = new double[exact.Length];
        for (int n = 0; n < g.N; n++)
        for (int oc = 0; oc < o; oc++)
        for (int oy = 0; oy < g.HO; oy++)
        for (int ox = 0; ox < g.WO; ox++)
        {
            int at = (((n * o) + oc) * g.HO + oy) * g.WO + ox;
            for (int c = 0; c < g.C; c++)
            for (int i = 0; i < g.KH; i++)
            for (int j = 0; j < g.KW; j++)
            {
                int iy = (oy * g.SH) - g.PH + i, ix = (ox * g.SW) - g.PW + j;
                if (iy < 0 || iy >= g.H || ix < 0 || ix >= g.W)
                    continue;
                double t = (double)w[(((oc * g.C) + c) * g.KH + i) * g.KW + j] * x[(((n * g.C) + c) * g.H + iy) * g.W + ix];
                exact[at] += t;
                abs[at] += Math.Abs(t);
            }
        }
        return (exact, abs);
    }

    // The VJP of op under Float16 against Float32, on both devices, with |g16 - g32| <= 3 u16 sum|terms| + (K + 3) 2u32 sum|terms|.
    private static Property Ops((string Name, Shape Shape, float[] Values)[] inputs, float[] dOut, int k, Func<Func<string, Tensor>, Tensor> op, string what)
    {
        var gi = inputs.Select(i => new GradInput(i.Name, i.Shape, i.Values)).ToArray();
        var absInputs = inputs.Select(i => new GradInput(i.Name, i.Shape, i.Values.Select(Math.Abs).ToArray())).ToArray();
        var absDOut = dOut.Select(Math.Abs).ToArray();
        var result = true.Label(what);
        foreach (var dev in Devices.All)
        {
            var fp32 = Vjp(dev, gi, op, dOut, Precision.Float32);
            var fp16 = Vjp(dev, gi, op, dOut, Precision.Float16);
            var terms = Vjp(dev, absInputs, op, absDOut, Precision.Float32);
            foreach (var i in inputs)
            {
                var a = fp16.Grads[i.Name];
                var r = fp32.Grads[i.Name];
                var t = terms.Grads[i.Name];
                for (int e = 0; e < r.Length; e++)
                {
                    // Plus k 2^-24: a factor in fp16's subnormal range is off by up to 2^-25 absolute (values are at most 1).
                    double bound = (k * SubnormalStep) + (((3 * U16) + ((k + 3) * Eps32)) * t[e]);
                    if (!(Math.Abs(a[e] - r[e]) <= bound))
                    {
                        result = result.And(false.Label($"{dev} {what}: d{i.Name}[{e}] = {a[e]:R} under Float16, {r[e]:R} under Float32 (bound {bound:E3})"));
                        break;
                    }
                }
            }
        }
        return result;
    }

    private static float[] Forward(Device device, Precision precision, (string Name, Shape Shape, float[] Values)[] inputs, Func<Func<string, Tensor>, Tensor> op)
    {
        using var step = device.BeginStep();
        step.Precision = precision;
        var byName = inputs.ToDictionary(i => i.Name, i => step.Upload(i.Values, i.Shape));
        return op(name => byName[name]).ToHost();
    }

    private static (float[] Y, Dictionary<string, float[]> Grads) Vjp(Device device, GradInput[] inputs, Func<Func<string, Tensor>, Tensor> op, float[] dOut, Precision? precision, float seed = 1f)
    {
        using var tree = ParamTree.FromHost(device, inputs.Select(i => KeyValuePair.Create(i.Name, (i.Shape.ToArray(), i.Values))));
        using var step = device.BeginStep();
        if (precision is { } pr)
            step.Precision = pr;
        float[]? y = null;
        var (_, grads) = Autodiff.ValueAndGrad(step, tree, p =>
        {
            var outTensor = op(name => p[name]);
            y = outTensor.ToHost();
            return F.Sum(F.Mul(outTensor, step.Upload(dOut, outTensor.Shape)));
        }, new GradOptions { Seed = seed });
        using (grads)
        {
            if (seed != 1f)
                Assert.True(LossScaling.UnscaleInPlace(grads, seed), "scaled gradients finite");
            var host = grads.ToHost();
            return (y!, inputs.ToDictionary(i => i.Name, i => host[i.Name].Data));
        }
    }

    private static void AssertBits(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(BitConverter.SingleToUInt32Bits(expected[i]) == BitConverter.SingleToUInt32Bits(actual[i]), $"{what}[{i}]: {actual[i]:R} versus the plain kernels' {expected[i]:R}");
    }

    // 8x8 images with one bright bar (label 0: horizontal, 1: vertical) over uniform noise in [0, 0.3).
    private static (float[] X, int[] Labels) Bars(int seed, int n)
    {
        var r = new Random(seed);
        var x = new float[n * 64];
        var labels = new int[n];
        for (int i = 0; i < n; i++)
        {
            labels[i] = i % 2;
            int at = r.Next(8);
            for (int j = 0; j < 64; j++)
            {
                bool bar = labels[i] == 0 ? j / 8 == at : j % 8 == at;
                x[(i * 64) + j] = (float)((r.NextDouble() * 0.3) + (bar ? 1 : 0));
            }
        }

        return (x, labels);
    }

    // Points in [-1, 1]^2 labelled by the side of x0 - 0.5 x1 = 0.1, with a margin of 0.2 around the line.
    private static (float[] X, int[] Labels) TwoClasses(int seed, int n)
    {
        var r = new Random(seed);
        var x = new float[2 * n];
        var labels = new int[n];
        for (int i = 0; i < n;)
        {
            double a = (2 * r.NextDouble()) - 1, b = (2 * r.NextDouble()) - 1;
            double side = a - (0.5 * b) - 0.1;
            if (Math.Abs(side) < 0.2)
                continue;
            x[2 * i] = (float)a;
            x[(2 * i) + 1] = (float)b;
            labels[i] = side > 0 ? 1 : 0;
            i++;
        }

        return (x, labels);
    }
}
