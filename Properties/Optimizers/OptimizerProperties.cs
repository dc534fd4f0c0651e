using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>
/// Optimizer.Step on real objectives (Optax's test style): every optimizer, at sensible settings,
/// brings a random convex quadratic and the Rosenbrock function within tolerance of the optimum
/// in a bounded number of steps. Gradients are computed on the host in float64 and uploaded, so
/// the test shares no code with the kernels.
/// </summary>
public class OptimizerProperties
{
    private const int QuadraticSteps = 600;
    private const int RosenbrockSteps = 10000;

    /// <summary>Optimizers at settings that should solve a quadratic with condition number at most 10 and curvature in [1, 10].</summary>
    public static TheoryData<string> Names() => new(QuadraticOptimizers(1).Keys);

    private static Dictionary<string, IGradientTransformation> QuadraticOptimizers(int steps) => new()
    {
        // Plain SGD converges for lr < 2/L (L = 10).
        ["sgd"] = new Sgd(0.15),
        ["sgd-momentum"] = new Sgd(0.03, momentum: 0.9),
        ["sgd-nesterov"] = new Sgd(0.03, momentum: 0.9, nesterov: true),
        ["sgd-momentum-fused-off"] = new Sgd(0.03, momentum: 0.9) { Fused = false },
        // Adaptive methods hover at a distance of about lr with a constant rate: decay it to 0.
        ["adam"] = new Adam(new CosineAnnealingLR(0.1, steps, Clamped: true)),
        ["adam-amsgrad"] = new Adam(new CosineAnnealingLR(0.1, steps, Clamped: true), amsgrad: true),
        ["adamw-no-decay"] = new AdamW(new CosineAnnealingLR(0.1, steps, Clamped: true), weightDecay: 0),
        ["rmsprop"] = new RmsProp(new CosineAnnealingLR(0.03, steps, Clamped: true)),
        ["rmsprop-centered-momentum"] = new RmsProp(new CosineAnnealingLR(0.01, steps, Clamped: true), momentum: 0.9, centered: true),
        ["adagrad"] = new Adagrad(0.5),
        ["clip-then-sgd"] = new Chain(new ClipByGlobalNorm(1.0), new Sgd(0.15)),
    };

    [Theory]
    [MemberData(nameof(Names))]
    public void Converges_on_random_convex_quadratics(string name)
    {
        // 3 random problems per optimizer: f(x) = 1/2 x'Ax - b'x, A = Q diag(d) Q', d in [1, 10].
        for (int seed = 0; seed < 3; seed++)
        {
            var rng = new Random((seed * 7919) + name.Length);
            int n = rng.Next(2, 7);
            var (a, b, xStar) = Quadratic(rng, n);
            var x = Run(QuadraticOptimizers(QuadraticSteps)[name], x0: new double[n], xs => Mul(a, xs).Zip(b, (ax, bi) => ax - bi).ToArray(), QuadraticSteps);
            double err = x.Zip(xStar, (u, v) => Math.Abs(u - v)).Max();
            double scale = 1 + xStar.Max(Math.Abs);
            Assert.True(err <= 1e-4 * scale, $"{name}, seed {seed}, n {n}: max |x - x*| = {err:E3} after {QuadraticSteps} steps (x* scale {scale:F3})");
        }
    }

    /// <summary>Optimizers that solve Rosenbrock from the classic start (-1.2, 1).</summary>
    public static TheoryData<string> RosenbrockNames() => new(RosenbrockOptimizers(1).Keys);

    private static Dictionary<string, IGradientTransformation> RosenbrockOptimizers(int steps) => new()
    {
        ["sgd-nesterov"] = new Sgd(new CosineAnnealingLR(2e-3, steps, Clamped: true), momentum: 0.9, nesterov: true),
        ["adam"] = new Adam(new CosineAnnealingLR(5e-2, steps, Clamped: true)),
        ["adamw-no-decay"] = new AdamW(new CosineAnnealingLR(5e-2, steps, Clamped: true), weightDecay: 0),
        ["rmsprop"] = new RmsProp(new CosineAnnealingLR(1e-2, steps, Clamped: true)),
        ["adagrad"] = new Adagrad(1.0),
    };

