using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime.Cuda;
using MathNet.Numerics;

namespace IlgpuTrain.Properties.Kernels;

/// <summary>
/// Activations: kernels equal their float64 references on every variant; derivatives equal
/// central differences of the float64 forward; known values; erf against MathNet; no PTX tanh.approx.
/// </summary>
public class ActivationsProperties
{
    // Tolerances of the float kernels against the float64 references, |k - r| <= atol + rtol |r|.
    // Each bound is about twice the worst error seen on the CPU accelerator over 1.3M inputs
    // (uniform in [-12, 12], magnitudes 1e-30 to 1e4, Gens.ActivationSpecials). On PTX, XMath.Exp
    // is ex2.approx of x*log2(e): there, add about |x| * 6e-8 relative wherever exp is used.

    // ReLU and LeakyReLU are a comparison and at most one float product, which rounds the exact
    // product once, as the reference's cast of its float64 product does.
    private static readonly Tol Exact = new(0, 0);

    // GELU: 0.5 x (1 + erf(x / sqrt 2)) cancels for negative x (as PyTorch's does), so part of the
    // error is absolute: erf is within 6.4e-8 absolute.
    private static readonly Tol GeluForward = new(2.5e-7, 3e-7);

    // GELU' = Phi(x) + x phi(x) cancels near its zero (x = -0.75) and in the left tail.
    private static readonly Tol GeluBackward = new(2.5e-7, 4e-7);

    // tanh-GELU = x sigmoid(2u): no cancellation, but sigmoid(2u) amplifies the rounding of u by |2u|
    // for negative x (as PyTorch's 1 + tanh(u) does): absolute near x = -1.4, relative elsewhere.
    private static readonly Tol GeluTanhForward = new(1e-7, 5e-7);

    // tanh-GELU' = sigmoid(2u) + 2x sigmoid(2u) sigmoid(-2u) u' cancels near its zero (x = -0.75).
    private static readonly Tol GeluTanhBackward = new(4e-7, 4e-7);

    // tanh: relative for every |x|, tiny ones included (no absolute slack), 1.5 ulp.
    private static readonly Tol TanhForward = new(0, 3e-7);

    // sech^2 = 4e / (1 + e)^2 is relative; the float64 reference 1 - tanh^2 is 0 past |x| = 19.
    private static readonly Tol TanhBackward = new(1e-15, 6e-7);

    // sigmoid: relative down to float subnormals (sigmoid(-100) = 3.7e-44).
    private static readonly Tol SigmoidForward = new(1e-44, 5e-7);

    // sigmoid' = e / (1 + e)^2: four roundings after exp.
    private static readonly Tol SigmoidBackward = new(1e-44, 8e-7);

    // SiLU = x sigmoid(x): relative; subnormal results (x below -87) keep only absolute accuracy.
    private static readonly Tol SiluForward = new(1e-40, 5e-7);

    // SiLU' = sigmoid(x) (1 + x sigmoid(-x)) cancels at its zero (x = -1.28).
    private static readonly Tol SiluBackward = new(4e-7, 4e-7);

    // Central differences of the float64 reference: truncation h^2 f'''/6 ~ 1e-10, rounding 1e-16 |f| / h ~ 1e-10.
    private const double FdStep = 1e-5;
    private const double FdTol = 1e-8;

    // ReLU and LeakyReLU have a kink at 0: central differences straddling it are meaningless.
    private const double KinkBand = 1e-3;

    // Our float64 erf against MathNet's: series and continued fraction are within a few ulp.
    private const double Erf64Rtol = 4e-15;

    // Our float erf (Juffa's polynomial without FMA) against the exact value: 1.08 ulp measured, relative
    // everywhere (an ulp is at most 1.19e-7 of the value); below 1e-38, erf(x) = 1.13 x is a float
    // subnormal, whose spacing float.Epsilon is the only accuracy left.
    private const double ErfFloatRtol = 2e-7;
    private const double ErfFloatAtol = float.Epsilon;

