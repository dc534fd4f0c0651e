using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using IlgpuTrain.Kernels.Runtime;
using ILGPU.Algorithms;

namespace IlgpuTrain.Kernels;

// Layer normalization over the rows of x (N, D) (D is the product of PyTorch's normalized_shape),
// with an elementwise affine gamma, beta (D); the forward saves mean and rstd (N) for the backward.
//
//   Forward     mean = (1/D) Σ_j x_j,  var = (1/D) Σ_j (x_j - mean)²  (BIASED; two passes)
//               rstd = 1 / sqrt(var + eps),  x̂ = (x - mean) rstd,  y = gamma x̂ + beta
//               reads 8 B (x twice, from cache the second time; the centered pass avoids the
//               E[x²] - E[x]² cancellation), writes 4 B
//   InputGrad   g = dy gamma:  dx = rstd (g - mean_j(g) - x̂ mean_j(g x̂))     reads 8 B, writes 4 B
//   ParamGrads  dgamma_j = Σ_rows dy x̂,  dbeta_j = Σ_rows dy  (column sums)  reads 8 B
//
// Every output is OVERWRITTEN. y may alias x and dx may alias dy: a thread owns its row and
// finishes the row statistics before any write. Forward and InputGrad run one thread per row
// (grid-stride), as Softmax: rows of D = 64 .. 4096 fit in L1 and the batch gives the parallelism.
// ParamGrads runs one thread per column over the rows in order: deterministic (no float atomics),
// neighbouring threads read neighbouring columns (coalesced). No shared memory, so one variant
// serves every accelerator. Each pass is one body generic over IElements<float> (ForwardBody,
// InputGradBody per row, ParamGradsBody per column) run by Elementwise.ForEachKernel; the managed
// loops call the same bodies' pieces on host pointers and add only what pays on a CPU, so they
// are bitwise equal to the kernels.

/// <summary>Layer normalization over the rows of (N, D): bodies, managed loops and checked launchers.</summary>
internal static class LayerNorm
{
    // ---------------------------------------------------------------- the bodies, once

    private static readonly ForEachDef<ForwardBody<ViewElements<float>>> ForwardDef = new();
    private static readonly ForEachDef<InputGradBody<ViewElements<float>>> InputGradDef = new();
    private static readonly ForEachDef<ParamGradsBody<ViewElements<float>>> ParamGradsDef = new();

    // Row i: mean, biased variance, y = gamma x̂ + beta (gamma read only when hasGamma = 1, beta
    // when hasBeta = 1), and the saved mean and rstd.
    internal readonly struct ForwardBody<TF>(TF x, TF gamma, TF beta, TF y, TF mean, TF rstd, int d, float eps, int hasGamma, int hasBeta) : IElementBody
        where TF : struct, IElements<float>
    {
        public void Run(int i)
        {
            var (mu, sq) = Moments(i);
            float r = Rstd(sq);
            Normalize(i, mu, r, 0);
            Save(i, mu, r);
        }

        // The mean of row i and Σ (x - mean)², each summed over j in order from 0f.
        public (float Mu, float Sq) Moments(int i)
        {
            int o = i * d;
            float sum = 0f;
            for (int j = 0; j < d; j++)
                sum += x[o + j];
            float mu = sum / d;
            float sq = 0f;
            for (int j = 0; j < d; j++)
            {
                float v = x[o + j] - mu;
                sq += v * v;
            }

            return (mu, sq);
        }

        public float Rstd(float sq) => XMath.Rsqrt((sq / d) + eps);

        // y[i, j] for j in [j0, D).
        public void Normalize(int i, float mu, float r, int j0)
        {
            int o = i * d;
            for (int j = j0; j < d; j++)
            {
                float v = (x[o + j] - mu) * r;
                if (hasGamma != 0)
                    v *= gamma[j];
                y[o + j] = hasBeta != 0 ? v + beta[j] : v;
            }
        }

        public void Save(int i, float mu, float r)
        {
            mean[i] = mu;
            rstd[i] = r;
        }
    }

