namespace IlgpuTrain.Properties.Support;

/// <summary>A generated (N, C, S) batch for batch normalization, with an upstream gradient of the same shape.</summary>
/// <param name="N">Batch N.</param>
/// <param name="C">Channels C.</param>
/// <param name="S">Inner size S (H W, or 1).</param>
/// <param name="X">N C S inputs.</param>
/// <param name="Dy">N C S upstream gradients.</param>
/// <param name="Seed">A seed for anything else the property draws (parameters, running statistics).</param>
public sealed record ChannelBatch(int N, int C, int S, float[] X, float[] Dy, int Seed)
{
    /// <summary>Values per channel, N S.</summary>
    public int M => N * S;

    /// <inheritdoc/>
    public override string ToString() => $"(N, C, S) = ({N}, {C}, {S}), seed {Seed}";
}

/// <summary>A generated (N, D) batch for layer normalization, with an upstream gradient.</summary>
/// <param name="N">Rows N.</param>
/// <param name="D">Row length D.</param>
/// <param name="X">N D inputs.</param>
/// <param name="Dy">N D upstream gradients.</param>
/// <param name="Seed">A seed for parameters.</param>
public sealed record RowBatch(int N, int D, float[] X, float[] Dy, int Seed)
{
    /// <inheritdoc/>
    public override string ToString() => $"(N, D) = ({N}, {D}), seed {Seed}";
}

/// <summary>Generators for BatchNorm and LayerNorm.</summary>
public static partial class Gens
{
    /// <summary>
    /// (N, C, S) batches whose per-channel count m = N S covers 0, 1, a prime, the simulated GPU
    /// group 16 plus or minus one and the real group 256 plus or minus one; C covers 0, 1, a prime and 16 plus or minus one.
    /// </summary>
    public static Gen<ChannelBatch> ChannelBatch { get; } =
        from shape in Gen.OneOf(
            from n in Gen.Elements(0, 1, 2, 3, 7, 16, 17)
            from c in Gen.Elements(1, 2, 3, 7, 15, 16, 17)
            from s in Gen.Elements(1, 2, 15, 16, 17)
            select (n, c, s),
            from m in Gen.Elements(255, 256, 257)
            from c in Gen.Elements(1, 3)
            from nFirst in Gen.Elements(true, false)
            select nFirst ? (m, c, 1) : (1, c, m),
            Gen.Constant((5, 0, 3)))
        from x in Floats(shape.Item1 * shape.Item2 * shape.Item3, -5f, 5f)
        from dy in Floats(shape.Item1 * shape.Item2 * shape.Item3, -2f, 2f)
        from seed in Gen.Choose(0, 1_000_000)
        select new ChannelBatch(shape.Item1, shape.Item2, shape.Item3, x, dy, seed);

    /// <summary>
    /// Small (N, C, S) batches for finite differences, m = N S at least 2, whose channels are
    /// well spread (variance at least 0.25 of their scale squared, see <see cref="Spread"/>), so
    /// 1/sqrt(var + eps) is well conditioned.
    /// </summary>
    public static Gen<ChannelBatch> SmallChannelBatch { get; } =
        from n in Gen.Elements(1, 2, 3, 4)
        from c in Gen.Elements(1, 2, 3)
        from s in Gen.Elements(1, 2, 3, 5)
        where n * s >= 2
        from seed in Gen.Choose(0, 1_000_000)
        select new ChannelBatch(n, c, s, SpreadChannels(n, c, s, seed), Random(seed + 1, n * c * s, -1f, 1f), seed);

    /// <summary>(N, D) batches: N covers 0, 1, a prime, 16 and 256 plus or minus one; D covers 1, a prime, 16 and 256 plus or minus one.</summary>
    public static Gen<RowBatch> RowBatch { get; } =
        from n in Gen.OneOf(Gen.Elements(0, 1, 2, 7, 15, 16, 17), Gen.Elements(255, 257))
        from d in Gen.OneOf(Gen.Elements(1, 2, 3, 7, 15, 16, 17, 64), Gen.Elements(255, 256, 257))
        where n * d <= 20_000
        from x in Floats(n * d, -5f, 5f)
        from dy in Floats(n * d, -2f, 2f)
        from seed in Gen.Choose(0, 1_000_000)
        select new RowBatch(n, d, x, dy, seed);

    /// <summary>Small (N, D) batches for finite differences, rows well spread (see <see cref="Spread"/>); D = 1 included (x̂ = 0).</summary>
    public static Gen<RowBatch> SmallRowBatch { get; } =
        from n in Gen.Elements(1, 2, 3)
        from d in Gen.Elements(1, 2, 3, 5, 8)
        from seed in Gen.Choose(0, 1_000_000)
        select new RowBatch(n, d, Enumerable.Range(0, n).SelectMany(i => Spread(d, seed + i)).ToArray(), Random(seed + 1000, n * d, -1f, 1f), seed);

    /// <summary>
    /// m distinct values: a shuffled linspace(-1, 1, m) times a scale in [0.5, 2], plus a shift in
    /// [-1, 1] and a jitter of 0.05. Their variance is at least a quarter of the scale squared.
    /// </summary>
    /// <param name="m">How many.</param>
    /// <param name="seed">The seed.</param>
    /// <returns>The values.</returns>
    public static float[] Spread(int m, int seed)
    {
        var r = new Random(seed);
        double scale = 0.5 + (1.5 * r.NextDouble());
        double shift = (2 * r.NextDouble()) - 1;
        var v = new float[m];
        for (int k = 0; k < m; k++)
            v[k] = (float)((scale * (m == 1 ? 0 : (2.0 * k / (m - 1)) - 1)) + shift + (0.05 * r.NextDouble()));
        r.Shuffle(v);
        return v;
    }

    private static float[] SpreadChannels(int n, int c, int s, int seed)
    {
        var x = new float[n * c * s];
        for (int ch = 0; ch < c; ch++)
        {
            var v = Spread(n * s, seed + ch);
            for (int i = 0; i < n; i++)
            {
                for (int j = 0; j < s; j++)
                    x[(((i * c) + ch) * s) + j] = v[(i * s) + j];
            }
        }

        return x;
    }
}
