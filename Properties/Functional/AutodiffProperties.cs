namespace IlgpuTrain.Properties.Functional;

/// <summary>
/// The tape and ValueAndGrad: gradients of values used twice are summed, parameters the loss does
/// not read get exactly zero, frozen parameters get zero and skip their kernels, the seed scales
/// every gradient, nothing is accumulated across calls, the parameters are untouched, and the
/// memory pool stays flat across steps. Gradients with respect to input tensors equal finite
/// differences, and a tensor seed gives the vector-Jacobian product: linear in the seed, S W^T for
/// MatMul, the float seed for a one-element output.
/// </summary>
public class AutodiffProperties
{
    private static ParamTree Tree(Device d, int seed, params (string Name, int[] Shape)[] entries) =>
        ParamTree.FromHost(d, entries.Select((e, i) => KeyValuePair.Create(e.Name, (e.Shape, GradCheck.Values(seed + i, e.Shape.Aggregate(1, (a, b) => a * b))))));

    [Property(MaxTest = 20)]
    public Property A_value_used_twice_gets_the_sum_of_both_gradients() =>
        Prop.ForAll(Gen.Choose(1, 40).ToArbitrary(), Gen.Choose(0, 10000).ToArbitrary(), (n, seed) =>
        {
            var d = Devices.Cpu;
            using var p = Tree(d, seed, ("w", [n]));
            var w = p.ToHost()["w"].Data;
            using var step = d.BeginStep();
            // sum(w * w + (w + w)): d/dw = 2w + 2. Mul(w, w) and Add(h, h) each use one value twice.
            var (_, g) = Autodiff.ValueAndGrad(step, p, q => F.Sum(F.Add(F.Mul(q["w"], q["w"]), F.Add(q["w"], q["w"]))));
            using (g)
            {
                var expected = w.Select(v => (2.0 * v) + 2).ToArray();
                return Close.All(g.ToHost()["w"].Data, expected, 1e-6, 1e-6, "d/dw (w^2 + 2w)").Label($"n = {n}");
            }
        });

    [Fact]
    public void Parameters_the_loss_does_not_read_get_exactly_zero_even_from_a_recycled_buffer()
    {
        var d = Devices.Cpu;
        using var p = Tree(d, 1, ("a", [64]), ("b", [64]));
        // A first call leaves non-zero gradients in the pool, which the second call's buffer reuses.
        using (var step = d.BeginStep())
            Autodiff.ValueAndGrad(step, p, q => F.Sum(F.Add(F.Mul(q["a"], q["b"]), q["a"]))).Grads.Dispose();
        using (var step = d.BeginStep())
        {
            var (_, g) = Autodiff.ValueAndGrad(step, p, q => F.Sum(F.Tanh(q["a"])));
            using (g)
                Assert.All(g.ToHost()["b"].Data, v => Assert.Equal(0f, v));
        }
    }

    [Fact]
    public void Frozen_parameters_get_zero_and_the_others_their_full_gradient()
    {
        var d = Devices.Cpu;
        using var p = Tree(d, 2, ("0.weight", [3, 4]), ("0.bias", [3]), ("1.weight", [2, 3]));
        var x = GradCheck.Values(99, 20);
        Tensor Loss(Params q, StepScope s) =>
            F.Sum(F.Tanh(F.Linear(F.Tanh(F.Linear(s.Upload(x, new Shape(5, 4)), q["0.weight"], q["0.bias"])), q["1.weight"])));
        Dictionary<string, (int[] Shape, float[] Data)> all, frozen;
        using (var step = d.BeginStep())
        {
            var (_, g) = Autodiff.ValueAndGrad(step, p, q => Loss(q, step));
            using (g)
                all = g.ToHost();
        }

        using (var step = d.BeginStep())
        {
            var options = new GradOptions { Trainable = ParamFilter.Glob("1.*") };
            var (_, g) = Autodiff.ValueAndGrad(step, p, q => Loss(q, step), options);
            using (g)
                frozen = g.ToHost();
        }

        Assert.All(frozen["0.weight"].Data, v => Assert.Equal(0f, v));
        Assert.All(frozen["0.bias"].Data, v => Assert.Equal(0f, v));
        Assert.Equal(all["1.weight"].Data, frozen["1.weight"].Data);
        Assert.Contains(all["0.weight"].Data, v => v != 0f);
    }