    // Row i: dx = rstd (g - mean_j g - x̂ mean_j(g x̂)), g = dy gamma (gamma read only when hasGamma is 1).
    internal readonly struct InputGradBody<TF>(TF x, TF dy, TF gamma, TF mean, TF rstd, TF dx, int d, int hasGamma) : IElementBody
        where TF : struct, IElements<float>
    {
        public void Run(int i)
        {
            var (a, b) = Sums(i);
            // One multiply by rstd per row turns Σ g (x - mean) into Σ g x̂.
            float invD = 1f / d;
            int o = i * d;
            float mu = mean[i];
            float r = rstd[i];
            a *= invD;
            b *= r * invD;
            for (int j = 0; j < d; j++)
            {
                float g = hasGamma != 0 ? dy[o + j] * gamma[j] : dy[o + j];
                float xhat = (x[o + j] - mu) * r;
                dx[o + j] = r * (g - a - (xhat * b));
            }
        }

        // a = Σ g and b = Σ g (x - mean) over row i, in order from 0f.
        public (float A, float B) Sums(int i)
        {
            int o = i * d;
            float mu = mean[i];
            float a = 0f, b = 0f;
            for (int j = 0; j < d; j++)
            {
                float g = hasGamma != 0 ? dy[o + j] * gamma[j] : dy[o + j];
                a += g;
                b += g * (x[o + j] - mu);
            }

            return (a, b);
        }
    }

    // Column j: dgamma_j = Σ_i dy x̂ and dbeta_j = Σ_i dy, rows in order.
    internal readonly struct ParamGradsBody<TF>(TF x, TF dy, TF mean, TF rstd, TF dgamma, TF dbeta, int n, int d) : IElementBody
        where TF : struct, IElements<float>
    {
        public void Run(int j)
        {
            float sg = 0f, sb = 0f;
            for (int i = 0; i < n; i++)
            {
                int at = (i * d) + j;
                float g = dy[at];
                sb += g;
                sg += g * (x[at] - mean[i]) * rstd[i];
            }

            dgamma[j] = sg;
            dbeta[j] = sb;
        }
    }

    // ---------------------------------------------------------------- managed CPU paths
    // Each output's float operations in the bodies' order. Forward, InputGrad: a row's sums run
    // over j from 0f; 4 rows side by side (4 independent add chains), other rows call the body's
    // sums; then Vector256 sub/mul/add (never FMA), lane = element, and the body's scalar loop
    // finishes the row; threads split rows. ParamGrads: a Vector256 lane per column, rows in order,
    // 16 columns (a cache line) per block, the body for a partial block; threads split blocks.

    private const int ColumnBlock = 16;

    // gamma and beta are null when absent (hasGamma / hasBeta = 0); row is the same body over them.
    private readonly unsafe struct ForwardRows(float* x, float* gamma, float* beta, float* y, int d, ForwardBody<PtrElements<float>> row) : CpuLoops.IRange
    {
        public void Run(int start, int end)
        {
            int i = start;
            for (; i <= end - 4; i += 4)
            {
                float* x0 = x + ((long)i * d), x1 = x0 + d, x2 = x1 + d, x3 = x2 + d;
                float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
                for (int j = 0; j < d; j++)
                {
                    s0 += x0[j];
                    s1 += x1[j];
                    s2 += x2[j];
                    s3 += x3[j];
                }

                float mu0 = s0 / d, mu1 = s1 / d, mu2 = s2 / d, mu3 = s3 / d;
                float q0 = 0f, q1 = 0f, q2 = 0f, q3 = 0f;
                for (int j = 0; j < d; j++)
                {
                    float v0 = x0[j] - mu0, v1 = x1[j] - mu1, v2 = x2[j] - mu2, v3 = x3[j] - mu3;
                    q0 += v0 * v0;
                    q1 += v1 * v1;
                    q2 += v2 * v2;
                    q3 += v3 * v3;
                }

                Finish(i, mu0, q0);
                Finish(i + 1, mu1, q1);
                Finish(i + 2, mu2, q2);
                Finish(i + 3, mu3, q3);
            }

            for (; i < end; i++)
            {
                var (mu, sq) = row.Moments(i);
                Finish(i, mu, sq);
            }
        }

        private void Finish(int i, float mu, float sq)
        {
            float r = row.Rstd(sq);
            float* xr = x + ((long)i * d), yr = y + ((long)i * d);
            int j = 0;
            if (Vector256.IsHardwareAccelerated)
            {
                Vector256<float> vmu = Vector256.Create(mu), vr = Vector256.Create(r);
                for (; j <= d - 8; j += 8)
                {
                    var v = (Vector256.Load(xr + j) - vmu) * vr;
                    if (gamma != null)
                        v *= Vector256.Load(gamma + j);
                    if (beta != null)
                        v += Vector256.Load(beta + j);
                    v.Store(yr + j);
                }
            }

            row.Normalize(i, mu, r, j);
            row.Save(i, mu, r);
        }
    }

