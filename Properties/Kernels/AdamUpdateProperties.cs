namespace IlgpuTrain.Properties.Kernels;

/// <summary>AdamUpdate: the direction and fused-step kernels equal their references; the math holds in float64.</summary>
public class AdamUpdateProperties
{
    // Kernel and reference evaluate the same float expressions in the same order; XMath.Sqrt
    // and MathF.Sqrt are both correctly rounded. Allow one ulp for a JIT that fuses a multiply-add.
    private const double SameAtol = 1e-30;
    private const double SameRtol = 2.5e-7;

    // float32 against float64: a handful of roundings, each 6e-8 relative to the magnitudes that
    // enter it; cancellation in beta*m + (1-beta)*g is covered by scaling with those magnitudes.
    private const double F64Rtol = 2e-6;

    public sealed record Case(float[] G, float[] M, float[] V, float[] VMax, byte[] Mask, float[] P, double B1, double B2, double Eps, double EpsRoot, int T, float Lr, float Wd, float DecayFactor)
    {
        public override string ToString() => $"n={G.Length} amsgrad={VMax.Length > 0} mask={Mask.Length > 0} b1={B1} b2={B2} eps={Eps} epsRoot={EpsRoot} t={T} lr={Lr} wd={Wd} f={DecayFactor}";
    }

    private static Gen<Case> Cases { get; } =
        from n in Gens.Length
        from seed in Gen.Choose(0, 1_000_000)
        from amsgrad in Gen.Elements(false, true)
        from mask in Gens.MaybeMask(n)
        from b1 in Gens.Beta
        from b2 in Gens.Beta
        from eps in Gens.Eps
        from epsRoot in Gen.Elements(0.0, 1e-8, 0.01)
        from t in Gens.AdamStep
        from lr in Gens.Float(0f, 0.5f)
        from decoupled in Gen.Elements(false, true)
        from wd in Gens.Float(0f, 0.3f)
        select new Case(
            Gens.Random(seed, n, -2f, 2f),
            Gens.Random(seed + 1, n, -1f, 1f),
            Gens.Random(seed + 2, n, 0f, 1f),
            amsgrad ? Gens.Random(seed + 3, n, 0f, 1f) : [],
            mask,
            Gens.Random(seed + 4, n, -3f, 3f),
            b1, b2, eps, epsRoot, t, lr,
            decoupled ? 0f : wd,
            decoupled ? (float)(1 - (lr * (double)wd)) : 1f);

    private static AdamScalars Scalars(Case c) => AdamScalars.For(c.B1, c.B2, c.Eps, c.EpsRoot, c.T);

    [Property(MaxTest = 40)]
    public Property Direction_equals_reference() =>
        Prop.ForAll(Cases.ToArbitrary(), Gen.Elements(Devices.All.ToArray()).ToArbitrary(), (c, d) =>
        {
            using var g = d.Upload(c.G);
            using var m = d.Upload(c.M);
            using var v = d.Upload(c.V);
            using var vmax = d.Upload(c.VMax);
            AdamUpdate.Direction(d.Kernels, g.View<float>(), m.View<float>(), v.View<float>(), vmax.View<float>(), Scalars(c));
            float[] rg = (float[])c.G.Clone(), rm = (float[])c.M.Clone(), rv = (float[])c.V.Clone(), rvmax = (float[])c.VMax.Clone();
            AdamUpdateReference.DirectionReference(rg, rm, rv, rvmax, Scalars(c));
            return Close.All(g.ToHost(), rg, SameAtol, SameRtol, "direction")
                .And(Close.All(m.ToHost(), rm, SameAtol, SameRtol, "m"))
                .And(Close.All(v.ToHost(), rv, SameAtol, SameRtol, "v"))
                .And(Close.All(vmax.ToHost(), rvmax, SameAtol, SameRtol, "vmax"))
                .Label(c.ToString());
        });

