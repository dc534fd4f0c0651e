namespace IlgpuTrain.Training.Conformance;

/// <summary>One attention call: shapes and options.</summary>
/// <param name="B">Batch.</param>
/// <param name="H">Heads.</param>
/// <param name="Lq">Query length.</param>
/// <param name="Lk">Key length.</param>
/// <param name="D">Query/key head dimension.</param>
/// <param name="Dv">Value head dimension.</param>
/// <param name="Causal">is_causal.</param>
/// <param name="Scale">The scale, null for 1/sqrt(D).</param>
/// <param name="Bias">0 none; the bias shape 1 (Lq, Lk), 2 (1, H, Lq, Lk), 3 (B, 1, Lq, Lk), 4 (B, H, Lq, Lk).</param>
/// <param name="Pad">0 none, 1 lengths (B), 2 mask (B, Lk).</param>
/// <param name="P">Dropout probability (Train mode).</param>
/// <param name="Seed">Seed of the values and of the dropout key.</param>
internal sealed record AttentionCase(int B, int H, int Lq, int Lk, int D, int Dv, bool Causal, float? Scale, int Bias, int Pad, float P, int Seed)
{
    /// <summary>The bias's shape, or null.</summary>
    public Shape? BiasShape => Bias switch
    {
        1 => new Shape(Lq, Lk),
        2 => new Shape(1, H, Lq, Lk),
        3 => new Shape(B, 1, Lq, Lk),
        4 => new Shape(B, H, Lq, Lk),
        _ => null,
    };

    /// <summary>The dropout randomness of the call.</summary>
    public Rng Rng => new((ulong)Seed * 7919UL + 11UL, 3, 5);

    /// <summary>The effective scale.</summary>
    public double ScaleValue => Scale ?? (1.0 / Math.Sqrt(D));

    /// <summary>The kernels' arguments for the call, as F.ScaledDotProductAttention builds them (bias strides from its shape, dropout keyed by <see cref="Rng"/>).</summary>
    /// <param name="biasGrad">Whether the backward writes dS (F asks for it whenever there is a bias).</param>
    /// <returns>The arguments.</returns>
    public AttentionArgs KernelArgs(bool biasGrad)
    {
        int plane = Lq * Lk;
        var (sb, sh) = Bias switch { 2 => (0, plane), 3 => (plane, 0), 4 => (H * plane, plane), _ => (0, 0) };
        float keep = 1f - P;
        var rng = Rng;
        return new AttentionArgs(
            B, H, Lq, Lk, D, Dv, (float)ScaleValue, Causal ? 1 : 0, Bias == 0 ? 0 : 1, sb, sh, Pad == 1 ? 1 : 0, Pad == 2 ? 1 : 0,
            keep, keep > 0f ? 1f / keep : 0f, new PhiloxStream(rng.Seed, rng.Stream, rng.Counter), biasGrad ? 1 : 0);
    }

    /// <inheritdoc/>
    public override string ToString() =>
        $"B {B} H {H} Lq {Lq} Lk {Lk} D {D} Dv {Dv} causal {Causal} scale {Scale?.ToString() ?? "default"} bias {Bias} pad {Pad} p {P} seed {Seed}";
}

/// <summary>The values of one attention call: inputs, constants and the upstream gradient.</summary>
/// <param name="Q">q (B, H, Lq, D).</param>
/// <param name="K">k (B, H, Lk, D).</param>
/// <param name="V">v (B, H, Lk, Dv).</param>
/// <param name="BiasValues">The bias (its shape's length), or empty.</param>
/// <param name="PadValues">Lengths (B) or mask (B, Lk), or empty.</param>
/// <param name="DOut">dy (B, H, Lq, Dv).</param>
internal sealed record AttentionData(float[] Q, float[] K, float[] V, float[] BiasValues, int[] PadValues, float[] DOut);

