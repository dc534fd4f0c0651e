namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>Conv2d</c> kernels: plain loops, slow and obviously right.</summary>
internal static class Conv2dReference
{
    /// <summary>
    /// Reference forward: y[n, o, oy, ox] = b[o] + sum_{c,i,j} w[o, c, i, j] x[n, c, oy sh - ph + i dh, ox sw - pw + j dw],
    /// zero outside the input; naive nested loops with float64 accumulation.
    /// </summary>
    /// <param name="x">x (N, C, H, W).</param>
    /// <param name="weight">w (O, C, kh, kw).</param>
    /// <param name="bias">b (O), or empty for no bias.</param>
    /// <param name="y">y (N, O, Ho, Wo), overwritten.</param>
    /// <param name="g">The geometry.</param>
    /// <param name="outChannels">O.</param>
    public static void ForwardReference(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> bias, Span<float> y, Conv2dGeometry g, int outChannels)
    {
        for (int n = 0; n < g.N; n++)
        {
            for (int o = 0; o < outChannels; o++)
            {
                for (int oy = 0; oy < g.HO; oy++)
                {
                    for (int ox = 0; ox < g.WO; ox++)
                    {
                        double s = bias.IsEmpty ? 0 : bias[o];
                        for (int c = 0; c < g.C; c++)
                        {
                            for (int i = 0; i < g.KH; i++)
                            {
                                int iy = (oy * g.SH) - g.PH + (i * g.DH);
                                if (iy < 0 || iy >= g.H)
                                    continue;
                                for (int j = 0; j < g.KW; j++)
                                {
                                    int ix = (ox * g.SW) - g.PW + (j * g.DW);
                                    if (ix < 0 || ix >= g.W)
                                        continue;
                                    s += (double)weight[(((o * g.C) + c) * g.KH + i) * g.KW + j] * x[(((n * g.C) + c) * g.H + iy) * g.W + ix];
                                }
                            }
                        }

                        y[(((n * outChannels) + o) * g.HO + oy) * g.WO + ox] = (float)s;
                    }
                }
            }
        }
    }

    /// <summary>
    /// Reference backward, naive loops in float64: dx = sum over the taps that read x of w dy,
    /// dW[o, c, i, j] = sum over n, oy, ox of dy x at the tap, db[o] = sum over n, oy, ox of dy.
    /// Every output is overwritten; pass an empty span to skip one.
    /// </summary>
    /// <param name="x">x (N, C, H, W).</param>
    /// <param name="weight">w (O, C, kh, kw).</param>
    /// <param name="dy">dL/dy (N, O, Ho, Wo).</param>
    /// <param name="dx">dL/dx (N, C, H, W), or empty.</param>
    /// <param name="dw">dL/dw (O, C, kh, kw), or empty.</param>
    /// <param name="db">dL/db (O), or empty.</param>
    /// <param name="g">The geometry.</param>
    /// <param name="outChannels">O.</param>
    public static void BackwardReference(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> dy, Span<float> dx, Span<float> dw, Span<float> db, Conv2dGeometry g, int outChannels)
    {
        var sx = new double[dx.Length];
        var sw = new double[dw.Length];
        var sb = new double[db.Length];
        for (int n = 0; n < g.N; n++)
        {
            for (int o = 0; o < outChannels; o++)
            {
                for (int oy = 0; oy < g.HO; oy++)
                {
                    for (int ox = 0; ox < g.WO; ox++)
                    {
                        double d = dy[(((n * outChannels) + o) * g.HO + oy) * g.WO + ox];
                        if (sb.Length > 0)
                            sb[o] += d;
                        for (int c = 0; c < g.C; c++)
                        {
                            for (int i = 0; i < g.KH; i++)
                            {
                                int iy = (oy * g.SH) - g.PH + (i * g.DH);
                                if (iy < 0 || iy >= g.H)
                                    continue;
                                for (int j = 0; j < g.KW; j++)
                                {
                                    int ix = (ox * g.SW) - g.PW + (j * g.DW);
                                    if (ix < 0 || ix >= g.W)
                                        continue;
                                    int xi = (((n * g.C) + c) * g.H + iy) * g.W + ix;
                                    int wi = (((o * g.C) + c) * g.KH + i) * g.KW + j;
                                    if (sx.Length > 0)
                                        sx[xi] += weight[wi] * d;
                                    if (sw.Length > 0)
                                        sw[wi] += x[xi] * d;
                                }
                            }
                        }
                    }
                }
            }
        }

        for (int i = 0; i < sx.Length; i++)
            dx[i] = (float)sx[i];
        for (int i = 0; i < sw.Length; i++)
            dw[i] = (float)sw[i];
        for (int i = 0; i < sb.Length; i++)
            db[i] = (float)sb[i];
    }

    /// <summary>Reference im2col: cols[n, (c kh + i) kw + j, oy Wo + ox] = x[n, c, oy sh - ph + i dh, ox sw - pw + j dw], 0 in the padding.</summary>
    /// <param name="x">x (N, C, H, W).</param>
    /// <param name="cols">cols (N, K, P), overwritten.</param>
    /// <param name="g">The geometry.</param>
    public static void Im2ColReference(ReadOnlySpan<float> x, Span<float> cols, Conv2dGeometry g)
    {
        for (int n = 0; n < g.N; n++)
        {
            for (int c = 0; c < g.C; c++)
            {
                for (int i = 0; i < g.KH; i++)
                {
                    for (int j = 0; j < g.KW; j++)
                    {
                        int k = (((c * g.KH) + i) * g.KW) + j;
                        for (int oy = 0; oy < g.HO; oy++)
                        {
                            for (int ox = 0; ox < g.WO; ox++)
                            {
                                int iy = (oy * g.SH) - g.PH + (i * g.DH);
                                int ix = (ox * g.SW) - g.PW + (j * g.DW);
                                bool inside = iy >= 0 && iy < g.H && ix >= 0 && ix < g.W;
                                cols[(((n * g.K) + k) * g.P) + (oy * g.WO) + ox] = inside ? x[(((n * g.C) + c) * g.H + iy) * g.W + ix] : 0f;
                            }
                        }
                    }
                }
            }
        }
    }

    /// <summary>Reference col2im, the adjoint of im2col: x[n, c, iy, ix] = sum of the column entries im2col copied from it (float64 scatter-add, rounded once).</summary>
    /// <param name="cols">cols (N, K, P).</param>
    /// <param name="x">x (N, C, H, W), overwritten.</param>
    /// <param name="g">The geometry.</param>
    public static void Col2ImReference(ReadOnlySpan<float> cols, Span<float> x, Conv2dGeometry g)
    {
        var s = new double[x.Length];
        for (int n = 0; n < g.N; n++)
        {
            for (int c = 0; c < g.C; c++)
            {
                for (int i = 0; i < g.KH; i++)
                {
                    for (int j = 0; j < g.KW; j++)
                    {
                        int k = (((c * g.KH) + i) * g.KW) + j;
                        for (int oy = 0; oy < g.HO; oy++)
                        {
                            for (int ox = 0; ox < g.WO; ox++)
                            {
                                int iy = (oy * g.SH) - g.PH + (i * g.DH);
                                int ix = (ox * g.SW) - g.PW + (j * g.DW);
                                if (iy >= 0 && iy < g.H && ix >= 0 && ix < g.W)
                                    s[(((n * g.C) + c) * g.H + iy) * g.W + ix] += cols[(((n * g.K) + k) * g.P) + (oy * g.WO) + ox];
                            }
                        }
                    }
                }
            }
        }

        for (int e = 0; e < s.Length; e++)
            x[e] = (float)s[e];
    }
}
