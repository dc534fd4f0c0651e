using System.Runtime.InteropServices;
using IlgpuTrain.Training;
using IlgpuTrain.Training.Conformance;
using Xunit.Abstractions;

namespace IlgpuTrain.Properties.Functional;

/// <summary>The seeded values of an attention case (<see cref="AttentionData"/>, the reference's inputs).</summary>
internal static class AttentionInputs
{
    /// <summary>Values for <paramref name="c"/> from its seed, scaled by <paramref name="magnitude"/>.</summary>
    public static AttentionData For(AttentionCase c, double magnitude = 1)
    {
        var r = new Random(c.Seed);
        int bias = (int)(c.BiasShape?.Length ?? 0);
        int[] pad = c.Pad switch
        {
            1 => Enumerable.Range(0, c.B).Select(_ => r.Next(0, c.Lk + 1)).ToArray(),
            2 => Enumerable.Range(0, c.B * c.Lk).Select(_ => r.NextDouble() < 0.7 ? 1 : 0).ToArray(),
            _ => [],
        };
        return new(
            GradCheck.Values(c.Seed + 1, (long)c.B * c.H * c.Lq * c.D, magnitude),
            GradCheck.Values(c.Seed + 2, (long)c.B * c.H * c.Lk * c.D, magnitude),
            GradCheck.Values(c.Seed + 3, (long)c.B * c.H * c.Lk * c.Dv),
            GradCheck.Values(c.Seed + 4, bias),
            pad,
            GradCheck.Values(c.Seed + 5, (long)c.B * c.H * c.Lq * c.Dv));
    }
}

/// <summary>
/// F.ScaledDotProductAttention: the managed CPU path and the ILGPU kernels (on the CPU accelerator)
/// against the float64 reference, forward and backward; the VJP against finite differences; the
/// invariants (causality, empty rows, dropout) and PyTorch's own numbers.
/// </summary>
public class AttentionProperties(ITestOutputHelper output)
{
    // float32 dot products and exps over D, Lk <= ~150 terms of magnitude ~1 (one definition with the conformance suite).
    private const double Atol = Tolerances.Attention.Atol;
    private const double Rtol = Tolerances.Attention.Rtol;

    // The PyTorch fixture: float64 results of float32-representable inputs, small shapes.
    private const double TorchTol = 1e-5;

    private static readonly string Fixtures = Path.Combine(AppContext.BaseDirectory, "Fixtures");

    private static Gen<AttentionCase> Cases(int maxL, int maxLk, int maxD, float[] ps) =>
        from b in Gen.Choose(1, 2)
        from h in Gen.Choose(1, 2)
        from lq in Gen.Choose(1, maxL)
        from lk in Gen.Choose(1, maxLk)
        from d in Gen.Choose(1, maxD)
        from dv in Gen.Choose(1, maxD)
        from causal in Gen.Elements(false, true)
        from scale in Gen.Elements<float?>(null, null, 0.7f)
        from bias in Gen.Choose(0, 4)
        from pad in Gen.Choose(0, 2)
        from p in Gen.Elements(ps)
        from seed in Gen.Choose(0, 100000)
        select new AttentionCase(b, h, lq, lk, d, dv, causal, scale, bias, pad, p, seed);

    private static Tensor Run(StepScope step, AttentionCase c, AttentionData x, Tensor q, Tensor k, Tensor v, Mode mode = Mode.Train, Tensor? bias = null) =>
        F.ScaledDotProductAttention(
            q, k, v,
            bias: bias ?? (c.BiasShape is { } bs ? step.Upload(x.BiasValues, bs) : null),
            keyPadding: c.Pad == 1 ? step.Upload(x.PadValues, new Shape(c.B)) : c.Pad == 2 ? step.Upload(x.PadValues, new Shape(c.B, c.Lk)) : null,
            dropoutP: c.P,
            causal: c.Causal,
            scale: c.Scale,
            mode: mode,
            rng: c.Rng);

