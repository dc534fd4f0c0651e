using IlgpuTrain.Training.Conformance;
using Kernel = IlgpuTrain.Kernels.LayerNorm;
using LayerNormLayer = IlgpuTrain.Layers.LayerNorm;

namespace IlgpuTrain.Properties.Kernels;

/// <summary>
/// LayerNorm (Kernels/LayerNorm.cs, F.LayerNorm and Layers/LayerNorm.cs): each kernel equals its
/// float64 reference; the VJP equals central finite differences of a float64 forward written
/// here; rows come out with mean 0 and variance 1 and are invariant to a shift and a positive
/// scale of the row; and one small case equals PyTorch 1.13's numbers.
/// </summary>
public class LayerNormProperties
{
    // Kernel-versus-reference bounds, shared with the conformance suite (the reasoning is there).
    private const double ForwardAtol = Tolerances.LayerNorm.ForwardAtol;
    private const double ForwardRtol = Tolerances.LayerNorm.ForwardRtol;
    private const double InputGradAtol = Tolerances.LayerNorm.InputGradAtol;
    private const double InputGradRtol = Tolerances.LayerNorm.InputGradRtol;
    private const double SumAtolPerTerm = Tolerances.LayerNorm.SumAtolPerTerm;
    private const double SumRtol = Tolerances.LayerNorm.SumRtol;

    // Finite differences (step 1e-5, float64 forward) against float kernels, gradients of order rstd <= 2.
    private const double GradAtol = 2e-4;
    private const double GradRtol = 2e-3;

    private const float Eps = 1e-5f;

    // ---------------------------------------------------------------- (a) kernels = references

    [Property(MaxTest = 40)]
    public Property Forward_equals_reference_with_and_without_affine() =>
        Prop.ForAll(Gens.RowBatch.ToArbitrary(), Gen.Elements(0, 1, 2, 3).ToArbitrary(), (b, affine) =>
        {
            var gamma = (affine & 1) != 0 ? Gens.Random(b.Seed, b.D, -2f, 2f) : [];
            var beta = (affine & 2) != 0 ? Gens.Random(b.Seed + 1, b.D, -2f, 2f) : [];
            var y = new float[b.X.Length];
            var mean = new float[b.N];
            var rstd = new float[b.N];
            LayerNormReference.ForwardReference(b.X, gamma, beta, y, mean, rstd, b.N, b.D, Eps);
            // The kernel's float row sums err by up to about D u sum|x| / D = D u max|x| in the mean,
            // which x̂ = (x - mean) rstd and gamma (|gamma| <= 2) amplify; the fixed ForwardAtol
            // alone is too tight for D = 257 with a large rstd (seen: 7.9e-5 at D = 257).
            double yAtol = ForwardAtol + (b.D * Math.Pow(2, -23) * 5 * (rstd.Length > 0 ? rstd.Max() : 0) * 2);
            var result = true.Label($"{b}, gamma {gamma.Length > 0}, beta {beta.Length > 0}");
            foreach (var d in Devices.All)
            {
                var (ty, tm, tr) = RunForward(d, b, gamma, beta);
                result = result
                    .And(Close.All(ty, y, yAtol, ForwardRtol, $"y on {Devices.Describe(d)}"))
                    .And(Close.All(tm, mean, ForwardAtol, ForwardRtol, $"mean on {Devices.Describe(d)}"))
                    // rstd reaches 1/sqrt(eps) ~ 316 for D = 1 (var 0): relative tolerance only.
                    .And(Close.All(tr, rstd, 1e-6, ForwardRtol, $"rstd on {Devices.Describe(d)}"));
            }

            return result;
        });

