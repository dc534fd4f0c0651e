using IlgpuTrain.Training.Conformance;
using MaskedKernels = IlgpuTrain.Kernels.MaskedSoftmax;

namespace IlgpuTrain.Properties.Kernels;

/// <summary>
/// Masked softmax (Kernels/Softmax.cs MaskedSoftmax, F.MaskedSoftmax): every backend equals a
/// float64 reference; managed and kernel paths agree bit for bit; kept entries sum to 1 and
/// masked ones are exactly 0; fully masked rows are zeros with zero, finite gradients; and the
/// VJP (x and bias) equals central finite differences of the reference.
/// </summary>
public class MaskedSoftmaxProperties
{
    // exp in float against float64: a few ulps of each probability (one definition with the conformance suite).
    private const double Atol = Tolerances.MaskedSoftmax.ForwardAtol;
    private const double Rtol = Tolerances.MaskedSoftmax.ForwardRtol;

    private const double FdAtol = 2e-4;
    private const double FdRtol = 2e-3;

    // The spec (Training/Conformance/Reference/MaskedSoftmaxReference.cs) for a case: Tq is x's
    // second-to-last dimension, the items its first.
    internal static double[] Reference(double[] x, double[]? bias, MaskCase c) =>
        MaskedSoftmaxReference.ForwardReference(x, bias, c.Rows, c.Cols, c.Dims[^2], c.Dims[0], c.Causal, c.Lengths, c.KeyMask);

    private static double[] D(float[] v) => v.Select(x => (double)x).ToArray();

    private static float[]? BiasValues(MaskCase c) => c.BiasDims is null ? null : GradCheck.Values(c.Seed + 1, c.BiasDims.Aggregate(1, (a, b) => a * b), 3);

    private static Tensor Run(StepScope step, Tensor x, Tensor? bias, MaskCase c) =>
        F.MaskedSoftmax(x, c.Causal, c.Lengths is null ? null : step.Upload(c.Lengths, new Shape(c.Lengths.Length)), bias, c.KeyMask is null ? null : step.Upload(c.KeyMask, new Shape(c.Dims[0], c.Cols)));

    [Property(MaxTest = 80)]
    public Property Every_backend_equals_the_float64_reference_and_the_paths_agree_bit_for_bit() =>
        Prop.ForAll(Gens.MaskCase.ToArbitrary(), c =>
        {
            int len = c.Rows * c.Cols;
            var x = GradCheck.Values(c.Seed, len, 6);
            var bias = BiasValues(c);
            var expected = Reference(D(x), bias is null ? null : D(bias), c);
            var result = true.Label(c.ToString());
            foreach (var d in Devices.All)
            {
                using var step = d.BeginStep();
                var y = Run(step, step.Upload(x, new Shape(c.Dims)), bias is null ? null : step.Upload(bias, new Shape(c.BiasDims!)), c);
                result = result.And(Close.All(y.ToHost(), expected, Atol, Rtol, $"forward on {Devices.Describe(d)}"));
            }

            int tq = c.Dims[^2];
            return result.And(KernelParity.Same("masked softmax", [x, bias ?? [], new float[len]], [c.KeyMask ?? c.Lengths ?? []], (h, f, i) =>
                MaskedKernels.Forward(h, f[0], f[1], i[0], f[2], c.Rows, c.Cols, c.Causal, tq, c.KeyMask is not null)));
        });

    [Property(MaxTest = 80)]
    public Property Kept_entries_sum_to_one_and_masked_entries_are_exactly_zero() =>
        Prop.ForAll(Gens.MaskCase.ToArbitrary(), c =>
        {
            var x = GradCheck.Values(c.Seed, c.Rows * c.Cols, 30);
            var bias = BiasValues(c);
            using var step = Devices.CpuKernels.BeginStep();
            var y = Run(step, step.Upload(x, new Shape(c.Dims)), bias is null ? null : step.Upload(bias, new Shape(c.BiasDims!)), c).ToHost();
            int tq = c.Dims[^2], perItem = c.Rows / c.Dims[0];
            for (int r = 0; r < c.Rows; r++)
            {
                int valid = Math.Min(c.Cols, c.Causal ? (r % tq) + 1 : c.Cols);
                if (c.Lengths is not null)
                    valid = Math.Clamp(Math.Min(valid, c.Lengths[r / perItem]), 0, c.Cols);
                bool Masked(int j) => j >= valid || (c.KeyMask is not null && c.KeyMask[((r / perItem) * c.Cols) + j] == 0);
                int kept = Enumerable.Range(0, c.Cols).Count(j => !Masked(j));
                double sum = 0;
                for (int j = 0; j < c.Cols; j++)
                {
                    float v = y[(r * c.Cols) + j];
                    if (Masked(j) && BitConverter.SingleToInt32Bits(v) != 0)
                        return false.Label($"{c}: row {r} masked entry {j} is {v:R}, not +0");
                    if (!(v >= 0 && v <= 1))
                        return false.Label($"{c}: row {r} entry {j} is {v:R}, outside [0, 1]");
                    sum += v;
                }

                double want = kept == 0 ? 0 : 1;
                if (Math.Abs(sum - want) > 1e-5)
                    return false.Label($"{c}: row {r} ({kept} kept) sums to {sum:R}, not {want}");
            }

            return true.Label(c.ToString());
        });

