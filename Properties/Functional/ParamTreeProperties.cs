namespace IlgpuTrain.Properties.Functional;

/// <summary>ParamTree: one flat buffer per dtype with named views; donation; same-layout trees.</summary>
public class ParamTreeProperties
{
    private static readonly Gen<List<KeyValuePair<string, (int[] Shape, float[] Data)>>> Trees =
        from count in Gen.Choose(1, 6)
        from shapes in Gen.ArrayOf(Gen.ArrayOf(Gen.Choose(0, 9), 0).SelectMany(_ => Gen.Choose(0, 3).SelectMany(r => Gen.ArrayOf(Gen.Choose(0, 9), r))), count)
        from seed in Gen.Choose(0, int.MaxValue)
        select shapes.Select((s, i) => new KeyValuePair<string, (int[] Shape, float[] Data)>(
            $"{i}.{(i % 2 == 0 ? "weight" : "bias")}",
            (s, Gens.Random(seed + i, (int)new Shape(s).Length)))).ToList();

    [Property(MaxTest = 30)]
    public Property FromHost_then_ToHost_round_trips_every_parameter() =>
        Prop.ForAll(Trees.ToArbitrary(), entries =>
        {
            using var tree = ParamTree.FromHost(Devices.Cpu, entries);
            var back = tree.ToHost();
            bool ok = entries.All(e => back[e.Key].Shape.SequenceEqual(e.Value.Shape) && back[e.Key].Data.SequenceEqual(e.Value.Data));
            return (ok && back.Keys.SequenceEqual(entries.Select(e => e.Key))).Label("values and order");
        });

    [Property(MaxTest = 30)]
    public Property Views_tile_the_flat_buffer_contiguously_in_order() =>
        Prop.ForAll(Trees.ToArbitrary(), entries =>
        {
            using var tree = ParamTree.FromHost(Devices.Cpu, entries);
            long offset = 0;
            bool ok = true;
            foreach (var p in tree.Layout.Params)
            {
                ok &= p.Offset == offset;
                offset += p.Length;
            }
            var flat = Transfer.ToHost(Devices.Cpu.Stream, tree.Flat32);
            var concat = entries.SelectMany(e => e.Value.Data).ToArray();
            return (ok && offset == tree.Count && flat.SequenceEqual(concat)).Label("contiguous");
        });

    [Property(MaxTest = 30)]
    public Property ApplyUpdates_adds_and_consumes_the_parameters() =>
        Prop.ForAll(Trees.ToArbitrary(), entries =>
        {
            var d = Devices.Cpu;
            var p = ParamTree.FromHost(d, entries);
            using var u = p.ZerosLike();
            Elementwise.Fill(d.Kernels, u.Flat32, 0.5f);
            using var next = p.ApplyUpdates(u);
            var got = next.ToHost();
            bool values = entries.All(e => got[e.Key].Data.SequenceEqual(e.Value.Data.Select(x => x + 0.5f)));
            var ex = Record.Exception(() => p.ToHost());
            bool consumed = ex is ConsumedValueException c && c.Message.Contains("ApplyUpdates", StringComparison.Ordinal);
            bool updatesIntact = Transfer.ToHost(d.Stream, u.Flat32).All(x => x == 0.5f);
            return values.Label("p + u").And(consumed.Label("old params throw ConsumedValueException naming ApplyUpdates")).And(updatesIntact.Label("updates only read"));
        });

