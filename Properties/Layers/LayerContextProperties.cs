using IlgpuTrain.Layers;

namespace IlgpuTrain.Properties.Layers;

/// <summary>
/// LayerContext and StateView: each layer sees its own prefix, position, mode and randomness;
/// buffers are read from the input state, which is never modified, and written into one new tree
/// per Apply; a layer whose Forward disagrees with its OutputShape is caught.
/// </summary>
public class LayerContextProperties
{
    [Fact]
    public void Each_layer_sees_its_prefix_position_mode_and_own_randomness()
    {
        var seen = new List<(string Prefix, string Position, Mode Mode, Rng Rng)>();
        var model = new Probe(seen) >> new Residual(new Probe(seen) >> new Probe(seen));
        using var step = Devices.Cpu.BeginStep();
        var x = step.Upload(new float[6], new Shape(3, 2));
        RunOnce(Mode.Train, Rng.Create(5));
        Assert.Equal(["0.", "1.block.0.", "1.block.1."], seen.Select(s => s.Prefix));
        Assert.Equal("layer \"0\" (Probe)", seen[0].Position);
        Assert.Contains("layer \"1.block.1\" (Probe)", seen[2].Position, StringComparison.Ordinal);
        Assert.All(seen, s => Assert.Equal(Mode.Train, s.Mode));
        Assert.Equal(3, seen.Select(s => s.Rng).Distinct().Count());
        var first = seen.Select(s => s.Rng).ToList();

        seen.Clear();
        RunOnce(Mode.Eval, Rng.Create(5));
        Assert.Equal(first, seen.Select(s => s.Rng));
        Assert.All(seen, s => Assert.Equal(Mode.Eval, s.Mode));

        seen.Clear();
        RunOnce(Mode.Train, Rng.Create(6));
        Assert.All(seen.Zip(first), p => Assert.NotEqual(p.Second, p.First.Rng));

        void RunOnce(Mode mode, Rng rng)
        {
            var (p, s) = model.Init(Devices.Cpu, new Shape(2), Rng.Create(1));
            using (p)
            using (s)
                _ = model.Apply(Params.Bind(p, step), s, x, mode, rng);
        }
    }

    [Fact]
    public void Writes_go_to_one_new_state_tree_and_the_input_state_is_never_modified()
    {
        var model = new Counter() >> new Dense(2) >> new Counter();
        var (p, s0) = model.Init(Devices.Cpu, new Shape(3), Rng.Create(1));
        using (p)
        using (s0)
        using (var step = Devices.Cpu.BeginStep())
        {
            Assert.Equal(["0.count", "2.count"], s0.Layout.Params.Select(i => i.Path));
            var x = step.Upload(new float[6], new Shape(2, 3));
            var bound = Params.Bind(p, step);

            var (_, s1) = model.Apply(bound, s0, x, Mode.Train, Rng.Create(1));
            using (s1)
            {
                Assert.NotSame(s0, s1);
                Assert.Equal([0f, 0f], s0.Flat());
                Assert.Equal([1f, 1f], s1.Flat());

                var (_, s2) = model.Apply(bound, s1, x, Mode.Train, Rng.Create(1));
                using (s2)
                {
                    Assert.Equal([1f, 1f], s1.Flat());
                    Assert.Equal([2f, 2f], s2.Flat());
                }

                var (_, same) = model.Apply(bound, s1, x, Mode.Eval, Rng.Create(1));
                Assert.Same(s1, same);
            }
        }
    }

    [Fact]
    public void Unknown_buffers_and_lying_output_shapes_are_reported()
    {
        using var step = Devices.Cpu.BeginStep();
        var x = step.Upload(new float[6], new Shape(3, 2));
        var (p, s) = new Dense(2).Init(Devices.Cpu, new Shape(2), Rng.Create(1));
        using (p)
        using (s)
        {
            var bound = Params.Bind(p, step);
            var e = Assert.Throws<KeyNotFoundException>(() => new Counter().Apply(bound, s, x, Mode.Train, Rng.Create(1)));
            Assert.Contains("count", e.Message, StringComparison.Ordinal);

            var lie = Assert.Throws<InvalidOperationException>(() => (new Tanh() >> new Liar()).Apply(bound, s, x, Mode.Eval, Rng.Create(1)));
            Assert.Contains("layer \"1\" (Liar)", lie.Message, StringComparison.Ordinal);
            Assert.Contains("OutputShape", lie.Message, StringComparison.Ordinal);

            var scalar = Assert.Throws<LayerShapeException>(() => new Tanh().Apply(bound, s, step.Upload([1f], Shape.Scalar), Mode.Eval, Rng.Create(1)));
            Assert.Contains("scalar", scalar.Message, StringComparison.Ordinal);
        }
    }

    /// <summary>Records what its context looks like; identity.</summary>
    private sealed record Probe(List<(string Prefix, string Position, Mode Mode, Rng Rng)> Seen) : ElementwiseLayer
    {
        public override string Describe() => "Probe";

        public override Tensor Forward(LayerContext ctx, Tensor x)
        {
            Seen.Add((ctx.Prefix, ctx.Position, ctx.Mode, ctx.Rng));
            return x;
        }
    }

    /// <summary>Counts its training calls in a buffer; identity.</summary>
    private sealed record Counter : ElementwiseLayer
    {
        public override IReadOnlyList<ParamSpec> Buffers(Shape input) => [new ParamSpec("count", new Shape(1), Initializer.Zeros)];

        public override Tensor Forward(LayerContext ctx, Tensor x)
        {
            if (ctx.Training)
            {
                var old = ctx.ReadBuffer("count");
                var next = ctx.WriteBuffer("count");
                var one = ctx.Params.Scope.Upload([1f], new Shape(1));
                Elementwise.Add(x.Device.Kernels, old.View<float>(), one.View<float>(), next.View<float>());
            }

            return x;
        }
    }

    /// <summary>Says it keeps the shape but appends an axis.</summary>
    private sealed record Liar : ElementwiseLayer
    {
        public override Tensor Forward(LayerContext ctx, Tensor x) => F.Reshape(x, [.. x.Shape, 1]);
    }
}
