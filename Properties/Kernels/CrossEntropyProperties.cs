using IlgpuTrain.Training.Conformance;

namespace IlgpuTrain.Properties.Kernels;

/// <summary>
/// Fused cross-entropy with label smoothing and ignore_index: kernels equal their float64
/// references; smoothed targets have the sums and values of their definitions; eps = 0 is the NLL
/// of the log-softmax kernel; the gradient equals central finite differences of a float64 loss
/// written here; known values from PyTorch 1.13 (F.cross_entropy, float64).
/// </summary>
public class CrossEntropyProperties
{
    // Row losses: shared with the conformance suite (the reasoning is there).
    private const double LossAtol = Tolerances.CrossEntropy.LossAtol;
    private const double LossRtol = Tolerances.CrossEntropy.LossRtol;

    // The Mean/Sum finish against a float64 sum of the same float row losses: Kahan summation is
    // exact to about one ulp of the result.
    private const double ReduceAtol = 1e-6;
    private const double ReduceRtol = 1e-6;

    // Gradients (p - t) * g: p is a float softmax (a few ulp of 1), times |g|.
    private const double GradAtolPerUnitG = 1e-6;
    private const double GradRtol = 1e-5;

    // Finite differences with step 1e-5 on a float64 loss: truncation ~1e-10; the float kernel dominates.
    private const double FiniteDifferenceStep = 1e-5;
    private const double FiniteDifferenceAtol = 1e-5;
    private const double FiniteDifferenceRtol = 1e-4;

    // Known values are float32 results of order 1: a few ulp.
    private const double KnownAtol = 1e-6;
    private const double KnownRtol = 1e-6;

    [Property(MaxTest = 50)]
    public Property Forward_equals_reference() =>
        Prop.ForAll(Gens.CrossEntropyCase().ToArbitrary(), k =>
        {
            var (losses, loss) = Forward(k);
            var expected = new float[k.N];
            CrossEntropyReference.ForwardReference(k.Logits, k.Targets, expected, k.N, k.C, k.Options);
            var rows = Close.All(losses, expected, LossAtol, LossRtol, "row losses");
            if (k.Options.Reduction == LossReduction.None)
                return rows.Label(k.ToString());
            double reducedOwn = CrossEntropyReference.ReduceReference(losses, k.Targets, k.Options.Reduction, k.Options.IgnoreIndex);
            double reducedRef = CrossEntropyReference.ReduceReference(expected, k.Targets, k.Options.Reduction, k.Options.IgnoreIndex);
            return rows
                .And(Close.Scalar(loss, reducedOwn, ReduceAtol, ReduceRtol, "finish kernel vs float64 reduction of the same row losses"))
                .And(Close.Scalar(loss, reducedRef, LossAtol, LossRtol, "loss vs reference"))
                .Label(k.ToString());
        });

    // Logits of magnitude 1e4 (exp overflows even float64 without the max shift). Row losses reach
    // ~2e4; (m - x_y) rounds to ulp(2e4) and the float sum over C terms of (m - x_k) (each up to 2e4)
    // loses a few ulp of its size, weighted by eps/C: about 1e-6 of the loss.
    [Property(MaxTest = 30)]
    public Property Forward_and_backward_are_stable_for_logits_of_magnitude_1e4() =>
        Prop.ForAll(Gens.CrossEntropyCase(-1e4f, 1e4f).ToArbitrary(), k =>
        {
            var (losses, _) = Forward(k);
            var dx = Backward(k);
            var expected = new float[k.N];
            CrossEntropyReference.ForwardReference(k.Logits, k.Targets, expected, k.N, k.C, k.Options);
            var expectedDx = new float[k.N * k.C];
            CrossEntropyReference.BackwardReference(k.Logits, k.Targets, k.DLoss, expectedDx, k.N, k.C, k.Options);
            double gMax = k.DLoss.Select(v => Math.Abs((double)v)).DefaultIfEmpty(0).Max();
            return (losses.All(float.IsFinite) && dx.All(float.IsFinite)).Label("all finite")
                .And(Close.All(losses, expected, 1e-3, 2e-6, "row losses vs reference"))
                .And(Close.All(dx, expectedDx, GradAtolPerUnitG * gMax, GradRtol, "dlogits vs reference"))
                .Label(k.ToString());
        });

