using ILGPU.Algorithms;
using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// On-device data augmentation over NCHW float batches, x (N, C, H, W) -> y. Out of place: y must
// not alias x (flip, crop and rotation read other positions).
//
// Randomness: sample n draws the four Philox words w0..w3 of block n of (seed, stream, counter),
// i.e. words 4n..4n+3 of Philox.Bits(seed, stream, counter); u(w) = (w >> 8) * 2^-24 in [0, 1).
// So a sample's transform depends only on (seed, stream, counter, n): the same on every backend
// and launch layout. Use a different stream per transform.
//
//   Flip    (torchvision RandomHorizontalFlip(p)): flip iff u(w0) < p;  y[n,c,i,j] = x[n,c,i,W-1-j].
//   Crop    (RandomCrop(size, padding), zero fill): pad x by P on each side, take the OH x OW window
//           at top = floor(w0 * (H+2P-OH+1) / 2^32), left = floor(w1 * (W+2P-OW+1) / 2^32);
//           y[n,c,i,j] = x[n,c,i+top-P,j+left-P], 0 outside x. (Multiply-shift bias <= range / 2^32.)
//   Rotate  (RandomRotation(degrees) with interpolation BILINEAR, fill 0, expand False; torchvision's
//           default interpolation is NEAREST): angle a = lo + u(w0) (hi - lo) degrees, counter-
//           clockwise as displayed, about the center (cx, cy) = ((W-1)/2, (H-1)/2). Output pixel
//           (i, j), with (dx, dy) = (j - cx, i - cy), samples x at
//             sx = cx + dx cos a - dy sin a,   sy = cy + dx sin a + dy cos a
//           bilinearly, each of the four neighbours outside the image counting as 0
//           (grid_sample, padding zeros, align_corners False, in pixel units).
//   Jitter  (ColorJitter brightness then contrast, in that fixed order; torchvision shuffles the
//           order per call): fb = bLo + u(w0)(bHi - bLo), fc = cLo + u(w1)(cHi - cLo),
//             m = fb * mean of the image's gray (0.2989 R + 0.587 G + 0.114 B for C = 3, the mean
//                 over all channels otherwise),
//             y = x fb                       when fc = 1 (exactly: brightness 1 is the identity)
//             y = (x fb - m) fc + m          otherwise.
//           No clamping: the values are whatever the caller gives (normalized, usually), so
//           brightness scales the distance from 0 of the normalized value, not of the pixel; see
//           Training/Augmentation.cs.
//
// Bytes per element: flip, crop, jitter read 4 B and write 4 B; rotation reads up to 16 B (four
// neighbours) and writes 4 B; the gray mean reads each element once more. One Philox block
// (10 rounds) per output element: cheap next to the model. No backward: inputs are data.

/// <summary>On-device augmentation of NCHW batches: element bodies and checked launchers.</summary>
internal static class Augment
{
    /// <summary>Luma weights of ITU-R 601-2, as torchvision's rgb_to_grayscale.</summary>
    public const float GrayR = 0.2989f;

    /// <summary>Green weight.</summary>
    public const float GrayG = 0.587f;

    /// <summary>Blue weight.</summary>
    public const float GrayB = 0.114f;

    // ---------------------------------------------------------------- element bodies
    // One output element per index (one sample per index for GrayMeanBody), run by
    // Elementwise.ForEachKernel over views and by CpuLoops.ForEach over host pointers. Sample s
    // reads block s of the key's stream.

    // floor(word * range / 2^32): an index in [0, range).
    private static int Bounded(uint word, int range) => (int)(((ulong)word * (ulong)(uint)range) >> 32);

    // Horizontal flip of sample i / sample (C H W) iff u(w0) < p; w is W.
    internal readonly struct FlipBody<TF>(TF x, TF y, int sample, int w, float p, PhiloxStream key) : IElementBody
        where TF : struct, IElements<float>
    {
        public void Run(int i)
        {
            int j = i % w;
            bool flip = Philox.ToUniform(key.Block(i / sample).X0) < p;
            y[i] = x[flip ? i - j + (w - 1 - j) : i];
        }
    }

