namespace IlgpuTrain.Properties.Kernels;

/// <summary>AdagradUpdate: the direction and fused-step kernels equal their references; the math holds in float64.</summary>
public class AdagradUpdateProperties
{
    // Same float expressions in the same order on both sides; one ulp of slack for a fused multiply-add.
    private const double SameAtol = 1e-30;
    private const double SameRtol = 2.5e-7;

    // float32 against float64: a few roundings of 6e-8 each; every sum here has non-negative terms
    // except p - lr*d, whose scale is |p| + lr*|d|.
    private const double F64Rtol = 1e-6;

    public sealed record Case(float[] P, float[] G, float[] Sum, double Eps, float Lr, float Wd)
    {
        public override string ToString() => $"n={G.Length} eps={Eps} lr={Lr} wd={Wd}";
    }

    private static Gen<Case> Cases { get; } =
        from n in Gens.Length
        from seed in Gen.Choose(0, 1_000_000)
        from eps in Gens.Eps
        from lr in Gens.Float(0f, 0.5f)
        from wd in Gen.OneOf(Gen.Constant(0f), Gens.Float(0f, 0.3f))
        from sumHi in Gen.Elements(0f, 1f, 100f)
        select new Case(Gens.Random(seed, n, -3f, 3f), Gens.Random(seed + 1, n, -2f, 2f), Gens.Random(seed + 2, n, 0f, sumHi), eps, lr, wd);

    [Property(MaxTest = 40)]
    public Property Direction_equals_reference() =>
        Prop.ForAll(Cases.ToArbitrary(), Gen.Elements(Devices.All.ToArray()).ToArbitrary(), (c, d) =>
        {
            using var g = d.Upload(c.G);
            using var sum = d.Upload(c.Sum);
            AdagradUpdate.Direction(d.Kernels, g.View<float>(), sum.View<float>(), (float)c.Eps);
            float[] rg = (float[])c.G.Clone(), rs = (float[])c.Sum.Clone();
            AdagradUpdateReference.DirectionReference(rg, rs, (float)c.Eps);
            return Close.All(g.ToHost(), rg, SameAtol, SameRtol, "direction")
                .And(Close.All(sum.ToHost(), rs, SameAtol, SameRtol, "sum"))
                .Label(c.ToString());
        });

    [Property(MaxTest = 40)]
    public Property Step_equals_reference() =>
        Prop.ForAll(Cases.ToArbitrary(), Gen.Elements(Devices.All.ToArray()).ToArbitrary(), (c, d) =>
        {
            using var p = d.Upload(c.P);
            using var g = d.Upload(c.G);
            using var sum = d.Upload(c.Sum);
            AdagradUpdate.Step(d.Kernels, p.View<float>(), g.View<float>(), sum.View<float>(), c.Lr, c.Wd, (float)c.Eps);
            float[] rp = (float[])c.P.Clone(), rs = (float[])c.Sum.Clone();
            AdagradUpdateReference.StepReference(rp, c.G, rs, c.Lr, c.Wd, (float)c.Eps);
            return Close.All(p.ToHost(), rp, SameAtol, SameRtol, "p")
                .And(Close.All(g.ToHost(), c.G, 0, 0, "g is only read"))
                .And(Close.All(sum.ToHost(), rs, SameAtol, SameRtol, "sum"))
                .Label(c.ToString());
        });

    [Property(MaxTest = 40)]
    public Property Step_is_the_float64_adagrad_formula() =>
        Prop.ForAll(Cases.ToArbitrary(), c =>
        {
            var d = Devices.Cpu;
            using var p = d.Upload(c.P);
            using var g = d.Upload(c.G);
            using var sum = d.Upload(c.Sum);
            AdagradUpdate.Step(d.Kernels, p.View<float>(), g.View<float>(), sum.View<float>(), c.Lr, c.Wd, (float)c.Eps);
            float[] gotP = p.ToHost(), gotS = sum.ToHost();
            for (int i = 0; i < c.P.Length; i++)
            {
                // The coupled-decay gradient as the kernel rounds it; the rest in float64.
                float gi = c.G[i] + (c.Wd * c.P[i]);
                double s = c.Sum[i] + (gi * (double)gi);
                double dir = gi / (Math.Sqrt(s) + c.Eps);
                double expectedP = c.P[i] - (c.Lr * dir);
                if (Math.Abs(gotS[i] - s) > F64Rtol * s + 1e-30)
                    return false.Label($"sum[{i}] = {gotS[i]} but float64 gives {s} ({c})");
                if (Math.Abs(gotP[i] - expectedP) > F64Rtol * (Math.Abs(c.P[i]) + Math.Abs(c.Lr * dir)) + 1e-30)
                    return false.Label($"p[{i}] = {gotP[i]} but float64 gives {expectedP} ({c})");
            }
            return true.Label(c.ToString());
        });

    [Property(MaxTest = 30)]
    public Property Direction_is_at_most_one_in_magnitude_and_the_sum_grows() =>
        Prop.ForAll(Cases.ToArbitrary(), c =>
        {
            // s' = s + g^2 >= g^2, so |g| / (sqrt(s') + eps) <= 1.
            var d = Devices.Cpu;
            using var g = d.Upload(c.G);
            using var sum = d.Upload(c.Sum);
            AdagradUpdate.Direction(d.Kernels, g.View<float>(), sum.View<float>(), (float)c.Eps);
            float[] dir = g.ToHost(), s = sum.ToHost();
            bool bounded = dir.All(x => float.IsNaN(x) || Math.Abs(x) <= 1f);
            bool grows = s.Select((x, i) => x >= c.Sum[i]).All(b => b);
            return bounded.Label("|d| <= 1").And(grows.Label("sum never decreases")).Label(c.ToString());
        });

    [Fact]
    public void Launchers_name_the_mismatched_arguments()
    {
        var d = Devices.Cpu;
        using var a = d.Upload(new float[5]);
        using var b = d.Upload(new float[2]);
        var e = Assert.Throws<ArgumentException>(() => AdagradUpdate.Direction(d.Kernels, a.View<float>(), b.View<float>(), 1e-10f));
        Assert.Contains("AdagradUpdate.Direction", e.Message);
        Assert.Contains("sum has 2", e.Message);
        e = Assert.Throws<ArgumentException>(() => AdagradUpdate.Step(d.Kernels, a.View<float>(), b.View<float>(), a.View<float>(), 0.1f, 0, 1e-10f));
        Assert.Contains("g has 2", e.Message);
    }
}
