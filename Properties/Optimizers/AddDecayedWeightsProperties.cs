using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>AddDecayedWeights and ParamMask: u += lambda * theta on the selected parameters only.</summary>
public class AddDecayedWeightsProperties
{
    public static IEnumerable<object[]> Masks() =>
    [
        [null!],
        [ParamMask.ByRank(2)],
        [ParamMask.ByName("*.bias")],
        [ParamMask.ByName("0.*").Not()],
        [ParamMask.None],
    ];

    [Property(MaxTest = 25)]
    public Property Decay_is_added_where_the_mask_selects() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gen.Elements(Masks().Select(m => (ParamMask?)m[0]).ToArray()).ToArbitrary(), Gens.Float(0f, 1f).ToArbitrary(), (layout, mask, lambda) =>
        {
            var d = Devices.Cpu;
            using var p = Trees.Random(d, layout, 11);
            var g = Trees.Random(d, layout, 12);
            var g0 = g.Flat();
            var pf = p.Flat();
            var expected = (float[])g0.Clone();
            foreach (var info in p.Layout.Params)
            {
                bool on = mask is null || mask.Selects(info);
                for (long i = info.Offset; i < info.Offset + info.Length; i++)
                    expected[i] = on ? (float)(g0[i] + ((double)lambda * pf[i])) : g0[i];
            }
            var opt = new AddDecayedWeights(lambda, mask);
            var (u, s) = opt.Update(g, opt.Init(p), p, UpdateContext.None);
            using (u)
            using (s)
                return Close.All(u.Flat(), expected, 1e-7, 1e-6, $"mask {mask?.Description ?? "all"}");
        });

    [Fact]
    public void Negative_weight_decay_is_refused()
    {
        using var p = ParamTree.FromHost(Devices.Cpu, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([1], [1f]) });
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new AddDecayedWeights(-0.1).Init(p));
        Assert.Contains("weight_decay", e.Message);
    }
}