    [Property(MaxTest = 50)]
    public Property Backward_equals_reference() =>
        Prop.ForAll(Gens.CrossEntropyCase().ToArbitrary(), k =>
        {
            var dx = Backward(k);
            var expected = new float[k.N * k.C];
            CrossEntropyReference.BackwardReference(k.Logits, k.Targets, k.DLoss, expected, k.N, k.C, k.Options);
            double gMax = k.DLoss.Select(v => Math.Abs((double)v)).DefaultIfEmpty(0).Max();
            return Close.All(dx, expected, GradAtolPerUnitG * gMax, GradRtol, "dlogits vs reference").Label(k.ToString());
        });

    [Property(MaxTest = 40)]
    public Property Smoothed_targets_equal_reference() =>
        Prop.ForAll(Gens.CrossEntropyCase().ToArbitrary(), k =>
        {
            var o = k.Options;
            var t = SmoothedTargets(k);
            var expected = new float[k.N * k.C];
            CrossEntropyReference.SmoothedTargetsReference(k.Targets, expected, k.N, k.C, o.Epsilon, o.Smoothing, o.IgnoreIndex);
            // Both round the same float64 weights to float.
            return Close.All(t, expected, 0, 0, "smoothed targets").Label(k.ToString());
        });

    [Property(MaxTest = 40)]
    public Property Smoothed_target_rows_sum_to_one_with_the_defined_weights() =>
        Prop.ForAll(Gens.CrossEntropyCase().ToArbitrary(), k =>
        {
            var o = k.Options;
            double eps = o.Epsilon;
            var t = SmoothedTargets(k);
            bool uniform = o.Smoothing == LabelSmoothing.Uniform;
            double trueClass = uniform ? 1 - eps + (eps / k.C) : 1 - eps;
            double others = uniform ? eps / k.C : eps / (k.C - 1);
            var bad = new List<string>();
            for (int i = 0; i < k.N; i++)
            {
                var row = t.AsSpan(i * k.C, k.C).ToArray();
                int y = k.Targets[i];
                if (y == o.IgnoreIndex)
                {
                    if (row.Any(v => v != 0f))
                        bad.Add($"ignored row {i} is not zero");
                    continue;
                }

                double sum = row.Sum(v => (double)v);
                // C float weights, each within half an ulp of its exact value.
                if (Math.Abs(sum - 1) > 1e-7 * (k.C + 1))
                    bad.Add($"row {i} sums to {sum:R}");
                if (Math.Abs(row[y] - trueClass) > 1e-7)
                    bad.Add($"t[{i},{y}] = {row[y]:R}, want {trueClass:R}");
                if (k.C > 1 && Math.Abs(row.Where((_, j) => j != y).Min() - others) > 1e-7 * Math.Max(others, 1e-30))
                    bad.Add($"row {i} minimum off-target {row.Where((_, j) => j != y).Min():R}, want {others:R}");
                if (k.C > 1 && row.Where((_, j) => j != y).Max() != row.Where((_, j) => j != y).Min())
                    bad.Add($"row {i} off-target weights differ");
            }

            return (bad.Count == 0).Label($"{k}: {string.Join("; ", bad.Take(3))}");
        });

    [Property(MaxTest = 40)]
    public Property Without_smoothing_the_loss_is_the_nll_of_the_log_softmax_kernel() =>
        Prop.ForAll(Gens.CrossEntropyCase().ToArbitrary(), k0 =>
        {
            var k = k0 with { Options = k0.Options with { Epsilon = 0f, Reduction = LossReduction.None } };
            var (losses, _) = Forward(k);
            var d = Devices.Cpu;
            using var x = d.Upload(k.Logits);
            using var ls = d.Poisoned(k.Logits.Length);
            LogSoftmax.Forward(d.Kernels, x.View<float>(), ls.View<float>(), k.N, k.C);
            var logp = ls.ToHost();
            var nll = k.Targets.Select((y, i) => y == k.Options.IgnoreIndex ? 0f : -logp[(i * k.C) + y]).ToArray();
            return Close.All(losses, nll, LossAtol, LossRtol, "CE(eps = 0) vs -log_softmax[y]").Label(k.ToString());
        });

