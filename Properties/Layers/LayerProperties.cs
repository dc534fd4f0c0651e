using IlgpuTrain.Layers;

namespace IlgpuTrain.Properties.Layers;

/// <summary>
/// The Layer base: Init lays parameters out in state_dict order and is reproducible across
/// devices; OutputShape inference matches what Apply produces; a wrong input fails at the layer
/// that cannot take it, naming it, its position and both shapes; Predict is the Eval Apply.
/// </summary>
public class LayerProperties
{
    private static Gen<(int[] Widths, int D, int N, int Seed)> Mlp =>
        from depth in Gen.Choose(1, 4)
        from widths in Gen.ArrayOf(Gens.Width, depth)
        from d in Gens.Width
        from n in Gens.Batch
        from seed in Gens.LayerSeed
        select (widths, d, n, seed);

    private static Layer Build(int[] widths) =>
        widths.Length == 1 ? new Dense(widths[0]) : new Sequential([.. widths.SelectMany((w, i) => i == widths.Length - 1 ? new Layer[] { new Dense(w) } : [new Dense(w), new Tanh()])]);

    [Property(MaxTest = 30)]
    public Property Output_shape_inference_matches_the_output_of_apply() =>
        Prop.ForAll(Mlp.ToArbitrary(), c =>
        {
            var model = new Flatten() >> Build(c.Widths);
            var sample = new Shape(1, c.D);
            var (p, s) = model.Init(Devices.Cpu, sample, Rng.Create((ulong)c.Seed));
            using (p)
            using (s)
            using (var step = Devices.Cpu.BeginStep())
            {
                var x = step.Upload(GradCheck.Values(c.Seed, c.N * c.D), new Shape(c.N, 1, c.D));
                var (y, s2) = model.Apply(Params.Bind(p, step), s, x, Mode.Eval, Rng.Create(1));
                var predicted = model.Predict(p, s, x).ToHost();
                return (y.Shape == new Shape(c.N, c.Widths[^1])).Label($"output {y.Shape}")
                    .And((model.OutputShape(sample) == new Shape(c.Widths[^1])).Label("OutputShape is (F_last)"))
                    .And(ReferenceEquals(s, s2).Label("no buffers: Apply returns the state itself"))
                    .And(predicted.SequenceEqual(y.ToHost()).Label("Predict is the Eval Apply"));
            }
        });

    [Property(MaxTest = 30)]
    public Property Init_lays_out_each_layers_parameters_under_its_prefix_in_order() =>
        Prop.ForAll(Mlp.ToArbitrary(), c =>
        {
            var model = Build(c.Widths);
            var (p, s) = model.Init(Devices.Cpu, new Shape(c.D), Rng.Create((ulong)c.Seed));
            using (p)
            using (s)
            {
                var expected = new List<(string, Shape)>();
                int inWidth = c.D;
                for (int i = 0; i < c.Widths.Length; i++)
                {
                    string prefix = c.Widths.Length == 1 ? string.Empty : $"{2 * i}.";
                    expected.Add((prefix + "weight", new Shape(c.Widths[i], inWidth)));
                    expected.Add((prefix + "bias", new Shape(c.Widths[i])));
                    inWidth = c.Widths[i];
                }

                var got = p.Layout.Params.Select(i => (i.Path, i.Shape)).ToList();
                return got.SequenceEqual(expected).Label($"layout {string.Join(", ", got)}")
                    .And((s.Layout.Count == 0).Label("no state"))
                    .And(p.Layout.Params.All(i => i.DType == DType.Float32).Label("Float32"));
            }
        });

    [Property(MaxTest = 20)]
    public Property The_same_seed_gives_the_same_parameters_on_every_device_and_other_seeds_differ() =>
        Prop.ForAll(Mlp.ToArbitrary(), c =>
        {
            var model = Build(c.Widths);
            var sample = new Shape(c.D);
            var (pc, sc) = model.Init(Devices.Cpu, sample, Rng.Create((ulong)c.Seed));
            var (pg, sg) = model.Init(Devices.CpuKernels, sample, Rng.Create((ulong)c.Seed));
            var (po, so) = model.Init(Devices.Cpu, sample, Rng.Create((ulong)c.Seed + 1));
            using (pc)
            using (sc)
            using (pg)
            using (sg)
            using (po)
            using (so)
            {
                var a = pc.Flat();
                var o = po.Flat();
                int same = a.Zip(o).Count(t => t.First == t.Second);
                return a.SequenceEqual(pg.Flat()).Label("Cpu and CpuKernels identical, bit for bit")

                    // Independent uniform draws agree only by chance (and in zero-width biases there is nothing to compare).
                    .And((same <= 1 + (a.Length / 100)).Label($"another seed differs: {same} of {a.Length} values equal"));
            }
        });

    [Fact]
    public void A_wrong_input_shape_fails_at_the_layer_that_cannot_take_it_naming_its_position_and_both_shapes()
    {
        var model = new Dense(4) >> new Tanh() >> new Residual(new Dense(5)) >> new Dense(2);
        var e = Assert.Throws<LayerShapeException>(() => model.Init(Devices.Cpu, new Shape(3), Rng.Create(1)));
        Assert.StartsWith("In layer \"2\" (Residual(Dense(5))), position 2 of 4 in the pipeline: ", e.Message, StringComparison.Ordinal);
        Assert.Contains("(4,)", e.Message, StringComparison.Ordinal);
        Assert.Contains("(5,)", e.Message, StringComparison.Ordinal);
        Assert.Equal(e.Message, Assert.Throws<LayerShapeException>(() => model.Summary(new Shape(3))).Message);

        var nested = new Dense(4) >> new Residual(new Tanh() >> new Residual(new Dense(3)));
        var n = Assert.Throws<LayerShapeException>(() => nested.OutputShape(new Shape(2)));
        Assert.StartsWith("In layer \"1\"", n.Message, StringComparison.Ordinal);
        Assert.Contains("Residual(Dense(3))", n.Message, StringComparison.Ordinal);
        Assert.Contains("(3,)", n.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Null_arguments_and_inputs_outside_a_step_are_rejected()
    {
        var model = new Dense(2);
        Assert.Throws<ArgumentNullException>(() => model.Init(null!, new Shape(2), Rng.Create(1)));
        var (p, s) = model.Init(Devices.Cpu, new Shape(2), Rng.Create(1));
        using (p)
        using (s)
        using (var owned = Tensor.FromHost(Devices.Cpu, new float[4], 2, 2))
            Assert.Throws<ArgumentException>(() => model.Predict(p, s, owned));
    }
}
