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
// No shared memory, so one variant serves every accelerator.

/// <summary>Layer normalization over the rows of (N, D): CPU references, ILGPU kernels and checked launchers.</summary>
public static class LayerNorm
{
    // ---------------------------------------------------------------- CPU reference (the spec)

    /// <summary>Reference: y = gamma (x - mean) / sqrt(var + eps) + beta per row, biased variance, float64.</summary>
    /// <param name="x">Input (N, D), row-major.</param>
    /// <param name="gamma">Scale (D), or empty for 1.</param>
    /// <param name="beta">Shift (D), or empty for 0.</param>
    /// <param name="y">Output (N, D).</param>
    /// <param name="mean">Output (N): each row's mean.</param>
    /// <param name="rstd">Output (N): each row's 1 / sqrt(var + eps).</param>
    /// <param name="n">Rows N.</param>
    /// <param name="d">Row length D.</param>
    /// <param name="eps">Added to the variance.</param>
    public static void ForwardReference(ReadOnlySpan<float> x, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta, Span<float> y, Span<float> mean, Span<float> rstd, int n, int d, float eps)
    {
        for (int i = 0; i < n; i++)
        {
            var row = x.Slice(i * d, d);
            double sum = 0;
            foreach (float v in row)
                sum += v;
            double mu = sum / d;
            double sq = 0;
            foreach (float v in row)
                sq += (v - mu) * (v - mu);
            double r = 1 / Math.Sqrt((sq / d) + eps);
            for (int j = 0; j < d; j++)
            {
                double g = gamma.IsEmpty ? 1 : gamma[j];
                double b = beta.IsEmpty ? 0 : beta[j];
                y[(i * d) + j] = (float)((g * (row[j] - mu) * r) + b);
            }

            mean[i] = (float)mu;
            rstd[i] = (float)r;
        }
    }

    /// <summary>Reference: dx = rstd (g - mean(g) - x̂ mean(g x̂)) per row, g = dy gamma, in float64.</summary>
    /// <param name="x">Forward input (N, D).</param>
    /// <param name="dy">Upstream gradient (N, D).</param>
    /// <param name="gamma">Scale (D), or empty for 1.</param>
    /// <param name="mean">Saved row means (N).</param>
    /// <param name="rstd">Saved row 1/std (N).</param>
    /// <param name="dx">Output (N, D).</param>
    /// <param name="n">Rows N.</param>
    /// <param name="d">Row length D.</param>
    public static void InputGradReference(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, ReadOnlySpan<float> gamma, ReadOnlySpan<float> mean, ReadOnlySpan<float> rstd, Span<float> dx, int n, int d)
    {
        for (int i = 0; i < n; i++)
        {
            int o = i * d;
            double a = 0, b = 0;
            for (int j = 0; j < d; j++)
            {
                double g = dy[o + j] * (gamma.IsEmpty ? 1.0 : gamma[j]);
                a += g;
                b += g * (x[o + j] - mean[i]) * rstd[i];
            }

            a /= d;
            b /= d;
            for (int j = 0; j < d; j++)
            {
                double g = dy[o + j] * (gamma.IsEmpty ? 1.0 : gamma[j]);
                double xhat = (x[o + j] - mean[i]) * (double)rstd[i];
                dx[o + j] = (float)(rstd[i] * (g - a - (xhat * b)));
            }
        }
    }

    /// <summary>Reference: dgamma_j = Σ_i dy x̂ and dbeta_j = Σ_i dy over the rows, in float64.</summary>
    /// <param name="x">Forward input (N, D).</param>
    /// <param name="dy">Upstream gradient (N, D).</param>
    /// <param name="mean">Saved row means (N).</param>
    /// <param name="rstd">Saved row 1/std (N).</param>
    /// <param name="dgamma">Output (D).</param>
    /// <param name="dbeta">Output (D).</param>
    /// <param name="n">Rows N.</param>
    /// <param name="d">Row length D.</param>
    public static void ParamGradsReference(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, ReadOnlySpan<float> mean, ReadOnlySpan<float> rstd, Span<float> dgamma, Span<float> dbeta, int n, int d)
    {
        for (int j = 0; j < d; j++)
        {
            double sg = 0, sb = 0;
            for (int i = 0; i < n; i++)
            {
                int at = (i * d) + j;
                sb += dy[at];
                sg += dy[at] * (x[at] - mean[i]) * (double)rstd[i];
            }

            dgamma[j] = (float)sg;
            dbeta[j] = (float)sb;
        }
    }

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