    private static readonly Activation Relu = new(
        "Relu", Activations.Relu, Activations.ReluBackward, ActivationsReference.ReluReference, ActivationsReference.ReluBackwardReference,
        ActivationsReference.ReluReference, ActivationsReference.ReluDerivativeReference, Exact, Exact, Kinked: true);

    private static readonly Activation Gelu = new(
        "Gelu", (h, x, y) => Activations.Gelu(h, x, y), (h, x, dy, dx) => Activations.GeluBackward(h, x, dy, dx),
        (x, y) => ActivationsReference.GeluReference(x, y), (x, dy, dx) => ActivationsReference.GeluBackwardReference(x, dy, dx),
        x => ActivationsReference.GeluReference(x), x => ActivationsReference.GeluDerivativeReference(x), GeluForward, GeluBackward);

    private static readonly Activation GeluTanh = new(
        "GeluTanh", (h, x, y) => Activations.Gelu(h, x, y, GeluApproximation.Tanh), (h, x, dy, dx) => Activations.GeluBackward(h, x, dy, dx, GeluApproximation.Tanh),
        (x, y) => ActivationsReference.GeluReference(x, y, GeluApproximation.Tanh), (x, dy, dx) => ActivationsReference.GeluBackwardReference(x, dy, dx, GeluApproximation.Tanh),
        x => ActivationsReference.GeluReference(x, GeluApproximation.Tanh), x => ActivationsReference.GeluDerivativeReference(x, GeluApproximation.Tanh), GeluTanhForward, GeluTanhBackward);

    private static readonly Activation Tanh = new(
        "Tanh", Activations.Tanh, Activations.TanhBackward, ActivationsReference.TanhReference, ActivationsReference.TanhBackwardReference,
        ActivationsReference.TanhReference, ActivationsReference.TanhDerivativeReference, TanhForward, TanhBackward);

    private static readonly Activation Sigmoid = new(
        "Sigmoid", Activations.Sigmoid, Activations.SigmoidBackward, ActivationsReference.SigmoidReference, ActivationsReference.SigmoidBackwardReference,
        ActivationsReference.SigmoidReference, ActivationsReference.SigmoidDerivativeReference, SigmoidForward, SigmoidBackward);

    private static readonly Activation Silu = new(
        "Silu", Activations.Silu, Activations.SiluBackward, ActivationsReference.SiluReference, ActivationsReference.SiluBackwardReference,
        ActivationsReference.SiluReference, ActivationsReference.SiluDerivativeReference, SiluForward, SiluBackward);

    private static readonly Activation[] All = [Relu, LeakyRelu(LeakyReluOp.DefaultNegativeSlope), Gelu, GeluTanh, Tanh, Sigmoid, Silu];

    private delegate void SpanForward(ReadOnlySpan<float> x, Span<float> y);

    private delegate void SpanBackward(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx);

    // ---------------------------------------------------------------- (a) kernel == reference

    [Property(MaxTest = 30)]
    public Property Relu_equals_reference() => EqualsReference(Relu);

    [Property(MaxTest = 30)]
    public Property LeakyRelu_equals_reference() =>
        Prop.ForAll(Gens.ActivationBackwardInput.ToArbitrary(), Gens.NegativeSlope.ToArbitrary(), (p, slope) =>
            EqualsReference(LeakyRelu(slope), p.X, p.Dy).Label($"slope = {slope:R}"));

    [Property(MaxTest = 30)]
    public Property Gelu_equals_reference() => EqualsReference(Gelu);

    [Property(MaxTest = 30)]
    public Property GeluTanh_equals_reference() => EqualsReference(GeluTanh);

    [Property(MaxTest = 30)]
    public Property Tanh_equals_reference() => EqualsReference(Tanh);

    [Property(MaxTest = 30)]
    public Property Sigmoid_equals_reference() => EqualsReference(Sigmoid);

    [Property(MaxTest = 30)]
    public Property Silu_equals_reference() => EqualsReference(Silu);

