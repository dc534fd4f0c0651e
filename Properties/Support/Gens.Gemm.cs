namespace IlgpuTrain.Properties.Support;

/// <summary>Generators for GEMM: shapes, transposes, scales and operands.</summary>
public static partial class Gens
{
    /// <summary>
    /// A GEMM dimension: <see cref="Dim"/> (0, 1, 15/16/17 around the simulated 16-wide tile, primes,
    /// up to 70) or 63/64/65 around the 64-wide tile of 16 x 16 GPU groups.
    /// </summary>
    public static Gen<int> GemmDim { get; } = Gen.OneOf(Dim, Dim, Gen.Elements(63, 64, 65));

    /// <summary>alpha: 1 (the common case) or uniform in [-2, 2].</summary>
    public static Gen<float> GemmAlpha { get; } = Gen.OneOf(Gen.Constant(1f), Float(-2f, 2f), Float(-2f, 2f));

    /// <summary>beta: 0 (overwrite, C not read), 1 (accumulate) or uniform in [-2, 2].</summary>
    public static Gen<float> GemmBeta { get; } = Gen.OneOf(Gen.Constant(0f), Gen.Constant(1f), Float(-2f, 2f));

    /// <summary>A GEMM problem with generated transposes, shapes, scales and operands in [-2, 2].</summary>
    /// <returns>The generator.</returns>
    public static Gen<GemmCase> GemmCase() =>
        from transA in Gen.Elements(false, true)
        from transB in Gen.Elements(false, true)
        from m in GemmDim
        from n in GemmDim
        from k in GemmDim
        from alpha in GemmAlpha
        from beta in GemmBeta
        from seed in Gen.Choose(int.MinValue, int.MaxValue)
        select new GemmCase(transA, transB, m, n, k, alpha, beta, Random(seed, m * k, -2f, 2f), Random(seed ^ 0x5bd1e995, k * n, -2f, 2f), Random(~seed, m * n, -2f, 2f));
}

/// <summary>One GEMM problem: C = alpha op(A) op(B) + beta C with row-major storage.</summary>
/// <param name="TransA">Whether A is stored (K, M).</param>
/// <param name="TransB">Whether B is stored (N, K).</param>
/// <param name="M">Rows of C.</param>
/// <param name="N">Columns of C.</param>
/// <param name="K">Reduction length.</param>
/// <param name="Alpha">Scale of the product.</param>
/// <param name="Beta">Scale of the prior C.</param>
/// <param name="A">A, M*K values.</param>
/// <param name="B">B, K*N values.</param>
/// <param name="C">Prior C, M*N values.</param>
public sealed record GemmCase(bool TransA, bool TransB, int M, int N, int K, float Alpha, float Beta, float[] A, float[] B, float[] C)
{
    /// <inheritdoc/>
    public override string ToString() =>
        $"Gemm(transA {TransA}, transB {TransB}, M {M}, N {N}, K {K}, alpha {Alpha:R}, beta {Beta:R})";
}
