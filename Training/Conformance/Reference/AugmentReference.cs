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

    /// <summary>Reference: horizontal or vertical flip of sample n iff u(w0) &lt; p.</summary>
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
    public static void VerticalFlipReference(ReadOnlySpan<float> x, Span<float> y, int n, int c, int h, int w, float p, ulong seed, uint stream, uint counter)
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
                        y[(((s * c) + ch) * h + i) * w + j] = x[(((s * c) + ch) * h + (flip ? h - 1 - i : i)) * w + j];
                }
            }
        }
    }

    /// <summary>Reference: the box (top, left, height, width) of each sample, torchvision's sampling in float64 (see Kernels/Augment.cs).</summary>
    /// <param name="n">N.</param>
    /// <param name="h">H.</param>
    /// <param name="w">W.</param>
    /// <param name="mode">0 whole image, 1 RandomResizedCrop, 2 RandomErasing.</param>
    /// <param name="scaleLo">Smallest area fraction.</param>
    /// <param name="scaleHi">Largest area fraction.</param>
    /// <param name="ratioLo">Smallest aspect ratio.</param>
    /// <param name="ratioHi">Largest aspect ratio.</param>
    /// <param name="p">Erasing probability.</param>
    /// <param name="seed">The seed.</param>
    /// <param name="stream">The stream.</param>
    /// <param name="counter">The counter.</param>
    /// <returns>4 N ints.</returns>
    public static int[] BoxesReference(int n, int h, int w, int mode, double scaleLo, double scaleHi, double ratioLo, double ratioHi, double p, ulong seed, uint stream, uint counter)
    {
        var boxes = new int[4 * n];
        var words = WordsReference(n * Augment.BoxBlocks, seed, stream, counter);
        double logLo = Math.Log(ratioLo), logHi = Math.Log(ratioHi);
        for (int s = 0; s < n; s++)
        {
            int top = 0, left = 0, bh = h, bw = w;
            if (mode != 0)
            {
                bool found = false;
                for (int t = 0; t < Augment.BoxTries && !found; t++)
                {
                    int o = 4 * ((s * Augment.BoxBlocks) + t);
                    double area = (double)h * w * (scaleLo + (U(words[o]) * (scaleHi - scaleLo)));
                    double r = Math.Exp(logLo + (U(words[o + 1]) * (logHi - logLo)));
                    int wide = (int)Math.Round(Math.Sqrt(area * r), MidpointRounding.ToEven);
                    int narrow = (int)Math.Round(Math.Sqrt(area / r), MidpointRounding.ToEven);
                    int ch = mode == 2 ? wide : narrow, cw = mode == 2 ? narrow : wide;
                    if (mode == 2 ? ch < h && cw < w : ch > 0 && cw > 0 && ch <= h && cw <= w)
                    {
                        found = true;
                        (bh, bw) = (ch, cw);
                        top = (int)(((ulong)words[o + 2] * (ulong)(h - ch + 1)) >> 32);
                        left = (int)(((ulong)words[o + 3] * (ulong)(w - cw + 1)) >> 32);
                    }
                }

                if (!found && mode == 2)
                {
                    (bh, bw) = (0, 0);
                }
                else if (!found)
                {
                    double inRatio = (double)w / h;
                    if (inRatio < ratioLo)
                        bh = (int)Math.Round(w / ratioLo, MidpointRounding.ToEven);
                    else if (inRatio > ratioHi)
                        bw = (int)Math.Round(h * ratioHi, MidpointRounding.ToEven);
                    (top, left) = ((h - bh) / 2, (w - bw) / 2);
                }

                if (mode == 2 && !(U(words[4 * ((s * Augment.BoxBlocks) + Augment.BoxTries)]) < p))
                    (bh, bw) = (0, 0);
            }

            (boxes[4 * s], boxes[(4 * s) + 1], boxes[(4 * s) + 2], boxes[(4 * s) + 3]) = (top, left, bh, bw);
        }

        return boxes;
    }

    /// <summary>Reference: bilinear resize (align_corners False, PyTorch's upsample_bilinear2d) of each sample's box to (oh, ow), in float64.</summary>
    /// <param name="x">Input (N, C, H, W).</param>
    /// <param name="y">Output (N, C, OH, OW).</param>
    /// <param name="boxes">(top, left, height, width) per sample.</param>
    /// <param name="n">N.</param>
    /// <param name="c">C.</param>
    /// <param name="h">H.</param>
    /// <param name="w">W.</param>
    /// <param name="oh">Output height.</param>
    /// <param name="ow">Output width.</param>
    public static void ResampleReference(ReadOnlySpan<float> x, Span<float> y, int[] boxes, int n, int c, int h, int w, int oh, int ow)
    {
        for (int s = 0; s < n; s++)
        {
            int top = boxes[4 * s], left = boxes[(4 * s) + 1], bh = boxes[(4 * s) + 2], bw = boxes[(4 * s) + 3];
            for (int ch = 0; ch < c; ch++)
            {
                int plane = ((s * c) + ch) * h * w;
                for (int i = 0; i < oh; i++)
                {
                    var (y0, y1, ly) = Source(i, bh, oh);
                    for (int j = 0; j < ow; j++)
                    {
                        var (x0, x1, lx) = Source(j, bw, ow);
                        int b = plane + ((top + y0) * w) + left, d = (y1 - y0) * w;
                        double v00 = x[b + x0], v01 = x[b + x1], v10 = x[b + d + x0], v11 = x[b + d + x1];
                        y[(((s * c) + ch) * oh + i) * ow + j] = (float)(((1 - ly) * (((1 - lx) * v00) + (lx * v01))) + (ly * (((1 - lx) * v10) + (lx * v11))));
                    }
                }
            }
        }

        static (int Lo, int Hi, double Lambda) Source(int o, int inSize, int outSize)
        {
            double src = Math.Max(0, ((o + 0.5) * inSize / outSize) - 0.5);
            int lo = (int)Math.Floor(src);
            return (lo, lo < inSize - 1 ? lo + 1 : lo, src - lo);
        }
    }

    /// <summary>Reference: value inside each sample's box, x elsewhere.</summary>
    /// <param name="x">Input (N, C, H, W).</param>
    /// <param name="y">Output (N, C, H, W).</param>
    /// <param name="boxes">(top, left, height, width) per sample.</param>
    /// <param name="n">N.</param>
    /// <param name="c">C.</param>
    /// <param name="h">H.</param>
    /// <param name="w">W.</param>
    /// <param name="value">The fill.</param>
    public static void EraseReference(ReadOnlySpan<float> x, Span<float> y, int[] boxes, int n, int c, int h, int w, float value)
    {
        for (int s = 0; s < n; s++)
        {
            for (int k = 0; k < c * h * w; k++)
            {
                int i = k % (h * w) / w, j = k % w, e = (s * c * h * w) + k;
                bool inside = i >= boxes[4 * s] && i < boxes[4 * s] + boxes[(4 * s) + 2] && j >= boxes[(4 * s) + 1] && j < boxes[(4 * s) + 1] + boxes[(4 * s) + 3];
                y[e] = inside ? value : x[e];
            }
        }
    }

    /// <summary>Reference: (x - mean[c]) / std[c], in float64.</summary>
    /// <param name="x">Input (N, C, H, W).</param>
    /// <param name="y">Output (N, C, H, W).</param>
    /// <param name="mean">C means.</param>
    /// <param name="std">C standard deviations.</param>
    /// <param name="n">N.</param>
    /// <param name="h">H.</param>
    /// <param name="w">W.</param>
    public static void NormalizeReference(ReadOnlySpan<float> x, Span<float> y, IReadOnlyList<float> mean, IReadOnlyList<float> std, int n, int h, int w)
    {
        int c = mean.Count;
        for (int e = 0; e < n * c * h * w; e++)
        {
            int ch = e / (h * w) % c;
            y[e] = (float)((x[e] - (double)mean[ch]) / std[ch]);
        }
    }

    /// <summary>Reference: the colour jitter (ColorJitter with the kernel's permutation and clamping), in float64.</summary>
    /// <param name="x">Input (N, C, H, W).</param>
    /// <param name="y">Output (N, C, H, W).</param>
    /// <param name="n">N.</param>
    /// <param name="c">C.</param>
    /// <param name="h">H.</param>
    /// <param name="w">W.</param>
    /// <param name="r">The ranges, clamping and shuffling.</param>
    /// <param name="seed">The seed.</param>
    /// <param name="stream">The stream.</param>
    /// <param name="counter">The counter.</param>
    public static void JitterReference(ReadOnlySpan<float> x, Span<float> y, int n, int c, int h, int w, JitterRanges r, ulong seed, uint stream, uint counter)
    {
        var words = WordsReference(2 * n, seed, stream, counter);
        int hw = h * w, sample = c * hw;
        bool clamp = r.Clamp != 0;
        double Clamp(double v) => clamp ? Math.Clamp(v, 0, 1) : v;
        for (int s = 0; s < n; s++)
        {
            var img = new double[sample];
            for (int k = 0; k < sample; k++)
                img[k] = x[(s * sample) + k];
            int o = 8 * s;
            double fb = r.BrightnessLo + (U(words[o]) * ((double)r.BrightnessHi - r.BrightnessLo));
            double fc = r.ContrastLo + (U(words[o + 1]) * ((double)r.ContrastHi - r.ContrastLo));
            double fs = r.SaturationLo + (U(words[o + 2]) * ((double)r.SaturationHi - r.SaturationLo));
            double fh = r.HueLo + (U(words[o + 3]) * ((double)r.HueHi - r.HueLo));
            var order = new List<int> { 0, 1, 2, 3 };
            if (r.Shuffle != 0)
            {
                for (int k = 3; k >= 1; k--)
                {
                    int j = (int)(((ulong)words[o + 4 + k] * (ulong)(k + 1)) >> 32);
                    (order[k], order[j]) = (order[j], order[k]);
                }
            }

            foreach (int op in order.Where(op => (r.Enabled & (1 << op)) != 0))
            {
                if (op == 0)
                {
                    for (int k = 0; k < sample; k++)
                        img[k] = Clamp(img[k] * fb);
                }
                else if (op == 1)
                {
                    double m = 0;
                    for (int k = 0; k < hw; k++)
                        m += c == 3 ? (Augment.GrayR * img[k]) + (Augment.GrayG * img[hw + k]) + (Augment.GrayB * img[(2 * hw) + k]) : Enumerable.Range(0, c).Sum(ch => img[(ch * hw) + k]) / c;
                    m /= hw;
                    for (int k = 0; k < sample; k++)
                        img[k] = Clamp((img[k] * fc) + (m * (1 - fc)));
                }
                else if (c == 3)
                {
                    for (int k = 0; k < hw; k++)
                    {
                        double red = img[k], green = img[hw + k], blue = img[(2 * hw) + k];
                        (double, double, double) rgb;
                        if (op == 2)
                        {
                            double gray = (Augment.GrayR * red) + (Augment.GrayG * green) + (Augment.GrayB * blue);
                            rgb = (Clamp((red * fs) + (gray * (1 - fs))), Clamp((green * fs) + (gray * (1 - fs))), Clamp((blue * fs) + (gray * (1 - fs))));
                        }
                        else
                        {
                            rgb = HueReference(red, green, blue, fh);
                        }

                        (img[k], img[hw + k], img[(2 * hw) + k]) = rgb;
                    }
                }
            }

            for (int k = 0; k < sample; k++)
                y[(s * sample) + k] = (float)img[k];
        }
    }

    /// <summary>Reference: a pixel's hue shifted by f through HSV (the textbook conversion, as Python's colorsys), in float64.</summary>
    /// <param name="r">Red in [0, 1].</param>
    /// <param name="g">Green in [0, 1].</param>
    /// <param name="b">Blue in [0, 1].</param>
    /// <param name="f">The hue shift.</param>
    /// <returns>The shifted pixel.</returns>
    public static (double R, double G, double B) HueReference(double r, double g, double b, double f)
    {
        double max = Math.Max(r, Math.Max(g, b)), min = Math.Min(r, Math.Min(g, b));
        double v = max;
        if (max == min)
            return (v, v, v);
        double s = (max - min) / max;
        double rc = (max - r) / (max - min), gc = (max - g) / (max - min), bc = (max - b) / (max - min);
        double hue = r == max ? bc - gc : g == max ? 2 + rc - bc : 4 + gc - rc;
        hue = (hue / 6) + f;
        hue -= Math.Floor(hue);
        int i = (int)Math.Floor(hue * 6);
        double fr = (hue * 6) - i;
        double p = Math.Clamp(v * (1 - s), 0, 1), q = Math.Clamp(v * (1 - (s * fr)), 0, 1), t = Math.Clamp(v * (1 - (s * (1 - fr))), 0, 1);
        return (i % 6) switch
        {
            0 => (v, t, p),
            1 => (q, v, p),
            2 => (p, v, t),
            3 => (p, q, v),
            4 => (t, p, v),
            _ => (v, p, q),
        };
    }

    /// <summary>Reference: y[n] = x[n - 1 mod N] (1 - lam) + x[n] lam, in float64.</summary>
    /// <param name="x">Input (N, sample).</param>
    /// <param name="y">Output.</param>
    /// <param name="n">N.</param>
    /// <param name="lam">The weight.</param>
    public static void MixUpReference(ReadOnlySpan<float> x, Span<float> y, int n, double lam)
    {
        int sample = n == 0 ? 0 : x.Length / n;
        for (int e = 0; e < x.Length; e++)
        {
            int s = e / sample, rolled = (((s + n - 1) % n) * sample) + (e % sample);
            y[e] = (float)((x[rolled] * (1 - lam)) + (x[e] * lam));
        }
    }

    /// <summary>Reference: the soft targets onehot(labels[n - 1 mod N]) (1 - lam) + onehot(labels[n]) lam, in float64.</summary>
    /// <param name="labels">Class indices (N).</param>
    /// <param name="classes">C.</param>
    /// <param name="lam">The weight.</param>
    /// <returns>(N, C).</returns>
    public static double[] MixTargetsReference(ReadOnlySpan<int> labels, int classes, double lam)
    {
        int n = labels.Length;
        var t = new double[n * classes];
        for (int s = 0; s < n; s++)
        {
            t[(s * classes) + labels[s]] += lam;
            t[(s * classes) + labels[(s + n - 1) % n]] += 1 - lam;
        }

        return t;
    }

    /// <summary>Reference: inside the box [y1, y2) x [x1, x2) of every plane, sample n takes sample n - 1 mod N's pixels; outside, its own.</summary>
    /// <param name="x">Input (N, C, H, W).</param>
    /// <param name="y">Output (N, C, H, W).</param>
    /// <param name="n">N.</param>
    /// <param name="h">H.</param>
    /// <param name="w">W.</param>
    /// <param name="box">The box (x1, y1, x2, y2), 0 &lt;= x1 &lt;= x2 &lt;= W and 0 &lt;= y1 &lt;= y2 &lt;= H.</param>
    public static void CutMixReference(ReadOnlySpan<float> x, Span<float> y, int n, int h, int w, (int X1, int Y1, int X2, int Y2) box)
    {
        int plane = h * w, sample = n == 0 ? 0 : x.Length / n;
        for (int e = 0; e < x.Length; e++)
        {
            int s = e / sample, i = e % plane / w, j = e % w;
            bool inside = i >= box.Y1 && i < box.Y2 && j >= box.X1 && j < box.X2;
            y[e] = inside ? x[e - (s * sample) + (((s + n - 1) % n) * sample)] : x[e];
        }
    }

    private static double At(ReadOnlySpan<float> x, int plane, int i, int j, int h, int w) =>
        i >= 0 && i < h && j >= 0 && j < w ? x[plane + (i * w) + j] : 0.0;
}
