namespace IlgpuTrain.Functional;

public static partial class F
{
    /// <summary>
    /// Batched matrix product C[q] = op(A[q]) op(B[q]) over equal leading batch dimensions, with
    /// op(X) = X or X^T of the last two dimensions: torch.bmm for rank 3, torch.matmul (without
    /// broadcasting) for rank 4 and more, e.g. attention's Q K^T (transB) and P V.
    /// </summary>
    /// <remarks>
    /// <para>a (..., M, K) or (..., K, M) with <paramref name="transA"/>; b (..., K, N) or (..., N, K) with <paramref name="transB"/>; C (..., M, N)</para>
    /// <para>dA[q] = dC[q] op(B[q])^T, stored transposed back when transA: dA[q] = op(B[q]) dC[q]^T</para>
    /// <para>dB[q] = op(A[q])^T dC[q], stored transposed back when transB: dB[q] = dC[q]^T op(A[q])</para>
    /// <para>The leading dimensions (...) of a and b must be equal (no broadcasting: expand or
    /// reshape the operand first). Rank 2 is one product, as <see cref="MatMul"/>. Every product is
    /// one GEMM of the batch: on CPUs the cache-blocked SIMD GEMM, one product per core when the
    /// batch is at least the core count; on GPUs one launch of the tiled GEMM whose grid spans batch
    /// x tiles.</para>
    /// <para>Under <see cref="Precision.Float16"/>: C = round16(half(A) half(B)) with float
    /// accumulation and the backward products on half(dC), half(A), half(B), as <see cref="MatMul"/>
    /// (per matrix, the same bits as MatMul under Float16). The operands are rounded to binary16 in
    /// float copies, so the float GEMM multiplies exactly the values a binary16 GEMM would widen.</para>
    /// </remarks>
    /// <param name="a">A (..., M, K), or (..., K, M) when <paramref name="transA"/>; float32.</param>
    /// <param name="b">B (..., K, N), or (..., N, K) when <paramref name="transB"/>; float32, the leading dimensions of a.</param>
    /// <param name="transA">Whether to use the transpose of each matrix of A.</param>
    /// <param name="transB">Whether to use the transpose of each matrix of B.</param>
    /// <returns>C (..., M, N).</returns>
    public static Tensor BatchedMatMul(Tensor a, Tensor b, bool transA = false, bool transB = false)
    {
        const string op = nameof(BatchedMatMul);
        var scope = ScopeOf(op, a, b);
        RequireFloat(op, a, nameof(a));
        RequireFloat(op, b, nameof(b));
        string Legend(Tensor t, bool trans, string rows, string cols) => $"{t.Shape}{(trans ? $" read as (..., {cols}, {rows})^T" : string.Empty)}";
        if (a.Shape.Rank < 2 || b.Shape.Rank < 2)
            throw new ArgumentException($"{op}: a is {a.Shape} and b is {b.Shape}; both must be stacks of matrices (..., rows, cols) of rank 2 or more (unsqueeze a vector to a (1, K) or (K, 1) matrix).", a.Shape.Rank < 2 ? nameof(a) : nameof(b));
        if (a.Shape.Rank != b.Shape.Rank)
            throw new ArgumentException($"{op}: a is {a.Shape} (rank {a.Shape.Rank}) and b is {b.Shape} (rank {b.Shape.Rank}); they must have the same leading batch dimensions (there is no broadcasting: reshape or expand one operand first).", nameof(b));
        int rank = a.Shape.Rank;
        long batchL = 1;
        for (int i = 0; i < rank - 2; i++)
        {
            if (a.Shape[i] != b.Shape[i])
                throw new ArgumentException($"{op}: a is {a.Shape} and b is {b.Shape}; their batch dimensions (all but the last two) must be equal, but dimension {i} is {a.Shape[i]} vs {b.Shape[i]} (there is no broadcasting: reshape or expand one operand first).", nameof(b));
            batchL *= a.Shape[i];
        }

        int m = transA ? a.Shape[-1] : a.Shape[-2], k = transA ? a.Shape[-2] : a.Shape[-1];
        int kb = transB ? b.Shape[-1] : b.Shape[-2], n = transB ? b.Shape[-2] : b.Shape[-1];
        if (k != kb)
            throw new ArgumentException($"{op}: op(A) is (..., {m}, {k}) and op(B) is (..., {kb}, {n}); the inner dimensions must agree (a {Legend(a, transA, "M", "K")}, b {Legend(b, transB, "K", "N")}); transpose an operand with transA/transB or F.Transpose.", nameof(b));

        int batch = checked((int)batchL);
        var dims = a.Shape.ToArray();
        dims[^2] = m;
        dims[^1] = n;
        var c = scope.Allocate(new Shape(dims));
        var host = scope.Device.Kernels;
        bool half = scope.Precision == Precision.Float16;
        var av = half ? HalfRoundedCopy(scope, a.View<float>()) : a.View<float>();
        var bv = half ? HalfRoundedCopy(scope, b.View<float>()) : b.View<float>();
        IlgpuTrain.Kernels.Gemm.RunBatched(host, transA, transB, batch, m, n, k, 1f, av, bv, 0f, c.View<float>());
        if (half)
            GemmHalf.RoundToHalfInPlace(host, c.View<float>());
        Record(op, c, [a, b], g =>
        {
            // Under Float16, dC in fp16 (as MatMul): gradients below 2^-25 flush to 0 unless the loss scale lifts them.
            var dc = half ? HalfRoundedCopy(g.Scope, g.OutputGrad) : g.OutputGrad;
            if (g.Needs(a))
            {
                if (!transA)
                    IlgpuTrain.Kernels.Gemm.RunBatched(g.Kernels, false, !transB, batch, m, k, n, 1f, dc, bv, 0f, g.Into(a));
                else
                    IlgpuTrain.Kernels.Gemm.RunBatched(g.Kernels, transB, true, batch, k, m, n, 1f, bv, dc, 0f, g.Into(a));
            }

            if (g.Needs(b))
            {
                if (!transB)
                    IlgpuTrain.Kernels.Gemm.RunBatched(g.Kernels, !transA, false, batch, k, n, m, 1f, av, dc, 0f, g.Into(b));
                else
                    IlgpuTrain.Kernels.Gemm.RunBatched(g.Kernels, true, transA, batch, n, k, m, 1f, dc, av, 0f, g.Into(b));
            }
        });
        return c;
    }

    // float(half(x)) in the step arena: x rounded to binary16 (nearest even, +-inf from 65520) and
    // kept as float, for the Float16 policy of the GEMM-based ops.
    private static ArrayView<float> HalfRoundedCopy(StepScope scope, ArrayView<float> x)
    {
        var r = scope.Scratch<float>(x.Length);
        Transfer.Copy(scope.Device.Kernels.Stream, x, r);
        GemmHalf.RoundToHalfInPlace(scope.Device.Kernels, r);
        return r;
    }
}
