using IlgpuTrain.Layers;
using Conv2d = IlgpuTrain.Layers.Conv2d;

namespace IlgpuTrain.Properties.Layers;

/// <summary>NamedSequential and ResNetBlock: their names become parameter paths, and bad names are refused by name.</summary>
public class NamedSequentialProperties
{
    [Property(MaxTest = 10)]
    public Property Names_are_path_segments_and_the_forward_is_the_indexed_pipelines() =>
        Prop.ForAll(Gen.Choose(1, 6).ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), (width, seed) =>
        {
            var named = new NamedSequential(("fc1", new Dense(width)), ("act", new ReLU()), ("fc2", new Dense(2)));
            var indexed = new Dense(width) >> new ReLU() >> new Dense(2);
            var input = new Shape(3);
            var (pn, sn) = named.Init(Devices.Cpu, input, Rng.Create((ulong)seed));
            var (pi, si) = indexed.Init(Devices.Cpu, input, Rng.Create((ulong)seed));
            using (pn)
            using (sn)
            using (pi)
            using (si)
            using (var step = Devices.Cpu.BeginStep())
            {
                var x = step.Upload(Enumerable.Range(0, 12).Select(i => (i * 0.37f) - 2f).ToArray(), new Shape(4, 3));
                float[] yn = named.Predict(pn, sn, x).ToHost();
                float[] yi = indexed.Predict(pi, si, x).ToHost();
                return pn.Layout.Params.Select(p => p.Path).SequenceEqual(["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]).Label("paths")
                    .And(pn.Snapshot().Float32.SequenceEqual(pi.Snapshot().Float32).Label("same initialization as the indexed pipeline"))
                    .And(yn.SequenceEqual(yi).Label("same forward"));
            }
        });

    [Fact]
    public void Empty_dotted_and_repeated_names_are_refused_and_unknown_names_list_the_known()
    {
        Assert.Contains("\"a.b\"", Assert.Throws<ArgumentException>(() => new NamedSequential(("a.b", new ReLU()))).Message);
        Assert.Contains("non-empty", Assert.Throws<ArgumentException>(() => new NamedSequential((string.Empty, new ReLU()))).Message);
        Assert.Contains("\"x\" appears twice", Assert.Throws<ArgumentException>(() => new NamedSequential(("x", new ReLU()), ("x", new ReLU()))).Message);
        var m = new NamedSequential(("conv1", new Conv2d(4, 3)), ("fc", new Dense(2)));
        var e = Assert.Throws<KeyNotFoundException>(() => m["head"]);
        Assert.Contains("conv1, fc", e.Message);
        var replaced = m.With("fc", new Dense(7));
        Assert.Equal(new Dense(7), replaced["fc"]);
        Assert.Equal(m["conv1"], replaced["conv1"]);
        Assert.NotEqual(m, replaced);
        Assert.Equal(m, new NamedSequential(("conv1", new Conv2d(4, 3)), ("fc", new Dense(2))));
    }

    [Fact]
    public void A_resnet_block_names_its_body_at_its_own_level_and_its_projection_downsample()
    {
        var body = new NamedSequential(("conv1", new Conv2d(4, 3, Stride: 2, Padding: 1, UseBias: false)), ("bn1", new BatchNorm2d()));
        var block = new ResNetBlock(body, new Conv2d(4, 1, Stride: 2, UseBias: false) >> new BatchNorm2d());
        var (p, s) = block.Init(Devices.Cpu, new Shape(2, 8, 8), Rng.Create(0));
        using (p)
        using (s)
        {
            Assert.Equal(["conv1.weight", "bn1.weight", "bn1.bias", "downsample.0.weight", "downsample.1.weight", "downsample.1.bias"], p.Layout.Params.Select(x => x.Path));
            Assert.Equal(["bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked", "downsample.1.running_mean", "downsample.1.running_var", "downsample.1.num_batches_tracked"], s.Layout.Params.Select(x => x.Path));
        }

        var e = Assert.Throws<LayerShapeException>(() => new ResNetBlock(body).OutputShape(new Shape(2, 8, 8)));
        Assert.Contains("add a Downsample projection", e.Message);
    }
}
