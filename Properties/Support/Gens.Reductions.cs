namespace IlgpuTrain.Properties.Support;

/// <summary>Generators for the reduction properties.</summary>
public static partial class Gens
{
    /// <summary>
    /// Values whose magnitudes span 10^-4 .. 10^4 with random signs, so sums cancel and small
    /// terms meet large partial sums (where a plain float loop loses bits).
    /// </summary>
    /// <returns>The generator.</returns>
    public static Gen<float[]> MixedScaleVector() =>
        from n in Length
        from seed in Gen.Choose(int.MinValue, int.MaxValue)
        select MixedScale(seed, n);

    /// <summary>A vector for reductions: uniform in [-10, 10] or mixed-scale, half the time each.</summary>
    /// <returns>The generator.</returns>
    public static Gen<float[]> ReductionVector() => Gen.OneOf(Vector(), MixedScaleVector());

    /// <summary>A length for reductions large enough that each CPU thread accumulates a long slice (1e5 .. 2.5e5).</summary>
    public static Gen<int> LargeLength { get; } = Gen.Choose(100_000, 250_000);

    /// <summary>
    /// Launch shapes for the GPU reduction variants, run on the simulated GPU: (reduce group size,
    /// number of groups). Group sizes are powers of two up to the simulator's 16 plus one that is
    /// not (12), so the trees are checked at every depth.
    /// </summary>
    public static Gen<(int Group, int Groups)> ReduceShape { get; } =
        Gen.Elements((1, 3), (2, 5), (4, 1), (8, 3), (12, 2), (16, 7));

    /// <summary>Deterministic mixed-scale values (see <see cref="MixedScaleVector"/>).</summary>
    /// <param name="seed">The seed.</param>
    /// <param name="n">Length.</param>
    /// <returns>The values.</returns>
    public static float[] MixedScale(int seed, int n)
    {
        var rng = new Random(seed);
        var v = new float[n];
        for (int i = 0; i < n; i++)
            v[i] = (float)((rng.Next(2) == 0 ? -1 : 1) * (1 + rng.NextDouble()) * Math.Pow(10, rng.Next(-4, 5)));
        return v;
    }
}
