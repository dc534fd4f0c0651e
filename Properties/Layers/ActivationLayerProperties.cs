using IlgpuTrain.Layers;
using LogSoftmax = IlgpuTrain.Layers.LogSoftmax;
using Softmax = IlgpuTrain.Layers.Softmax;

namespace IlgpuTrain.Properties.Layers;

/// <summary>
/// The activation layers (Layers/Activations.cs): each one's VJP equals finite differences of its
/// float64 PyTorch definition, on both kernel variants; they keep the shape and have no parameters.
/// </summary>
public class ActivationLayerProperties
{
    // float32 transcendental functions (erf, tanh, exp) against float64; inputs are O(1).
    private const double Atol = 1e-4;
    private const double Rtol = 1e-3;

    private static readonly (Layer Layer, Func<double[], int, double[]> Reference)[] Cases =
    [
        (new ReLU(), (x, _) => LayerReference.Map(x, v => Math.Max(v, 0))),
        (new LeakyReLU(), (x, _) => LayerReference.Map(x, v => v > 0 ? v : 0.01 * v)),
        (new LeakyReLU(0.2f), (x, _) => LayerReference.Map(x, v => v > 0 ? v : 0.2f * v)),
        (new GELU(), (x, _) => LayerReference.Map(x, LayerReference.Gelu)),
        (new GELU(GeluApproximation.Tanh), (x, _) => LayerReference.Map(x, LayerReference.GeluTanh)),
        (new Tanh(), (x, _) => LayerReference.Map(x, Math.Tanh)),
        (new Sigmoid(), (x, _) => LayerReference.Map(x, LayerReference.Sigmoid)),
        (new SiLU(), (x, _) => LayerReference.Map(x, v => v * LayerReference.Sigmoid(v))),
        (new Softmax(), (x, c) => LayerReference.Softmax(x, c, log: false)),
        (new LogSoftmax(), (x, c) => LayerReference.Softmax(x, c, log: true)),
    ];

    private static Gen<(int Which, int N, Shape Sample, int Seed)> Case =>
        from which in Gen.Choose(0, Cases.Length - 1)
        from n in Gens.Batch
        from c in Gens.Width
        from sample in Gens.FeatureSample(c)
        from seed in Gens.LayerSeed
        select (which, n, sample, seed);

    [Property(MaxTest = 60)]
    public Property Each_activation_layer_vjp_matches_finite_differences_on_both_variants() =>
        Prop.ForAll(Case.ToArbitrary(), c =>
        {
            var (layer, reference) = Cases[c.Which];
            int width = c.Sample[-1];
            var x = LayerGradCheck.AwayFromZero(c.Seed, c.N * c.Sample.Length);
            var result = true.Label($"{layer.Describe()}");
            foreach (var d in Devices.All)
                result = result.And(LayerGradCheck.Check(d, layer, c.Sample, c.N, c.Seed, v => reference(v[LayerGradCheck.InputName], width), Atol, Rtol, x));
            return result;
        });

    [Property(MaxTest = 20)]
    public Property Activation_layers_keep_the_shape_and_have_no_parameters() =>
        Prop.ForAll(Case.ToArbitrary(), c =>
        {
            var (layer, _) = Cases[c.Which];
            return (layer.OutputShape(c.Sample) == c.Sample).Label("OutputShape is the input's")
                .And((layer.Parameters(c.Sample).Count == 0 && layer.Buffers(c.Sample).Count == 0).Label("no parameters or buffers"));
        });

    [Fact]
    public void Describe_names_the_non_default_settings()
    {
        Assert.Equal("LeakyReLU(0.2)", new LeakyReLU(0.2f).Describe());
        Assert.Equal("ReLU", new ReLU().Describe());
        Assert.Equal(new GELU(), new GELU(GeluApproximation.None));
    }
}