    [Property(MaxTest = 20)]
    public Property In_place_equals_out_of_place() =>
        Prop.ForAll(Gens.ActivationBackwardInput.ToArbitrary(), p =>
        {
            var d = Devices.Cpu;
            var result = true.Label("in place");
            foreach (var a in All)
            {
                var y = RunForward(d, a.Forward, p.X);
                var dx = RunBackward(d, a.Backward, p.X, p.Dy);
                using var xy = d.Upload(p.X);
                a.Forward(d.Kernels, xy.View<float>(), xy.View<float>());
                using var x = d.Upload(p.X);
                using var dydx = d.Upload(p.Dy);
                a.Backward(d.Kernels, x.View<float>(), dydx.View<float>(), dydx.View<float>());
                result = result
                    .And(Close.All(xy.ToHost(), y, 0, 0, $"{a.Name} y aliasing x"))
                    .And(Close.All(dydx.ToHost(), dx, 0, 0, $"{a.Name} dx aliasing dy"));
            }

            return result.Label($"n = {p.X.Length}");
        });

    // ---------------------------------------------------------------- (b) the math

    [Property(MaxTest = 20)]
    public Property Relu_derivative_is_the_central_difference() => DerivativeIsCentralDifference(Relu);

    [Property(MaxTest = 20)]
    public Property LeakyRelu_derivative_is_the_central_difference() =>
        Prop.ForAll(Gens.NegativeSlope.ToArbitrary(), slope => DerivativeIsCentralDifference(LeakyRelu(slope)).Label($"slope = {slope:R}"));

    [Property(MaxTest = 20)]
    public Property Gelu_derivative_is_the_central_difference() => DerivativeIsCentralDifference(Gelu);

    [Property(MaxTest = 20)]
    public Property GeluTanh_derivative_is_the_central_difference() => DerivativeIsCentralDifference(GeluTanh);

    [Property(MaxTest = 20)]
    public Property Tanh_derivative_is_the_central_difference() => DerivativeIsCentralDifference(Tanh);

    [Property(MaxTest = 20)]
    public Property Sigmoid_derivative_is_the_central_difference() => DerivativeIsCentralDifference(Sigmoid);

    [Property(MaxTest = 20)]
    public Property Silu_derivative_is_the_central_difference() => DerivativeIsCentralDifference(Silu);

    [Fact]
    public void Known_values()
    {
        // Exact decimal values of GELU(1) = Phi(1), tanh-GELU(1) and SiLU(1) = sigmoid(1), from float64 math.
        const double gelu1 = 0.8413447460685429, geluTanh1 = 0.8411919906082768, silu1 = 0.7310585786300049;
        Assert.Equal(gelu1, ActivationsReference.GeluReference(1.0), 15);
        Assert.Equal(geluTanh1, ActivationsReference.GeluReference(1.0, GeluApproximation.Tanh), 15);
        Assert.Equal(silu1, ActivationsReference.SiluReference(1.0), 15);

        // One float rounding of values in [0.5, 1): within 1 ulp = 6e-8.
        const double oneUlp = 6e-8;
        AssertClose(gelu1, Forward(Gelu, 1f), oneUlp, "GELU(1)");
        AssertClose(geluTanh1, Forward(GeluTanh, 1f), oneUlp, "GELU_tanh(1)");
        AssertClose(silu1, Forward(Silu, 1f), oneUlp, "SiLU(1)");
        Assert.Equal(0.5f, Forward(Sigmoid, 0f));
        Assert.Equal(0.25f, Derivative(Sigmoid, 0f));
        Assert.Equal(0f, Forward(Tanh, 0f));
        Assert.Equal(1f, Derivative(Tanh, 0f));
        Assert.Equal(0f, Forward(Gelu, 0f));
        Assert.Equal(0.5f, Derivative(Gelu, 0f));
        Assert.Equal(0.5f, Derivative(GeluTanh, 0f));
        Assert.Equal(0.5f, Derivative(Silu, 0f));
        Assert.Equal(-0.02f, Forward(LeakyRelu(0.01f), -2f));
        Assert.Equal(3f, Forward(Relu, 3f));
        Assert.Equal(0f, Forward(Relu, -3f));
    }