    private readonly unsafe struct InputGradRows(float* x, float* dy, float* gamma, float* mean, float* rstd, float* dx, int d) : CpuLoops.IRange
    {
        private InputGradBody<PtrElements<float>> Row => new(new(x), new(dy), new(gamma), new(mean), new(rstd), new(dx), d, gamma != null ? 1 : 0);

        public void Run(int start, int end)
        {
            int i = start;
            for (; i <= end - 4; i += 4)
            {
                long o = (long)i * d;
                float* x0 = x + o, x1 = x0 + d, x2 = x1 + d, x3 = x2 + d;
                float* d0 = dy + o, d1 = d0 + d, d2 = d1 + d, d3 = d2 + d;
                float mu0 = mean[i], mu1 = mean[i + 1], mu2 = mean[i + 2], mu3 = mean[i + 3];
                float a0 = 0f, a1 = 0f, a2 = 0f, a3 = 0f, b0 = 0f, b1 = 0f, b2 = 0f, b3 = 0f;
                for (int j = 0; j < d; j++)
                {
                    float gm = gamma != null ? gamma[j] : 1f;
                    float g0 = gamma != null ? d0[j] * gm : d0[j];
                    float g1 = gamma != null ? d1[j] * gm : d1[j];
                    float g2 = gamma != null ? d2[j] * gm : d2[j];
                    float g3 = gamma != null ? d3[j] * gm : d3[j];
                    a0 += g0;
                    a1 += g1;
                    a2 += g2;
                    a3 += g3;
                    b0 += g0 * (x0[j] - mu0);
                    b1 += g1 * (x1[j] - mu1);
                    b2 += g2 * (x2[j] - mu2);
                    b3 += g3 * (x3[j] - mu3);
                }

                Finish(i, a0, b0);
                Finish(i + 1, a1, b1);
                Finish(i + 2, a2, b2);
                Finish(i + 3, a3, b3);
            }

            for (; i < end; i++)
                Single(i);
        }

        // Kept out of Run, whose 4-row loop needs every register.
        [MethodImpl(MethodImplOptions.NoInlining)]
        private void Single(int i)
        {
            var (a, b) = Row.Sums(i);
            Finish(i, a, b);
        }

        // dx of row i from a = Σ g and b = Σ g (x - mean), as the body's Run. Its scalar tail is
        // written out here: a call after the vector loop (to the body's loop) measured 1.7x slower.
        private void Finish(int i, float a, float b)
        {
            float invD = 1f / d;
            float mu = mean[i];
            float r = rstd[i];
            a *= invD;
            b *= r * invD;
            float* xr = x + ((long)i * d), gr = dy + ((long)i * d), dr = dx + ((long)i * d);
            int j = 0;
            if (Vector256.IsHardwareAccelerated)
            {
                Vector256<float> vmu = Vector256.Create(mu), vr = Vector256.Create(r), va = Vector256.Create(a), vb = Vector256.Create(b);
                for (; j <= d - 8; j += 8)
                {
                    var g = Vector256.Load(gr + j);
                    if (gamma != null)
                        g *= Vector256.Load(gamma + j);
                    var xhat = (Vector256.Load(xr + j) - vmu) * vr;
                    (vr * ((g - va) - (xhat * vb))).Store(dr + j);
                }
            }

            for (; j < d; j++)
            {
                float g = gamma != null ? gr[j] * gamma[j] : gr[j];
                float xhat = (xr[j] - mu) * r;
                dr[j] = r * (g - a - (xhat * b));
            }
        }
    }

