namespace IlgpuTrain.Properties.Kernels;

/// <summary>
/// The fp16-operand GEMM: every path (managed CpuGemm on the CPU accelerator, ILGPU tiled on the
/// CPU accelerator with every group side) equals the float64 product of the half-rounded operands;
/// each equals the float GEMM of the widened operands bit for bit; BLAS beta/alpha semantics; and
/// RoundToHalf gives the BCL's nearest binary16, overflowing to inf, and its managed path equals the kernel.
/// </summary>
public unsafe class GemmHalfProperties
{
    // Order-independent float dot-product bound as GemmProperties: (K + 3) * 2u * sum |terms|, on
    // the widened operands (widening is exact, so the only rounding is the float accumulation).
    private const double Eps = 1.0 / (1 << 23);

    private const double Atol = 1e-30;

    private static readonly Device[] Both = [Devices.Cpu, Devices.CpuKernels];

    // Crosses CpuGemm's packing blocks (K past 256, N past 512, M past the row split of 6-row panels).
    private static Gen<GemmCase> BlockCrossingCase =>
        from transA in Gen.Elements(false, true)
        from transB in Gen.Elements(false, true)
        from m in Gen.OneOf(Gen.Choose(1, 20), Gen.Elements(5, 6, 7, 13))
        from n in Gen.OneOf(Gen.Choose(1, 40), Gen.Elements(15, 16, 17, 31, 32, 33, 513))
        from k in Gen.OneOf(Gen.Choose(1, 30), Gen.Elements(255, 256, 257))
        from alpha in Gen.Elements(1f, -0.5f, 2f)
        from beta in Gen.Elements(0f, 1f, 0.5f)
        from seed in Gen.Choose(0, 100000)
        select new GemmCase(transA, transB, m, n, k, alpha, beta, Gens.Random(seed, m * k, -2f, 2f), Gens.Random(seed ^ 0x5bd1e995, k * n, -2f, 2f), Gens.Random(~seed, m * n, -2f, 2f));

    // ---------------------------------------------------------------- (a) kernels == reference

    [Property(MaxTest = 40)]
    public Property Launcher_equals_reference_on_Cpu_managed_path() =>
        Prop.ForAll(Gens.GemmCase().ToArbitrary(), g =>
        {
            var d = Devices.Cpu;
            var got = Launch(d, g, (a, b, c) => GemmHalf.Run(d.Kernels, g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, a, b, g.Beta, c));
            return Within(got, Reference(g), Bound(g), $"Cpu launcher {g}");
        });

    // CpuKernels' 16-thread groups allow sides 1 to 4; sides 2 and 3 give tiles dividing none of 15/16/17.
    [Property(MaxTest = 30)]
    public Property Tiled_kernel_and_cpu_kernels_launcher_equal_reference_for_every_group_side() =>
        Prop.ForAll(Gens.GemmCase().ToArbitrary(), Gen.Choose(1, 4).ToArbitrary(), (g, side) =>
        {
            var d = Devices.CpuKernels;
            var viaLauncher = Launch(d, g, (a, b, c) => GemmHalf.Run(d.Kernels, g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, a, b, g.Beta, c));
            var forced = Launch(d, g, (a, b, c) => GemmHalf.Run(d.Kernels, g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, a, b, g.Beta, c, side));
            return Within(viaLauncher, Reference(g), Bound(g), $"launcher {g}")
                .And(Within(forced, Reference(g), Bound(g), $"tiled side {side} {g}"));
        });

    [Property(MaxTest = 30)]
    public Property Managed_half_gemm_equals_reference_across_packing_blocks_for_both_widths() =>
        Prop.ForAll(BlockCrossingCase.ToArbitrary(), Gen.Elements(false, true).ToArbitrary(), (g, use512) =>
            Within(Managed(g, 2, use512), Reference(g), Bound(g), $"{g} use512 {use512}"));

