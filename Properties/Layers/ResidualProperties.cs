using IlgpuTrain.Layers;

namespace IlgpuTrain.Properties.Layers;

/// <summary>Residual: y = x + block(x) (or shortcut(x) + block(x)); the input used twice gets the sum of both gradients.</summary>
public class ResidualProperties
{
    // A float32 GEMM, a tanh and an add against float64.
    private const double Atol = 3e-4;
    private const double Rtol = 3e-3;

    private static Gen<(int N, int D, int F, bool Projection, int Seed)> Case =>
        from n in Gens.Batch
        from d in Gens.Width
        from f in Gens.Width
        from projection in Gen.Elements(false, true)
        from seed in Gens.LayerSeed
        select (n, d, f, projection, seed);

    [Property(MaxTest = 40)]
    public Property Vjp_matches_finite_differences_with_identity_and_projection_shortcuts() =>
        Prop.ForAll(Case.ToArbitrary(), c =>
        {
            int f = c.Projection ? c.F : c.D;
            var model = c.Projection
                ? new Residual(new Dense(f) >> new Tanh(), new Dense(f, UseBias: false))
                : new Residual(new Dense(f) >> new Tanh());
            double[] Reference(IReadOnlyDictionary<string, double[]> v)
            {
                var x = v[LayerGradCheck.InputName];
                var y = LayerReference.Map(LayerReference.Dense(x, v["block.0.weight"], v["block.0.bias"], c.D, f), Math.Tanh);
                var s = c.Projection ? LayerReference.Dense(x, v["shortcut.weight"], null, c.D, f) : x;
                return y.Zip(s, (a, b) => a + b).ToArray();
            }

            var device = c.Seed % 3 == 0 ? Devices.CpuKernels : Devices.Cpu;
            return LayerGradCheck.Check(device, model, new Shape(c.D), c.N, c.Seed, Reference, Atol, Rtol);
        });

    [Property(MaxTest = 20)]
    public Property A_block_that_changes_the_width_needs_a_projection() =>
        Prop.ForAll(Case.Where(c => c.D != c.F).ToArbitrary(), c =>
        {
            var bad = new Residual(new Dense(c.F));
            var e = Record.Exception(() => bad.OutputShape(new Shape(c.D)));
            var inPipeline = Record.Exception(() => (new Tanh() >> bad).OutputShape(new Shape(c.D)));
            var good = new Residual(new Dense(c.F), new Dense(c.F));
            return (e is LayerShapeException).Label($"throws LayerShapeException, got {e?.GetType().Name}")
                .And((e?.Message.Contains("Residual(Dense(", StringComparison.Ordinal) == true).Label("names the layer"))
                .And((e?.Message.Contains($"({c.F},)", StringComparison.Ordinal) == true && e.Message.Contains($"({c.D},)", StringComparison.Ordinal)).Label($"names both shapes: {e?.Message}"))
                .And((inPipeline?.Message.Contains("position 1 of 2", StringComparison.Ordinal) == true).Label($"names its position: {inPipeline?.Message}"))
                .And((good.OutputShape(new Shape(c.D)) == new Shape(c.F)).Label("a projection shortcut fixes it"));
        });

    [Fact]
    public void Children_are_named_block_and_shortcut()
    {
        Assert.Equal(["block"], new Residual(new Tanh()).Children().Select(ch => ch.Name));
        Assert.Equal(["block", "shortcut"], new Residual(new Tanh(), new Dense(2)).Children().Select(ch => ch.Name));
        Assert.Equal("Residual(Dense(2), shortcut Dense(2, no bias))", new Residual(new Dense(2), new Dense(2, UseBias: false)).Describe());
    }
}
