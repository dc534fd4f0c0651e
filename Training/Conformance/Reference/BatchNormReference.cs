namespace IlgpuTrain.Training.Conformance;

// The spec of Kernels/BatchNorm.cs. The references sum in float64.

/// <summary>The CPU reference (the spec) of the <c>BatchNorm</c> kernels: plain loops, slow and obviously right.</summary>
internal static class BatchNormReference
{
    /// <summary>Reference: per channel mean and BIASED variance of x (N, C, S), in float64, two passes.</summary>
    /// <param name="x">Input (N, C, S), row-major.</param>
    /// <param name="n">Batch N.</param>
    /// <param name="c">Channels C.</param>
    /// <param name="s">Inner size S.</param>
    /// <param name="mean">Output (C).</param>
    /// <param name="var">Output (C): (1/m) Σ (x - mean)², m = N S (NaN when m = 0).</param>
    public static void StatisticsReference(ReadOnlySpan<float> x, int n, int c, int s, Span<float> mean, Span<float> var)
    {
        int m = n * s;
        for (int ch = 0; ch < c; ch++)
        {
            double sum = 0;
            for (int i = 0; i < n; i++)
            {
                for (int j = 0; j < s; j++)
                    sum += x[(((i * c) + ch) * s) + j];
            }

            double mu = sum / m;
            double sq = 0;
            for (int i = 0; i < n; i++)
            {
                for (int j = 0; j < s; j++)
                {
                    double d = x[(((i * c) + ch) * s) + j] - mu;
                    sq += d * d;
                }
            }

            mean[ch] = (float)mu;
            var[ch] = (float)(sq / m);
        }
    }

    /// <summary>Reference: y = gamma (x - mean) / sqrt(var + eps) + beta per channel, in float64.</summary>
    /// <param name="x">Input (N, C, S).</param>
    /// <param name="mean">Mean (C): the batch's in training, the running one in evaluation.</param>
    /// <param name="var">Variance (C).</param>
    /// <param name="gamma">Scale (C), or empty for 1.</param>
    /// <param name="beta">Shift (C), or empty for 0.</param>
    /// <param name="y">Output (N, C, S).</param>
    /// <param name="n">Batch N.</param>
    /// <param name="c">Channels C.</param>
    /// <param name="s">Inner size S.</param>
    /// <param name="eps">Added to the variance.</param>
    public static void NormalizeReference(ReadOnlySpan<float> x, ReadOnlySpan<float> mean, ReadOnlySpan<float> var, ReadOnlySpan<float> gamma, ReadOnlySpan<float> beta, Span<float> y, int n, int c, int s, float eps)
    {
        for (int i = 0; i < n; i++)
        {
            for (int ch = 0; ch < c; ch++)
            {
                double invstd = 1 / Math.Sqrt((double)var[ch] + eps);
                double g = gamma.IsEmpty ? 1 : gamma[ch];
                double b = beta.IsEmpty ? 0 : beta[ch];
                for (int j = 0; j < s; j++)
                {
                    int at = (((i * c) + ch) * s) + j;
                    y[at] = (float)((g * (x[at] - mean[ch]) * invstd) + b);
                }
            }
        }
    }

    /// <summary>Reference: the running statistics after one training batch of m values per channel (PyTorch's update, unbiased variance).</summary>
    /// <param name="mean">Batch mean (C).</param>
    /// <param name="var">Batch BIASED variance (C).</param>
    /// <param name="m">Values per channel (at least 2).</param>
    /// <param name="momentum">Weight of the batch statistics.</param>
    /// <param name="runningMean">Running mean (C).</param>
    /// <param name="runningVar">Running variance (C).</param>
    /// <param name="newRunningMean">Output (C).</param>
    /// <param name="newRunningVar">Output (C).</param>
    public static void RunningReference(ReadOnlySpan<float> mean, ReadOnlySpan<float> var, int m, float momentum, ReadOnlySpan<float> runningMean, ReadOnlySpan<float> runningVar, Span<float> newRunningMean, Span<float> newRunningVar)
    {
        for (int ch = 0; ch < mean.Length; ch++)
        {
            newRunningMean[ch] = (float)(((1 - (double)momentum) * runningMean[ch]) + ((double)momentum * mean[ch]));
            newRunningVar[ch] = (float)(((1 - (double)momentum) * runningVar[ch]) + ((double)momentum * var[ch] * m / (m - 1)));
        }
    }

