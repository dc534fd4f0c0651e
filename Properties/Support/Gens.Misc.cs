namespace IlgpuTrain.Properties.Support;

public static partial class Gens
{
    /// <summary>A parameter-path glob of 1 to 4 dot-separated segments: literals, <c>*</c>, <c>**</c>, <c>?</c> and mixtures such as <c>b*</c> or <c>conv?</c>.</summary>
    public static Gen<string> ParamGlob { get; } =
        from n in Gen.Choose(1, 4)
        from parts in Gen.ArrayOf(Gen.Elements("*", "**", "?", "0", "1", "bias", "weight", "layer1", "bn1", "b*", "*1", "fc", "conv?", "??"), n)
        select string.Join(".", parts);

    /// <summary>A drop probability: the edges 0 and 1, common values, or uniform in [0, 1].</summary>
    public static Gen<float> DropP { get; } =
        Gen.OneOf(Gen.Elements(0f, 1f, 0.1f, 0.5f, 0.9f), Gen.Choose(0, 1000).Select(k => k / 1000f));

    /// <summary>A Philox key (seed, stream, counter) for dropout masks.</summary>
    public static Gen<(ulong Seed, uint Stream, uint Counter)> DropKey { get; } =
        from a in Gen.Choose(int.MinValue, int.MaxValue)
        from b in Gen.Choose(int.MinValue, int.MaxValue)
        from s in Gen.Choose(0, 1000)
        from c in Gen.Choose(0, 100000)
        select (((ulong)(uint)a << 32) | (uint)b, (uint)s, (uint)c);

    /// <summary>An embedding case: vocabulary V, dimension D, N indices in [0, V) (repeats likely) and a seed.</summary>
    public static Gen<(int V, int D, int[] Indices, int Seed)> EmbeddingCase { get; } =
        from v in Gen.OneOf(Gen.Elements(1, 2, 7, 17), Gen.Choose(1, 40))
        from d in Gen.Elements(1, 2, 3, 7, 15, 16, 17)
        from n in Gen.Elements(0, 1, 2, 7, 15, 16, 17, 31, 64)
        from idx in Gen.ArrayOf(Gen.Choose(0, v - 1), n)
        from seed in Gen.Choose(0, 100000)
        select (v, d, idx, seed);

    /// <summary>
    /// A concatenation case: a shape of rank 1 to 4 (dimensions 0 to 5), an axis, and the sizes of
    /// 1 to 4 inputs along that axis (0 included).
    /// </summary>
    public static Gen<(int[] Dims, int Axis, int[] Sizes, int Seed)> ConcatCase { get; } =
        from rank in Gen.Choose(1, 4)
        from dims in Gen.ArrayOf(Gen.Elements(1, 1, 2, 3, 5, 0), rank)
        from axis in Gen.Choose(0, rank - 1)
        from k in Gen.Choose(1, 4)
        from sizes in Gen.ArrayOf(Gen.Elements(0, 1, 2, 3, 7, 16, 17), k)
        from seed in Gen.Choose(0, 100000)
        select (dims, axis, sizes, seed);
}