    [Property(MaxTest = 60)]
    public Property Gradient_matches_finite_differences_for_every_reduction_and_convention() =>
        Prop.ForAll(Gens.CrossEntropyCase(Gens.FiniteDifferenceShape, -5f, 5f).ToArbitrary(), k =>
        {
            var dx = Backward(k);
            var x = k.Logits.Select(v => (double)v).ToArray();
            var fd = new double[x.Length];
            for (int j = 0; j < x.Length; j++)
            {
                double keep = x[j];
                x[j] = keep + FiniteDifferenceStep;
                double up = Loss64(k, x);
                x[j] = keep - FiniteDifferenceStep;
                double down = Loss64(k, x);
                x[j] = keep;
                fd[j] = (up - down) / (2 * FiniteDifferenceStep);
            }

            // An all-ignored Mean loss is NaN (0/0) whatever x is; its gradient is defined as 0.
            bool allIgnoredMean = k.Options.Reduction == LossReduction.Mean && k.Targets.All(y => y == k.Options.IgnoreIndex);
            if (allIgnoredMean)
                return dx.All(v => v == 0f).Label($"{k}: all rows ignored, gradient must be 0");
            return Close.All(dx, fd, FiniteDifferenceAtol, FiniteDifferenceRtol, "dlogits vs finite differences").Label(k.ToString());
        });

    [Property(MaxTest = 30)]
    public Property Mean_is_the_sum_over_the_number_of_non_ignored_rows() =>
        Prop.ForAll(Gens.CrossEntropyCase().ToArbitrary(), k0 =>
        {
            var (_, sum) = Forward(k0 with { Options = k0.Options with { Reduction = LossReduction.Sum } });
            var (_, mean) = Forward(k0 with { Options = k0.Options with { Reduction = LossReduction.Mean } });
            int kept = k0.Targets.Count(y => y != k0.Options.IgnoreIndex);
            // kept = 0 (including N = 0): PyTorch's 0/0 = NaN for Mean, 0 for Sum.
            return Close.Scalar(mean, (double)sum / kept, 1e-7, 1e-6, $"mean vs sum / {kept}")
                .And((kept > 0 || sum == 0f).Label($"sum of no kept rows = {sum:R}"))
                .Label(k0.ToString());
        });

    [Property(MaxTest = 30)]
    public Property Out_of_range_targets_give_NaN_rows_and_are_counted() =>
        Prop.ForAll(Gens.CrossEntropyCase().ToArbitrary(), Gen.Choose(int.MinValue, int.MaxValue).ToArbitrary(), (k0, seed) =>
        {
            var rng = new Random(seed);
            int[] badValues = [-1, -99, k0.C, k0.C + 1, 1000, int.MinValue, int.MaxValue];
            var targets = k0.Targets.Select(y => rng.Next(4) == 0 ? badValues[rng.Next(badValues.Length)] : y).ToArray();
            var k = k0 with { Targets = targets };
            bool IsBad(int y) => y != k.Options.IgnoreIndex && (y < 0 || y >= k.C);
            int badCount = targets.Count(IsBad);

            var d = Devices.Cpu;
            using var x = d.Upload(k.Logits);
            using var t = d.Upload(targets);
            using var losses = d.Poisoned(k.N);
            using var loss = d.Poisoned(1);
            using var errors = d.Upload([3]);
            CrossEntropy.Forward(d.Kernels, x.View<float>(), t.View<int>(), losses.View<float>(), loss.View<float>(), k.N, k.C, k.Options, errors.View<int>());
            var l = losses.ToHost();
            var dx = Backward(k);
            var bad = new List<string>();
            for (int i = 0; i < k.N; i++)
            {
                bool rowNaN = float.IsNaN(l[i]);
                if (rowNaN != IsBad(targets[i]))
                    bad.Add($"row {i} (target {targets[i]}): loss {l[i]:R}");
                var g = dx.AsSpan(i * k.C, k.C).ToArray();
                if (IsBad(targets[i]) ? !g.All(float.IsNaN) : !g.All(float.IsFinite))
                    bad.Add($"row {i} (target {targets[i]}): gradient row {string.Join(", ", g.Take(3))}");
            }

            int counted = errors.ToHost<int>()[0];
            if (counted != 3 + badCount)
                bad.Add($"error counter {counted}, want 3 + {badCount}");
            if (badCount > 0 && k.Options.Reduction != LossReduction.None && !float.IsNaN(loss.ToHost()[0]))
                bad.Add($"reduced loss {loss.ToHost()[0]:R} hides {badCount} bad targets");
            var (noCounter, _) = Forward(k);
            return (bad.Count == 0).Label($"{k}: {string.Join("; ", bad.Take(3))}")
                .And(Close.All(noCounter, l, 0, 0, "losses without a counter"));
        });

