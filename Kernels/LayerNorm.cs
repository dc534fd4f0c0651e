using System.Runtime.Intrinsics;
using IlgpuTrain.Kernels.Runtime;
using ILGPU.Algorithms;

namespace IlgpuTrain.Kernels;

// Layer normalization over the rows of x (N, D): each row is normalized over its own D values
// (D is the product of PyTorch's normalized_shape), with an elementwise affine (D).
//
//   Forward    mean = (1/D) Σ_j x_j,  var = (1/D) Σ_j (x_j - mean)²   (BIASED; two passes)
//              rstd = 1 / sqrt(var + eps),  x̂ = (x - mean) rstd,  y = gamma x̂ + beta
//   Backward   with g = dy gamma per element of a row:
//              dx = rstd (g - mean_j(g) - x̂ mean_j(g x̂))
//              dgamma_j = Σ_rows dy x̂,  dbeta_j = Σ_rows dy     (column sums)
//
// Shapes: x, y, dy, dx (N, D); gamma, beta, dgamma, dbeta (D); mean and rstd (N) are saved by the
// forward for the backward.
// Memory traffic per element: forward reads 8 B (x twice, the row is in cache the second time:
// one pass for the mean, one centered pass for the variance, no E[x²] - E[x]² cancellation) plus
// gamma/beta from cache, writes 4 B; InputGrad reads 8 B (x, dy), writes 4 B; ParamGrads reads 8 B.
// Every output is OVERWRITTEN. y may alias x and dx may alias dy: a thread owns its whole row and
// reads each element of it before writing it (the row statistics are finished before any write).
//
// Launch shape: Forward and InputGrad run one thread per row (grid-stride over rows), as Softmax
// does: rows of D = 64 .. 4096 fit in L1 and the batch (times the sequence) gives the parallelism.
// ParamGrads runs one thread per column, over the rows in order: the column sums are deterministic
// (no float atomics), and neighbouring threads read neighbouring columns (coalesced on GPUs).
// No shared memory, so one variant serves every accelerator. On the CPU accelerator the launchers
// run managed code instead (see "managed CPU paths"), bitwise equal to the kernels.

/// <summary>Layer normalization over the rows of (N, D): ILGPU kernels and checked launchers.</summary>
internal static class LayerNorm
{
    // ---------------------------------------------------------------- ILGPU kernels

