using IlgpuTrain.Layers;

namespace IlgpuTrain.Properties.Layers;

/// <summary>Dense: VJP with respect to input, weight and bias equals finite differences of a float64 y = x W^T + b; shapes, names and errors.</summary>
public class DenseProperties
{
    // float32 GEMM over K <= 17 terms of magnitude <= 1 against a float64 reference.
    private const double Atol = 2e-4;
    private const double Rtol = 2e-3;

    private static Gen<(int N, Shape Sample, int F, bool Bias, int Seed)> Case =>
        from n in Gens.Batch
        from d in Gens.Width
        from sample in Gens.FeatureSample(d)
        from f in Gens.Width
        from bias in Gen.Elements(true, true, false)
        from seed in Gens.LayerSeed
        select (n, sample, f, bias, seed);

    [Property(MaxTest = 40)]
    public Property Vjp_matches_finite_differences_of_the_reference() =>
        Prop.ForAll(Case.ToArbitrary(), c =>
        {
            int d = c.Sample[-1];
            var model = new Dense(c.F, c.Bias);
            double[] Reference(IReadOnlyDictionary<string, double[]> v) =>
                LayerReference.Dense(v[LayerGradCheck.InputName], v["weight"], c.Bias ? v["bias"] : null, d, c.F);
            var result = LayerGradCheck.Check(Devices.Cpu, model, c.Sample, c.N, c.Seed, Reference, Atol, Rtol);
            return c.Seed % 4 == 0 ? result.And(LayerGradCheck.Check(Devices.CpuKernels, model, c.Sample, c.N, c.Seed, Reference, Atol, Rtol)) : result;
        });

    [Property(MaxTest = 30)]
    public Property Parameters_are_named_and_shaped_as_torch_nn_Linear() =>
        Prop.ForAll(Case.ToArbitrary(), c =>
        {
            int d = c.Sample[-1];
            var (p, s) = new Dense(c.F, c.Bias).Init(Devices.Cpu, c.Sample, Rng.Create(1));
            using (p)
            using (s)
            {
                var expected = c.Bias ? new[] { "weight", "bias" } : new[] { "weight" };
                var outDims = c.Sample.ToArray();
                outDims[^1] = c.F;
                return p.Layout.Params.Select(i => i.Path).SequenceEqual(expected).Label($"paths {string.Join(", ", p.Layout.Params.Select(i => i.Path))}")
                    .And((p.Layout["weight"].Shape == new Shape(c.F, d)).Label($"weight {p.Layout["weight"].Shape}"))
                    .And((!c.Bias || p.Layout["bias"].Shape == new Shape(c.F)).Label("bias (F)"))
                    .And((p.Count == ((long)c.F * d) + (c.Bias ? c.F : 0)).Label($"count {p.Count}"))
                    .And((s.Layout.Count == 0).Label("no buffers"))
                    .And((new Dense(c.F, c.Bias).OutputShape(c.Sample) == new Shape(outDims)).Label("OutputShape replaces the last dimension"));
            }
        });

    [Fact]
    public void A_weight_made_for_another_width_fails_at_the_dense_layer_naming_its_position_and_both_shapes()
    {
        var model = new Dense(4) >> new Tanh() >> new Dense(2);
        var (p, s) = model.Init(Devices.Cpu, new Shape(3), Rng.Create(1));
        using (p)
        using (s)
        using (var step = Devices.Cpu.BeginStep())
        {
            var x = step.Upload(new float[10], new Shape(2, 5));
            var e = Assert.Throws<LayerShapeException>(() => model.Predict(p, s, x));
            Assert.Contains("layer \"0\" (Dense(4))", e.Message, StringComparison.Ordinal);
            Assert.Contains("(5,)", e.Message, StringComparison.Ordinal);
            Assert.Contains("(4, 3)", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Zero_features_and_scalar_samples_are_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new Dense(0).OutputShape(new Shape(3)));
        var e = Assert.Throws<LayerShapeException>(() => new Dense(2).OutputShape(Shape.Scalar));
        Assert.Contains("Dense(2)", e.Message, StringComparison.Ordinal);
        Assert.Equal("Dense(3, no bias)", new Dense(3, UseBias: false).Describe());
    }

    [Property(MaxTest = 20)]
    public Property Flatten_keeps_the_values_and_passes_the_gradient_back_in_the_input_shape() =>
        Prop.ForAll((from n in Gens.Batch from a in Gen.Choose(1, 4) from b in Gen.Choose(1, 5) from c in Gen.Choose(1, 3) from seed in Gens.LayerSeed select (n, new Shape(a, b, c), seed)).ToArbitrary(), t =>
            (new Flatten().OutputShape(t.Item2) == new Shape(checked((int)t.Item2.Length))).Label("OutputShape (A*B*C)")
                .And(LayerGradCheck.Check(Devices.Cpu, new Flatten(), t.Item2, t.n, t.seed, v => v[LayerGradCheck.InputName], 1e-9, 1e-9)));
}
