using ILGPU.Algorithms;
using IlgpuTrain.Layers;
using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Functional;

// User code: the README's "Your own op, with its own kernel" example, verbatim (a test below
// holds them equal, so the README's code compiles). Everything in this file uses the public API
// only, as code outside the library would.

public static class MyOps
{
    // y = x s, dx = dy s (1 + x (1 - s)), s = sigmoid(x). Grid-stride loops: any launch shape is correct.
    static void SwishKernel(ArrayView<float> x, ArrayView<float> y)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < y.IntLength; i += stride)
            y[i] = x[i] / (1f + XMath.Exp(-x[i]));
    }

    static void SwishBackwardKernel(ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dx)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < dx.IntLength; i += stride)
        {
            float s = 1f / (1f + XMath.Exp(-x[i]));
            dx[i] = dy[i] * s * (1f + (x[i] * (1f - s)));
        }
    }

    static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>>> SwishForward =
        KernelDef.Of<ArrayView<float>, ArrayView<float>>(SwishKernel);

    static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>>> SwishBackward =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, ArrayView<float>>(SwishBackwardKernel);

    public static Tensor Swish(Tensor x) => F.Custom(
        "Swish",
        [x],
        step =>
        {
            var y = step.Allocate(x.Shape);
            var k = step.Device.Kernels;
            if (x.Length > 0)
                k.Load(SwishForward)(k.Stream, k.Launch.GridStride(x.Length), x.View<float>(), y.View<float>());
            return y;
        },
        g =>
        {
            if (g.Needs(x) && x.Length > 0)
                g.Kernels.Load(SwishBackward)(g.Kernels.Stream, g.Kernels.Launch.GridStride(x.Length), x.View<float>(), g.OutputGrad, g.Into(x));
        });
}

public sealed record Swish : ElementwiseLayer
{
    public override Tensor Forward(LayerContext ctx, Tensor x) => MyOps.Swish(x);
}

/// <summary>More user ops: a binary op composed of F.* ops, forward and VJP (the gated unit a sigmoid(b)).</summary>
public static class MoreUserOps
{
    /// <summary>y = a sigmoid(b); da = dy s, db = dy a s (1 - s).</summary>
    /// <param name="a">The value.</param>
    /// <param name="b">The gate, a's shape.</param>
    /// <returns>y.</returns>
    public static Tensor Gate(Tensor a, Tensor b) => F.Custom(
        "Gate",
        [a, b],
        _ => F.Mul(a, F.Sigmoid(b)),
        g =>
        {
            var dy = g.OutputGradTensor;
            var s = F.Sigmoid(b);
            if (g.Needs(a))
                g.Accumulate(a, F.Mul(dy, s));
            if (g.Needs(b))
                g.Accumulate(b, F.Mul(F.Mul(dy, a), F.Add(s, F.Scale(F.Mul(s, s), -1f))));
        });

    /// <summary>float64 reference of <see cref="Gate"/>.</summary>
    /// <param name="a">a.</param>
    /// <param name="b">b.</param>
    /// <returns>a sigmoid(b).</returns>
    public static double[] GateReference(double[] a, double[] b) => a.Select((v, i) => v / (1 + Math.Exp(-b[i]))).ToArray();

    /// <summary>float64 Swish.</summary>
    /// <param name="x">x.</param>
    /// <returns>x sigmoid(x).</returns>
    public static double[] SwishReference(double[] x) => x.Select(v => v / (1 + Math.Exp(-v))).ToArray();
}

/// <summary>
/// F.Custom, from outside the library: a user op with its own ILGPU kernels and one composed of
/// F.* ops match float64 finite differences on both kernel variants; a user layer composes with
/// &gt;&gt;, differentiates and trains; without a tape only the forward runs; misuse fails clearly.
/// </summary>
public class CustomProperties
{
    // float32 exp against float64, O(1) values.
    private const double Atol = 1e-4;
    private const double Rtol = 1e-3;

    private static readonly GradientCheckOptions Tolerances = new() { Atol = Atol, Rtol = Rtol };

    private static Gen<(Shape Shape, float[] A, float[] B, int Seed)> Case =>
        from shape in Gens.OpShape
        from a in Gens.ValuesFor(shape)
        from b in Gens.ValuesFor(shape)
        from seed in Gen.Choose(0, 100000)
        select (shape, a, b, seed);

    private static Property Holds(GradientCheckResult r, string what) => r.Passed.Label($"{what}:{Environment.NewLine}{r}");

