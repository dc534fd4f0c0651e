using IlgpuTrain.Layers;
using DropoutLayer = IlgpuTrain.Layers.Dropout;
using DropoutKernels = IlgpuTrain.Kernels.Dropout;

namespace IlgpuTrain.Properties.Kernels;

/// <summary>Dropout (Kernels/Dropout.cs, F.Dropout, Layers/Dropout.cs): the kernel equals its reference; the mask is Bernoulli(1 - p), reproducible and shared by backward.</summary>
public class DropoutProperties
{
    // Kept elements are x * (1/(1-p)) in float in both the kernel and the reference: bitwise equal.
    private const double Exact = 0;

    // Finite differences of a piecewise-linear function at a fixed mask: only float32 rounding of
    // x * scale (scale up to 1/(1-0.95) = 20) separates the VJP from the float64 slope.
    private const double FdAtol = 1e-5;
    private const double FdRtol = 1e-5;

    private static Gen<(float[] X, float P, (ulong Seed, uint Stream, uint Counter) Key)> Case =>
        from x in Gens.Vector()
        from p in Gens.DropP
        from key in Gens.DropKey
        select (x, p, key);

    [Property(MaxTest = 40)]
    public Property Forward_and_backward_kernels_equal_the_reference() =>
        Prop.ForAll(Case.ToArbitrary(), c =>
        {
            var (seed, stream, counter) = c.Key;
            var expected = new float[c.X.Length];
            DropoutReference.ForwardReference(c.X, expected, c.P, seed, stream, counter);
            var result = true.Label($"n = {c.X.Length}, p = {c.P}");
            foreach (var d in Devices.All)
            {
                using var x = d.Upload(c.X);
                using var y = d.Poisoned(c.X.Length);
                using var dx = d.Poisoned(c.X.Length);
                DropoutKernels.Forward(d.Kernels, x.View<float>(), y.View<float>(), c.P, seed, stream, counter);
                DropoutKernels.Backward(d.Kernels, x.View<float>(), dx.View<float>(), c.P, seed, stream, counter);
                result = result.And(Close.All(y.ToHost(), expected, Exact, Exact, $"forward on {Devices.Describe(d)}"))
                    .And(Close.All(dx.ToHost(), expected, Exact, Exact, $"backward on {Devices.Describe(d)}"));
            }

            return result;
        });

    [Property(MaxTest = 20)]
    public Property Eval_mode_and_p_zero_return_x_itself_without_a_tape_entry() =>
        Prop.ForAll(Gens.DropP.ToArbitrary(), Gens.DropKey.ToArbitrary(), (p, key) =>
        {
            var rng = new Rng(key.Seed, key.Stream, key.Counter);
            using var step = Devices.Cpu.BeginStep();
            var x = step.Upload(GradCheck.Values(1, 33), new Shape(3, 11));
            bool evalSame = ReferenceEquals(F.Dropout(x, p, Mode.Eval, rng), x);
            bool zeroSame = ReferenceEquals(F.Dropout(x, 0f, Mode.Train, rng), x);
            return evalSame.Label("Eval returns x").And(zeroSame.Label("p = 0 returns x"));
        });

    [Property(MaxTest = 20)]
    public Property P_one_gives_zeros_even_for_infinite_inputs() =>
        Prop.ForAll(Gens.Length.ToArbitrary(), Gens.DropKey.ToArbitrary(), (n, key) =>
        {
            var d = Devices.Cpu;
            var data = Gens.Random(n, n);
            if (n > 2)
            {
                data[0] = float.PositiveInfinity;
                data[1] = float.NaN;
            }

            using var x = d.Upload(data);
            using var y = d.Poisoned(n);
            DropoutKernels.Forward(d.Kernels, x.View<float>(), y.View<float>(), 1f, key.Seed, key.Stream, key.Counter);
            return y.ToHost().All(v => v == 0f && !float.IsNegative(v)).Label($"n = {n}");
        });

    [Property(MaxTest = 20)]
    public Property Kept_fraction_and_mean_of_y_over_x_are_within_five_sigma() =>
        Prop.ForAll(Gen.Choose(50, 950).ToArbitrary(), Gens.DropKey.ToArbitrary(), (pk, key) =>
        {
            const int n = 20000;
            float p = pk / 1000f;
            var d = Devices.Cpu;
            var data = Gens.Random(pk, n, 0.5f, 2f);
            using var x = d.Upload(data);
            using var y = d.Poisoned(n);
            DropoutKernels.Forward(d.Kernels, x.View<float>(), y.View<float>(), p, key.Seed, key.Stream, key.Counter);
            var got = y.ToHost();
            int kept = got.Count(v => v != 0f);
            double q = 1.0 - p;
            double sigma = Math.Sqrt(n * p * q);
            // y/x = mask/(1-p): its mean is kept/(n q), with standard deviation sigma/(n q).
            double meanRatio = got.Select((v, i) => (double)v / data[i]).Average();
            return (Math.Abs(kept - (n * q)) <= 5 * sigma).Label($"kept {kept} of {n}, expected {n * q} +- 5*{sigma:F1}")
                .And((Math.Abs(meanRatio - 1) <= (5 * sigma / (n * q)) + 1e-6).Label($"mean y/x = {meanRatio}"));
        });

