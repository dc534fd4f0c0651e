using IlgpuTrain.Training.Conformance;
using PermuteKernels = IlgpuTrain.Kernels.Permute;

namespace IlgpuTrain.Properties.Kernels;

/// <summary>
/// Permute, transpose, slice and gather (Kernels/Permute.cs; F.Permute, F.Transpose, F.Slice,
/// F.Gather): every backend equals a reference (permute's is PermuteReference, slice's and
/// gather's are written here), permuting back by the inverse is the identity, and every VJP equals central finite differences of the reference in float64.
/// </summary>
public class PermuteProperties
{
    // Copies only: bitwise equal.
    private const double Exact = 0;

    // The VJPs copy or add dOut; finite differences of these linear maps are exact up to float64 rounding.
    private const double FdAtol = 1e-6;
    private const double FdRtol = 1e-6;

    private static (int Outer, int Size, int Inner) Around(int[] dims, int axis) =>
        (dims.Take(axis).Aggregate(1, (a, b) => a * b), dims[axis], dims.Skip(axis + 1).Aggregate(1, (a, b) => a * b));

    /// <summary>y[o, j, i] = x[o, start + j, i].</summary>
    internal static T[] SliceReference<T>(T[] x, int[] dims, int axis, int start, int length)
    {
        var (outer, size, inner) = Around(dims, axis);
        var y = new T[outer * length * inner];
        for (int o = 0; o < outer; o++)
        {
            for (int j = 0; j < length; j++)
            {
                for (int i = 0; i < inner; i++)
                    y[(((o * length) + j) * inner) + i] = x[(((o * size) + start + j) * inner) + i];
            }
        }

        return y;
    }

    /// <summary>y[o, j, i] = x[o, indices[j], i].</summary>
    internal static T[] GatherReference<T>(T[] x, int[] dims, int axis, int[] indices)
    {
        var (outer, size, inner) = Around(dims, axis);
        int l = indices.Length;
        var y = new T[outer * l * inner];
        for (int o = 0; o < outer; o++)
        {
            for (int j = 0; j < l; j++)
            {
                for (int i = 0; i < inner; i++)
                    y[(((o * l) + j) * inner) + i] = x[(((o * size) + indices[j]) * inner) + i];
            }
        }

        return y;
    }

    private static int[] Inverse(int[] axes)
    {
        var inv = new int[axes.Length];
        for (int k = 0; k < axes.Length; k++)
            inv[axes[k]] = k;
        return inv;
    }

    private static Gen<(int[] Dims, int Axis, int Seed, int[] Axes)> PermuteCase =>
        from s in Gens.SeqShape
        from axes in Gens.Permutation(s.Dims.Length)
        select (s.Dims, s.Axis, s.Seed, axes);

    private static string Describe(int[] dims, int[] axes) => $"x [{string.Join(", ", dims)}], axes [{string.Join(", ", axes)}]";

    [Property(MaxTest = 80)]
    public Property Permute_equals_the_reference_on_every_backend_and_the_inverse_permutation_restores_x() =>
        Prop.ForAll(PermuteCase.ToArbitrary(), c =>
        {
            var x = GradCheck.Values(c.Seed, c.Dims.Aggregate(1, (a, b) => a * b));
            var expected = PermuteReference.ForwardReference(x, c.Dims, c.Axes);
            var yShape = new Shape(c.Axes.Select(a => c.Dims[a]).ToArray());
            var result = true.Label(Describe(c.Dims, c.Axes));
            foreach (var d in Devices.All)
            {
                using var step = d.BeginStep();
                var y = F.Permute(step.Upload(x, new Shape(c.Dims)), c.Axes);
                var back = F.Permute(y, Inverse(c.Axes));
                result = result.And((y.Shape == yShape).Label($"shape {y.Shape} vs {yShape}"))
                    .And(Close.All(y.ToHost(), expected, Exact, Exact, $"forward on {Devices.Describe(d)}"))
                    .And(Close.All(back.ToHost(), x, Exact, Exact, $"inverse(permute(x)) on {Devices.Describe(d)}"));

                // The backward kernel alone: dx = dy permuted back.
                using var dy = d.Upload(expected);
                using var dx = d.Poisoned(x.Length);
                PermuteKernels.Backward(d.Kernels, dy.View<float>(), dx.View<float>(), c.Dims, c.Axes);
                result = result.And(Close.All(dx.ToHost(), x, Exact, Exact, $"backward kernel on {Devices.Describe(d)}"));
            }

            return result;
        });