    private readonly unsafe struct ParamGradsColumns(float* x, float* dy, float* mean, float* rstd, float* dgamma, float* dbeta, int n, int d, ParamGradsBody<PtrElements<float>> column) : CpuLoops.IRange
    {
        public void Run(int start, int end)
        {
            for (int blk = start; blk < end; blk++)
            {
                int j0 = blk * ColumnBlock, w = Math.Min(ColumnBlock, d - j0);
                if (Vector256.IsHardwareAccelerated && w == ColumnBlock)
                {
                    Vector256<float> sg0 = default, sg1 = default, sb0 = default, sb1 = default;
                    for (int i = 0; i < n; i++)
                    {
                        long at = ((long)i * d) + j0;
                        Vector256<float> mu = Vector256.Create(mean[i]), r = Vector256.Create(rstd[i]);
                        var g0 = Vector256.Load(dy + at);
                        var g1 = Vector256.Load(dy + at + 8);
                        sb0 += g0;
                        sb1 += g1;
                        sg0 += g0 * (Vector256.Load(x + at) - mu) * r;
                        sg1 += g1 * (Vector256.Load(x + at + 8) - mu) * r;
                    }

                    sg0.Store(dgamma + j0);
                    sg1.Store(dgamma + j0 + 8);
                    sb0.Store(dbeta + j0);
                    sb1.Store(dbeta + j0 + 8);
                    continue;
                }

                for (int j = j0; j < j0 + w; j++)
                    column.Run(j);
            }
        }
    }

    // ---------------------------------------------------------------- launchers

    /// <summary>
    /// y = gamma (x - mean) / sqrt(var + eps) + beta over each row of x (N, D), D at least 1, biased
    /// variance (gamma null: 1, beta null: 0); saves the row mean and rstd = 1 / sqrt(var + eps) (N). y may alias x.
    /// </summary>
    public static void Forward(KernelHost host, ArrayView<float> x, ArrayView<float>? gamma, ArrayView<float>? beta, ArrayView<float> y, ArrayView<float> mean, ArrayView<float> rstd, int n, int d, float eps)
    {
        const string op = nameof(LayerNorm) + "." + nameof(Forward);
        Shapes(host, op, n, d, [(x, nameof(x)), (y, nameof(y))], [(mean, nameof(mean)), (rstd, nameof(rstd))], [(gamma, nameof(gamma)), (beta, nameof(beta))]);
        if (n == 0)
            return;
        int hasGamma = gamma.HasValue ? 1 : 0, hasBeta = beta.HasValue ? 1 : 0;
        if (host.RunsManaged)
        {
            unsafe
            {
                var row = new ForwardBody<PtrElements<float>>(PtrElements.Of(x), PtrElements.Of(gamma ?? x), PtrElements.Of(beta ?? x), PtrElements.Of(y), PtrElements.Of(mean), PtrElements.Of(rstd), d, eps, hasGamma, hasBeta);
                CpuLoops.For(host, n, new ForwardRows(CpuLoops.Ptr(x), gamma is { } g ? CpuLoops.Ptr(g) : null, beta is { } b ? CpuLoops.Ptr(b) : null, CpuLoops.Ptr(y), d, row), d);
            }

            return;
        }

        ForwardDef.Launch(host, n, new(new(x), new(gamma ?? x), new(beta ?? x), new(y), new(mean), new(rstd), d, eps, hasGamma, hasBeta));
    }

