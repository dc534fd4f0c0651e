namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>Softmax</c> kernels: plain loops, slow and obviously right.</summary>
internal static class SoftmaxReference
{
    /// <summary>Reference: y[i, j] = exp(x[i, j] - max_k x[i, k]) / sum_k exp(x[i, k] - max_k x[i, k]), in float64.</summary>
    /// <param name="x">Input (N, C), row-major.</param>
    /// <param name="y">Output (N, C).</param>
    /// <param name="n">Rows N.</param>
    /// <param name="c">Columns (classes) C.</param>
    public static void ForwardReference(ReadOnlySpan<float> x, Span<float> y, int n, int c)
    {
        for (int i = 0; i < n; i++)
        {
            var row = x.Slice(i * c, c);
            double m = double.NegativeInfinity;
            for (int j = 0; j < c; j++)
                m = Math.Max(m, row[j]);
            double s = 0;
            for (int j = 0; j < c; j++)
                s += Math.Exp(row[j] - m);
            for (int j = 0; j < c; j++)
                y[(i * c) + j] = (float)(Math.Exp(row[j] - m) / s);
        }
    }

    /// <summary>Reference VJP: dx[i, j] = y[i, j] * (dy[i, j] - sum_k dy[i, k] y[i, k]), in float64.</summary>
    /// <param name="y">Forward output softmax(x) (N, C).</param>
    /// <param name="dy">Upstream gradient (N, C).</param>
    /// <param name="dx">Gradient with respect to x (N, C), overwritten.</param>
    /// <param name="n">Rows N.</param>
    /// <param name="c">Columns C.</param>
    public static void BackwardReference(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx, int n, int c)
    {
        for (int i = 0; i < n; i++)
        {
            int o = i * c;
            double dot = 0;
            for (int j = 0; j < c; j++)
                dot += (double)dy[o + j] * y[o + j];
            for (int j = 0; j < c; j++)
                dx[o + j] = (float)(y[o + j] * (dy[o + j] - dot));
        }
    }
}

/// <summary>The CPU reference (the spec) of the <c>LogSoftmax</c> kernels: plain loops, slow and obviously right.</summary>
internal static class LogSoftmaxReference
{
    /// <summary>Reference: y[i, j] = x[i, j] - m - log(sum_k exp(x[i, k] - m)), m = max_k x[i, k], in float64.</summary>
    /// <param name="x">Input (N, C), row-major.</param>
    /// <param name="y">Output (N, C).</param>
    /// <param name="n">Rows N.</param>
    /// <param name="c">Columns C.</param>
    public static void ForwardReference(ReadOnlySpan<float> x, Span<float> y, int n, int c)
    {
        for (int i = 0; i < n; i++)
        {
            var row = x.Slice(i * c, c);
            double m = double.NegativeInfinity;
            for (int j = 0; j < c; j++)
                m = Math.Max(m, row[j]);
            double s = 0;
            for (int j = 0; j < c; j++)
                s += Math.Exp(row[j] - m);
            double lse = Math.Log(s);
            for (int j = 0; j < c; j++)
                y[(i * c) + j] = (float)((row[j] - m) - lse);
        }
    }

    /// <summary>Reference VJP: dx[i, j] = dy[i, j] - exp(y[i, j]) * sum_k dy[i, k], in float64.</summary>
    /// <param name="y">Forward output log-softmax(x) (N, C).</param>
    /// <param name="dy">Upstream gradient (N, C).</param>
    /// <param name="dx">Gradient with respect to x (N, C), overwritten.</param>
    /// <param name="n">Rows N.</param>
    /// <param name="c">Columns C.</param>
    public static void BackwardReference(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx, int n, int c)
    {
        for (int i = 0; i < n; i++)
        {
            int o = i * c;
            double sum = 0;
            for (int j = 0; j < c; j++)
                sum += dy[o + j];
            for (int j = 0; j < c; j++)
                dx[o + j] = (float)(dy[o + j] - (Math.Exp(y[o + j]) * sum));
        }
    }
}
