namespace IlgpuTrain.Properties.Support;

public static partial class Gens
{
    /// <summary>A batch size for layer checks: empty, one, or a few.</summary>
    public static Gen<int> Batch { get; } = Gen.Frequency((1, Gen.Constant(0)), (3, Gen.Elements(1, 2, 3, 5)));

    /// <summary>A feature width for layer checks: 1, a prime, and the 16-thread group size plus or minus one.</summary>
    public static Gen<int> Width { get; } = Gen.Elements(1, 2, 3, 7, 15, 16, 17);

    /// <summary>A per-sample shape ending in <paramref name="d"/> features: (D), or (T, D) with a leading sequence axis.</summary>
    /// <param name="d">Features in the last dimension.</param>
    /// <returns>The generator.</returns>
    public static Gen<Shape> FeatureSample(int d) =>
        Gen.Elements(0, 0, 1, 2, 3).Select(t => t == 0 ? new Shape(d) : new Shape(t, d));

    /// <summary>A seed for parameters and inputs.</summary>
    public static Gen<int> LayerSeed { get; } = Gen.Choose(0, 1_000_000);
}