    // The half paths are the float kernels fed with widened operands: the same bits, for every path.
    [Property(MaxTest = 20)]
    public Property Every_path_equals_the_float_gemm_of_the_widened_operands_bitwise() =>
        Prop.ForAll(BlockCrossingCase.ToArbitrary(), Gen.Choose(1, 4).ToArbitrary(), (g, side) =>
        {
            var w = g with { A = Widen(Halves(g.A)), B = Widen(Halves(g.B)) };
            var cpu = Devices.Cpu;
            var sim = Devices.CpuKernels;
            var managedHalf = Managed(g, 2, true);
            var managedFloat = (float[])g.C.Clone();
            fixed (float* a = w.A)
            fixed (float* b = w.B)
            fixed (float* c = managedFloat)
                CpuGemm.Run(g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, a, b, g.Beta, c, 2, true);
            // The launcher's managed path widens the operands itself and runs CpuGemm's float overload at the machine's width.
            var launcherHalf = Launch(cpu, g, (a, b, c) => GemmHalf.Run(cpu.Kernels, g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, a, b, g.Beta, c));
            var launcherFloat = (float[])g.C.Clone();
            fixed (float* a = w.A)
            fixed (float* b = w.B)
            fixed (float* c = launcherFloat)
                CpuGemm.Run(g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, a, b, g.Beta, c, 2);
            var tiledHalf = Launch(sim, g, (a, b, c) => GemmHalf.Run(sim.Kernels, g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, a, b, g.Beta, c, side));
            var tiledFloat = LaunchFloat(sim, w, (a, b, c) => Gemm.Run(sim.Kernels, g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, a, b, g.Beta, c, side));
            return Bitwise(managedHalf, managedFloat, "managed").And(Bitwise(launcherHalf, launcherFloat, "launcher (managed)")).And(Bitwise(tiledHalf, tiledFloat, $"tiled side {side}")).Label(g.ToString());
        });

    // ---------------------------------------------------------------- (b) the math, independently

    // The reference against a product computed from the BCL's System.Half widening and explicit transposes.
    [Property(MaxTest = 30)]
    public Property Reference_equals_float64_product_of_the_bcl_widened_operands() =>
        Prop.ForAll(Gens.GemmCase().ToArbitrary(), g => Within(Reference(g), Exact(g), Bound(g), g.ToString()));

    // Operands that are not halves must be rounded by the cast: 1 + 2^-12 is 1 in fp16 (a tie, to even),
    // so (1 + 2^-12)^2 summed K times is K exactly; in float it would be K (1 + 2^-11) + ...
    [Fact]
    public void Operands_are_half_rounded_before_the_product()
    {
        const int K = 64;
        float v = 1f + (1f / 4096);
        var g = new GemmCase(false, false, 1, 1, K, 1f, 0f, Enumerable.Repeat(v, K).ToArray(), Enumerable.Repeat(v, K).ToArray(), [float.NaN]);
        foreach (var d in Both)
            Assert.Equal(K, Launch(d, g, (a, b, c) => GemmHalf.Run(d.Kernels, false, false, 1, 1, K, 1f, a, b, 0f, c))[0]);
        Assert.Equal(K, Managed(g, 1, true)[0]);
    }

    [Property(MaxTest = 20)]
    public Property Beta_zero_does_not_read_C_and_alpha_zero_does_not_read_A_B() =>
        Prop.ForAll(Gens.GemmCase().ToArbitrary(), g0 =>
        {
            var beta0 = g0 with { Beta = 0f, C = Nans(g0.M * g0.N) };
            var alpha0 = g0 with { Alpha = 0f, A = Nans(g0.A.Length), B = Nans(g0.B.Length) };
            var expected = alpha0.C.Select(c => alpha0.Beta == 0f ? 0f : (float)(alpha0.Beta * (double)c)).ToArray();
            if (alpha0.Beta == 0f)
                alpha0 = alpha0 with { C = Nans(alpha0.C.Length) };
            return Both.Select(d =>
            {
                var got = Launch(d, beta0, (a, b, c) => GemmHalf.Run(d.Kernels, g0.TransA, g0.TransB, g0.M, g0.N, g0.K, g0.Alpha, a, b, 0f, c));
                var scaled = Launch(d, alpha0, (a, b, c) => GemmHalf.Run(d.Kernels, g0.TransA, g0.TransB, g0.M, g0.N, g0.K, 0f, a, b, alpha0.Beta, c));
                return got.All(float.IsFinite).Label($"{d}: beta 0 output finite")
                    .And(Within(got, Exact(beta0), Bound(beta0), $"{d} beta 0 {beta0}"))
                    .And(Close.All(scaled, expected, 0, 0, $"{d} alpha 0 {alpha0}"));
            }).Aggregate((p, q) => p.And(q));
        });

