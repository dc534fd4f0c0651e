namespace IlgpuTrain.Properties.Support;

public static partial class Gens
{
    /// <summary>A shape for elementwise op checks: (N) of an edge length up to 257 (0, 1, the group size plus or minus one, primes), or (N, D).</summary>
    public static Gen<Shape> OpShape { get; } = Gen.OneOf(
        Gen.Elements(0, 1, 2, 3, 7, 15, 16, 17, 31, 97, 257).Select(n => new Shape(n)),
        from n in Gen.Choose(0, 5)
        from d in Gen.Elements(1, 2, 3, 7, 16, 17)
        select new Shape(n, d));

    /// <summary>Values for a shape, in [-4, 4]: O(1), where sigmoid is neither flat nor linear.</summary>
    /// <param name="shape">The shape.</param>
    /// <returns>Row-major values.</returns>
    public static Gen<float[]> ValuesFor(Shape shape) => Floats(checked((int)shape.Length), -4f, 4f);
}
