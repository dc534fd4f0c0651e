using IlgpuTrain.Training.Conformance;

namespace IlgpuTrain.Properties.Kernels;

/// <summary>
/// Softmax and log-softmax: kernels equal their float64 references, and the math holds
/// independently (rows sum to 1, shift invariance, log-softmax = log(softmax), stability at
/// logits of 1e4, backward = central finite differences of a float64 forward written here).
/// </summary>
public class SoftmaxProperties
{
    // Shared with the conformance suite (the reasoning is there).
    private const double SoftmaxAtol = Tolerances.Softmax.ForwardAtol;
    private const double SoftmaxRtol = Tolerances.Softmax.ForwardRtol;

    // Log-softmax values reach -20 - log C; (x - m) rounds to ulp(20) ~ 2e-6 and log(s) adds ~1e-7.
    private const double LogSoftmaxAtol = 1e-5;
    private const double LogSoftmaxRtol = 1e-6;

    // Backward: a float dot product (softmax) or sum (log-softmax) of up to 257 terms of |dy| <= 2;
    // its rounding error grows with the row's absolute sum, so the tolerance does too (see RowScale).
    private const double BackwardAtolPerUnit = 2e-6;
    private const double BackwardRtol = 1e-5;

    // Finite differences: step 1e-5 on a float64 forward has O(h^2) ~ 1e-10 truncation error; the
    // kernel's float results dominate, a few ulp of gradients of order 1.
    private const double FiniteDifferenceStep = 1e-5;
    private const double FiniteDifferenceAtol = 2e-5;
    private const double FiniteDifferenceRtol = 1e-4;

    // Logits of magnitude 1e4: (x - m) rounds to ulp(2e4) ~ 2e-3 relative 1e-7 of the result.
    private const double LargeLogitRtol = 2e-7;
    private const double LargeLogitAtol = 1e-4;

    private delegate void RowLauncher(KernelHost host, ArrayView<float> x, ArrayView<float> y, int n, int c);

    private delegate void RowReference(ReadOnlySpan<float> x, Span<float> y, int n, int c);

    private delegate void BackwardLauncher(KernelHost host, ArrayView<float> y, ArrayView<float> dy, ArrayView<float> dx, int n, int c);

    private delegate void BackwardReference(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx, int n, int c);

    [Property(MaxTest = 40)]
    public Property Softmax_forward_equals_reference() =>
        ForwardEqualsReference(Softmax.Forward, SoftmaxReference.ForwardReference, SoftmaxAtol, SoftmaxRtol);

    [Property(MaxTest = 40)]
    public Property LogSoftmax_forward_equals_reference() =>
        ForwardEqualsReference(LogSoftmax.Forward, LogSoftmaxReference.ForwardReference, LogSoftmaxAtol, LogSoftmaxRtol);

    [Property(MaxTest = 40)]
    public Property Softmax_backward_equals_reference() =>
        BackwardEqualsReference(Softmax.Forward, Softmax.Backward, SoftmaxReference.BackwardReference);

    [Property(MaxTest = 40)]
    public Property LogSoftmax_backward_equals_reference() =>
        BackwardEqualsReference(LogSoftmax.Forward, LogSoftmax.Backward, LogSoftmaxReference.BackwardReference);

    [Property(MaxTest = 40)]
    public Property Softmax_rows_sum_to_one_and_lie_in_the_unit_interval() =>
        Prop.ForAll(Gens.RowMatrix(-30f, 30f).ToArbitrary(), x =>
        {
            var y = Run(Softmax.Forward, x);
            var bad = new List<string>();
            for (int i = 0; i < x.Rows; i++)
            {
                double sum = 0;
                for (int j = 0; j < x.Cols; j++)
                {
                    float v = y[(i * x.Cols) + j];
                    if (!(v >= 0f && v <= 1f))
                        bad.Add($"y[{i},{j}] = {v:R} outside [0, 1]");
                    sum += v;
                }

                // Each of C float roundings of terms <= 1 adds at most half an ulp of 1.
                if (Math.Abs(sum - 1) > 1e-6 + (1.2e-7 * x.Cols))
                    bad.Add($"row {i} sums to {sum:R}");
            }

            return (bad.Count == 0).Label($"{x}: {string.Join("; ", bad.Take(3))}");
        });