    private static GradInput[] Inputs(AttentionCase c, AttentionData x) =>
    [
        new("q", new Shape(c.B, c.H, c.Lq, c.D), x.Q),
        new("k", new Shape(c.B, c.H, c.Lk, c.D), x.K),
        new("v", new Shape(c.B, c.H, c.Lk, c.Dv), x.V),
    ];

    // As Inputs, with the bias (when the case has one) as a fourth input that needs a gradient.
    private static GradInput[] InputsWithBias(AttentionCase c, AttentionData x) =>
        c.BiasShape is { } bs ? [.. Inputs(c, x), new("bias", bs, x.BiasValues)] : Inputs(c, x);

    // The function of q, k, v (and the bias when it is an input).
    private static Tensor RunWithBias(StepScope step, AttentionCase c, AttentionData x, Func<string, Tensor> p) =>
        Run(step, c, x, p("q"), p("k"), p("v"), bias: c.Bias != 0 ? p("bias") : null);

    private static double[] D(float[] a) => a.Select(e => (double)e).ToArray();

    private static float[] Forward(Device device, AttentionCase c, AttentionData x, Mode mode = Mode.Train)
    {
        using var step = device.BeginStep();
        return Run(step, c, x, step.Upload(x.Q, new Shape(c.B, c.H, c.Lq, c.D)), step.Upload(x.K, new Shape(c.B, c.H, c.Lk, c.D)), step.Upload(x.V, new Shape(c.B, c.H, c.Lk, c.Dv)), mode).ToHost();
    }

    // Small cases: the tape's VJP on every backend (and the reference's own chain rule) equal central
    // finite differences of the float64 reference, dropout mask included; the forward equals the reference.
    [Property(MaxTest = 40)]
    public Property Vjp_matches_finite_differences_on_every_backend() =>
        Prop.ForAll(Cases(6, 7, 5, [0f, 0f, 0.4f]).ToArbitrary(), c =>
        {
            var x = AttentionInputs.For(c);
            var inputs = InputsWithBias(c, x);
            double[] Reference(double[][] a) => AttentionReference.Run(c, x, a[0], a[1], a[2], null, a.Length > 3 ? a[3] : null).Y;
            var result = true.Label(c.ToString());
            foreach (var device in Devices.All)
                result = result.And(GradCheck.Check(device, inputs, (step, p) => RunWithBias(step, c, x, p), Reference, x.DOut, Atol, Rtol).Label($"on {Devices.Describe(device)}"));

            var (_, dq, dk, dv, ds) = AttentionReference.Run(c, x, D(x.Q), D(x.K), D(x.V), D(x.DOut));
            var plain = new[] { D(x.Q), D(x.K), D(x.V), D(x.BiasValues) }[..inputs.Length];
            var names = new[] { "dq", "dk", "dv", "dbias" };
            var analytic = new[] { dq, dk, dv, AttentionReference.BiasGrad(c, ds) };
            for (int n = 0; n < inputs.Length; n++)
            {
                var fd = GradCheck.FiniteDifference(Reference, plain, n, D(x.DOut));
                result = result.And(Close.All(analytic[n].Select(e => (float)e).ToArray(), fd, 1e-6, 1e-6, $"reference {names[n]} vs finite differences"));
            }

            return result;
        });

    // Shapes across the tiles (16 rows and keys per GPU tile, 64 keys per CPU tile, 32 query rows per
    // GPU group): forward and gradients on every backend equal the float64 reference.
    [Property(MaxTest = 25)]
    public Property Forward_and_gradients_equal_the_reference_across_tiles() =>
        Prop.ForAll(Cases(40, 150, 20, [0f, 0f, 0.3f]).ToArbitrary(), c =>
        {
            var x = AttentionInputs.For(c);
            var (y, dq, dk, dv, ds) = AttentionReference.Run(c, x, D(x.Q), D(x.K), D(x.V), D(x.DOut));
            var result = true.Label(c.ToString());
            foreach (var device in Devices.All)
            {
                var (yd, g) = GradCheck.Vjp(device, InputsWithBias(c, x), (step, p) => RunWithBias(step, c, x, p), x.DOut);
                string on = $" on {Devices.Describe(device)}";
                result = result
                    .And(Close.All(yd, y, Atol, Rtol, "y" + on))
                    .And(Close.All(g["q"], dq, Atol, Rtol, "dq" + on))
                    .And(Close.All(g["k"], dk, Atol, Rtol, "dk" + on))
                    .And(Close.All(g["v"], dv, Atol, Rtol, "dv" + on));
                if (c.Bias != 0)
                    result = result.And(Close.All(g["bias"], AttentionReference.BiasGrad(c, ds), Atol, Rtol, "dbias" + on));
            }

            return result;
        });