    /// <summary>dx = rstd (g - mean(g) - x̂ mean(g x̂)) per row, g = dy gamma (gamma null: 1), from the saved mean and rstd (N). dx may alias dy.</summary>
    public static void InputGrad(KernelHost host, ArrayView<float> x, ArrayView<float> dy, ArrayView<float>? gamma, ArrayView<float> mean, ArrayView<float> rstd, ArrayView<float> dx, int n, int d)
    {
        const string op = nameof(LayerNorm) + "." + nameof(InputGrad);
        Shapes(host, op, n, d, [(x, nameof(x)), (dy, nameof(dy)), (dx, nameof(dx))], [(mean, nameof(mean)), (rstd, nameof(rstd))], [(gamma, nameof(gamma))]);
        if (n == 0)
            return;
        int hasGamma = gamma.HasValue ? 1 : 0;
        if (host.RunsManaged)
        {
            unsafe
            {
                CpuLoops.For(host, n, new InputGradRows(CpuLoops.Ptr(x), CpuLoops.Ptr(dy), gamma is { } g ? CpuLoops.Ptr(g) : null, CpuLoops.Ptr(mean), CpuLoops.Ptr(rstd), CpuLoops.Ptr(dx), d), d);
            }

            return;
        }

        InputGradDef.Launch(host, n, new(new(x), new(dy), new(gamma ?? x), new(mean), new(rstd), new(dx), d, hasGamma));
    }

    /// <summary>dgamma_j = Σ over rows of dy x̂ and dbeta_j = Σ over rows of dy (D), x̂ from the saved mean and rstd; deterministic column sums.</summary>
    public static void ParamGrads(KernelHost host, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> mean, ArrayView<float> rstd, ArrayView<float> dgamma, ArrayView<float> dbeta, int n, int d)
    {
        const string op = nameof(LayerNorm) + "." + nameof(ParamGrads);
        Shapes(host, op, n, d, [(x, nameof(x)), (dy, nameof(dy))], [(mean, nameof(mean)), (rstd, nameof(rstd))], [(dgamma, nameof(dgamma)), (dbeta, nameof(dbeta))]);
        if (n == 0)
        {
            // Sums over no rows; kernels never see empty views.
            dgamma.MemSetToZero(host.Stream);
            dbeta.MemSetToZero(host.Stream);
            return;
        }

        if (host.RunsManaged)
        {
            unsafe
            {
                var column = new ParamGradsBody<PtrElements<float>>(PtrElements.Of(x), PtrElements.Of(dy), PtrElements.Of(mean), PtrElements.Of(rstd), PtrElements.Of(dgamma), PtrElements.Of(dbeta), n, d);
                CpuLoops.For(host, (d + ColumnBlock - 1) / ColumnBlock, new ParamGradsColumns(CpuLoops.Ptr(x), CpuLoops.Ptr(dy), CpuLoops.Ptr(mean), CpuLoops.Ptr(rstd), CpuLoops.Ptr(dgamma), CpuLoops.Ptr(dbeta), n, d, column), n * Math.Min(d, ColumnBlock));
            }

            return;
        }

        ParamGradsDef.Launch(host, d, new(new(x), new(dy), new(mean), new(rstd), new(dgamma), new(dbeta), n, d));
    }

    private static void Shapes(KernelHost host, string op, int n, int d, ReadOnlySpan<(ArrayView<float> View, string Name)> full, ReadOnlySpan<(ArrayView<float> View, string Name)> perRow, ReadOnlySpan<(ArrayView<float>? View, string Name)> perColumn)
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.Dimension(op, n, nameof(n));
        Check.Dimension(op, d, nameof(d), allowZero: false);
        long total = (long)n * d;
        string shape = $"(N, D) = ({n}, {d})";
        foreach (var (view, name) in full)
        {
            Check.Length(op, view, name, total, shape);
            Check.Fits32(op, view, name);
        }

        foreach (var (view, name) in perRow)
            Check.Length(op, view, name, n, $"(N) = ({n})");
        foreach (var (view, name) in perColumn)
        {
            if (view is { } v)
                Check.Length(op, v, name, d, $"(D) = ({d})");
        }
    }
}