    // PyTorch 1.13, float64:
    //   x = [[1., 2., 3.]]; F.cross_entropy(x, [2], label_smoothing=eps)
    //   eps 0   -> 0.4076059644443804, grad [0.09003057317038043, 0.24472847105479764, -0.3347590442251782]
    //   eps 0.1 -> 0.5076059644443804, grad [0.0566972398370471, 0.21139513772146432, -0.26809237755851156]
    // By hand from SEMANTICS.md, lse = log(e + e^2 + e^3) = 3.4076059644, log p_k = k - lse:
    //   Uniform   0.9 (lse - 3) + (0.1/3)(3 lse - 6) = lse - 2.9  = 0.5076059644
    //   OffTarget 0.9 (lse - 3) + 0.05 (lse - 1) + 0.05 (lse - 2) = lse - 2.85 = 0.5576059644 (not in PyTorch)
    [Theory]
    [InlineData(0f, LabelSmoothing.Uniform, 0.4076059644443804, new[] { 0.09003057317038043, 0.24472847105479764, -0.3347590442251782 })]
    [InlineData(0.1f, LabelSmoothing.Uniform, 0.5076059644443804, new[] { 0.0566972398370471, 0.21139513772146432, -0.26809237755851156 })]
    [InlineData(0.1f, LabelSmoothing.OffTarget, 0.5576059644443804, new[] { 0.09003057317038043 - 0.05, 0.24472847105479764 - 0.05, 0.66524095577482180 - 0.9 })]
    public void Known_values_one_row(float eps, LabelSmoothing smoothing, double expectedLoss, double[] expectedGrad)
    {
        var k = new CrossEntropyCase(1, 3, [1f, 2f, 3f], [2], new CrossEntropyOptions { Epsilon = eps, Smoothing = smoothing }, [1f]);
        var (losses, loss) = Forward(k);
        Assert.True(Close.Check([loss, losses[0]], [(float)expectedLoss, (float)expectedLoss], KnownAtol, KnownRtol, "loss").Ok, $"loss {loss:R}, row {losses[0]:R}, want {expectedLoss:R}");
        var dx = Backward(k);
        var (ok, label) = Close.Check(dx, expectedGrad.Select(v => (float)v).ToArray(), KnownAtol, KnownRtol, "grad");
        Assert.True(ok, label);
    }