    // Self-attention with one tensor as q, k and v: the tape sums the three gradients into it.
    [Property(MaxTest = 1)]
    public Property One_tensor_as_query_key_and_value_gets_the_sum_of_the_three_gradients()
    {
        var c = new AttentionCase(2, 2, 5, 5, 4, 4, true, null, 0, 1, 0.25f, 31);
        var x = AttentionInputs.For(c);
        var inputs = new[] { new GradInput("x", new Shape(c.B, c.H, c.Lq, c.D), x.Q) };
        double[] Reference(double[][] a) => AttentionReference.Run(c, x, a[0], a[0], a[0], null).Y;
        var result = true.Label(c.ToString());
        foreach (var device in Devices.All)
            result = result.And(GradCheck.Check(device, inputs, (step, p) => Run(step, c, x, p("x"), p("x"), p("x")), Reference, x.DOut, Atol, Rtol).Label($"on {Devices.Describe(device)}"));
        return result;
    }

    // is_causal: row i of y reads keys and values 0..i only, so rewriting every later key and value leaves it bit for bit.
    [Property(MaxTest = 20)]
    public Property Causal_row_i_is_independent_of_keys_and_values_after_i() =>
        Prop.ForAll(Cases(20, 40, 8, [0f]).ToArbitrary(), Gen.Choose(0, 39).ToArbitrary(), (c0, cut0) =>
        {
            var c = c0 with { Causal = true };
            int cut = cut0 % Math.Min(c.Lq, c.Lk);
            var x = AttentionInputs.For(c);
            var k2 = (float[])x.K.Clone();
            var v2 = (float[])x.V.Clone();
            var noise = GradCheck.Values(c.Seed + 9, k2.Length + v2.Length, 5);
            for (int bh = 0; bh < c.B * c.H; bh++)
            {
                for (int j = cut + 1; j < c.Lk; j++)
                {
                    for (int e = 0; e < c.D; e++)
                        k2[(((bh * c.Lk) + j) * c.D) + e] = noise[(((bh * c.Lk) + j) * c.D) + e];
                    for (int e = 0; e < c.Dv; e++)
                        v2[(((bh * c.Lk) + j) * c.Dv) + e] = noise[k2.Length + (((bh * c.Lk) + j) * c.Dv) + e];
                }
            }

            var result = true.Label($"{c}, rows 0..{cut}");
            foreach (var device in Devices.All)
            {
                var a = Forward(device, c, x);
                var b = Forward(device, c, x with { K = k2, V = v2 });
                for (int bh = 0; bh < c.B * c.H; bh++)
                {
                    for (int n = bh * c.Lq * c.Dv, end = n + ((cut + 1) * c.Dv); n < end; n++)
                    {
                        if (!Bits.Equal(a[n], b[n]))
                            return false.Label($"{c}: y[{n}] moved from {a[n]:R} to {b[n]:R} on {Devices.Describe(device)} when keys after row {cut} changed");
                    }
                }
            }

            return result;
        });

