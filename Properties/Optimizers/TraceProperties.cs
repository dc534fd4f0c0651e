using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>Trace: PyTorch's momentum, dampening and Nesterov, checked against a float64 re-implementation.</summary>
public class TraceProperties
{
    // Float32 kernels against float64 over a few updates of O(1) values with mu, (1 - tau) <= 1:
    // each update adds a few roundings of terms no larger than the buffer's magnitude.
    private const double StepsAtol = 1e-5;
    private const double StepsRtol = 1e-5;

    /// <summary>A momentum schedule given by a list of values (the last one repeats).</summary>
    /// <param name="Values">μ(0), μ(1), ...</param>
    private sealed record ListSchedule(double[] Values) : Schedule
    {
        public override double At(long step) => Values[Math.Min(step, Values.Length - 1)];
    }

    private static Gen<(Schedule Momentum, double[] Mus, double Dampening, bool Nesterov)> TraceArgs { get; } =
        from constant in Gen.Elements(true, false)
        from mus in Gen.ArrayOf(Gen.OneOf(Gen.Constant(0.0), Gen.Choose(1, 990).Select(k => k / 1000.0)), 4)
        from damp in Gen.OneOf(Gen.Constant(0.0), Gen.Elements(0.1, 0.5, 1.0))
        from nesterov in Gen.Elements(false, true)
        let m = constant ? Enumerable.Repeat(Math.Max(mus[0], 0.3), 4).ToArray() : mus.Select((x, i) => i == 0 ? Math.Max(x, 0.3) : x).ToArray()
        select (constant ? (Schedule)m[0] : new ListSchedule(m), m, nesterov ? 0.0 : damp, nesterov);

    /// <summary>PyTorch's SGD momentum in float64: returns the directions of each update.</summary>
    private static double[][] Float64Trace(float[][] grads, double[] mus, double dampening, bool nesterov)
    {
        var b = new double[grads[0].Length];
        bool has = false;
        var result = new double[grads.Length][];
        for (int t = 0; t < grads.Length; t++)
        {
            double mu = mus[t];
            var u = grads[t].Select(x => (double)x).ToArray();
            if (mu != 0)
            {
                for (int i = 0; i < u.Length; i++)
                {
                    b[i] = has ? (mu * b[i]) + ((1 - dampening) * u[i]) : u[i];
                    u[i] = nesterov ? u[i] + (mu * b[i]) : b[i];
                }
                has = true;
            }
            result[t] = u;
        }
        return result;
    }

