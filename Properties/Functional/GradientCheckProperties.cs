namespace IlgpuTrain.Properties.Functional;

/// <summary>
/// The public GradientCheck: its finite differences equal known derivatives, it passes a correct
/// op and fails (naming what) an op whose VJP or forward is wrong, and refuses inconsistent arguments.
/// </summary>
public class GradientCheckProperties
{
    private static Gen<float[]> Values => Gen.Choose(1, 40).SelectMany(n => Gens.Floats(n, -3f, 3f));

    // dx = dy s, missing Swish's x s (1 - s) term: wrong wherever x is not near 0.
    private static Tensor WrongSwish(Tensor x) => F.Custom("WrongSwish", [x], _ => F.Mul(x, F.Sigmoid(x)), g => g.Accumulate(x, F.Mul(g.OutputGradTensor, F.Sigmoid(x))));

    [Property(MaxTest = 30)]
    public Property Finite_differences_of_a_cubic_equal_its_derivative() =>
        Prop.ForAll(Values.ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), (x, seed) =>
        {
            // sum(dOut * x^3) has gradient 3 x^2 dOut; central differences are exact up to h^2 x.
            var dOut = GradCheck.Values(seed, x.Length).Select(v => (double)v).ToArray();
            var g = GradientCheck.FiniteDifference(v => v[0].Select(a => a * a * a).ToArray(), [x.Select(v => (double)v).ToArray()], 0, dOut);
            var expected = x.Select((v, i) => 3.0 * v * v * dOut[i]).ToArray();
            var result = true.Label("cubic");
            for (int i = 0; i < x.Length; i++)
                result = result.And(Close.Scalar(g[i], expected[i], 1e-7, 1e-7, $"g[{i}]"));
            return result;
        });

    [Property(MaxTest = 20)]
    public Property A_correct_op_passes_and_a_wrong_vjp_or_forward_fails_naming_what() =>
        Prop.ForAll(Values.ToArbitrary(), x =>
        {
            var d = Devices.Cpu;
            (Shape, float[])[] inputs = [(new Shape(x.Length), x)];
            double[] Swish(IReadOnlyList<double[]> v) => v[0].Select(a => a / (1 + Math.Exp(-a))).ToArray();
            var good = GradientCheck.Run(d, inputs, xs => F.Silu(xs[0]), Swish);
            var ones = new GradientCheckOptions { OutputGrad = Enumerable.Repeat(1f, x.Length).ToArray() };
            var wrongVjp = GradientCheck.Run(d, inputs, xs => WrongSwish(xs[0]), Swish, ones);
            var wrongForward = GradientCheck.Run(d, inputs, xs => F.Sigmoid(xs[0]), Swish);
            // With dOut = 1 the missing term x s (1 - s) exceeds the tolerance once |x| > ~0.01 somewhere.
            bool vjpDetectable = x.Any(v => Math.Abs(v) > 0.05);
            return good.Passed.Label($"SiLU passes:{Environment.NewLine}{good}")
                .And((!vjpDetectable || (!wrongVjp.Passed && wrongVjp.Comparisons.Single(c => !c.Passed).What == "d/d inputs[0]")).Label($"the wrong VJP fails at d/d inputs[0]:{Environment.NewLine}{wrongVjp}"))
                .And((!wrongForward.Passed && wrongForward.Comparisons.Where(c => !c.Passed).Any(c => c.What.StartsWith("forward", StringComparison.Ordinal))).Label($"the wrong forward fails:{Environment.NewLine}{wrongForward}"));
        });

    [Fact]
    public void ThrowIfFailed_throws_with_the_report_and_bad_arguments_are_refused()
    {
        var d = Devices.Cpu;
        var x = new[] { -2f, -1f, 0.5f, 1.5f, 3f };
        (Shape, float[])[] inputs = [(new Shape(5), x)];
        double[] Swish(IReadOnlyList<double[]> v) => v[0].Select(a => a / (1 + Math.Exp(-a))).ToArray();
        GradientCheck.Run(d, inputs, xs => F.Silu(xs[0]), Swish).ThrowIfFailed();
        var e = Assert.Throws<InvalidOperationException>(() => GradientCheck.Run(d, inputs, xs => WrongSwish(xs[0]), Swish).ThrowIfFailed());
        Assert.Contains("d/d inputs[0]: MISMATCH", e.Message);

        Assert.Contains("one value per element", Assert.Throws<ArgumentException>(() => GradientCheck.Run(d, [(new Shape(6), x)], xs => F.Silu(xs[0]), Swish)).Message);
        Assert.Contains("same thing", Assert.Throws<ArgumentException>(() => GradientCheck.Run(d, inputs, xs => F.Sum(xs[0]), Swish)).Message);
        Assert.Contains("OutputGrad", Assert.Throws<ArgumentException>(() => GradientCheck.Run(d, inputs, xs => F.Silu(xs[0]), Swish, new GradientCheckOptions { OutputGrad = [1f] })).Message);
    }

    // With no inputs there is no gradient to compare, so a check that cannot fail would pass.
    [Fact]
    public void No_inputs_is_refused_rather_than_passing_with_nothing_checked()
    {
        var e = Assert.Throws<ArgumentException>(() => GradientCheck.Run(Devices.Cpu, [], _ => throw new InvalidOperationException("the function ran with no inputs"), _ => [1.0]));
        Assert.Contains("no inputs", e.Message);
    }
}