    // ---------------------------------------------------------------- RoundToHalf

    [Property(MaxTest = 40)]
    public Property RoundToHalf_equals_reference_and_the_bcl_nearest_half() =>
        Prop.ForAll(Gens.HalfCastInput.ToArbitrary(), x =>
            Both.Select(d =>
            {
                using var t = d.Upload(x);
                GemmHalf.RoundToHalfInPlace(d.Kernels, t.View<float>());
                var got = t.ToHost();
                var reference = (float[])x.Clone();
                GemmHalfReferences.RoundToHalfReference(reference);
                var bcl = x.Select(v => (float)(System.Half)v).ToArray();
                return Bitwise(got, bcl, $"{d} kernel vs BCL").And(Bitwise(reference, bcl, "reference vs BCL"));
            }).Aggregate((p, q) => p.And(q)));

    [Property(MaxTest = 30)]
    public Property RoundToHalf_managed_equals_the_ilgpu_kernel_bitwise() =>
        Prop.ForAll(Gen.OneOf(Gen.Elements(0, 1, 7, 8, 9, 13, 255, 256, 257, (1 << 18) + 5), Gen.Choose(0, 600)).ToArbitrary(), Gen.Choose(int.MinValue, int.MaxValue).ToArbitrary(), (n, seed) =>
        {
            // Half-range values with specials, and arbitrary bit patterns (NaN payloads, every exponent).
            var rng = new Random(seed);
            var x = Gens.HalfCastValues(seed, n);
            for (int i = 0; i < n; i += 3)
                x[i] = BitConverter.UInt32BitsToSingle((uint)rng.NextInt64(1L << 32));
            return KernelParity.Same($"RoundToHalfInPlace n = {n}", [x], [], (h, f, _) => GemmHalf.RoundToHalfInPlace(h, f[0]));
        });

    // 65504 is the largest half; 65519.99 rounds down to it and 65520 (halfway to 2^16) up to inf;
    // 2^-24 is the smallest subnormal and 2^-26 (below half of it) flushes to 0; 1 + 2^-11 ties to 1.
    [Fact]
    public void RoundToHalf_boundaries()
    {
        float[] x = [65504f, 65519.99f, 65520f, -1e6f, 1f / (1 << 24), 1f / (1 << 26), 1f + (1f / 2048), -0f, 300f * 300f];
        float[] expected = [65504f, 65504f, float.PositiveInfinity, float.NegativeInfinity, 1f / (1 << 24), 0f, 1f, -0f, float.PositiveInfinity];
        foreach (var d in Both)
        {
            using var t = d.Upload(x);
            GemmHalf.RoundToHalfInPlace(d.Kernels, t.View<float>());
            Assert.Equal(expected.Select(BitConverter.SingleToUInt32Bits), t.ToHost().Select(BitConverter.SingleToUInt32Bits));
        }
    }

    // ---------------------------------------------------------------- argument checks