    [Property(MaxTest = 30)]
    public Property Trace_follows_the_pytorch_formulas_over_several_steps() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), TraceArgs.ToArbitrary(), Gen.Choose(0, 10_000).ToArbitrary(), (layout, a, seed) =>
        {
            var d = Devices.Cpu;
            using var p = Trees.Random(d, layout, seed);
            var grads = Enumerable.Range(0, 4).Select(t => Gens.Random(seed + t, (int)p.Count, -2f, 2f)).ToArray();
            var expected = Float64Trace(grads, a.Mus, a.Dampening, a.Nesterov);
            var opt = new Trace(a.Momentum, a.Dampening, a.Nesterov);
            var state = opt.Init(p);
            var prop = true.Label("start");
            for (int t = 0; t < 4; t++)
            {
                var (u, next) = opt.Update(Trees.FromFlat(p, grads[t]), state, p, UpdateContext.None);
                using (u)
                    prop = prop.And(Close.All(u.Flat(), expected[t], StepsAtol, StepsRtol, $"update {t + 1} (mu {a.Mus[t]})"));
                state = next;
            }
            var ts = state.Find<TraceState>();
            prop = prop.And((ts.Count == 4 && ts.HasBuffer).Label($"count {ts.Count}, has buffer {ts.HasBuffer}"));
            state.Dispose();
            return prop.Label($"mus [{string.Join(", ", a.Mus)}] dampening {a.Dampening} nesterov {a.Nesterov}");
        });

    [Property(MaxTest = 25)]
    public Property First_update_is_the_undampened_gradient() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gen.Choose(1, 99).ToArbitrary(), Gen.Elements(0.0, 0.3, 1.0).ToArbitrary(), (layout, mu100, damp) =>
        {
            var d = Devices.Cpu;
            using var p = Trees.Random(d, layout, mu100);
            var g = Trees.Random(d, layout, mu100 + 1);
            var g0 = g.Flat();
            var opt = new Trace(mu100 / 100.0, damp);
            using var s0 = opt.Init(p);
            var (u, s1) = opt.Update(g, s0, p, UpdateContext.None);
            using (u)
            using (s1)
            {
                return Close.All(u.Flat(), g0, 0, 0, "direction = g")
                    .And(Close.All(((TraceState)s1).MomentumBuffer.Flat(), g0, 0, 0, "buffer = g"));
            }
        });

    [Fact]
    public void Zero_momentum_at_a_step_passes_g_and_keeps_the_buffer_unset()
    {
        var d = Devices.Cpu;
        using var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([2], [0f, 0f]) });
        var opt = new Trace(new ListSchedule([0.0, 0.5]), Dampening: 0.5);
        var s = opt.Init(p);
        var (u1, s1) = opt.Update(Trees.FromFlat(p, [1f, 2f]), s, p, UpdateContext.None);
        Assert.Equal([1f, 2f], u1.Flat());
        Assert.False(((TraceState)s1).HasBuffer);
        // PyTorch: the buffer starts on the first update with momentum != 0, undampened.
        var (u2, s2) = opt.Update(Trees.FromFlat(p, [4f, 8f]), s1, p, UpdateContext.None);
        Assert.Equal([4f, 8f], u2.Flat());
        var (u3, s3) = opt.Update(Trees.FromFlat(p, [2f, 2f]), s2, p, UpdateContext.None);
        Assert.Equal([(0.5f * 4f) + 1f, (0.5f * 8f) + 1f], u3.Flat());
        u1.Dispose();
        u2.Dispose();
        u3.Dispose();
        s3.Dispose();
    }

    [Fact]
    public void Nesterov_requires_positive_momentum_and_zero_dampening()
    {
        var d = Devices.Cpu;
        using var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([1], [1f]) });
        var e = Assert.Throws<ArgumentException>(() => new Trace(0.0, 0, Nesterov: true).Init(p));
        Assert.Contains("Nesterov momentum requires a momentum > 0 and zero dampening", e.Message);
        Assert.Throws<ArgumentException>(() => new Trace(0.9, 0.1, Nesterov: true).Init(p));
        Assert.Throws<ArgumentException>(() => new Sgd(0.1, momentum: 0.0, nesterov: true));
        Assert.Throws<ArgumentException>(() => new Sgd(0.1, momentum: 0.9, dampening: 0.5, nesterov: true));
        Assert.Throws<ArgumentException>(() => new Sgd(0.1, nesterov: true));
        var m = Assert.Throws<ArgumentOutOfRangeException>(() => new Trace(-0.1).Init(p));
        Assert.Contains("momentum >= 0", m.Message);
        using var ok = new Trace(0.9, 0, Nesterov: true).Init(p);
    }

    [Fact]
    public void Update_consumes_grads_and_the_old_state()
    {
        var d = Devices.Cpu;
        using var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([2], [1f, 2f]) });
        var opt = new Trace(0.9);
        var s0 = opt.Init(p);
        var g = p.Clone();
        var (u, s1) = opt.Update(g, s0, p, UpdateContext.None);
        Assert.Throws<ConsumedValueException>(() => g.Flat32);
        Assert.Throws<ConsumedValueException>(() => ((TraceState)s0).MomentumBuffer.Flat32);
        var e = Assert.Throws<ConsumedValueException>(() => opt.Update(u, s0, p, UpdateContext.None));
        Assert.Contains("trace.Update", e.Message);
        u.Dispose();
        s1.Dispose();
    }
}