    [Property(MaxTest = 60)]
    public Property Slice_and_gather_equal_the_reference_on_every_backend() =>
        Prop.ForAll(Gens.SeqShape.ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), (s, pick) =>
        {
            int size = s.Dims[s.Axis];
            int start = size == 0 ? 0 : pick % (size + 1);
            int length = (size - start) == 0 ? 0 : (pick / 7) % (size - start + 1);
            var rand = new Random(s.Seed);
            var indices = size == 0 ? [] : Enumerable.Range(0, pick % 6).Select(_ => rand.Next(size)).ToArray();
            var x = GradCheck.Values(s.Seed, s.Dims.Aggregate(1, (a, b) => a * b));
            var result = true.Label($"x [{string.Join(", ", s.Dims)}], axis {s.Axis}, slice [{start}, {start + length}), indices [{string.Join(", ", indices)}]");
            foreach (var d in Devices.All)
            {
                using var step = d.BeginStep();
                var xt = step.Upload(x, new Shape(s.Dims));
                var sliced = F.Slice(xt, s.Axis, start, length);
                var gathered = F.Gather(xt, s.Axis - s.Dims.Length, step.Upload(indices, new Shape(indices.Length)));
                var sd = (int[])s.Dims.Clone();
                sd[s.Axis] = length;
                var gd = (int[])s.Dims.Clone();
                gd[s.Axis] = indices.Length;
                result = result.And((sliced.Shape == new Shape(sd)).Label($"slice shape {sliced.Shape}"))
                    .And((gathered.Shape == new Shape(gd)).Label($"gather shape {gathered.Shape}"))
                    .And(Close.All(sliced.ToHost(), SliceReference(x, s.Dims, s.Axis, start, length), Exact, Exact, $"slice on {Devices.Describe(d)}"))
                    .And(Close.All(gathered.ToHost(), GatherReference(x, s.Dims, s.Axis, indices), Exact, Exact, $"gather on {Devices.Describe(d)}"));
            }

            return result;
        });

    [Property(MaxTest = 50)]
    public Property Vjps_of_permute_transpose_slice_and_gather_match_finite_differences() =>
        Prop.ForAll(PermuteCase.Where(c => c.Dims.Aggregate(1, (a, b) => a * b) <= 150).ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), (c, pick) =>
        {
            int n = c.Dims.Aggregate(1, (a, b) => a * b);
            var x = new GradInput("x", new Shape(c.Dims), GradCheck.Values(c.Seed, n));
            int size = c.Dims[c.Axis], other = (c.Axis + 1 + (pick % c.Dims.Length)) % c.Dims.Length;
            int start = size == 0 ? 0 : pick % (size + 1), length = size - start == 0 ? 0 : (pick / 3) % (size - start + 1);
            var rand = new Random(c.Seed);
            // Repeated indices (at most 7 draws from the axis) check that the scatter sums.
            var indices = size == 0 ? [] : Enumerable.Range(0, 1 + (pick % 7)).Select(_ => rand.Next(size)).ToArray();
            var tAxes = Enumerable.Range(0, c.Dims.Length).ToArray();
            (tAxes[c.Axis], tAxes[other]) = (tAxes[other], tAxes[c.Axis]);
            int gl = n / Math.Max(size, 1) * indices.Length;
            var label = $"{Describe(c.Dims, c.Axes)}, axis {c.Axis}, other {other}, slice [{start}, {start + length}), indices [{string.Join(", ", indices)}]";
            return GradCheck.Check(Devices.Cpu, [x], (_, p) => F.Permute(p("x"), c.Axes), a => PermuteReference.ForwardReference(a[0], c.Dims, c.Axes), GradCheck.Values(c.Seed + 1, n), FdAtol, FdRtol).Label("permute")
                .And(GradCheck.Check(Devices.Cpu, [x], (_, p) => F.Transpose(p("x"), c.Axis, other), a => PermuteReference.ForwardReference(a[0], c.Dims, tAxes), GradCheck.Values(c.Seed + 2, n), FdAtol, FdRtol).Label("transpose"))
                .And(GradCheck.Check(Devices.Cpu, [x], (_, p) => F.Slice(p("x"), c.Axis, start, length), a => SliceReference(a[0], c.Dims, c.Axis, start, length), GradCheck.Values(c.Seed + 3, n / Math.Max(size, 1) * length), FdAtol, FdRtol).Label("slice"))
                .And(GradCheck.Check(Devices.Cpu, [x], (s, p) => F.Gather(p("x"), c.Axis, s.Upload(indices, new Shape(indices.Length))), a => GatherReference(a[0], c.Dims, c.Axis, indices), GradCheck.Values(c.Seed + 4, gl), FdAtol, FdRtol).Label("gather"))
                .Label(label);
        });

    [Theory]
    [InlineData(new[] { 64, 64, 4, 16 }, new[] { 0, 2, 1, 3 })] // attention's heads split: rows of 16 contiguous floats
    [InlineData(new[] { 64, 4, 64, 16 }, new[] { 0, 2, 3, 1 })] // the innermost axis moves: strided rows
    [InlineData(new[] { 3, 5, 7, 11, 13 }, new[] { 4, 3, 2, 1, 0 })] // odd sizes, reversed
    public void Large_permutes_split_over_threads_equal_the_reference_both_ways(int[] dims, int[] axes)
    {
        var x = GradCheck.Values(17, dims.Aggregate(1, (a, b) => a * b));
        var expected = PermuteReference.ForwardReference(x, dims, axes);
        foreach (var d in Devices.All)
        {
            using var xs = d.Upload(x);
            using var y = d.Poisoned(x.Length);
            PermuteKernels.Forward(d.Kernels, xs.View<float>(), y.View<float>(), dims, axes);
            Xunit.Assert.Equal(expected, y.ToHost());
            using var dx = d.Poisoned(x.Length);
            PermuteKernels.Backward(d.Kernels, y.View<float>(), dx.View<float>(), dims, axes);
            Xunit.Assert.Equal(x, dx.ToHost());
        }
    }

    [Fact]
    public void Gather_adds_the_gradients_of_repeated_indices()
    {
        // x (2, 3), gather columns [2, 0, 2]: dx[:, 2] gets two columns of dy, dx[:, 1] none.
        var x = new GradInput("x", new Shape(2, 3), [1, 2, 3, 4, 5, 6]);
        var (y, grads) = GradCheck.Vjp(Devices.Cpu, [x], (s, p) => F.Gather(p("x"), 1, s.Upload(new[] { 2, 0, 2 }, new Shape(3))), [1, 10, 100, 1000, 10000, 100000]);
        Xunit.Assert.Equal([3f, 1f, 3f, 6f, 4f, 6f], y);
        Xunit.Assert.Equal([10f, 0f, 101f, 10000f, 0f, 101000f], grads["x"]);
    }

    [Fact]
    public void Bad_arguments_name_the_shapes_and_the_fix()
    {
        using var step = Devices.Cpu.BeginStep();
        var x = step.Upload(new float[24], new Shape(2, 3, 4));
        var e = Xunit.Assert.Throws<ArgumentException>(() => F.Permute(x, 0, 0, 1));
        Xunit.Assert.Contains("permutation", e.Message);
        Xunit.Assert.Contains("(2, 3, 4)", e.Message);
        e = Xunit.Assert.Throws<ArgumentException>(() => F.Permute(x, 1, 0));
        Xunit.Assert.Contains("each axis of x once", e.Message);
        var big = step.Upload(new float[128], new Shape(2, 2, 2, 2, 2, 2, 2));
        e = Xunit.Assert.Throws<ArgumentException>(() => F.Permute(big, 6, 5, 4, 3, 2, 1, 0));
        Xunit.Assert.Contains("reshape", e.Message);
        var r = Xunit.Assert.Throws<ArgumentOutOfRangeException>(() => F.Slice(x, 1, 2, 2));
        Xunit.Assert.Contains("[2, 4)", r.Message);
        Xunit.Assert.Contains("(2, 3, 4)", r.Message);
        r = Xunit.Assert.Throws<ArgumentOutOfRangeException>(() => F.Gather(x, 2, step.Upload(new[] { 0, 4 }, new Shape(2))));
        Xunit.Assert.Contains("[0, 4)", r.Message);
        Xunit.Assert.Contains("(2, 3, 4)", r.Message);
        e = Xunit.Assert.Throws<ArgumentException>(() => F.Gather(x, 0, step.Upload(new[] { 0, 1 }, new Shape(1, 2))));
        Xunit.Assert.Contains("one-dimensional", e.Message);
    }
}
