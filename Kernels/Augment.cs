using ILGPU.Algorithms;
using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// On-device data augmentation over NCHW float batches, x (N, C, H, W) -> y, with the semantics of
// torchvision.transforms.v2 applied to each sample on its own. Out of place unless a launcher says
// otherwise (flip, crop, resampling and the colour stages read other positions).
//
// Randomness: sample n draws Philox blocks of (seed, stream, counter) chosen by the transform
// (block n unless said otherwise); a block is four words w0..w3, u(w) = (w >> 8) * 2^-24 in [0, 1)
// and randint(w, k) = floor(w k / 2^32) in [0, k) (multiply-shift; bias <= k / 2^32). So a
// sample's transform depends only on (seed, stream, counter, n): the same on every backend and
// launch layout. Use a different stream per transform.
//
//   Flip    (RandomHorizontalFlip(p) / RandomVerticalFlip(p)): flip iff u(w0) < p;
//           horizontal y[n,c,i,j] = x[n,c,i,W-1-j], vertical y[n,c,i,j] = x[n,c,H-1-i,j].
//   Crop    (RandomCrop(size, padding), zero fill): pad x by P on each side, take the OH x OW window
//           at top = randint(w0, H+2P-OH+1), left = randint(w1, W+2P-OW+1);
//           y[n,c,i,j] = x[n,c,i+top-P,j+left-P], 0 outside x.
//   Rotate  (RandomRotation(degrees) with interpolation BILINEAR, fill 0, expand False; torchvision's
//           default interpolation is NEAREST): angle a = lo + u(w0) (hi - lo) degrees, counter-
//           clockwise as displayed, about the center (cx, cy) = ((W-1)/2, (H-1)/2). Output pixel
//           (i, j), with (dx, dy) = (j - cx, i - cy), samples x at
//             sx = cx + dx cos a - dy sin a,   sy = cy + dx sin a + dy cos a
//           bilinearly, each of the four neighbours outside the image counting as 0
//           (grid_sample, padding zeros, align_corners False, in pixel units).
//   Boxes   one (top, left, height, width) per sample, in ints, written by BoxBody and read by the
//           resampling and erasing bodies. Try t = 0..9 of sample n reads block 11 n + t:
//             area' = H W (sLo + u(w0) (sHi - sLo)),   r = exp(log rLo + u(w1) (log rHi - log rLo))
//           RandomResizedCrop: bw = round(sqrt(area' r)), bh = round(sqrt(area' / r)), accepted
//             iff 0 < bw <= W and 0 < bh <= H; top = randint(w2, H-bh+1), left = randint(w3, W-bw+1).
//             After 10 rejections the central fallback: W/H < rLo -> bw = W, bh = round(W / rLo);
//             W/H > rHi -> bh = H, bw = round(H rHi); else the whole image; top = (H-bh) div 2,
//             left = (W-bw) div 2.
//           RandomErasing: bh = round(sqrt(area' r)), bw = round(sqrt(area' / r)) (note: r widens
//             the height here, as torchvision), accepted iff bh < H and bw < W; after 10
//             rejections nothing is erased. The sample is erased at all only iff u(w0 of block
//             11 n + 10) < p.
//           Resize: the whole image (0, 0, H, W).
//           round is Python's (half to even); the sampling runs in float32 where torchvision uses
//           float64 for the square roots, so a box can differ at an exact .5 tie, never otherwise.
//   Resample (Resize(size, BILINEAR, antialias=False) and the resize of RandomResizedCrop; the one
//           bilinear body for both): output (OH, OW) from the box (t, l, bh, bw), PyTorch's
//           upsample_bilinear2d with align_corners False (half-pixel centers):
//             sy = max(0, (i + 0.5) bh / OH - 0.5),  y0 = floor(sy),  y1 = y0 + (y0 < bh - 1),
//             ly = sy - y0  (and likewise sx, x0, x1, lx over bw, OW),
//             y = (1-ly) ((1-lx) x[t+y0, l+x0] + lx x[t+y0, l+x1]) + ly ((1-lx) x[t+y1, l+x0] + lx x[t+y1, l+x1]).
//           torchvision.transforms.v2's default is antialias=True, which differs when shrinking.
//   Erase   (RandomErasing(p, scale, ratio, value)): y = value inside the sample's box, x elsewhere.
//   Jitter  (ColorJitter(brightness, contrast, saturation, hue)): sample n's factors come from
//           block 2n, fb = bLo + u(w0)(bHi - bLo), fc, fs, fh likewise from w1, w2, w3. An op whose
//           range is its identity ([1, 1], or [0, 0] for hue) is off, as torchvision's None. The
//           ops that are on run one per stage, in the order of a permutation of (brightness,
//           contrast, saturation, hue) drawn per sample from block 2n + 1 (Fisher-Yates: for
//           k = 3, 2, 1 swap slot k with slot randint(w_k, k + 1)), as torchvision's randperm(4),
//           or in that fixed order when shuffling is off. Each op is torchvision's:
//             brightness  y = x fb
//             contrast    y = x fc + m (1 - fc), m = the mean of the image's gray as it enters
//                         this stage (GrayMeanBody: 0.2989 R + 0.587 G + 0.114 B for C = 3, the
//                         mean over all channels otherwise)
//             saturation  y = x fs + gray (1 - fs), gray = 0.2989 R + 0.587 G + 0.114 B of the
//                         pixel (identity for C = 1)
//             hue         RGB -> HSV (torchvision's _rgb2hsv), h = (h + fh) mod 1, HSV -> RGB
//                         (_hsv2rgb: i = floor(6h) mod 6, f = 6h - floor(6h), p = (1-s) v,
//                         q = (1 - s f) v, t = (s f + 1 - s) v, each clamped to [0, 1]; (R, G, B) =
//                         (v,t,p) (q,v,p) (p,v,t) (p,q,v) (t,p,v) (v,p,q) for i = 0..5); identity
//                         for C = 1
//           and, when clamping is on (the values are pixels in [0, 1]), every op's result is
//           clamped to [0, 1] as torchvision's _blend and adjust_brightness do for float images.
//           Clamping off is the mode for data that arrive normalized (Training/Augmentation.cs).
//   Normalize (Normalize(mean, std)): y[n,c,i,j] = (x[n,c,i,j] - mean[c]) / std[c].
//   MixUp   (v2.MixUp(alpha)): lam ~ Beta(alpha, alpha) once per batch (on the host), rolled sample
//           r(n) = (n - 1) mod N (torch.roll(1, 0)):  y[n] = x[r(n)] (1 - lam) + x[n] lam.
//   CutMix  (v2.CutMix(alpha)): one box (x1, y1, x2, y2) per batch (on the host, see
//           Training/Mixing.cs): y[n,c,i,j] = x[r(n),c,i,j] inside the box, x[n,c,i,j] outside.
//   Targets soft labels of a mixed batch: t[n,k] = [k = label r(n)] (1 - lam) + [k = label n] lam.
//
// Bytes per element: flip, crop, erase, normalize, mixing read 4 B and write 4 B (mixup 8 B);
// rotation and resampling read up to 16 B (four neighbours) and write 4 B; a jitter stage reads
// 4 B (12 B for saturation and hue, the pixel's three channels) and writes 4 B, and the gray mean
// reads each element once more per stage with contrast on. Boxes are one small pass over N. No
// backward: inputs are data.

