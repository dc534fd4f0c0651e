namespace IlgpuTrain.Properties.Functional;

/// <summary>
/// F.BatchedMatMul and Gemm.RunBatched: every backend equals a float64 reference, the tiled GPU
/// kernel's batch grid equals it too, the batched CPU path equals one GEMM per matrix bit for bit,
/// and the VJP equals central finite differences of the reference.
/// </summary>
public class BatchedMatMulProperties
{
    // Values in [-1, 1] and K <= 17: float rounding of a dot product stays below K * 2^-24 * K.
    private const double Atol = 1e-5;
    private const double Rtol = 1e-5;

    // Finite differences of a bilinear map in float64 are exact to ~1e-9; the float forward limits.
    private const double FdAtol = 1e-4;
    private const double FdRtol = 1e-3;

    /// <summary>C[q] = op(A[q]) op(B[q]) in float64 with plain loops: the spec.</summary>
    internal static double[] Reference(double[] a, double[] b, int batch, int m, int n, int k, bool transA, bool transB, double alpha = 1, double beta = 0, double[]? c0 = null)
    {
        var c = new double[batch * m * n];
        for (int q = 0; q < batch; q++)
        {
            for (int i = 0; i < m; i++)
            {
                for (int j = 0; j < n; j++)
                {
                    double s = 0;
                    for (int p = 0; p < k; p++)
                    {
                        double av = transA ? a[(q * m * k) + (p * m) + i] : a[(q * m * k) + (i * k) + p];
                        double bv = transB ? b[(q * k * n) + (j * k) + p] : b[(q * k * n) + (p * n) + j];
                        s += av * bv;
                    }

                    int at = (q * m * n) + (i * n) + j;
                    c[at] = (alpha * s) + (beta == 0 ? 0 : beta * c0![at]);
                }
            }
        }

        return c;
    }

    private static double[] D(float[] v) => v.Select(x => (double)x).ToArray();

    [Property(MaxTest = 60)]
    public Property Every_backend_equals_the_float64_reference() =>
        Prop.ForAll(Gens.BmmCase.ToArbitrary(), c =>
        {
            int q = c.Count;
            var a = GradCheck.Values(c.Seed, c.AShape.Length);
            var b = GradCheck.Values(c.Seed + 1, c.BShape.Length);
            var expected = Reference(D(a), D(b), q, c.M, c.N, c.K, c.TransA, c.TransB);
            var result = true.Label(c.ToString());
            foreach (var d in Devices.All)
            {
                using var step = d.BeginStep();
                var y = F.BatchedMatMul(step.Upload(a, c.AShape), step.Upload(b, c.BShape), c.TransA, c.TransB);
                result = result.And(Assert(y.Shape == new Shape([.. c.Batch, c.M, c.N]), $"shape {y.Shape}"))
                    .And(Close.All(y.ToHost(), expected, Atol, Rtol, $"forward on {Devices.Describe(d)}"));
            }

            return result;
        });

    [Property(MaxTest = 40)]
    public Property Tiled_kernel_over_a_batch_grid_equals_the_reference_for_every_group_side() =>
        Prop.ForAll(Gens.BmmCase.ToArbitrary(), Gen.Elements(1, 2, 3, 4).ToArbitrary(), Gens.GemmBeta.ToArbitrary(), (c, side, beta) =>
        {
            int q = c.Count;
            var a = GradCheck.Values(c.Seed, c.AShape.Length);
            var b = GradCheck.Values(c.Seed + 1, c.BShape.Length);
            var c0 = GradCheck.Values(c.Seed + 2, (long)q * c.M * c.N);
            const float alpha = -1.5f;
            var expected = Reference(D(a), D(b), q, c.M, c.N, c.K, c.TransA, c.TransB, alpha, beta, D(c0));
            var d = Devices.CpuKernels;
            using var ta = d.Upload(a);
            using var tb = d.Upload(b);
            using var tc = d.Upload(c0);
            Gemm.RunBatched(d.Kernels, c.TransA, c.TransB, q, c.M, c.N, c.K, alpha, ta.View<float>(), tb.View<float>(), beta, tc.View<float>(), side);
            return Close.All(tc.ToHost(), expected, Atol, Rtol, "tiled batch").Label($"{c}, side {side}, beta {beta:R}");
        });

    [Property(MaxTest = 40)]
    public Property Batched_cpu_path_equals_one_gemm_per_matrix_bit_for_bit() =>
        Prop.ForAll(Gens.BmmCase.ToArbitrary(), c =>
        {
            int q = c.Count;
            var a = GradCheck.Values(c.Seed, c.AShape.Length);
            var b = GradCheck.Values(c.Seed + 1, c.BShape.Length);
            var d = Devices.Cpu;
            using var ta = d.Upload(a);
            using var tb = d.Upload(b);
            using var batched = d.Poisoned(q * c.M * c.N);
            using var single = d.Poisoned(q * c.M * c.N);
            Gemm.RunBatched(d.Kernels, c.TransA, c.TransB, q, c.M, c.N, c.K, 1f, ta.View<float>(), tb.View<float>(), 0f, batched.View<float>());
            long sa = (long)c.M * c.K, sb = (long)c.K * c.N, sc = (long)c.M * c.N;
            for (int i = 0; i < q; i++)
                Gemm.Run(d.Kernels, c.TransA, c.TransB, c.M, c.N, c.K, 1f, ta.View<float>().SubView(i * sa, sa), tb.View<float>().SubView(i * sb, sb), 0f, single.View<float>().SubView(i * sc, sc));
            return Close.All(batched.ToHost(), single.ToHost(), 0, 0, "batched vs per-matrix").Label(c.ToString());
        });

