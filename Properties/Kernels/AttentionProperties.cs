using IlgpuTrain.Properties.Functional;
using IlgpuTrain.Training.Conformance;

namespace IlgpuTrain.Properties.Kernels;

/// <summary>
/// The tiled attention kernels at every group size (1 thread, a prime, the CPU accelerator's 16):
/// rows and keys that straddle tiles and groups, against the float64 reference
/// (<see cref="AttentionReference"/>), dS (the bias gradient) included; F.ScaledDotProductAttention's properties run the default size.
/// </summary>
public class AttentionProperties
{
    // float32 dot products and exps over D, Lk <= ~150 terms of magnitude ~1 (one definition with the conformance suite).
    private const double Atol = Tolerances.Attention.Atol;
    private const double Rtol = Tolerances.Attention.Rtol;

    private static Gen<(AttentionCase Case, int Rows)> Cases =>
        from b in Gen.Choose(1, 2)
        from h in Gen.Choose(1, 2)
        from lq in Gen.Choose(1, 37)
        from lk in Gen.Choose(1, 37)
        from d in Gen.Choose(1, 9)
        from dv in Gen.Choose(1, 9)
        from causal in Gen.Elements(false, true)
        from bias in Gen.Choose(0, 4)
        from pad in Gen.Choose(0, 2)
        from p in Gen.Elements(0f, 0.3f)
        from seed in Gen.Choose(0, 100000)
        from rows in Gen.Elements(1, 2, 3, 7, 15, 16)
        select (new AttentionCase(b, h, lq, lk, d, dv, causal, null, bias, pad, p, seed), rows);

    [Property(MaxTest = 30)]
    public Property Tiled_kernels_equal_the_reference_at_every_group_size() =>
        Prop.ForAll(Cases.ToArbitrary(), t =>
        {
            var (c, rows) = t;
            var x = AttentionInputs.For(c);
            var device = Devices.CpuKernels;
            var host = device.Kernels;
            int bh = c.B * c.H;
            using var q = device.Upload(x.Q);
            using var k = device.Upload(x.K);
            using var v = device.Upload(x.V);
            using var dO = device.Upload(x.DOut);
            using var bias = device.Upload(x.BiasValues.Length > 0 ? x.BiasValues : [0f]);
            using var pad = device.Upload(x.PadValues.Length > 0 ? x.PadValues : [0]);
            using var o = device.Upload(new float[bh * c.Lq * c.Dv]);
            using var lse = device.Upload(new float[bh * c.Lq]);
            using var delta = device.Upload(new float[bh * c.Lq]);
            using var dq = device.Upload(new float[x.Q.Length]);
            using var dk = device.Upload(new float[x.K.Length]);
            using var dv = device.Upload(new float[x.V.Length]);
            using var dS = device.Upload(Enumerable.Repeat(float.NaN, bh * c.Lq * c.Lk).ToArray());
            var a = c.KernelArgs(biasGrad: true);
            var pv = pad.View<int>();
            IlgpuTrain.Kernels.Attention.ForwardTiled(host, a, q.View<float>(), k.View<float>(), v.View<float>(), o.View<float>(), lse.View<float>(), bias.View<float>(), pv, pv, rows);
            IlgpuTrain.Kernels.Attention.BackwardTiled(host, a, q.View<float>(), k.View<float>(), v.View<float>(), o.View<float>(), lse.View<float>(), dO.View<float>(), dq.View<float>(), dk.View<float>(), dv.View<float>(), delta.View<float>(), dS.View<float>(), bias.View<float>(), pv, pv, rows);
            static double[] D(float[] f) => f.Select(e => (double)e).ToArray();
            var r = AttentionReference.Run(c, x, D(x.Q), D(x.K), D(x.V), D(x.DOut));
            return Close.All(o.ToHost(), r.Y, Atol, Rtol, "y")
                .And(Close.All(dq.ToHost(), r.Dq, Atol, Rtol, "dq"))
                .And(Close.All(dk.ToHost(), r.Dk, Atol, Rtol, "dk"))
                .And(Close.All(dv.ToHost(), r.Dv, Atol, Rtol, "dv"))
                .And(Close.All(dS.ToHost(), r.DS, Atol, Rtol, "dS (the full bias's gradient)"))
                .Label($"{c}, {rows} rows per group");
        });
}