    [Property(MaxTest = 50)]
    public Property Vjp_for_x_and_bias_matches_finite_differences() =>
        Prop.ForAll(Gens.MaskCase.Where(c => c.Rows * c.Cols <= 120).ToArbitrary(), c =>
        {
            int len = c.Rows * c.Cols;
            var inputs = new List<GradInput> { new("x", new Shape(c.Dims), GradCheck.Values(c.Seed, len, 3)) };
            var bias = BiasValues(c);
            if (bias is not null)
                inputs.Add(new("bias", new Shape(c.BiasDims!), bias));
            return GradCheck.Check(Devices.Cpu, inputs, (s, p) => Run(s, p("x"), bias is null ? null : p("bias"), c), a => Reference(a[0], bias is null ? null : a[1], c), GradCheck.Values(c.Seed + 2, len), FdAtol, FdRtol)
                .Label(c.ToString());
        });

    [Fact]
    public void Fully_masked_rows_are_zeros_with_finite_zero_gradients()
    {
        // x (2, 2, 3): item 0 has no valid key (length 0); row (1, 1) has a -inf bias on every key.
        foreach (var d in Devices.All)
        {
            var x = new GradInput("x", new Shape(2, 2, 3), GradCheck.Values(7, 12, 3));
            var bias = new GradInput("bias", new Shape(2, 3), [0, 0, 0, float.NegativeInfinity, float.NegativeInfinity, float.NegativeInfinity]);
            var (y, grads) = GradCheck.Vjp(d, [x, bias], (s, p) => F.MaskedSoftmax(p("x"), keyLengths: s.Upload(new[] { 0, 3 }, new Shape(2)), bias: p("bias")), GradCheck.Values(8, 12));
            Xunit.Assert.All(y[..6], v => Xunit.Assert.Equal(0f, v));
            Xunit.Assert.All(y[9..], v => Xunit.Assert.Equal(0f, v));
            Xunit.Assert.Equal(1.0, y[6..9].Sum(), 5);
            Xunit.Assert.All(grads["x"], v => Xunit.Assert.True(float.IsFinite(v)));
            Xunit.Assert.All(grads["x"][..6], v => Xunit.Assert.Equal(0f, v));
            Xunit.Assert.All(grads["x"][9..], v => Xunit.Assert.Equal(0f, v));
            Xunit.Assert.All(grads["bias"], v => Xunit.Assert.True(float.IsFinite(v)));

            // A key mask that drops every key of item 1 and key 1 of item 0.
            var (ym, gm) = GradCheck.Vjp(d, [x], (s, p) => F.MaskedSoftmax(p("x"), keyMask: s.Upload(new[] { 1, 0, 1, 0, 0, 0 }, new Shape(2, 3))), GradCheck.Values(9, 12));
            Xunit.Assert.All(ym[6..], v => Xunit.Assert.Equal(0f, v));
            Xunit.Assert.All(gm["x"][6..], v => Xunit.Assert.Equal(0f, v));
            Xunit.Assert.Equal(0f, ym[1]);
            Xunit.Assert.Equal(1.0, ym[..3].Sum(), 5);
        }
    }

    [Fact]
    public void Bad_masks_name_the_shapes_and_the_fix()
    {
        using var step = Devices.Cpu.BeginStep();
        var x = step.Upload(new float[24], new Shape(2, 3, 4));
        var e = Xunit.Assert.Throws<ArgumentException>(() => F.MaskedSoftmax(x, bias: step.Upload(new float[12], new Shape(4, 3))));
        Xunit.Assert.Contains("(4, 3)", e.Message);
        Xunit.Assert.Contains("(2, 3, 4)", e.Message);
        Xunit.Assert.Contains("trailing dimensions", e.Message);
        e = Xunit.Assert.Throws<ArgumentException>(() => F.MaskedSoftmax(x, keyLengths: step.Upload(new[] { 1, 2, 3 }, new Shape(3))));
        Xunit.Assert.Contains("Int32 (2)", e.Message);
        e = Xunit.Assert.Throws<ArgumentException>(() => F.MaskedSoftmax(x, keyMask: step.Upload(new int[8], new Shape(2, 4)), keyLengths: step.Upload(new[] { 1, 2 }, new Shape(2))));
        Xunit.Assert.Contains("give one", e.Message);
        e = Xunit.Assert.Throws<ArgumentException>(() => F.MaskedSoftmax(x, keyMask: step.Upload(new int[6], new Shape(2, 3))));
        Xunit.Assert.Contains("Int32 (2, 4)", e.Message);
        var v = step.Upload(new float[4], new Shape(4));
        e = Xunit.Assert.Throws<ArgumentException>(() => F.MaskedSoftmax(v, causal: true));
        Xunit.Assert.Contains("rank 2", e.Message);
    }
}