    /// <summary>Reference of num_batches_tracked after a training batch: the count plus one.</summary>
    /// <param name="counter">The count so far.</param>
    /// <returns>The count after this batch.</returns>
    public static int IncrementReference(int counter) => checked(counter + 1);

    /// <summary>Reference: dbeta[c] = Σ dy and dgamma[c] = Σ dy x̂ with x̂ = (x - mean) / sqrt(var + eps), in float64.</summary>
    /// <param name="x">Forward input (N, C, S).</param>
    /// <param name="dy">Upstream gradient (N, C, S).</param>
    /// <param name="mean">The mean the forward used (C).</param>
    /// <param name="var">The variance the forward used (C).</param>
    /// <param name="dgamma">Output (C).</param>
    /// <param name="dbeta">Output (C).</param>
    /// <param name="n">Batch N.</param>
    /// <param name="c">Channels C.</param>
    /// <param name="s">Inner size S.</param>
    /// <param name="eps">Added to the variance.</param>
    public static void ParamGradsReference(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, ReadOnlySpan<float> mean, ReadOnlySpan<float> var, Span<float> dgamma, Span<float> dbeta, int n, int c, int s, float eps)
    {
        for (int ch = 0; ch < c; ch++)
        {
            double invstd = 1 / Math.Sqrt((double)var[ch] + eps);
            double sg = 0, sb = 0;
            for (int i = 0; i < n; i++)
            {
                for (int j = 0; j < s; j++)
                {
                    int at = (((i * c) + ch) * s) + j;
                    sb += dy[at];
                    sg += dy[at] * (x[at] - mean[ch]) * invstd;
                }
            }

            dgamma[ch] = (float)sg;
            dbeta[ch] = (float)sb;
        }
    }

    /// <summary>
    /// Reference: dx. Training: gamma invstd / m (m dy - dbeta - x̂ dgamma); evaluation: gamma invstd dy. In float64.
    /// </summary>
    /// <param name="x">Forward input (N, C, S).</param>
    /// <param name="dy">Upstream gradient (N, C, S).</param>
    /// <param name="mean">The mean the forward used (C).</param>
    /// <param name="var">The variance the forward used (C).</param>
    /// <param name="gamma">Scale (C), or empty for 1.</param>
    /// <param name="dgamma">Σ dy x̂ per channel (C); read in training only.</param>
    /// <param name="dbeta">Σ dy per channel (C); read in training only.</param>
    /// <param name="dx">Output (N, C, S).</param>
    /// <param name="n">Batch N.</param>
    /// <param name="c">Channels C.</param>
    /// <param name="s">Inner size S.</param>
    /// <param name="eps">Added to the variance.</param>
    /// <param name="training">Whether mean and var were the batch's (functions of x).</param>
    public static void InputGradReference(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, ReadOnlySpan<float> mean, ReadOnlySpan<float> var, ReadOnlySpan<float> gamma, ReadOnlySpan<float> dgamma, ReadOnlySpan<float> dbeta, Span<float> dx, int n, int c, int s, float eps, bool training)
    {
        double m = (double)n * s;
        for (int i = 0; i < n; i++)
        {
            for (int ch = 0; ch < c; ch++)
            {
                double invstd = 1 / Math.Sqrt((double)var[ch] + eps);
                double g = gamma.IsEmpty ? 1 : gamma[ch];
                for (int j = 0; j < s; j++)
                {
                    int at = (((i * c) + ch) * s) + j;
                    if (training)
                    {
                        double xhat = (x[at] - mean[ch]) * invstd;
                        dx[at] = (float)(g * invstd / m * ((m * dy[at]) - dbeta[ch] - (xhat * dgamma[ch])));
                    }
                    else
                    {
                        dx[at] = (float)(g * invstd * dy[at]);
                    }
                }
            }
        }
    }
}