    [Fact]
    public void Derivatives_at_kinks_follow_PyTorch()
    {
        Assert.Equal(0f, Derivative(Relu, 0f));
        Assert.Equal(0.01f, Derivative(LeakyRelu(0.01f), 0f));
        Assert.Equal(0.2f, Derivative(LeakyRelu(0.2f), 0f));
        Assert.Equal(1f, Derivative(Relu, float.Epsilon));
        Assert.Equal(0f, Derivative(Relu, -float.Epsilon));
    }

    [Fact]
    public void Saturated_values_are_exact_and_never_NaN()
    {
        // tanh(x) rounds to exactly 1 from x = 9.1 on, sigmoid(x) from x = 17.4 on.
        float[] large = [10f, 20f, 50f, 88f, 100f, 1e4f, 1e30f, float.MaxValue, float.PositiveInfinity];
        foreach (var v in large)
        {
            Assert.Equal(1f, Forward(Tanh, v));
            Assert.Equal(-1f, Forward(Tanh, -v));
            if (v >= 20f)
                Assert.Equal(1f, Forward(Sigmoid, v));
            AssertFiniteAtLeastZero(Derivative(Tanh, v), $"tanh'({v})");
            AssertFiniteAtLeastZero(Derivative(Tanh, -v), $"tanh'({-v})");
            AssertFiniteAtLeastZero(Forward(Sigmoid, -v), $"sigmoid({-v})");
            AssertFiniteAtLeastZero(Derivative(Sigmoid, v), $"sigmoid'({v})");
            AssertFiniteAtLeastZero(Derivative(Sigmoid, -v), $"sigmoid'({-v})");
        }

        // sigmoid(-100) = 3.7e-44 in float64 (a float subnormal): zero for every purpose, never 0/0.
        float s = Forward(Sigmoid, -100f);
        Assert.True(s >= 0f && s <= 1e-40f, $"sigmoid(-100) = {s:R}");
        Assert.Equal(0f, Forward(Sigmoid, -1e30f));
        Assert.Equal(0f, Derivative(Tanh, 100f));
        Assert.Equal(1f, Derivative(GeluTanh, 1e30f));
        Assert.Equal(0f, Derivative(GeluTanh, -1e30f));
        Assert.Equal(1f, Derivative(Gelu, 1e30f));
        Assert.Equal(1f, Derivative(Silu, 1e30f));
    }

    [Property(MaxTest = 30)]
    public Property Tanh_keeps_relative_accuracy_for_tiny_inputs() =>
        Prop.ForAll(Gen.Choose(0, 1 << 24).Select(k => (float)Math.Pow(10, -30 + (31.0 * k / (1 << 24)))).ArrayOf().ToArbitrary(), xs =>
        {
            // 1 - 2 / (exp(2x) + 1) has no correct digit below |x| = 3e-8; tanh(x) = x - x^3/3 + ...
            var x = xs.Concat(xs.Select(v => -v)).ToArray();
            var exact = x.Select(v => Math.Tanh(v)).ToArray();
            return Close.All(RunForward(Devices.Cpu, Tanh.Forward, x), exact, 0, TanhForward.Rtol, "tanh");
        });

    [Property(MaxTest = 30)]
    public Property Float_erf_matches_MathNet_relatively() =>
        Prop.ForAll(Gens.ActivationInput.ToArbitrary(), x =>
        {
            var got = x.Select(v => ActivationMath.Erf(new Lane1(v)).V).ToArray();
            var exact = x.Select(v => SpecialFunctions.Erf(v)).ToArray();
            return Close.All(got, exact, ErfFloatAtol, ErfFloatRtol, "erf(float)");
        });