/// <summary>
/// The random ranges of <see cref="Augment.Jitter"/> (torchvision's ColorJitter after its
/// argument checks): each factor is uniform in [lo, hi]; a range equal to its identity ([1, 1];
/// [0, 0] for hue) is off.
/// </summary>
/// <param name="BrightnessLo">Smallest brightness factor (0 or more).</param>
/// <param name="BrightnessHi">Largest brightness factor.</param>
/// <param name="ContrastLo">Smallest contrast factor (0 or more).</param>
/// <param name="ContrastHi">Largest contrast factor.</param>
/// <param name="SaturationLo">Smallest saturation factor (0 or more).</param>
/// <param name="SaturationHi">Largest saturation factor.</param>
/// <param name="HueLo">Smallest hue shift (at least -0.5).</param>
/// <param name="HueHi">Largest hue shift (at most 0.5).</param>
/// <param name="Clamp">1: clamp every op's result to [0, 1] (pixel values); 0: no clamping (normalized values).</param>
/// <param name="Shuffle">1: a random order per sample; 0: brightness, contrast, saturation, hue.</param>
internal readonly record struct JitterRanges(
    float BrightnessLo, float BrightnessHi, float ContrastLo, float ContrastHi,
    float SaturationLo, float SaturationHi, float HueLo, float HueHi, int Clamp, int Shuffle)
{
    /// <summary>Bit k is set when op k (0 brightness, 1 contrast, 2 saturation, 3 hue) is on.</summary>
    public int Enabled =>
        (BrightnessLo == 1f && BrightnessHi == 1f ? 0 : 1)
        | (ContrastLo == 1f && ContrastHi == 1f ? 0 : 2)
        | (SaturationLo == 1f && SaturationHi == 1f ? 0 : 4)
        | (HueLo == 0f && HueHi == 0f ? 0 : 8);
}

/// <summary>How <see cref="Augment.BoxBody{TI}"/> picks each sample's box.</summary>
/// <param name="Mode">0 the whole image (Resize), 1 RandomResizedCrop, 2 RandomErasing.</param>
/// <param name="ScaleLo">Smallest area fraction.</param>
/// <param name="ScaleHi">Largest area fraction.</param>
/// <param name="RatioLo">Smallest aspect ratio.</param>
/// <param name="RatioHi">Largest aspect ratio.</param>
/// <param name="LogRatioLo">log RatioLo, in float32 as torchvision's torch.log(torch.tensor(ratio)).</param>
/// <param name="LogRatioHi">log RatioHi.</param>
/// <param name="P">Erasing probability (mode 2).</param>
internal readonly record struct BoxSampling(int Mode, float ScaleLo, float ScaleHi, float RatioLo, float RatioHi, float LogRatioLo, float LogRatioHi, float P)
{
    /// <summary>Mode of Resize.</summary>
    public const int Whole = 0;

    /// <summary>Mode of RandomResizedCrop.</summary>
    public const int ResizedCrop = 1;

    /// <summary>Mode of RandomErasing.</summary>
    public const int Erasing = 2;

    /// <summary>The sampling of a mode over the given scale and ratio ranges.</summary>
    /// <param name="mode">The mode.</param>
    /// <param name="scaleLo">Smallest area fraction.</param>
    /// <param name="scaleHi">Largest area fraction.</param>
    /// <param name="ratioLo">Smallest aspect ratio.</param>
    /// <param name="ratioHi">Largest aspect ratio.</param>
    /// <param name="p">Erasing probability.</param>
    /// <returns>The value.</returns>
    public static BoxSampling Of(int mode, float scaleLo, float scaleHi, float ratioLo, float ratioHi, float p = 1f) =>
        new(mode, scaleLo, scaleHi, ratioLo, ratioHi, MathF.Log(ratioLo), MathF.Log(ratioHi), p);
}

/// <summary>On-device augmentation of NCHW batches: element bodies and checked launchers.</summary>
internal static class Augment
{
    /// <summary>Luma weights of ITU-R 601-2, as torchvision's rgb_to_grayscale.</summary>
    public const float GrayR = 0.2989f;

    /// <summary>Green weight.</summary>
    public const float GrayG = 0.587f;

    /// <summary>Blue weight.</summary>
    public const float GrayB = 0.114f;

    /// <summary>Philox blocks per sample of the box sampling: ten tries and the erasing coin.</summary>
    public const int BoxBlocks = 11;

    /// <summary>Tries of the box sampling before its fallback (torchvision's 10).</summary>
    public const int BoxTries = 10;

    // ---------------------------------------------------------------- element bodies
    // One output element per index (one sample per index for GrayMeanBody and BoxBody), run by
    // Elementwise.ForEachKernel over views and by CpuLoops.ForEach over host pointers.

    // randint(word, range): an index in [0, range).
    private static int Bounded(uint word, int range) => (int)(((ulong)word * (ulong)(uint)range) >> 32);

    // Python's round() of a non-negative float: half to even.
    private static int RoundHalfEven(float v)
    {
        float f = XMath.Floor(v);
        float d = v - f;
        int r = (int)f;
        return d > 0.5f || (d == 0.5f && (r & 1) == 1) ? r + 1 : r;
    }

    private static float Clamp01(float v, int clamp) => clamp == 0 ? v : XMath.Clamp(v, 0f, 1f);

    // Element i of planes of rows x cols: returns its plane, with its row and column.
    private static int Plane(int i, int rows, int cols, out int row, out int col)
    {
        int size = rows * cols;
        int plane = i / size;
        int r = i - (plane * size);
        row = r / cols;
        col = r - (row * cols);
        return plane;
    }

    // Horizontal (vertical = 0) or vertical flip of sample i / sample (C H W) iff u(w0) < p; w is W, h is H.
    internal readonly struct FlipBody<TF>(TF x, TF y, int sample, int h, int w, int vertical, float p, PhiloxStream key) : IElementBody
        where TF : struct, IElements<float>
    {
        public void Run(int i)
        {
            bool flip = Philox.ToUniform(key.Block(i / sample).X0) < p;
            int from = i;
            if (flip && vertical == 0)
            {
                int j = i % w;
                from = i - j + (w - 1 - j);
            }
            else if (flip)
            {
                int r = i / w % h;
                from = i + ((h - 1 - (2 * r)) * w);
            }

            y[i] = x[from];
        }
    }

    // Zero-padded random crop: output (N, C, OH, OW) from input (N, C, H, W) padded by pad.
    internal readonly struct CropBody<TF>(TF x, TF y, int c, int h, int w, int oh, int ow, int pad, PhiloxStream key) : IElementBody
        where TF : struct, IElements<float>
    {
        public void Run(int i)
        {
            int plane = Plane(i, oh, ow, out int oi, out int oj);
            var words = key.Block(plane / c);
            int si = oi + Bounded(words.X0, h + (2 * pad) - oh + 1) - pad;
            int sj = oj + Bounded(words.X1, w + (2 * pad) - ow + 1) - pad;
            y[i] = si >= 0 && si < h && sj >= 0 && sj < w ? x[(((plane * h) + si) * w) + sj] : 0f;
        }
    }

