using IlgpuTrain.Training.Conformance;

namespace IlgpuTrain.Properties.Kernels;

/// <summary>
/// Cross-entropy against class probabilities (Kernels/CrossEntropy.cs ForwardSoft/BackwardSoft and
/// F.CrossEntropy with Float32 targets): both backends agree bitwise; forward and backward equal the
/// float64 reference (CrossEntropyReference, which the conformance suite runs too); the gradient equals central finite differences; one-hot
/// probabilities give the class-index loss.
/// </summary>
public class CrossEntropySoftProperties
{
    private const double LossAtol = Tolerances.CrossEntropy.SoftLossAtol;
    private const double LossRtol = Tolerances.CrossEntropy.SoftLossRtol;
    private const double GradAtol = Tolerances.CrossEntropy.SoftGradAtol;
    private const double GradRtol = Tolerances.CrossEntropy.SoftGradRtol;

    // Finite differences (step 1e-5) of a float64 loss against the float kernel: its rounding dominates.
    private const double FiniteDifferenceAtol = 1e-5;
    private const double FiniteDifferenceRtol = 1e-4;

    /// <summary>A case: logits, probability targets (rows of non-negative weights summing to 1), options, dLoss.</summary>
    public sealed record SoftCase(int N, int C, float[] Logits, float[] Targets, CrossEntropyOptions Options, float[] DLoss)
    {
        /// <inheritdoc/>
        public override string ToString() => $"(N, C) = ({N}, {C}), {Options.Reduction}, eps {Options.Epsilon} {Options.Smoothing}";
    }

    private static Gen<SoftCase> Cases(Gen<(int N, int C)> shape, float lo, float hi) =>
        from s in shape
        from options in Gens.CrossEntropyOptionsFor(s.C)
        from logits in Gens.Floats(s.N * s.C, lo, hi)
        from weights in Gens.Floats(s.N * s.C, 0f, 1f)
        from dLoss in Gens.Floats(options.Reduction == LossReduction.None ? s.N : 1, -2f, 2f)
        select new SoftCase(s.N, s.C, logits, Rows(weights, s.N, s.C), options with { IgnoreIndex = CrossEntropyOptions.DefaultIgnoreIndex }, dLoss);

    private static Gen<SoftCase> Cases() => Cases(from n in Gens.SoftmaxRows from c in Gens.SoftmaxClasses select (n, c), -10f, 10f);

    // Each row normalized to sum 1 (a zero row becomes uniform).
    private static float[] Rows(float[] w, int n, int c)
    {
        var t = new float[w.Length];
        for (int i = 0; i < n; i++)
        {
            double sum = 0;
            for (int k = 0; k < c; k++)
                sum += w[(i * c) + k];
            for (int k = 0; k < c; k++)
                t[(i * c) + k] = sum > 0 ? (float)(w[(i * c) + k] / sum) : 1f / c;
        }

        return t;
    }

    // The float64 spec (CrossEntropyReference, which the conformance suite runs too).
    private static (double[] Rows, double Reduced) Loss64(SoftCase k, double[] x) =>
        CrossEntropyReference.ForwardSoftReference(x, k.Targets, k.N, k.C, k.Options);

    private static (float[] Rows, float Loss) Forward(Device d, SoftCase k)
    {
        using var x = d.Upload(k.Logits);
        using var t = d.Upload(k.Targets);
        using var rows = d.Poisoned(k.N);
        using var loss = d.Poisoned(1);
        CrossEntropy.ForwardSoft(d.Kernels, x.View<float>(), t.View<float>(), rows.View<float>(), k.Options.Reduction == LossReduction.None ? default : loss.View<float>(), k.N, k.C, k.Options);
        return (rows.ToHost(), loss.ToHost()[0]);
    }

    private static float[] Backward(Device d, SoftCase k)
    {
        using var x = d.Upload(k.Logits);
        using var t = d.Upload(k.Targets);
        using var g = d.Upload(k.DLoss);
        using var dx = d.Poisoned(k.Logits.Length);
        CrossEntropy.BackwardSoft(d.Kernels, x.View<float>(), t.View<float>(), g.View<float>(), dx.View<float>(), k.N, k.C, k.Options);
        return dx.ToHost();
    }

    [Property(MaxTest = 40)]
    public Property Both_backends_agree_bitwise() =>
        Prop.ForAll(Cases().ToArbitrary(), k =>
        {
            bool none = k.Options.Reduction == LossReduction.None;
            return KernelParity.Same("forward " + k, [k.Logits, k.Targets, new float[k.N], new float[1]], (h, f) =>
                    CrossEntropy.ForwardSoft(h, f[0], f[1], f[2], none ? default : f[3], k.N, k.C, k.Options))
                .And(KernelParity.Same("backward " + k, [k.Logits, k.Targets, k.DLoss, new float[k.Logits.Length]], (h, f) =>
                    CrossEntropy.BackwardSoft(h, f[0], f[1], f[2], f[3], k.N, k.C, k.Options)));
        });

