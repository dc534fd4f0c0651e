namespace IlgpuTrain.Properties.Kernels;

/// <summary>
/// GEMM: the managed CpuGemm (through the launcher) and the tiled ILGPU kernel equal the float64 reference for every transpose combination and
/// edge shape; BLAS beta = 0 / alpha = 0 semantics; known products; transposed storage agrees.
/// </summary>
public class GemmProperties
{
    // Per-element bound |got - exact| <= (K + 3) * Eps * (|alpha| sum_p |op(A)[i,p] op(B)[p,j]| + |beta c|).
    // A float dot product of length K is within K*u of the exact sum of |terms| in ANY summation
    // order (Higham, Accuracy and Stability of Numerical Algorithms, 3.1), u = 2^-24; the kernels
    // sum in K slices, possibly with FMA contraction, so only an order-independent bound is
    // valid. The +3 covers alpha * acc + beta * c and the reference's own rounding to float, and
    // Eps = 2u leaves a factor 2 of margin. An indexing bug is off by O(|terms|), far above this.
    private const double Eps = 1.0 / (1 << 23);

    // Nothing below float's normal range arises from operands in [-2, 2]; this only keeps an
    // all-zero bound from rejecting -0 versus +0 style noise.
    private const double Atol = 1e-30;

    private static readonly Device[] Both = [Devices.Cpu, Devices.CpuKernels];

    // ---------------------------------------------------------------- (a) kernel == reference

    [Property(MaxTest = 60)]
    public Property Cpu_launcher_equals_reference_on_Cpu() =>
        Prop.ForAll(Gens.GemmCase().ToArbitrary(), g => KernelEqualsReference(Devices.Cpu, g));

    // The launcher runs CpuGemm on both CPU backends; the tiled kernel is forced below.
    [Property(MaxTest = 30)]
    public Property Cpu_launcher_equals_reference_on_the_cpu_kernels_backend() =>
        Prop.ForAll(Gens.GemmCase().ToArbitrary(), g => KernelEqualsReference(Devices.CpuKernels, g));

    [Property(MaxTest = 40)]
    public Property Tiled_kernel_equals_reference_on_the_cpu_accelerator() =>
        Prop.ForAll(Gens.GemmCase().ToArbitrary(), g =>
        {
            var d = Devices.CpuKernels;
            var got = Launch(d, g, (a, b, c) => Gemm.Run(d.Kernels, g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, a, b, g.Beta, c, Gemm.GroupSide(d.Accelerator)));
            return Within(got, Reference(g), Bound(g), g.ToString());
        });

    // The tiled kernel reads its group side at run time; CpuKernels' 16-thread groups allow sides 1 to 4
    // (tiles 4 to 16 wide), and real GPUs get 16. Sides 2 and 3 give tiles that divide none of 15/16/17.
    [Property(MaxTest = 24)]
    public Property Tiled_kernel_is_correct_for_every_group_side() =>
        Prop.ForAll(Gens.GemmCase().ToArbitrary(), Gen.Choose(1, 4).ToArbitrary(), (g, side) =>
        {
            var d = Devices.CpuKernels;
            var got = Launch(d, g, (a, b, c) => Gemm.Run(d.Kernels, g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, a, b, g.Beta, c, side));
            return Within(got, Reference(g), Bound(g), $"{g} side {side}");
        });

    [Property(MaxTest = 30)]
    public Property Reference_equals_float64_product_of_materialized_transposes() =>
        Prop.ForAll(Gens.GemmCase().ToArbitrary(), g => Within(Reference(g), Exact(g), Bound(g), g.ToString()));

    // ---------------------------------------------------------------- BLAS alpha/beta semantics

    [Property(MaxTest = 20)]
    public Property Beta_zero_does_not_read_C() =>
        Prop.ForAll(Gens.GemmCase().ToArbitrary(), g0 =>
        {
            var g = g0 with { Beta = 0f, C = Nans(g0.M * g0.N) };
            var exact = Exact(g);
            return Both.Select(d =>
            {
                var got = Run(d, g);
                bool finite = got.All(float.IsFinite);
                return finite.Label($"{d}: every element finite").And(Within(got, exact, Bound(g), $"{d} {g}"));
            }).Aggregate((p, q) => p.And(q));
        });

    [Property(MaxTest = 20)]
    public Property Alpha_zero_or_K_zero_gives_beta_C_without_reading_A_B() =>
        Prop.ForAll(Gens.GemmCase().ToArbitrary(), Gen.Elements(false, true).ToArbitrary(), (g0, zeroK) =>
        {
            // A and B are NaN when they have elements: reading them would show.
            var g = zeroK
                ? g0 with { K = 0, A = [], B = [] }
                : g0 with { Alpha = 0f, A = Nans(g0.A.Length), B = Nans(g0.B.Length) };
            if (g.Beta == 0f)
                g = g with { C = Nans(g.C.Length) };
            // beta * c rounds once in float, exactly as (float)(beta * (double)c).
            var expected = g.C.Select(c => g.Beta == 0f ? 0f : (float)(g.Beta * (double)c)).ToArray();
            return Both.Select(d => Close.All(Run(d, g), expected, 0, 0, $"{d} {g}")).Aggregate((p, q) => p.And(q));
        });