    // Bilinear rotation by an angle in [lo, hi] degrees, zero fill, over (N, C, H, W).
    internal readonly struct RotateBody<TF>(TF x, TF y, int c, int h, int w, float loDegrees, float hiDegrees, PhiloxStream key) : IElementBody
        where TF : struct, IElements<float>
    {
        public void Run(int i)
        {
            int planeSize = h * w;
            float cx = (w - 1) * 0.5f, cy = (h - 1) * 0.5f;
            int plane = Plane(i, h, w, out int oi, out int oj);
            float u = Philox.ToUniform(key.Block(plane / c).X0);
            float a = (loDegrees + (u * (hiDegrees - loDegrees))) * (XMath.PI / 180f);
            float cos = XMath.Cos(a), sin = XMath.Sin(a);
            float dx = oj - cx, dy = oi - cy;
            float sx = cx + (dx * cos) - (dy * sin);
            float sy = cy + (dx * sin) + (dy * cos);
            float fj = XMath.Floor(sx), fi = XMath.Floor(sy);
            float fx = sx - fj, fy = sy - fi;
            // Far outside, the float-to-int conversion would be undefined; such samples are zero anyway.
            float v = 0f;
            if (fj > -2f && fj < w + 1f && fi > -2f && fi < h + 1f)
            {
                int j0 = (int)fj, i0 = (int)fi;
                int basePlane = plane * planeSize;
                float v00 = Pixel(basePlane, i0, j0), v01 = Pixel(basePlane, i0, j0 + 1);
                float v10 = Pixel(basePlane, i0 + 1, j0), v11 = Pixel(basePlane, i0 + 1, j0 + 1);
                v = ((1f - fy) * (((1f - fx) * v00) + (fx * v01))) + (fy * (((1f - fx) * v10) + (fx * v11)));
            }

            y[i] = v;
        }

        private float Pixel(int basePlane, int i, int j) =>
            i >= 0 && i < h && j >= 0 && j < w ? x[basePlane + (i * w) + j] : 0f;
    }

    // boxes[4s .. 4s+3] = (top, left, height, width) of sample s (see the header's Boxes).
    internal readonly struct BoxBody<TI>(TI boxes, int h, int w, BoxSampling b, PhiloxStream key) : IElementBody
        where TI : struct, IElements<int>
    {
        public void Run(int s)
        {
            int top = 0, left = 0, bh = h, bw = w;
            if (b.Mode != BoxSampling.Whole)
            {
                bool erasing = b.Mode == BoxSampling.Erasing;
                bool found = false;
                float area = (float)h * w;
                for (int t = 0; t < BoxTries && !found; t++)
                {
                    var words = key.Block((s * BoxBlocks) + t);
                    float target = area * (b.ScaleLo + (Philox.ToUniform(words.X0) * (b.ScaleHi - b.ScaleLo)));
                    float ratio = XMath.Exp(b.LogRatioLo + (Philox.ToUniform(words.X1) * (b.LogRatioHi - b.LogRatioLo)));
                    int wide = RoundHalfEven(XMath.Sqrt(target * ratio));
                    int narrow = RoundHalfEven(XMath.Sqrt(target / ratio));
                    int ch = erasing ? wide : narrow, cw = erasing ? narrow : wide;
                    bool ok = erasing ? ch < h && cw < w : ch > 0 && cw > 0 && ch <= h && cw <= w;
                    if (ok)
                    {
                        found = true;
                        bh = ch;
                        bw = cw;
                        top = Bounded(words.X2, h - ch + 1);
                        left = Bounded(words.X3, w - cw + 1);
                    }
                }

                if (!found && erasing)
                {
                    bh = 0;
                    bw = 0;
                }
                else if (!found)
                {
                    float inRatio = (float)w / h;
                    if (inRatio < b.RatioLo)
                        bh = RoundHalfEven(w / b.RatioLo);
                    else if (inRatio > b.RatioHi)
                        bw = RoundHalfEven(h * b.RatioHi);
                    top = (h - bh) / 2;
                    left = (w - bw) / 2;
                }

                if (erasing && !(Philox.ToUniform(key.Block((s * BoxBlocks) + BoxTries).X0) < b.P))
                {
                    bh = 0;
                    bw = 0;
                }
            }

            boxes[4 * s] = top;
            boxes[(4 * s) + 1] = left;
            boxes[(4 * s) + 2] = bh;
            boxes[(4 * s) + 3] = bw;
        }
    }

    // Bilinear resize of each sample's box to (OH, OW): output (N, C, OH, OW) (see the header's Resample).
    internal readonly struct ResampleBody<TF, TI>(TF x, TF y, TI boxes, int c, int h, int w, int oh, int ow) : IElementBody
        where TF : struct, IElements<float>
        where TI : struct, IElements<int>
    {
        public void Run(int i)
        {
            int plane = Plane(i, oh, ow, out int oi, out int oj);
            int s = plane / c;
            int top = boxes[4 * s], left = boxes[(4 * s) + 1], bh = boxes[(4 * s) + 2], bw = boxes[(4 * s) + 3];
            float sy = XMath.Max(0f, ((oi + 0.5f) * ((float)bh / oh)) - 0.5f);
            float sx = XMath.Max(0f, ((oj + 0.5f) * ((float)bw / ow)) - 0.5f);
            int y0 = (int)sy, x0 = (int)sx;
            int y1 = y0 + (y0 < bh - 1 ? 1 : 0), x1 = x0 + (x0 < bw - 1 ? 1 : 0);
            float ly = sy - y0, lx = sx - x0;
            int b = ((plane * h) + top) * w + left;
            float v00 = x[b + (y0 * w) + x0], v01 = x[b + (y0 * w) + x1];
            float v10 = x[b + (y1 * w) + x0], v11 = x[b + (y1 * w) + x1];
            y[i] = ((1f - ly) * (((1f - lx) * v00) + (lx * v01))) + (ly * (((1f - lx) * v10) + (lx * v11)));
        }
    }

    // value inside sample s's box, x elsewhere; y may alias x.
    internal readonly struct EraseBody<TF, TI>(TF x, TF y, TI boxes, int c, int h, int w, float value) : IElementBody
        where TF : struct, IElements<float>
        where TI : struct, IElements<int>
    {
        public void Run(int i)
        {
            int s = Plane(i, h, w, out int oi, out int oj) / c;
            int top = boxes[4 * s], left = boxes[(4 * s) + 1];
            bool inside = oi >= top && oi < top + boxes[(4 * s) + 2] && oj >= left && oj < left + boxes[(4 * s) + 3];
            y[i] = inside ? value : x[i];
        }
    }

    // y = (x - mean[ch]) / std[ch], stats = (mean[0..C), std[0..C)); y may alias x.
    internal readonly struct NormalizeBody<TF>(TF x, TF y, TF stats, int c, int hw) : IElementBody
        where TF : struct, IElements<float>
    {
        public void Run(int i)
        {
            int ch = i / hw % c;
            y[i] = (x[i] - stats[ch]) / stats[c + ch];
        }
    }