    /// <summary>Kernel: normalizes each row (one thread per row, grid-stride), saving its mean and rstd.</summary>
    /// <param name="x">Input (N, D).</param>
    /// <param name="gamma">Scale (D); read only when <paramref name="hasGamma"/> is 1.</param>
    /// <param name="beta">Shift (D); read only when <paramref name="hasBeta"/> is 1.</param>
    /// <param name="y">Output (N, D); may alias x.</param>
    /// <param name="mean">Output (N).</param>
    /// <param name="rstd">Output (N).</param>
    /// <param name="d">Row length D (at least 1).</param>
    /// <param name="eps">Added to the variance.</param>
    /// <param name="hasGamma">1 to scale by gamma, 0 for gamma = 1.</param>
    /// <param name="hasBeta">1 to add beta, 0 for beta = 0.</param>
    public static void ForwardKernel(ArrayView<float> x, ArrayView<float> gamma, ArrayView<float> beta, ArrayView<float> y, ArrayView<float> mean, ArrayView<float> rstd, int d, float eps, int hasGamma, int hasBeta)
    {
        int n = mean.IntLength;
        // Grid and Group reads are thread-local on the CPU accelerator: read them once.
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
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

            float r = XMath.Rsqrt((sq / d) + eps);
            for (int j = 0; j < d; j++)
            {
                float v = (x[o + j] - mu) * r;
                if (hasGamma != 0)
                    v *= gamma[j];
                y[o + j] = hasBeta != 0 ? v + beta[j] : v;
            }

            mean[i] = mu;
            rstd[i] = r;
        }
    }

    /// <summary>Kernel: dx of each row (one thread per row, grid-stride) from the saved mean and rstd.</summary>
    /// <param name="x">Forward input (N, D).</param>
    /// <param name="dy">Upstream gradient (N, D).</param>
    /// <param name="gamma">Scale (D); read only when <paramref name="hasGamma"/> is 1.</param>
    /// <param name="mean">Saved row means (N).</param>
    /// <param name="rstd">Saved row 1/std (N).</param>
    /// <param name="dx">Output (N, D); may alias dy.</param>
    /// <param name="d">Row length D (at least 1).</param>
    /// <param name="hasGamma">1 to scale by gamma, 0 for gamma = 1.</param>
    public static void InputGradKernel(ArrayView<float> x, ArrayView<float> dy, ArrayView<float> gamma, ArrayView<float> mean, ArrayView<float> rstd, ArrayView<float> dx, int d, int hasGamma)
    {
        int n = mean.IntLength;
        int stride = Grid.DimX * Group.DimX;
        float invD = 1f / d;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
        {
            int o = i * d;
            float mu = mean[i];
            float r = rstd[i];
            float a = 0f, b = 0f;
            for (int j = 0; j < d; j++)
            {
                float g = hasGamma != 0 ? dy[o + j] * gamma[j] : dy[o + j];
                a += g;
                b += g * (x[o + j] - mu);
            }

            // b collects Σ g (x - mean); one multiply by rstd per row gives Σ g x̂.
            a *= invD;
            b *= r * invD;
            for (int j = 0; j < d; j++)
            {
                float g = hasGamma != 0 ? dy[o + j] * gamma[j] : dy[o + j];
                float xhat = (x[o + j] - mu) * r;
                dx[o + j] = r * (g - a - (xhat * b));
            }
        }
    }

    /// <summary>Kernel: dgamma and dbeta, one thread per column (grid-stride over columns), rows in order.</summary>
    /// <param name="x">Forward input (N, D).</param>
    /// <param name="dy">Upstream gradient (N, D).</param>
    /// <param name="mean">Saved row means (N).</param>
    /// <param name="rstd">Saved row 1/std (N).</param>
    /// <param name="dgamma">Output (D).</param>
    /// <param name="dbeta">Output (D).</param>
    public static void ParamGradsKernel(ArrayView<float> x, ArrayView<float> dy, ArrayView<float> mean, ArrayView<float> rstd, ArrayView<float> dgamma, ArrayView<float> dbeta)
    {
        int n = mean.IntLength;
        int d = dgamma.IntLength;
        int stride = Grid.DimX * Group.DimX;
        for (int j = Grid.GlobalIndex.X; j < d; j += stride)
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

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float, int, int>> ForwardDef =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float, int, int>(ForwardKernel);

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>> InputGradDef =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(InputGradKernel);

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>> ParamGradsDef =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>>(ParamGradsKernel);

    // ---------------------------------------------------------------- managed CPU paths
    // On the CPU accelerator (host.RunsManaged) the launchers run these on the buffers' host memory,
    // with each output's float operations in the kernels' order, so bitwise equal to them:
    // - Forward and InputGrad: a row's sums run over j in order from 0f, as the kernels' one
    //   thread per row; 4 rows go side by side (4 independent add chains), then the elementwise
    //   part is Vector256 sub/mul/add (never FMA), lane = element. Threads split the rows.
    // - ParamGrads: column j sums rows 0, 1, ... in order, as the kernel's thread per column; a
    //   Vector256 lane per column, 16 columns (one cache line of a row) per block, threads split blocks.

    private const int ColumnBlock = 16;

    private static unsafe void ForwardManaged(KernelHost host, ArrayView<float> x, ArrayView<float>? gamma, ArrayView<float>? beta, ArrayView<float> y, ArrayView<float> mean, ArrayView<float> rstd, int n, int d, float eps) =>
        CpuLoops.For(host, n, new ForwardBody(CpuLoops.Ptr(x), gamma is { } g ? CpuLoops.Ptr(g) : null, beta is { } b ? CpuLoops.Ptr(b) : null, CpuLoops.Ptr(y), CpuLoops.Ptr(mean), CpuLoops.Ptr(rstd), d, eps), d);

    private static unsafe void InputGradManaged(KernelHost host, ArrayView<float> x, ArrayView<float> dy, ArrayView<float>? gamma, ArrayView<float> mean, ArrayView<float> rstd, ArrayView<float> dx, int n, int d) =>
        CpuLoops.For(host, n, new InputGradBody(CpuLoops.Ptr(x), CpuLoops.Ptr(dy), gamma is { } g ? CpuLoops.Ptr(g) : null, CpuLoops.Ptr(mean), CpuLoops.Ptr(rstd), CpuLoops.Ptr(dx), d), d);

    private static unsafe void ParamGradsManaged(KernelHost host, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> mean, ArrayView<float> rstd, ArrayView<float> dgamma, ArrayView<float> dbeta, int n, int d) =>
        CpuLoops.For(host, (d + ColumnBlock - 1) / ColumnBlock, new ParamGradsBody(CpuLoops.Ptr(x), CpuLoops.Ptr(dy), CpuLoops.Ptr(mean), CpuLoops.Ptr(rstd), CpuLoops.Ptr(dgamma), CpuLoops.Ptr(dbeta), n, d), n * Math.Min(d, ColumnBlock));

    // gamma and beta are null when absent (the kernel's hasGamma / hasBeta = 0).
    private readonly unsafe struct ForwardBody(float* x, float* gamma, float* beta, float* y, float* mean, float* rstd, int d, float eps) : CpuLoops.IRange
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
                float* xr = x + ((long)i * d);
                float sum = 0f;
                for (int j = 0; j < d; j++)
                    sum += xr[j];
                float mu = sum / d;
                float sq = 0f;
                for (int j = 0; j < d; j++)
                {
                    float v = xr[j] - mu;
                    sq += v * v;
                }

                Finish(i, mu, sq);
            }
        }

        // y of row i from its mean and Σ (x - mean)², then the saved statistics.
        private void Finish(int i, float mu, float sq)
        {
            float r = XMath.Rsqrt((sq / d) + eps);
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

            for (; j < d; j++)
            {
                float v = (xr[j] - mu) * r;
                if (gamma != null)
                    v *= gamma[j];
                yr[j] = beta != null ? v + beta[j] : v;
            }

            mean[i] = mu;
            rstd[i] = r;
        }
    }

    private readonly unsafe struct InputGradBody(float* x, float* dy, float* gamma, float* mean, float* rstd, float* dx, int d) : CpuLoops.IRange
    {
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
            {
                float* xr = x + ((long)i * d), gr = dy + ((long)i * d);
                float mu = mean[i];
                float a = 0f, b = 0f;
                for (int j = 0; j < d; j++)
                {
                    float g = gamma != null ? gr[j] * gamma[j] : gr[j];
                    a += g;
                    b += g * (xr[j] - mu);
                }

                Finish(i, a, b);
            }
        }

        // dx of row i from a = Σ g and b = Σ g (x - mean), scaled as the kernel does.
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

    private readonly unsafe struct ParamGradsBody(float* x, float* dy, float* mean, float* rstd, float* dgamma, float* dbeta, int n, int d) : CpuLoops.IRange
    {
        public void Run(int start, int end)
        {
            for (int blk = start; blk < end; blk++)
            {
                int j0 = blk * ColumnBlock, w = Math.Min(ColumnBlock, d - j0);
                int j = j0;
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

                for (; j < j0 + w; j++)
                {
                    float sg = 0f, sb = 0f;
                    for (int i = 0; i < n; i++)
                    {
                        long at = ((long)i * d) + j;
                        float g = dy[at];
                        sb += g;
                        sg += g * (x[at] - mean[i]) * rstd[i];
                    }

                    dgamma[j] = sg;
                    dbeta[j] = sb;
                }
            }
        }
    }

    // ---------------------------------------------------------------- launchers

    /// <summary>
    /// y = gamma (x - mean) / sqrt(var + eps) + beta over each row of x (N, D), biased variance;
    /// saves each row's mean and rstd = 1 / sqrt(var + eps) for the backward. y may alias x.
    /// </summary>
    /// <param name="host">Where to run.</param>
    /// <param name="x">Input (N, D), row-major.</param>
    /// <param name="gamma">Scale (D), or null for 1.</param>
    /// <param name="beta">Shift (D), or null for 0.</param>
    /// <param name="y">Output (N, D).</param>
    /// <param name="mean">Output (N).</param>
    /// <param name="rstd">Output (N).</param>
    /// <param name="n">Rows N.</param>
    /// <param name="d">Row length D (at least 1).</param>
    /// <param name="eps">Added to the variance (PyTorch's default 1e-5).</param>
    public static void Forward(KernelHost host, ArrayView<float> x, ArrayView<float>? gamma, ArrayView<float>? beta, ArrayView<float> y, ArrayView<float> mean, ArrayView<float> rstd, int n, int d, float eps)
    {
        const string op = nameof(LayerNorm) + "." + nameof(Forward);
        Shapes(host, op, n, d, [(x, nameof(x)), (y, nameof(y))], [(mean, nameof(mean)), (rstd, nameof(rstd))], [(gamma, nameof(gamma)), (beta, nameof(beta))]);
        if (n == 0)
            return;
        if (host.RunsManaged)
        {
            ForwardManaged(host, x, gamma, beta, y, mean, rstd, n, d, eps);
            return;
        }

        host.Load(ForwardDef)(host.Stream, host.Launch.GridStride(n), x, gamma ?? x, beta ?? x, y, mean, rstd, d, eps, gamma.HasValue ? 1 : 0, beta.HasValue ? 1 : 0);
    }

    /// <summary>dx = rstd (g - mean(g) - x̂ mean(g x̂)) per row, g = dy gamma, from the saved statistics. Overwrites dx (it may alias dy).</summary>
    /// <param name="host">Where to run.</param>
    /// <param name="x">Forward input (N, D).</param>
    /// <param name="dy">Upstream gradient (N, D).</param>
    /// <param name="gamma">Scale (D), or null for 1.</param>
    /// <param name="mean">Saved row means (N).</param>
    /// <param name="rstd">Saved row 1/std (N).</param>
    /// <param name="dx">Output (N, D).</param>
    /// <param name="n">Rows N.</param>
    /// <param name="d">Row length D.</param>
    public static void InputGrad(KernelHost host, ArrayView<float> x, ArrayView<float> dy, ArrayView<float>? gamma, ArrayView<float> mean, ArrayView<float> rstd, ArrayView<float> dx, int n, int d)
    {
        const string op = nameof(LayerNorm) + "." + nameof(InputGrad);
        Shapes(host, op, n, d, [(x, nameof(x)), (dy, nameof(dy)), (dx, nameof(dx))], [(mean, nameof(mean)), (rstd, nameof(rstd))], [(gamma, nameof(gamma))]);
        if (n == 0)
            return;
        if (host.RunsManaged)
        {
            InputGradManaged(host, x, dy, gamma, mean, rstd, dx, n, d);
            return;
        }

        host.Load(InputGradDef)(host.Stream, host.Launch.GridStride(n), x, dy, gamma ?? x, mean, rstd, dx, d, gamma.HasValue ? 1 : 0);
    }

    /// <summary>dgamma_j = Σ over rows of dy x̂ and dbeta_j = Σ over rows of dy (deterministic column sums). Overwrites both.</summary>
    /// <param name="host">Where to run.</param>
    /// <param name="x">Forward input (N, D).</param>
    /// <param name="dy">Upstream gradient (N, D).</param>
    /// <param name="mean">Saved row means (N).</param>
    /// <param name="rstd">Saved row 1/std (N).</param>
    /// <param name="dgamma">Output (D).</param>
    /// <param name="dbeta">Output (D).</param>
    /// <param name="n">Rows N.</param>
    /// <param name="d">Row length D.</param>
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
            ParamGradsManaged(host, x, dy, mean, rstd, dgamma, dbeta, n, d);
        else
            host.Load(ParamGradsDef)(host.Stream, host.Launch.GridStride(d), x, dy, mean, rstd, dgamma, dbeta);
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
