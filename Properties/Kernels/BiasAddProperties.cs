namespace IlgpuTrain.Properties.Kernels;

/// <summary>Bias add: the kernel equals its reference; each element is the correctly rounded sum x + b[column].</summary>
public class BiasAddProperties
{
    [Property(MaxTest = 40)]
    public Property Forward_equals_reference() =>
        Prop.ForAll(Gens.BiasAddInput.ToArbitrary(), p =>
        {
            var expected = new float[p.X.Length];
            BiasAddReference.ForwardReference(p.X, p.B, expected, p.N, p.F);
            var result = true.Label($"(N, F) = ({p.N}, {p.F})");
            foreach (var d in Devices.All)
                result = result.And(Close.All(Run(d, p.X, p.B, p.N, p.F, inPlace: false), expected, 0, 0, $"on {Devices.Describe(d)}"));
            return result;
        });

    [Property(MaxTest = 40)]
    public Property Each_element_is_the_rounded_sum_with_its_column_bias() =>
        Prop.ForAll(Gens.BiasAddInput.ToArbitrary(), p =>
        {
            var y = Run(Devices.Cpu, p.X, p.B, p.N, p.F, inPlace: false);
            // A float64 sum of two floats rounded to float is the float sum (double has over 2*24+2 bits).
            var exact = new double[y.Length];
            for (int row = 0; row < p.N; row++)
            {
                for (int col = 0; col < p.F; col++)
                    exact[(row * p.F) + col] = (float)((double)p.X[(row * p.F) + col] + p.B[col]);
            }

            return Close.All(y, exact, 0, 0, "x + b[column]").Label($"(N, F) = ({p.N}, {p.F})");
        });

    [Property(MaxTest = 20)]
    public Property In_place_equals_out_of_place() =>
        Prop.ForAll(Gens.BiasAddInput.ToArbitrary(), p =>
            Close.All(Run(Devices.Cpu, p.X, p.B, p.N, p.F, inPlace: true), Run(Devices.Cpu, p.X, p.B, p.N, p.F, inPlace: false), 0, 0, "y aliasing x")
                .Label($"(N, F) = ({p.N}, {p.F})"));

    [Property(MaxTest = 40)]
    public Property Channel_bias_equals_reference_and_adds_b_of_the_channel() =>
        Prop.ForAll(Gens.Dim.ToArbitrary(), Gens.Dim.ToArbitrary(), Gen.Choose(0, 20).ToArbitrary(), (n, c, s) =>
        {
            var x = GradCheck.Values(n + (31 * c) + (7 * s), n * c * s, 100);
            var b = GradCheck.Values(c + 1000, c, 100);
            var expected = new float[x.Length];
            BiasAddReference.ForwardChannelsReference(x, b, expected, n, c, s);
            var result = true.Label($"(N, C, S) = ({n}, {c}, {s})");
            foreach (var d in Devices.All)
            {
                using var xv = d.Upload(x);
                using var bv = d.Upload(b);
                using var yv = d.Upload(new float[x.Length]);
                BiasAdd.ForwardChannels(d.Kernels, xv.View<float>(), bv.View<float>(), yv.View<float>(), n, c, s);
                result = result.And(Close.All(yv.ToHost<float>(), expected, 0, 0, $"on {Devices.Describe(d)}"));
            }

            // Independent of the reference: the float64 sum rounded once, indexed by channel.
            var exact = new double[x.Length];
            for (int i = 0; i < x.Length; i++)
                exact[i] = (float)((double)x[i] + b[(i / s) % c]);
            return result.And(Close.All(expected, exact, 0, 0, "x + b[channel]"));
        });

    [Fact]
    public void Zero_input_gives_the_bias_in_every_row()
    {
        float[] b = [1.5f, -2f, 3.25f];
        var y = Run(Devices.Cpu, new float[4 * 3], b, 4, 3, inPlace: false);
        for (int row = 0; row < 4; row++)
            Assert.Equal(b, y.AsSpan(row * 3, 3).ToArray());
    }

    [Fact]
    public void Wrong_shapes_name_the_op_the_argument_and_both_sizes()
    {
        var d = Devices.Cpu;
        using var x = d.Upload(new float[12]);
        using var b = d.Upload(new float[5]);
        using var y = d.Upload(new float[12]);
        var e = Assert.Throws<ArgumentException>(() => BiasAdd.Forward(d.Kernels, x.View<float>(), b.View<float>(), y.View<float>(), 3, 4));
        Assert.Contains("BiasAdd.Forward", e.Message);
        Assert.Contains("b has 5", e.Message);
        Assert.Contains("(F) = (4)", e.Message);
        e = Assert.Throws<ArgumentException>(() => BiasAdd.Forward(d.Kernels, x.View<float>(), b.View<float>(), y.View<float>(), 4, 5));
        Assert.Contains("x has 12", e.Message);
        Assert.Contains("(N, F) = (4, 5)", e.Message);
        Assert.Contains("20", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => BiasAdd.Forward(d.Kernels, x.View<float>(), b.View<float>(), y.View<float>(), -1, 5));
    }

    private static float[] Run(Device d, float[] x, float[] b, int n, int f, bool inPlace)
    {
        using var tx = d.Upload(x);
        using var tb = d.Upload(b);
        using var ty = d.Poisoned(x.Length);
        var output = inPlace ? tx : ty;
        BiasAdd.Forward(d.Kernels, tx.View<float>(), tb.View<float>(), output.View<float>(), n, f);
        return output.ToHost();
    }
}
