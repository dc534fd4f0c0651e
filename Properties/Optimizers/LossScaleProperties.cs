using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>StaticLossScale, DynamicLossScale (GradScaler's rule) and LossScaling.Step's skip rule.</summary>
public class LossScaleProperties
{
    // Unscaling by a non-power-of-two scale: two float roundings (1/s and the product), 2^-24 each.
    private const double RoundTripRtol = 1.5e-7;

    private static readonly Gen<DynamicLossScale> Scales =
        from k in Gen.Choose(-5, 20)
        from growth in Gen.Elements(2.0, 4.0)
        from backoff in Gen.Elements(0.5, 0.25)
        from interval in Gen.Choose(1, 9)
        select new DynamicLossScale(MathF.ScaleB(1f, k), growth, backoff, interval);

    [Property(MaxTest = 50)]
    public Property After_n_clean_steps_the_scale_has_grown_floor_n_over_interval_times() =>
        Prop.ForAll(Scales.ToArbitrary(), Gen.Choose(0, 60).ToArbitrary(), (s0, n) =>
        {
            var s = s0;
            for (int i = 0; i < n; i++)
                s = s.Adjust(true);
            // Growths that would pass float32's largest value are dropped, so the count saturates.
            int growths = n / s0.GrowthInterval;
            int fit = (int)Math.Floor(Math.Log(float.MaxValue / (double)s0.Scale, s0.GrowthFactor));
            double expected = s0.Scale * Math.Pow(s0.GrowthFactor, Math.Min(growths, fit));
            return (s.Scale == expected).Label($"scale {s.Scale:R}, expected {s0.Scale} * {s0.GrowthFactor}^min({growths}, {fit}) = {expected:R}")
                .And((s.GrowthTracker == n % s0.GrowthInterval).Label($"tracker {s.GrowthTracker}, expected {n % s0.GrowthInterval}"));
        });

    [Property(MaxTest = 50)]
    public Property An_overflow_backs_off_and_resets_the_tracker() =>
        Prop.ForAll(Scales.ToArbitrary(), Gen.Choose(0, 30).ToArbitrary(), (s0, clean) =>
        {
            var s = s0;
            for (int i = 0; i < clean; i++)
                s = s.Adjust(true);
            var backed = s.Adjust(false);
            var prop = (backed.Scale == s.Scale * s0.BackoffFactor).Label($"backed off to {backed.Scale:R} from {s.Scale:R}")
                .And((backed.GrowthTracker == 0).Label("tracker reset"));
            // After the reset, growth needs a full interval of clean steps again.
            var t = backed;
            for (int i = 1; i < s0.GrowthInterval; i++)
            {
                t = t.Adjust(true);
                prop = prop.And((t.Scale == backed.Scale).Label($"no growth after {i} clean steps"));
            }
            t = t.Adjust(true);
            return prop.And((t.Scale == backed.Scale * s0.GrowthFactor).Label($"grown after {s0.GrowthInterval} clean steps"));
        });

    [Fact]
    public void Growth_that_would_overflow_to_inf_is_not_kept()
    {
        var s = new DynamicLossScale(MathF.ScaleB(1f, 127), growthInterval: 1);
        var t = s.Adjust(true);
        Assert.Equal(s.Scale, t.Scale);
        Assert.Equal(0, t.GrowthTracker);
        var u = new DynamicLossScale(MathF.ScaleB(1.5f, 126), 2.0, 0.5, 1).Adjust(true);
        Assert.Equal(MathF.ScaleB(1.5f, 127), u.Scale);
        Assert.Equal(u.Scale, u.Adjust(true).Scale);
    }

    // torch.cuda.amp.GradScaler needs CUDA, which this machine lacks, so the sequences below come
    // from its update rule replayed with float32 tensors, re-derived from the source of
    // amp_update_scale_cuda_kernel (aten/src/ATen/native/cuda/AmpKernels.cu, PyTorch 1.13):
    //
    //   import torch
    //   def run(found, init, growth, backoff, interval):
    //       scale, tracker, out = torch.tensor(init, dtype=torch.float32), 0, []
    //       for f in found:
    //           if f:
    //               scale = torch.tensor(scale.item() * backoff, dtype=torch.float32); tracker = 0
    //           else:
    //               successful = tracker + 1
    //               if successful == interval:
    //                   new = torch.tensor(scale.item() * growth, dtype=torch.float32)
    //                   if torch.isfinite(new): scale = new
    //                   tracker = 0
    //               else:
    //                   tracker = successful
    //           out.append((scale.item(), tracker))
    //       return out
    //   A = [0,0,0,1,0,0,1,1,0,0,0,0,0,0,0]
    //   print(run(A, 65536.0, 2.0, 0.5, 3)); print(run(A, 1000.5, 1.7, 0.3, 2))
    //   print(run([0,0,0,1,0], 2.0**126, 2.0, 0.5, 1))
    public static TheoryData<float, double, double, int, int[], double[], int[]> GradScalerSequences() => new()
    {
        {
            65536f, 2.0, 0.5, 3, [0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0],
            [65536, 65536, 131072, 65536, 65536, 65536, 32768, 16384, 16384, 16384, 32768, 32768, 32768, 65536, 65536],
            [1, 2, 0, 0, 1, 2, 0, 0, 1, 2, 0, 1, 2, 0, 1]
        },
        {
            1000.5f, 1.7, 0.3, 2, [0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0],
            [1000.5, 1700.8499755859375, 1700.8499755859375, 510.2550048828125, 510.2550048828125, 867.4335327148438, 260.2300720214844, 78.06902313232422,
             78.06902313232422, 132.71734619140625, 132.71734619140625, 225.61949157714844, 225.61949157714844, 383.5531311035156, 383.5531311035156],
            [1, 0, 1, 0, 1, 0, 0, 0, 1, 0, 1, 0, 1, 0, 1]
        },
        {
            MathF.ScaleB(1f, 126), 2.0, 0.5, 1, [0, 0, 0, 1, 0],
            [1.7014118346046923e+38, 1.7014118346046923e+38, 1.7014118346046923e+38, 8.507059173023462e+37, 1.7014118346046923e+38],
            [0, 0, 0, 0, 0]
        },
    };

    [Theory]
    [MemberData(nameof(GradScalerSequences))]
    public void Scale_sequence_matches_GradScaler(float init, double growth, double backoff, int interval, int[] foundInf, double[] scales, int[] trackers)
    {
        var s = new DynamicLossScale(init, growth, backoff, interval);
        for (int i = 0; i < foundInf.Length; i++)
        {
            s = s.Adjust(foundInf[i] == 0);
            Assert.True((double)s.Scale == scales[i], $"step {i}: scale {s.Scale:R}, GradScaler {scales[i]:R}");
            Assert.True(s.GrowthTracker == trackers[i], $"step {i}: tracker {s.GrowthTracker}, GradScaler {trackers[i]}");
        }
    }

    [Fact]
    public void Defaults_are_GradScalers()
    {
        var s = new DynamicLossScale();
        Assert.Equal((65536f, 2.0, 0.5, 2000, 0), (s.Scale, s.GrowthFactor, s.BackoffFactor, s.GrowthInterval, s.GrowthTracker));
        Assert.Equal(3f * 65536f, s.ScaleLoss(3f));
    }

    [Property(MaxTest = 25)]
    public Property Scaled_then_unscaled_gradients_equal_the_originals() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), Gen.OneOf(Gen.Choose(0, 24).Select(k => MathF.ScaleB(1f, k)), Gens.Float(1f, 70000f)).ToArbitrary(), (layout, seed, scale) =>
        {
            var d = Devices.Cpu;
            using var g = Trees.Random(d, layout, seed);
            var original = g.Flat();
            using var scaled = Trees.FromFlat(g, original.Select(x => x * scale).ToArray());
            ILossScale ls = seed % 2 == 0 ? new StaticLossScale(scale) : new DynamicLossScale(scale);
            bool finite = ls.UnscaleInPlace(scaled);
            var got = scaled.Flat();
            bool pow2 = float.IsPow2(scale);
            var (ok, label) = pow2
                ? (got.Zip(original).All(p => BitConverter.SingleToInt32Bits(p.First) == BitConverter.SingleToInt32Bits(p.Second)), "bitwise for a power-of-two scale")
                : Close.Check(got, original, 0, 2 * RoundTripRtol, "within float rounding");
            return finite.Label("all finite").And(ok.Label($"{label}, scale {scale:R} ({ls.GetType().Name})"));
        });

    [Property(MaxTest = 20)]
    public Property A_step_on_scaled_gradients_equals_the_plain_step() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), Gen.Choose(0, 20).ToArbitrary(), (layout, seed, k) =>
        {
            var d = Devices.Cpu;
            var opt = Optimizer();
            float scale = MathF.ScaleB(1f, k);
            var p1 = Trees.Random(d, layout, seed);
            var p2 = p1.Clone();
            var s1 = opt.Init(p1);
            var s2 = opt.Init(p2);
            var g = Trees.Random(d, layout, seed + 1);
            var gScaled = Trees.FromFlat(g, g.Flat().Select(x => x * scale).ToArray());
            (p1, s1) = opt.Step(p1, g, s1);
            var (p3, s3, next, stepped) = LossScaling.Step(opt, p2, gScaled, s2, new DynamicLossScale(scale, growthInterval: 1));
            var prop = stepped.Label("stepped")
                .And(Close.All(p3.Flat(), p1.Flat(), 0, 0, "parameters equal the unscaled step bitwise"))
                .And((next.Scale == 2 * scale).Label("grew after a clean step with growth_interval 1"))
                .And(gScaled.IsConsumed.Label("gradients consumed"))
                .And(p2.IsConsumed.Label("old parameters consumed"));
            foreach (var x in new IDisposable[] { p1, s1, p3, s3 })
                x.Dispose();
            return prop;
        });

    [Property(MaxTest = 20)]
    public Property A_skipped_step_moves_nothing() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), Gen.Choose(0, 3).Zip(Gen.Elements(Gens.NonFinite)).ToArbitrary(), (layout, seed, wb) =>
        {
            var (warmup, bad) = wb;
            var d = Devices.Cpu;
            var opt = Optimizer();
            var p = Trees.Random(d, layout, seed);
            var state = opt.Init(p);
            var ls = new DynamicLossScale(1024f, growthInterval: 3);
            for (int i = 0; i < warmup; i++)
            {
                var g = Trees.Random(d, layout, seed + 10 + i);
                (p, state, ls, _) = LossScaling.Step(opt, p, g, state, ls);
            }
            var pBefore = p.Flat();
            var momentBefore = state.Find<MomentumProbeState>().Momentum.Flat();
            long countBefore = state.Find<ScaleByLearningRateState>().Count;
            var scaleBefore = ls;
            var poisoned = Trees.Random(d, layout, seed + 99);
            if (poisoned.Count > 0)
            {
                var flat = poisoned.Flat();
                flat[(seed * 31) % flat.Length] = bad;
                Transfer.ToDevice<float>(d.Stream, flat, poisoned.Flat32);
            }
            var (p2, s2, ls2, stepped) = LossScaling.Step(opt, p, poisoned, state, ls);
            Property prop;
            if (poisoned.Count == 0)
            {
                // Nothing to poison in an empty tree: the step is clean.
                prop = stepped.Label("an empty tree steps");
            }
            else
            {
                prop = (!stepped).Label("skipped")
                    .And(ReferenceEquals(p2, p).Label("same parameters object returned"))
                    .And(ReferenceEquals(s2, state).Label("same state object returned"))
                    .And((!p2.IsConsumed && !s2.IsConsumed).Label("neither consumed"))
                    .And(Bits(p2.Flat()).SequenceEqual(Bits(pBefore)).Label("parameters bitwise unchanged"))
                    .And(Bits(s2.Find<MomentumProbeState>().Momentum.Flat()).SequenceEqual(Bits(momentBefore)).Label("moments bitwise unchanged"))
                    .And((s2.Find<ScaleByLearningRateState>().Count == countBefore).Label("schedule count unchanged"))
                    .And((ls2.Scale == scaleBefore.Scale / 2 && ls2.GrowthTracker == 0).Label($"scale backed off: {ls2}"))
                    .And(poisoned.IsConsumed.Label("gradients disposed"));
            }
            p2.Dispose();
            s2.Dispose();
            return prop;
        });

    [Fact]
    public void Hyperparameters_are_checked_with_PyTorch_names()
    {
        Assert.Contains("init_scale", Assert.Throws<ArgumentOutOfRangeException>(() => new DynamicLossScale(0f)).Message);
        Assert.Contains("init_scale", Assert.Throws<ArgumentOutOfRangeException>(() => new DynamicLossScale(float.PositiveInfinity)).Message);
        Assert.Contains("growth_factor", Assert.Throws<ArgumentOutOfRangeException>(() => new DynamicLossScale(growthFactor: 1.0)).Message);
        Assert.Contains("backoff_factor", Assert.Throws<ArgumentOutOfRangeException>(() => new DynamicLossScale(backoffFactor: 1.0)).Message);
        Assert.Contains("backoff_factor", Assert.Throws<ArgumentOutOfRangeException>(() => new DynamicLossScale(backoffFactor: 0.0)).Message);
        Assert.Contains("growth_interval", Assert.Throws<ArgumentOutOfRangeException>(() => new DynamicLossScale(growthInterval: 0)).Message);
        Assert.Contains("growth_factor", Assert.Throws<ArgumentOutOfRangeException>(() => new DynamicLossScale() with { GrowthFactor = 0.5 }).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new StaticLossScale(-1f));
    }

    [Fact]
    public void A_static_scale_never_changes_but_still_skips()
    {
        var d = Devices.Cpu;
        var s = new StaticLossScale(8f);
        Assert.Same(s, s.Adjust(false));
        Assert.Same(s, s.Adjust(true));
        Assert.Equal(12f, s.ScaleLoss(1.5f));
        var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([2], [1f, 2f]) });
        var opt = new Chain(new ScaleByLearningRate(1.0));
        var state = opt.Init(p);
        var g = Trees.FromFlat(p, [8f, float.NaN]);
        var (p2, s2, s3, stepped) = LossScaling.Step(opt, p, g, state, s);
        Assert.False(stepped);
        Assert.Same(s, s3);
        Assert.Equal([1f, 2f], p2.Flat());
        g = Trees.FromFlat(p, [8f, 16f]);
        (p2, s2, s3, stepped) = LossScaling.Step(opt, p2, g, s2, s3);
        Assert.True(stepped);
        Assert.Equal([0f, 0f], p2.Flat());
        p2.Dispose();
        s2.Dispose();
    }

    [Fact]
    public void A_scale_that_underflowed_cannot_unscale()
    {
        var d = Devices.Cpu;
        using var g = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([1], [1f]) });
        var s = new DynamicLossScale(1f);
        for (int i = 0; i < 200; i++)
            s = s.Adjust(false);
        Assert.Equal(0f, s.Scale);
        var e = Assert.Throws<InvalidOperationException>(() => s.UnscaleInPlace(g));
        Assert.Contains("diverged", e.Message);
    }

    // Momentum with a device buffer and a count-dependent learning rate, so a step that moved
    // anything shows in the moments, the count or the parameters.
    private static Chain Optimizer() =>
        new(new MomentumProbe(0.9f), new AddDecayedWeights(0.01), new ScaleByLearningRate(new InverseTimeDecay(0.1, 0.5)));

    private static int[] Bits(float[] v) => v.Select(BitConverter.SingleToInt32Bits).ToArray();
}