    [Property(MaxTest = 30)]
    public Property Float64_erf_and_erfc_match_MathNet() =>
        Prop.ForAll(Gen.Choose(-1_000_000, 1_000_000).Select(k => k * 7e-6).ArrayOf().ToArbitrary(), xs =>
        {
            var result = true.Label("erf64");
            foreach (var v in xs)
            {
                result = result
                    .And(Close.Scalar(ActivationsReference.ErfReference(v), SpecialFunctions.Erf(v), 0, Erf64Rtol, $"erf({v:R})"))
                    .And(Close.Scalar(ActivationsReference.ErfcReference(Math.Abs(v)), SpecialFunctions.Erfc(Math.Abs(v)), 0, Erf64Rtol * 250, $"erfc({Math.Abs(v):R})"));
            }

            return result;
        });

    [Property(MaxTest = 30)]
    public Property Gelu_equals_x_Phi_from_MathNet_erf() =>
        Prop.ForAll(Gens.ActivationInput.ToArbitrary(), x =>
        {
            var exact = x.Select(v => 0.5 * v * (1 + SpecialFunctions.Erf(v / Math.Sqrt(2)))).ToArray();
            return Close.All(RunForward(Devices.Cpu, Gelu.Forward, x), exact, GeluForward.Atol, GeluForward.Rtol, "GELU vs MathNet");
        });

    [Fact]
    public void Ptx_never_uses_approximate_tanh()
    {
        // XMath.Tanh compiles to tanh.approx.f32 (relative error ~5e-4); the CPU accelerator runs
        // .NET's tanh instead, so only the PTX text can show it.
        var defs = KernelCatalog.All
            .Where(k => k.Method.IsGenericMethod && k.Method.GetGenericArguments().Any(t => typeof(IActivationOp).IsAssignableFrom(t)))
            .ToList();
        Assert.Equal(2 * 7, defs.Count);
        using var ctx = Context.Create(b => b.EnableAlgorithms());
        using var backend = new PTXBackend(ctx, CudaArchitecture.SM_90, CudaInstructionSet.ISA_80, null!);
        foreach (var def in defs)
        {
            var compiled = (PTXCompiledKernel)backend.Compile(EntryPointDescription.FromExplicitlyGroupedKernel(def.Method), default);
            Assert.False(compiled.PTXAssembly.Contains("tanh.approx", StringComparison.Ordinal), $"{def.Name} uses tanh.approx");
        }
    }

    [Fact]
    public void Mismatched_lengths_name_the_op_and_both_sizes()
    {
        var d = Devices.Cpu;
        using var a = d.Upload(new float[5]);
        using var b = d.Upload(new float[6]);
        var e = Assert.Throws<ArgumentException>(() => Activations.Gelu(d.Kernels, a.View<float>(), b.View<float>()));
        Assert.Contains("Gelu", e.Message);
        Assert.Contains("5", e.Message);
        Assert.Contains("6", e.Message);
        e = Assert.Throws<ArgumentException>(() => Activations.SiluBackward(d.Kernels, a.View<float>(), a.View<float>(), b.View<float>()));
        Assert.Contains("SiluBackward", e.Message);
        Assert.Contains("dx", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => Activations.Gelu(d.Kernels, a.View<float>(), a.View<float>(), (GeluApproximation)7));
    }

    // ---------------------------------------------------------------- helpers

    private static Activation LeakyRelu(float slope) => new(
        "LeakyRelu",
        (h, x, y) => Activations.LeakyRelu(h, x, y, slope),
        (h, x, dy, dx) => Activations.LeakyReluBackward(h, x, dy, dx, slope),
        (x, y) => ActivationsReference.LeakyReluReference(x, y, slope),
        (x, dy, dx) => ActivationsReference.LeakyReluBackwardReference(x, dy, dx, slope),
        x => ActivationsReference.LeakyReluReference(x, slope),
        x => ActivationsReference.LeakyReluDerivativeReference(x, slope),
        Exact,
        Exact,
        Kinked: true);