/// <summary>
/// The spec of scaled dot-product attention, in float64 and naive: the whole (Lq, Lk) matrix
/// softmax(q k^T scale + bias, masked) per (b, h), times the dropout mask, times v; and its
/// gradients by the chain rule through that matrix. A row with no key left gives zeros. The spec
/// of the <c>Attention</c> kernels (Kernels/Attention.cs), managed and tiled.
/// </summary>
internal static class AttentionReference
{
    /// <summary>y, and (when dOut is given) dq, dk, dv and dS (B, H, Lq, Lk), the gradient of a full bias; <paramref name="bias"/> replaces x's bias values.</summary>
    /// <param name="c">The shapes and options.</param>
    /// <param name="x">The call's bias values and key lengths or mask (its q, k, v and dOut are not read: the arguments are).</param>
    /// <param name="q">q (B, H, Lq, D).</param>
    /// <param name="k">k (B, H, Lk, D).</param>
    /// <param name="v">v (B, H, Lk, Dv).</param>
    /// <param name="dOut">dy (B, H, Lq, Dv), or null for the forward only.</param>
    /// <param name="bias">The bias values in place of x's, or null for x's.</param>
    /// <returns>y (B, H, Lq, Dv); with dOut, dq, dk, dv (their inputs' shapes) and dS (B, H, Lq, Lk), else zeros.</returns>
    public static (double[] Y, double[] Dq, double[] Dk, double[] Dv, double[] DS) Run(AttentionCase c, AttentionData x, double[] q, double[] k, double[] v, double[]? dOut, double[]? bias = null)
    {
        var biasValues = bias ?? x.BiasValues.Select(e => (double)e).ToArray();
        var dS = new double[c.B * c.H * c.Lq * c.Lk];
        var y = new double[c.B * c.H * c.Lq * c.Dv];
        var dq = new double[q.Length];
        var dk = new double[k.Length];
        var dv = new double[v.Length];
        double scale = c.ScaleValue;
        float keep = 1f - c.P;
        var rng = c.Rng;
        var s = new double[c.Lk];
        var p = new double[c.Lk];
        var z = new double[c.Lk];
        var dp = new double[c.Lk];
        for (int b = 0; b < c.B; b++)
        {
            for (int h = 0; h < c.H; h++)
            {
                int bh = (b * c.H) + h;
                for (int i = 0; i < c.Lq; i++)
                {
                    double m = ScoreRow(c, x, biasValues, q, k, b, h, i, s);
                    for (int j = 0; j < c.Lk; j++)
                    {
                        long element = (((long)bh * c.Lq) + i) * c.Lk + j;
                        z[j] = c.P == 0f ? 1 : Philox.UniformAt(rng.Seed, rng.Stream, rng.Counter, element) < keep ? 1.0 / keep : 0;
                    }

                    double sum = 0;
                    for (int j = 0; j < c.Lk; j++)
                    {
                        p[j] = double.IsNegativeInfinity(s[j]) ? 0 : Math.Exp(s[j] - m);
                        sum += p[j];
                    }

                    for (int j = 0; j < c.Lk; j++)
                        p[j] = sum > 0 ? p[j] / sum : 0;
                    for (int e = 0; e < c.Dv; e++)
                    {
                        double acc = 0;
                        for (int j = 0; j < c.Lk; j++)
                            acc += p[j] * z[j] * v[(((bh * c.Lk) + j) * c.Dv) + e];
                        y[(((bh * c.Lq) + i) * c.Dv) + e] = acc;
                    }

                    if (dOut is null)
                        continue;
                    // Through y = (P o Z) v, then the softmax Jacobian diag(P) - P P^T.
                    double delta = 0;
                    for (int j = 0; j < c.Lk; j++)
                    {
                        double g = 0;
                        for (int e = 0; e < c.Dv; e++)
                        {
                            double dy = dOut[(((bh * c.Lq) + i) * c.Dv) + e];
                            g += dy * v[(((bh * c.Lk) + j) * c.Dv) + e];
                            dv[(((bh * c.Lk) + j) * c.Dv) + e] += p[j] * z[j] * dy;
                        }

                        dp[j] = g * z[j];
                        delta += p[j] * dp[j];
                    }

                    for (int j = 0; j < c.Lk; j++)
                    {
                        dS[(((bh * c.Lq) + i) * c.Lk) + j] = p[j] * (dp[j] - delta);
                        double ds = p[j] * (dp[j] - delta) * scale;
                        for (int e = 0; e < c.D; e++)
                        {
                            dq[(((bh * c.Lq) + i) * c.D) + e] += ds * k[(((bh * c.Lk) + j) * c.D) + e];
                            dk[(((bh * c.Lk) + j) * c.D) + e] += ds * q[(((bh * c.Lq) + i) * c.D) + e];
                        }
                    }
                }
            }
        }

        return (y, dq, dk, dv, dS);
    }

