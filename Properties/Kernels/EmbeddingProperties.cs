using EmbeddingKernels = IlgpuTrain.Kernels.Embedding;
using EmbeddingLayer = IlgpuTrain.Layers.Embedding;

namespace IlgpuTrain.Properties.Kernels;

/// <summary>Embedding (Kernels/Embedding.cs, F.Embedding, Layers/Embedding.cs): gather = reference, deterministic scatter-add backward, padding and range errors.</summary>
public class EmbeddingProperties
{
    // The gather copies floats: bitwise equal.
    private const double Exact = 0;

    // Backward sums at most 64 rows in float32, in index order, against a float64 sum of values in [-1, 1].
    private const double SumAtol = 1e-5;
    private const double SumRtol = 1e-5;

    [Property(MaxTest = 40)]
    public Property Forward_and_backward_kernels_equal_the_reference() =>
        Prop.ForAll(Gens.EmbeddingCase.ToArbitrary(), Gen.Elements<int?>(null, 0, -1, 3).ToArbitrary(), (c, pad) =>
        {
            var (v, dim, idx, seed) = c;
            int? padding = pad is int p && p < v && p >= -v ? (p < 0 ? v + p : p) : null;
            int n = idx.Length;
            var w = GradCheck.Values(seed, (long)v * dim);
            var dy = GradCheck.Values(seed + 1, (long)n * dim);
            var yRef = new float[n * dim];
            EmbeddingReference.ForwardReference(idx, w, yRef, v, dim);
            var dwRef = new double[v * dim];
            EmbeddingReference.BackwardReference(idx, dy, dwRef, v, dim, padding);
            var result = true.Label($"V {v} D {dim} N {n} padding {padding}");
            foreach (var d in Devices.All)
            {
                using var ti = d.Upload(idx);
                using var tw = d.Upload(w);
                using var ty = d.Poisoned(n * dim);
                using var tdy = d.Upload(dy);
                using var tdw = d.Poisoned(v * dim);
                using var errors = d.Upload(new[] { -7, -7 });
                EmbeddingKernels.Forward(d.Kernels, ti.View<int>(), tw.View<float>(), ty.View<float>(), v, dim, errors.View<int>());
                EmbeddingKernels.Backward(d.Kernels, ti.View<int>(), tdy.View<float>(), tdw.View<float>(), v, dim, padding);
                result = result.And(Close.All(ty.ToHost(), yRef, Exact, Exact, $"forward on {Devices.Describe(d)}"))
                    .And(Close.All(tdw.ToHost(), dwRef, SumAtol, SumRtol, $"backward on {Devices.Describe(d)}"))
                    .And(errors.ToHost<int>().SequenceEqual([0, 0]).Label("no range errors"));
            }

            return result;
        });

    // The managed loop and the ILGPU kernel run one element body: bit for bit the same rows, sums
    // and error flag, out-of-range indices included (one index in five is pushed outside [0, V)).
    [Property(MaxTest = 30)]
    public Property Managed_path_equals_the_kernels_bitwise() =>
        Prop.ForAll(Gens.EmbeddingCase.ToArbitrary(), Gen.Elements<int?>(null, 0, -1).ToArbitrary(), (c, pad) =>
        {
            var (v, dim, idx0, seed) = c;
            int n = idx0.Length;
            var idx = idx0.Select((k, i) => i % 5 == 2 ? (i % 2 == 0 ? -1 - k : v + k) : k).ToArray();
            int? padding = v > 0 ? pad : null;
            float[] w = GradCheck.Values(seed, (long)v * dim), dy = GradCheck.Values(seed + 1, (long)n * dim);
            return KernelParity.Same($"V {v} D {dim} indices [{string.Join(", ", idx)}] padding {padding}", [w, dy, new float[n * dim], new float[v * dim]], [idx, new int[EmbeddingKernels.ErrorsLength]], (h, f, i) =>
            {
                EmbeddingKernels.Forward(h, i[0], f[0], f[2], v, dim, i[1]);
                EmbeddingKernels.Backward(h, i[0], f[1], f[3], v, dim, padding);
            });
        });

    [Property(MaxTest = 30)]
    public Property Vjp_matches_finite_differences() =>
        Prop.ForAll(Gens.EmbeddingCase.ToArbitrary(), c =>
        {
            var (v, dim, idx, seed) = c;
            int n = idx.Length;
            // indices (2, N/2) when N is even: a batch of sequences, output (2, N/2, D).
            var iShape = n % 2 == 0 && n > 0 ? new Shape(2, n / 2) : new Shape(n);
            double[] Reference(double[][] a)
            {
                var y = new double[n * dim];
                for (int i = 0; i < n; i++)
                {
                    for (int j = 0; j < dim; j++)
                        y[(i * dim) + j] = a[0][(idx[i] * dim) + j];
                }

                return y;
            }

            return GradCheck.Check(Devices.Cpu, [new GradInput("weight", new Shape(v, dim), GradCheck.Values(seed, (long)v * dim))], (step, p) => F.Embedding(step.Upload(idx, iShape), p("weight")), Reference, GradCheck.Values(seed + 1, (long)n * dim), SumAtol, SumRtol)
                .Label($"V {v} D {dim} indices {iShape}");
        });

