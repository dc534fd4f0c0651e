using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>MultiSteps: k micro-steps equal one inner step on the mean; nothing moves in between.</summary>
public class MultiStepsProperties
{
    // The mean is a float sum of k <= 5 values in [-1, 1] times fl(1/k) against a float64 mean
    // rounded once; the step scales that by lr <= 0.1 and momentum adds at most 2x.
    private const double MeanStepAtol = 1e-6;
    private const double MeanStepRtol = 1e-6;

    [Property(MaxTest = 25)]
    public Property K_micro_steps_equal_one_step_on_their_mean() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), Gen.Choose(1, 5).Zip(Gen.Choose(1, 3)).ToArbitrary(), (layout, seed, kc) =>
        {
            var (k, cycles) = kc;
            bool fused = seed % 2 == 0;
            var d = Devices.Cpu;
            var inner = Inner();
            var opt = new MultiSteps(inner, k) { Fused = fused };
            var pa = Trees.Random(d, layout, seed);
            var pb = pa.Clone();
            var sa = opt.Init(pa);
            var sb = inner.Init(pb);
            int n = (int)pa.Count;
            var prop = true.Label($"k {k}, {cycles} cycles, {(fused ? "Step (fused)" : "Update + ApplyUpdates")}");
            for (int c = 0; c < cycles; c++)
            {
                var micro = Enumerable.Range(0, k).Select(i => Gens.Random(seed + (100 * c) + i, n, -1f, 1f)).ToArray();
                for (int i = 0; i < k; i++)
                {
                    prop = prop.And((opt.EmitsNext(sa) == (i == k - 1)).Label($"cycle {c} micro {i}: EmitsNext"));
                    var g = Trees.FromFlat(pa, micro[i]);
                    if (fused)
                    {
                        (pa, sa) = opt.Step(pa, g, sa);
                    }
                    else
                    {
                        var (u, next) = opt.Update(g, sa, pa, UpdateContext.None);
                        if (i < k - 1)
                            prop = prop.And(u.Flat().All(x => BitConverter.SingleToInt32Bits(x) == 0).Label($"cycle {c} micro {i}: zero updates"));
                        pa = pa.ApplyUpdates(u);
                        u.Dispose();
                        sa = next;
                    }
                    var ms = (MultiStepsState)sa;
                    long count = sa.Find<ScaleByLearningRateState>().Count;
                    prop = prop
                        .And((ms.HasUpdated == (i == k - 1)).Label($"cycle {c} micro {i}: HasUpdated {ms.HasUpdated}"))
                        .And((count == c + (i == k - 1 ? 1 : 0)).Label($"cycle {c} micro {i}: schedule count {count}"))
                        .And((ms.GradientStep == count && ms.MiniStep == (i + 1) % k).Label($"cycle {c} micro {i}: {ms.MiniStep}/{ms.GradientStep}"));
                }
                var mean = Enumerable.Range(0, n).Select(j => (float)micro.Average(m => (double)m[j])).ToArray();
                (pb, sb) = inner.Step(pb, Trees.FromFlat(pb, mean), sb);
            }
            prop = prop
                .And(Close.All(pa.Flat(), pb.Flat(), MeanStepAtol, MeanStepRtol, "parameters: MultiSteps versus inner on the means"))
                .And(Close.All(sa.Find<MomentumProbeState>().Momentum.Flat(), sb.Find<MomentumProbeState>().Momentum.Flat(), MeanStepAtol, MeanStepRtol, "moments"));
            foreach (var x in new IDisposable[] { pa, pb, sa, sb })
                x.Dispose();
            return prop;
        });

    [Property(MaxTest = 20)]
    public Property MultiSteps_of_one_is_the_inner_transformation_bitwise() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), (layout, seed) =>
        {
            var d = Devices.Cpu;
            var inner = Inner();
            var opt = new MultiSteps(inner, 1);
            var pa = Trees.Random(d, layout, seed);
            var pb = pa.Clone();
            var sa = opt.Init(pa);
            var sb = inner.Init(pb);
            var prop = (((MultiStepsState)sa).Accumulated is null).Label("no accumulator for k = 1");
            for (int i = 0; i < 3; i++)
            {
                var g = Trees.Random(d, layout, seed + i + 1);
                var (u, next) = opt.Update(g.Clone(), sa, pa, UpdateContext.None);
                (pb, sb) = inner.Step(pb, g, sb);
                pa = pa.ApplyUpdates(u);
                u.Dispose();
                sa = next;
                prop = prop.And(Bits(pa.Flat()).SequenceEqual(Bits(pb.Flat())).Label($"step {i}: bitwise equal parameters"))
                    .And(((MultiStepsState)sa).HasUpdated.Label($"step {i}: every step emits"));
            }
            foreach (var x in new IDisposable[] { pa, pb, sa, sb })
                x.Dispose();
            return prop;
        });

    [Fact]
    public void Intermediate_micro_steps_leave_parameters_bitwise_through_Step()
    {
        var d = Devices.Cpu;
        float[] p0 = [-0f, 1f, -2f];
        var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([3], p0) });
        var opt = new MultiSteps(new ScaleByLearningRate(1.0), 3);
        var s = opt.Init(p);
        for (int i = 0; i < 2; i++)
        {
            var g = Trees.FromFlat(p, [3f * (i + 1), 0f, 1f]);
            (p, s) = opt.Step(p, g, s);
            Assert.Equal(Bits(p0), Bits(p.Flat()));
            Assert.False(((MultiStepsState)s).HasUpdated);
        }
        (p, s) = opt.Step(p, Trees.FromFlat(p, [3f, 0f, 1f]), s);
        // Mean of (3, 6, 3) is 4; of (0, 0, 0) is 0; of (1, 1, 1) is 1; lr 1.
        Assert.Equal([-4f, 1f, -3f], p.Flat());
        Assert.True(((MultiStepsState)s).HasUpdated);
        Assert.Equal([0f, 0f, 0f], ((MultiStepsState)s).Accumulated!.Flat());
        p.Dispose();
        s.Dispose();
    }

    [Fact]
    public void A_consumed_state_no_longer_owns_what_moved_on()
    {
        var d = Devices.Cpu;
        using var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([2], [1f, 2f]) });
        var opt = new MultiSteps(new Chain(new MomentumProbe(0.5f), new ScaleByLearningRate(1.0)), 2);
        var s0 = opt.Init(p);
        var (u, s1) = opt.Update(Trees.FromFlat(p, [2f, 4f]), s0, p, UpdateContext.None);
        u.Dispose();
        s0.Dispose();
        using var stray = Trees.FromFlat(p, [1f, 1f]);
        var e = Assert.Throws<ConsumedValueException>(() => opt.Update(stray, s0, p, UpdateContext.None));
        Assert.Contains("multi_steps.Update", e.Message);
        (u, var s2) = opt.Update(Trees.FromFlat(p, [4f, 8f]), s1, p, UpdateContext.None);
        Assert.Equal([-3f, -6f], u.Flat());
        Assert.Equal([3f, 6f], s2.Find<MomentumProbeState>().Momentum.Flat());
        u.Dispose();
        s2.Dispose();
    }

    [Fact]
    public void Effective_batch_validation_and_foreign_states()
    {
        using var p = ParamTree.FromHost(Devices.Cpu, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([1], [1f]) });
        var opt = new MultiSteps(new ScaleByLearningRate(0.1), 4);
        Assert.Equal(512, opt.EffectiveBatch(128));
        Assert.Contains("every_k_schedule", Assert.Throws<ArgumentOutOfRangeException>(() => new MultiSteps(new ScaleByLearningRate(0.1), 0).Init(p)).Message);
        using var other = new MultiSteps(new ScaleByLearningRate(0.1), 1).Init(p);
        using var g = p.Clone();
        var e = Assert.Throws<ArgumentException>(() => opt.Update(g, other, p, UpdateContext.None));
        Assert.Contains("k = 4", e.Message);
        using var s = opt.Init(p);
        Assert.Equal(0, s.Find<ScaleByLearningRateState>().Count);
        Assert.IsType<ScaleByLearningRateState>(s["inner"]);
    }

    // The learning rate depends on the count, so a count that moved on an intermediate micro-step
    // would change every later update.
    private static Chain Inner() => new(new MomentumProbe(0.5f), new ScaleByLearningRate(new InverseTimeDecay(0.1, 1.0)));

    private static int[] Bits(float[] v) => v.Select(BitConverter.SingleToInt32Bits).ToArray();
}