    /// <summary>
    /// The forward's log-sum-exp per query row, lse_i = log sum_j exp(s_ij) over the unmasked keys,
    /// in float64; +inf for a row with no key left (the kernels' convention, so its P is 0).
    /// Dropout does not enter it.
    /// </summary>
    /// <param name="c">The shapes and options.</param>
    /// <param name="x">The call's bias values and key lengths or mask.</param>
    /// <param name="q">q (B, H, Lq, D).</param>
    /// <param name="k">k (B, H, Lk, D).</param>
    /// <returns>lse (B, H, Lq).</returns>
    public static double[] LseReference(AttentionCase c, AttentionData x, double[] q, double[] k)
    {
        var biasValues = x.BiasValues.Select(e => (double)e).ToArray();
        var lse = new double[c.B * c.H * c.Lq];
        var s = new double[c.Lk];
        for (int b = 0; b < c.B; b++)
        {
            for (int h = 0; h < c.H; h++)
            {
                int bh = (b * c.H) + h;
                for (int i = 0; i < c.Lq; i++)
                {
                    double m = ScoreRow(c, x, biasValues, q, k, b, h, i, s);
                    double sum = 0;
                    for (int j = 0; j < c.Lk; j++)
                        sum += double.IsNegativeInfinity(s[j]) ? 0 : Math.Exp(s[j] - m);
                    lse[(bh * c.Lq) + i] = sum > 0 ? m + Math.Log(sum) : double.PositiveInfinity;
                }
            }
        }

        return lse;
    }

    /// <summary>The gradient of the case's bias: dS summed over the axes the bias broadcasts along.</summary>
    /// <param name="c">The shapes and options (its bias shape).</param>
    /// <param name="dS">dS (B, H, Lq, Lk) from <see cref="Run"/>.</param>
    /// <returns>The bias's gradient (its shape's length; empty without a bias).</returns>
    public static double[] BiasGrad(AttentionCase c, double[] dS)
    {
        var g = new double[c.BiasShape?.Length ?? 0];
        if (c.Bias == 0)
            return g;
        for (int b = 0; b < c.B; b++)
        {
            for (int h = 0; h < c.H; h++)
            {
                for (int ij = 0; ij < c.Lq * c.Lk; ij++)
                    g[BiasIndex(c, b, h, ij / c.Lk, ij % c.Lk)] += dS[(((b * c.H) + h) * c.Lq * c.Lk) + ij];
            }
        }

        return g;
    }

    // Row i of (b, h): s_j = q_i . k_j scale + bias, or -inf where the key is masked; returns the row's max.
    private static double ScoreRow(AttentionCase c, AttentionData x, double[] biasValues, double[] q, double[] k, int b, int h, int i, double[] s)
    {
        int bh = (b * c.H) + h;
        double m = double.NegativeInfinity;
        for (int j = 0; j < c.Lk; j++)
        {
            s[j] = double.NegativeInfinity;
            bool masked = (c.Causal && j > i) || (c.Pad == 1 && j >= x.PadValues[b]) || (c.Pad == 2 && x.PadValues[(b * c.Lk) + j] == 0);
            if (!masked)
            {
                double dot = 0;
                for (int e = 0; e < c.D; e++)
                    dot += q[(((bh * c.Lq) + i) * c.D) + e] * k[(((bh * c.Lk) + j) * c.D) + e];
                s[j] = (dot * c.ScaleValue) + BiasAt(c, biasValues, b, h, i, j);
            }

            m = Math.Max(m, s[j]);
        }

        return m;
    }

    private static double BiasAt(AttentionCase c, double[] bias, int b, int h, int i, int j) => c.Bias == 0 ? 0 : bias[BiasIndex(c, b, h, i, j)];

    private static int BiasIndex(AttentionCase c, int b, int h, int i, int j) => c.Bias switch
    {
        1 => (i * c.Lk) + j,
        2 => (((h * c.Lq) + i) * c.Lk) + j,
        3 => (((b * c.Lq) + i) * c.Lk) + j,
        _ => (((((b * c.H) + h) * c.Lq) + i) * c.Lk) + j,
    };
}