    // A row with no key to attend to (length 0, an all-zero mask row, or an all -inf bias) gives zeros and zero gradients, never NaN.
    [Fact]
    public void Rows_without_keys_give_zeros_and_zero_gradients()
    {
        var lengths = new AttentionCase(2, 2, 5, 6, 3, 4, false, null, 0, 1, 0f, 17);
        var x = AttentionInputs.For(lengths) with { PadValues = [0, 4] };
        var mask = lengths with { Pad = 2 };
        var xm = x with { PadValues = [0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 0, 1] };
        var bias = lengths with { Pad = 0, Bias = 2 };
        var xb = x with { BiasValues = Enumerable.Range(0, 2 * 5 * 6).Select(n => n < 30 ? float.NegativeInfinity : 0.5f).ToArray() };
        foreach (var device in Devices.All)
        {
            foreach (var (c, data, what) in new[] { (lengths, x, "length 0"), (mask, xm, "all-zero mask"), (bias, xb, "all -inf bias") })
            {
                var (y, g) = GradCheck.Vjp(device, Inputs(c, data), (step, p) => Run(step, c, data, p("q"), p("k"), p("v")), data.DOut);
                string on = $"{what} on {Devices.Describe(device)}";
                Assert.All(y.Concat(g["q"]).Concat(g["k"]).Concat(g["v"]), e => Assert.True(float.IsFinite(e), on));

                // Batch 0 (length 0, a mask row of zeros: rows bh 0, 1) or head 0 (the -inf bias plane: bh 0, 2) is empty.
                foreach (int bh in c.Bias == 2 ? new[] { 0, 2 } : [0, 1])
                {
                    Assert.All(y.AsSpan(bh * c.Lq * c.Dv, c.Lq * c.Dv).ToArray(), e => Assert.Equal(0f, e));
                    Assert.All(g["q"].AsSpan(bh * c.Lq * c.D, c.Lq * c.D).ToArray(), e => Assert.Equal(0f, e));
                    Assert.All(g["k"].AsSpan(bh * c.Lk * c.D, c.Lk * c.D).ToArray(), e => Assert.Equal(0f, e));
                    Assert.All(g["v"].AsSpan(bh * c.Lk * c.Dv, c.Lk * c.Dv).ToArray(), e => Assert.Equal(0f, e));
                }

                var (yRef, _, _, _, _) = AttentionReference.Run(c, data, D(data.Q), D(data.K), D(data.V), null);
                Assert.True(Close.Check(y, yRef.Select(e => (float)e).ToArray(), Atol, Rtol, "y " + on).Ok, on);
            }

            // No keys at all: zeros.
            using var step = device.BeginStep();
            var empty = F.ScaledDotProductAttention(step.Upload(new float[6], new Shape(1, 1, 2, 3)), step.Upload(Array.Empty<float>(), new Shape(1, 1, 0, 3)), step.Upload(Array.Empty<float>(), new Shape(1, 1, 0, 4)));
            Assert.Equal(new float[8], empty.ToHost());
        }
    }

    // Logits of thousands: the online softmax subtracts the running max, so nothing overflows.
    [Fact]
    public void Large_logits_stay_finite_and_exact()
    {
        var c = new AttentionCase(1, 2, 20, 90, 8, 3, false, null, 0, 0, 0f, 5);
        var x = AttentionInputs.For(c, magnitude: 30);
        var (y, dq, dk, dv, _) = AttentionReference.Run(c, x, D(x.Q), D(x.K), D(x.V), D(x.DOut));
        foreach (var device in Devices.All)
        {
            var (yd, g) = GradCheck.Vjp(device, Inputs(c, x), (step, p) => Run(step, c, x, p("q"), p("k"), p("v")), x.DOut);
            string on = Devices.Describe(device);
            // Near-one-hot rows: relative error of a logit difference of ~1e3 is ~1e-4 in float32.
            foreach (var (a, r, what) in new[] { (yd, y, "y"), (g["q"], dq, "dq"), (g["k"], dk, "dk"), (g["v"], dv, "dv") })
            {
                Assert.All(a, e => Assert.True(float.IsFinite(e), $"{what} on {on}"));
                var (ok, label) = Close.Check(a, r.Select(e => (float)e).ToArray(), 5e-2, 5e-2, $"{what} on {on}");
                Assert.True(ok, label);
            }
        }
    }