    // means[s] = the mean gray value of sample s (see the header); hw is H W.
    internal readonly struct GrayMeanBody<TF>(TF x, TF means, int c, int hw) : IElementBody
        where TF : struct, IElements<float>
    {
        public void Run(int s)
        {
            float sum = 0f;
            int sample = c * hw;
            int b = s * sample;
            if (c == 3)
            {
                for (int k = 0; k < hw; k++)
                    sum += (GrayR * x[b + k]) + (GrayG * x[b + hw + k]) + (GrayB * x[b + (2 * hw) + k]);
                means[s] = sum / hw;
            }
            else
            {
                for (int k = 0; k < sample; k++)
                    sum += x[b + k];
                means[s] = sum / sample;
            }
        }
    }

    /// <summary>The op (0 brightness, 1 contrast, 2 saturation, 3 hue) that sample <paramref name="s"/> runs at <paramref name="stage"/>, or -1.</summary>
    /// <param name="key">The jitter's stream.</param>
    /// <param name="s">The sample.</param>
    /// <param name="stage">The stage, from 0.</param>
    /// <param name="enabled">The ops that are on (<see cref="JitterRanges.Enabled"/>).</param>
    /// <param name="shuffle">1 for a random order per sample.</param>
    /// <returns>The op.</returns>
    internal static int JitterOp(PhiloxStream key, int s, int stage, int enabled, int shuffle)
    {
        // The permutation packed two bits per slot: slot k holds op (order >> 2k) & 3.
        int order = 0b11_10_01_00;
        if (shuffle != 0)
        {
            var words = key.Block((2 * s) + 1);
            for (int k = 3; k >= 1; k--)
            {
                int j = Bounded(words.Word(k), k + 1);
                int a = (order >> (2 * k)) & 3, b = (order >> (2 * j)) & 3;
                order = (order & ~((3 << (2 * k)) | (3 << (2 * j)))) | (b << (2 * k)) | (a << (2 * j));
            }
        }

        int seen = 0;
        for (int k = 0; k < 4; k++)
        {
            int op = (order >> (2 * k)) & 3;
            if ((enabled & (1 << op)) != 0)
            {
                if (seen == stage)
                    return op;
                seen++;
            }
        }

        return -1;
    }

    // One stage of the colour jitter (see the header): the op of sample i / (C H W) at this stage.
    internal readonly struct JitterBody<TF>(TF x, TF y, TF means, int c, int hw, int stage, JitterRanges p, PhiloxStream key) : IElementBody
        where TF : struct, IElements<float>
    {
        public void Run(int i)
        {
            int sample = c * hw;
            int s = i / sample;
            int op = JitterOp(key, s, stage, p.Enabled, p.Shuffle);
            var words = key.Block(2 * s);
            float v = x[i];
            if (op == 0)
            {
                v = Clamp01(v * (p.BrightnessLo + (Philox.ToUniform(words.X0) * (p.BrightnessHi - p.BrightnessLo))), p.Clamp);
            }
            else if (op == 1)
            {
                float f = p.ContrastLo + (Philox.ToUniform(words.X1) * (p.ContrastHi - p.ContrastLo));
                v = Clamp01((v * f) + (means[s] * (1f - f)), p.Clamp);
            }
            else if (op >= 2 && c == 3)
            {
                int k = i - (s * sample);
                int ch = k / hw;
                int px = i - (ch * hw);
                float r = x[px], g = x[px + hw], b = x[px + (2 * hw)];
                if (op == 2)
                {
                    float f = p.SaturationLo + (Philox.ToUniform(words.X2) * (p.SaturationHi - p.SaturationLo));
                    float gray = (GrayR * r) + (GrayG * g) + (GrayB * b);
                    v = Clamp01((v * f) + (gray * (1f - f)), p.Clamp);
                }
                else
                {
                    v = HueShift(r, g, b, ch, p.HueLo + (Philox.ToUniform(words.X3) * (p.HueHi - p.HueLo)));
                }
            }

            y[i] = v;
        }
    }

    /// <summary>Channel <paramref name="ch"/> of the pixel (r, g, b) with its hue shifted by <paramref name="f"/> (torchvision's adjust_hue, in float32).</summary>
    /// <param name="r">Red in [0, 1].</param>
    /// <param name="g">Green in [0, 1].</param>
    /// <param name="b">Blue in [0, 1].</param>
    /// <param name="ch">0 red, 1 green, 2 blue.</param>
    /// <param name="f">Hue shift in [-0.5, 0.5].</param>
    /// <returns>The channel.</returns>
    internal static float HueShift(float r, float g, float b, int ch, float f)
    {
        // _rgb2hsv: the divisors are replaced by 1 where max = min, so gray pixels give no NaN.
        float maxc = XMath.Max(r, XMath.Max(g, b)), minc = XMath.Min(r, XMath.Min(g, b));
        bool eqc = maxc == minc;
        float range = maxc - minc;
        float s = range / (eqc ? 1f : maxc);
        float div = eqc ? 1f : range;
        float rc = (maxc - r) / div, gc = (maxc - g) / div, bc = (maxc - b) / div;
        float h = maxc == r ? bc - gc : maxc == g ? (rc + 2f) - bc : (gc + 4f) - rc;
        h = (h * (1f / 6f)) + 1f;
        h = h >= 1f ? h - 1f : h;
        h += f;
        h -= XMath.Floor(h);

        // _hsv2rgb.
        float h6 = h * 6f;
        float fi = XMath.Floor(h6);
        float fr = h6 - fi;
        int sector = (int)fi % 6;
        float v = maxc;
        float sxf = s * fr;
        float q = XMath.Clamp((1f - sxf) * v, 0f, 1f);
        float t = XMath.Clamp((sxf + (1f - s)) * v, 0f, 1f);
        float pp = XMath.Clamp((1f - s) * v, 0f, 1f);
        if (ch == 0)
            return sector == 0 || sector == 5 ? v : sector == 1 ? q : sector == 4 ? t : pp;
        if (ch == 1)
            return sector == 1 || sector == 2 ? v : sector == 0 ? t : sector == 3 ? q : pp;
        return sector == 3 || sector == 4 ? v : sector == 2 ? t : sector == 5 ? q : pp;
    }

    // MixUp: y[n] = x[n - 1 mod N] rest + x[n] lam, rest = 1 - lam as torchvision's scalar.
    internal readonly struct MixUpBody<TF>(TF x, TF y, int n, int sample, float lam, float rest) : IElementBody
        where TF : struct, IElements<float>
    {
        public void Run(int i)
        {
            int s = i / sample;
            int rolled = i + ((s == 0 ? n - 1 : -1) * sample);
            y[i] = (x[rolled] * rest) + (x[i] * lam);
        }
    }

    // CutMix: the rolled sample's pixels inside the box [y1, y2) x [x1, x2), the sample's own outside.
    internal readonly struct CutMixBody<TF>(TF x, TF y, int n, int sample, int h, int w, int x1, int y1, int x2, int y2) : IElementBody
        where TF : struct, IElements<float>
    {
        public void Run(int i)
        {
            int s = i / sample;
            Plane(i, h, w, out int oi, out int oj);
            bool inside = oi >= y1 && oi < y2 && oj >= x1 && oj < x2;
            y[i] = inside ? x[i + ((s == 0 ? n - 1 : -1) * sample)] : x[i];
        }
    }

