using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>
/// Ema: the update rule against a float64 reference, decay 0 and 1, the decay warmup at known
/// steps (timm's ModelEmaV3.get_decay), buffers averaged or copied, both backends the same bits,
/// and bad options refused.
/// </summary>
public class EmaProperties
{
    private static Gen<double> Decay { get; } = Gen.OneOf(Gen.Elements(0.0, 0.5, 0.9, 0.999, 0.9999, 1.0), Gen.Choose(0, 1 << 20).Select(k => k / (double)(1 << 20)));

    private static Gen<(float[] W0, float[][] Ws)> Snapshots { get; } =
        from n in Gens.Length
        from k in Gen.Choose(1, 8)
        from w0 in Gens.Floats(n)
        from ws in Gen.ArrayOf(Gens.Floats(n), k)
        select (w0, ws);

    /// <summary>Weights as a tree with two named entries (the split exercises the flat buffer, not one tensor).</summary>
    private static ParamTree Tree(Device d, float[] v) => ParamTree.FromHost(d, new Dictionary<string, (int[], float[])>
    {
        ["0.weight"] = ([v.Length / 2], v[..(v.Length / 2)]),
        ["0.bias"] = ([v.Length - (v.Length / 2)], v[(v.Length / 2)..]),
    });

    private static ParamTree NoState(Device d) => ParamTree.FromHost(d, []);

    /// <summary>Runs an EMA from <paramref name="w0"/> through <paramref name="ws"/> and returns its parameters after each update.</summary>
    private static List<float[]> Run(Device d, Ema ema, float[] w0, float[][] ws)
    {
        using var p0 = Tree(d, w0);
        using var s = NoState(d);
        var avg = ema.Init(p0, s);
        var seen = new List<float[]>();
        try
        {
            foreach (var w in ws)
            {
                using var p = Tree(d, w);
                avg = ema.Update(avg, p, s);
                seen.Add(avg.Params.Snapshot().Float32);
            }
        }
        finally
        {
            avg.Dispose();
        }

        return seen;
    }

    [Property(MaxTest = 40)]
    public Property Update_follows_the_float64_rule_decay_times_ema_plus_one_minus_decay_times_w() =>
        Prop.ForAll(Snapshots.ToArbitrary(), Decay.ToArbitrary(), Gen.Elements(false, true).ToArbitrary(), (snaps, decay, warmup) =>
        {
            var ema = new Ema(decay, warmup: warmup);
            var got = Run(Devices.Cpu, ema, snaps.W0, snaps.Ws);
            var e = snaps.W0.Select(x => (double)x).ToArray();
            for (int t = 1; t <= snaps.Ws.Length; t++)
            {
                double dt = ema.DecayAt(t);
                for (int i = 0; i < e.Length; i++)
                    e[i] = (dt * e[i]) + ((1 - dt) * snaps.Ws[t - 1][i]);
                // Each update rounds a few times at most an ulp of values bounded by 10 in size, and
                // the float weight 1 - decay is off by at most half an ulp: errors add up over t.
                var check = Close.Check(got[t - 1], e.Select(x => (float)x).ToArray(), 4e-6 * t, 0, $"update {t} (decay_t {dt:R})");
                if (!check.Ok)
                    return false.Label(check.Label + $" decay={decay:R} warmup={warmup} n={e.Length}");
            }

            return true.Label("ok");
        });

    [Property(MaxTest = 30)]
    public Property Decay_0_equals_the_weights_and_decay_1_keeps_the_weights_of_the_first_update() =>
        Prop.ForAll(Snapshots.ToArbitrary(), snaps =>
        {
            var zero = Run(Devices.Cpu, new Ema(0.0), snaps.W0, snaps.Ws);
            var one = Run(Devices.Cpu, new Ema(1.0), snaps.W0, snaps.Ws);
            var p = true.Label("ok");
            for (int t = 0; t < snaps.Ws.Length; t++)
            {
                // timm's first update copies the weights (decay_1 = 0); decay 1 then never moves.
                p = p.And(Bits.Same(zero[t], snaps.Ws[t], $"decay 0 after update {t + 1}"))
                    .And(Bits.Same(one[t], snaps.Ws[0], $"decay 1 after update {t + 1}"));
            }

            return p;
        });

    [Property(MaxTest = 15)]
    public Property Managed_and_kernel_backends_give_the_same_bits() =>
        Prop.ForAll(Snapshots.ToArbitrary(), Decay.ToArbitrary(), (snaps, decay) =>
        {
            var ema = new Ema(decay, warmup: true);
            var managed = Run(Devices.Cpu, ema, snaps.W0, snaps.Ws);
            var kernels = Run(Devices.CpuKernels, ema, snaps.W0, snaps.Ws);
            return Bits.Same(managed[^1], kernels[^1], $"after {snaps.Ws.Length} updates, decay {decay:R}");
        });