    [Fact]
    public void Consumed_tree_throws_on_every_access_and_says_what_consumed_it()
    {
        var d = Devices.Cpu;
        var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([2], [1f, 2f]) });
        using var q = p.Consume("ScaleByAdam.Update");
        var e = Assert.Throws<ConsumedValueException>(() => p.Flat32);
        Assert.Contains("ScaleByAdam.Update", e.Message);
        Assert.Throws<ConsumedValueException>(() => p.Clone());
        Assert.Throws<ConsumedValueException>(() => p["w"]);
        Assert.Throws<ConsumedValueException>(() => p.Snapshot());
        Assert.Equal([1f, 2f], q.ToHost()["w"].Data);
        p.Dispose();
    }

    [Fact]
    public void Clone_and_Snapshot_are_independent_copies()
    {
        var d = Devices.Cpu;
        using var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["a"] = ([3], [1f, 2f, 3f]), ["b"] = ([1], [4f]) });
        using var c = p.Clone();
        var s = p.Snapshot();
        Elementwise.Fill(d.Kernels, p.Flat32, 0f);
        Assert.Equal([1f, 2f, 3f], c.ToHost()["a"].Data);
        Assert.Equal([4f], s.Get("b"));
        using var r = ParamTree.FromSnapshot(d, s);
        Assert.Equal([1f, 2f, 3f], r.ToHost()["a"].Data);
        Assert.Equal(p.Layout, r.Layout);
    }

    [Fact]
    public void Gradients_and_moments_share_the_layout()
    {
        var d = Devices.Cpu;
        using var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["0.weight"] = ([2, 2], [1f, 2f, 3f, 4f]), ["0.bias"] = ([2], [5f, 6f]) });
        using var g = p.ZerosLike();
        Assert.Equal(p.Layout, g.Layout);
        Assert.All(g.ToHost().Values, v => Assert.All(v.Data, x => Assert.Equal(0f, x)));
        Assert.Equal(2, g.Layout["0.bias"].Shape[0]);
        Assert.Equal(4, g.Layout["0.bias"].Offset);
    }

    [Fact]
    public void Different_layouts_are_refused_naming_the_difference()
    {
        var d = Devices.Cpu;
        using var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([2], [1f, 2f]) });
        using var u = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([1, 2], [1f, 2f]) });
        var e = Assert.Throws<ArgumentException>(() => p.ApplyUpdates(u));
        Assert.Contains("(2,)", e.Message);
        Assert.Contains("(1, 2)", e.Message);
        Assert.False(p.IsConsumed);
        Assert.Equal([1f, 2f], p.ToHost()["w"].Data);
    }

    [Fact]
    public void Bad_input_gets_clear_errors()
    {
        var d = Devices.Cpu;
        var bad = Assert.Throws<ArgumentException>(() => ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([2, 3], new float[5]) }));
        Assert.Contains("\"w\"", bad.Message);
        Assert.Contains("(2, 3)", bad.Message);
        var dup = Assert.Throws<ArgumentException>(() => new ParamLayout([("w", new Shape(1), DType.Float32), ("w", new Shape(1), DType.Float32)]));
        Assert.Contains("twice", dup.Message);
        using var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([1], [1f]) });
        var missing = Assert.Throws<KeyNotFoundException>(() => p["v"]);
        Assert.Contains("w", missing.Message);
    }

    [Fact]
    public void Mixed_dtype_layouts_pack_each_dtype_separately()
    {
        var layout = new ParamLayout([
            ("0.weight", new Shape(4, 3), DType.Float32),
            ("1.num_batches_tracked", Shape.Scalar, DType.Int32),
            ("1.running_mean", new Shape(4), DType.Float32),
            ("2.weight_half", new Shape(5), DType.Float16),
        ]);
        Assert.Equal(16, layout.LengthOf(DType.Float32));
        Assert.Equal(1, layout.LengthOf(DType.Int32));
        Assert.Equal(5, layout.LengthOf(DType.Float16));
        Assert.Equal(12, layout["1.running_mean"].Offset);
        using var t = ParamTree.Zeros(Devices.Cpu, layout);
        Assert.Equal(1, t.Flat<int>().Length);
        Assert.Equal(5, t.Flat<Half>().Length);
        Assert.Equal(4, t.View<float>("1.running_mean").Length);
        Assert.Throws<InvalidOperationException>(() => t.View<float>("1.num_batches_tracked"));
    }
}