    // targets[n, k] = [k = labels[n - 1 mod N]] rest + [k = labels[n]] lam.
    internal readonly struct MixTargetsBody<TF, TI>(TI labels, TF targets, int n, int classes, float lam, float rest) : IElementBody
        where TF : struct, IElements<float>
        where TI : struct, IElements<int>
    {
        public void Run(int i)
        {
            int s = i / classes;
            int k = i - (s * classes);
            float own = labels[s] == k ? 1f : 0f;
            float other = labels[s == 0 ? n - 1 : s - 1] == k ? 1f : 0f;
            targets[i] = (other * rest) + (own * lam);
        }
    }

    internal static readonly ForEachDef<FlipBody<ViewElements<float>>> FlipDef = new();
    internal static readonly ForEachDef<CropBody<ViewElements<float>>> CropDef = new();
    internal static readonly ForEachDef<RotateBody<ViewElements<float>>> RotateDef = new();
    internal static readonly ForEachDef<GrayMeanBody<ViewElements<float>>> GrayMeanDef = new();
    internal static readonly ForEachDef<JitterBody<ViewElements<float>>> JitterDef = new();
    private static readonly ForEachDef<BoxBody<ViewElements<int>>> BoxDef = new();
    private static readonly ForEachDef<ResampleBody<ViewElements<float>, ViewElements<int>>> ResampleDef = new();
    private static readonly ForEachDef<EraseBody<ViewElements<float>, ViewElements<int>>> EraseDef = new();
    private static readonly ForEachDef<NormalizeBody<ViewElements<float>>> NormalizeDef = new();
    private static readonly ForEachDef<MixUpBody<ViewElements<float>>> MixUpDef = new();
    private static readonly ForEachDef<CutMixBody<ViewElements<float>>> CutMixDef = new();
    private static readonly ForEachDef<MixTargetsBody<ViewElements<float>, ViewElements<int>>> MixTargetsDef = new();

    // ---------------------------------------------------------------- launchers

    /// <summary>Random horizontal flip of each sample with probability <paramref name="p"/>.</summary>
    /// <param name="host">Where to run.</param>
    /// <param name="x">Input (N, C, H, W).</param>
    /// <param name="y">Output (N, C, H, W), not aliasing x.</param>
    /// <param name="n">N.</param>
    /// <param name="c">C.</param>
    /// <param name="h">H.</param>
    /// <param name="w">W.</param>
    /// <param name="p">Flip probability in [0, 1] (torchvision's default 0.5).</param>
    /// <param name="seed">The seed.</param>
    /// <param name="stream">The stream.</param>
    /// <param name="counter">The counter.</param>
    public static void Flip(KernelHost host, ArrayView<float> x, ArrayView<float> y, int n, int c, int h, int w, float p, ulong seed, uint stream, uint counter) =>
        Flip(nameof(Flip), host, x, y, n, c, h, w, 0, p, seed, stream, counter);

    /// <summary>Random vertical flip of each sample with probability <paramref name="p"/> (torchvision RandomVerticalFlip(p)).</summary>
    /// <param name="host">Where to run.</param>
    /// <param name="x">Input (N, C, H, W).</param>
    /// <param name="y">Output (N, C, H, W), not aliasing x.</param>
    /// <param name="n">N.</param>
    /// <param name="c">C.</param>
    /// <param name="h">H.</param>
    /// <param name="w">W.</param>
    /// <param name="p">Flip probability in [0, 1] (torchvision's default 0.5).</param>
    /// <param name="seed">The seed.</param>
    /// <param name="stream">The stream.</param>
    /// <param name="counter">The counter.</param>
    public static void VerticalFlip(KernelHost host, ArrayView<float> x, ArrayView<float> y, int n, int c, int h, int w, float p, ulong seed, uint stream, uint counter) =>
        Flip(nameof(VerticalFlip), host, x, y, n, c, h, w, 1, p, seed, stream, counter);

