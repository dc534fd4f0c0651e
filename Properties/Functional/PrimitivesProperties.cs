namespace IlgpuTrain.Properties.Functional;

/// <summary>
/// The F.* primitives built on the foundation kernels: activations, softmax, log-softmax,
/// cross-entropy, reshape/flatten, add, mul, scale, sum, mean and the per-channel bias. Each
/// forward equals a float64 reference written here, and each VJP equals central finite
/// differences of that reference.
/// </summary>
public class PrimitivesProperties
{
    // Finite differences of a float64 reference are exact to ~1e-9; the tolerance covers the
    // float kernels (accumulated rounding over a few dozen terms) and float inputs.
    private const double Atol = 2e-4;
    private const double Rtol = 2e-3;

    private static Gen<(int N, int C, int Seed)> RowsCase =>
        from n in Gen.Choose(1, 6)
        from c in Gen.Choose(1, 9)
        from seed in Gen.Choose(0, 100000)
        select (n, c, seed);

    [Property(MaxTest = 35)]
    public Property Activation_vjps_match_finite_differences() =>
        Prop.ForAll(Gen.Elements("relu", "leaky", "gelu", "gelu-tanh", "tanh", "sigmoid", "silu").ToArbitrary(), Gen.Choose(0, 100000).ToArbitrary(), (name, seed) =>
        {
            Func<Tensor, Tensor> f = name switch
            {
                "relu" => F.Relu,
                "leaky" => x => F.LeakyRelu(x, 0.1f),
                "gelu" => x => F.Gelu(x),
                "gelu-tanh" => x => F.Gelu(x, GeluApproximation.Tanh),
                "tanh" => F.Tanh,
                "sigmoid" => F.Sigmoid,
                _ => F.Silu,
            };
            Func<double, double> r = name switch
            {
                "relu" => v => Math.Max(v, 0),
                "leaky" => v => v > 0 ? v : 0.1 * v,
                "gelu" => v => 0.5 * v * (1 + MathNet.Numerics.SpecialFunctions.Erf(v / Math.Sqrt(2))),
                "gelu-tanh" => v => 0.5 * v * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (v + (0.044715 * v * v * v)))),
                "tanh" => Math.Tanh,
                "sigmoid" => v => 1 / (1 + Math.Exp(-v)),
                _ => v => v / (1 + Math.Exp(-v)),
            };