    // Logits on a 2^-10 grid in [-10, 10] plus an integer shift in [-1000, 1000] stay exact in
    // float (21 significant bits), so x - max is bitwise the same and so is the softmax: exact equality.
    [Property(MaxTest = 30)]
    public Property Softmax_is_invariant_to_adding_a_constant_to_a_row() =>
        Prop.ForAll(Gens.RowMatrix().ToArbitrary(), Gen.Choose(int.MinValue, int.MaxValue).ToArbitrary(), (x, seed) =>
        {
            var grid = x.Data.Select(v => MathF.Round(v * 1024f) / 1024f).ToArray();
            var rng = new Random(seed);
            var shifted = (float[])grid.Clone();
            for (int i = 0; i < x.Rows; i++)
            {
                int a = rng.Next(-1000, 1001);
                for (int j = 0; j < x.Cols; j++)
                    shifted[(i * x.Cols) + j] += a;
            }

            var y = Run(Softmax.Forward, x with { Data = grid });
            var ys = Run(Softmax.Forward, x with { Data = shifted });
            return Close.All(ys, y, 0, 0, "softmax(x + a) vs softmax(x)").Label(x.ToString());
        });

    [Property(MaxTest = 40)]
    public Property LogSoftmax_is_the_log_of_softmax() =>
        Prop.ForAll(Gens.RowMatrix().ToArbitrary(), x =>
        {
            // Logits in [-10, 10] keep softmax >= e^-20 / 257, far from underflow, so log(y) loses
            // only y's relative error (~1e-6) as an absolute error.
            var logOfSoftmax = Run(Softmax.Forward, x).Select(v => Math.Log(v)).ToArray();
            var ls = Run(LogSoftmax.Forward, x);
            return Close.All(ls, logOfSoftmax, LogSoftmaxAtol, LogSoftmaxRtol, "log-softmax vs log(softmax)").Label(x.ToString());
        });

    [Property(MaxTest = 30)]
    public Property LogSoftmax_and_softmax_are_stable_for_logits_of_magnitude_1e4() =>
        Prop.ForAll(Gens.RowMatrix(-1e4f, 1e4f).ToArbitrary(), x =>
        {
            // float64 by hand: exp(1e4) overflows even float64, so the shift is what makes this finite.
            var expected = new double[x.Data.Length];
            for (int i = 0; i < x.Rows; i++)
            {
                var row = x.Data.AsSpan(i * x.Cols, x.Cols);
                double m = double.NegativeInfinity;
                foreach (float v in row)
                    m = Math.Max(m, v);
                double lse = m + Math.Log(row.ToArray().Sum(v => Math.Exp(v - m)));
                for (int j = 0; j < x.Cols; j++)
                    expected[(i * x.Cols) + j] = row[j] - lse;
            }

            var ls = Run(LogSoftmax.Forward, x);
            var sm = Run(Softmax.Forward, x);
            bool finite = ls.All(float.IsFinite) && sm.All(float.IsFinite);
            return finite.Label("all finite")
                .And(Close.All(ls, expected, LargeLogitAtol, LargeLogitRtol, "log-softmax vs float64"))
                .And(Close.All(sm, expected.Select(Math.Exp).ToArray(), SoftmaxAtol, SoftmaxRtol, "softmax vs float64"))
                .Label(x.ToString());
        });

    [Property(MaxTest = 40)]
    public Property Softmax_backward_matches_finite_differences() =>
        BackwardMatchesFiniteDifferences(Softmax.Forward, Softmax.Backward, SoftmaxFloat64);

    [Property(MaxTest = 40)]
    public Property LogSoftmax_backward_matches_finite_differences() =>
        BackwardMatchesFiniteDifferences(LogSoftmax.Forward, LogSoftmax.Backward, LogSoftmaxFloat64);

    [Property(MaxTest = 20)]
    public Property Forward_and_backward_may_run_in_place() =>
        Prop.ForAll(Gens.RowMatrixWithGradient().ToArbitrary(), p =>
        {
            var (x, dy) = p;
            var d = Devices.Cpu;
            var y = Run(Softmax.Forward, x);
            var dx = RunBackward(Softmax.Backward, y, dy, x.Rows, x.Cols);
            using var buf = d.Upload(x.Data);
            Softmax.Forward(d.Kernels, buf.View<float>(), buf.View<float>(), x.Rows, x.Cols);
            var yInPlace = buf.ToHost();
            using var g = d.Upload(dy);
            Softmax.Backward(d.Kernels, buf.View<float>(), g.View<float>(), g.View<float>(), x.Rows, x.Cols);
            return Close.All(yInPlace, y, 0, 0, "forward y = x")
                .And(Close.All(g.ToHost(), dx, 0, 0, "backward dx = dy"))
                .Label(x.ToString());
        });

