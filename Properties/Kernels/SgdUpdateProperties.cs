namespace IlgpuTrain.Properties.Kernels;

/// <summary>SgdUpdate kernels: momentum (Trace) and the fused SGD step equal their references and the formulas.</summary>
public class SgdUpdateProperties
{
    // Kernel and reference run the same float operations in the same order; a few ulps allow a
    // backend that contracts a*b + c into one FMA.
    private const double KernelRtol = 4e-7;
    private const double KernelAtol = 1e-30;

    private static Gen<(float Mu, float Dampening, bool Nesterov, bool First)> MomentumArgs { get; } =
        from mu in Gen.OneOf(Gen.Constant(0f), Gens.Float(0f, 1f))
        from damp in Gen.OneOf(Gen.Constant(0f), Gens.Float(0f, 1f))
        from nesterov in Gen.Elements(false, true)
        from first in Gen.Elements(false, true)
        select (mu, damp, nesterov, first);

    [Property(MaxTest = 40)]
    public Property Momentum_kernel_equals_reference() =>
        Prop.ForAll(Gens.VectorPair().ToArbitrary(), MomentumArgs.ToArbitrary(), (v, a) =>
        {
            var d = Devices.Cpu;
            using var g = d.Upload(v.A);
            using var b = d.Upload(v.B);
            SgdUpdate.Momentum(d.Kernels, g.View<float>(), b.View<float>(), a.Mu, a.Dampening, a.Nesterov, a.First);
            var eg = (float[])v.A.Clone();
            var eb = (float[])v.B.Clone();
            SgdUpdateReference.MomentumReference(eg, eb, a.Mu, a.Dampening, a.Nesterov, a.First);
            return Close.All(g.ToHost(), eg, KernelAtol, KernelRtol, "direction")
                .And(Close.All(b.ToHost(), eb, KernelAtol, KernelRtol, "buffer"))
                .Label($"n={v.A.Length} {a}");
        });

    [Property(MaxTest = 40)]
    public Property Step_kernel_equals_reference() =>
        Prop.ForAll(Gens.VectorPair().ToArbitrary(), MomentumArgs.ToArbitrary(), (from lr in Gens.Float(0f, 1f) from kind in Gen.Choose(0, 3) select (lr, kind)).ToArbitrary(), (v, a, k) =>
        {
            var (lr, kind) = k;
            var d = Devices.Cpu;
            int n = v.A.Length;
            float wd = kind == 0 ? 0f : 0.1f * kind;
            byte[] mask = kind < 2 ? [] : Enumerable.Range(0, n).Select(i => (byte)(i % kind == 0 ? 1 : 0)).ToArray();
            var bHost = Gens.Random(n + 17, n);
            using var p = d.Upload(v.A);
            using var g = d.Upload(v.B);
            using var b = d.Upload(bHost);
            using var m = d.Pool.Rent(Math.Max(1, n));
            var mview = mask.Length == 0 ? default : m.View<byte>(n);
            if (mask.Length > 0)
                Transfer.ToDevice<byte>(d.Stream, mask, mview);
            SgdUpdate.Step(d.Kernels, p.View<float>(), g.View<float>(), b.View<float>(), mview, lr, wd, a.Mu, a.Dampening, a.Nesterov, a.First);
            var ep = (float[])v.A.Clone();
            var eb = (float[])bHost.Clone();
            SgdUpdateReference.StepReference(ep, v.B, eb, mask, lr, wd, a.Mu, a.Dampening, a.Nesterov, a.First);
            return Close.All(p.ToHost(), ep, KernelAtol, KernelRtol, "parameters")
                .And(Close.All(b.ToHost(), eb, KernelAtol, KernelRtol, "buffer"))
                .Label($"n={n} lr={lr} wd={wd} mask={mask.Length > 0} {a}");
        });

    [Property(MaxTest = 30)]
    public Property Step_without_momentum_is_the_float64_sgd_formula() =>
        Prop.ForAll(Gens.VectorPair().ToArbitrary(), Gens.Float(0f, 1f).ToArbitrary(), Gens.Float(0f, 1f).ToArbitrary(), (v, lr, wd) =>
        {
            var d = Devices.Cpu;
            using var p = d.Upload(v.A);
            using var g = d.Upload(v.B);
            SgdUpdate.Step(d.Kernels, p.View<float>(), g.View<float>(), default, default, lr, wd, 0f, 0f, false, true);
            var got = p.ToHost();
            var exact = v.A.Select((x, i) => x - ((double)lr * (v.B[i] + ((double)wd * x)))).ToArray();
            // Four roundings (wd*p, +g, lr*d, +p), each at most half an ulp of a term no larger
            // than the sum of magnitudes.
            var scale = v.A.Select((x, i) => Math.Abs(x) + (lr * (Math.Abs(v.B[i]) + (wd * Math.Abs(x))))).ToArray();
            int bad = Enumerable.Range(0, got.Length).FirstOrDefault(i => !(Math.Abs(got[i] - exact[i]) <= 3e-7 * scale[i]), -1);
            return (bad < 0).Label(bad < 0 ? "ok" : $"p[{bad}] = {got[bad]:R}, float64 {exact[bad]:R}");
        });

    [Property(MaxTest = 30)]
    public Property First_momentum_update_sets_the_buffer_to_g_and_nesterov_gives_one_plus_mu_g() =>
        Prop.ForAll(Gens.Vector().ToArbitrary(), MomentumArgs.ToArbitrary(), (v, a) =>
        {
            float mu = Math.Max(a.Mu, 0.01f);
            float damp = a.Dampening;
            bool nesterov = a.Nesterov;
            var d = Devices.Cpu;
            using var g = d.Upload(v);
            using var b = d.Poisoned(v.Length);
            SgdUpdate.Momentum(d.Kernels, g.View<float>(), b.View<float>(), mu, nesterov ? 0f : damp, nesterov, first: true);
            var expected = v.Select(x => nesterov ? x * (1.0 + mu) : x).ToArray();
            return Close.All(b.ToHost(), v.Select(x => (double)x).ToArray(), 0, 0, "buffer = g, undampened")
                .And(Close.All(g.ToHost(), expected, 1e-30, 2.5e-7, "direction"));
        });

    [Fact]
    public void Launchers_name_the_op_and_both_sizes()
    {
        var d = Devices.Cpu;
        using var a = d.Upload(new float[5]);
        using var c = d.Upload(new float[4]);
        var e = Assert.Throws<ArgumentException>(() => SgdUpdate.Momentum(d.Kernels, a.View<float>(), c.View<float>(), 0.9f, 0f, false, false));
        Assert.Contains("Momentum", e.Message);
        Assert.Contains("5", e.Message);
        Assert.Contains("4", e.Message);
        e = Assert.Throws<ArgumentException>(() => SgdUpdate.Step(d.Kernels, a.View<float>(), a.View<float>(), c.View<float>(), default, 0.1f, 0f, 0.9f, 0f, false, false));
        Assert.Contains("Step", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => SgdUpdate.Step(d.Kernels, a.View<float>(), a.View<float>(), default, default, float.NaN, 0f, 0f, 0f, false, false));
        Assert.Throws<ArgumentOutOfRangeException>(() => SgdUpdate.Momentum(d.Kernels, a.View<float>(), a.View<float>(), -0.5f, 0f, false, false));
    }
}
