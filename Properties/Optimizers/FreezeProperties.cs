using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>Freeze: zero updates on exactly the selected ranges; frozen parameters keep their bits.</summary>
public class FreezeProperties
{
    [Property(MaxTest = 30)]
    public Property Freeze_zeroes_exactly_the_selected_ranges() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gens.ParamMasks.ToArbitrary(), Gen.Choose(0, 10_000).ToArbitrary(), (layout, mask, seed) =>
        {
            var d = Devices.Cpu;
            using var p = Trees.Random(d, layout, seed);
            var g = Trees.Random(d, layout, seed + 1);
            var host = g.Flat();
            var on = MaskedProperties.Selected(p.Layout, mask);
            var opt = new Freeze(mask);
            var (u, s) = opt.Update(g, opt.Init(p), p, UpdateContext.None);
            using (u)
            using (s)
            {
                var expected = host.Select((x, i) => on[i] ? 0f : x).ToArray();
                return Close.All(u.Flat(), expected, 0, 0, $"zero where frozen ({mask}), bits kept elsewhere");
            }
        });

    [Property(MaxTest = 20)]
    public Property Freeze_last_keeps_frozen_parameters_bitwise_even_with_weight_decay_and_momentum() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gens.ParamMasks.ToArbitrary(), Gen.Choose(0, 10_000).ToArbitrary(), (layout, mask, seed) =>
        {
            var d = Devices.Cpu;
            var p = Trees.Random(d, layout, seed);
            var p0 = p.Flat();
            var on = MaskedProperties.Selected(p.Layout, mask);
            var opt = new Chain(new Sgd(0.1, momentum: 0.9, weightDecay: 0.1), new Freeze(mask));
            var s = opt.Init(p);
            for (int t = 0; t < 3; t++)
                (p, s) = opt.Step(p, Trees.Random(d, layout, seed + 10 + t), s);
            var got = p.Flat();
            p.Dispose();
            s.Dispose();
            int moved = Enumerable.Range(0, got.Length).FirstOrDefault(i => on[i] && BitConverter.SingleToInt32Bits(got[i]) != BitConverter.SingleToInt32Bits(p0[i]), -1);
            bool othersMoved = Enumerable.Range(0, got.Length).All(i => on[i] || got[i] != p0[i] || p0[i] == 0);
            return (moved < 0).Label(moved < 0 ? "frozen bits kept" : $"frozen element {moved} moved from {p0[moved]:R} to {got[moved]:R}")
                .And(othersMoved.Label("trainable parameters did move"));
        });

    [Property(MaxTest = 20)]
    public Property AllExcept_trains_the_subset_alone_and_keeps_the_rest() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gens.ParamMasks.ToArbitrary(), Gen.Choose(0, 10_000).ToArbitrary(), (layout, trainable, seed) =>
        {
            var d = Devices.Cpu;
            var sgd = new Sgd(0.1, momentum: 0.9, weightDecay: 0.1) { Fused = false };
            var opt = Freeze.AllExcept(trainable, sgd);
            var p = Trees.Random(d, layout, seed);
            var p0 = p.Flat();
            var on = MaskedProperties.Selected(p.Layout, trainable);
            var sub = MaskedProperties.SubTree(d, p.Layout, trainable, p0);
            var s = opt.Init(p);
            var sSub = sgd.Init(sub);
            for (int t = 0; t < 3; t++)
            {
                var gHost = Gens.Random(seed + t + 1, (int)p.Count);
                (p, s) = opt.Step(p, Trees.FromFlat(p, gHost), s);
                (sub, sSub) = sgd.Step(sub, MaskedProperties.SubTree(d, p.Layout, trainable, gHost), sSub);
            }
            var got = p.Flat();
            var alone = sub.Flat();
            var expected = (float[])p0.Clone();
            int k = 0;
            for (int i = 0; i < expected.Length; i++)
            {
                if (on[i])
                    expected[i] = alone[k++];
            }
            var prop = Close.All(got, expected, 0, 0, $"frozen bits kept, trainable = optimizer alone on the subset ({trainable})")
                .And((s.Find<TraceState>().MomentumBuffer.Count == alone.Length).Label("moments only for the trainable subset"));
            p.Dispose();
            s.Dispose();
            sub.Dispose();
            sSub.Dispose();
            return prop;
        });

    [Fact]
    public void Freeze_first_does_not_stop_weight_decay_which_is_why_it_goes_last()
    {
        var d = Devices.Cpu;
        var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([2], [1f, 2f]) });
        var opt = new Chain(new Freeze(ParamMask.All), new Sgd(0.1, weightDecay: 0.5));
        var s = opt.Init(p);
        (p, s) = opt.Step(p, Trees.FromFlat(p, [3f, 4f]), s);
        Assert.Equal([1f - (0.1f * 0.5f), 2f - (0.1f * 1f)], p.Flat());
        p.Dispose();
        s.Dispose();
    }
}