    [Fact]
    public void Wrong_lengths_are_named()
    {
        var d = Devices.Cpu;
        using var a12 = Tensor.FromHost(d, new Half[12].AsSpan(), new Shape(12));
        using var b20 = Tensor.FromHost(d, new Half[20].AsSpan(), new Shape(20));
        using var c12 = d.Upload(new float[12]);
        var e = Assert.Throws<ArgumentException>(() => GemmHalf.Run(d.Kernels, false, false, 3, 4, 5, 1f, a12.View<Half>(), b20.View<Half>(), 0f, c12.View<float>()));
        Assert.Contains("GemmHalf: a has 12 elements but op(A) (M, K) = (3, 5)", e.Message);
        e = Assert.Throws<ArgumentException>(() => GemmHalf.Run(d.Kernels, false, true, 4, 3, 3, 1f, a12.View<Half>(), b20.View<Half>(), 0f, c12.View<float>()));
        Assert.Contains("b has 20 elements but op(B) (K, N) = (3, 3) with transB", e.Message);
        using var c15 = d.Upload(new float[15]);
        var r = Assert.Throws<ArgumentOutOfRangeException>(() => GemmHalf.Run(d.Kernels, false, false, 3, 5, 4, 1f, a12.View<Half>(), b20.View<Half>(), 0f, c15.View<float>(), 17));
        Assert.Contains("GemmHalf", r.Message);
    }

    // ---------------------------------------------------------------- helpers

    private static Half[] Halves(float[] x) => x.Select(CastReference.ToHalfReference).ToArray();

    // Widening through the BCL's System.Half, independent of Cast.
    private static float[] Widen(Half[] h) => h.Select(v => (float)BitConverter.UInt16BitsToHalf((ushort)Interop.FloatAsInt(v))).ToArray();

    private static float[] Launch(Device d, GemmCase g, Action<ArrayView<Half>, ArrayView<Half>, ArrayView<float>> launch)
    {
        using var a = Tensor.FromHost(d, Halves(g.A).AsSpan(), new Shape(g.A.Length));
        using var b = Tensor.FromHost(d, Halves(g.B).AsSpan(), new Shape(g.B.Length));
        using var c = d.Upload(g.C);
        launch(a.View<Half>(), b.View<Half>(), c.View<float>());
        return c.ToHost();
    }

    private static float[] LaunchFloat(Device d, GemmCase g, Action<ArrayView<float>, ArrayView<float>, ArrayView<float>> launch)
    {
        using var a = d.Upload(g.A);
        using var b = d.Upload(g.B);
        using var c = d.Upload(g.C);
        launch(a.View<float>(), b.View<float>(), c.View<float>());
        return c.ToHost();
    }

    private static float[] Managed(GemmCase g, int threads, bool use512)
    {
        var c = (float[])g.C.Clone();
        var ha = Halves(g.A);
        var hb = Halves(g.B);
        fixed (Half* a = ha)
        fixed (Half* b = hb)
        fixed (float* cp = c)
            CpuGemm.Run(g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, a, b, g.Beta, cp, threads, use512);
        return c;
    }

    private static float[] Reference(GemmCase g)
    {
        var c = (float[])g.C.Clone();
        GemmHalfReferences.GemmHalfReference(g.TransA, g.TransB, g.M, g.N, g.K, g.Alpha, Halves(g.A), Halves(g.B), g.Beta, c);
        return c;
    }

    // op(A) (M, K) and op(B) (K, N) as plain row-major matrices of the widened halves.
    private static (float[] OpA, float[] OpB) Operands(GemmCase g)
    {
        var a = Widen(Halves(g.A));
        var b = Widen(Halves(g.B));
        return (g.TransA ? Transpose(a, g.K, g.M) : a, g.TransB ? Transpose(b, g.N, g.K) : b);
    }

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

    private static Property Bitwise(float[] got, float[] expected, string what)
    {
        if (got.Length != expected.Length)
            return false.Label($"{what}: length {got.Length} versus {expected.Length}");
        for (int i = 0; i < got.Length; i++)
        {
            if (BitConverter.SingleToUInt32Bits(got[i]) != BitConverter.SingleToUInt32Bits(expected[i]))
                return false.Label($"{what}: [{i}] = {got[i]:R} but expected {expected[i]:R} bit for bit");
        }
        return true.Label(what);
    }

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

    private static float[] Nans(int n) => Enumerable.Repeat(float.NaN, n).ToArray();
}
