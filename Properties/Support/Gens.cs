namespace IlgpuTrain.Properties.Support;

/// <summary>
/// Every generator of the suite, in one place: this folder (area-specific parts in
/// Gens.&lt;Area&gt;.cs). Floats are finite and bounded (FsCheck's default
/// float generator yields NaN or infinity about one time in eight); lengths include 0, 1, a
/// prime and group sizes plus or minus one.
/// </summary>
public static partial class Gens
{
    /// <summary>Edge lengths: empty, one, primes and group-size boundaries of the CPU (1, 2) and GPU (16, 256) launch shapes.</summary>
    public static readonly int[] EdgeLengths = [0, 1, 2, 3, 7, 15, 16, 17, 31, 97, 255, 256, 257, 1009, 4099];

    /// <summary>A length: an edge length half the time, otherwise uniform in [0, 3000].</summary>
    public static Gen<int> Length { get; } = Gen.OneOf(Gen.Elements(EdgeLengths), Gen.Choose(0, 3000));

    /// <summary>A small dimension for matrices: edges 0, 1, group sizes plus or minus one, a prime, or uniform in [1, 70].</summary>
    public static Gen<int> Dim { get; } = Gen.OneOf(Gen.Elements(0, 1, 2, 3, 7, 15, 16, 17, 31, 33, 61), Gen.Choose(1, 70));

    /// <summary>A positive small dimension (at least 1).</summary>
    public static Gen<int> PositiveDim { get; } = Dim.Select(d => Math.Max(1, d));

    /// <summary>A finite float, uniform in [lo, hi].</summary>
    /// <param name="lo">Lower bound.</param>
    /// <param name="hi">Upper bound.</param>
    /// <returns>The generator.</returns>
    public static Gen<float> Float(float lo = -10f, float hi = 10f) =>
        Gen.Choose(0, 1 << 24).Select(k => lo + ((hi - lo) * (k / (float)(1 << 24))));

    /// <summary>An array of <paramref name="n"/> finite floats in [lo, hi].</summary>
    /// <param name="n">Length.</param>
    /// <param name="lo">Lower bound.</param>
    /// <param name="hi">Upper bound.</param>
    /// <returns>The generator.</returns>
    public static Gen<float[]> Floats(int n, float lo = -10f, float hi = 10f) =>
        Gen.Choose(int.MinValue, int.MaxValue).Select(seed => Random(seed, n, lo, hi));

    /// <summary>A vector of generated length with values in [lo, hi].</summary>
    /// <param name="lo">Lower bound.</param>
    /// <param name="hi">Upper bound.</param>
    /// <returns>The generator.</returns>
    public static Gen<float[]> Vector(float lo = -10f, float hi = 10f) =>
        from n in Length
        from v in Floats(n, lo, hi)
        select v;

    /// <summary>Two vectors of the same generated length.</summary>
    /// <returns>The generator.</returns>
    public static Gen<(float[] A, float[] B)> VectorPair() =>
        from n in Length
        from a in Floats(n)
        from b in Floats(n)
        select (a, b);

    /// <summary>A row-major (rows, cols) matrix with values in [lo, hi].</summary>
    /// <param name="lo">Lower bound.</param>
    /// <param name="hi">Upper bound.</param>
    /// <returns>The generator.</returns>
    public static Gen<Matrix> Matrix(float lo = -10f, float hi = 10f) =>
        from r in Dim
        from c in Dim
        from v in Floats(r * c, lo, hi)
        select new Matrix(r, c, v);

    /// <summary>Deterministic pseudo-random floats from a seed (large arrays without FsCheck shrinking cost).</summary>
    /// <param name="seed">The seed.</param>
    /// <param name="n">Length.</param>
    /// <param name="lo">Lower bound.</param>
    /// <param name="hi">Upper bound.</param>
    /// <returns>The values.</returns>
    public static float[] Random(int seed, int n, float lo = -10f, float hi = 10f)
    {
        var rng = new Random(seed);
        var v = new float[n];
        for (int i = 0; i < n; i++)
            v[i] = lo + ((hi - lo) * (float)rng.NextDouble());
        return v;
    }
}

/// <summary>A generated row-major matrix.</summary>
/// <param name="Rows">Rows.</param>
/// <param name="Cols">Columns.</param>
/// <param name="Data">Rows * Cols values.</param>
public sealed record Matrix(int Rows, int Cols, float[] Data)
{
    /// <inheritdoc/>
    public override string ToString() => $"Matrix({Rows}x{Cols})";
}
