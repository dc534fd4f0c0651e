namespace IlgpuTrain.Functional;

/// <summary>Tolerances and the seed of <see cref="GradientCheck.Run"/>.</summary>
public sealed record GradientCheckOptions
{
    /// <summary>Absolute tolerance: |actual - expected| &lt;= Atol + Rtol |expected|. Float32 kernels against a float64 reference: 1e-4.</summary>
    public double Atol { get; init; } = 1e-4;

    /// <summary>Relative tolerance (1e-3).</summary>
    public double Rtol { get; init; } = 1e-3;

    /// <summary>The finite-difference step, relative: h = Step max(1, |x|) (1e-5; the reference is float64).</summary>
    public double Step { get; init; } = 1e-5;

    /// <summary>d objective / d output, row-major with the output's length; null draws it uniformly in [-1, 1] from <see cref="RandomSeed"/>.</summary>
    public float[]? OutputGrad { get; init; }

    /// <summary>Seed of the drawn output gradient (0).</summary>
    public int RandomSeed { get; init; }
}

/// <summary>One comparison of a gradient check: the forward, or the gradient of one input.</summary>
/// <param name="What">"forward" or "d/d inputs[i]".</param>
/// <param name="Passed">Whether every element is within tolerance.</param>
/// <param name="WorstIndex">The element furthest outside (or, when all pass, closest to) its tolerance; -1 when empty.</param>
/// <param name="Actual">The device's value there.</param>
/// <param name="Expected">The reference's value there (for a gradient: central finite differences of the float64 reference).</param>
public sealed record GradientComparison(string What, bool Passed, int WorstIndex, double Actual, double Expected)
{
    /// <inheritdoc/>
    public override string ToString() =>
        WorstIndex < 0 ? $"{What}: empty" : $"{What}: {(Passed ? "ok" : "MISMATCH")}, worst [{WorstIndex}] {Actual:G9} vs {Expected:G9} (|err| {Math.Abs(Actual - Expected):E3})";
}

/// <summary>The outcome of <see cref="GradientCheck.Run"/>.</summary>
/// <param name="Comparisons">The forward, then one entry per input.</param>
public sealed record GradientCheckResult(IReadOnlyList<GradientComparison> Comparisons)
{
    /// <summary>Whether the forward and every gradient matched.</summary>
    public bool Passed => Comparisons.All(c => c.Passed);

    /// <summary>Throws when the check failed, with every comparison in the message.</summary>
    /// <exception cref="InvalidOperationException">A forward or gradient mismatch.</exception>
    public void ThrowIfFailed()
    {
        if (!Passed)
            throw new InvalidOperationException("Gradient check failed:" + Environment.NewLine + this);
    }

    /// <inheritdoc/>
    public override string ToString() => string.Join(Environment.NewLine, Comparisons);
}

/// <summary>
/// Checks a differentiable function (a custom op, a layer's forward, any composition of F.*)
/// against a float64 reference written independently of its kernels: the forward against the
/// reference, and each input's vector-Jacobian product against central finite differences of
/// sum(seed * reference(inputs)). The project's own op tests use the same finite differences.
/// </summary>
/// <example>
/// <code>
/// var x = (new Shape(4, 5), values);
/// GradientCheck.Run(device, [x], xs => MyOps.Swish(xs[0]),
///     v => v[0].Select(a => a / (1 + Math.Exp(-a))).ToArray()).ThrowIfFailed();
/// </code>
/// </example>
public static class GradientCheck
{
    /// <summary>
    /// Runs <paramref name="f"/> on <paramref name="device"/>, without a tape and then under
    /// <see cref="Autodiff.Vjp(StepScope, IReadOnlyList{Tensor}, Func{Tensor}, Tensor)"/>, and compares
    /// both forwards with <paramref name="reference"/> and every input's gradient with finite differences.
    /// </summary>
    /// <param name="device">Where to run.</param>
    /// <param name="inputs">The differentiable inputs: shape and row-major values. Keep them away from kinks (ReLU's 0) by more than the step.</param>
    /// <param name="f">The function on the device; it gets the uploaded inputs, in order (their <c>Scope</c> is the step, for constants).</param>
    /// <param name="reference">The same function in float64: the inputs' values in order, the output row-major.</param>
    /// <param name="options">Tolerances, step and output gradient; the defaults suit float32 kernels.</param>
    /// <returns>The comparisons; see <see cref="GradientCheckResult.ThrowIfFailed"/>.</returns>
    /// <exception cref="ArgumentException">No inputs, values that do not fill their shape, a reference whose output length is not the function's, or an output gradient of the wrong length.</exception>
    public static GradientCheckResult Run(Device device, IReadOnlyList<(Shape Shape, float[] Values)> inputs, Func<IReadOnlyList<Tensor>, Tensor> f, Func<IReadOnlyList<double[]>, double[]> reference, GradientCheckOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(f);
        ArgumentNullException.ThrowIfNull(reference);
        options ??= new GradientCheckOptions();
        if (inputs.Count == 0)
            throw new ArgumentException("GradientCheck: no inputs, so no gradient would be checked; list each differentiable input as (shape, values).", nameof(inputs));
        for (int i = 0; i < inputs.Count; i++)
        {
            if (inputs[i].Shape is null || inputs[i].Values is null || inputs[i].Values.Length != inputs[i].Shape.Length)
                throw new ArgumentException($"GradientCheck: inputs[{i}] has {inputs[i].Values?.Length ?? 0} values for shape {inputs[i].Shape}; give one value per element.", nameof(inputs));
        }

        var x = inputs.Select(i => Array.ConvertAll(i.Values, v => (double)v)).ToArray();
        var yRef = reference(x) ?? throw new ArgumentException("GradientCheck: the reference returned null.", nameof(reference));

        float[] yEval, yTrain;
        float[][] grads;
        float[] dOut;
        using (var step = device.BeginStep())
        {
            var xs = inputs.Select(i => step.Upload(i.Values, i.Shape)).ToArray();
            var evalOut = f(xs) ?? throw new InvalidOperationException("GradientCheck: the function returned null.");
            if (evalOut.Length != yRef.Length)
                throw new ArgumentException($"GradientCheck: the function returned Tensor{evalOut.Shape} ({evalOut.Length} values) but the reference {yRef.Length} values; they must compute the same thing.", nameof(reference));
            yEval = evalOut.ToHost();
            dOut = options.OutputGrad ?? Uniform(options.RandomSeed, evalOut.Length);
            if (dOut.Length != evalOut.Length)
                throw new ArgumentException($"GradientCheck: options.OutputGrad has {dOut.Length} values but the output is Tensor{evalOut.Shape}.", nameof(options));
            var seed = step.Upload(dOut, evalOut.Shape);
            var (output, inputGrads) = Autodiff.Vjp(step, xs, () => f(xs), seed);
            yTrain = output.ToHost();
            grads = inputGrads.Select(g => g.ToHost()).ToArray();
        }

        var dOut64 = Array.ConvertAll(dOut, v => (double)v);
        var result = new List<GradientComparison>
        {
            Compare("forward (no tape)", yEval, yRef, options),
            Compare("forward (recording)", yTrain, yRef, options),
        };
        for (int k = 0; k < inputs.Count; k++)
            result.Add(Compare($"d/d inputs[{k}]", grads[k], FiniteDifference(reference, x, k, dOut64, options.Step), options));
        return new GradientCheckResult(result);
    }