    [Fact]
    public void Empty_shapes_launch_nothing()
    {
        var d = Devices.Cpu;
        using var e = d.Upload(Array.Empty<float>());
        var v = e.View<float>();
        Softmax.Forward(d.Kernels, v, v, 0, 10);
        Softmax.Forward(d.Kernels, v, v, 5, 0);
        LogSoftmax.Backward(d.Kernels, v, v, v, 0, 0);
        d.Synchronize();
    }

    [Fact]
    public void Mismatched_shapes_name_the_op_the_view_and_both_sizes()
    {
        var d = Devices.Cpu;
        using var x = d.Upload(new float[12]);
        using var y = d.Upload(new float[11]);
        var e = Assert.Throws<ArgumentException>(() => LogSoftmax.Forward(d.Kernels, x.View<float>(), y.View<float>(), 3, 4));
        Assert.Contains("LogSoftmax.Forward", e.Message);
        Assert.Contains("y has 11", e.Message);
        Assert.Contains("(N, C) = (3, 4)", e.Message);
        Assert.Contains("12", e.Message);
        var neg = Assert.Throws<ArgumentOutOfRangeException>(() => Softmax.Backward(d.Kernels, x.View<float>(), x.View<float>(), x.View<float>(), -1, 4));
        Assert.Contains("Softmax.Backward", neg.Message);
    }

    [Fact]
    public void Known_values_of_softmax_and_log_softmax()
    {
        // softmax([1, 2, 3]) = e^k / (e + e^2 + e^3); log-sum-exp = 3.40760596444438.
        var x = new Matrix(1, 3, [1f, 2f, 3f]);
        var y = Run(Softmax.Forward, x);
        var ls = Run(LogSoftmax.Forward, x);
        Assert.True(Close.Check(y, [0.09003057f, 0.24472847f, 0.66524096f], 1e-7, 1e-6, "softmax").Ok, string.Join(", ", y));
        Assert.True(Close.Check(ls, [-2.40760596f, -1.40760596f, -0.40760596f], 1e-7, 1e-6, "log-softmax").Ok, string.Join(", ", ls));
    }

    // ---------------------------------------------------------------- helpers

    private static Property ForwardEqualsReference(RowLauncher launch, RowReference reference, double atol, double rtol) =>
        Prop.ForAll(Gens.RowMatrix().ToArbitrary(), x =>
        {
            var expected = new float[x.Data.Length];
            reference(x.Data, expected, x.Rows, x.Cols);
            return Close.All(Run(launch, x), expected, atol, rtol).Label(x.ToString());
        });

    private static Property BackwardEqualsReference(RowLauncher forward, BackwardLauncher backward, BackwardReference reference) =>
        Prop.ForAll(Gens.RowMatrixWithGradient().ToArbitrary(), p =>
        {
            var (x, dy) = p;
            var y = Run(forward, x);
            var dx = RunBackward(backward, y, dy, x.Rows, x.Cols);
            var expected = new float[dy.Length];
            reference(y, dy, expected, x.Rows, x.Cols);
            return RowsClose(dx, expected, RowScale(dy, x.Rows, x.Cols), x.Cols, "dx vs reference").Label(x.ToString());
        });

    private static Property BackwardMatchesFiniteDifferences(RowLauncher forward, BackwardLauncher backward, Func<double[], int, int, double[]> forward64) =>
        Prop.ForAll(
            (from s in Gens.FiniteDifferenceShape
             from x in Gens.Floats(s.N * s.C, -5f, 5f)
             from dy in Gens.Floats(s.N * s.C, -2f, 2f)
             select (Matrix: new Matrix(s.N, s.C, x), Dy: dy)).ToArbitrary(),
            p =>
            {
                var (x, dy) = p;
                var dx = RunBackward(backward, Run(forward, x), dy, x.Rows, x.Cols);

                // dx = grad of L(x) = sum_ij dy_ij f(x)_ij, by central differences in float64.
                double L(double[] v) => forward64(v, x.Rows, x.Cols).Select((f, k) => f * dy[k]).Sum();
                var at = x.Data.Select(v => (double)v).ToArray();
                var fd = new double[at.Length];
                for (int k = 0; k < at.Length; k++)
                {
                    double keep = at[k];
                    at[k] = keep + FiniteDifferenceStep;
                    double up = L(at);
                    at[k] = keep - FiniteDifferenceStep;
                    double down = L(at);
                    at[k] = keep;
                    fd[k] = (up - down) / (2 * FiniteDifferenceStep);
                }

                return Close.All(dx, fd, FiniteDifferenceAtol, FiniteDifferenceRtol, "dx vs finite differences").Label(x.ToString());
            });