    // p = 0 in Train and any p in Eval give the very same numbers as no dropout; p > 0 in Train changes them.
    [Fact]
    public void Dropout_p0_and_Eval_are_no_dropout()
    {
        var c = new AttentionCase(2, 2, 9, 11, 4, 3, true, null, 2, 1, 0f, 23);
        var x = AttentionInputs.For(c);
        foreach (var device in Devices.All)
        {
            var plain = Forward(device, c, x, Mode.Eval);
            Assert.Equal(plain, Forward(device, c, x, Mode.Train));
            Assert.Equal(plain, Forward(device, c with { P = 0.5f }, x, Mode.Eval));
            Assert.NotEqual(plain, Forward(device, c with { P = 0.5f }, x, Mode.Train));
        }
    }

    // With uniform weights (q = 0) and v = 1, y_i = (1/Lk) sum_j Z_ij, whose expectation is 1. Over
    // 32768 draws per seed the mean's standard deviation is sqrt(p/(1-p)/32768) < 0.005 for p <= 0.5;
    // the bound 0.03 is 6 sigma (and the seeds are fixed, so the check is deterministic).
    [Theory]
    [InlineData(0.1f, 1)]
    [InlineData(0.3f, 2)]
    [InlineData(0.5f, 3)]
    public void Dropout_preserves_the_mean(float p, int seed)
    {
        var c = new AttentionCase(2, 4, 64, 64, 4, 1, false, null, 0, 0, p, seed);
        var x = AttentionInputs.For(c) with { Q = new float[2 * 4 * 64 * 4], V = Enumerable.Repeat(1f, 2 * 4 * 64).ToArray() };
        foreach (var device in Devices.All)
        {
            var y = Forward(device, c, x);
            double mean = y.Average(e => (double)e);
            double zeros = y.Count(e => e == 0f);
            Assert.True(Math.Abs(mean - 1) < 0.03, $"p {p}: mean {mean} on {Devices.Describe(device)}");
            Assert.True(y.Distinct().Count() > 5, $"p {p}: the output does not vary, so nothing was dropped ({zeros} zeros)");
        }
    }

