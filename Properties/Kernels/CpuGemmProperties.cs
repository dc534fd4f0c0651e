namespace IlgpuTrain.Properties.Kernels;

/// <summary>
/// The managed SIMD GEMM of the CPU accelerator: equals the float64 reference, across the packing block boundaries (K past 256, N past
/// 512, M past the row split), for both micro-kernel widths, with BLAS beta semantics, and gives
/// bitwise the same result for any thread count.
/// </summary>
public unsafe class CpuGemmProperties
{
    // The same order-independent bound as GemmProperties: (K + 3) * 2u * sum |terms|.
    private const double Eps = 1.0 / (1 << 23);

    private static Gen<GemmCase> BlockCrossingCase =>
        from transA in Gen.Elements(false, true)
        from transB in Gen.Elements(false, true)
        from m in Gen.OneOf(Gen.Choose(1, 20), Gen.Elements(5, 6, 7, 12, 13, 61))
        from n in Gen.OneOf(Gen.Choose(1, 40), Gen.Elements(15, 16, 17, 31, 32, 33, 511, 513, 530))
        from k in Gen.OneOf(Gen.Choose(1, 30), Gen.Elements(255, 256, 257, 300))
        from alpha in Gen.Elements(1f, -0.5f, 2f)
        from beta in Gen.Elements(0f, 1f, 0.5f)
        from seed in Gen.Choose(0, 100000)
        select new GemmCase(transA, transB, m, n, k, alpha, beta, Gens.Random(seed, m * k, -2f, 2f), Gens.Random(seed ^ 0x5bd1e995, k * n, -2f, 2f), Gens.Random(~seed, m * n, -2f, 2f));

    [Property(MaxTest = 40)]
    public Property Managed_gemm_equals_reference_for_both_widths() =>
        Prop.ForAll(BlockCrossingCase.ToArbitrary(), Gen.Elements(false, true).ToArbitrary(), (g, use512) =>
            Within(Managed(g, threads: 2, use512), Exact(g), Bound(g), "managed vs float64").Label($"{g} use512 {use512}"));

    [Property(MaxTest = 20)]
    public Property The_result_is_bitwise_the_same_for_any_thread_count() =>
        Prop.ForAll(BlockCrossingCase.ToArbitrary(), Gen.Choose(2, 7).ToArbitrary(), (g, threads) =>
            Managed(g, 1, true).SequenceEqual(Managed(g, threads, true)).Label($"{g}: 1 thread vs {threads}"));

    [Property(MaxTest = 20)]
    public Property Beta_zero_does_not_read_C() =>
        Prop.ForAll(BlockCrossingCase.ToArbitrary(), g0 =>
        {
            var g = g0 with { Beta = 0f, C = Enumerable.Repeat(float.NaN, g0.M * g0.N).ToArray() };
            var got = Managed(g, 2, true);
            return got.All(float.IsFinite).Label("finite").And(Within(got, Exact(g), Bound(g), g.ToString()));
        });

    [Fact]
    public void The_public_launcher_takes_the_managed_path_on_the_cpu_accelerator()
    {
        // A 2 x 2 product through Gemm.Run on Devices.Cpu equals the managed kernel bit for bit.
        var g = new GemmCase(false, true, 7, 35, 300, 1f, 0f, Gens.Random(1, 7 * 300, -1f, 1f), Gens.Random(2, 300 * 35, -1f, 1f), new float[7 * 35]);
        var d = Devices.Cpu;
        var viaRun = Launch(d, g, (a, b, c) => Gemm.Run(d.Kernels, g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, a, b, g.Beta, c));
        Assert.Equal(Managed(g, d.Kernels.Launch.MaxGroups, CpuGemm.VectorWidth == 16), viaRun);
    }

    private static float[] Managed(GemmCase g, int threads, bool use512)
    {
        var c = (float[])g.C.Clone();
        fixed (float* a = g.A)
        fixed (float* b = g.B)
        fixed (float* cp = c)
            CpuGemm.Run(g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, a, b, g.Beta, cp, threads, use512);
        return c;
    }

    private static float[] Launch(Device d, GemmCase g, Action<ArrayView<float>, ArrayView<float>, ArrayView<float>> launch)
    {
        using var a = d.Upload(g.A);
        using var b = d.Upload(g.B);
        using var c = d.Upload(g.C);
        launch(a.View<float>(), b.View<float>(), c.View<float>());
        return c.ToHost();
    }

    private static double A(GemmCase g, int i, int p) => g.TransA ? g.A[(p * g.M) + i] : g.A[(i * g.K) + p];

    private static double B(GemmCase g, int p, int j) => g.TransB ? g.B[(j * g.K) + p] : g.B[(p * g.N) + j];

    private static double[] Exact(GemmCase g)
    {
        var y = new double[g.M * g.N];
        for (int i = 0; i < g.M; i++)
        {
            for (int j = 0; j < g.N; j++)
            {
                double s = 0;
                for (int p = 0; p < g.K; p++)
                    s += A(g, i, p) * B(g, p, j);
                y[(i * g.N) + j] = (g.Alpha * s) + (g.Beta == 0f ? 0 : g.Beta * (double)g.C[(i * g.N) + j]);
            }
        }

        return y;
    }

    private static double[] Bound(GemmCase g)
    {
        var y = new double[g.M * g.N];
        for (int i = 0; i < g.M; i++)
        {
            for (int j = 0; j < g.N; j++)
            {
                double s = 0;
                for (int p = 0; p < g.K; p++)
                    s += Math.Abs(A(g, i, p) * B(g, p, j));
                y[(i * g.N) + j] = (g.K + 3) * Eps * ((Math.Abs(g.Alpha) * s) + (g.Beta == 0f ? 0 : Math.Abs(g.Beta * g.C[(i * g.N) + j])));
            }
        }

        return y;
    }

    private static Property Within(float[] got, double[] expected, double[] bound, string what)
    {
        for (int i = 0; i < got.Length; i++)
        {
            double err = Math.Abs(got[i] - expected[i]);
            if (!(err <= bound[i] + 1e-30))
                return false.Label($"{what}: [{i}] = {got[i]:R}, expected {expected[i]:R}, |err| {err:E3} > bound {bound[i]:E3}");
        }

        return true.Label(what);
    }
}
