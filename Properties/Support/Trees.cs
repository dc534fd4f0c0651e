namespace IlgpuTrain.Properties.Support;

/// <summary>Parameter trees for optimizer properties: generated layouts and host/device round trips.</summary>
public static class Trees
{
    /// <summary>A small model-like layout: weights (rank 2) and biases (rank 1), some possibly empty.</summary>
    public static Gen<(int[] Shape, string Path)[]> Layouts { get; } =
        from count in Gen.Choose(1, 4)
        from dims in Gen.ArrayOf(Gen.Choose(0, 9), count * 2)
        select Enumerable.Range(0, count)
            .SelectMany(i => new[] { (new[] { Math.Max(1, dims[2 * i]), dims[(2 * i) + 1] }, $"{i}.weight"), (new[] { dims[(2 * i) + 1] }, $"{i}.bias") })
            .ToArray();

    /// <summary>A tree with the given layout and values uniform in [lo, hi] from a seed.</summary>
    /// <param name="device">The device.</param>
    /// <param name="layout">Shapes and paths.</param>
    /// <param name="seed">Seed.</param>
    /// <param name="lo">Lower bound.</param>
    /// <param name="hi">Upper bound.</param>
    /// <returns>The tree.</returns>
    public static ParamTree Random(Device device, (int[] Shape, string Path)[] layout, int seed, float lo = -1f, float hi = 1f) =>
        ParamTree.FromHost(device, layout.Select((e, i) => new KeyValuePair<string, (int[] Shape, float[] Data)>(
            e.Path, (e.Shape, Gens.Random(seed + (i * 7919), (int)new Shape(e.Shape).Length, lo, hi)))));

    /// <summary>A tree with the same layout as <paramref name="like"/> holding <paramref name="flat"/>.</summary>
    /// <param name="like">The layout donor.</param>
    /// <param name="flat">Flat Float32 values.</param>
    /// <returns>The tree.</returns>
    public static ParamTree FromFlat(ParamTree like, float[] flat)
    {
        var t = like.ZerosLike();
        Transfer.ToDevice<float>(like.Device.Stream, flat, t.Flat32);
        return t;
    }

    /// <summary>The flat Float32 buffer on the host.</summary>
    /// <param name="tree">The tree.</param>
    /// <returns>A copy.</returns>
    public static float[] Flat(this ParamTree tree) => Transfer.ToHost(tree.Device.Stream, tree.Flat32);
}