    // ---------------------------------------------------------------- (b) known values

    // (1 2 3; 4 5 6)(7 8; 9 10; 11 12) = (58 64; 139 154), and with alpha 2, beta -1 over C = 1s:
    // (115 127; 277 307). Small integers: every variant must be exact.
    [Fact]
    public void Hand_computed_2x3_times_3x2()
    {
        float[] a = [1, 2, 3, 4, 5, 6];
        float[] b = [7, 8, 9, 10, 11, 12];
        foreach (var d in Both)
        {
            foreach (var (transA, transB) in new[] { (false, false), (false, true), (true, false), (true, true) })
            {
                var sa = transA ? Transpose(a, 2, 3) : a;
                var sb = transB ? Transpose(b, 3, 2) : b;
                var plain = Run(d, new GemmCase(transA, transB, 2, 2, 3, 1f, 0f, sa, sb, Nans(4)));
                Assert.Equal(new[] { 58f, 64f, 139f, 154f }, plain);
                var scaled = Run(d, new GemmCase(transA, transB, 2, 2, 3, 2f, -1f, sa, sb, [1f, 1f, 1f, 1f]));
                Assert.Equal(new[] { 115f, 127f, 277f, 307f }, scaled);
            }
        }
    }

    // Every product with the identity is a single exact term plus exact zeros: equality is exact.
    [Property(MaxTest = 30)]
    public Property Identity_is_neutral_on_both_sides() =>
        Prop.ForAll(Gens.Matrix(-2f, 2f).ToArbitrary(), Gen.Elements(false, true).ToArbitrary(), (x, trans) =>
        {
            int r = x.Rows, c = x.Cols;
            var stored = trans ? Transpose(x.Data, r, c) : x.Data;
            return Both.Select(d =>
            {
                // X (r, c) * I (c, c) = X; the identity is its own transpose, so transB is free.
                var right = Run(d, new GemmCase(trans, !trans, r, c, c, 1f, 0f, stored, Identity(c), Nans(r * c)));
                // I (r, r) * X (r, c) = X.
                var left = Run(d, new GemmCase(trans, trans, r, c, r, 1f, 0f, Identity(r), stored, Nans(r * c)));
                return Close.All(right, x.Data, 0, 0, $"{d}: X I, X {r}x{c}, stored transposed {trans}")
                    .And(Close.All(left, x.Data, 0, 0, $"{d}: I X, X {r}x{c}, stored transposed {trans}"));
            }).Aggregate((p, q) => p.And(q));
        });

    // (A^T)^T = A: transA on A^T stored equals no transA on A, and likewise for B.
    [Property(MaxTest = 30)]
    public Property Transposed_storage_gives_the_same_product() =>
        Prop.ForAll(Gens.GemmCase().ToArbitrary(), g0 =>
        {
            var g = g0 with { TransA = false, TransB = false };
            var bound = Bound(g);
            var viaAt = g with { TransA = true, A = Transpose(g.A, g.M, g.K) };
            var viaBt = g with { TransB = true, B = Transpose(g.B, g.K, g.N) };
            return Both.Select(d =>
            {
                var plain = Run(d, g);
                return Within(Run(d, viaAt), plain, bound, $"{d} {viaAt} vs {g}")
                    .And(Within(Run(d, viaBt), plain, bound, $"{d} {viaBt} vs {g}"));
            }).Aggregate((p, q) => p.And(q));
        });

    // ---------------------------------------------------------------- argument checks

