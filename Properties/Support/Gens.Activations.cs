namespace IlgpuTrain.Properties.Support;

/// <summary>Generators for activations, casts and bias add.</summary>
public static partial class Gens
{
    // Getters, not initialized properties: initializers of a partial class run in file order, so
    // Length and Dim (Gens.cs) may still be null when this file's initializers would run.

    /// <summary>Inputs where activations go wrong: zeros, kinks, branch points, tiny and huge magnitudes.</summary>
    public static readonly float[] ActivationSpecials =
    [
        0f, -0f, float.Epsilon, -float.Epsilon, 1e-30f, -1e-30f, 1e-7f, -1e-7f,
        ActivationMath.TanhSmall, -ActivationMath.TanhSmall,
        MathF.BitDecrement(ActivationMath.TanhSmall), -MathF.BitDecrement(ActivationMath.TanhSmall),
        1.3119907f, -1.3119907f, // 0.927734375 * sqrt 2, where GELU's erf changes branch
        1f, -1f, 20f, -20f, 88f, -88f, 100f, -100f, 1e4f, -1e4f, 1e30f, -1e30f, float.MaxValue, -float.MaxValue,
    ];

    /// <summary>
    /// An activation input vector of generated length: mostly uniform in [-10, 10], with
    /// magnitudes from 1e-30 to 1e4 (cancellation and overflow regimes) and
    /// <see cref="ActivationSpecials"/> mixed in. All finite.
    /// </summary>
    public static Gen<float[]> ActivationInput =>
        from n in Length
        from seed in Gen.Choose(int.MinValue, int.MaxValue)
        select ActivationValues(seed, n);

    /// <summary>A forward input x and an output gradient dy in [-4, 4] of the same generated length.</summary>
    public static Gen<(float[] X, float[] Dy)> ActivationBackwardInput =>
        from x in ActivationInput
        from dy in Floats(x.Length, -4f, 4f)
        select (x, dy);

    /// <summary>A LeakyReLU negative slope: PyTorch's 0.01, 0, 1, or uniform in [-0.5, 2].</summary>
    public static Gen<float> NegativeSlope => Gen.OneOf(Gen.Elements(0.01f, 0f, 1f, 0.2f), Float(-0.5f, 2f));

    /// <summary>Points for finite differences: 64 values uniform in [-8, 8].</summary>
    public static Gen<float[]> DerivativePoints => Floats(64, -8f, 8f);

    /// <summary>
    /// Floats for the half cast: random bit patterns (NaN, infinities, float subnormals included),
    /// values in and just past the half range, tiny magnitudes around the half subnormals, and
    /// exact ties between neighbouring halves.
    /// </summary>
    public static Gen<float[]> HalfCastInput =>
        from n in Length
        from seed in Gen.Choose(int.MinValue, int.MaxValue)
        select HalfCastValues(seed, n);

    /// <summary>A bias-add problem: (N, F), x (N,F) and b (F).</summary>
    public static Gen<(int N, int F, float[] X, float[] B)> BiasAddInput =>
        from n in Dim
        from f in Dim
        from x in Floats(n * f)
        from b in Floats(f)
        select (n, f, x, b);

    /// <summary>Deterministic activation inputs from a seed (see <see cref="ActivationInput"/>).</summary>
    /// <param name="seed">The seed.</param>
    /// <param name="n">Length.</param>
    /// <returns>The values.</returns>
    public static float[] ActivationValues(int seed, int n)
    {
        var rng = new Random(seed);
        var v = new float[n];
        for (int i = 0; i < n; i++)
        {
            float sign = rng.Next(2) == 0 ? -1f : 1f;
            v[i] = rng.Next(10) switch
            {
                < 6 => (float)((rng.NextDouble() * 20) - 10),
                6 => sign * (float)Math.Pow(10, (rng.NextDouble() * 30) - 30),
                7 => sign * (float)Math.Pow(10, rng.NextDouble() * 4),
                8 => ActivationSpecials[rng.Next(ActivationSpecials.Length)],
                _ => (float)((rng.NextDouble() * 2) - 1),
            };
        }

        return v;
    }

    /// <summary>Deterministic half-cast inputs from a seed (see <see cref="HalfCastInput"/>).</summary>
    /// <param name="seed">The seed.</param>
    /// <param name="n">Length.</param>
    /// <returns>The values.</returns>
    public static float[] HalfCastValues(int seed, int n)
    {
        var rng = new Random(seed);
        var v = new float[n];
        for (int i = 0; i < n; i++)
        {
            float sign = rng.Next(2) == 0 ? -1f : 1f;
            v[i] = rng.Next(5) switch
            {
                0 => BitConverter.UInt32BitsToSingle((uint)rng.NextInt64(0, 1L << 32)),
                1 => sign * (float)(rng.NextDouble() * 70000),
                2 => sign * (float)Math.Pow(2, (rng.NextDouble() * 46) - 30),
                3 => sign * HalfTie(rng),
                _ => sign * (float)Math.Pow(2, (rng.NextDouble() * 12) - 27),
            };
        }

        return v;
    }

    // The midpoint between a random finite half and the next one (exact in float), nudged by -1, 0 or +1 float ulp.
    private static float HalfTie(Random rng)
    {
        int bits = rng.Next(0, 0x7C00);
        double lo = (double)BitConverter.UInt16BitsToHalf((ushort)bits);
        double hi = bits == 0x7BFF ? 65536 : (double)BitConverter.UInt16BitsToHalf((ushort)(bits + 1));
        float mid = (float)((lo + hi) / 2);
        return rng.Next(3) switch
        {
            0 => MathF.BitDecrement(mid),
            1 => mid,
            _ => MathF.BitIncrement(mid),
        };
    }
}
