using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>Masked: the inner transformation sees exactly the selected sub-tree; the rest passes through bit for bit.</summary>
public class MaskedProperties
{
    /// <summary>The selected parameters of a host flat buffer as their own tree, built without MaskPlan.</summary>
    internal static ParamTree SubTree(Device d, ParamLayout layout, ParamMask mask, float[] flat) =>
        ParamTree.FromHost(d, mask.Select(layout).Select(p => new KeyValuePair<string, (int[] Shape, float[] Data)>(
            p.Path, (p.Shape.ToArray(), flat.AsSpan((int)p.Offset, (int)p.Length).ToArray()))));

    /// <summary>Per element of the flat buffer: whether the mask selects it.</summary>
    internal static bool[] Selected(ParamLayout layout, ParamMask mask)
    {
        var on = new bool[layout.LengthOf(DType.Float32)];
        foreach (var p in mask.Select(layout))
            on.AsSpan((int)p.Offset, (int)p.Length).Fill(true);
        return on;
    }

    [Property(MaxTest = 30)]
    public Property Unselected_updates_pass_unchanged_and_selected_ones_equal_the_inner_run_alone() =>
        Prop.ForAll(Trees.Layouts.ToArbitrary(), Gens.ParamMasks.ToArbitrary(), Gen.Choose(0, 10_000).ToArbitrary(), (layout, mask, seed) =>
        {
            var d = Devices.Cpu;
            // A global norm and momentum make the inner result depend on which parameters it sees.
            var inner = new Chain(new ClipByGlobalNorm(0.5), new Sgd(0.1, momentum: 0.9, weightDecay: 0.01));
            var masked = new Masked(inner, mask);
            using var p = Trees.Random(d, layout, seed);
            var pHost = p.Flat();
            using var subP = SubTree(d, p.Layout, mask, pHost);
            var on = Selected(p.Layout, mask);
            var s = masked.Init(p);
            var sAlone = inner.Init(subP);
            var prop = true.Label("start");
            for (int t = 0; t < 3; t++)
            {
                var gHost = Gens.Random(seed + t + 1, (int)p.Count, -2f, 2f);
                var (u, next) = masked.Update(Trees.FromFlat(p, gHost), s, p, UpdateContext.None);
                var (uAlone, nextAlone) = inner.Update(SubTree(d, p.Layout, mask, gHost), sAlone, subP, UpdateContext.None);
                s = next;
                sAlone = nextAlone;
                using (u)
                using (uAlone)
                {
                    var got = u.Flat();
                    var alone = uAlone.Flat();
                    var expected = (float[])gHost.Clone();
                    int k = 0;
                    for (int i = 0; i < expected.Length; i++)
                    {
                        if (on[i])
                            expected[i] = alone[k++];
                    }
                    prop = prop.And(Close.All(got, expected, 0, 0, $"update {t + 1}: raw g where unselected, inner-alone bits where selected"));
                }
            }
            var buffer = s.Find<TraceState>().MomentumBuffer;
            prop = prop.And((buffer.Count == on.Count(x => x)).Label($"inner state sized to the subset: {buffer.Count} of {on.Length}"));
            prop = prop.And((s.Children.Single().Name == inner.Name).Label("child named after the inner transformation"));
            s.Dispose();
            sAlone.Dispose();
            return prop.Label($"mask {mask}");
        });

    [Fact]
    public void Adjacent_parameters_merge_into_one_range_and_empty_ones_are_skipped()
    {
        var layout = new ParamLayout([
            ("a", new Shape(2), DType.Float32),
            ("b", new Shape(3), DType.Float32),
            ("c", new Shape(0), DType.Float32),
            ("d", new Shape(4), DType.Float32),
            ("e", new Shape(1), DType.Float32),
        ]);
        var plan = MaskPlan.Of(layout, ParamMask.ByName("a", "b", "c", "e"));
        Assert.Equal([new MaskRange(0, 0, 5), new MaskRange(9, 5, 1)], plan.Ranges);
        Assert.Equal(["a", "b", "c", "e"], plan.SubLayout.Params.Select(p => p.Path));
        Assert.Equal([new MaskRange(0, 0, 9)], MaskPlan.Of(layout, ParamMask.ByName("a", "b", "d")).Ranges);
        Assert.Equal([new MaskRange(5, 0, 4)], MaskPlan.Of(layout, ParamMask.ByName("c", "d")).Ranges);
        Assert.Empty(MaskPlan.Of(layout, ParamMask.None).Ranges);
        Assert.True(MaskPlan.Of(layout, ParamMask.All).SelectsAll);
        Assert.False(MaskPlan.Of(layout, ParamMask.ByName("a", "b", "c", "d")).SelectsAll);
    }

