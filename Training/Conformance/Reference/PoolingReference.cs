namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>Pooling</c> kernels: plain loops, slow and obviously right.</summary>
internal static class PoolingReference
{
    /// <summary>Reference max pooling: y = window max, argmax = flat in-plane index of the first maximum (a NaN wins).</summary>
    /// <param name="x">Input (N,C,H,W).</param>
    /// <param name="y">Output (N,C,OH,OW).</param>
    /// <param name="argmax">Index ih W + iw of each output's maximum (N,C,OH,OW).</param>
    /// <param name="g">The geometry.</param>
    public static void MaxPool2dForwardReference(ReadOnlySpan<float> x, Span<float> y, Span<int> argmax, Pool2dGeometry g)
    {
        for (int p = 0; p < g.N * g.C; p++)
        {
            for (int oh = 0; oh < g.OutH; oh++)
            {
                for (int ow = 0; ow < g.OutW; ow++)
                {
                    // When every tap is -inf or padding, PyTorch reports the first tap at or past
                    // the top-left border (possibly outside the plane when dilation jumps over it).
                    int h0 = (oh * g.StrideH) - g.PadH, w0 = (ow * g.StrideW) - g.PadW;
                    int fh = h0, fw = w0;
                    while (fh < 0)
                        fh += g.DilationH;
                    while (fw < 0)
                        fw += g.DilationW;
                    float best = float.NegativeInfinity;
                    int bestAt = (fh * g.W) + fw;
                    for (int r = 0; r < g.KernelH; r++)
                    {
                        for (int s = 0; s < g.KernelW; s++)
                        {
                            int ih = h0 + (r * g.DilationH), iw = w0 + (s * g.DilationW);
                            if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W)
                                continue;
                            float v = x[(p * g.H * g.W) + (ih * g.W) + iw];
                            if (v > best || float.IsNaN(v))
                            {
                                best = v;
                                bestAt = (ih * g.W) + iw;
                            }
                        }
                    }

                    int o = (((p * g.OutH) + oh) * g.OutW) + ow;
                    y[o] = best;
                    argmax[o] = bestAt;
                }
            }
        }
    }

    /// <summary>
    /// Reference max-pool backward, as a scatter: dx = 0, then dx[argmax[o]] += dy[o] for every
    /// output o in row-major order whose argmax is a tap of its window. A window whose taps all
    /// miss the plane (dilation can jump over it) outputs the constant -inf and passes nothing back;
    /// PyTorch would add its dy at the reported index, which can alias a real element.
    /// </summary>
    /// <param name="dy">Output gradient (N,C,OH,OW).</param>
    /// <param name="argmax">Indices from the forward (N,C,OH,OW).</param>
    /// <param name="dx">Input gradient (N,C,H,W), overwritten.</param>
    /// <param name="g">The geometry.</param>
    public static void MaxPool2dBackwardReference(ReadOnlySpan<float> dy, ReadOnlySpan<int> argmax, Span<float> dx, Pool2dGeometry g)
    {
        dx.Clear();
        int o = 0;
        for (int p = 0; p < g.N * g.C; p++)
        {
            for (int oh = 0; oh < g.OutH; oh++)
            {
                for (int ow = 0; ow < g.OutW; ow++, o++)
                {
                    int at = argmax[o];
                    if (at < 0 || at >= g.H * g.W)
                        continue;
                    int r = (at / g.W) - ((oh * g.StrideH) - g.PadH), s = (at % g.W) - ((ow * g.StrideW) - g.PadW);
                    bool tap = r >= 0 && r % g.DilationH == 0 && r / g.DilationH < g.KernelH
                        && s >= 0 && s % g.DilationW == 0 && s / g.DilationW < g.KernelW;
                    if (tap)
                        dx[(p * g.H * g.W) + at] += dy[o];
                }
            }
        }
    }

    /// <summary>Reference average pooling: y = Σ window / divisor (KH KW, or the in-plane tap count when not counting padding).</summary>
    /// <param name="x">Input (N,C,H,W).</param>
    /// <param name="y">Output (N,C,OH,OW).</param>
    /// <param name="g">The geometry (dilation 1).</param>
    /// <param name="countIncludePad">Whether padding taps count in the divisor (PyTorch's default, true).</param>
    public static void AvgPool2dForwardReference(ReadOnlySpan<float> x, Span<float> y, Pool2dGeometry g, bool countIncludePad = true)
    {
        for (int p = 0; p < g.N * g.C; p++)
        {
            for (int oh = 0; oh < g.OutH; oh++)
            {
                for (int ow = 0; ow < g.OutW; ow++)
                {
                    int h0 = (oh * g.StrideH) - g.PadH, w0 = (ow * g.StrideW) - g.PadW;
                    float sum = 0;
                    int inside = 0;
                    for (int ih = h0; ih < h0 + g.KernelH; ih++)
                    {
                        for (int iw = w0; iw < w0 + g.KernelW; iw++)
                        {
                            if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W)
                                continue;
                            sum += x[(p * g.H * g.W) + (ih * g.W) + iw];
                            inside++;
                        }
                    }

                    y[(((p * g.OutH) + oh) * g.OutW) + ow] = sum / (countIncludePad ? g.KernelH * g.KernelW : inside);
                }
            }
        }
    }

    /// <summary>Reference average-pool backward, as a scatter: dx = 0, then every in-plane tap of output o gets dy[o] / divisor(o).</summary>
    /// <param name="dy">Output gradient (N,C,OH,OW).</param>
    /// <param name="dx">Input gradient (N,C,H,W), overwritten.</param>
    /// <param name="g">The geometry (dilation 1).</param>
    /// <param name="countIncludePad">As the forward.</param>
    public static void AvgPool2dBackwardReference(ReadOnlySpan<float> dy, Span<float> dx, Pool2dGeometry g, bool countIncludePad = true)
    {
        dx.Clear();
        for (int p = 0; p < g.N * g.C; p++)
        {
            for (int oh = 0; oh < g.OutH; oh++)
            {
                for (int ow = 0; ow < g.OutW; ow++)
                {
                    int h0 = (oh * g.StrideH) - g.PadH, w0 = (ow * g.StrideW) - g.PadW;
                    int hs = Math.Max(h0, 0), he = Math.Min(h0 + g.KernelH, g.H);
                    int ws = Math.Max(w0, 0), we = Math.Min(w0 + g.KernelW, g.W);
                    int divisor = countIncludePad ? g.KernelH * g.KernelW : (he - hs) * (we - ws);
                    float share = dy[(((p * g.OutH) + oh) * g.OutW) + ow] / divisor;
                    for (int ih = hs; ih < he; ih++)
                    {
                        for (int iw = ws; iw < we; iw++)
                            dx[(p * g.H * g.W) + (ih * g.W) + iw] += share;
                    }
                }
            }
        }
    }

    /// <summary>Reference global average pooling: y[p] = (Σ_s x[p, s]) / S, summed in float64.</summary>
    /// <param name="x">Input (N C, S), S = H W.</param>
    /// <param name="y">Output (N C).</param>
    /// <param name="s">Spatial size S.</param>
    public static void GlobalAvgPoolForwardReference(ReadOnlySpan<float> x, Span<float> y, int s)
    {
        for (int p = 0; p < y.Length; p++)
        {
            double sum = 0;
            for (int j = 0; j < s; j++)
                sum += x[(p * s) + j];
            y[p] = (float)(sum / s);
        }
    }

    /// <summary>Reference global average-pool backward: dx[p, s] = dy[p] / S.</summary>
    /// <param name="dy">Output gradient (N C).</param>
    /// <param name="dx">Input gradient (N C, S), overwritten.</param>
    /// <param name="s">Spatial size S.</param>
    public static void GlobalAvgPoolBackwardReference(ReadOnlySpan<float> dy, Span<float> dx, int s)
    {
        for (int p = 0; p < dy.Length; p++)
        {
            for (int j = 0; j < s; j++)
                dx[(p * s) + j] = dy[p] / s;
        }
    }
}