    [Property(MaxTest = 20)]
    public Property Repeated_indices_sum_their_gradients_and_the_padding_row_gets_none() =>
        Prop.ForAll(Gen.Choose(2, 9).ToArbitrary(), Gen.Choose(1, 40).ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), (v, n, seed) =>
        {
            const int dim = 3;
            int k = seed % v;
            int pad = (k + 1) % v;
            // Every index is k or the padding row.
            var idx = Enumerable.Range(0, n).Select(i => i % 3 == 2 ? pad : k).ToArray();
            var w = GradCheck.Values(seed, v * dim);
            var dOut = GradCheck.Values(seed + 1, n * dim);
            var (y, grads) = GradCheck.Vjp(Devices.Cpu, [new GradInput("weight", new Shape(v, dim), w)], (step, p) => F.Embedding(step.Upload(idx, new Shape(n)), p("weight"), pad), dOut);
            var dw = grads["weight"];
            var result = true.Label($"V {v} N {n} k {k} padding {pad}");
            for (int j = 0; j < dim; j++)
            {
                double sum = Enumerable.Range(0, n).Where(i => idx[i] == k).Sum(i => (double)dOut[(i * dim) + j]);
                result = result.And(Close.Scalar(dw[(k * dim) + j], sum, SumAtol, SumRtol, $"dW[{k}, {j}] = sum of its rows"))
                    .And((dw[(pad * dim) + j] == 0f).Label($"dW[padding {pad}, {j}] = {dw[(pad * dim) + j]}"));
                if (n > 2)
                    result = result.And((y[(2 * dim) + j] == w[(pad * dim) + j]).Label("the padding row is still looked up"));
            }

            for (int r = 0; r < v; r++)
            {
                if (r != k)
                    result = result.And(Enumerable.Range(0, dim).All(j => dw[(r * dim) + j] == 0f).Label($"row {r} unused"));
            }

            return result;
        });

    [Fact]
    public void Out_of_range_indices_set_the_flag_give_NaN_rows_and_make_the_op_throw()
    {
        var d = Devices.Cpu;
        int[] idx = [1, 0, 5, 2, -1, 9];
        const int v = 4, dim = 2;
        using var ti = d.Upload(idx);
        using var tw = d.Upload(GradCheck.Values(1, v * dim));
        using var ty = d.Poisoned(idx.Length * dim);
        using var errors = d.Upload(new[] { 0, 0 });
        EmbeddingKernels.Forward(d.Kernels, ti.View<int>(), tw.View<float>(), ty.View<float>(), v, dim, errors.View<int>());
        var flag = errors.ToHost<int>();
        Assert.Equal(3, flag[0]);
        Assert.Equal(2, idx.Length - flag[1]);
        var y = ty.ToHost();
        Assert.True(float.IsNaN(y[4]) && float.IsNaN(y[5]) && float.IsNaN(y[8]) && float.IsNaN(y[11]));
        Assert.False(float.IsNaN(y[0]) || float.IsNaN(y[7]));

        using var step = d.BeginStep();
        var w = step.Upload(GradCheck.Values(1, v * dim), new Shape(v, dim));
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => F.Embedding(step.Upload(idx, new Shape(2, 3)), w));
        Assert.Contains("indices[2]", e.Message, StringComparison.Ordinal);
        Assert.Contains("= 5", e.Message, StringComparison.Ordinal);
        Assert.Contains("[0, 4)", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => F.Embedding(step.Upload(new[] { 0 }, new Shape(1)), w, paddingIdx: 4));
        Assert.Throws<ArgumentException>(() => F.Embedding(step.Upload([0f], new Shape(1)), w));
    }

    [Fact]
    public void Layer_inits_N01_with_a_zero_padding_row_and_looks_up_int_inputs()
    {
        var d = Devices.Cpu;
        const int v = 500, dim = 16;
        var layer = new EmbeddingLayer(v, dim, PaddingIdx: -2);
        Assert.Equal(new Shape(7, dim), layer.OutputShape(new Shape(7)));
        var (ps, state) = layer.Init(d, new Shape(3), Rng.Create(11));
        using (ps)
        using (state)
        {
            var w = ps.ToHost()["weight"].Data;
            Assert.Equal(v * dim, w.Length);
            Assert.All(w.Skip((v - 2) * dim).Take(dim), x => Assert.Equal(0f, x));
            var rest = w.Take((v - 2) * dim).Select(x => (double)x).ToArray();
            double mean = rest.Average();
            double var = rest.Select(x => (x - mean) * (x - mean)).Average();
            // N(0, 1) over ~8000 draws: the mean's sigma is 0.011, the variance's about 0.016.
            Assert.InRange(mean, -0.06, 0.06);
            Assert.InRange(var, 0.92, 1.08);

            using var step = d.BeginStep();
            int[] idx = [3, 498, 0, 3, 7, 499];
            var y = layer.Apply(Params.Bind(ps, step), state, step.Upload(idx, new Shape(2, 3)), Mode.Eval, Rng.Create(0)).Y;
            Assert.Equal(new Shape(2, 3, dim), y.Shape);
            var got = y.ToHost();
            for (int i = 0; i < idx.Length; i++)
                Assert.Equal(w.Skip(idx[i] * dim).Take(dim), got.Skip(i * dim).Take(dim));
        }
    }
}