    [Fact]
    public void Bad_arguments_are_refused_with_the_fix()
    {
        using var step = Devices.Cpu.BeginStep();
        var q = step.Upload(new float[24], new Shape(1, 2, 3, 4));
        var k = step.Upload(new float[40], new Shape(1, 2, 5, 4));
        var v = step.Upload(new float[30], new Shape(1, 2, 5, 3));
        Assert.Contains("k must be (1, 2, Lk, 4)", Assert.Throws<ArgumentException>(() => F.ScaledDotProductAttention(q, step.Upload(new float[30], new Shape(1, 2, 5, 3)), v)).Message);
        Assert.Contains("v must be (1, 2, 5, Dv)", Assert.Throws<ArgumentException>(() => F.ScaledDotProductAttention(q, k, step.Upload(new float[12], new Shape(1, 2, 2, 3)))).Message);
        Assert.Contains("(B, H, Lq, D)", Assert.Throws<ArgumentException>(() => F.ScaledDotProductAttention(step.Upload(new float[12], new Shape(3, 4)), k, v)).Message);
        Assert.Contains("broadcast", Assert.Throws<ArgumentException>(() => F.ScaledDotProductAttention(q, k, v, bias: step.Upload(new float[15], new Shape(5, 3)))).Message);
        Assert.Contains("broadcast", Assert.Throws<ArgumentException>(() => F.ScaledDotProductAttention(q, k, v, bias: step.Upload(new float[45], new Shape(3, 3, 5)))).Message);
        Assert.Contains("valid lengths (1)", Assert.Throws<ArgumentException>(() => F.ScaledDotProductAttention(q, k, v, keyPadding: step.Upload(new[] { 1, 2 }, new Shape(2)))).Message);
        Assert.Contains("Int32", Assert.Throws<ArgumentException>(() => F.ScaledDotProductAttention(q, k, v, keyPadding: step.Upload(new float[5], new Shape(1, 5)))).Message);
        Assert.Contains("needs an rng", Assert.Throws<ArgumentException>(() => F.ScaledDotProductAttention(q, k, v, dropoutP: 0.1f)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => F.ScaledDotProductAttention(q, k, v, dropoutP: 1.5f, rng: Rng.Create(1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => F.ScaledDotProductAttention(q, k, v, scale: float.NaN));
    }

    // The kernels' head-dim limit names the fix.
    [Fact]
    public void Kernels_refuse_head_dims_above_their_tiles()
    {
        using var step = Devices.CpuKernels.BeginStep();
        int d = IlgpuTrain.Kernels.Attention.MaxHeadDim + 1;
        var q = step.Upload(new float[d], new Shape(1, 1, 1, d));
        var e = Assert.Throws<NotSupportedException>(() => F.ScaledDotProductAttention(q, q, q));
        Assert.Contains("Managed", e.Message);
    }

    // PyTorch 1.13 (float64, explicit ops and autograd; Fixtures/make_attention.py) against both backends:
    // y, dq, dk, dv, and dbias where the case has a (broadcast) bias.
    [Theory]
    [InlineData("plain")]
    [InlineData("causal")]
    [InlineData("lengths")]
    [InlineData("mask_bias")]
    [InlineData("bias_heads")]
    public void Matches_PyTorch(string name)
    {
        var io = SafeTensors.Load(Path.Combine(Fixtures, "attention.safetensors"));
        float[] F32(string t) => io.Find($"{name}.{t}")!.ToFloat32();
        double[] F64(string t) => MemoryMarshal.Cast<byte, double>(io.Find($"{name}.{t}")!.Data.Span).ToArray();
        Shape ShapeOf(string t) => new(io.Find($"{name}.{t}")!.Shape.Select(e => (int)e).ToArray());
        var qs = ShapeOf("q");
        var ks = ShapeOf("k");
        var vs = ShapeOf("v");
        bool causal = io.Metadata[$"{name}.causal"] == "1";
        float? scale = io.Metadata[$"{name}.scale"] is { Length: > 0 } sc ? float.Parse(sc, System.Globalization.CultureInfo.InvariantCulture) : null;
        var bias = io.Find($"{name}.bias");
        var lengths = io.Find($"{name}.lengths");
        var mask = io.Find($"{name}.mask");
        var inputs = new[] { new GradInput("q", qs, F32("q")), new GradInput("k", ks, F32("k")), new GradInput("v", vs, F32("v")) }.ToList();
        if (bias is not null)
            inputs.Add(new GradInput("bias", new Shape(bias.Shape.Select(e => (int)e).ToArray()), bias.ToFloat32()));
        foreach (var device in Devices.All)
        {
            var (y, g) = GradCheck.Vjp(
                device, inputs,
                (step, p) => F.ScaledDotProductAttention(
                    p("q"), p("k"), p("v"),
                    bias: bias is null ? null : p("bias"),
                    keyPadding: lengths is not null ? step.Upload(lengths.ToInt32(), new Shape(qs[0])) : mask is not null ? step.Upload(mask.ToInt32(), new Shape(qs[0], ks[2])) : null,
                    causal: causal,
                    scale: scale),
                F32("dout"));
            string on = $"{name} on {Devices.Describe(device)}";
            var compared = new List<(float[], string)> { (y, "y"), (g["q"], "dq"), (g["k"], "dk"), (g["v"], "dv") };
            if (bias is not null)
                compared.Add((g["bias"], "dbias"));
            foreach (var (a, t) in compared)
            {
                var r = F64(t);
                double worst = a.Select((e, n) => Math.Abs(e - r[n])).Max();
                output.WriteLine($"{on}: max |{t} - torch| = {worst:E2}");
                Assert.True(worst <= TorchTol, $"{t} {on}: max |difference| {worst:E3} > {TorchTol}");
            }
        }
    }
}