    [Property(MaxTest = 50)]
    public Property Forward_and_backward_equal_the_float64_reference() =>
        Prop.ForAll(Cases().ToArbitrary(), k =>
        {
            var x = k.Logits.Select(v => (double)v).ToArray();
            var (rows, reduced) = Loss64(k, x);
            var dx = CrossEntropyReference.BackwardSoftReference(x, k.Targets, k.DLoss, k.N, k.C, k.Options);

            var result = true.Label(k.ToString());
            foreach (var d in Devices.All)
            {
                var (r, loss) = Forward(d, k);
                result = result.And(Close.All(r, rows, LossAtol, LossRtol, "row losses on " + Devices.Describe(d)))
                    .And(Close.All(Backward(d, k), dx, GradAtol, GradRtol, "dlogits on " + Devices.Describe(d)));
                if (k.Options.Reduction != LossReduction.None && k.N > 0)
                    result = result.And(Close.Scalar(loss, reduced, LossAtol, LossRtol, "reduced loss on " + Devices.Describe(d)));
            }

            return result;
        });

    [Property(MaxTest = 40)]
    public Property F_CrossEntropy_gradient_matches_finite_differences() =>
        Prop.ForAll(Cases(Gens.FiniteDifferenceShape, -5f, 5f).ToArbitrary(), k =>
        {
            var options = k.Options;
            bool none = options.Reduction == LossReduction.None;
            return GradCheck.Check(
                Devices.Cpu,
                [new GradInput("x", new Shape(k.N, k.C), k.Logits)],
                (step, p) => F.CrossEntropy(p("x"), step.Upload(k.Targets, new Shape(k.N, k.C)), options),
                inputs =>
                {
                    var (rows, reduced) = Loss64(k, inputs[0]);
                    return none ? rows : [reduced];
                },
                none ? k.DLoss : null,
                FiniteDifferenceAtol,
                FiniteDifferenceRtol).Label(k.ToString());
        });

    [Property(MaxTest = 40)]
    public Property One_hot_probabilities_give_the_class_index_loss_and_gradient() =>
        Prop.ForAll(Gens.CrossEntropyCase().ToArbitrary(), k0 =>
        {
            var k = k0 with { Targets = k0.Targets.Select(y => y < 0 ? 0 : y).ToArray(), Options = k0.Options with { IgnoreIndex = CrossEntropyOptions.DefaultIgnoreIndex } };
            var oneHot = new float[k.N * k.C];
            for (int i = 0; i < k.N; i++)
                oneHot[(i * k.C) + k.Targets[i]] = 1f;
            var soft = new SoftCase(k.N, k.C, k.Logits, oneHot, k.Options, k.DLoss);
            var d = Devices.Cpu;
            using var x = d.Upload(k.Logits);
            using var y = d.Upload(k.Targets);
            using var rows = d.Poisoned(k.N);
            using var loss = d.Poisoned(1);
            using var g = d.Upload(k.DLoss);
            using var dx = d.Poisoned(k.Logits.Length);
            using var scratch = d.Poisoned(1);
            bool none = k.Options.Reduction == LossReduction.None;
            CrossEntropy.Forward(d.Kernels, x.View<float>(), y.View<int>(), rows.View<float>(), none ? default : loss.View<float>(), k.N, k.C, k.Options);
            CrossEntropy.Backward(d.Kernels, x.View<float>(), y.View<int>(), g.View<float>(), dx.View<float>(), k.N, k.C, k.Options, scratch.View<float>());
            var (softRows, _) = Forward(d, soft);
            return Close.All(softRows, rows.ToHost(), LossAtol, LossRtol, "row losses")
                .And(Close.All(Backward(d, soft), dx.ToHost(), GradAtol, GradRtol, "dlogits"))
                .Label(k.ToString());
        });

    [Fact]
    public void Known_values_one_row()
    {
        // logits (1, 2, 3), targets (0.25, 0.25, 0.5), eps 0: log_softmax = x - 3.40760596444438,
        // loss = 0.25*2.40760596 + 0.25*1.40760596 + 0.5*0.40760596 = 1.1576059644443801, by hand in
        // float64 (the formula of torch.nn.functional.cross_entropy with probability targets).
        var k = new SoftCase(1, 3, [1f, 2f, 3f], [0.25f, 0.25f, 0.5f], CrossEntropyOptions.Default, [1f]);
        var (_, loss) = Forward(Devices.Cpu, k);
        Assert.Equal(1.1576059644443801, loss, 5e-7);
        // eps 0.3 (Uniform): t' = 0.7 t + 0.1 = (0.275, 0.275, 0.45): 0.275*2.40760596 + 0.275*1.40760596 + 0.45*0.40760596.
        var (_, smoothed) = Forward(Devices.Cpu, k with { Options = new CrossEntropyOptions { Epsilon = 0.3f } });
        Assert.Equal((0.275 * 2.40760596444438) + (0.275 * 1.40760596444438) + (0.45 * 0.40760596444438), smoothed, 5e-7);
    }

    [Fact]
    public void Ignore_index_and_mismatched_shapes_are_refused_with_the_fix()
    {
        var d = Devices.Cpu;
        using var x = d.Upload(new float[6]);
        using var t = d.Upload(new float[6]);
        using var rows = d.Poisoned(2);
        using var loss = d.Poisoned(1);
        var e = Assert.Throws<ArgumentException>(() => CrossEntropy.ForwardSoft(d.Kernels, x.View<float>(), t.View<float>(), rows.View<float>(), loss.View<float>(), 2, 3, new CrossEntropyOptions { IgnoreIndex = 0 }));
        Assert.Contains("ignore_index", e.Message);
        using var step = d.BeginStep();
        var logits = step.Upload(new float[6], new Shape(2, 3));
        var wrong = step.Upload(new float[4], new Shape(2, 2));
        var e2 = Assert.Throws<ArgumentException>(() => F.CrossEntropy(logits, wrong));
        Assert.Contains("(2, 3)", e2.Message);
    }
}