    [Property(MaxTest = 20)]
    public Property Same_key_gives_the_same_mask_and_another_counter_or_stream_another() =>
        Prop.ForAll(Gens.DropKey.ToArbitrary(), key =>
        {
            const int n = 1000;
            var d = Devices.Cpu;
            using var x = d.Upload(Gens.Random(3, n, 1f, 2f));
            float[] Mask(uint stream, uint counter)
            {
                using var y = d.Poisoned(n);
                DropoutKernels.Forward(d.Kernels, x.View<float>(), y.View<float>(), 0.5f, key.Seed, stream, counter);
                return y.ToHost().Select(v => v != 0f ? 1f : 0f).ToArray();
            }

            var a = Mask(key.Stream, key.Counter);
            var again = Mask(key.Stream, key.Counter);
            var nextStep = Mask(key.Stream, key.Counter + 1);
            var otherStream = Mask(key.Stream + 1, key.Counter);
            // Two independent Bernoulli(1/2) masks of 1000 agree in ~500 places; 900 is 25 sigma away.
            int Same(float[] u, float[] v) => u.Zip(v).Count(t => t.First == t.Second);
            return a.SequenceEqual(again).Label("same key, same mask")
                .And((Same(a, nextStep) < 900).Label($"counter + 1 agrees in {Same(a, nextStep)} of {n}"))
                .And((Same(a, otherStream) < 900).Label($"stream + 1 agrees in {Same(a, otherStream)} of {n}"));
        });

    [Property(MaxTest = 25)]
    public Property Backward_uses_the_forward_mask() =>
        Prop.ForAll(Gens.Length.ToArbitrary(), Gen.Choose(0, 990).ToArbitrary(), Gens.DropKey.ToArbitrary(), (n, pk, key) =>
        {
            float p = pk / 1000f;
            var rng = new Rng(key.Seed, key.Stream, key.Counter);
            // Inputs and output gradients bounded away from zero, so a zero means "dropped".
            var xs = Gens.Random(n, n, 0.5f, 2f);
            var dOut = Gens.Random(n + 1, n, 0.5f, 2f);
            var (y, grads) = GradCheck.Vjp(Devices.Cpu, [new GradInput("x", new Shape(n), xs)], (_, q) => F.Dropout(q("x"), p, Mode.Train, rng), dOut);
            var dx = grads["x"];
            float scale = 1f / (1f - p);
            for (int i = 0; i < n; i++)
            {
                if ((y[i] != 0f) != (dx[i] != 0f))
                    return false.Label($"element {i}: y = {y[i]} but dx = {dx[i]}");
                if (dx[i] != 0f && Math.Abs(dx[i] - (dOut[i] * scale)) > 1e-6 * Math.Abs(dOut[i] * scale))
                    return false.Label($"element {i}: dx = {dx[i]} but dy / (1 - p) = {dOut[i] * scale}");
            }

            return true.Label($"n = {n}, p = {p}");
        });

    [Property(MaxTest = 25)]
    public Property Vjp_matches_finite_differences_at_a_fixed_mask() =>
        Prop.ForAll(Gen.Elements(1, 7, 16, 17, 40).ToArbitrary(), Gen.Choose(0, 950).ToArbitrary(), Gens.DropKey.ToArbitrary(), (n, pk, key) =>
        {
            float p = pk / 1000f;
            var rng = new Rng(key.Seed, key.Stream, key.Counter);
            var keep = new float[n];
            PhiloxReference.BernoulliReference(keep, 1f - p, key.Seed, key.Stream, key.Counter);
            double[] Reference(double[][] a) => a[0].Select((v, i) => keep[i] * v / (1.0 - p)).ToArray();
            return GradCheck.Check(Devices.Cpu, [new GradInput("x", new Shape(n), GradCheck.Values(pk, n))], (_, q) => F.Dropout(q("x"), p, Mode.Train, rng), Reference, GradCheck.Values(pk + 1, n), FdAtol, FdRtol)
                .Label($"n = {n}, p = {p}");
        });

    [Fact]
    public void Invalid_p_is_rejected_by_the_launcher_the_op_and_the_layer()
    {
        var d = Devices.Cpu;
        using var x = d.Upload(new float[4]);
        foreach (float p in new[] { float.NaN, -0.1f, 1.5f, float.PositiveInfinity })
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => DropoutKernels.Forward(d.Kernels, x.View<float>(), x.View<float>(), p, 1, 0, 0));
            Assert.Contains("[0, 1]", e.Message, StringComparison.Ordinal);
            using var step = d.BeginStep();
            var t = step.Upload(new float[4], new Shape(2, 2));
            Assert.Throws<ArgumentOutOfRangeException>(() => F.Dropout(t, p, Mode.Eval, Rng.Create(1)));
            Assert.Throws<ArgumentOutOfRangeException>(() => new DropoutLayer(p).OutputShape(new Shape(3)));
        }
    }

    [Fact]
    public void Layer_drops_in_train_with_its_rng_and_is_the_identity_in_eval()
    {
        var d = Devices.Cpu;
        var layer = new Dense(8) >> new DropoutLayer(0.5f);
        var (ps, state) = layer.Init(d, new Shape(5), Rng.Create(7));
        using (ps)
        using (state)
        {
            float[] Run(Mode mode, Rng rng)
            {
                using var step = d.BeginStep();
                var x = step.Upload(GradCheck.Values(3, 4 * 5), new Shape(4, 5));
                return layer.Apply(Params.Bind(ps, step), state, x, mode, rng).Y.ToHost();
            }

            var eval = Run(Mode.Eval, Rng.Create(1));
            var train = Run(Mode.Train, Rng.Create(1));
            var trainAgain = Run(Mode.Train, Rng.Create(1));
            var nextStep = Run(Mode.Train, Rng.Create(1).Next());
            Assert.Equal(train, trainAgain);
            Assert.NotEqual(train, nextStep);
            for (int i = 0; i < eval.Length; i++)
                Assert.True(train[i] == 0f || Math.Abs(train[i] - (2 * eval[i])) <= 1e-6 * Math.Abs(eval[i]), $"element {i}: train {train[i]}, eval {eval[i]}");
            Assert.Contains(0f, train);
        }
    }
}
