namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>Augment</c> kernels: plain loops, slow and obviously right.</summary>
internal static class AugmentReference
{
    /// <summary>Reference: the four words of sample n, words 4n..4n+3 of Philox.Bits(seed, stream, counter).</summary>
    /// <param name="n">Number of samples.</param>
    /// <param name="seed">The seed.</param>
    /// <param name="stream">The stream.</param>
    /// <param name="counter">The counter.</param>
    /// <returns>4n words.</returns>
    public static uint[] WordsReference(int n, ulong seed, uint stream, uint counter)
    {
        var bits = new uint[4 * n];
        PhiloxReference.BitsReference(bits, seed, stream, counter);
        return bits;
    }

    private static double U(uint w) => (w >> 8) / 16777216.0;

    /// <summary>Reference: horizontal flip of sample n iff u(w0) &lt; p.</summary>
    /// <param name="x">Input (N, C, H, W).</param>
    /// <param name="y">Output (N, C, H, W).</param>
    /// <param name="n">N.</param>
    /// <param name="c">C.</param>
    /// <param name="h">H.</param>
    /// <param name="w">W.</param>
    /// <param name="p">Flip probability.</param>
    /// <param name="seed">The seed.</param>
    /// <param name="stream">The stream.</param>
    /// <param name="counter">The counter.</param>
    public static void FlipReference(ReadOnlySpan<float> x, Span<float> y, int n, int c, int h, int w, float p, ulong seed, uint stream, uint counter)
    {
        var words = WordsReference(n, seed, stream, counter);
        for (int s = 0; s < n; s++)
        {
            bool flip = U(words[4 * s]) < p;
            for (int ch = 0; ch < c; ch++)
            {
                for (int i = 0; i < h; i++)
                {
                    for (int j = 0; j < w; j++)
                        y[(((s * c) + ch) * h + i) * w + j] = x[(((s * c) + ch) * h + i) * w + (flip ? w - 1 - j : j)];
                }
            }
        }
    }

    /// <summary>Reference: zero-padded random crop to (oh, ow).</summary>
    /// <param name="x">Input (N, C, H, W).</param>
    /// <param name="y">Output (N, C, OH, OW).</param>
    /// <param name="n">N.</param>
    /// <param name="c">C.</param>
    /// <param name="h">H.</param>
    /// <param name="w">W.</param>
    /// <param name="oh">Output height, at most H + 2 pad.</param>
    /// <param name="ow">Output width, at most W + 2 pad.</param>
    /// <param name="pad">Zero padding on each side.</param>
    /// <param name="seed">The seed.</param>
    /// <param name="stream">The stream.</param>
    /// <param name="counter">The counter.</param>
    public static void CropReference(ReadOnlySpan<float> x, Span<float> y, int n, int c, int h, int w, int oh, int ow, int pad, ulong seed, uint stream, uint counter)
    {
        var words = WordsReference(n, seed, stream, counter);
        for (int s = 0; s < n; s++)
        {
            int top = (int)(((ulong)words[4 * s] * (ulong)(h + (2 * pad) - oh + 1)) >> 32);
            int left = (int)(((ulong)words[(4 * s) + 1] * (ulong)(w + (2 * pad) - ow + 1)) >> 32);
            for (int ch = 0; ch < c; ch++)
            {
                for (int i = 0; i < oh; i++)
                {
                    for (int j = 0; j < ow; j++)
                    {
                        int si = i + top - pad, sj = j + left - pad;
                        bool inside = si >= 0 && si < h && sj >= 0 && sj < w;
                        y[(((s * c) + ch) * oh + i) * ow + j] = inside ? x[(((s * c) + ch) * h + si) * w + sj] : 0f;
                    }
                }
            }
        }
    }