    /// <summary>
    /// Central finite differences in float64 of sum(dOut * reference(inputs)) with respect to
    /// input <paramref name="which"/>: g[i] = (s(x + h e_i) - s(x - h e_i)) / 2h, h = step max(1, |x_i|).
    /// </summary>
    /// <param name="reference">The float64 function: inputs in order, output row-major.</param>
    /// <param name="inputs">The point; not modified.</param>
    /// <param name="which">Which input to differentiate.</param>
    /// <param name="dOut">The output gradient, with the output's length.</param>
    /// <param name="step">The relative step.</param>
    /// <returns>The numerical gradient, with the input's length.</returns>
    /// <exception cref="ArgumentException">The reference's output and dOut differ in length.</exception>
    public static double[] FiniteDifference(Func<IReadOnlyList<double[]>, double[]> reference, IReadOnlyList<double[]> inputs, int which, IReadOnlyList<double> dOut, double step = 1e-5)
    {
        ArgumentNullException.ThrowIfNull(reference);
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(dOut);
        ArgumentOutOfRangeException.ThrowIfNegative(which);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(which, inputs.Count);
        var x = inputs.Select(a => (double[])a.Clone()).ToArray();
        var g = new double[x[which].Length];
        for (int i = 0; i < g.Length; i++)
        {
            double orig = x[which][i];
            double h = step * Math.Max(1, Math.Abs(orig));
            x[which][i] = orig + h;
            double plus = Dot(reference(x), dOut);
            x[which][i] = orig - h;
            double minus = Dot(reference(x), dOut);
            x[which][i] = orig;
            g[i] = (plus - minus) / (2 * h);
        }

        return g;
    }

    private static GradientComparison Compare(string what, float[] actual, double[] expected, GradientCheckOptions o)
    {
        if (actual.Length != expected.Length)
            return new GradientComparison($"{what} (length {actual.Length} vs {expected.Length})", false, -1, double.NaN, double.NaN);
        int worst = -1;
        double worstRatio = double.NegativeInfinity;
        bool ok = true;
        for (int i = 0; i < actual.Length; i++)
        {
            double err = Math.Abs(actual[i] - expected[i]);
            double allowed = o.Atol + (o.Rtol * Math.Abs(expected[i]));
            double ratio = double.IsNaN(err) ? double.PositiveInfinity : err / allowed;
            if (!(err <= allowed) && !actual[i].Equals((float)expected[i]))
                ok = false;
            if (ratio > worstRatio)
            {
                worstRatio = ratio;
                worst = i;
            }
        }

        return worst < 0
            ? new GradientComparison(what, true, -1, 0, 0)
            : new GradientComparison(what, ok, worst, actual[worst], expected[worst]);
    }

    private static double Dot(double[] a, IReadOnlyList<double> b)
    {
        if (a.Length != b.Count)
            throw new ArgumentException($"GradientCheck: the reference returned {a.Length} values but the output gradient has {b.Count}.");
        double s = 0;
        for (int i = 0; i < a.Length; i++)
            s += a[i] * b[i];
        return s;
    }

    // A fixed generator (not System.Random, whose sequence may change across runtimes): a 64-bit
    // LCG's top bits, uniform in [-1, 1].
    private static float[] Uniform(int seed, long n)
    {
        var v = new float[n];
        ulong s = (ulong)seed * 0x9E3779B97F4A7C15UL + 1;
        for (long i = 0; i < n; i++)
        {
            s = (s * 6364136223846793005UL) + 1442695040888963407UL;
            v[i] = (float)(((s >> 40) / (double)(1UL << 24) * 2) - 1);
        }

        return v;
    }
}