    [Property(MaxTest = 40)]
    public Property InputGrad_equals_reference() =>
        Prop.ForAll(Gens.RowBatch.ToArbitrary(), Gen.Elements(true, false).ToArbitrary(), (b, affine) =>
        {
            var gamma = affine ? Gens.Random(b.Seed, b.D, -2f, 2f) : [];
            var (mean, rstd) = RowStats(b);
            var expected = new float[b.X.Length];
            LayerNormReference.InputGradReference(b.X, b.Dy, gamma, mean, rstd, expected, b.N, b.D);
            var result = true.Label($"{b}, affine {affine}");
            foreach (var d in Devices.All)
            {
                using var x = d.Upload(b.X);
                using var dy = d.Upload(b.Dy);
                using var g = d.Upload(gamma);
                using var tm = d.Upload(mean);
                using var tr = d.Upload(rstd);
                using var dx = d.Poisoned(b.X.Length);
                Kernel.InputGrad(d.Kernels, x.View<float>(), dy.View<float>(), affine ? g.View<float>() : null, tm.View<float>(), tr.View<float>(), dx.View<float>(), b.N, b.D);
                result = result.And(Close.All(dx.ToHost(), expected, InputGradAtol, InputGradRtol, $"dx on {Devices.Describe(d)}"));
            }

            return result;
        });

    [Property(MaxTest = 40)]
    public Property ParamGrads_equals_reference() =>
        Prop.ForAll(Gens.RowBatch.ToArbitrary(), b =>
        {
            var (mean, rstd) = RowStats(b);
            var dg = new float[b.D];
            var db = new float[b.D];
            LayerNormReference.ParamGradsReference(b.X, b.Dy, mean, rstd, dg, db, b.N, b.D);
            double atol = SumAtolPerTerm * Math.Max(1, b.N);
            var result = true.Label(b.ToString());
            foreach (var d in Devices.All)
            {
                using var x = d.Upload(b.X);
                using var dy = d.Upload(b.Dy);
                using var tm = d.Upload(mean);
                using var tr = d.Upload(rstd);
                using var tdg = d.Poisoned(b.D);
                using var tdb = d.Poisoned(b.D);
                Kernel.ParamGrads(d.Kernels, x.View<float>(), dy.View<float>(), tm.View<float>(), tr.View<float>(), tdg.View<float>(), tdb.View<float>(), b.N, b.D);
                result = result
                    .And(Close.All(tdg.ToHost(), dg, atol, SumRtol, $"dgamma on {Devices.Describe(d)}"))
                    .And(Close.All(tdb.ToHost(), db, atol, SumRtol, $"dbeta on {Devices.Describe(d)}"));
            }

            return result;
        });

    // ---------------------------------------------------------------- (b) the math, independently

    [Property(MaxTest = 25)]
    public Property Vjp_matches_finite_differences_of_a_float64_forward() =>
        Prop.ForAll(Gens.SmallRowBatch.ToArbitrary(), Gen.Elements(true, false).ToArbitrary(), (b, twoDims) =>
        {
            // normalized_shape (D) or, for even D, (2, D/2): the same math over the flattened tail.
            var norm = twoDims && b.D % 2 == 0 ? new Shape(2, b.D / 2) : new Shape(b.D);
            var inputs = new[]
            {
                new GradInput("x", new Shape([b.N, .. norm]), b.X),
                new GradInput("weight", norm, Gens.Random(b.Seed + 2, b.D, -2f, 2f)),
                new GradInput("bias", norm, Gens.Random(b.Seed + 3, b.D, -1f, 1f)),
            };
            double[] Reference(double[][] p) => Forward64(p[0], p[1], p[2], b.N, b.D);
            var result = true.Label($"{b}, normalized_shape {norm}");
            foreach (var d in Devices.All)
            {
                result = result.And(GradCheck.Check(
                    d,
                    inputs,
                    (_, p) => F.LayerNorm(p("x"), norm, p("weight"), p("bias")),
                    Reference,
                    b.Dy,
                    GradAtol,
                    GradRtol).Label($"on {Devices.Describe(d)}"));
            }

            return result;
        });