    /// <summary>Reference: rotation by a uniform angle in [lo, hi] degrees, bilinear, zero fill, in float64.</summary>
    /// <param name="x">Input (N, C, H, W).</param>
    /// <param name="y">Output (N, C, H, W).</param>
    /// <param name="n">N.</param>
    /// <param name="c">C.</param>
    /// <param name="h">H.</param>
    /// <param name="w">W.</param>
    /// <param name="loDegrees">Smallest angle.</param>
    /// <param name="hiDegrees">Largest angle.</param>
    /// <param name="seed">The seed.</param>
    /// <param name="stream">The stream.</param>
    /// <param name="counter">The counter.</param>
    public static void RotateReference(ReadOnlySpan<float> x, Span<float> y, int n, int c, int h, int w, float loDegrees, float hiDegrees, ulong seed, uint stream, uint counter)
    {
        var words = WordsReference(n, seed, stream, counter);
        double cx = (w - 1) / 2.0, cy = (h - 1) / 2.0;
        for (int s = 0; s < n; s++)
        {
            double a = (loDegrees + (U(words[4 * s]) * (hiDegrees - loDegrees))) * Math.PI / 180.0;
            double cos = Math.Cos(a), sin = Math.Sin(a);
            for (int ch = 0; ch < c; ch++)
            {
                int plane = ((s * c) + ch) * h * w;
                for (int i = 0; i < h; i++)
                {
                    for (int j = 0; j < w; j++)
                    {
                        double dx = j - cx, dy = i - cy;
                        double sx = cx + (dx * cos) - (dy * sin), sy = cy + (dx * sin) + (dy * cos);
                        int j0 = (int)Math.Floor(sx), i0 = (int)Math.Floor(sy);
                        double fx = sx - j0, fy = sy - i0;
                        double v = ((1 - fy) * (((1 - fx) * At(x, plane, i0, j0, h, w)) + (fx * At(x, plane, i0, j0 + 1, h, w))))
                                 + (fy * (((1 - fx) * At(x, plane, i0 + 1, j0, h, w)) + (fx * At(x, plane, i0 + 1, j0 + 1, h, w))));
                        y[plane + (i * w) + j] = (float)v;
                    }
                }
            }
        }
    }

    /// <summary>Reference: brightness then contrast jitter, in float64.</summary>
    /// <param name="x">Input (N, C, H, W).</param>
    /// <param name="y">Output (N, C, H, W).</param>
    /// <param name="n">N.</param>
    /// <param name="c">C.</param>
    /// <param name="h">H.</param>
    /// <param name="w">W.</param>
    /// <param name="brightnessLo">Smallest brightness factor.</param>
    /// <param name="brightnessHi">Largest brightness factor.</param>
    /// <param name="contrastLo">Smallest contrast factor.</param>
    /// <param name="contrastHi">Largest contrast factor.</param>
    /// <param name="seed">The seed.</param>
    /// <param name="stream">The stream.</param>
    /// <param name="counter">The counter.</param>
    public static void JitterReference(ReadOnlySpan<float> x, Span<float> y, int n, int c, int h, int w, float brightnessLo, float brightnessHi, float contrastLo, float contrastHi, ulong seed, uint stream, uint counter)
    {
        var words = WordsReference(n, seed, stream, counter);
        int hw = h * w, sample = c * hw;
        for (int s = 0; s < n; s++)
        {
            double fb = brightnessLo + (U(words[4 * s]) * (brightnessHi - brightnessLo));
            double fc = contrastLo + (U(words[(4 * s) + 1]) * (contrastHi - contrastLo));
            double gray = 0;
            for (int k = 0; k < hw; k++)
            {
                if (c == 3)
                {
                    gray += (Augment.GrayR * x[(s * sample) + k]) + (Augment.GrayG * x[(s * sample) + hw + k]) + (Augment.GrayB * x[(s * sample) + (2 * hw) + k]);
                }
                else
                {
                    for (int ch = 0; ch < c; ch++)
                        gray += (double)x[(s * sample) + (ch * hw) + k] / c;
                }
            }

            double m = hw > 0 ? fb * gray / hw : 0;
            for (int k = 0; k < sample; k++)
            {
                double v = x[(s * sample) + k] * fb;
                y[(s * sample) + k] = (float)((float)fc == 1f ? v : ((v - m) * fc) + m);
            }
        }
    }

    private static double At(ReadOnlySpan<float> x, int plane, int i, int j, int h, int w) =>
        i >= 0 && i < h && j >= 0 && j < w ? x[plane + (i * w) + j] : 0.0;
}