    private static void Flip(string op, KernelHost host, ArrayView<float> x, ArrayView<float> y, int n, int c, int h, int w, int vertical, float p, ulong seed, uint stream, uint counter)
    {
        ArgumentNullException.ThrowIfNull(host);
        long len = Nchw(op, x, y, n, c, h, w);
        Probability(op, p, nameof(p));
        var key = new PhiloxStream(seed, stream, counter);
        if (len == 0)
            return;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, len, new FlipBody<PtrElements<float>>(new(x), new(y), c * h * w, h, w, vertical, p, key));
        else
            FlipDef.Launch(host, len, new(new(x), new(y), c * h * w, h, w, vertical, p, key));
    }

    /// <summary>Random crop of an (oh, ow) window from each sample padded with <paramref name="pad"/> zeros on every side (torchvision RandomCrop(size, padding)).</summary>
    /// <param name="host">Where to run.</param>
    /// <param name="x">Input (N, C, H, W).</param>
    /// <param name="y">Output (N, C, OH, OW), not aliasing x.</param>
    /// <param name="n">N.</param>
    /// <param name="c">C.</param>
    /// <param name="h">H.</param>
    /// <param name="w">W.</param>
    /// <param name="oh">Output height, 1 to H + 2 pad.</param>
    /// <param name="ow">Output width, 1 to W + 2 pad.</param>
    /// <param name="pad">Zero padding, zero or more.</param>
    /// <param name="seed">The seed.</param>
    /// <param name="stream">The stream.</param>
    /// <param name="counter">The counter.</param>
    public static void Crop(KernelHost host, ArrayView<float> x, ArrayView<float> y, int n, int c, int h, int w, int oh, int ow, int pad, ulong seed, uint stream, uint counter)
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.Dimension(nameof(Crop), pad, nameof(pad));
        Check.Dimension(nameof(Crop), oh, nameof(oh));
        Check.Dimension(nameof(Crop), ow, nameof(ow));
        Nchw(nameof(Crop), x, x, n, c, h, w);
        if (oh > h + (2L * pad) || ow > w + (2L * pad))
            throw new ArgumentOutOfRangeException(nameof(oh), $"{nameof(Crop)}: window (oh, ow) = ({oh}, {ow}) does not fit in the padded image ({h} + 2*{pad}, {w} + 2*{pad}).");
        long outLen = OutLength(nameof(Crop), y, n, c, oh, ow);
        var key = new PhiloxStream(seed, stream, counter);
        if (outLen == 0)
            return;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, outLen, new CropBody<PtrElements<float>>(new(x), new(y), c, h, w, oh, ow, pad, key));
        else
            CropDef.Launch(host, outLen, new(new(x), new(y), c, h, w, oh, ow, pad, key));
    }

    /// <summary>Random rotation of each sample by a uniform angle in [<paramref name="loDegrees"/>, <paramref name="hiDegrees"/>] degrees (counter-clockwise), bilinear, zero fill, about the center.</summary>
    /// <param name="host">Where to run.</param>
    /// <param name="x">Input (N, C, H, W).</param>
    /// <param name="y">Output (N, C, H, W), not aliasing x.</param>
    /// <param name="n">N.</param>
    /// <param name="c">C.</param>
    /// <param name="h">H.</param>
    /// <param name="w">W.</param>
    /// <param name="loDegrees">Smallest angle (finite, at most hiDegrees).</param>
    /// <param name="hiDegrees">Largest angle (finite).</param>
    /// <param name="seed">The seed.</param>
    /// <param name="stream">The stream.</param>
    /// <param name="counter">The counter.</param>
    public static void Rotate(KernelHost host, ArrayView<float> x, ArrayView<float> y, int n, int c, int h, int w, float loDegrees, float hiDegrees, ulong seed, uint stream, uint counter)
    {
        ArgumentNullException.ThrowIfNull(host);
        long len = Nchw(nameof(Rotate), x, y, n, c, h, w);
        Range(nameof(Rotate), loDegrees, hiDegrees, "degrees", float.NegativeInfinity);
        var key = new PhiloxStream(seed, stream, counter);
        if (len == 0)
            return;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, len, new RotateBody<PtrElements<float>>(new(x), new(y), c, h, w, loDegrees, hiDegrees, key));
        else
            RotateDef.Launch(host, len, new(new(x), new(y), c, h, w, loDegrees, hiDegrees, key));
    }

    /// <summary>Int scratch that <see cref="Resize"/>, <see cref="ResizedCrop"/> and <see cref="Erase"/> need: one box (4 ints) per sample.</summary>
    /// <param name="n">N.</param>
    /// <returns>4 N.</returns>
    public static int BoxScratchLength(int n) => 4 * n;

    /// <summary>Bilinear resize of each sample to (oh, ow) (torchvision Resize((oh, ow), BILINEAR, antialias=False)).</summary>
    /// <param name="host">Where to run.</param>
    /// <param name="x">Input (N, C, H, W).</param>
    /// <param name="y">Output (N, C, OH, OW), not aliasing x.</param>
    /// <param name="boxes">At least <see cref="BoxScratchLength"/> ints of scratch.</param>
    /// <param name="n">N.</param>
    /// <param name="c">C.</param>
    /// <param name="h">H.</param>
    /// <param name="w">W.</param>
    /// <param name="oh">Output height, 1 or more.</param>
    /// <param name="ow">Output width, 1 or more.</param>
    public static void Resize(KernelHost host, ArrayView<float> x, ArrayView<float> y, ArrayView<int> boxes, int n, int c, int h, int w, int oh, int ow) =>
        Resample(nameof(Resize), host, x, y, boxes, n, c, h, w, oh, ow, BoxSampling.Of(BoxSampling.Whole, 1f, 1f, 1f, 1f), default);

    /// <summary>
    /// Random resized crop of each sample to (oh, ow) (torchvision RandomResizedCrop((oh, ow), scale,
    /// ratio, BILINEAR, antialias=False)): a box by torchvision's sampling, then the bilinear resize.
    /// </summary>
    /// <param name="host">Where to run.</param>
    /// <param name="x">Input (N, C, H, W).</param>
    /// <param name="y">Output (N, C, OH, OW), not aliasing x.</param>
    /// <param name="boxes">At least <see cref="BoxScratchLength"/> ints of scratch; holds each sample's box (top, left, height, width) afterwards.</param>
    /// <param name="n">N.</param>
    /// <param name="c">C.</param>
    /// <param name="h">H.</param>
    /// <param name="w">W.</param>
    /// <param name="oh">Output height, 1 or more.</param>
    /// <param name="ow">Output width, 1 or more.</param>
    /// <param name="scaleLo">Smallest area fraction (torchvision's 0.08), in (0, scaleHi].</param>
    /// <param name="scaleHi">Largest area fraction (1.0).</param>
    /// <param name="ratioLo">Smallest aspect ratio width / height (3/4), in (0, ratioHi].</param>
    /// <param name="ratioHi">Largest aspect ratio (4/3).</param>
    /// <param name="seed">The seed.</param>
    /// <param name="stream">The stream.</param>
    /// <param name="counter">The counter.</param>
    public static void ResizedCrop(KernelHost host, ArrayView<float> x, ArrayView<float> y, ArrayView<int> boxes, int n, int c, int h, int w, int oh, int ow, float scaleLo, float scaleHi, float ratioLo, float ratioHi, ulong seed, uint stream, uint counter)
    {
        BoxRanges(nameof(ResizedCrop), scaleLo, scaleHi, ratioLo, ratioHi, float.PositiveInfinity);
        Resample(nameof(ResizedCrop), host, x, y, boxes, n, c, h, w, oh, ow, BoxSampling.Of(BoxSampling.ResizedCrop, scaleLo, scaleHi, ratioLo, ratioHi), new PhiloxStream(seed, stream, counter));
    }

    private static void Resample(string op, KernelHost host, ArrayView<float> x, ArrayView<float> y, ArrayView<int> boxes, int n, int c, int h, int w, int oh, int ow, BoxSampling sampling, PhiloxStream key)
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.Dimension(op, oh, nameof(oh), allowZero: false);
        Check.Dimension(op, ow, nameof(ow), allowZero: false);
        long len = Nchw(op, x, x, n, c, h, w);
        long outLen = OutLength(op, y, n, c, oh, ow);
        Check.AtLeast(op, boxes, nameof(boxes), BoxScratchLength(n), $"N = {n} samples (one box of 4 ints each)");
        if (len == 0 || outLen == 0)
            return;
        var b = boxes.SubView(0, BoxScratchLength(n));
        if (host.RunsManaged)
        {
            CpuLoops.ForEach(host, n, new BoxBody<PtrElements<int>>(new(b), h, w, sampling, key));
            CpuLoops.ForEach(host, outLen, new ResampleBody<PtrElements<float>, PtrElements<int>>(new(x), new(y), new(b), c, h, w, oh, ow));
            return;
        }

        BoxDef.Launch(host, n, new(new(b), h, w, sampling, key));
        ResampleDef.Launch(host, (int)outLen, new(new(x), new(y), new(b), c, h, w, oh, ow));
    }

    /// <summary>
    /// Random erasing of one box per sample with probability <paramref name="p"/> (torchvision
    /// RandomErasing(p, scale, ratio, value)); y may alias x.
    /// </summary>
    /// <param name="host">Where to run.</param>
    /// <param name="x">Input (N, C, H, W).</param>
    /// <param name="y">Output (N, C, H, W); may alias x.</param>
    /// <param name="boxes">At least <see cref="BoxScratchLength"/> ints of scratch; holds each sample's erased box afterwards (height 0 when none).</param>
    /// <param name="n">N.</param>
    /// <param name="c">C.</param>
    /// <param name="h">H.</param>
    /// <param name="w">W.</param>
    /// <param name="p">Probability of erasing a sample (0.5).</param>
    /// <param name="scaleLo">Smallest area fraction (0.02).</param>
    /// <param name="scaleHi">Largest area fraction (0.33), at most 1.</param>
    /// <param name="ratioLo">Smallest aspect ratio (0.3).</param>
    /// <param name="ratioHi">Largest aspect ratio (3.3).</param>
    /// <param name="value">The fill value (0).</param>
    /// <param name="seed">The seed.</param>
    /// <param name="stream">The stream.</param>
    /// <param name="counter">The counter.</param>
    public static void Erase(KernelHost host, ArrayView<float> x, ArrayView<float> y, ArrayView<int> boxes, int n, int c, int h, int w, float p, float scaleLo, float scaleHi, float ratioLo, float ratioHi, float value, ulong seed, uint stream, uint counter)
    {
        const string op = nameof(Erase);
        ArgumentNullException.ThrowIfNull(host);
        long len = Nchw(op, x, y, n, c, h, w);
        Probability(op, p, nameof(p));
        BoxRanges(op, scaleLo, scaleHi, ratioLo, ratioHi, 1f);
        if (!float.IsFinite(value))
            throw new ArgumentOutOfRangeException(nameof(value), value, $"{op}: the fill value must be finite, got {value}.");
        Check.AtLeast(op, boxes, nameof(boxes), BoxScratchLength(n), $"N = {n} samples (one box of 4 ints each)");
        var key = new PhiloxStream(seed, stream, counter);
        if (len == 0)
            return;
        var sampling = BoxSampling.Of(BoxSampling.Erasing, scaleLo, scaleHi, ratioLo, ratioHi, p);
        var b = boxes.SubView(0, BoxScratchLength(n));
        if (host.RunsManaged)
        {
            CpuLoops.ForEach(host, n, new BoxBody<PtrElements<int>>(new(b), h, w, sampling, key));
            CpuLoops.ForEach(host, len, new EraseBody<PtrElements<float>, PtrElements<int>>(new(x), new(y), new(b), c, h, w, value));
            return;
        }

        BoxDef.Launch(host, n, new(new(b), h, w, sampling, key));
        EraseDef.Launch(host, (int)len, new(new(x), new(y), new(b), c, h, w, value));
    }

    /// <summary>Per-channel normalization y = (x - mean[c]) / std[c] (torchvision Normalize(mean, std)); y may alias x.</summary>
    /// <param name="host">Where to run.</param>
    /// <param name="x">Input (N, C, H, W).</param>
    /// <param name="y">Output (N, C, H, W); may alias x.</param>
    /// <param name="stats">2 C floats on the device: the C means, then the C standard deviations (checked by the caller: finite, std positive).</param>
    /// <param name="n">N.</param>
    /// <param name="c">C.</param>
    /// <param name="h">H.</param>
    /// <param name="w">W.</param>
    public static void Normalize(KernelHost host, ArrayView<float> x, ArrayView<float> y, ArrayView<float> stats, int n, int c, int h, int w)
    {
        const string op = nameof(Normalize);
        ArgumentNullException.ThrowIfNull(host);
        long len = Nchw(op, x, y, n, c, h, w);
        Check.Length(op, stats, nameof(stats), 2L * c, $"C = {c} means then {c} standard deviations");
        if (len == 0)
            return;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, len, new NormalizeBody<PtrElements<float>>(new(x), new(y), new(stats), c, h * w));
        else
            NormalizeDef.Launch(host, (int)len, new(new(x), new(y), new(stats), c, h * w));
    }

    /// <summary>Scratch floats that <see cref="Jitter"/> needs: one gray mean per sample and a batch for the stages between.</summary>
    /// <param name="n">N.</param>
    /// <param name="c">C.</param>
    /// <param name="h">H.</param>
    /// <param name="w">W.</param>
    /// <returns>N + N C H W.</returns>
    public static long JitterScratchLength(int n, int c, int h, int w) => n + ((long)n * c * h * w);

    /// <summary>Random colour jitter per sample (torchvision ColorJitter; see the file header for the order, the clamping and each op).</summary>
    /// <param name="host">Where to run.</param>
    /// <param name="x">Input (N, C, H, W).</param>
    /// <param name="y">Output (N, C, H, W), not aliasing x.</param>
    /// <param name="scratch">At least <see cref="JitterScratchLength"/> floats.</param>
    /// <param name="n">N.</param>
    /// <param name="c">C: 1 or 3 when saturation or hue is on.</param>
    /// <param name="h">H.</param>
    /// <param name="w">W.</param>
    /// <param name="ranges">The factor ranges, clamping and shuffling.</param>
    /// <param name="seed">The seed.</param>
    /// <param name="stream">The stream.</param>
    /// <param name="counter">The counter.</param>
    public static void Jitter(KernelHost host, ArrayView<float> x, ArrayView<float> y, ArrayView<float> scratch, int n, int c, int h, int w, JitterRanges ranges, ulong seed, uint stream, uint counter)
    {
        const string op = nameof(Jitter);
        ArgumentNullException.ThrowIfNull(host);
        long len = Nchw(op, x, y, n, c, h, w);
        Range(op, ranges.BrightnessLo, ranges.BrightnessHi, "brightness", 0f);
        Range(op, ranges.ContrastLo, ranges.ContrastHi, "contrast", 0f);
        Range(op, ranges.SaturationLo, ranges.SaturationHi, "saturation", 0f);
        Range(op, ranges.HueLo, ranges.HueHi, "hue", -0.5f);
        if (ranges.HueHi > 0.5f)
            throw new ArgumentOutOfRangeException(nameof(ranges), $"{op}: the hue range [{ranges.HueLo}, {ranges.HueHi}] must lie in [-0.5, 0.5].");
        int enabled = ranges.Enabled;
        if ((enabled & 12) != 0 && c != 1 && c != 3)
            throw new ArgumentException($"{op}: saturation and hue act on RGB (C = 3) or gray (C = 1) images, got C = {c}; turn them off for this data.", nameof(c));
        Check.AtLeast(op, scratch, nameof(scratch), JitterScratchLength(n, c, h, w), $"N = {n} gray means and one batch of {len} floats");
        var key = new PhiloxStream(seed, stream, counter);
        int stages = System.Numerics.BitOperations.PopCount((uint)enabled);
        if (len == 0)
            return;
        if (stages == 0)
        {
            Elementwise.Scale(host, x, 1f, y);
            return;
        }

        var means = scratch.SubView(0, n);
        var between = scratch.SubView(n, len);
        var src = x;
        for (int stage = 0; stage < stages; stage++)
        {
            // Ping-pong so that the last stage writes y: a stage reads a whole pixel, so it cannot run in place.
            var dst = (stages - 1 - stage) % 2 == 0 ? y : between;
            if ((enabled & 2) != 0)
            {
                if (host.RunsManaged)
                    CpuLoops.ForEach(host, n, new GrayMeanBody<PtrElements<float>>(new(src), new(means), c, h * w));
                else
                    GrayMeanDef.Launch(host, n, new(new(src), new(means), c, h * w));
            }

            if (host.RunsManaged)
                CpuLoops.ForEach(host, len, new JitterBody<PtrElements<float>>(new(src), new(dst), new(means), c, h * w, stage, ranges, key));
            else
                JitterDef.Launch(host, len, new(new(src), new(dst), new(means), c, h * w, stage, ranges, key));
            src = dst;
        }
    }

    /// <summary>MixUp of a batch with itself rolled by one: y[n] = x[n - 1 mod N] (1 - lam) + x[n] lam (torchvision v2.MixUp).</summary>
    /// <param name="host">Where to run.</param>
    /// <param name="x">Input (N, C, H, W).</param>
    /// <param name="y">Output (N, C, H, W), not aliasing x.</param>
    /// <param name="n">N.</param>
    /// <param name="c">C.</param>
    /// <param name="h">H.</param>
    /// <param name="w">W.</param>
    /// <param name="lam">The weight of the sample itself, in [0, 1].</param>
    public static void MixUp(KernelHost host, ArrayView<float> x, ArrayView<float> y, int n, int c, int h, int w, double lam)
    {
        ArgumentNullException.ThrowIfNull(host);
        long len = Nchw(nameof(MixUp), x, y, n, c, h, w);
        Lambda(nameof(MixUp), lam);
        if (len == 0)
            return;
        float l = (float)lam, rest = (float)(1.0 - lam);
        if (host.RunsManaged)
            CpuLoops.ForEach(host, len, new MixUpBody<PtrElements<float>>(new(x), new(y), n, c * h * w, l, rest));
        else
            MixUpDef.Launch(host, (int)len, new(new(x), new(y), n, c * h * w, l, rest));
    }

    /// <summary>CutMix of a batch with itself rolled by one: the box [y1, y2) x [x1, x2) of every sample comes from the previous one (torchvision v2.CutMix).</summary>
    /// <param name="host">Where to run.</param>
    /// <param name="x">Input (N, C, H, W).</param>
    /// <param name="y">Output (N, C, H, W), not aliasing x.</param>
    /// <param name="n">N.</param>
    /// <param name="c">C.</param>
    /// <param name="h">H.</param>
    /// <param name="w">W.</param>
    /// <param name="x1">Left column of the box, in [0, W].</param>
    /// <param name="y1">Top row, in [0, H].</param>
    /// <param name="x2">End column (exclusive), in [x1, W].</param>
    /// <param name="y2">End row (exclusive), in [y1, H].</param>
    public static void CutMix(KernelHost host, ArrayView<float> x, ArrayView<float> y, int n, int c, int h, int w, int x1, int y1, int x2, int y2)
    {
        ArgumentNullException.ThrowIfNull(host);
        long len = Nchw(nameof(CutMix), x, y, n, c, h, w);
        if (!(x1 >= 0 && x1 <= x2 && x2 <= w && y1 >= 0 && y1 <= y2 && y2 <= h))
            throw new ArgumentOutOfRangeException(nameof(x1), $"{nameof(CutMix)}: the box (x1, y1, x2, y2) = ({x1}, {y1}, {x2}, {y2}) must satisfy 0 <= x1 <= x2 <= W = {w} and 0 <= y1 <= y2 <= H = {h}.");
        if (len == 0)
            return;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, len, new CutMixBody<PtrElements<float>>(new(x), new(y), n, c * h * w, h, w, x1, y1, x2, y2));
        else
            CutMixDef.Launch(host, (int)len, new(new(x), new(y), n, c * h * w, h, w, x1, y1, x2, y2));
    }

    /// <summary>Soft targets of a mixed batch: t[n] = onehot(labels[n - 1 mod N]) (1 - lam) + onehot(labels[n]) lam (torchvision's _mixup_label).</summary>
    /// <param name="host">Where to run.</param>
    /// <param name="labels">Class indices (N), in [0, classes) (others give a zero row part).</param>
    /// <param name="targets">Output (N, classes).</param>
    /// <param name="n">N.</param>
    /// <param name="classes">Number of classes, 1 or more.</param>
    /// <param name="lam">The weight of the sample's own label, in [0, 1].</param>
    public static void MixTargets(KernelHost host, ArrayView<int> labels, ArrayView<float> targets, int n, int classes, double lam)
    {
        const string op = nameof(MixTargets);
        ArgumentNullException.ThrowIfNull(host);
        Check.Dimension(op, n, nameof(n));
        Check.Dimension(op, classes, nameof(classes), allowZero: false);
        Lambda(op, lam);
        Check.Length(op, labels, nameof(labels), n, $"N = {n}");
        Check.Length(op, targets, nameof(targets), (long)n * classes, $"(N, classes) = ({n}, {classes})");
        Check.Fits32(op, targets, nameof(targets));
        if (n == 0)
            return;
        float l = (float)lam, rest = (float)(1.0 - lam);
        if (host.RunsManaged)
            CpuLoops.ForEach(host, (long)n * classes, new MixTargetsBody<PtrElements<float>, PtrElements<int>>(new(labels), new(targets), n, classes, l, rest));
        else
            MixTargetsDef.Launch(host, n * classes, new(new(labels), new(targets), n, classes, l, rest));
    }

    private static long Nchw(string op, ArrayView<float> x, ArrayView<float> y, int n, int c, int h, int w)
    {
        Check.Dimension(op, n, nameof(n));
        Check.Dimension(op, c, nameof(c));
        Check.Dimension(op, h, nameof(h));
        Check.Dimension(op, w, nameof(w));
        long len = (long)n * c * h * w;
        string shape = $"(N, C, H, W) = ({n}, {c}, {h}, {w})";
        Check.Length(op, x, nameof(x), len, shape);
        Check.Length(op, y, nameof(y), len, shape);
        Check.Fits32(op, x, nameof(x));
        return len;
    }

    private static long OutLength(string op, ArrayView<float> y, int n, int c, int oh, int ow)
    {
        long outLen = (long)n * c * oh * ow;
        Check.Length(op, y, nameof(y), outLen, $"(N, C, OH, OW) = ({n}, {c}, {oh}, {ow})");
        Check.Fits32(op, y, nameof(y));
        return outLen;
    }

    private static void Range(string op, float lo, float hi, string what, float min)
    {
        if (!(float.IsFinite(lo) && float.IsFinite(hi) && lo <= hi && lo >= min))
            throw new ArgumentOutOfRangeException(what, $"{op}: the {what} range [{lo}, {hi}] must be finite, ordered{(min > float.NegativeInfinity ? $" and at least {min}" : string.Empty)}.");
    }

    private static void Probability(string op, float p, string name)
    {
        if (!(p >= 0f && p <= 1f))
            throw new ArgumentOutOfRangeException(name, p, $"{op}: p is a probability and must be in [0, 1], got {p}.");
    }

    private static void Lambda(string op, double lam)
    {
        if (!(lam >= 0 && lam <= 1))
            throw new ArgumentOutOfRangeException(nameof(lam), lam, $"{op}: lam is a mixing weight and must be in [0, 1], got {lam}.");
    }

    private static void BoxRanges(string op, float scaleLo, float scaleHi, float ratioLo, float ratioHi, float maxScale)
    {
        if (!(scaleLo > 0f && scaleLo <= scaleHi && scaleHi <= maxScale && float.IsFinite(scaleHi)))
            throw new ArgumentOutOfRangeException(nameof(scaleLo), $"{op}: the scale range [{scaleLo}, {scaleHi}] must be ordered, positive{(maxScale <= 1f ? " and at most 1" : string.Empty)} (torchvision's default is [0.08, 1] for a resized crop, [0.02, 0.33] for erasing).");
        if (!(ratioLo > 0f && ratioLo <= ratioHi && float.IsFinite(ratioHi)))
            throw new ArgumentOutOfRangeException(nameof(ratioLo), $"{op}: the ratio range [{ratioLo}, {ratioHi}] must be ordered, positive and finite (torchvision's default is [3/4, 4/3] for a resized crop, [0.3, 3.3] for erasing).");
    }
}