    [Property(MaxTest = 40)]
    public Property Step_equals_reference() =>
        Prop.ForAll(Cases.ToArbitrary(), Gen.Elements(Devices.All.ToArray()).ToArbitrary(), (c, d) =>
        {
            using var p = d.Upload(c.P);
            using var g = d.Upload(c.G);
            using var m = d.Upload(c.M);
            using var v = d.Upload(c.V);
            using var vmax = d.Upload(c.VMax);
            var mb = d.Pool.Rent(Math.Max(1, c.Mask.Length));
            try
            {
                var mask = c.Mask.Length == 0 ? default : mb.View<byte>(c.Mask.Length);
                if (c.Mask.Length > 0)
                    Transfer.ToDevice<byte>(d.Stream, c.Mask, mask);
                var s = new AdamStepScalars(Scalars(c), c.Lr, c.Wd, c.DecayFactor);
                AdamUpdate.Step(d.Kernels, p.View<float>(), g.View<float>(), m.View<float>(), v.View<float>(), vmax.View<float>(), mask, s);
                float[] rp = (float[])c.P.Clone(), rm = (float[])c.M.Clone(), rv = (float[])c.V.Clone(), rvmax = (float[])c.VMax.Clone();
                AdamUpdateReference.StepReference(rp, c.G, rm, rv, rvmax, c.Mask, s);
                return Close.All(p.ToHost(), rp, SameAtol, SameRtol, "p")
                    .And(Close.All(g.ToHost(), c.G, 0, 0, "g is only read"))
                    .And(Close.All(m.ToHost(), rm, SameAtol, SameRtol, "m"))
                    .And(Close.All(v.ToHost(), rv, SameAtol, SameRtol, "v"))
                    .And(Close.All(vmax.ToHost(), rvmax, SameAtol, SameRtol, "vmax"))
                    .Label(c.ToString());
            }
            finally
            {
                mb.Dispose();
            }
        });

    // The fused clip multiplies each gradient by the clip factor before anything else, as a
    // clip pass would: p, m, v and vmax must be bitwise those of Clip.ByNorm followed by the
    // unclipped step, on every variant (and the gradients stay unscaled).
    [Property(MaxTest = 40)]
    public Property Fused_clip_is_bitwise_clip_then_step() =>
        Prop.ForAll(Cases.ToArbitrary(), Gen.Elements(0.05f, 0.5f, 2f, 50f, float.PositiveInfinity).ToArbitrary(), Gen.Choose(0, Devices.All.Count() - 1).ToArbitrary(), (c, maxNorm, where) =>
        {
            var d = Devices.All.ElementAt(where);
            float norm = (float)Math.Sqrt(c.G.Sum(x => (double)x * x));
            var s = new AdamStepScalars(Scalars(c), c.Lr, c.Wd, c.DecayFactor);
            float[][] Run(bool fused)
            {
                using var p = d.Upload(c.P);
                using var g = d.Upload(c.G);
                using var m = d.Upload(c.M);
                using var v = d.Upload(c.V);
                using var vmax = d.Upload(c.VMax);
                using var n = d.Upload([norm]);
                var mb = d.Pool.Rent(Math.Max(1, c.Mask.Length));
                try
                {
                    var mask = c.Mask.Length == 0 ? default : mb.View<byte>(c.Mask.Length);
                    if (c.Mask.Length > 0)
                        Transfer.ToDevice<byte>(d.Stream, c.Mask, mask);
                    if (fused)
                    {
                        AdamUpdate.Step(d.Kernels, p.View<float>(), g.View<float>(), m.View<float>(), v.View<float>(), vmax.View<float>(), mask, s, n.View<float>(), maxNorm);
                    }
                    else
                    {
                        Clip.ByNorm(d.Kernels, g.View<float>(), n.View<float>(), maxNorm);
                        AdamUpdate.Step(d.Kernels, p.View<float>(), g.View<float>(), m.View<float>(), v.View<float>(), vmax.View<float>(), mask, s);
                    }

                    return [p.ToHost(), m.ToHost(), v.ToHost(), vmax.ToHost(), g.ToHost()];
                }
                finally
                {
                    mb.Dispose();
                }
            }

            var fusedOut = Run(true);
            var twoPass = Run(false);
            return Bits.Same(fusedOut[0], twoPass[0], "p")
                .And(Bits.Same(fusedOut[1], twoPass[1], "m"))
                .And(Bits.Same(fusedOut[2], twoPass[2], "v"))
                .And(Bits.Same(fusedOut[3], twoPass[3], "vmax"))
                .And(Bits.Same(fusedOut[4], c.G, "g is only read by the fused step"))
                .Label($"{c} maxNorm={maxNorm} norm={norm} on {Devices.Describe(d)}");
        });