    [Property(MaxTest = 40)]
    public Property Vjp_matches_finite_differences_of_the_reference() =>
        Prop.ForAll(Gens.BmmCase.Where(c => c.Count * Math.Max(c.M * c.K, c.K * c.N) <= 300).ToArbitrary(), c =>
        {
            int q = c.Count;
            var a = new GradInput("a", c.AShape, GradCheck.Values(c.Seed, c.AShape.Length));
            var b = new GradInput("b", c.BShape, GradCheck.Values(c.Seed + 1, c.BShape.Length));
            var dOut = GradCheck.Values(c.Seed + 2, (long)q * c.M * c.N);
            return GradCheck.Check(Devices.Cpu, [a, b], (_, p) => F.BatchedMatMul(p("a"), p("b"), c.TransA, c.TransB), x => Reference(x[0], x[1], q, c.M, c.N, c.K, c.TransA, c.TransB), dOut, FdAtol, FdRtol)
                .Label(c.ToString());
        });

    [Property(MaxTest = 30)]
    public Property Under_float16_each_product_has_the_bits_of_matmul_under_float16_forward_and_backward() =>
        Prop.ForAll(Gens.BmmCase.Where(c => c.Count >= 1).ToArbitrary(), c =>
        {
            int q = c.Count;
            // Values beyond fp16's precision (and some beyond its range after the product) so rounding shows.
            var inputs = new[]
            {
                new GradInput("a", c.AShape, GradCheck.Values(c.Seed, c.AShape.Length, 300)),
                new GradInput("b", c.BShape, GradCheck.Values(c.Seed + 1, c.BShape.Length, 3)),
            };
            var dOut = GradCheck.Values(c.Seed + 2, (long)q * c.M * c.N, 1e-3);
            int ar = c.AShape[^2], br = c.BShape[^2];

            // The reference: one F.MatMul per matrix, on slices of the operands, concatenated.
            Tensor PerMatrix(Tensor a, Tensor b)
            {
                var a2 = F.Reshape(a, q * ar, c.AShape[^1]);
                var b2 = F.Reshape(b, q * br, c.BShape[^1]);
                var products = Enumerable.Range(0, q).Select(i => F.MatMul(F.Slice(a2, 0, i * ar, ar), F.Slice(b2, 0, i * br, br), c.TransA, c.TransB)).ToList();
                return F.Reshape(F.Concat(products, 0), [.. c.Batch, c.M, c.N]);
            }

            var result = true.Label(c.ToString());
            foreach (var d in Devices.All)
            {
                var batched = Float16Vjp(d, inputs, p => F.BatchedMatMul(p("a"), p("b"), c.TransA, c.TransB), dOut);
                var single = Float16Vjp(d, inputs, p => PerMatrix(p("a"), p("b")), dOut);
                string on = Devices.Describe(d);
                result = result.And(Close.All(batched.Y, single.Y, 0, 0, $"forward on {on}"))
                    .And(Close.All(batched.Grads["a"], single.Grads["a"], 0, 0, $"dA on {on}"))
                    .And(Close.All(batched.Grads["b"], single.Grads["b"], 0, 0, $"dB on {on}"));
            }

            return result;
        });

    private static (float[] Y, Dictionary<string, float[]> Grads) Float16Vjp(Device device, GradInput[] inputs, Func<Func<string, Tensor>, Tensor> op, float[] dOut)
    {
        using var tree = ParamTree.FromHost(device, inputs.Select(i => KeyValuePair.Create(i.Name, (i.Shape.ToArray(), i.Values))));
        using var step = device.BeginStep();
        step.Precision = Precision.Float16;
        float[]? y = null;
        var (_, grads) = Autodiff.ValueAndGrad(step, tree, p =>
        {
            var outTensor = op(name => p[name]);
            y = outTensor.ToHost();
            return F.Sum(F.Mul(outTensor, step.Upload(dOut, outTensor.Shape)));
        });
        using (grads)
        {
            var host = grads.ToHost();
            return (y!, inputs.ToDictionary(i => i.Name, i => host[i.Name].Data));
        }
    }

    [Fact]
    public void Shape_errors_name_both_shapes_and_the_fix()
    {
        using var step = Devices.Cpu.BeginStep();
        var a = step.Upload(new float[2 * 3 * 4], new Shape(2, 3, 4));
        var b = step.Upload(new float[2 * 5 * 6], new Shape(2, 5, 6));
        var e = Xunit.Assert.Throws<ArgumentException>(() => F.BatchedMatMul(a, b));
        Xunit.Assert.Contains("(2, 3, 4)", e.Message);
        Xunit.Assert.Contains("(2, 5, 6)", e.Message);
        Xunit.Assert.Contains("inner dimensions", e.Message);
        var b3 = step.Upload(new float[3 * 4 * 6], new Shape(3, 4, 6));
        e = Xunit.Assert.Throws<ArgumentException>(() => F.BatchedMatMul(a, b3));
        Xunit.Assert.Contains("batch dimensions", e.Message);
        Xunit.Assert.Contains("no broadcasting", e.Message);
        var b2 = step.Upload(new float[4 * 6], new Shape(4, 6));
        e = Xunit.Assert.Throws<ArgumentException>(() => F.BatchedMatMul(a, b2));
        Xunit.Assert.Contains("rank", e.Message);
    }

    private static Property Assert(bool ok, string what) => ok.Label(what);
}
