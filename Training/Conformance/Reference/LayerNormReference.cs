namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>LayerNorm</c> kernels: plain loops, slow and obviously right.</summary>
internal static class LayerNormReference
{
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
}