    [Property(MaxTest = 40)]
    public Property Step_is_the_float64_adam_formula() =>
        Prop.ForAll(Cases.ToArbitrary(), c =>
        {
            var d = Devices.Cpu;
            int n = c.P.Length;
            using var p = d.Upload(c.P);
            using var g = d.Upload(c.G);
            using var m = d.Upload(c.M);
            using var v = d.Upload(c.V);
            using var vmax = d.Upload(c.VMax);
            var mb = d.Pool.Rent(Math.Max(1, n));
            try
            {
                var mask = c.Mask.Length == 0 ? default : mb.View<byte>(n);
                if (c.Mask.Length > 0)
                    Transfer.ToDevice<byte>(d.Stream, c.Mask, mask);
                AdamUpdate.Step(d.Kernels, p.View<float>(), g.View<float>(), m.View<float>(), v.View<float>(), vmax.View<float>(), mask, new AdamStepScalars(Scalars(c), c.Lr, c.Wd, c.DecayFactor));
                float[] gotP = p.ToHost(), gotM = m.ToHost(), gotV = v.ToHost(), gotVmax = vmax.ToHost();
                double bc1 = 1 - Math.Pow(c.B1, c.T), bc2 = 1 - Math.Pow(c.B2, c.T);
                for (int i = 0; i < n; i++)
                {
                    bool decays = c.Mask.Length == 0 || c.Mask[i] == 1;
                    // The decayed parameter and gradient as the kernel rounds them in float; the
                    // moments, bias correction and direction below are float64.
                    float pi = decays ? c.P[i] * c.DecayFactor : c.P[i];
                    float gi = decays ? c.G[i] + (c.Wd * pi) : c.G[i];
                    double mi = (c.B1 * c.M[i]) + ((1 - c.B1) * gi);
                    double vi = (c.B2 * c.V[i]) + ((1 - c.B2) * gi * (double)gi);
                    double second = c.VMax.Length > 0 ? Math.Max(c.VMax[i], vi) : vi;
                    double den = Math.Sqrt((second / bc2) + c.EpsRoot) + c.Eps;
                    double step = c.Lr * (mi / bc1) / den;
                    // Error scales: the magnitudes that enter each sum, carried through the division.
                    double mScale = Math.Abs(c.B1 * c.M[i]) + Math.Abs((1 - c.B1) * gi);
                    double stepScale = c.Lr * (mScale / bc1) / den;
                    if (Math.Abs(gotM[i] - mi) > F64Rtol * mScale + 1e-30)
                        return false.Label($"m[{i}] = {gotM[i]} but float64 gives {mi} ({c})");
                    if (Math.Abs(gotV[i] - vi) > F64Rtol * Math.Abs(vi) + 1e-30)
                        return false.Label($"v[{i}] = {gotV[i]} but float64 gives {vi} ({c})");
                    if (c.VMax.Length > 0 && Math.Abs(gotVmax[i] - second) > F64Rtol * second + 1e-30)
                        return false.Label($"vmax[{i}] = {gotVmax[i]} but float64 gives {second} ({c})");
                    double expectedP = pi - step;
                    if (Math.Abs(gotP[i] - expectedP) > F64Rtol * (Math.Abs(pi) + stepScale) + 1e-30)
                        return false.Label($"p[{i}] = {gotP[i]} but float64 gives {expectedP} ({c})");
                }
                return true.Label(c.ToString());
            }
            finally
            {
                mb.Dispose();
            }
        });

    [Property(MaxTest = 30)]
    public Property Amsgrad_max_never_decreases_and_bounds_v() =>
        Prop.ForAll(Cases.ToArbitrary(), c =>
        {
            var d = Devices.Cpu;
            int n = c.G.Length;
            var vmax0 = Gens.Random(c.T, n, 0f, 1f);
            using var g = d.Upload(c.G);
            using var m = d.Upload(c.M);
            using var v = d.Upload(c.V);
            using var vmax = d.Upload(vmax0);
            AdamUpdate.Direction(d.Kernels, g.View<float>(), m.View<float>(), v.View<float>(), vmax.View<float>(), Scalars(c));
            float[] gotV = v.ToHost(), gotMax = vmax.ToHost();
            bool ok = Enumerable.Range(0, n).All(i => gotMax[i] >= vmax0[i] && gotMax[i] >= gotV[i] && (gotMax[i] == vmax0[i] || gotMax[i] == gotV[i]));
            return ok.Label($"vmax = max(vmax, v) elementwise ({c})");
        });

    [Fact]
    public void Launchers_name_the_mismatched_arguments()
    {
        var d = Devices.Cpu;
        using var a = d.Upload(new float[5]);
        using var b = d.Upload(new float[4]);
        var s = AdamScalars.For(0.9, 0.999, 1e-8, 0, 1);
        var e = Assert.Throws<ArgumentException>(() => AdamUpdate.Direction(d.Kernels, a.View<float>(), a.View<float>(), b.View<float>(), default, s));
        Assert.Contains("AdamUpdate.Direction", e.Message);
        Assert.Contains("v has 4", e.Message);
        e = Assert.Throws<ArgumentException>(() => AdamUpdate.Step(d.Kernels, a.View<float>(), a.View<float>(), a.View<float>(), a.View<float>(), b.View<float>(), default, new AdamStepScalars(s, 0.1f, 0, 1)));
        Assert.Contains("vmax has 4", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => AdamScalars.For(0.9, 0.999, 1e-8, 0, 0));
    }
}
