namespace IlgpuTrain.Properties.Functional;

/// <summary>F.MatMul, F.Linear and F.BiasAdd: forward equals a float64 reference and the tape's VJP equals central finite differences.</summary>
public class LinearProperties
{
    private const double Atol = 2e-4;
    private const double Rtol = 2e-3;

    private static Gen<(int M, int K, int N, bool TA, bool TB, int Seed)> MatMulCase =>
        from m in Gen.Choose(0, 9)
        from k in Gen.Choose(0, 9)
        from n in Gen.Choose(0, 9)
        from ta in Gen.Elements(false, true)
        from tb in Gen.Elements(false, true)
        from seed in Gen.Choose(0, 100000)
        select (m, k, n, ta, tb, seed);

    private static Gen<(int N, int D, int F, int Seed)> LinearCase =>
        from n in Gen.Choose(1, 7)
        from d in Gen.Choose(1, 9)
        from f in Gen.Choose(1, 8)
        from seed in Gen.Choose(0, 100000)
        select (n, d, f, seed);

    [Property(MaxTest = 40)]
    public Property MatMul_vjp_matches_finite_differences_for_every_transpose() =>
        Prop.ForAll(MatMulCase.ToArbitrary(), c =>
        {
            var aShape = c.TA ? new Shape(c.K, c.M) : new Shape(c.M, c.K);
            var bShape = c.TB ? new Shape(c.N, c.K) : new Shape(c.K, c.N);
            var inputs = new[]
            {
                new GradInput("a", aShape, GradCheck.Values(c.Seed, aShape.Length)),
                new GradInput("b", bShape, GradCheck.Values(c.Seed + 1, bShape.Length)),
            };
            var dOut = GradCheck.Values(c.Seed + 2, (long)c.M * c.N);
            double[] Reference(double[][] x)
            {
                var y = new double[c.M * c.N];
                for (int i = 0; i < c.M; i++)
                {
                    for (int j = 0; j < c.N; j++)
                    {
                        double s = 0;
                        for (int p = 0; p < c.K; p++)
                            s += x[0][c.TA ? (p * c.M) + i : (i * c.K) + p] * x[1][c.TB ? (j * c.K) + p : (p * c.N) + j];
                        y[(i * c.N) + j] = s;
                    }
                }

                return y;
            }

            var result = true.Label($"M {c.M} K {c.K} N {c.N} transA {c.TA} transB {c.TB}");
            foreach (var d in Devices.All)
                result = result.And(GradCheck.Check(d, inputs, (_, p) => F.MatMul(p("a"), p("b"), c.TA, c.TB), Reference, dOut, Atol, Rtol).Label($"on {Devices.Describe(d)}"));
            return result;
        });

    [Property(MaxTest = 30)]
    public Property Linear_vjp_matches_finite_differences() =>
        Prop.ForAll(LinearCase.ToArbitrary(), c =>
        {
            var (n, d, f, seed) = c;
            var inputs = new[]
            {
                new GradInput("x", new Shape(n, d), GradCheck.Values(seed, n * d)),
                new GradInput("weight", new Shape(f, d), GradCheck.Values(seed + 1, f * d)),
                new GradInput("bias", new Shape(f), GradCheck.Values(seed + 2, f)),
            };
            double[] Reference(double[][] x)
            {
                var y = new double[n * f];
                for (int i = 0; i < n; i++)
                {
                    for (int o = 0; o < f; o++)
                    {
                        double s = x[2][o];
                        for (int p = 0; p < d; p++)
                            s += x[0][(i * d) + p] * x[1][(o * d) + p];
                        y[(i * f) + o] = s;
                    }
                }

                return y;
            }

            return GradCheck.Check(Devices.Cpu, inputs, (_, p) => F.Linear(p("x"), p("weight"), p("bias")), Reference, GradCheck.Values(seed + 3, n * f), Atol, Rtol)
                .Label($"(N, D, F) = ({n}, {d}, {f})");
        });
}
