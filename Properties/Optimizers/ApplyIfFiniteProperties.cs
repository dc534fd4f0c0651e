using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>ApplyIfFinite: rejected updates are zeros and leave the inner state and parameters bitwise; Optax's counting and giving up.</summary>
public class ApplyIfFiniteProperties
{
    [Property(MaxTest = 25)]
    public Property A_non_finite_gradient_gives_zeros_and_leaves_the_inner_state_bitwise() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), Gen.Elements(Gens.NonFinite).ToArbitrary(), (layout, seed, bad) =>
        {
            var d = Devices.Cpu;
            using var p = Trees.Random(d, layout, seed);
            if (p.Count == 0)
                return true.Label("empty tree: nothing to poison");
            var opt = new ApplyIfFinite(Inner(), 3);
            var state = opt.Init(p);
            (var u0, state) = opt.Update(Trees.Random(d, layout, seed + 1), state, p, UpdateContext.None);
            u0.Dispose();
            var inner = ((ApplyIfFiniteState)state).Inner;
            var momentBefore = Bits(inner.Find<MomentumProbeState>().Momentum.Flat());
            long countBefore = inner.Find<ScaleByLearningRateState>().Count;
            var (u, next) = opt.Update(Poisoned(p, seed, bad), state, p, UpdateContext.None);
            var s = (ApplyIfFiniteState)next;
            var prop = Bits(u.Flat()).All(b => b == 0).Label("updates are +0 everywhere")
                .And(ReferenceEquals(s.Inner, inner).Label("the inner state moved on as the same object"))
                .And((!s.Inner.IsConsumed).Label("the inner state is alive"))
                .And(Bits(s.Inner.Find<MomentumProbeState>().Momentum.Flat()).SequenceEqual(momentBefore).Label("moments bitwise unchanged"))
                .And((s.Inner.Find<ScaleByLearningRateState>().Count == countBefore).Label("count unchanged"))
                .And((s.NotFiniteCount == 1 && !s.LastFinite && s.TotalNotFinite == 1).Label($"counters {s}"))
                .And(state.IsConsumed.Label("old state consumed"));
            u.Dispose();
            // The consumed record no longer owns the inner state: disposing it must not free the moments.
            state.Dispose();
            var (u2, last) = opt.Update(Trees.Random(d, layout, seed + 2), next, p, UpdateContext.None);
            prop = prop.And((last.Find<ScaleByLearningRateState>().Count == countBefore + 1).Label("the next finite update runs"));
            u2.Dispose();
            last.Dispose();
            return prop;
        });

    [Property(MaxTest = 20)]
    public Property A_rejected_step_leaves_the_parameters_bitwise_through_Optimizer_Step() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), (layout, seed) =>
        {
            var d = Devices.Cpu;
            var p = Trees.Random(d, layout, seed);
            if (p.Count == 0)
            {
                p.Dispose();
                return true.Label("empty tree: nothing to poison");
            }
            // -0 is the one value that p + 0 would change.
            var flat = p.Flat();
            flat[0] = -0f;
            Transfer.ToDevice<float>(d.Stream, flat, p.Flat32);
            var opt = new ApplyIfFinite(Inner(), 1);
            var state = opt.Init(p);
            var grads = Poisoned(p, seed, float.NaN);
            var (p2, s2) = opt.Step(p, grads, state);
            var prop = Bits(p2.Flat()).SequenceEqual(Bits(flat)).Label("parameters bitwise unchanged, -0 included")
                .And(grads.IsConsumed.Label("gradients disposed"))
                .And((s2.Find<ScaleByLearningRateState>().Count == 0).Label("count unchanged"));
            // max_consecutive_errors 1: the second consecutive NaN goes through and poisons the parameters.
            var (p3, s3) = opt.Step(p2, Poisoned(p2, seed, float.NaN), s2);
            prop = prop.And(p3.Flat().Any(float.IsNaN).Label("gave up: the NaN update was applied"))
                .And((s3.Find<ScaleByLearningRateState>().Count == 1).Label("inner count moved once"));
            p3.Dispose();
            s3.Dispose();
            return prop;
        });

    [Property(MaxTest = 40)]
    public Property Counts_consecutive_failures_resets_on_a_finite_step_and_gives_up_after_the_max() =>
        Prop.ForAll(Gen.ListOf(Gen.Elements(true, false)).Select(l => l.Take(14).ToArray()).ToArbitrary(), Gen.Choose(0, 3).ToArbitrary(), (finite, max) =>
        {
            var d = Devices.Cpu;
            using var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([3], [1f, 2f, 3f]) });
            var opt = new ApplyIfFinite(new ScaleByLearningRate(1.0), max);
            var state = opt.Init(p);
            // Optax's rule, spelled out: reject while the consecutive count is at most max.
            int consecutive = 0, total = 0, applied = 0;
            var prop = true.Label("start");
            for (int i = 0; i < finite.Length; i++)
            {
                consecutive = finite[i] ? 0 : consecutive + 1;
                total += finite[i] ? 0 : 1;
                bool through = finite[i] || consecutive > max;
                applied += through ? 1 : 0;
                var g = Trees.FromFlat(p, finite[i] ? [1f, 2f, 3f] : [1f, float.PositiveInfinity, 3f]);
                var (u, next) = opt.Update(g, state, p, UpdateContext.None);
                var uf = u.Flat();
                u.Dispose();
                state = next;
                var s = (ApplyIfFiniteState)state;
                prop = prop
                    .And((s.NotFiniteCount == consecutive && s.TotalNotFinite == total && s.LastFinite == finite[i]).Label($"step {i}: {s}"))
                    .And((s.Inner.Find<ScaleByLearningRateState>().Count == applied).Label($"step {i}: inner ran {applied} times"))
                    .And((through ? uf[0] == -1f : uf.All(x => x == 0f)).Label($"step {i}: updates [{string.Join(", ", uf)}], applied {through}"));
            }
            state.Dispose();
            return prop;
        });

    [Property(MaxTest = 20)]
    public Property Finite_gradients_give_exactly_the_inner_update() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), (layout, seed) =>
        {
            var d = Devices.Cpu;
            using var p = Trees.Random(d, layout, seed);
            var wrapped = new ApplyIfFinite(Inner(), 2);
            var plain = Inner();
            var sw = wrapped.Init(p);
            var sp = plain.Init(p);
            var prop = true.Label("start");
            for (int i = 0; i < 3; i++)
            {
                var g = Trees.Random(d, layout, seed + i + 1);
                var (uw, nw) = wrapped.Update(g.Clone(), sw, p, UpdateContext.None);
                var (up, np) = plain.Update(g, sp, p, UpdateContext.None);
                prop = prop.And(Bits(uw.Flat()).SequenceEqual(Bits(up.Flat())).Label($"step {i}: bitwise equal updates"));
                uw.Dispose();
                up.Dispose();
                (sw, sp) = (nw, np);
            }
            sw.Dispose();
            sp.Dispose();
            return prop;
        });

    [Fact]
    public void Negative_max_is_refused_and_the_state_is_found_by_type()
    {
        using var p = ParamTree.FromHost(Devices.Cpu, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([1], [1f]) });
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new ApplyIfFinite(new ScaleByLearningRate(0.1), -1).Init(p));
        Assert.Contains("max_consecutive_errors", e.Message);
        using var s = new ApplyIfFinite(new Chain(new ScaleByLearningRate(0.1)), 1).Init(p);
        Assert.Equal(0, s.Find<ScaleByLearningRateState>().Count);
        Assert.IsType<ChainState>(s["inner"]);
    }

    private static Chain Inner() => new(new MomentumProbe(0.9f), new ScaleByLearningRate(new InverseTimeDecay(0.1, 0.5)));

    private static ParamTree Poisoned(ParamTree like, int seed, float bad)
    {
        var flat = Gens.Random(seed + 7, (int)like.Count, -1f, 1f);
        flat[seed % flat.Length] = bad;
        return Trees.FromFlat(like, flat);
    }

    private static int[] Bits(float[] v) => v.Select(BitConverter.SingleToInt32Bits).ToArray();
}