    // Independent float64 forwards: exp(x - max) / sum and x - max - log(sum exp(x - max)).
    private static double[] SoftmaxFloat64(double[] x, int n, int c)
    {
        var y = new double[x.Length];
        for (int i = 0; i < n; i++)
        {
            var row = x.Skip(i * c).Take(c).ToArray();
            double m = row.Max();
            var e = row.Select(v => Math.Exp(v - m)).ToArray();
            double s = e.Sum();
            for (int j = 0; j < c; j++)
                y[(i * c) + j] = e[j] / s;
        }

        return y;
    }

    private static double[] LogSoftmaxFloat64(double[] x, int n, int c)
    {
        var y = new double[x.Length];
        for (int i = 0; i < n; i++)
        {
            var row = x.Skip(i * c).Take(c).ToArray();
            double m = row.Max();
            double lse = m + Math.Log(row.Sum(v => Math.Exp(v - m)));
            for (int j = 0; j < c; j++)
                y[(i * c) + j] = row[j] - lse;
        }

        return y;
    }

    // Per-row scale of the backward rounding error: 1 + sum_j |dy_ij|.
    private static double[] RowScale(float[] dy, int n, int c)
    {
        var s = new double[n];
        for (int i = 0; i < n; i++)
            s[i] = 1 + dy.AsSpan(i * c, c).ToArray().Sum(v => Math.Abs((double)v));
        return s;
    }

    private static Property RowsClose(float[] actual, float[] expected, double[] rowScale, int c, string what)
    {
        for (int k = 0; k < actual.Length; k++)
        {
            double a = actual[k], r = expected[k];
            double tol = (BackwardAtolPerUnit * rowScale[k / c]) + (BackwardRtol * Math.Abs(r));
            if (!(Math.Abs(a - r) <= tol))
                return false.Label($"{what}[{k / c},{k % c}] = {a:R} but expected {r:R} (|err| {Math.Abs(a - r):E3} > {tol:E3})");
        }

        return true.Label(what);
    }

    // The managed row loop and the ILGPU kernel run one row body: bit for bit the same outputs,
    // specials (NaN, infinities, signed zeros, subnormals) included, in place or not.
    [Property(MaxTest = 30)]
    public Property Forward_and_backward_managed_equal_kernel() =>
        Prop.ForAll(Gens.RowMatrixWithGradient().ToArbitrary(), Gen.Choose(0, 1_000_000).ToArbitrary(), Gen.Elements(false, true).ToArbitrary(), (p, seed, inPlace) =>
        {
            var (x, dy) = p;
            int n = x.Rows, c = x.Cols;
            float[] xs = KernelParity.Values(seed, n * c, -10f, 10f, true), ys = KernelParity.Values(seed + 1, n * c, -1f, 1f, true);
            float[] dys = KernelParity.Values(seed + 2, n * c, -2f, 2f, true), empty = new float[n * c];
            string at = $"{x}, seed {seed}, in place {inPlace}";
            return KernelParity.Same($"Softmax.Forward {at}", [xs, empty], (h, v) => Softmax.Forward(h, v[0], inPlace ? v[0] : v[1], n, c))
                .And(KernelParity.Same($"LogSoftmax.Forward {at}", [xs, empty], (h, v) => LogSoftmax.Forward(h, v[0], inPlace ? v[0] : v[1], n, c)))
                .And(KernelParity.Same($"Softmax.Backward {at}", [ys, dys, empty], (h, v) => Softmax.Backward(h, v[0], v[1], inPlace ? v[1] : v[2], n, c)))
                .And(KernelParity.Same($"LogSoftmax.Backward {at}", [ys, dys, empty], (h, v) => LogSoftmax.Backward(h, v[0], v[1], inPlace ? v[0] : v[2], n, c)))
                .And(KernelParity.Same($"Softmax.Backward on smooth values {at}", [x.Data, dy, empty], (h, v) => Softmax.Backward(h, v[0], v[1], v[2], n, c)));
        });

    private static float[] Run(RowLauncher launch, Matrix x)
    {
        var d = Devices.Cpu;
        using var tx = d.Upload(x.Data);
        using var ty = d.Poisoned(x.Data.Length);
        launch(d.Kernels, tx.View<float>(), ty.View<float>(), x.Rows, x.Cols);
        return ty.ToHost();
    }

    private static float[] RunBackward(BackwardLauncher launch, float[] y, float[] dy, int n, int c)
    {
        var d = Devices.Cpu;
        using var ty = d.Upload(y);
        using var tdy = d.Upload(dy);
        using var tdx = d.Poisoned(dy.Length);
        launch(d.Kernels, ty.View<float>(), tdy.View<float>(), tdx.View<float>(), n, c);
        return tdx.ToHost();
    }
}
