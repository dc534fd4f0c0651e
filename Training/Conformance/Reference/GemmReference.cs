namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>Gemm</c> kernels: plain loops, slow and obviously right. Named References because C# forbids a member named as its class.</summary>
internal static class GemmReferences
{
    /// <summary>
    /// Reference: c[i, j] = alpha * sum_p op(A)[i, p] * op(B)[p, j] + beta * c[i, j], a plain
    /// triple loop with float64 accumulation. c is not read when beta == 0; a and b are not read
    /// when alpha == 0.
    /// </summary>
    /// <param name="transA">Whether A is stored (K, M), i.e. op(A) = A^T.</param>
    /// <param name="transB">Whether B is stored (N, K), i.e. op(B) = B^T.</param>
    /// <param name="m">Rows of op(A) and C.</param>
    /// <param name="n">Columns of op(B) and C.</param>
    /// <param name="k">Reduction length: columns of op(A), rows of op(B).</param>
    /// <param name="alpha">Scale of the product.</param>
    /// <param name="a">A, M*K values, row-major (M, K) or (K, M) when <paramref name="transA"/>.</param>
    /// <param name="b">B, K*N values, row-major (K, N) or (N, K) when <paramref name="transB"/>.</param>
    /// <param name="beta">Scale of the prior C.</param>
    /// <param name="c">C (M, N), row-major, updated.</param>
    public static void GemmReference(bool transA, bool transB, int m, int n, int k, float alpha, ReadOnlySpan<float> a, ReadOnlySpan<float> b, float beta, Span<float> c)
    {
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                if (alpha != 0f)
                {
                    for (int p = 0; p < k; p++)
                    {
                        double aip = transA ? a[(p * m) + i] : a[(i * k) + p];
                        double bpj = transB ? b[(j * k) + p] : b[(p * n) + j];
                        sum += aip * bpj;
                    }
                }
                double prior = beta == 0f ? 0 : beta * (double)c[(i * n) + j];
                c[(i * n) + j] = (float)((alpha * sum) + prior);
            }
        }
    }
}
