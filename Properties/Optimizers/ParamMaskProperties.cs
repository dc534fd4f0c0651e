using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>ParamMask: selection by rank, glob, predicate and their combinations; the device mask.</summary>
public class ParamMaskProperties
{
    [Fact]
    public void Masks_select_by_rank_name_and_predicate()
    {
        var layout = new ParamLayout([("0.weight", new Shape(3, 2), DType.Float32), ("0.bias", new Shape(3), DType.Float32), ("1.weight", new Shape(1, 3), DType.Float32)]);
        Assert.Equal(["0.weight", "1.weight"], ParamMask.ByRank(2).Select(layout).Select(p => p.Path));
        Assert.Equal(["0.bias"], ParamMask.ByName("*.bias").Select(layout).Select(p => p.Path));
        Assert.Equal(["0.weight", "0.bias"], ParamMask.ByName("0.*").Select(layout).Select(p => p.Path));
        Assert.Equal(["1.weight"], ParamMask.Where(p => p.Length == 3 && p.Shape.Rank == 2, "1x3").Select(layout).Select(p => p.Path));
        Assert.Equal(["0.bias", "1.weight"], ParamMask.ByName("0.weight").Not().Select(layout).Select(p => p.Path));
        Assert.Throws<ArgumentException>(() => ParamMask.ByName());
    }

    [Fact]
    public void Device_mask_is_one_exactly_on_selected_elements_and_null_when_all_are()
    {
        var d = Devices.Cpu;
        using var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["0.weight"] = ([2, 2], new float[4]), ["0.bias"] = ([2], new float[2]) });
        using var m = ParamMask.ByRank(2).ToDevice(p);
        Assert.NotNull(m);
        Assert.Equal([1, 1, 1, 1, 0, 0], Transfer.ToHost(d.Stream, m!.View));
        Assert.Null(ParamMask.All.ToDevice(p));
        Assert.Null(ParamMask.ByName("**").ToDevice(p));
    }

    // Paths of nested models (ResNet-style), so a pattern's * and ** differ.
    private static readonly string[] NestedPaths =
        ["conv1.weight", "bn1.weight", "bn1.bias", "layer1.0.conv1.weight", "layer1.0.bn1.bias", "layer1.1.downsample.0.weight", "fc.weight", "fc.bias", "0.weight", "0.bias"];

    // One glob dialect everywhere: ParamMask.ByName, ParamFilter.Glob (trainable filters) and
    // freezing select the same parameters for every pattern.
    [Property(MaxTest = 200)]
    public Property ByName_and_ParamFilter_Glob_are_one_dialect() =>
        Prop.ForAll(Gens.ParamGlob.ToArbitrary(), pattern =>
        {
            var layout = new ParamLayout(NestedPaths.Select(p => (p, new Shape(2), DType.Float32)));
            var byMask = ParamMask.ByName(pattern).Select(layout).Select(p => p.Path).ToList();
            var byFilter = ParamFilter.Glob(pattern).Select(layout);
            return byMask.SequenceEqual(byFilter).Label($"{pattern}: ParamMask [{string.Join(", ", byMask)}], ParamFilter [{string.Join(", ", byFilter)}]");
        });

    [Fact]
    public void Star_stays_within_a_segment_and_double_star_crosses_them()
    {
        var layout = new ParamLayout(NestedPaths.Select(p => (p, new Shape(2), DType.Float32)));
        Assert.Equal(["bn1.bias", "fc.bias", "0.bias"], ParamMask.ByName("*.bias").Select(layout).Select(p => p.Path));
        Assert.Equal(["bn1.bias", "layer1.0.bn1.bias", "fc.bias", "0.bias"], ParamMask.ByName("**.bias").Select(layout).Select(p => p.Path));
        Assert.Equal(["layer1.0.conv1.weight", "layer1.0.bn1.bias"], ParamMask.ByName("layer1.?.*.*").Select(layout).Select(p => p.Path));
    }
}