    [Fact]
    public void The_decay_at_known_updates_is_timms_get_decay()
    {
        // Expected values: timm's ModelEmaV3.get_decay(step) (timm/utils/model_ema.py) evaluated in
        // Python 3 with its defaults (decay 0.9999, min_decay 0, update_after_step 0, warmup_gamma 1,
        // warmup_power 2/3), use_warmup=True unless noted.
        var warm = new Ema(warmup: true);
        Assert.Equal(0.0, warm.DecayAt(1));
        Assert.Equal(0.3700394750525634, warm.DecayAt(2), 15);
        Assert.Equal(0.5192501432308638, warm.DecayAt(3), 15);
        Assert.Equal(0.7978199917664258, warm.DecayAt(11), 15);
        Assert.Equal(0.9538909949722393, warm.DecayAt(101), 15);
        Assert.Equal(0.9990000047096224, warm.DecayAt(31623), 15);
        Assert.Equal(0.9999, warm.DecayAt(100_000_000));
        // warmup_power 0.75 reaches 0.999 at 10k updates; gamma 2, power 1 at step 5: 1 - 1/(1 + 4/2).
        Assert.Equal(0.9990000749934381, new Ema(warmup: true, warmupPower: 0.75).DecayAt(10001), 15);
        Assert.Equal(0.6666666666666667, new Ema(warmup: true, warmupGamma: 2.0, warmupPower: 1.0).DecayAt(5), 15);
        // min_decay floors the warmup; decay caps it.
        Assert.Equal(0.5, new Ema(warmup: true, minDecay: 0.5).DecayAt(2));
        Assert.Equal(0.9, new Ema(0.9, warmup: true).DecayAt(1000));
        // Without warmup: the first update copies, then the constant decay.
        var plain = new Ema(0.999);
        Assert.Equal(0.0, plain.DecayAt(1));
        Assert.Equal(0.999, plain.DecayAt(2));
        Assert.Equal(0.999, plain.DecayAt(5000));
        // update_after_step: copies through update_after_step + 1.
        var late = new Ema(0.99, updateAfterStep: 10);
        Assert.Equal(0.0, late.DecayAt(11));
        Assert.Equal(0.99, late.DecayAt(12));
    }

    [Fact]
    public void Float_buffers_are_averaged_integer_buffers_copied_and_exclude_buffers_copies_all()
    {
        var d = Devices.Cpu;
        var layout = new ParamLayout([("1.running_mean", new Shape(3), DType.Float32), ("1.num_batches_tracked", Shape.Scalar, DType.Int32)]);
        ParamTree State(float[] mean, int batches) => ParamTree.FromSnapshot(d, new ParamSnapshot(layout, mean, [], [batches]));
        using var p = Tree(d, [1f, 2f]);
        using var s0 = State([0f, 0f, 0f], 0);
        using var s1 = State([4f, 8f, -4f], 7);
        using var s2 = State([8f, 0f, 4f], 9);
        foreach (bool exclude in new[] { false, true })
        {
            var ema = new Ema(0.75, excludeBuffers: exclude);
            var avg = ema.Update(ema.Update(ema.Init(p, s0), p, s1), p, s2);
            using (avg)
            {
                var snap = avg.State.Snapshot();
                // Update 1 copies (decay 0): [4, 8, -4]; update 2 with decay 0.75: 0.75 [4, 8, -4] + 0.25 [8, 0, 4].
                Assert.Equal(exclude ? [8f, 0f, 4f] : [5f, 6f, -2f], snap.Float32);
                Assert.Equal([9], snap.Int32);
                Assert.Equal(2, avg.Count);
            }
        }
    }

    [Fact]
    public void An_update_consumes_the_average_it_was_given()
    {
        var d = Devices.Cpu;
        using var p = Tree(d, [1f, 2f, 3f]);
        using var s = NoState(d);
        var ema = new Ema(0.9);
        var first = ema.Init(p, s);
        using var next = ema.Update(first, p, s);
        Assert.Throws<ConsumedValueException>(() => first.Params.Snapshot());
        Assert.Equal(1, next.Count);
    }

    [Fact]
    public void Bad_options_are_refused_naming_the_option_and_the_range()
    {
        foreach (double bad in new[] { -0.1, 1.0001, double.NaN, double.PositiveInfinity })
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => new Ema(bad));
            Assert.Contains("decay", e.Message, StringComparison.Ordinal);
            Assert.Contains("[0, 1]", e.Message, StringComparison.Ordinal);
        }

        Assert.Contains("warmup_gamma", Assert.Throws<ArgumentOutOfRangeException>(() => new Ema(warmupGamma: 0)).Message, StringComparison.Ordinal);
        Assert.Contains("warmup_power", Assert.Throws<ArgumentOutOfRangeException>(() => new Ema(warmupPower: double.NaN)).Message, StringComparison.Ordinal);
        Assert.Contains("min_decay", Assert.Throws<ArgumentOutOfRangeException>(() => new Ema(0.9, minDecay: 0.95)).Message, StringComparison.Ordinal);
        Assert.Contains("update_after_step", Assert.Throws<ArgumentOutOfRangeException>(() => new Ema(updateAfterStep: -1)).Message, StringComparison.Ordinal);
        // A with-expression skips the constructor; the trainer's options check it again.
        var sneaky = new Ema(0.9) with { Decay = 2 };
        Assert.Throws<ArgumentOutOfRangeException>(() => new IlgpuTrain.Training.TrainerOptions { Averaging = sneaky }.Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new Ema().DecayAt(0));
    }
}