    [Property(MaxTest = 25)]
    public Property A_user_op_with_its_own_kernels_matches_finite_differences_on_both_variants() =>
        Prop.ForAll(Case.ToArbitrary(), c =>
        {
            var result = true.Label($"Swish on {c.Shape}");
            foreach (var d in Devices.All)
            {
                var r = GradientCheck.Run(d, [(c.Shape, c.A)], xs => MyOps.Swish(xs[0]), v => MoreUserOps.SwishReference(v[0]), Tolerances with { RandomSeed = c.Seed });
                result = result.And(Holds(r, $"{d.Backend}"));
            }

            return result;
        });

    [Property(MaxTest = 25)]
    public Property A_binary_user_op_composed_of_F_ops_matches_finite_differences_in_both_inputs() =>
        Prop.ForAll(Case.ToArbitrary(), c =>
        {
            var r = GradientCheck.Run(Devices.Cpu, [(c.Shape, c.A), (c.Shape, c.B)], xs => MoreUserOps.Gate(xs[0], xs[1]), v => MoreUserOps.GateReference(v[0], v[1]), Tolerances with { RandomSeed = c.Seed });
            return Holds(r, $"Gate on {c.Shape}");
        });

    [Property(MaxTest = 20)]
    public Property A_binary_op_given_one_tensor_twice_sums_both_gradients() =>
        Prop.ForAll(Case.ToArbitrary(), c =>
        {
            // Gate(x, x) = x sigmoid(x): its gradient is the sum of both operand gradients, which is Swish's.
            var r = GradientCheck.Run(Devices.Cpu, [(c.Shape, c.A)], xs => MoreUserOps.Gate(xs[0], xs[0]), v => MoreUserOps.SwishReference(v[0]), Tolerances with { RandomSeed = c.Seed });
            return Holds(r, $"Gate(x, x) on {c.Shape}");
        });

    [Property(MaxTest = 20)]
    public Property An_input_that_needs_no_gradient_is_skipped_and_the_other_gets_its_full_one() =>
        Prop.ForAll(Case.ToArbitrary(), c =>
        {
            var d = Devices.Cpu;
            using var step = d.BeginStep();
            var a = step.Upload(c.A, c.Shape);
            var b = step.Upload(c.B, c.Shape);  // a constant: not differentiated
            var seed = GradCheck.Values(c.Seed, c.Shape.Length);
            var (_, grads) = Autodiff.Vjp(step, [a], () => MoreUserOps.Gate(a, b), step.Upload(seed, c.Shape));
            var bFixed = c.B.Select(v => (double)v).ToArray();
            var numeric = GradientCheck.FiniteDifference(v => MoreUserOps.GateReference(v[0], bFixed), [c.A.Select(v => (double)v).ToArray()], 0, seed.Select(v => (double)v).ToArray());
            return Close.All(grads[0].ToHost(), numeric, Atol, Rtol, "d/da with b constant").Label($"{c.Shape}");
        });

    [Fact]
    public void Without_a_tape_only_the_forward_runs_and_nothing_is_recorded()
    {
        var d = Devices.Cpu;
        int vjpCalls = 0;
        Tensor Counted(Tensor x) => F.Custom("Counted", [x], _ => MyOps.Swish(x), g => vjpCalls++);
        var values = GradCheck.Values(3, 12, 3);
        using var step = d.BeginStep();
        var x = step.Upload(values, new Shape(3, 4));
        var y = Counted(x);
        Assert.Null(step.Tape);
        Assert.False(y.RequiresGrad);
        var expected = MoreUserOps.SwishReference(values.Select(v => (double)v).ToArray());
        var actual = y.ToHost();
        for (int i = 0; i < actual.Length; i++)
            Assert.True(Math.Abs(actual[i] - expected[i]) <= Atol + (Rtol * Math.Abs(expected[i])), $"forward without a tape [{i}]: {actual[i]} vs {expected[i]}");

        // Recording, but no input needs a gradient (a constant): the op records nothing either.
        using var p = ParamTree.FromHost(d, [KeyValuePair.Create("w", (Array.Empty<int>(), new[] { 2f }))]);
        var (_, grads) = Autodiff.ValueAndGrad(step, p, q =>
        {
            var c = Counted(x);
            Assert.DoesNotContain("Counted", step.Tape!.Ops);
            return F.Mul(F.Sum(c), q["w"]);
        });
        grads.Dispose();
        Assert.Equal(0, vjpCalls);
    }

