using IlgpuTrain.Layers;
using Conv2d = IlgpuTrain.Layers.Conv2d;

namespace IlgpuTrain.Properties.Layers;

/// <summary>Layers/ResNetBlock.cs: the forward is relu(body(x) + downsample(x)) computed on the host; shapes that cannot add are refused naming the fix.</summary>
public class ResNetBlockProperties
{
    // Parameter-free branches, so the reference is plain arithmetic: body = leaky_relu(x, 0.1), downsample = tanh(x) or the identity.
    [Property(MaxTest = 20)]
    public Property Forward_is_relu_of_body_plus_downsample() =>
        Prop.ForAll(Gen.Choose(0, 1000).ToArbitrary(), Gen.Elements(true, false).ToArbitrary(), (seed, projected) =>
        {
            var r = new Random(seed);
            float[] xs = [.. Enumerable.Range(0, 2 * 3 * 4).Select(_ => (float)((r.NextDouble() * 6) - 3))];
            var block = new ResNetBlock(new NamedSequential(("act", new LeakyReLU(0.1f))), projected ? new Tanh() : null);
            var (p, s) = block.Init(Devices.Cpu, new Shape(3, 4), Rng.Create(0));
            using (p)
            using (s)
            using (var step = Devices.Cpu.BeginStep())
            {
                float[] y = block.Predict(p, s, step.Upload(xs, new Shape(2, 3, 4))).ToHost();
                var expected = xs.Select(v => Math.Max(0.0, (v > 0 ? v : 0.1 * v) + (projected ? Math.Tanh(v) : v))).ToArray();
                return y.Zip(expected).All(t => Math.Abs(t.First - t.Second) <= 1e-6 * (1 + Math.Abs(t.Second)))
                    .Label($"y {string.Join(", ", y.Take(4))} vs {string.Join(", ", expected.Take(4))}");
            }
        });

    [Fact]
    public void A_body_that_changes_the_shape_needs_a_downsample_and_the_name_downsample_is_reserved()
    {
        var strided = new NamedSequential(("conv1", new Conv2d(4, 3, Stride: 2, Padding: 1)));
        var e = Assert.Throws<LayerShapeException>(() => new ResNetBlock(strided).OutputShape(new Shape(2, 8, 8)));
        Assert.Contains("add a Downsample projection", e.Message);
        Assert.Equal(new Shape(4, 4, 4), new ResNetBlock(strided, new Conv2d(4, 1, Stride: 2)).OutputShape(new Shape(2, 8, 8)));
        var reserved = new NamedSequential(("downsample", new ReLU()));
        Assert.Contains("\"downsample\"", Assert.Throws<LayerShapeException>(() => new ResNetBlock(reserved).OutputShape(new Shape(3))).Message);
    }
}
