namespace IlgpuTrain.Properties.Kernels;

/// <summary>Elementwise arithmetic: kernels equal their references; the math holds in float64.</summary>
public class ElementwiseProperties
{
    // A single rounding of the float result: the kernel and the reference compute the same expression.
    private const double Atol = 0;
    private const double Rtol = 0;

    private static Property Binary(Action<KernelHost, ArrayView<float>, ArrayView<float>, ArrayView<float>> launch, Func<float, float, float> reference) =>
        Prop.ForAll(Gens.VectorPair().ToArbitrary(), p =>
        {
            var d = Devices.Cpu;
            using var a = d.Upload(p.A);
            using var b = d.Upload(p.B);
            using var y = d.Poisoned(p.A.Length);
            launch(d.Kernels, a.View<float>(), b.View<float>(), y.View<float>());
            var expected = p.A.Zip(p.B, reference).ToArray();
            return Close.All(y.ToHost(), expected, Atol, Rtol).Label($"n = {p.A.Length}");
        });

    [Property(MaxTest = 40)]
    public Property Add_equals_reference() => Binary(Elementwise.Add, (x, z) =>
    {
        Span<float> r = stackalloc float[1];
        ElementwiseReference.AddReference([x], [z], r);
        return r[0];
    });

    [Property(MaxTest = 40)]
    public Property Add_is_the_float_sum() => Binary(Elementwise.Add, (x, z) => (float)((double)x + z));

    [Property(MaxTest = 40)]
    public Property Sub_is_the_float_difference() => Binary(Elementwise.Sub, (x, z) => (float)((double)x - z));

    [Property(MaxTest = 40)]
    public Property Mul_is_the_float_product() => Binary(Elementwise.Mul, (x, z) => (float)((double)x * z));

    [Property(MaxTest = 40)]
    public Property Scale_equals_reference_and_float64() =>
        Prop.ForAll(Gens.Vector().ToArbitrary(), Gens.Float(-4, 4).ToArbitrary(), (x, alpha) =>
        {
            var d = Devices.Cpu;
            using var tx = d.Upload(x);
            using var ty = d.Poisoned(x.Length);
            Elementwise.Scale(d.Kernels, tx.View<float>(), alpha, ty.View<float>());
            var reference = new float[x.Length];
            ElementwiseReference.ScaleReference(x, alpha, reference);
            var exact = x.Select(v => (double)alpha * v).ToArray();
            var got = ty.ToHost();
            return Close.All(got, reference, 0, 0, "vs reference")
                .And(Close.All(got, exact, 1e-30, 6e-8, "vs float64"));
        });

    [Property(MaxTest = 40)]
    public Property Axpy_accumulates_alpha_x_into_y() =>
        Prop.ForAll(Gens.VectorPair().ToArbitrary(), Gens.Float(-4, 4).ToArbitrary(), (p, alpha) =>
        {
            var d = Devices.Cpu;
            using var x = d.Upload(p.A);
            using var y = d.Upload(p.B);
            Elementwise.Axpy(d.Kernels, alpha, x.View<float>(), y.View<float>());
            var reference = (float[])p.B.Clone();
            ElementwiseReference.AxpyReference(alpha, p.A, reference);
            // float64 math: alpha*x + y rounded once or twice (FMA or not): within 2 ulp of the magnitudes involved.
            var exact = p.A.Zip(p.B, (a, b) => ((double)alpha * a) + b).ToArray();
            var got = y.ToHost();
            var scale = p.A.Zip(p.B, (a, b) => Math.Abs((double)alpha * a) + Math.Abs(b)).ToArray();
            bool mathOk = got.Select((g, i) => Math.Abs(g - exact[i]) <= 2.5e-7 * scale[i] + 1e-30).All(b => b);
            return Close.All(got, reference, 1e-6, 1e-6, "vs reference").And(mathOk.Label("alpha*x + y within 2 ulp in float64"));
        });

    [Property(MaxTest = 30)]
    public Property Fill_writes_every_element() =>
        Prop.ForAll(Gens.Length.ToArbitrary(), Gens.Float().ToArbitrary(), (n, value) =>
        {
            var d = Devices.Cpu;
            using var y = d.Poisoned(n);
            Elementwise.Fill(d.Kernels, y.View<float>(), value);
            return y.ToHost().All(v => v == value).Label($"n = {n}");
        });

    [Property(MaxTest = 30)]
    public Property Broadcast_equals_reference_and_is_alpha_times_the_scalar() =>
        Prop.ForAll(Gens.Length.ToArbitrary(), Gens.Float().ToArbitrary(), Gens.Float().ToArbitrary(), (n, s, alpha) =>
        {
            var expected = new float[n];
            ElementwiseReference.BroadcastReference([s], alpha, expected);
            var result = expected.All(v => v == (float)((double)alpha * s)).Label("reference is the rounded product");
            foreach (var d in Devices.All)
            {
                using var scalar = d.Upload([s]);
                using var y = d.Poisoned(n);
                Elementwise.Broadcast(d.Kernels, scalar.View<float>(), alpha, y.View<float>());
                result = result.And(Close.All(y.ToHost(), expected, 0, 0, $"on {Devices.Describe(d)}"));
            }

            return result.Label($"n = {n}");
        });

    [Property(MaxTest = 20)]
    public Property In_place_add_equals_out_of_place() =>
        Prop.ForAll(Gens.VectorPair().ToArbitrary(), p =>
        {
            var d = Devices.Cpu;
            using var a = d.Upload(p.A);
            using var b = d.Upload(p.B);
            Elementwise.Add(d.Kernels, a.View<float>(), b.View<float>(), a.View<float>());
            return Close.All(a.ToHost(), p.A.Zip(p.B, (x, z) => x + z).ToArray(), 0, 0);
        });

    [Fact]
    public void Mismatched_lengths_name_both()
    {
        var d = Devices.Cpu;
        using var a = d.Upload(new float[5]);
        using var b = d.Upload(new float[6]);
        var e = Assert.Throws<ArgumentException>(() => Elementwise.Add(d.Kernels, a.View<float>(), b.View<float>(), a.View<float>()));
        Assert.Contains("5", e.Message);
        Assert.Contains("6", e.Message);
        Assert.Contains("Add", e.Message);
    }
}
