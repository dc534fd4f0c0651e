namespace IlgpuTrain.Properties.Support;

/// <summary>Generators for the fused cross-entropy.</summary>
public static partial class Gens
{
    /// <summary>Label smoothing eps: none, the common 0.1, the edge 1, or uniform in [0, 1].</summary>
    public static Gen<float> SmoothingEpsilon { get; } = Gen.OneOf(Gen.Constant(0f), Gen.Constant(0.1f), Gen.Constant(1f), Float(0f, 1f));

    /// <summary>
    /// Cross-entropy options for C classes: every reduction and convention, PyTorch's ignore index
    /// -100 mostly, sometimes -1 or the class 0 (a valid ignore index that is also a class).
    /// </summary>
    /// <param name="c">Classes C; OffTarget with C = 1 gets eps = 0, the only valid choice.</param>
    /// <returns>The generator.</returns>
    public static Gen<CrossEntropyOptions> CrossEntropyOptionsFor(int c) =>
        from reduction in Gen.Elements(LossReduction.Mean, LossReduction.Sum, LossReduction.None)
        from smoothing in Gen.Elements(LabelSmoothing.Uniform, LabelSmoothing.OffTarget)
        from eps in SmoothingEpsilon
        from ignore in Gen.Elements(-100, -100, -100, -1, 0)
        select new CrossEntropyOptions
        {
            Reduction = reduction,
            Smoothing = smoothing,
            Epsilon = smoothing == LabelSmoothing.OffTarget && c == 1 ? 0f : eps,
            IgnoreIndex = ignore,
        };

    /// <summary>A cross-entropy case with edge shapes and logits in [lo, hi]; about one row in five is ignored.</summary>
    /// <param name="lo">Lower bound of the logits.</param>
    /// <param name="hi">Upper bound of the logits.</param>
    /// <returns>The generator.</returns>
    public static Gen<CrossEntropyCase> CrossEntropyCase(float lo = -10f, float hi = 10f) =>
        CrossEntropyCase(from n in SoftmaxRows from c in SoftmaxClasses select (n, c), lo, hi);

    /// <summary>A cross-entropy case of the given shapes; about one row in five is ignored.</summary>
    /// <param name="shape">The (N, C) generator.</param>
    /// <param name="lo">Lower bound of the logits.</param>
    /// <param name="hi">Upper bound of the logits.</param>
    /// <returns>The generator.</returns>
    public static Gen<CrossEntropyCase> CrossEntropyCase(Gen<(int N, int C)> shape, float lo = -10f, float hi = 10f) =>
        from s in shape
        from options in CrossEntropyOptionsFor(s.C)
        from logits in Floats(s.N * s.C, lo, hi)
        from seed in Gen.Choose(int.MinValue, int.MaxValue)
        from dLoss in Floats(options.Reduction == LossReduction.None ? s.N : 1, -2f, 2f)
        select new CrossEntropyCase(s.N, s.C, logits, Targets(seed, s.N, s.C, options.IgnoreIndex, 0.2), options, dLoss);

    /// <summary>Targets: each row ignored with probability <paramref name="ignored"/>, otherwise a uniform class in [0, C).</summary>
    /// <param name="seed">The seed.</param>
    /// <param name="n">Rows N.</param>
    /// <param name="c">Classes C.</param>
    /// <param name="ignoreIndex">The ignore index.</param>
    /// <param name="ignored">Probability of an ignored row.</param>
    /// <returns>The targets.</returns>
    public static int[] Targets(int seed, int n, int c, int ignoreIndex, double ignored)
    {
        var rng = new Random(seed);
        var t = new int[n];
        for (int i = 0; i < n; i++)
            t[i] = rng.NextDouble() < ignored ? ignoreIndex : rng.Next(c);
        return t;
    }
}

/// <summary>A generated cross-entropy problem.</summary>
/// <param name="N">Rows.</param>
/// <param name="C">Classes.</param>
/// <param name="Logits">N * C logits, row-major.</param>
/// <param name="Targets">N targets (classes or the ignore index).</param>
/// <param name="Options">Reduction, smoothing, ignore index.</param>
/// <param name="DLoss">Upstream gradient: 1 value, or N for reduction None.</param>
public sealed record CrossEntropyCase(int N, int C, float[] Logits, int[] Targets, CrossEntropyOptions Options, float[] DLoss)
{
    /// <inheritdoc/>
    public override string ToString() =>
        $"CE(N={N}, C={C}, {Options.Reduction}, {Options.Smoothing} eps={Options.Epsilon:R}, ignore={Options.IgnoreIndex}, ignored rows={Targets.Count(t => t == Options.IgnoreIndex)}, dLoss[0]={(DLoss.Length > 0 ? DLoss[0] : float.NaN):R})";
}