    [Theory]
    [MemberData(nameof(RosenbrockNames))]
    public void Converges_on_Rosenbrock(string name)
    {
        // f(x, y) = (1 - x)^2 + 100 (y - x^2)^2, minimum 0 at (1, 1).
        var x = Run(RosenbrockOptimizers(RosenbrockSteps)[name], x0: [-1.2, 1.0], RosenbrockGradient, RosenbrockSteps);
        double f = Math.Pow(1 - x[0], 2) + (100 * Math.Pow(x[1] - (x[0] * x[0]), 2));
        Assert.True(Math.Abs(x[0] - 1) < 2e-3 && Math.Abs(x[1] - 1) < 4e-3 && f < 1e-5,
            $"{name}: ended at ({x[0]:F5}, {x[1]:F5}), f = {f:E3} after {RosenbrockSteps} steps");
    }

    [Fact]
    public void Divergent_learning_rate_does_not_converge()
    {
        // The harness can fail: lr = 0.25 > 2/L on a curvature-10 quadratic diverges.
        var a = new double[,] { { 10, 0 }, { 0, 1 } };
        var x = Run(new Sgd(0.25), [1.0, 1.0], xs => Mul(a, xs), 50);
        Assert.True(Math.Abs(x[0]) > 1, $"x0 = {x[0]}");
    }

    private static double[] RosenbrockGradient(double[] v)
    {
        double x = v[0], y = v[1];
        return [(-2 * (1 - x)) - (400 * x * (y - (x * x))), 200 * (y - (x * x))];
    }

    private static double[] Run(IGradientTransformation opt, double[] x0, Func<double[], double[]> grad, int steps)
    {
        var d = Devices.Cpu;
        var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["x"] = ([x0.Length], x0.Select(v => (float)v).ToArray()) });
        var state = opt.Init(p);
        try
        {
            for (int t = 0; t < steps; t++)
            {
                var xs = p.Flat().Select(v => (double)v).ToArray();
                var g = Trees.FromFlat(p, grad(xs).Select(v => (float)v).ToArray());
                (p, state) = opt.Step(p, g, state);
            }
            return p.Flat().Select(v => (double)v).ToArray();
        }
        finally
        {
            p.Dispose();
            state.Dispose();
        }
    }

    private static (double[,] A, double[] B, double[] XStar) Quadratic(Random rng, int n)
    {
        // Random orthogonal Q by Gram-Schmidt on a random matrix.
        var q = new double[n, n];
        for (int j = 0; j < n; j++)
        {
            var v = Enumerable.Range(0, n).Select(_ => (rng.NextDouble() * 2) - 1).ToArray();
            for (int k = 0; k < j; k++)
            {
                double dot = 0;
                for (int i = 0; i < n; i++)
                    dot += v[i] * q[i, k];
                for (int i = 0; i < n; i++)
                    v[i] -= dot * q[i, k];
            }
            double norm = Math.Sqrt(v.Sum(x => x * x));
            for (int i = 0; i < n; i++)
                q[i, j] = v[i] / norm;
        }
        var dvals = Enumerable.Range(0, n).Select(_ => 1 + (9 * rng.NextDouble())).ToArray();
        var a = new double[n, n];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double s = 0;
                for (int k = 0; k < n; k++)
                    s += q[i, k] * dvals[k] * q[j, k];
                a[i, j] = s;
            }
        }
        var b = Enumerable.Range(0, n).Select(_ => (rng.NextDouble() * 2) - 1).ToArray();
        // x* = Q diag(1/d) Q' b.
        var qtb = Enumerable.Range(0, n).Select(k => Enumerable.Range(0, n).Sum(i => q[i, k] * b[i]) / dvals[k]).ToArray();
        var xStar = Enumerable.Range(0, n).Select(i => Enumerable.Range(0, n).Sum(k => q[i, k] * qtb[k])).ToArray();
        return (a, b, xStar);
    }

    private static double[] Mul(double[,] a, double[] x) =>
        Enumerable.Range(0, x.Length).Select(i => Enumerable.Range(0, x.Length).Sum(j => a[i, j] * x[j])).ToArray();
}
