using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>Scale: u = factor * g.</summary>
public class ScaleProperties
{
    [Property(MaxTest = 20)]
    public Property Scale_multiplies_every_update() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gens.Float(-3f, 3f).ToArbitrary(), (layout, factor) =>
        {
            var d = Devices.Cpu;
            using var p = Trees.Random(d, layout, 3);
            var g = Trees.Random(d, layout, 4);
            var g0 = g.Flat();
            var opt = new Scale(factor);
            var (u, s) = opt.Update(g, opt.Init(p), p, UpdateContext.None);
            using (u)
            using (s)
                return Close.All(u.Flat(), g0.Select(x => (double)factor * x).ToArray(), 1e-30, 6e-8);
        });

    [Fact]
    public void Non_finite_factor_is_refused_at_init()
    {
        using var p = ParamTree.FromHost(Devices.Cpu, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([1], [1f]) });
        Assert.Throws<ArgumentOutOfRangeException>(() => new Scale(double.NaN).Init(p));
    }
}
