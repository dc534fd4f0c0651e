using ILGPU;
using Half = ILGPU.Half;

namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>GemmHalf</c> kernels: plain loops, slow and obviously right. Named References because C# forbids a member named as its class.</summary>
internal static class GemmHalfReferences
{
    /// <summary>
    /// Reference: c[i, j] = alpha * sum_p float(op(A)[i, p]) * float(op(B)[p, j]) + beta * c[i, j],
    /// halves widened exactly by <see cref="CastReference.ToFloatReference(Half)"/>, float64 accumulation.
    /// c is not read when beta == 0; a and b are not read when alpha == 0.
    /// </summary>
    /// <param name="transA">Whether A is stored (K, M).</param>
    /// <param name="transB">Whether B is stored (N, K).</param>
    /// <param name="m">Rows of op(A) and C.</param>
    /// <param name="n">Columns of op(B) and C.</param>
    /// <param name="k">Reduction length.</param>
    /// <param name="alpha">Scale of the product.</param>
    /// <param name="a">A, M*K halves.</param>
    /// <param name="b">B, K*N halves.</param>
    /// <param name="beta">Scale of the prior C.</param>
    /// <param name="c">C (M, N), float, updated.</param>
    public static void GemmHalfReference(bool transA, bool transB, int m, int n, int k, float alpha, ReadOnlySpan<Half> a, ReadOnlySpan<Half> b, float beta, Span<float> c)
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
                        double aip = CastReference.ToFloatReference(transA ? a[(p * m) + i] : a[(i * k) + p]);
                        double bpj = CastReference.ToFloatReference(transB ? b[(j * k) + p] : b[(p * n) + j]);
                        sum += aip * bpj;
                    }
                }
                double prior = beta == 0f ? 0 : beta * (double)c[(i * n) + j];
                c[(i * n) + j] = (float)((alpha * sum) + prior);
            }
        }
    }

    /// <summary>Reference: x[i] = float(half(x[i])), through <see cref="CastReference.ToHalfReference(float)"/> and back.</summary>
    /// <param name="x">Values, rounded in place.</param>
    public static void RoundToHalfReference(Span<float> x)
    {
        for (int i = 0; i < x.Length; i++)
            x[i] = CastReference.ToFloatReference(CastReference.ToHalfReference(x[i]));
    }
}