    [Property(MaxTest = 15)]
    public Property The_seed_scales_every_gradient_exactly_by_a_power_of_two() =>
        Prop.ForAll(Gen.Choose(0, 10000).ToArbitrary(), Gen.Choose(-8, 16).ToArbitrary(), (seed, k) =>
        {
            var d = Devices.Cpu;
            float scale = MathF.Pow(2, k);
            using var p = Tree(d, seed, ("w", [6, 5]), ("b", [6]));
            var x = GradCheck.Values(seed + 7, 15);
            float[] Run(float s)
            {
                using var step = d.BeginStep();
                var (_, g) = Autodiff.ValueAndGrad(step, p, q => F.Mean(F.Sigmoid(F.Linear(step.Upload(x, new Shape(3, 5)), q["w"], q["b"]))), new GradOptions { Seed = s });
                using (g)
                    return Transfer.ToHost(d.Stream, g.Flat32);
            }

            var one = Run(1f);
            var scaled = Run(scale);
            return one.Select(v => v * scale).SequenceEqual(scaled).Label($"seed 2^{k}");
        });

    [Fact]
    public void Two_calls_give_identical_gradients_and_leave_the_parameters_untouched()
    {
        var d = Devices.Cpu;
        using var p = Tree(d, 3, ("w", [8, 8]));
        var before = p.Snapshot().Float32;
        float[] Run()
        {
            using var step = d.BeginStep();
            var (_, g) = Autodiff.ValueAndGrad(step, p, q => F.Sum(F.Relu(F.MatMul(q["w"], q["w"]))));
            using (g)
                return Transfer.ToHost(d.Stream, g.Flat32);
        }

        Assert.Equal(Run(), Run());
        Assert.Equal(before, p.Snapshot().Float32);
    }

    [Fact]
    public void Evaluation_records_nothing_and_the_loss_value_matches_the_training_forward()
    {
        var d = Devices.Cpu;
        using var p = Tree(d, 4, ("w", [4, 4]));
        float train, eval;
        using (var step = d.BeginStep())
        {
            var (loss, g) = Autodiff.ValueAndGrad(step, p, q => F.Sum(F.Gelu(q["w"])));
            g.Dispose();
            train = loss.ToHost()[0];
            Assert.Null(step.Tape);
        }

        using (var step = d.BeginStep())
        {
            var q = Params.Bind(p, step);
            var y = F.Sum(F.Gelu(q["w"]));
            Assert.False(y.RequiresGrad);
            Assert.Null(step.Tape);
            eval = y.ToHost()[0];
        }

        Assert.Equal(train, eval);
    }

    [Fact]
    public void Misuse_gets_clear_errors()
    {
        var d = Devices.Cpu;
        using var p = Tree(d, 5, ("w", [3]));
        using var step = d.BeginStep();
        var e = Assert.Throws<ArgumentException>(() => Autodiff.ValueAndGrad(step, p, q => F.Tanh(q["w"])));
        Assert.Contains("single value", e.Message);
        var k = Assert.Throws<KeyNotFoundException>(() => Autodiff.ValueAndGrad(step, p, q => F.Sum(q["v"])));
        Assert.Contains("\"v\"", k.Message);
        var n = Assert.Throws<InvalidOperationException>(() => Autodiff.ValueAndGrad(step, p, q => Autodiff.ValueAndGrad(step, p, r => F.Sum(r["w"])).Loss));
        Assert.Contains("nested", n.Message);
        Assert.Null(step.Tape);
    }