    [Fact]
    public void F_ops_inside_a_custom_forward_or_its_vjp_are_not_recorded()
    {
        var d = Devices.Cpu;
        using var step = d.BeginStep();
        var a = step.Upload(GradCheck.Values(1, 6), new Shape(6));
        var b = step.Upload(GradCheck.Values(2, 6), new Shape(6));
        List<string> forward = [];
        Tape? tape = null;
        var (_, grads) = Autodiff.Vjp(step, [a, b], () =>
        {
            var y = MoreUserOps.Gate(a, b);
            tape = step.Tape!;
            forward = tape.Ops.ToList();
            return y;
        }, step.Upload(GradCheck.Values(3, 6), new Shape(6)));
        Assert.Equal(["inputs[0]", "inputs[1]", "Gate"], forward);
        Assert.Equal(forward, tape!.Ops);
        Assert.Equal(2, grads.Length);
    }

    [Fact]
    public void Misuse_fails_with_a_message_that_names_the_op_and_the_fix()
    {
        var d = Devices.Cpu;
        using var step = d.BeginStep();
        var x = step.Upload(GradCheck.Values(1, 4), new Shape(4));
        var other = step.Upload(GradCheck.Values(2, 4), new Shape(4));
        var seed = step.Upload(GradCheck.Values(3, 4), new Shape(4));

        // A VJP that writes the gradient of a tensor the op did not declare.
        var undeclared = Assert.Throws<InvalidOperationException>(() => Autodiff.Vjp(step, [x, other], () =>
            F.Custom("Leaky", [x], _ => F.Mul(x, other), g => g.Into(other)), seed));
        Assert.Contains("Leaky backward", undeclared.Message);
        Assert.Contains("not one of the inputs", undeclared.Message);

        // A contribution of the wrong length.
        var length = Assert.Throws<ArgumentException>(() => Autodiff.Vjp(step, [x], () =>
            F.Custom("Short", [x], _ => F.Scale(x, 2f), g => g.Accumulate(x, F.Sum(g.OutputGradTensor))), seed));
        Assert.Contains("Short backward", length.Message);

        // A forward that returns its input.
        var identity = Assert.Throws<ArgumentException>(() => F.Custom("Identity", [x], _ => x, _ => { }));
        Assert.Contains("return a new tensor", identity.Message);

        // A forward that returns a tensor of another step.
        using (var elsewhere = d.BeginStep())
        {
            var foreign = Assert.Throws<ArgumentException>(() => F.Custom("Foreign", [x], _ => elsewhere.Allocate(x.Shape), _ => { }));
            Assert.Contains("step.Allocate", foreign.Message);
            var mixed = Assert.Throws<ArgumentException>(() => F.Custom("Mixed", [x, elsewhere.Upload(GradCheck.Values(4, 4), new Shape(4))], s => s.Allocate(x.Shape), _ => { }));
            Assert.Contains("different steps", mixed.Message);
        }

        Assert.Throws<ArgumentException>(() => F.Custom("Nothing", [], s => s.Allocate(new Shape(1)), _ => { }));

        // A consumed input.
        var consumedInput = step.Upload(GradCheck.Values(5, 4), new Shape(4));
        _ = consumedInput.Reshape(new Shape(2, 2));
        var consumed = Assert.Throws<ConsumedValueException>(() => MyOps.Swish(consumedInput));
        Assert.Contains("Swish", consumed.Message);
    }