    // Zero-padded random crop: output (N, C, OH, OW) from input (N, C, H, W) padded by pad.
    internal readonly struct CropBody<TF>(TF x, TF y, int c, int h, int w, int oh, int ow, int pad, PhiloxStream key) : IElementBody
        where TF : struct, IElements<float>
    {
        public void Run(int i)
        {
            int outPlane = oh * ow;
            int plane = i / outPlane;
            int r = i - (plane * outPlane);
            int oi = r / ow, oj = r - (oi * ow);
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
            int plane = i / planeSize;
            int r = i - (plane * planeSize);
            int oi = r / w, oj = r - (oi * w);
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

    // Brightness then contrast of sample i / sample (C H W), around its gray mean means[s].
    internal readonly struct JitterBody<TF>(TF x, TF y, TF means, int sample, float brightnessLo, float brightnessHi, float contrastLo, float contrastHi, PhiloxStream key) : IElementBody
        where TF : struct, IElements<float>
    {
        public void Run(int i)
        {
            int s = i / sample;
            var words = key.Block(s);
            float fb = brightnessLo + (Philox.ToUniform(words.X0) * (brightnessHi - brightnessLo));
            float fc = contrastLo + (Philox.ToUniform(words.X1) * (contrastHi - contrastLo));
            float v = x[i] * fb;
            if (fc != 1f)
            {
                float m = means[s] * fb;
                v = ((v - m) * fc) + m;
            }

            y[i] = v;
        }
    }

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, int, FlipBody<ViewElements<float>>>> FlipDef =
        KernelDef.Of<int, FlipBody<ViewElements<float>>>(Elementwise.ForEachKernel);

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, int, CropBody<ViewElements<float>>>> CropDef =
        KernelDef.Of<int, CropBody<ViewElements<float>>>(Elementwise.ForEachKernel);

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, int, RotateBody<ViewElements<float>>>> RotateDef =
        KernelDef.Of<int, RotateBody<ViewElements<float>>>(Elementwise.ForEachKernel);

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, int, GrayMeanBody<ViewElements<float>>>> GrayMeanDef =
        KernelDef.Of<int, GrayMeanBody<ViewElements<float>>>(Elementwise.ForEachKernel);

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, int, JitterBody<ViewElements<float>>>> JitterDef =
        KernelDef.Of<int, JitterBody<ViewElements<float>>>(Elementwise.ForEachKernel);

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
    public static void Flip(KernelHost host, ArrayView<float> x, ArrayView<float> y, int n, int c, int h, int w, float p, ulong seed, uint stream, uint counter)
    {
        ArgumentNullException.ThrowIfNull(host);
        long len = Nchw(nameof(Flip), x, y, n, c, h, w);
        if (!(p >= 0f && p <= 1f))
            throw new ArgumentOutOfRangeException(nameof(p), p, $"{nameof(Flip)}: p is a probability and must be in [0, 1], got {p}.");
        var key = new PhiloxStream(seed, stream, counter);
        if (len == 0)
            return;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, len, new FlipBody<PtrElements<float>>(new(x), new(y), c * h * w, w, p, key));
        else
            Elementwise.ForEach(host, FlipDef, len, new(new(x), new(y), c * h * w, w, p, key));
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
        long outLen = (long)n * c * oh * ow;
        Check.Length(nameof(Crop), y, nameof(y), outLen, $"(N, C, OH, OW) = ({n}, {c}, {oh}, {ow})");
        Check.Fits32(nameof(Crop), y, nameof(y));
        var key = new PhiloxStream(seed, stream, counter);
        if (outLen == 0)
            return;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, outLen, new CropBody<PtrElements<float>>(new(x), new(y), c, h, w, oh, ow, pad, key));
        else
            Elementwise.ForEach(host, CropDef, outLen, new(new(x), new(y), c, h, w, oh, ow, pad, key));
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
            Elementwise.ForEach(host, RotateDef, len, new(new(x), new(y), c, h, w, loDegrees, hiDegrees, key));
    }

    /// <summary>Scratch floats that <see cref="Jitter"/> needs: one gray mean per sample.</summary>
    /// <param name="n">N.</param>
    /// <returns>N.</returns>
    public static int JitterScratchLength(int n) => n;

    /// <summary>Random brightness then contrast per sample (ColorJitter semantics without clamping; see the file header).</summary>
    /// <param name="host">Where to run.</param>
    /// <param name="x">Input (N, C, H, W).</param>
    /// <param name="y">Output (N, C, H, W); may alias x.</param>
    /// <param name="scratch">At least <see cref="JitterScratchLength"/> floats.</param>
    /// <param name="n">N.</param>
    /// <param name="c">C.</param>
    /// <param name="h">H.</param>
    /// <param name="w">W.</param>
    /// <param name="brightnessLo">Smallest brightness factor (0 or more).</param>
    /// <param name="brightnessHi">Largest brightness factor.</param>
    /// <param name="contrastLo">Smallest contrast factor (0 or more).</param>
    /// <param name="contrastHi">Largest contrast factor.</param>
    /// <param name="seed">The seed.</param>
    /// <param name="stream">The stream.</param>
    /// <param name="counter">The counter.</param>
    public static void Jitter(KernelHost host, ArrayView<float> x, ArrayView<float> y, ArrayView<float> scratch, int n, int c, int h, int w, float brightnessLo, float brightnessHi, float contrastLo, float contrastHi, ulong seed, uint stream, uint counter)
    {
        ArgumentNullException.ThrowIfNull(host);
        long len = Nchw(nameof(Jitter), x, y, n, c, h, w);
        Range(nameof(Jitter), brightnessLo, brightnessHi, "brightness", 0f);
        Range(nameof(Jitter), contrastLo, contrastHi, "contrast", 0f);
        Check.AtLeast(nameof(Jitter), scratch, nameof(scratch), JitterScratchLength(n), $"N = {n} samples (one gray mean each)");
        var key = new PhiloxStream(seed, stream, counter);
        if (len == 0)
            return;
        var means = scratch.SubView(0, n);
        if (host.RunsManaged)
        {
            CpuLoops.ForEach(host, n, new GrayMeanBody<PtrElements<float>>(new(x), new(means), c, h * w));
            CpuLoops.ForEach(host, len, new JitterBody<PtrElements<float>>(new(x), new(y), new(means), c * h * w, brightnessLo, brightnessHi, contrastLo, contrastHi, key));
            return;
        }

        Elementwise.ForEach(host, GrayMeanDef, n, new(new(x), new(means), c, h * w));
        Elementwise.ForEach(host, JitterDef, len, new(new(x), new(y), new(means), c * h * w, brightnessLo, brightnessHi, contrastLo, contrastHi, key));
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

    private static void Range(string op, float lo, float hi, string what, float min)
    {
        if (!(float.IsFinite(lo) && float.IsFinite(hi) && lo <= hi && lo >= min))
            throw new ArgumentOutOfRangeException(what, $"{op}: the {what} range [{lo}, {hi}] must be finite, ordered{(min > float.NegativeInfinity ? $" and at least {min}" : string.Empty)}.");
    }
}