            // Keep inputs away from the kink of ReLU and LeakyReLU at 0 so finite differences are valid.
            var x = GradCheck.Values(seed, 40, 3).Select(v => Math.Abs(v) < 0.05f ? v + 0.1f : v).ToArray();
            return GradCheck.Check(Devices.Cpu, [new GradInput("x", new Shape(4, 10), x)], (_, p) => f(p("x")), a => a[0].Select(r).ToArray(), GradCheck.Values(seed + 9, 40), Atol, Rtol)
                .Label($"{name}, seed {seed}");
        });

    [Property(MaxTest = 25)]
    public Property Softmax_and_log_softmax_vjps_match_finite_differences() =>
        Prop.ForAll(RowsCase.ToArbitrary(), c =>
        {
            var x = new GradInput("x", new Shape(c.N, c.C), GradCheck.Values(c.Seed, c.N * c.C, 4));
            var dOut = GradCheck.Values(c.Seed + 1, c.N * c.C);
            return GradCheck.Check(Devices.Cpu, [x], (_, p) => F.Softmax(p("x")), a => SoftmaxRef(a[0], c.N, c.C, log: false), dOut, Atol, Rtol).Label("softmax")
                .And(GradCheck.Check(Devices.Cpu, [x], (_, p) => F.LogSoftmax(p("x")), a => SoftmaxRef(a[0], c.N, c.C, log: true), dOut, Atol, Rtol).Label("log-softmax"))
                .Label($"(N, C) = ({c.N}, {c.C})");
        });

    [Property(MaxTest = 40)]
    public Property Cross_entropy_vjp_matches_finite_differences_for_each_reduction_and_smoothing() =>
        Prop.ForAll(RowsCase.ToArbitrary(), Gen.Elements(LossReduction.Mean, LossReduction.Sum, LossReduction.None).ToArbitrary(), Gen.Elements(0f, 0.1f, 0.3f).ToArbitrary(), (c, reduction, eps) =>
        {
            var rand = new Random(c.Seed);
            // Row 0 may be ignored (-100) to check that ignored rows get no loss and no gradient.
            var targets = Enumerable.Range(0, c.N).Select(i => i == 0 && c.N > 1 && c.Seed % 3 == 0 ? -100 : rand.Next(c.C)).ToArray();
            var options = new CrossEntropyOptions { Reduction = reduction, Epsilon = eps };
            var x = new GradInput("logits", new Shape(c.N, c.C), GradCheck.Values(c.Seed, c.N * c.C, 4));
            var dOut = reduction == LossReduction.None ? GradCheck.Values(c.Seed + 1, c.N) : null;
            double[] Reference(double[][] a)
            {
                var logp = SoftmaxRef(a[0], c.N, c.C, log: true);
                var rows = new double[c.N];
                int counted = 0;
                for (int i = 0; i < c.N; i++)
                {
                    if (targets[i] == -100)
                        continue;
                    counted++;
                    double nll = -logp[(i * c.C) + targets[i]], uniform = 0;
                    for (int k = 0; k < c.C; k++)
                        uniform -= logp[(i * c.C) + k];
                    rows[i] = ((1 - eps) * nll) + (eps / c.C * uniform);
                }

                return reduction switch
                {
                    LossReduction.None => rows,
                    LossReduction.Sum => [rows.Sum()],
                    _ => [rows.Sum() / counted],
                };
            }

            return GradCheck.Check(Devices.Cpu, [x], (step, p) => F.CrossEntropy(p("logits"), step.Upload(targets, new Shape(c.N)), options), Reference, dOut, Atol, Rtol)
                .Label($"(N, C) = ({c.N}, {c.C}), {reduction}, eps {eps}, targets [{string.Join(", ", targets)}]");
        });

    [Property(MaxTest = 25)]
    public Property Add_mul_scale_sum_mean_vjps_match_finite_differences() =>
        Prop.ForAll(RowsCase.ToArbitrary(), c =>
        {
            int n = c.N * c.C;
            var a = new GradInput("a", new Shape(c.N, c.C), GradCheck.Values(c.Seed, n));
            var b = new GradInput("b", new Shape(c.N, c.C), GradCheck.Values(c.Seed + 1, n));
            var dOut = GradCheck.Values(c.Seed + 2, n);
            return GradCheck.Check(Devices.Cpu, [a, b], (_, p) => F.Add(p("a"), p("b")), x => x[0].Zip(x[1], (u, v) => u + v).ToArray(), dOut, Atol, Rtol).Label("add")
                .And(GradCheck.Check(Devices.Cpu, [a, b], (_, p) => F.Mul(p("a"), p("b")), x => x[0].Zip(x[1], (u, v) => u * v).ToArray(), dOut, Atol, Rtol).Label("mul"))
                .And(GradCheck.Check(Devices.Cpu, [a], (_, p) => F.Scale(p("a"), -2.5f), x => x[0].Select(u => -2.5 * u).ToArray(), dOut, Atol, Rtol).Label("scale"))
                .And(GradCheck.Check(Devices.Cpu, [a], (_, p) => F.Sum(p("a")), x => [x[0].Sum()], null, Atol, Rtol).Label("sum"))
                .And(GradCheck.Check(Devices.Cpu, [a], (_, p) => F.Mean(p("a")), x => [x[0].Average()], null, Atol, Rtol).Label("mean"))
                .Label($"(N, C) = ({c.N}, {c.C})");
        });

    [Property(MaxTest = 20)]
    public Property Reshape_and_flatten_keep_values_and_pass_gradients_back() =>
        Prop.ForAll(RowsCase.ToArbitrary(), c =>
        {
            var x = new GradInput("x", new Shape(c.N, c.C, 2), GradCheck.Values(c.Seed, c.N * c.C * 2));
            var dOut = GradCheck.Values(c.Seed + 1, c.N * c.C * 2);
            // tanh after the view makes the gradient depend on where each value went.
            return GradCheck.Check(Devices.Cpu, [x], (_, p) => F.Tanh(F.Flatten(p("x"))), a => a[0].Select(Math.Tanh).ToArray(), dOut, Atol, Rtol).Label("flatten")
                .And(GradCheck.Check(Devices.Cpu, [x], (_, p) => F.Tanh(F.Reshape(p("x"), 2, -1)), a => a[0].Select(Math.Tanh).ToArray(), dOut, Atol, Rtol).Label("reshape -1"));
        });

    [Property(MaxTest = 20)]
    public Property Channel_bias_vjp_matches_finite_differences() =>
        Prop.ForAll(RowsCase.ToArbitrary(), Gen.Choose(1, 5).ToArbitrary(), (c, s) =>
        {
            var x = new GradInput("x", new Shape(c.N, c.C, s), GradCheck.Values(c.Seed, c.N * c.C * s));
            var b = new GradInput("b", new Shape(c.C), GradCheck.Values(c.Seed + 1, c.C));
            double[] Reference(double[][] a) => a[0].Select((v, i) => v + a[1][(i / s) % c.C]).ToArray();
            return GradCheck.Check(Devices.Cpu, [x, b], (_, p) => F.BiasAdd(p("x"), p("b")), Reference, GradCheck.Values(c.Seed + 2, c.N * c.C * s), Atol, Rtol)
                .Label($"(N, C, S) = ({c.N}, {c.C}, {s})");
        });

    [Fact]
    public void Shape_errors_name_the_op_and_both_shapes()
    {
        var d = Devices.Cpu;
        using var step = d.BeginStep();
        var x = step.Upload(new float[12], new Shape(3, 4));
        var w = step.Upload(new float[10], new Shape(2, 5));
        var e = Assert.Throws<ArgumentException>(() => F.Linear(x, w));
        Assert.Contains("Linear", e.Message);
        Assert.Contains("(3, 4)", e.Message);
        Assert.Contains("(2, 5)", e.Message);
        e = Assert.Throws<ArgumentException>(() => F.MatMul(x, w));
        Assert.Contains("inner dimensions", e.Message);
        e = Assert.Throws<ArgumentException>(() => F.Add(x, w));
        Assert.Contains("same shape", e.Message);
        e = Assert.Throws<ArgumentException>(() => F.Reshape(x, 5, -1));
        Assert.Contains("12", e.Message);
        var targets = step.Upload(new[] { 0, 1 }, new Shape(2));
        e = Assert.Throws<ArgumentException>(() => F.CrossEntropy(x, targets));
        Assert.Contains("targets must be (3)", e.Message);
        using var owned = Tensor.FromHost(d, new float[4], 4);
        e = Assert.Throws<ArgumentException>(() => F.Relu(owned));
        Assert.Contains("step.Use", e.Message);
    }

    internal static double[] SoftmaxRef(double[] x, int n, int c, bool log)
    {
        var y = new double[x.Length];
        for (int i = 0; i < n; i++)
        {
            double max = double.NegativeInfinity;
            for (int k = 0; k < c; k++)
                max = Math.Max(max, x[(i * c) + k]);
            double sum = 0;
            for (int k = 0; k < c; k++)
                sum += Math.Exp(x[(i * c) + k] - max);
            for (int k = 0; k < c; k++)
                y[(i * c) + k] = log ? x[(i * c) + k] - max - Math.Log(sum) : Math.Exp(x[(i * c) + k] - max) / sum;
        }

        return y;
    }
}