    // float32 GEMM and tanh against float64.
    private const double Atol = 1e-4;
    private const double Rtol = 1e-3;

    private static Gen<(int M, int K, int N, int Seed)> Small =>
        from m in Gen.Choose(1, 4)
        from k in Gen.Choose(1, 5)
        from n in Gen.Choose(1, 3)
        from seed in Gen.Choose(0, 100000)
        select (m, k, n, seed);

    private static double[] ToDouble(float[] v) => v.Select(x => (double)x).ToArray();

    // y[i, j] = sum_k a[i, k] b[k, j] in float64.
    private static double[] MatMul(double[] a, double[] b, int m, int k, int n, bool transA = false, bool transB = false)
    {
        var y = new double[m * n];
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int t = 0; t < k; t++)
                    s += (transA ? a[(t * m) + i] : a[(i * k) + t]) * (transB ? b[(j * k) + t] : b[(t * n) + j]);
                y[(i * n) + j] = s;
            }
        }

        return y;
    }

    [Property(MaxTest = 20)]
    public Property Gradients_with_respect_to_inputs_and_parameters_match_finite_differences() =>
        Prop.ForAll(Small.ToArbitrary(), c =>
        {
            // loss = sum tanh(x W^T + b) * r, x an input (M, K), W (N, K) and b (N) parameters, r a constant.
            var d = Devices.Cpu;
            using var p = Tree(d, c.Seed, ("w", [c.N, c.K]), ("b", [c.N]));
            var host = p.ToHost();
            var x = GradCheck.Values(c.Seed + 5, c.M * c.K);
            var r = GradCheck.Values(c.Seed + 6, c.M * c.N);
            using var step = d.BeginStep();
            var xt = step.Upload(x, new Shape(c.M, c.K));
            var (_, g, dx) = Autodiff.ValueAndGrad(step, p, [xt], q => F.Sum(F.Mul(F.Tanh(F.Linear(xt, q["w"], q["b"])), step.Upload(r, new Shape(c.M, c.N)))));
            using var _g = g;
            var gh = g.ToHost();
            double[] Reference(IReadOnlyList<double[]> v)
            {
                var y = MatMul(v[0], v[1], c.M, c.K, c.N, transB: true);
                double s = 0;
                for (int i = 0; i < y.Length; i++)
                    s += Math.Tanh(y[i] + v[2][i % c.N]) * r[i];
                return [s];
            }

            double[][] point = [ToDouble(x), ToDouble(host["w"].Data), ToDouble(host["b"].Data)];
            return Close.All(dx[0].ToHost(), GradientCheck.FiniteDifference(Reference, point, 0, [1.0]), Atol, Rtol, "d/dx")
                .And(Close.All(gh["w"].Data, GradientCheck.FiniteDifference(Reference, point, 1, [1.0]), Atol, Rtol, "d/dW"))
                .And(Close.All(gh["b"].Data, GradientCheck.FiniteDifference(Reference, point, 2, [1.0]), Atol, Rtol, "d/db"))
                .And((dx[0].Shape == xt.Shape).Label("d/dx has x's shape"))
                .Label($"{c}");
        });

    [Property(MaxTest = 20)]
    public Property The_vjp_of_MatMul_is_the_seed_times_W_transposed_and_X_transposed_times_the_seed() =>
        Prop.ForAll(Small.ToArbitrary(), c =>
        {
            var d = Devices.Cpu;
            var x = GradCheck.Values(c.Seed, c.M * c.K);
            var w = GradCheck.Values(c.Seed + 1, c.K * c.N);
            var s = GradCheck.Values(c.Seed + 2, c.M * c.N);
            using var step = d.BeginStep();
            var xt = step.Upload(x, new Shape(c.M, c.K));
            var wt = step.Upload(w, new Shape(c.K, c.N));
            var (y, g) = Autodiff.Vjp(step, [xt, wt], () => F.MatMul(xt, wt), step.Upload(s, new Shape(c.M, c.N)));
            return Close.All(y.ToHost(), MatMul(ToDouble(x), ToDouble(w), c.M, c.K, c.N), Atol, Rtol, "X W")
                .And(Close.All(g[0].ToHost(), MatMul(ToDouble(s), ToDouble(w), c.M, c.N, c.K, transB: true), Atol, Rtol, "dX = S W^T"))
                .And(Close.All(g[1].ToHost(), MatMul(ToDouble(x), ToDouble(s), c.K, c.M, c.N, transA: true), Atol, Rtol, "dW = X^T S"))
                .Label($"{c}");
        });

    [Property(MaxTest = 15)]
    public Property A_tensor_seed_gives_the_sum_of_the_per_element_seeds() =>
        Prop.ForAll(Small.ToArbitrary(), c =>
        {
            // Linearity of the VJP: J^T s = sum_i s_i J^T e_i, for the input and the parameter.
            var d = Devices.Cpu;
            using var p = Tree(d, c.Seed, ("w", [c.N, c.K]));
            var x = GradCheck.Values(c.Seed + 3, c.M * c.K);
            var s = GradCheck.Values(c.Seed + 4, c.M * c.N);
            (float[] Dx, float[] Dw) Run(float[] seed)
            {
                using var step = d.BeginStep();
                var xt = step.Upload(x, new Shape(c.M, c.K));
                var (_, g, dx) = Autodiff.Vjp(step, p, [xt], q => F.Sigmoid(F.Linear(xt, q["w"])), step.Upload(seed, new Shape(c.M, c.N)));
                using (g)
                    return (dx[0].ToHost(), g.ToHost()["w"].Data);
            }

            var (dx, dw) = Run(s);
            var sumX = new double[dx.Length];
            var sumW = new double[dw.Length];
            for (int i = 0; i < s.Length; i++)
            {
                var e = new float[s.Length];
                e[i] = 1f;
                var (ex, ew) = Run(e);
                for (int j = 0; j < sumX.Length; j++)
                    sumX[j] += s[i] * (double)ex[j];
                for (int j = 0; j < sumW.Length; j++)
                    sumW[j] += s[i] * (double)ew[j];
            }

            return Close.All(dx, sumX, 1e-5, 1e-4, "d/dx").And(Close.All(dw, sumW, 1e-5, 1e-4, "d/dW")).Label($"{c}");
        });

    [Property(MaxTest = 10)]
    public Property A_one_element_seed_tensor_equals_the_same_float_seed() =>
        Prop.ForAll(Gen.Choose(0, 10000).ToArbitrary(), Gen.Choose(-4, 4).ToArbitrary(), (seed, k) =>
        {
            var d = Devices.Cpu;
            float scale = 3f * MathF.Pow(2, k);
            using var p = Tree(d, seed, ("w", [4, 3]));
            var x = GradCheck.Values(seed + 1, 6);
            using var step = d.BeginStep();
            var xt = step.Upload(x, new Shape(2, 3));
            Tensor Loss(Params q) => F.Mean(F.Tanh(F.Linear(xt, q["w"])));
            var (l1, g1, dx1) = Autodiff.ValueAndGrad(step, p, [xt], Loss, new GradOptions { Seed = scale });
            var (l2, g2, dx2) = Autodiff.Vjp(step, p, [xt], Loss, step.Upload([scale], l1.Shape));
            using (g1)
            using (g2)
            {
                return g1.ToHost()["w"].Data.SequenceEqual(g2.ToHost()["w"].Data).Label("d/dW")
                    .And(dx1[0].ToHost().SequenceEqual(dx2[0].ToHost()).Label("d/dx"))
                    .And((l1.ToHost()[0] == l2.ToHost()[0]).Label("value"));
            }
        });

    [Fact]
    public void An_unread_input_gets_exact_zero_the_identity_gets_the_seed_and_inputs_are_plain_again_after()
    {
        var d = Devices.Cpu;
        // A first step leaves non-zero gradients in the pool, which the next step's buffers reuse.
        using (var first = d.BeginStep())
        {
            var a = first.Upload(GradCheck.Values(1, 8), new Shape(8));
            var b = first.Upload(GradCheck.Values(2, 8), new Shape(2, 4));
            _ = Autodiff.Vjp(first, [a, b], () => F.Add(a, F.Reshape(b, 8)), first.Upload(GradCheck.Values(2, 8), new Shape(8)));
        }

        using var step = d.BeginStep();
        var x = step.Upload(GradCheck.Values(3, 8), new Shape(8));
        var unused = step.Upload(GradCheck.Values(4, 8), new Shape(2, 4));
        var seed = GradCheck.Values(5, 8);
        var (y, g) = Autodiff.Vjp(step, [x, unused], () => x, step.Upload(seed, new Shape(8)));
        Assert.Same(x, y);
        Assert.Equal(seed, g[0].ToHost());
        Assert.All(g[1].ToHost(), v => Assert.Equal(0f, v));
        Assert.Equal(new Shape(2, 4), g[1].Shape);

        // The inputs were the tape's values only during the call.
        Assert.False(x.RequiresGrad);
        Assert.False(unused.RequiresGrad);
        Assert.Equal(new Shape(4, 2), unused.Reshape(new Shape(4, 2)).Shape);
    }

    [Fact]
    public void Bad_inputs_and_seeds_get_clear_errors()
    {
        var d = Devices.Cpu;
        using var p = Tree(d, 7, ("w", [3]));
        using var step = d.BeginStep();
        var x = step.Upload(GradCheck.Values(1, 3), new Shape(3));
        var seed = step.Upload(GradCheck.Values(2, 3), new Shape(3));

        var shape = Assert.Throws<ArgumentException>(() => Autodiff.Vjp(step, [x], () => F.Tanh(x), step.Upload(GradCheck.Values(3, 3), new Shape(3, 1))));
        Assert.Contains("must have the output's shape", shape.Message);
        Assert.Contains("(3, 1)", shape.Message);

        var intSeed = Assert.Throws<ArgumentException>(() => Autodiff.Vjp(step, [x], () => F.Tanh(x), step.Upload([1, 2, 3], new Shape(3))));
        Assert.Contains("must be Float32", intSeed.Message);

        using var owned = Tensor.FromHost(d, GradCheck.Values(4, 3), 3);
        var notInStep = Assert.Throws<ArgumentException>(() => Autodiff.Vjp(step, [owned], () => F.Tanh(owned), seed));
        Assert.Contains("inputs[0]", notInStep.Message);
        Assert.Contains("step.Use(tensor)", notInStep.Message);
        using (var other = d.BeginStep())
        {
            var foreign = other.Upload(GradCheck.Values(5, 3), new Shape(3));
            var e = Assert.Throws<ArgumentException>(() => Autodiff.ValueAndGrad(step, p, [x, foreign], q => F.Sum(F.Mul(q["w"], x))));
            Assert.Contains("inputs[1]", e.Message);
            Assert.Contains("another step", e.Message);
        }

        // step.Use brings an owned tensor in, and then it differentiates.
        var used = step.Use(owned);
        var (_, dOwned) = Autodiff.Vjp(step, [used], () => F.Scale(used, 2f), seed);
        Assert.Equal(seed.ToHost().Select(v => 2f * v), dOwned[0].ToHost());

        var labels = step.Upload([0, 1, 2], new Shape(3));
        var integer = Assert.Throws<ArgumentException>(() => Autodiff.Vjp(step, [labels], () => F.Tanh(x), seed));
        Assert.Contains("only Float32", integer.Message);

        var twice = Assert.Throws<ArgumentException>(() => Autodiff.Vjp(step, [x, x], () => F.Tanh(x), seed));
        Assert.Contains("inputs[1] is the same tensor as inputs[0]", twice.Message);

        var consumedSeed = step.Upload(GradCheck.Values(6, 3), new Shape(3));
        _ = consumedSeed.Reshape(new Shape(1, 3));
        var cs = Assert.Throws<ConsumedValueException>(() => Autodiff.Vjp(step, [x], () => F.Tanh(x), consumedSeed));
        Assert.Contains("the seed", cs.Message);
        var consumedInput = step.Upload(GradCheck.Values(7, 3), new Shape(3));
        _ = consumedInput.Reshape(new Shape(3, 1));
        var ci = Assert.Throws<ConsumedValueException>(() => Autodiff.Vjp(step, [consumedInput], () => F.Tanh(x), seed));
        Assert.Contains("inputs[0]", ci.Message);

        var scaled = Assert.Throws<ArgumentException>(() => Autodiff.Vjp(step, p, [x], q => F.Tanh(x), seed, new GradOptions { Seed = 2f }));
        Assert.Contains("scale the seed tensor", scaled.Message);

        var notScalar = Assert.Throws<ArgumentException>(() => Autodiff.ValueAndGrad(step, p, [x], q => F.Mul(q["w"], x)));
        Assert.Contains("Autodiff.Vjp", notScalar.Message);
        Assert.Null(step.Tape);
        Assert.False(x.RequiresGrad);
    }

    [Fact]
    public void The_pool_high_water_mark_is_flat_over_200_training_steps()
    {
        // A device of its own: tests run in parallel, and others' allocations would move a shared pool's peak.
        using var d = Device.Create(DeviceKind.Cpu);
        using var p = Tree(d, 6, ("0.weight", [16, 12]), ("0.bias", [16]), ("1.weight", [4, 16]), ("1.bias", [4]));
        var x = GradCheck.Values(6, 8 * 12);
        var y = Enumerable.Range(0, 8).Select(i => i % 4).ToArray();
        void Step()
        {
            using var step = d.BeginStep();
            var (_, g) = Autodiff.ValueAndGrad(step, p, q =>
            {
                var h = F.Relu(F.Linear(step.Upload(x, new Shape(8, 12)), q["0.weight"], q["0.bias"]));
                return F.CrossEntropy(F.Linear(h, q["1.weight"], q["1.bias"]), step.Upload(y, new Shape(8)));
            });
            g.Dispose();
        }

        for (int i = 0; i < 5; i++)
            Step();
        var warm = d.Pool.Stats;
        for (int i = 0; i < 200; i++)
            Step();
        var after = d.Pool.Stats;
        Assert.Equal(warm.PeakBytesInUse, after.PeakBytesInUse);
        Assert.Equal(warm.PeakBytesReserved, after.PeakBytesReserved);
    }

    // A NaN or infinite seed makes every gradient non-finite with no word of why.
    [Fact]
    public void A_seed_that_is_not_finite_is_refused_naming_it()
    {
        var d = Devices.Cpu;
        using var p = Tree(d, 1, ("w", [3]));
        using var step = d.BeginStep();
        foreach (float seed in new[] { float.NaN, float.PositiveInfinity })
        {
            var e = Assert.Throws<ArgumentException>(() => Autodiff.ValueAndGrad(step, p, q => F.Sum(q["w"]), new GradOptions { Seed = seed }));
            Assert.Contains("GradOptions.Seed is", e.Message);
            Assert.Contains("must be finite", e.Message);
        }

        var (_, g) = Autodiff.ValueAndGrad(step, p, q => F.Sum(q["w"]), new GradOptions { Seed = 2f });
        using (g)
            Assert.Equal([2f, 2f, 2f], g.Snapshot().Get("w"));
    }
}