    [Fact]
    public void Wrong_lengths_and_dimensions_are_named()
    {
        var d = Devices.Cpu;
        using var a12 = d.Upload(new float[12]);
        using var b20 = d.Upload(new float[20]);
        using var c12 = d.Upload(new float[12]);
        using var c10 = d.Upload(new float[10]);

        // M = 3, N = 4, K = 5: A needs 15.
        var e = Assert.Throws<ArgumentException>(() => Gemm.Run(d.Kernels, false, false, 3, 4, 5, 1f, a12.View<float>(), b20.View<float>(), 0f, c12.View<float>()));
        Assert.Contains("Gemm: a has 12 elements but op(A) (M, K) = (3, 5)", e.Message);
        Assert.Contains("needs 15", e.Message);

        e = Assert.Throws<ArgumentException>(() => Gemm.Run(d.Kernels, true, false, 3, 4, 5, 1f, a12.View<float>(), b20.View<float>(), 0f, c12.View<float>()));
        Assert.Contains("transA, A stored (K, M) = (5, 3)", e.Message);

        // M = 4, N = 3, K = 3: A 12 fine, B needs 9.
        e = Assert.Throws<ArgumentException>(() => Gemm.Run(d.Kernels, false, true, 4, 3, 3, 1f, a12.View<float>(), b20.View<float>(), 0f, c12.View<float>()));
        Assert.Contains("b has 20 elements but op(B) (K, N) = (3, 3) with transB", e.Message);
        Assert.Contains("needs 9", e.Message);

        // M = 3, N = 4, K = 4: C needs 12, has 10.
        using var b16 = d.Upload(new float[16]);
        e = Assert.Throws<ArgumentException>(() => Gemm.Run(d.Kernels, false, false, 3, 4, 4, 1f, a12.View<float>(), b16.View<float>(), 0f, c10.View<float>()));
        Assert.Contains("c has 10 elements but C (M, N) = (3, 4) needs 12", e.Message);

        var r = Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.Run(d.Kernels, false, false, -1, 4, 5, 1f, a12.View<float>(), b20.View<float>(), 0f, c12.View<float>()));
        Assert.Contains("Gemm", r.Message);
    }

    // ---------------------------------------------------------------- helpers

    private static Property KernelEqualsReference(Device d, GemmCase g) =>
        Within(Run(d, g), Reference(g), Bound(g), $"{d} {g}");

    private static float[] Run(Device d, GemmCase g) =>
        Launch(d, g, (a, b, c) => Gemm.Run(d.Kernels, g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, a, b, g.Beta, c));

    private static float[] Launch(Device d, GemmCase g, Action<ArrayView<float>, ArrayView<float>, ArrayView<float>> launch)
    {
        using var a = d.Upload(g.A);
        using var b = d.Upload(g.B);
        using var c = d.Upload(g.C);
        launch(a.View<float>(), b.View<float>(), c.View<float>());
        return c.ToHost();
    }

    private static float[] Reference(GemmCase g)
    {
        var c = (float[])g.C.Clone();
        GemmReferences.GemmReference(g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, g.A, g.B, g.Beta, c);
        return c;
    }

    // Independent of the reference's indexing: transpose the operands explicitly, then multiply
    // plain row-major matrices in float64.
    private static double[] Exact(GemmCase g)
    {
        var (opA, opB) = Operands(g);
        var result = new double[g.M * g.N];
        for (int i = 0; i < g.M; i++)
        {
            for (int j = 0; j < g.N; j++)
            {
                double s = 0;
                for (int p = 0; p < g.K; p++)
                    s += (double)opA[(i * g.K) + p] * opB[(p * g.N) + j];
                result[(i * g.N) + j] = (g.Alpha * s) + (g.Beta == 0f ? 0 : g.Beta * (double)g.C[(i * g.N) + j]);
            }
        }
        return result;
    }

    private static double[] Bound(GemmCase g)
    {
        var (opA, opB) = Operands(g);
        var bound = new double[g.M * g.N];
        for (int i = 0; i < g.M; i++)
        {
            for (int j = 0; j < g.N; j++)
            {
                double s = 0;
                for (int p = 0; p < g.K; p++)
                    s += Math.Abs((double)opA[(i * g.K) + p] * opB[(p * g.N) + j]);
                double prior = g.Beta == 0f ? 0 : Math.Abs(g.Beta * (double)g.C[(i * g.N) + j]);
                bound[(i * g.N) + j] = Atol + ((g.K + 3) * Eps * ((Math.Abs(g.Alpha) * s) + prior));
            }
        }
        return bound;
    }

    // op(A) as a plain row-major (M, K) matrix and op(B) as (K, N).
    private static (float[] OpA, float[] OpB) Operands(GemmCase g) =>
        (g.TransA ? Transpose(g.A, g.K, g.M) : g.A, g.TransB ? Transpose(g.B, g.N, g.K) : g.B);

    private static Property Within(float[] got, IReadOnlyList<double> expected, double[] bound, string what)
    {
        if (got.Length != expected.Count)
            return false.Label($"{what}: length {got.Length} versus expected {expected.Count}");
        for (int i = 0; i < got.Length; i++)
        {
            double err = Math.Abs(got[i] - expected[i]);
            if (!(err <= bound[i]))
                return false.Label($"{what}: [{i}] = {got[i]:R} but expected {expected[i]:R} (|err| {err:E3} > bound {bound[i]:E3})");
        }
        return true.Label(what);
    }

    private static Property Within(float[] got, float[] expected, double[] bound, string what) =>
        Within(got, expected.Select(v => (double)v).ToArray(), bound, what);

    // x stored (rows, cols) -> x^T stored (cols, rows).
    private static float[] Transpose(float[] x, int rows, int cols)
    {
        var t = new float[x.Length];
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < cols; c++)
                t[(c * rows) + r] = x[(r * cols) + c];
        }
        return t;
    }

    private static float[] Identity(int n)
    {
        var e = new float[n * n];
        for (int i = 0; i < n; i++)
            e[(i * n) + i] = 1f;
        return e;
    }

    private static float[] Nans(int n) => Enumerable.Repeat(float.NaN, n).ToArray();
}
