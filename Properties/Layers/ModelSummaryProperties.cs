using IlgpuTrain.Layers;

namespace IlgpuTrain.Properties.Layers;

/// <summary>ModelSummary: one row per leaf layer with its output shape and parameters; totals equal the ParamTree; the memory estimate; the printed table.</summary>
public class ModelSummaryProperties
{
    private static Gen<(int[] Widths, int D, int Batch, bool Residual)> Case =>
        from depth in Gen.Choose(1, 4)
        from widths in Gen.ArrayOf(Gens.Width, depth)
        from d in Gens.Width
        from batch in Gen.Elements(1, 7, 64)
        from residual in Gen.Elements(false, true)
        select (widths, d, batch, residual);

    private static Layer Build(int[] widths, bool residual)
    {
        Layer model = new Dense(widths[0]);
        foreach (var w in widths.Skip(1))
            model = model >> new ReLU() >> new Dense(w);
        return residual ? model >> new Residual(new Dense(widths[^1]) >> new Tanh()) : model;
    }

    [Property(MaxTest = 30)]
    public Property Rows_totals_and_estimate_agree_with_the_initialized_model() =>
        Prop.ForAll(Case.ToArbitrary(), c =>
        {
            var model = Build(c.Widths, c.Residual);
            var sample = new Shape(c.D);
            var summary = model.Summary(sample, c.Batch);
            var (p, s) = model.Init(Devices.Cpu, sample, Rng.Create(1));
            using (p)
            using (s)
            {
                var leaves = Leaves(model).ToList();
                long activations = summary.Rows.Sum(r => r.OutputShape.Length);
                string text = summary.ToString();
                return (summary.TotalParameters == p.Count).Label($"total {summary.TotalParameters} vs ParamTree.Count {p.Count}")
                    .And((summary.Rows.Count == leaves.Count).Label($"{summary.Rows.Count} rows for {leaves.Count} leaf layers"))
                    .And(summary.Rows.Select(r => r.Layer).SequenceEqual(leaves.Select(l => l.Describe())).Label("rows name the leaves in order"))
                    .And((summary.Rows[^1].OutputShape == model.OutputShape(sample)).Label("last row is the model's output shape"))
                    .And((summary.TotalBuffers == 0).Label("no buffers"))
                    .And((summary.EstimatedTrainingBytes == (16 * p.Count) + (8L * activations * c.Batch)).Label("16 B per parameter, 8 B per activation value"))
                    .And(text.Contains($"Trainable parameters: {p.Count:N0}", StringComparison.Ordinal).Label(text))
                    .And(summary.Rows.All(r => text.Contains(r.Layer, StringComparison.Ordinal)).Label("every row printed"))
                    .And(text.Contains($"at batch {c.Batch}", StringComparison.Ordinal).Label("batch printed"));
            }
        });

    // Fine-tuning: the frozen count is the initialized tree's parameters that the filter leaves out, by path.
    [Property(MaxTest = 30)]
    public Property Frozen_parameters_are_those_the_trainable_filter_leaves_out_of_the_tree() =>
        Prop.ForAll(Case.ToArbitrary(), Gen.Elements("0.*", "2.*", "*.bias", "**.weight", "9.*").ToArbitrary(), (c, glob) =>
        {
            var model = Build(c.Widths, c.Residual);
            var sample = new Shape(c.D);
            var frozen = ParamFilter.Glob(glob);
            var summary = model.Summary(sample, c.Batch, frozen.Not());
            var (p, s) = model.Init(Devices.Cpu, sample, Rng.Create(1));
            using (p)
            using (s)
            {
                long expected = p.Layout.Params.Where(x => frozen.Matches(x.Path)).Sum(x => x.Length);
                long activations = summary.Rows.Sum(r => r.OutputShape.Length);
                string text = summary.ToString();
                return (summary.FrozenParameters == expected).Label($"{glob}: {summary.FrozenParameters} frozen, the tree says {expected}")
                    .And((summary.TrainableParameters == p.Count - expected).Label("trainable = total - frozen"))
                    .And((summary.EstimatedTrainingBytes == (4 * p.Count) + (12 * (p.Count - expected)) + (8L * activations * c.Batch)).Label("moments and gradients for the trainable ones only"))
                    .And((expected == 0 ? text.Contains($"Trainable parameters: {p.Count:N0} (", StringComparison.Ordinal) : text.Contains($"Trainable parameters: {p.Count - expected:N0} of {p.Count:N0} ({expected:N0} frozen", StringComparison.Ordinal)).Label(text));
            }
        });

    private static IEnumerable<Layer> Leaves(Layer l) =>
        l.Children().Any() ? l.Children().SelectMany(ch => Leaves(ch.Layer)) : [l];

    [Fact]
    public void Known_table_for_a_small_mlp()
    {
        var summary = (new Dense(16) >> new ReLU() >> new Dense(2)).Summary(new Shape(2), batchSize: 4);
        Assert.Equal(
            [new SummaryRow("0", "Dense(16)", new Shape(16), 48, 0), new SummaryRow("1", "ReLU", new Shape(16), 0, 0), new SummaryRow("2", "Dense(2)", new Shape(2), 34, 0)],
            summary.Rows);
        Assert.Equal(82, summary.TotalParameters);
        Assert.Equal((16 * 82) + (8 * 34 * 4), summary.EstimatedTrainingBytes);
        var lines = summary.ToString().Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
        Assert.Equal("Input: (N, 2)", lines[0]);
        Assert.Contains(lines, l => l.StartsWith("0 Dense(16)", StringComparison.Ordinal) && l.Contains("(N, 16)", StringComparison.Ordinal) && l.TrimEnd().EndsWith("48", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("2 Dense(2)", StringComparison.Ordinal) && l.TrimEnd().EndsWith("34", StringComparison.Ordinal));
        Assert.Contains("Trainable parameters: 82", summary.ToString(), StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => new Dense(2).Summary(new Shape(2), batchSize: 0));
    }
}