    // PyTorch 1.13, float64, label_smoothing=0.2, ignore_index -100:
    //   x = [[1,2,3],[0.5,-1,2],[3,0,-2],[0,0,0]], target = [2,-100,0,1]
    //   none -> [0.6076059644443805, 0, 0.5883185687104806, 1.0986122886681098] (grad with dLoss [1,2,3,4])
    //   sum  -> 2.294536821822971;  mean -> 0.7648456072743236 (= sum / 3 kept rows), grads with dLoss 1.
    [Theory]
    [InlineData(LossReduction.None)]
    [InlineData(LossReduction.Sum)]
    [InlineData(LossReduction.Mean)]
    public void Known_values_with_ignore_index_and_smoothing(LossReduction reduction)
    {
        float[] logits = [1f, 2f, 3f, 0.5f, -1f, 2f, 3f, 0f, -2f, 0f, 0f, 0f];
        int[] targets = [2, -100, 0, 1];
        float[] dLoss = reduction == LossReduction.None ? [1f, 2f, 3f, 4f] : [1f];
        var k = new CrossEntropyCase(4, 3, logits, targets, new CrossEntropyOptions { Epsilon = 0.2f, Reduction = reduction }, dLoss);
        double[] rowLosses = [0.6076059644443805, 0, 0.5883185687104806, 1.0986122886681098];
        double[][] grads = reduction switch
        {
            LossReduction.None =>
            [
                [0.02336390650371377, 0.17806180438813096, -0.2014257108918449], [0, 0, 0],
                [0.2394973676586814, -0.05862975042600753, -0.1808676172326731], [1.0666666666666667, -2.1333333333333337, 1.0666666666666667],
            ],
            LossReduction.Sum =>
            [
                [0.02336390650371377, 0.17806180438813096, -0.2014257108918449], [0, 0, 0],
                [0.079832455886227, -0.01954325014200252, -0.06028920574422437], [0.26666666666666666, -0.5333333333333334, 0.26666666666666666],
            ],
            _ =>
            [
                [0.007787968834571253, 0.05935393479604365, -0.06714190363061495], [0, 0, 0],
                [0.026610818628742303, -0.006514416714000844, -0.02009640191474146], [0.08888888888888885, -0.17777777777777778, 0.08888888888888885],
            ],
        };

        var (losses, loss) = Forward(k);
        var (ok, label) = Close.Check(losses, rowLosses.Select(v => (float)v).ToArray(), KnownAtol, KnownRtol, "row losses");
        Assert.True(ok, label);
        if (reduction != LossReduction.None)
        {
            double expected = reduction == LossReduction.Sum ? 2.294536821822971 : 0.7648456072743236;
            Assert.True(Math.Abs(loss - expected) <= KnownAtol + (KnownRtol * expected), $"{reduction} loss {loss:R}, want {expected:R}");
        }

        (ok, label) = Close.Check(Backward(k), grads.SelectMany(r => r).Select(v => (float)v).ToArray(), KnownAtol, KnownRtol, "dlogits");
        Assert.True(ok, label);
    }

    // PyTorch 1.13: F.cross_entropy(zeros(2,3), [-100,-100]) = nan (mean), 0 (sum); on (0,3) logits too.
    [Theory]
    [InlineData(2, LossReduction.Mean, float.NaN)]
    [InlineData(2, LossReduction.Sum, 0f)]
    [InlineData(0, LossReduction.Mean, float.NaN)]
    [InlineData(0, LossReduction.Sum, 0f)]
    public void All_ignored_or_empty_batches_reduce_like_PyTorch(int n, LossReduction reduction, float expected)
    {
        var k = new CrossEntropyCase(n, 3, new float[n * 3], Enumerable.Repeat(-100, n).ToArray(), new CrossEntropyOptions { Reduction = reduction, Epsilon = 0.1f }, [1f]);
        var (losses, loss) = Forward(k);
        Assert.Equal(expected, loss);
        Assert.All(losses, v => Assert.Equal(0f, v));
        Assert.All(Backward(k), v => Assert.Equal(0f, v));
    }

