namespace IlgpuTrain.Properties.Functional;

/// <summary>
/// The tape and ValueAndGrad: gradients of values used twice are summed, parameters the loss does
/// not read get exactly zero, frozen parameters get zero and skip their kernels, the seed scales
/// every gradient, nothing is accumulated across calls, the parameters are untouched, and the
/// memory pool stays flat across steps.
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
}
