namespace IlgpuTrain.Properties.Kernels;

/// <summary>RmsUpdate: the direction and fused-step kernels equal their references; the math holds in float64.</summary>
public class RmsUpdateProperties
{
    // Same float expressions in the same order on both sides; one ulp of slack for a fused multiply-add.
    private const double SameAtol = 1e-30;
    private const double SameRtol = 2.5e-7;

    // float32 against float64: a few roundings of 6e-8, relative to the magnitudes that enter
    // each sum (the centered difference v - mu^2 can cancel, so its scale is v + mu^2).
    private const double F64Rtol = 2e-6;

    public sealed record Case(float[] P, float[] G, float[] V, float[] Mu, float[] B, double Alpha, double Eps, double Momentum, float Lr, float Wd)
    {
        public override string ToString() => $"n={G.Length} centered={Mu.Length > 0} momentum={(B.Length > 0 ? Momentum : 0)} alpha={Alpha} eps={Eps} lr={Lr} wd={Wd}";
    }

    private static Gen<Case> Cases { get; } =
        from n in Gens.Length
        from seed in Gen.Choose(0, 1_000_000)
        from centered in Gen.Elements(false, true)
        from useMomentum in Gen.Elements(false, true)
        from alpha in Gens.Beta
        from eps in Gens.Eps
        from momentum in Gens.Float(0f, 0.95f)
        from lr in Gens.Float(0f, 0.1f)
        from wd in Gen.OneOf(Gen.Constant(0f), Gens.Float(0f, 0.3f))
        let g = Gens.Random(seed, n, -2f, 2f)
        let mu = centered ? Gens.Random(seed + 1, n, -0.5f, 0.5f) : []
        // v >= mu^2 + something, as a running mean of squares is at least the square of the running mean.
        let v = Gens.Random(seed + 2, n, 0.01f, 1f).Select((x, i) => x + (centered ? mu[i] * mu[i] : 0f)).ToArray()
        select new Case(Gens.Random(seed + 3, n, -3f, 3f), g, v, mu, useMomentum ? Gens.Random(seed + 4, n, -5f, 5f) : [], alpha, eps, momentum, lr, wd);

    private static RmsScalars Scalars(Case c) => RmsScalars.For(c.Alpha, c.Eps, c.Momentum);

    [Property(MaxTest = 40)]
    public Property Direction_equals_reference() =>
        Prop.ForAll(Cases.ToArbitrary(), Gen.Elements(Devices.All.ToArray()).ToArbitrary(), (c, d) =>
        {
            using var g = d.Upload(c.G);
            using var v = d.Upload(c.V);
            using var mu = d.Upload(c.Mu);
            using var b = d.Upload(c.B);
            RmsUpdate.Direction(d.Kernels, g.View<float>(), v.View<float>(), mu.View<float>(), b.View<float>(), Scalars(c));
            float[] rg = (float[])c.G.Clone(), rv = (float[])c.V.Clone(), rmu = (float[])c.Mu.Clone(), rb = (float[])c.B.Clone();
            RmsUpdateReference.DirectionReference(rg, rv, rmu, rb, Scalars(c));
            return Close.All(g.ToHost(), rg, SameAtol, SameRtol, "direction")
                .And(Close.All(v.ToHost(), rv, SameAtol, SameRtol, "v"))
                .And(Close.All(mu.ToHost(), rmu, SameAtol, SameRtol, "mu"))
                .And(Close.All(b.ToHost(), rb, SameAtol, SameRtol, "b"))
                .Label(c.ToString());
        });

    [Property(MaxTest = 40)]
    public Property Step_equals_reference() =>
        Prop.ForAll(Cases.ToArbitrary(), Gen.Elements(Devices.All.ToArray()).ToArbitrary(), (c, d) =>
        {
            using var p = d.Upload(c.P);
            using var g = d.Upload(c.G);
            using var v = d.Upload(c.V);
            using var mu = d.Upload(c.Mu);
            using var b = d.Upload(c.B);
            var s = new RmsStepScalars(Scalars(c), c.Lr, c.Wd);
            RmsUpdate.Step(d.Kernels, p.View<float>(), g.View<float>(), v.View<float>(), mu.View<float>(), b.View<float>(), s);
            float[] rp = (float[])c.P.Clone(), rv = (float[])c.V.Clone(), rmu = (float[])c.Mu.Clone(), rb = (float[])c.B.Clone();
            RmsUpdateReference.StepReference(rp, c.G, rv, rmu, rb, s);
            return Close.All(p.ToHost(), rp, SameAtol, SameRtol, "p")
                .And(Close.All(g.ToHost(), c.G, 0, 0, "g is only read"))
                .And(Close.All(v.ToHost(), rv, SameAtol, SameRtol, "v"))
                .And(Close.All(mu.ToHost(), rmu, SameAtol, SameRtol, "mu"))
                .And(Close.All(b.ToHost(), rb, SameAtol, SameRtol, "b"))
                .Label(c.ToString());
        });

