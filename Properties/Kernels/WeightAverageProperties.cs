using IlgpuTrain.Training.Conformance;

namespace IlgpuTrain.Properties.Kernels;

/// <summary>WeightAverage.Lerp: a = lerp(a, w, t) equals the float64 formula, is exact at both ends, and is the same bits on both backends.</summary>
public class WeightAverageProperties
{
    private const double LerpRtol = Tolerances.WeightAverage.LerpRtol;

    private static Gen<float> T { get; } = Gen.OneOf(Gen.Elements(0f, 1e-4f, 0.001f, 0.4999999f, 0.5f, 0.5000001f, 0.999f, 1f), Gens.Float(0f, 1f));

    [Property(MaxTest = 40)]
    public Property Lerp_equals_the_float64_formula() =>
        Prop.ForAll(Gens.VectorPair().ToArbitrary(), T.ToArbitrary(), (v, t) =>
        {
            var d = Devices.Cpu;
            using var a = d.Upload(v.A);
            using var w = d.Upload(v.B);
            WeightAverage.Lerp(d.Kernels, a.View<float>(), w.View<float>(), t);
            var got = a.ToHost();
            var exact = WeightAverageReference.LerpReference(v.A, v.B, t);
            int bad = Enumerable.Range(0, got.Length).FirstOrDefault(i => !(Math.Abs(got[i] - exact[i]) <= LerpRtol * (Math.Abs(v.A[i]) + Math.Abs(v.B[i]))), -1);
            return (bad < 0).Label(bad < 0 ? "ok" : $"t={t:R} a[{bad}]={v.A[bad]:R} w={v.B[bad]:R}: got {got[bad]:R}, reference {exact[bad]:R}");
        });

    [Property(MaxTest = 30)]
    public Property Lerp_is_exact_at_both_ends() =>
        Prop.ForAll(Gens.VectorPair().ToArbitrary(), v =>
        {
            var d = Devices.Cpu;
            using var a0 = d.Upload(v.A);
            using var a1 = d.Upload(v.A);
            using var w = d.Upload(v.B);
            WeightAverage.Lerp(d.Kernels, a0.View<float>(), w.View<float>(), 0f);
            WeightAverage.Lerp(d.Kernels, a1.View<float>(), w.View<float>(), 1f);
            return Bits.Same(a0.ToHost(), v.A, "t = 0 keeps a").And(Bits.Same(a1.ToHost(), v.B, "t = 1 gives w"));
        });

    [Property(MaxTest = 25)]
    public Property Lerp_is_the_same_bits_managed_and_on_the_kernels() =>
        Prop.ForAll((from n in Gens.Length from seed in Gen.Choose(0, 1000) select (n, seed)).ToArbitrary(), T.ToArbitrary(), Gen.Elements(false, true).ToArbitrary(), (ns, t, specials) =>
            KernelParity.Same(
                $"lerp n={ns.n} t={t:R} specials={specials}",
                [KernelParity.Values(ns.seed, ns.n, -10f, 10f, specials), KernelParity.Values(ns.seed + 1, ns.n, -10f, 10f, specials)],
                (host, f) => WeightAverage.Lerp(host, f[0], f[1], t)));

    [Fact]
    public void Lerp_refuses_a_weight_outside_0_1_and_views_of_different_lengths()
    {
        var d = Devices.Cpu;
        using var a = d.Upload(new float[4]);
        using var w = d.Upload(new float[4]);
        using var shorter = d.Upload(new float[3]);
        foreach (float t in new[] { -0.1f, 1.5f, float.NaN })
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => WeightAverage.Lerp(d.Kernels, a.View<float>(), w.View<float>(), t));
            Assert.Contains("[0, 1]", e.Message, StringComparison.Ordinal);
        }

        var l = Assert.Throws<ArgumentException>(() => WeightAverage.Lerp(d.Kernels, a.View<float>(), shorter.View<float>(), 0.5f));
        Assert.Contains("4 elements", l.Message, StringComparison.Ordinal);
    }
}