    [Fact]
    public void ValidateTargets_names_the_first_bad_index_and_value()
    {
        CrossEntropy.ValidateTargets([0, 9, -100, 3], 10);
        CrossEntropy.ValidateTargets([0, -1], 10, ignoreIndex: -1);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => CrossEntropy.ValidateTargets([1, -100, 10, -5], 10));
        Assert.Contains("targets[2] = 10", e.Message);
        Assert.Contains("[0, 10)", e.Message);
        Assert.Contains("-100", e.Message);
        var neg = Assert.Throws<ArgumentOutOfRangeException>(() => CrossEntropy.ValidateTargets([-1], 10));
        Assert.Contains("targets[0] = -1", neg.Message);
    }

    [Theory]
    [InlineData(-0.1f)]
    [InlineData(1.1f)]
    [InlineData(float.NaN)]
    public void Epsilon_outside_the_unit_interval_is_refused(float eps)
    {
        var k = new CrossEntropyCase(1, 3, [1f, 2f, 3f], [2], new CrossEntropyOptions { Epsilon = eps }, [1f]);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Forward(k));
        Assert.Contains("eps must be in [0, 1]", e.Message);
        Assert.Contains("CrossEntropy.Forward", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => SmoothedTargets(k));
    }

    [Fact]
    public void OffTarget_smoothing_with_one_class_needs_eps_zero()
    {
        var one = new CrossEntropyCase(2, 1, [5f, -3f], [0, 0], new CrossEntropyOptions { Smoothing = LabelSmoothing.OffTarget, Epsilon = 0.1f }, [1f]);
        var e = Assert.Throws<ArgumentException>(() => Forward(one));
        Assert.Contains("C = 1", e.Message);
        Assert.Contains("OffTarget", e.Message);

        // eps = 0 is plain cross-entropy: one class has probability 1, loss 0 and gradient 0.
        var ok = one with { Options = one.Options with { Epsilon = 0f } };
        var (losses, loss) = Forward(ok);
        Assert.All(losses, v => Assert.Equal(0f, v));
        Assert.Equal(0f, loss);
        Assert.All(Backward(ok), v => Assert.Equal(0f, v));
    }

    [Fact]
    public void Mismatched_shapes_name_the_op_the_view_and_both_sizes()
    {
        var d = Devices.Cpu;
        using var x = d.Upload(new float[12]);
        using var t = d.Upload(new int[3]);
        using var losses = d.Upload(new float[4]);
        using var loss = d.Upload(new float[1]);
        var e = Assert.Throws<ArgumentException>(() => CrossEntropy.Forward(d.Kernels, x.View<float>(), t.View<int>(), losses.View<float>(), loss.View<float>(), 4, 3));
        Assert.Contains("CrossEntropy.Forward", e.Message);
        Assert.Contains("targets has 3", e.Message);
        Assert.Contains("N = 4", e.Message);

        using var t4 = d.Upload(new int[4]);
        var noScratch = Assert.Throws<ArgumentException>(() => CrossEntropy.Backward(d.Kernels, x.View<float>(), t4.View<int>(), loss.View<float>(), x.View<float>(), 4, 3));
        Assert.Contains("scratch", noScratch.Message);
        var dLoss = Assert.Throws<ArgumentException>(() => CrossEntropy.Backward(d.Kernels, x.View<float>(), t4.View<int>(), loss.View<float>(), x.View<float>(), 4, 3, new CrossEntropyOptions { Reduction = LossReduction.None }));
        Assert.Contains("dLoss has 1", dLoss.Message);
        Assert.Contains("N = 4", dLoss.Message);
    }

    // ---------------------------------------------------------------- helpers

    // The loss in float64, written from SEMANTICS.md independently of the kernels and references:
    // loss_i = (1 - eps) * nll_i + eps/C * sum_k -log p_k (Uniform) or
    // (1 - eps) * nll_i + eps/(C-1) * sum_{k != y} -log p_k (OffTarget), reduced and weighted by dLoss.
    private static double Loss64(CrossEntropyCase k, double[] x)
    {
        var o = k.Options;
        double eps = o.Epsilon;
        double total = 0;
        int kept = 0;
        for (int i = 0; i < k.N; i++)
        {
            int y = k.Targets[i];
            if (y == o.IgnoreIndex)
                continue;
            kept++;
            var row = x.AsSpan(i * k.C, k.C).ToArray();
            double m = row.Max();
            double lse = m + Math.Log(row.Sum(v => Math.Exp(v - m)));
            double nll = lse - row[y];
            double allNll = row.Sum(v => lse - v);
            double rowLoss = o.Smoothing == LabelSmoothing.Uniform
                ? ((1 - eps) * nll) + (eps / k.C * allNll)
                : ((1 - eps) * nll) + (k.C == 1 ? 0 : eps / (k.C - 1) * (allNll - nll));
            total += o.Reduction == LossReduction.None ? k.DLoss[i] * rowLoss : rowLoss;
        }

        return o.Reduction switch
        {
            LossReduction.Mean => k.DLoss[0] * total / kept,
            LossReduction.Sum => k.DLoss[0] * total,
            _ => total,
        };
    }

    // Shapes of the managed-vs-kernel property: the usual edges, and now and then enough rows
    // (N * C past CpuLoops' threshold) for the managed path to split them over threads.
    private static Gen<(int N, int C)> ManagedShapes { get; } =
        Gen.OneOf(
            from n in Gens.Dim from c in Gen.Choose(1, 40) select (n, c),
            Gen.Elements((4099, 10), (1031, 257)));

    [Property(MaxTest = 40)]
    public Property Managed_CPU_path_equals_the_kernels_bitwise() =>
        Prop.ForAll(Gens.CrossEntropyCase(ManagedShapes).ToArbitrary(), Gen.Choose(0, 3).ToArbitrary(), (k0, bad) =>
        {
            // Now and then out-of-range targets, which must give NaN rows and count the same.
            var k = bad == 0 ? k0 with { Targets = k0.Targets.Select((y, i) => i % 7 == 3 ? k0.C + i : y).ToArray() } : k0;
            var managed = Outputs(Devices.Cpu, k);
            var kernel = Outputs(Devices.CpuKernels, k);
            return Bits.Same(managed.Losses, kernel.Losses, "row losses")
                .And(Bits.Same([managed.Loss], [kernel.Loss], "reduced loss"))
                .And((managed.Errors == kernel.Errors).Label($"errors {managed.Errors} vs {kernel.Errors}"))
                .And(Bits.Same(managed.Dx, kernel.Dx, "dlogits"))
                .And(Bits.Same(SmoothedTargets(k, Devices.Cpu), SmoothedTargets(k, Devices.CpuKernels), "smoothed targets"))
                .Label(k.ToString());
        });

    private static (float[] Losses, float Loss, int Errors, float[] Dx) Outputs(Device d, CrossEntropyCase k)
    {
        using var x = d.Upload(k.Logits);
        using var t = d.Upload(k.Targets);
        using var losses = d.Poisoned(k.N);
        using var loss = d.Poisoned(1);
        using var errors = d.Upload([5]);
        CrossEntropy.Forward(d.Kernels, x.View<float>(), t.View<int>(), losses.View<float>(), loss.View<float>(), k.N, k.C, k.Options, errors.View<int>());
        float reduced = k.Options.Reduction == LossReduction.None ? 0f : loss.ToHost()[0];
        return (losses.ToHost(), reduced, errors.ToHost<int>()[0], Backward(k, d));
    }

    private static (float[] Losses, float Loss) Forward(CrossEntropyCase k)
    {
        var d = Devices.Cpu;
        using var x = d.Upload(k.Logits);
        using var t = d.Upload(k.Targets);
        using var losses = d.Poisoned(k.N);
        using var loss = d.Poisoned(1);
        CrossEntropy.Forward(d.Kernels, x.View<float>(), t.View<int>(), losses.View<float>(), loss.View<float>(), k.N, k.C, k.Options);
        return (losses.ToHost(), loss.ToHost()[0]);
    }

    private static float[] Backward(CrossEntropyCase k, Device? on = null)
    {
        var d = on ?? Devices.Cpu;
        using var x = d.Upload(k.Logits);
        using var t = d.Upload(k.Targets);
        using var dLoss = d.Upload(k.DLoss);
        using var dx = d.Poisoned(k.N * k.C);
        using var scratch = d.Poisoned(CrossEntropy.BackwardScratchLength(k.Options.Reduction));
        CrossEntropy.Backward(d.Kernels, x.View<float>(), t.View<int>(), dLoss.View<float>(), dx.View<float>(), k.N, k.C, k.Options, scratch.View<float>());
        return dx.ToHost();
    }

    private static float[] SmoothedTargets(CrossEntropyCase k, Device? on = null)
    {
        var d = on ?? Devices.Cpu;
        using var t = d.Upload(k.Targets);
        using var s = d.Poisoned(k.N * k.C);
        CrossEntropy.SmoothedTargets(d.Kernels, t.View<int>(), s.View<float>(), k.N, k.C, k.Options.Epsilon, k.Options.Smoothing, k.Options.IgnoreIndex);
        return s.ToHost();
    }
}
