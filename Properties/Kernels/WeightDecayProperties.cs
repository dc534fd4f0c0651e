namespace IlgpuTrain.Properties.Kernels;

/// <summary>WeightDecay kernel: u += lambda * mask * p equals its reference.</summary>
public class WeightDecayProperties
{
    [Property(MaxTest = 30)]
    public Property Kernel_equals_reference() =>
        Prop.ForAll(Gens.VectorPair().ToArbitrary(), Gens.Float(-1f, 1f).ToArbitrary(), Gen.Choose(0, 2).ToArbitrary(), (v, lambda, maskKind) =>
        {
            var d = Devices.Cpu;
            int n = v.A.Length;
            byte[] mask = maskKind == 0 ? [] : Enumerable.Range(0, n).Select(i => (byte)((i * 7 + maskKind) % 3 == 0 ? 1 : 0)).ToArray();
            using var u = d.Upload(v.A);
            using var pt = d.Upload(v.B);
            var mb = d.Pool.Rent(Math.Max(1, mask.Length));
            try
            {
                var mview = mask.Length == 0 ? default : mb.View<byte>(mask.Length);
                if (mask.Length > 0)
                    Transfer.ToDevice<byte>(d.Stream, mask, mview);
                WeightDecay.Add(d.Kernels, u.View<float>(), pt.View<float>(), lambda, mview);
                var expected = (float[])v.A.Clone();
                WeightDecayReference.AddReference(expected, v.B, lambda, mask);
                return Close.All(u.ToHost(), expected, 1e-6, 1e-6);
            }
            finally
            {
                mb.Dispose();
            }
        });

    [Property(MaxTest = 20)]
    public Property Unmasked_decay_is_the_float64_axpy() =>
        Prop.ForAll(Gens.VectorPair().ToArbitrary(), Gens.Float(0f, 1f).ToArbitrary(), (v, lambda) =>
        {
            var d = Devices.Cpu;
            using var u = d.Upload(v.A);
            using var p = d.Upload(v.B);
            WeightDecay.Add(d.Kernels, u.View<float>(), p.View<float>(), lambda, default);
            var exact = v.A.Zip(v.B, (a, b) => a + ((double)lambda * b)).ToArray();
            var scale = v.A.Zip(v.B, (a, b) => Math.Abs(a) + Math.Abs((double)lambda * b)).ToArray();
            var got = u.ToHost();
            bool ok = got.Select((g, i) => Math.Abs(g - exact[i]) <= (2.5e-7 * scale[i]) + 1e-30).All(b => b);
            return ok.Label("within 2 ulp of lambda*p + u");
        });
}