    private static Property EqualsReference(Activation a) =>
        Prop.ForAll(Gens.ActivationBackwardInput.ToArbitrary(), p => EqualsReference(a, p.X, p.Dy));

    private static Property EqualsReference(Activation a, float[] x, float[] dy)
    {
        var y = new float[x.Length];
        var dx = new float[x.Length];
        a.ForwardReference(x, y);
        a.BackwardReference(x, dy, dx);
        var result = true.Label(a.Name);
        foreach (var d in Devices.All)
        {
            result = result
                .And(Close.All(RunForward(d, a.Forward, x), y, a.ForwardTol.Atol, a.ForwardTol.Rtol, $"{a.Name} forward on {Devices.Describe(d)}"))
                .And(Close.All(RunBackward(d, a.Backward, x, dy), dx, a.BackwardTol.Atol, a.BackwardTol.Rtol, $"{a.Name} backward on {Devices.Describe(d)}"));
        }

        return result.Label($"n = {x.Length}");
    }

    // The kernel's dx (with dy = 1) and the reference derivative against central differences of the
    // float64 reference forward: neither shares code with the forward it is compared to.
    private static Property DerivativeIsCentralDifference(Activation a) =>
        Prop.ForAll(Gens.DerivativePoints.ToArbitrary(), points =>
        {
            var x = a.Kinked ? points.Where(v => Math.Abs(v) > KinkBand).ToArray() : points;
            var fd = x.Select(v =>
            {
                double h = FdStep * Math.Max(1, Math.Abs(v));
                return (a.F(v + h) - a.F(v - h)) / (2 * h);
            }).ToArray();
            var kernel = RunBackward(Devices.Cpu, a.Backward, x, Enumerable.Repeat(1f, x.Length).ToArray());
            var reference = x.Select(v => (float)a.DF(v)).ToArray();
            return Close.All(kernel, fd, a.BackwardTol.Atol + FdTol, a.BackwardTol.Rtol + FdTol, $"{a.Name} kernel f' vs central difference")
                .And(Close.All(reference, fd, FdTol, 6e-8 + FdTol, $"{a.Name} reference f' vs central difference"));
        });

    private static float[] RunForward(Device d, Action<KernelHost, ArrayView<float>, ArrayView<float>> forward, float[] x)
    {
        using var tx = d.Upload(x);
        using var ty = d.Poisoned(x.Length);
        forward(d.Kernels, tx.View<float>(), ty.View<float>());
        return ty.ToHost();
    }

    private static float[] RunBackward(Device d, Action<KernelHost, ArrayView<float>, ArrayView<float>, ArrayView<float>> backward, float[] x, float[] dy)
    {
        using var tx = d.Upload(x);
        using var tdy = d.Upload(dy);
        using var tdx = d.Poisoned(x.Length);
        backward(d.Kernels, tx.View<float>(), tdy.View<float>(), tdx.View<float>());
        return tdx.ToHost();
    }

    private static float Forward(Activation a, float x) => RunForward(Devices.Cpu, a.Forward, [x])[0];

    private static float Derivative(Activation a, float x) => RunBackward(Devices.Cpu, a.Backward, [x], [1f])[0];

    private static void AssertClose(double expected, float actual, double atol, string what) =>
        Assert.True(Math.Abs(actual - expected) <= atol, $"{what} = {actual:R}, expected {expected:R}");

    private static void AssertFiniteAtLeastZero(float v, string what) =>
        Assert.True(float.IsFinite(v) && v >= 0f, $"{what} = {v:R}");

    private sealed record Tol(double Atol, double Rtol);

    private sealed record Activation(
        string Name,
        Action<KernelHost, ArrayView<float>, ArrayView<float>> Forward,
        Action<KernelHost, ArrayView<float>, ArrayView<float>, ArrayView<float>> Backward,
        SpanForward ForwardReference,
        SpanBackward BackwardReference,
        Func<double, double> F,
        Func<double, double> DF,
        Tol ForwardTol,
        Tol BackwardTol,
        bool Kinked = false);
}