    [Property(MaxTest = 30)]
    public Property Rows_come_out_with_zero_mean_and_unit_variance() =>
        Prop.ForAll(Gens.RowBatch.ToArbitrary(), b =>
        {
            if (b.D < 2)
                return true.Label("D = 1: x̂ = 0");
            var y = RunForward(Devices.Cpu, b, [], []).Y;
            var result = true.Label(b.ToString());
            for (int i = 0; i < b.N; i++)
            {
                var row = Row(b.X, i, b.D);
                double varX = Variance(row);
                var yr = Row(y, i, b.D);
                double mu = yr.Average();
                double atol = ConditionedAtol(row, varX, 1);
                result = result
                    .And(Close.Scalar(mu, 0, atol, 0, $"row {i} mean"))
                    .And(Close.Scalar(Variance(yr), varX / (varX + Eps), atol, 2e-5, $"row {i} variance"));
            }

            return result;
        });

    [Property(MaxTest = 30)]
    public Property Output_is_invariant_to_shifting_and_positively_scaling_a_row() =>
        Prop.ForAll(Gens.SmallRowBatch.ToArbitrary(), Gen.Choose(-20, 20).ToArbitrary(), Gen.Elements(0.5f, 0.75f, 1f, 1.5f, 2f, 3f).ToArbitrary(), (b, shift, a) =>
        {
            if (b.D < 2)
                return true.Label("D = 1: x̂ = 0 for every row");
            var moved = b.X.Select(v => (a * v) + shift).ToArray();
            var y = RunForward(Devices.Cpu, b, [], []).Y;
            var ym = RunForward(Devices.Cpu, b with { X = moved }, [], []).Y;
            var result = true.Label($"{b}, LN({a} x + {shift}) vs LN(x)");
            for (int i = 0; i < b.N; i++)
            {
                var row = Row(b.X, i, b.D);
                double var = Variance(row);
                // eps does not scale with the row: x̂ changes by the factor a sqrt((var + eps) / (a² var + eps)).
                double epsEffect = Row(y, i, b.D).Max(Math.Abs) * Math.Abs(1 - (a * Math.Sqrt((var + Eps) / ((a * a * var) + Eps))));
                double atol = epsEffect + ConditionedAtol(Row(moved, i, b.D), a * a * var, 2);
                result = result.And(Close.All(Row(ym, i, b.D).Select(v => (float)v).ToArray(), Row(y, i, b.D), atol, 0, $"row {i}"));
            }

            return result;
        });

    // PyTorch 1.13.1, /usr/bin/python3:
    //   x = torch.tensor([[1., 2., 4.], [-3., 0.5, 0.]]); ln = torch.nn.LayerNorm(3)
    //   ln.weight = [1., 2., -1.]; ln.bias = [0., 0.5, 1.]
    //   y = ln(x); y.backward(torch.tensor([[0.1, -0.2, 0.3], [0.5, 0.4, -0.6]]))
    [Fact]
    public void LayerNorm_matches_pytorch_on_a_small_case()
    {
        float[] x = [1, 2, 4, -3, 0.5f, 0];
        float[] dy = [0.1f, -0.2f, 0.3f, 0.5f, 0.4f, -0.6f];
        float[] y = [-1.06904137134552f, -0.034520626068115234f, -0.3363018035888672f, -1.4018230438232422f, 2.225320816040039f, 0.4608372449874878f];
        float[] dx = [0.12599492073059082f, -0.18899103999137878f, 0.06299617886543274f, 0.008275121450424194f, 0.04965335130691528f, -0.057928502559661865f];
        float[] dWeight = [-0.807815670967102f, 0.3985162377357483f, 0.07739289104938507f];
        float[] dBias = [0.6000000238418579f, 0.20000000298023224f, -0.30000001192092896f];
        var layer = new LayerNormLayer(3);
        foreach (var d in Devices.All)
        {
            var (p0, state) = layer.Init(d, new Shape(3), Rng.Create(0));
            p0.Dispose();
            using var s = state;
            using var p = ParamTree.FromHost(d, [KeyValuePair.Create("weight", (new[] { 3 }, new[] { 1f, 2f, -1f })), KeyValuePair.Create("bias", (new[] { 3 }, new[] { 0f, 0.5f, 1f }))]);
            using var step = d.BeginStep();
            var xt = step.Upload(x, new Shape(2, 3));
            float[]? yOut = null;
            var (_, grads) = Autodiff.ValueAndGrad(step, p, ps =>
            {
                var (yt, _) = layer.Apply(ps, s, xt, Mode.Train, Rng.Create(1));
                yOut = yt.ToHost();
                return F.Sum(F.Mul(yt, step.Upload(dy, yt.Shape)));
            });
            using var g = grads;
            var gh = g.ToHost();
            var (_, dxs) = GradCheck.Vjp(
                d,
                [new GradInput("x", new Shape(2, 3), x)],
                (st, q) => F.LayerNorm(q("x"), new Shape(3), st.Upload(new[] { 1f, 2f, -1f }, new Shape(3)), st.Upload(new[] { 0f, 0.5f, 1f }, new Shape(3))),
                dy);
            foreach (var (actual, expected, what) in new[] { (yOut!, y, "y"), (gh["weight"].Data, dWeight, "dweight"), (gh["bias"].Data, dBias, "dbias"), (dxs["x"], dx, "dx") })
            {
                var (ok, label) = Close.Check(actual, expected, 1e-5, 1e-5, what);
                Assert.True(ok, $"{Devices.Describe(d)}: {label}");
            }
        }
    }