    [Property(MaxTest = 40)]
    public Property Step_is_the_float64_rmsprop_formula() =>
        Prop.ForAll(Cases.ToArbitrary(), c =>
        {
            var d = Devices.Cpu;
            using var p = d.Upload(c.P);
            using var g = d.Upload(c.G);
            using var v = d.Upload(c.V);
            using var mu = d.Upload(c.Mu);
            using var b = d.Upload(c.B);
            RmsUpdate.Step(d.Kernels, p.View<float>(), g.View<float>(), v.View<float>(), mu.View<float>(), b.View<float>(), new RmsStepScalars(Scalars(c), c.Lr, c.Wd));
            float[] gotP = p.ToHost(), gotV = v.ToHost(), gotMu = mu.ToHost(), gotB = b.ToHost();
            bool centered = c.Mu.Length > 0, momentum = c.B.Length > 0;
            for (int i = 0; i < c.P.Length; i++)
            {
                // The coupled-decay gradient as the kernel rounds it; the rest in float64.
                float gi = c.G[i] + (c.Wd * c.P[i]);
                double vi = (c.Alpha * c.V[i]) + ((1 - c.Alpha) * gi * (double)gi);
                double mi = centered ? (c.Alpha * c.Mu[i]) + ((1 - c.Alpha) * gi) : 0;
                double den = Math.Sqrt(vi - (mi * mi)) + c.Eps;
                double dir = gi / den;
                double bi = momentum ? (c.Momentum * c.B[i]) + dir : dir;
                double expectedP = c.P[i] - (c.Lr * bi);
                double muScale = Math.Abs(c.Alpha * c.Mu.ElementAtOrDefault(i)) + Math.Abs((1 - c.Alpha) * gi);
                // Relative error of den is at most that of (v - mu^2), i.e. its scale over its value.
                double varScale = vi + (mi * mi) + (muScale * Math.Abs(mi));
                double dirScale = Math.Abs(dir) * (1 + (varScale / Math.Max(vi - (mi * mi), 1e-300)));
                double bScale = (momentum ? Math.Abs(c.Momentum * c.B[i]) : 0) + dirScale;
                if (Math.Abs(gotV[i] - vi) > F64Rtol * vi + 1e-30)
                    return false.Label($"v[{i}] = {gotV[i]} but float64 gives {vi} ({c})");
                if (centered && Math.Abs(gotMu[i] - mi) > F64Rtol * muScale + 1e-30)
                    return false.Label($"mu[{i}] = {gotMu[i]} but float64 gives {mi} ({c})");
                if (momentum && Math.Abs(gotB[i] - bi) > F64Rtol * bScale + 1e-30)
                    return false.Label($"b[{i}] = {gotB[i]} but float64 gives {bi} ({c})");
                if (Math.Abs(gotP[i] - expectedP) > F64Rtol * (Math.Abs(c.P[i]) + (c.Lr * bScale)) + 1e-30)
                    return false.Label($"p[{i}] = {gotP[i]} but float64 gives {expectedP} ({c})");
            }
            return true.Label(c.ToString());
        });

    [Property(MaxTest = 30)]
    public Property First_uncentered_direction_is_g_over_sqrt_of_one_minus_alpha_times_abs_g() =>
        Prop.ForAll(Gens.Vector(-3f, 3f).ToArbitrary(), Gens.Beta.ToArbitrary(), Gens.Eps.ToArbitrary(), (x, alpha, eps) =>
        {
            var d = Devices.Cpu;
            using var g = d.Upload(x);
            using var v = d.Upload(new float[x.Length]);
            RmsUpdate.Direction(d.Kernels, g.View<float>(), v.View<float>(), default, default, RmsScalars.For(alpha, eps, 0));
            // From v = 0: v = (1 - alpha) g^2, so d = g / (sqrt(1 - alpha) |g| + eps).
            var expected = x.Select(gi => gi / ((Math.Sqrt(1 - alpha) * Math.Abs(gi)) + eps)).ToArray();
            return Close.All(g.ToHost(), expected, 1e-30, F64Rtol, $"alpha {alpha}, eps {eps}");
        });

    [Fact]
    public void Launchers_name_the_mismatched_arguments()
    {
        var d = Devices.Cpu;
        using var a = d.Upload(new float[5]);
        using var b = d.Upload(new float[3]);
        var s = RmsScalars.For(0.99, 1e-8, 0);
        var e = Assert.Throws<ArgumentException>(() => RmsUpdate.Direction(d.Kernels, a.View<float>(), a.View<float>(), b.View<float>(), default, s));
        Assert.Contains("RmsUpdate.Direction", e.Message);
        Assert.Contains("mu has 3", e.Message);
        e = Assert.Throws<ArgumentException>(() => RmsUpdate.Step(d.Kernels, a.View<float>(), a.View<float>(), a.View<float>(), default, b.View<float>(), new RmsStepScalars(s, 0.1f, 0)));
        Assert.Contains("b has 3", e.Message);
    }
}
