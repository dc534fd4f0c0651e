using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>ClipByValue: every update clamped to its bounds, values inside unchanged.</summary>
public class ClipByValueProperties
{
    [Property(MaxTest = 30)]
    public Property Updates_are_clamped_to_the_bounds() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), (from c in Gens.Float(0f, 3f) from symmetric in Gen.Elements(true, false) select (c, symmetric)).ToArbitrary(), Gen.Choose(0, 10_000).ToArbitrary(), (layout, b, seed) =>
        {
            var (c, symmetric) = b;
            var d = Devices.Cpu;
            using var p = Trees.Random(d, layout, seed);
            var g = Trees.Random(d, layout, seed + 1, -5f, 5f);
            var host = g.Flat();
            var opt = symmetric ? new ClipByValue(c) : new ClipByValue(-c / 2, c);
            float lo = (float)opt.Min, hi = (float)opt.Max;
            var (u, s) = opt.Update(g, opt.Init(p), p, UpdateContext.None);
            using (u)
            using (s)
            {
                var got = u.Flat();
                var expected = host.Select(x => Math.Clamp(x, lo, hi)).ToArray();
                bool bounded = got.All(x => x >= lo && x <= hi);
                return Close.All(got, expected, 0, 0, $"clamp to [{lo}, {hi}]").And(bounded.Label("bounded"));
            }
        });

    [Fact]
    public void Symmetric_form_and_bad_bounds()
    {
        Assert.Equal(new ClipByValue(-2, 2), new ClipByValue(2));
        using var p = ParamTree.FromHost(Devices.Cpu, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([1], [1f]) });
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClipByValue(-1).Init(p));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClipByValue(1, 0).Init(p));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ClipByValue(double.NaN).Init(p));
    }
}