    [Fact]
    public void Shapes_are_checked_with_clear_messages()
    {
        var layer = new LayerNormLayer(4, 2);
        Assert.Equal(new Shape(3, 4, 2), layer.OutputShape(new Shape(3, 4, 2)));
        ArgumentException e = Assert.Throws<IlgpuTrain.Layers.LayerShapeException>(() => layer.OutputShape(new Shape(3, 2, 4)));
        Assert.Contains("(3, 2, 4)", e.Message);
        Assert.Equal(new LayerNormLayer(4, 2), new LayerNormLayer(new Shape(4, 2)));
        Assert.Equal(["weight", "bias"], layer.Parameters(new Shape(4, 2)).Select(s => s.Name));
        Assert.Empty(new LayerNormLayer(new Shape(8), ElementwiseAffine: false).Parameters(new Shape(8)));
        var d = Devices.Cpu;
        using var step = d.BeginStep();
        var x = step.Upload(new float[12], new Shape(3, 4));
        e = Assert.Throws<ArgumentException>(() => F.LayerNorm(x, new Shape(3)));
        Assert.Contains("(3, 4)", e.Message);
        e = Assert.Throws<ArgumentException>(() => F.LayerNorm(x, new Shape(4), step.Upload(new float[3], new Shape(3))));
        Assert.Contains("weight", e.Message);
    }

    // ---------------------------------------------------------------- (c) managed CPU path = ILGPU kernel

    // Edge shapes (N around the 4 rows the managed path walks side by side, D around its 8-lane
    // vectors and 16-column blocks), and now and then one large enough that CpuLoops splits it over threads.
    private static Arbitrary<((int N, int D) Shape, int Seed, bool Specials)> ParityCases =>
        (from shape in Gen.Frequency(
            (5, from n in Gen.Elements(0, 1, 3, 4, 5, 9, 17)
                from d in Gen.Elements(1, 7, 8, 9, 15, 16, 17, 33)
                select (n, d)),
            (1, Gen.Elements((67, 1031), (1031, 67), (4, 16400))))
         from seed in Gen.Choose(0, 1_000_000)
         from specials in Gen.Elements(false, false, true)
         select (shape, seed, specials)).ToArbitrary();

    [Property(MaxTest = 30)]
    public Property Forward_managed_equals_kernel() =>
        Prop.ForAll(ParityCases, Gen.Choose(0, 7).ToArbitrary(), (p, flags) =>
        {
            var (n, d) = p.Shape;
            bool hasGamma = (flags & 1) != 0, hasBeta = (flags & 2) != 0, inPlace = (flags & 4) != 0;
            float[][] bufs =
            [
                KernelParity.Values(p.Seed, n * d, -5f, 5f, p.Specials), Gens.Random(p.Seed + 1, d, -2f, 2f), Gens.Random(p.Seed + 2, d, -2f, 2f),
                new float[n * d], new float[n], new float[n],
            ];
            return KernelParity.Same($"Forward {p}, gamma {hasGamma}, beta {hasBeta}, in place {inPlace}", bufs, [], (h, f, _) =>
                Kernel.Forward(h, f[0], hasGamma ? f[1] : null, hasBeta ? f[2] : null, inPlace ? f[0] : f[3], f[4], f[5], n, d, 1e-5f));
        });

