namespace IlgpuTrain.Properties.Support;

/// <summary>Generators for the sequence ops: batched matmul, permute, slice, gather and masked softmax.</summary>
public static partial class Gens
{
    /// <summary>Small matrix sides with the edges 0, 1, a prime, the CPU group side 4 ± 1 and 16 ± 1.</summary>
    public static Gen<int> SeqDim { get; } = Gen.Elements(0, 1, 2, 3, 5, 7, 16, 17);

    /// <summary>A batched product: batch dimensions (rank 1 or 2, so operands of rank 3 or 4), M, N, K, transposes, seed.</summary>
    public static Gen<BmmCase> BmmCase { get; } =
        from batchRank in Gen.Choose(1, 2)
        from batch in Gen.ArrayOf(Gen.Elements(0, 1, 2, 3, 5), batchRank)
        from m in SeqDim
        from n in SeqDim
        from k in SeqDim
        from transA in Gen.Elements(false, true)
        from transB in Gen.Elements(false, true)
        from seed in Gen.Choose(0, 100000)
        select new BmmCase(batch, m, n, k, transA, transB, seed);

    /// <summary>A permutation of 0..rank-1 (the order of random keys).</summary>
    /// <param name="rank">How many axes.</param>
    /// <returns>The generator.</returns>
    public static Gen<int[]> Permutation(int rank) =>
        from keys in Gen.ArrayOf(Gen.Choose(0, 1 << 20), rank)
        select Enumerable.Range(0, rank).OrderBy(i => keys[i]).ThenBy(i => i).ToArray();

    /// <summary>A tensor shape of rank 1 to 6 with dimensions in {0, 1, 2, 3, 5} (at most 6 * 5^4 elements), an axis of it and a seed.</summary>
    public static Gen<(int[] Dims, int Axis, int Seed)> SeqShape { get; } =
        from rank in Gen.Choose(1, 6)
        from dims in Gen.ArrayOf(Gen.Elements(1, 2, 3, 5, 1, 2, 0), rank)
        from axis in Gen.Choose(0, rank - 1)
        from seed in Gen.Choose(0, 100000)
        where dims.Aggregate(1L, (a, b) => a * b) <= 4000
        select (dims, axis, seed);

    /// <summary>A masked-softmax problem: x (B, H, Tq, Tk) or (B, Tq, Tk), the masks that apply and a bias shape.</summary>
    public static Gen<MaskCase> MaskCase { get; } =
        from b in Gen.Elements(1, 2, 3)
        from h in Gen.Elements(0, 1, 2)
        from tq in Gen.Elements(1, 2, 3, 5)
        from tk in Gen.Elements(1, 2, 3, 5, 17)
        from causal in Gen.Elements(false, true)
        from keys in Gen.Elements(0, 1, 2)
        from lengths in Gen.ArrayOf(Gen.Choose(-1, tk + 1), b)
        from mask in Gen.ArrayOf(Gen.Elements(0, 1, 1, 7), b * tk)
        from bias in Gen.Elements(0, 1, 2)
        from seed in Gen.Choose(0, 100000)
        select new MaskCase(h == 0 ? [b, tq, tk] : [b, h, tq, tk], causal, keys == 1 ? lengths : null, bias == 0 ? null : bias == 1 ? [tq, tk] : [1, tq, tk], seed, keys == 2 ? mask : null);
}

/// <summary>One batched product C = op(A) op(B) over batch dimensions.</summary>
/// <param name="Batch">The leading batch dimensions.</param>
/// <param name="M">Rows of each C.</param>
/// <param name="N">Columns of each C.</param>
/// <param name="K">Reduction length.</param>
/// <param name="TransA">Whether each A is stored (K, M).</param>
/// <param name="TransB">Whether each B is stored (N, K).</param>
/// <param name="Seed">Seed of the values.</param>
public sealed record BmmCase(int[] Batch, int M, int N, int K, bool TransA, bool TransB, int Seed)
{
    /// <summary>The number of products.</summary>
    public int Count => Batch.Aggregate(1, (a, b) => a * b);

    /// <summary>A's stored shape.</summary>
    public Shape AShape => new([.. Batch, TransA ? K : M, TransA ? M : K]);

    /// <summary>B's stored shape.</summary>
    public Shape BShape => new([.. Batch, TransB ? N : K, TransB ? K : N]);

    /// <inheritdoc/>
    public override string ToString() => $"Bmm(batch [{string.Join(", ", Batch)}], M {M}, N {N}, K {K}, transA {TransA}, transB {TransB}, seed {Seed})";
}

/// <summary>One masked softmax: x's dimensions, the causal flag, key lengths (one per entry of the first dimension) and the bias' shape.</summary>
/// <param name="Dims">x's dimensions (..., Tq, Tk).</param>
/// <param name="Causal">Whether keys after the query are masked.</param>
/// <param name="Lengths">Valid key counts, or null.</param>
/// <param name="BiasDims">The bias' dimensions, or null.</param>
/// <param name="Seed">Seed of the values.</param>
/// <param name="KeyMask">A key mask (B, Tk), nonzero = kept, or null (never with Lengths).</param>
public sealed record MaskCase(int[] Dims, bool Causal, int[]? Lengths, int[]? BiasDims, int Seed, int[]? KeyMask = null)
{
    /// <summary>Rows N (all but the last dimension).</summary>
    public int Rows => Dims[..^1].Aggregate(1, (a, b) => a * b);

    /// <summary>Row length Tk.</summary>
    public int Cols => Dims[^1];

    /// <inheritdoc/>
    public override string ToString() =>
        $"Mask(x [{string.Join(", ", Dims)}], causal {Causal}, lengths [{string.Join(", ", Lengths ?? [])}], key mask [{string.Join(", ", KeyMask ?? [])}], bias [{string.Join(", ", BiasDims ?? [])}], seed {Seed})";
}
