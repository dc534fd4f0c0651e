namespace IlgpuTrain.Properties.Kernels;

/// <summary>Clip kernels: scaling by a device-resident norm, clamping by value, and the max-abs (inf) norm.</summary>
public class ClipProperties
{
    // The kernels run the references' float operations in the same order: equal within an ulp
    // or two (a backend may contract or reorder nothing here, so in practice bitwise).
    private const double KernelRtol = 2.5e-7;

    private static Gen<float> Norms { get; } = Gen.OneOf(Gen.Elements(0f, 1e-7f, 1f, 1e6f, float.NaN, float.PositiveInfinity), Gens.Float(0f, 100f));

    [Property(MaxTest = 40)]
    public Property ByNorm_kernel_equals_reference() =>
        Prop.ForAll(Gens.Vector().ToArbitrary(), Norms.ToArbitrary(), Gens.Float(0f, 50f).ToArbitrary(), (v, norm, maxNorm) =>
        {
            var d = Devices.Cpu;
            using var g = d.Upload(v);
            using var nt = d.Upload([norm]);
            Clip.ByNorm(d.Kernels, g.View<float>(), nt.View<float>(), maxNorm);
            var expected = (float[])v.Clone();
            ClipReference.ByNormReference(expected, norm, maxNorm);
            return Close.All(g.ToHost(), expected, 1e-30, KernelRtol).Label($"n={v.Length} norm={norm} maxNorm={maxNorm}");
        });

    [Property(MaxTest = 40)]
    public Property ByNorm_factor_is_min_of_one_and_max_norm_over_norm_plus_eps() =>
        Prop.ForAll(Norms.ToArbitrary(), Gens.Float(0f, 50f).ToArbitrary(), (norm, maxNorm) =>
        {
            var d = Devices.Cpu;
            using var g = d.Upload([1f, -2f]);
            using var nt = d.Upload([norm]);
            Clip.ByNorm(d.Kernels, g.View<float>(), nt.View<float>(), maxNorm);
            double factor = Math.Min(1.0, maxNorm / (norm + 1e-6));
            if (double.IsNaN(norm))
                factor = double.NaN;
            // Three float roundings (norm + eps, reciprocal, product) against the float64 factor.
            return Close.All(g.ToHost(), [factor, -2 * factor], 1e-30, 4e-7, $"factor for norm {norm}, max {maxNorm}");
        });

    [Property(MaxTest = 40)]
    public Property ByValue_kernel_equals_reference_and_bounds_hold() =>
        Prop.ForAll(Gens.Vector().ToArbitrary(), Gens.Float(-5f, 5f).ToArbitrary(), Gens.Float(0f, 5f).ToArbitrary(), (v, lo, width) =>
        {
            var d = Devices.Cpu;
            float hi = lo + width;
            var input = v.Select((x, i) => i % 97 == 5 ? float.NaN : x).ToArray();
            using var g = d.Upload(input);
            Clip.ByValue(d.Kernels, g.View<float>(), lo, hi);
            var got = g.ToHost();
            var expected = (float[])input.Clone();
            ClipReference.ByValueReference(expected, lo, hi);
            bool bounded = got.Select((x, i) => float.IsNaN(input[i]) ? float.IsNaN(x) : x >= lo && x <= hi && (x == input[i] || x == lo || x == hi)).All(b => b);
            return Close.All(got, expected, 0, 0).And(bounded.Label($"every value in [{lo}, {hi}], unchanged inside, NaN kept"));
        });

    [Property(MaxTest = 40)]
    public Property AbsMax_is_exact_on_every_variant() =>
        Prop.ForAll(Gens.Vector().ToArbitrary(), Gen.Choose(0, 3).ToArbitrary(), (v, special) =>
        {
            var x = (float[])v.Clone();
            if (x.Length > 0 && special > 0)
                x[x.Length / 2] = special switch { 1 => float.NaN, 2 => float.NegativeInfinity, _ => -0f };
            // Max does not round, so every launch shape gives the float64 max of |x| exactly.
            double expected = x.Length == 0 ? 0 : x.Any(float.IsNaN) ? double.NaN : x.Max(e => Math.Abs((double)e));
            var p = true.Label("start");
            foreach (var d in Devices.All)
            {
                using var xt = d.Upload(x);
                using var r = d.Upload([123f]);
                Clip.AbsMax(d.Kernels, xt.View<float>(), r.View<float>());
                float got = r.ToHost()[0];
                p = p.And(Close.Scalar(got, expected, 0, 0, $"{Devices.Describe(d)} max|x| (n={x.Length}, special={special})"))
                    .And(Close.Scalar(got, ClipReference.AbsMaxReference(x), 0, 0, "reference"));
            }
            return p;
        });

    [Fact]
    public void Launchers_check_their_arguments()
    {
        var d = Devices.Cpu;
        using var g = d.Upload(new float[3]);
        using var two = d.Upload(new float[2]);
        var e = Assert.Throws<ArgumentException>(() => Clip.ByNorm(d.Kernels, g.View<float>(), two.View<float>(), 1f));
        Assert.Contains("ByNorm", e.Message);
        Assert.Contains("2", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => Clip.ByNorm(d.Kernels, g.View<float>(), g.View<float>().SubView(0, 1), -1f));
        Assert.Throws<ArgumentOutOfRangeException>(() => Clip.ByValue(d.Kernels, g.View<float>(), 1f, 0f));
        Assert.Throws<ArgumentException>(() => Clip.AbsMax(d.Kernels, g.View<float>(), two.View<float>()));
    }
}