    [Fact]
    public void State_is_found_through_the_mask_and_a_foreign_layout_is_refused()
    {
        var d = Devices.Cpu;
        using var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["0.weight"] = ([2], [1f, 2f]), ["0.bias"] = ([1], [3f]) });
        var masked = new Masked(new Trace(0.9), ParamMask.ByName("*.weight"));
        using var s = masked.Init(p);
        Assert.Same(s.Find<TraceState>(), s["trace"]);
        Assert.Equal(2, s.Find<TraceState>().MomentumBuffer.Count);
        using var other = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["x"] = ([3], [1f, 2f, 3f]) });
        using var g = other.Clone();
        Assert.Throws<ArgumentException>(() => masked.Update(g, s, other, UpdateContext.None));
    }

    private static readonly Func<IGradientTransformation>[] Inners =
    [
        () => new AdamW(1e-2, weightDecay: 0.1),
        () => new Chain(new ClipByGlobalNorm(0.5), new Adam(1e-2, weightDecay: 0.01)),
        () => new Sgd(0.1, momentum: 0.9, nesterov: true),
        () => new RmsProp(1e-2, weightDecay: 0.01),
        () => new Adagrad(0.1),
        () => new MultiSteps(new AdamW(1e-2), 2),
    ];

    // Step (the inner plan on the packed copy, fused where the inner chain fuses) against Update then
    // ApplyUpdates (the inner chain primitive by primitive): the same state, the selected parameters
    // within float rounding, the others bit for bit (θ + g alone, θ itself in Freeze.AllExcept).
    [Property(MaxTest = 40)]
    public Property Step_runs_the_inner_plan_and_equals_update_then_apply_within_rounding() =>
        Prop.ForAll(
            (from layout in Trees.Layouts
             from mask in Gens.ParamMasks
             from which in Gen.Choose(0, Inners.Length - 1)
             from freeze in Gen.Elements(false, true)
             from seed in Gen.Choose(0, 10_000)
             select (layout, mask, which, freeze, seed)).ToArbitrary(),
            args =>
        {
            var (layout, mask, which, freeze, seed) = args;
            var d = Devices.Cpu;
            IGradientTransformation Build() => freeze ? Freeze.AllExcept(mask, Inners[which]()) : new Masked(Inners[which](), mask);
            var stepped = Build();
            var generic = Build();
            var pa = Trees.Random(d, layout, seed);
            var pb = pa.Clone();
            var start = pa.Flat();
            var on = Selected(pa.Layout, mask);
            var sa = stepped.Init(pa);
            var sb = generic.Init(pb);
            for (int t = 0; t < 4; t++)
            {
                var g = Gens.Random(seed + t + 1, (int)pa.Count, -2f, 2f);
                (pa, sa) = stepped.Step(pa, Trees.FromFlat(pa, g), sa);
                var (u, next) = generic.Update(Trees.FromFlat(pb, g), sb, pb, UpdateContext.None);
                pb = pb.ApplyUpdates(u);
                u.Dispose();
                sb = next;
            }

            var a = pa.Flat();
            var b = pb.Flat();
            var selA = a.Where((_, i) => on[i]).ToArray();
            var selB = b.Where((_, i) => on[i]).Select(x => (double)x).ToArray();
            var restA = a.Where((_, i) => !on[i]).ToArray();
            var restB = b.Where((_, i) => !on[i]).ToArray();
            var prop = Close.All(selA, selB, 1e-6, 1e-5, "selected: step versus update then apply")
                .And(Close.All(restA, restB, 0, 0, "unselected: bit for bit"))
                .And((!freeze || restA.SequenceEqual(start.Where((_, i) => !on[i]))).Label("Freeze.AllExcept leaves the others as they were"))
                .And((sa.Find<ScaleByLearningRateState>().Count == sb.Find<ScaleByLearningRateState>().Count).Label("same schedule count"));
            pa.Dispose();
            pb.Dispose();
            sa.Dispose();
            sb.Dispose();
            return prop;
        });
}