    // A user layer in a model: Dense(4) >> Swish >> Dense(3), loss mean(y^2). One ValueAndGrad
    // gives every parameter's gradient and the input's; all equal finite differences of float64.
    [Property(MaxTest = 15)]
    public Property A_user_layer_composes_and_its_gradients_match_finite_differences() =>
        Prop.ForAll(Gen.Choose(1, 4).ToArbitrary(), Gen.Choose(1, 6).ToArbitrary(), Gen.Choose(0, 100000).ToArbitrary(), (n, dIn, seed) =>
        {
            var model = new Dense(4) >> new Swish() >> new Dense(3);
            var d = Devices.Cpu;
            var (ptree, state) = model.Init(d, new Shape(dIn), Rng.Create((ulong)seed));
            using var _p = ptree;
            using var _s = state;
            var host = ptree.ToHost();
            var x = GradCheck.Values(seed + 1, n * dIn, 2);
            using var step = d.BeginStep();
            var xt = step.Upload(x, new Shape(n, dIn));
            var (loss, grads, dInputs) = Autodiff.ValueAndGrad(step, ptree, [xt], p =>
            {
                var y = model.Apply(p, state, xt, Mode.Train, Rng.Create(0)).Y;
                return F.Mean(F.Mul(y, y));
            });
            using var _g = grads;
            var g = grads.ToHost();

            string[] names = ["0.weight", "0.bias", "2.weight", "2.bias"];
            double[][] point = [x.Select(v => (double)v).ToArray(), .. names.Select(k => host[k].Data.Select(v => (double)v).ToArray())];
            double[] Reference(IReadOnlyList<double[]> v)
            {
                var h = MoreUserOps.SwishReference(LayerReference.Dense(v[0], v[1], v[2], dIn, 4));
                var y = LayerReference.Dense(h, v[3], v[4], 4, 3);
                return [y.Sum(t => t * t) / y.Length];
            }

            var result = Close.Scalar(loss.ToHost()[0], Reference(point)[0], Atol, Rtol, "loss");
            result = result.And(Close.All(dInputs[0].ToHost(), GradientCheck.FiniteDifference(Reference, point, 0, [1.0]), Atol, Rtol, "d/dx"));
            for (int k = 0; k < names.Length; k++)
                result = result.And(Close.All(g[names[k]].Data, GradientCheck.FiniteDifference(Reference, point, k + 1, [1.0]), Atol, Rtol, $"d/d{names[k]}"));
            return result.Label($"n {n}, D {dIn}, seed {seed}");
        });

    // A user kernel is held to the library's rule: it compiles for every GPU backend without a GPU.
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void The_user_kernels_compile_for_PTX_and_OpenCL(bool ptx)
    {
        var defs = typeof(MyOps).GetFields(System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.NonPublic)
            .Select(f => f.GetValue(null)).OfType<KernelDef>().ToList();
        Assert.Equal(2, defs.Count);
        foreach (var def in defs)
            IlgpuTrain.Properties.Kernels.Runtime.OfflineBackends.Compile(def, ptx);
    }

    [Fact]
    public void The_README_example_is_this_files_user_code()
    {
        var root = new DirectoryInfo(AppContext.BaseDirectory);
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "IlgpuTrain.sln")))
            root = root.Parent;
        Assert.True(root is not null, $"no IlgpuTrain.sln above {AppContext.BaseDirectory}");
        static string[] Example(string text)
        {
            int start = text.IndexOf("public static class MyOps", StringComparison.Ordinal);
            int end = text.IndexOf("=> MyOps.Swish(x);", start, StringComparison.Ordinal);
            Assert.True(start >= 0 && end > start, "the example's MyOps ... Swish record");
            return text[start..end].Split('\n').Select(l => l.TrimEnd()).Where(l => l.Length > 0).ToArray();
        }

        var readme = Example(File.ReadAllText(Path.Combine(root!.FullName, "README.md")));
        var here = Example(File.ReadAllText(Path.Combine(root.FullName, "Properties", "Functional", "CustomProperties.cs")));
        Assert.Equal(here, readme);
    }

    [Fact]
    public void A_model_with_the_user_layer_trains_and_predicts()
    {
        var d = Devices.Cpu;
        var model = new Dense(8) >> new Swish() >> new Dense(1);
        var (parameters, state) = model.Init(d, new Shape(3), Rng.Create(5));
        using var _s = state;
        var x = GradCheck.Values(11, 32 * 3, 2);
        var target = Enumerable.Range(0, 32).Select(i => (float)Math.Sin(x[3 * i] + (0.5 * x[(3 * i) + 1]))).ToArray();
        var optimizer = new Sgd(0.2);
        var opt = optimizer.Init(parameters);
        var losses = new List<float>();
        for (int i = 0; i < 60; i++)
        {
            using var step = d.BeginStep();
            var xt = step.Upload(x, new Shape(32, 3));
            var tt = step.Upload(target, new Shape(32, 1));
            var (loss, grads) = Autodiff.ValueAndGrad(step, parameters, p =>
            {
                var err = F.Add(model.Apply(p, state, xt, Mode.Train, Rng.Create(0)).Y, F.Scale(tt, -1f));
                return F.Mean(F.Mul(err, err));
            });
            losses.Add(loss.ToHost()[0]);
            (parameters, opt) = optimizer.Step(parameters, grads, opt);
        }

        using (parameters)
        {
            Assert.True(losses[^1] < 0.5f * losses[0], $"loss {losses[0]} -> {losses[^1]}");
            using var step = d.BeginStep();
            var y = model.Predict(parameters, state, step.Upload(x, new Shape(32, 3)));
            Assert.Equal(new Shape(32, 1), y.Shape);
            Assert.False(y.RequiresGrad);
        }
    }
}