    [Property(MaxTest = 30)]
    public Property InputGrad_and_ParamGrads_managed_equal_kernels() =>
        Prop.ForAll(ParityCases, Gen.Choose(0, 3).ToArbitrary(), (p, flags) =>
        {
            var (n, d) = p.Shape;
            bool hasGamma = (flags & 1) != 0, inPlace = (flags & 2) != 0;
            float[][] bufs =
            [
                KernelParity.Values(p.Seed, n * d, -5f, 5f, p.Specials), KernelParity.Values(p.Seed + 1, n * d, -2f, 2f, p.Specials),
                Gens.Random(p.Seed + 2, d, -2f, 2f), Gens.Random(p.Seed + 3, n, -1f, 1f), Gens.Random(p.Seed + 4, n, 0.1f, 3f),
                new float[n * d], new float[d], new float[d],
            ];
            return KernelParity.Same($"ParamGrads + InputGrad {p}, gamma {hasGamma}, in place {inPlace}", bufs, [], (h, f, _) =>
            {
                Kernel.ParamGrads(h, f[0], f[1], f[3], f[4], f[6], f[7], n, d);
                Kernel.InputGrad(h, f[0], f[1], hasGamma ? f[2] : null, f[3], f[4], inPlace ? f[1] : f[5], n, d);
            });
        });

    // ---------------------------------------------------------------- helpers

    private static (float[] Y, float[] Mean, float[] Rstd) RunForward(Device d, RowBatch b, float[] gamma, float[] beta)
    {
        using var x = d.Upload(b.X);
        using var g = d.Upload(gamma);
        using var be = d.Upload(beta);
        using var y = d.Poisoned(b.X.Length);
        using var m = d.Poisoned(b.N);
        using var r = d.Poisoned(b.N);
        Kernel.Forward(d.Kernels, x.View<float>(), gamma.Length > 0 ? g.View<float>() : null, beta.Length > 0 ? be.View<float>() : null, y.View<float>(), m.View<float>(), r.View<float>(), b.N, b.D, Eps);
        return (y.ToHost(), m.ToHost(), r.ToHost());
    }

    private static (float[] Mean, float[] Rstd) RowStats(RowBatch b)
    {
        var y = new float[b.X.Length];
        var mean = new float[b.N];
        var rstd = new float[b.N];
        LayerNormReference.ForwardReference(b.X, [], [], y, mean, rstd, b.N, b.D, Eps);
        return (mean, rstd);
    }

    private static double[] Row(float[] v, int i, int d) => v.AsSpan(i * d, d).ToArray().Select(t => (double)t).ToArray();

    private static double Variance(double[] v)
    {
        double mu = v.Average();
        return v.Sum(t => (t - mu) * (t - mu)) / v.Length;
    }

    /// <summary>
    /// Float error of x̂ for a row: the row sums round at about u Σ|x| (D terms, worst case), and
    /// x̂ divides that by the row's std, so a row of nearly equal values is ill conditioned.
    /// <paramref name="runs"/> counts the forwards whose errors add.
    /// </summary>
    private static double ConditionedAtol(double[] row, double var, int runs) =>
        1e-6 + (runs * 4 * 6e-8 * row.Sum(Math.Abs) / Math.Sqrt(var + Eps));

    /// <summary>float64 layer norm over rows of D, written independently of the kernels.</summary>
    private static double[] Forward64(double[] x, double[] w, double[] bias, int n, int d)
    {
        var y = new double[x.Length];
        for (int i = 0; i < n; i++)
        {
            var row = x.Skip(i * d).Take(d).ToArray();
            double mu = row.Average();
            double var = row.Sum(v => (v - mu) * (v - mu)) / d;
            for (int j = 0; j < d; j++)
                y[(i * d) + j] = (w[j] * (row[j] - mu) / Math.Sqrt(var + Eps)) + bias[j];
        }

        return y;
    }
}
