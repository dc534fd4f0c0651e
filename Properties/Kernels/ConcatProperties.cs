using ConcatKernels = IlgpuTrain.Kernels.Concat;

namespace IlgpuTrain.Properties.Kernels;

/// <summary>Concatenation (Kernels/Concat.cs, F.Concat): = reference, split(concat) = identity, VJP = finite differences, shape errors.</summary>
public class ConcatProperties
{
    // Copies only: bitwise equal.
    private const double Exact = 0;

    // The VJP is a copy of dOut; finite differences of a linear map are exact up to float64 rounding.
    private const double FdAtol = 1e-7;
    private const double FdRtol = 1e-7;

    private static (int Outer, int Inner, int[] Widths, float[][] Xs, Shape[] Shapes) Build((int[] Dims, int Axis, int[] Sizes, int Seed) c)
    {
        int outer = c.Dims.Take(c.Axis).Aggregate(1, (a, b) => a * b);
        int inner = c.Dims.Skip(c.Axis + 1).Aggregate(1, (a, b) => a * b);
        var widths = c.Sizes.Select(s => s * inner).ToArray();
        var shapes = c.Sizes.Select(s =>
        {
            var dims = (int[])c.Dims.Clone();
            dims[c.Axis] = s;
            return new Shape(dims);
        }).ToArray();
        var xs = shapes.Select((s, k) => GradCheck.Values(c.Seed + k, s.Length)).ToArray();
        return (outer, inner, widths, xs, shapes);
    }

    [Property(MaxTest = 40)]
    public Property Kernels_equal_the_reference_and_split_of_concat_is_the_identity() =>
        Prop.ForAll(Gens.ConcatCase.ToArbitrary(), c =>
        {
            var (outer, _, widths, xs, shapes) = Build(c);
            int yWidth = widths.Sum();
            var expected = new float[outer * yWidth];
            ConcatReference.ForwardReference(xs, widths, outer, expected);
            var result = true.Label($"dims [{string.Join(", ", c.Dims)}] axis {c.Axis} sizes [{string.Join(", ", c.Sizes)}]");
            foreach (var d in Devices.All)
            {
                using var y = d.Poisoned(outer * yWidth);
                int offset = 0;
                for (int k = 0; k < xs.Length; k++)
                {
                    using var x = d.Upload(xs[k]);
                    ConcatKernels.Forward(d.Kernels, x.View<float>(), y.View<float>(), outer, widths[k], yWidth, offset);
                    offset += widths[k];
                }

                var got = y.ToHost();
                result = result.And(Close.All(got, expected, Exact, Exact, $"forward on {Devices.Describe(d)}"));
                var split = ConcatReference.BackwardReference(got, widths, outer);
                offset = 0;
                for (int k = 0; k < xs.Length; k++)
                {
                    using var dx = d.Poisoned(xs[k].Length);
                    ConcatKernels.Backward(d.Kernels, y.View<float>(), dx.View<float>(), outer, widths[k], yWidth, offset);
                    offset += widths[k];
                    result = result.And(Close.All(dx.ToHost(), xs[k], Exact, Exact, $"split(concat) input {k} on {Devices.Describe(d)}"))
                        .And(Close.All(split[k], xs[k], Exact, Exact, $"reference split input {k}"));
                }
            }

            return result;
        });

    [Property(MaxTest = 30)]
    public Property Vjp_matches_finite_differences() =>
        Prop.ForAll(Gens.ConcatCase.ToArbitrary(), c =>
        {
            var (outer, inner, widths, xs, shapes) = Build(c);
            var inputs = shapes.Select((s, k) => new GradInput($"x{k}", s, xs[k])).ToArray();
            int yWidth = widths.Sum();
            // Independent of the kernel's offset arithmetic: index every output element by its coordinates.
            double[] Reference(double[][] a)
            {
                var y = new double[outer * yWidth];
                int total = c.Sizes.Sum();
                for (int o = 0; o < outer; o++)
                {
                    int along = 0;
                    for (int k = 0; k < a.Length; k++)
                    {
                        for (int s = 0; s < c.Sizes[k]; s++)
                        {
                            for (int i = 0; i < inner; i++)
                                y[(((o * total) + along + s) * inner) + i] = a[k][(((o * c.Sizes[k]) + s) * inner) + i];
                        }

                        along += c.Sizes[k];
                    }
                }

                return y;
            }

            int axis = c.Seed % 2 == 0 ? c.Axis : c.Axis - c.Dims.Length;
            return GradCheck.Check(Devices.Cpu, inputs, (_, p) => F.Concat(inputs.Select(i => p(i.Name)).ToList(), axis), Reference, GradCheck.Values(c.Seed + 99, (long)outer * yWidth), FdAtol, FdRtol)
                .Label($"dims [{string.Join(", ", c.Dims)}] axis {axis} sizes [{string.Join(", ", c.Sizes)}]");
        });

    [Fact]
    public void The_same_tensor_twice_gets_the_sum_of_both_slices()
    {
        var a = new float[] { 1, 2, 3, 4, 5, 6 };
        var dOut = Enumerable.Range(1, 12).Select(i => (float)i).ToArray();
        var (y, grads) = GradCheck.Vjp(Devices.Cpu, [new GradInput("a", new Shape(2, 3), a)], (_, p) => F.Concat([p("a"), p("a")], axis: 1), dOut);
        Assert.Equal(new float[] { 1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6 }, y);
        // y (2, 6) = [a | a]: da[i, j] = dOut[i, j] + dOut[i, j + 3].
        Assert.Equal(new float[] { 1 + 4, 2 + 5, 3 + 6, 7 + 10, 8 + 11, 9 + 12 }, grads["a"]);
    }

    [Fact]
    public void Shape_errors_name_the_offending_tensor_and_both_shapes()
    {
        using var step = Devices.Cpu.BeginStep();
        var a = step.Upload(new float[6], new Shape(2, 3));
        var b = step.Upload(new float[8], new Shape(4, 2));
        var c = step.Upload(new float[6], new Shape(6));
        var e = Assert.Throws<ArgumentException>(() => F.Concat([a, a, b], axis: 1));
        Assert.Contains("xs[2] is (4, 2)", e.Message, StringComparison.Ordinal);
        Assert.Contains("xs[0] is (2, 3)", e.Message, StringComparison.Ordinal);
        Assert.Contains("rank", Assert.Throws<ArgumentException>(() => F.Concat([a, c])).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => F.Concat([a, a], axis: 2));
        Assert.Throws<ArgumentOutOfRangeException>(() => F.Concat([a, a], axis: -3));
        Assert.Throws<ArgumentException>(() => F.Concat([]));
        Assert.Equal(new Shape(4, 3), F.Concat([a, a], axis: 0).Shape);
        Assert.Equal(new Shape(2, 6), F.Concat([a, a], axis: -1).Shape);

        var d = Devices.Cpu;
        using var x = d.Upload(new float[6]);
        using var y = d.Upload(new float[10]);
        var k = Assert.Throws<ArgumentOutOfRangeException>(() => ConcatKernels.Forward(d.Kernels, x.View<float>(), y.View<float>(), 2, 3, 5, 3));
        Assert.Contains("[3, 6)", k.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => ConcatKernels.Forward(d.Kernels, x.View<float>(), y.View<float>(), 2, 2, 5, 0));
    }
}
