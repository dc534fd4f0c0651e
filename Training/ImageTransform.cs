namespace IlgpuTrain.Training;

/// <summary>
/// A decode-time transform of an <see cref="ImageFolderDataset"/>'s 8-bit images, applied in order
/// before the pixels become floats in [0, 1]: <see cref="Resize"/> and <see cref="CenterCrop"/>,
/// torchvision's transforms of the same names on PIL images. Normalization and random
/// augmentation run on the device, on whole batches (<see cref="Augmentation"/>).
/// </summary>
/// <example>
/// <code>
/// // torchvision: Compose([Resize(36), CenterCrop(32), ToTensor()])
/// var options = new ImageFolderOptions { Transforms = [new ImageTransform.Resize(36), new ImageTransform.CenterCrop(32)] };
/// </code>
/// </example>
public abstract record ImageTransform
{
    // Only the nested transforms derive from it.
    private protected ImageTransform()
    {
    }

    /// <summary>The (height, width) an image of (<paramref name="height"/>, <paramref name="width"/>) has after this transform.</summary>
    /// <param name="height">Input height (at least 1).</param>
    /// <param name="width">Input width (at least 1).</param>
    /// <returns>The output size.</returns>
    public abstract (int Height, int Width) OutputSize(int height, int width);

    /// <summary>The output size whatever the input's, or null when it depends on the input.</summary>
    public abstract (int Height, int Width)? FixedSize { get; }

    /// <summary>Applies the transform.</summary>
    /// <param name="image">The image.</param>
    /// <returns>The transformed image (the same object when nothing changes).</returns>
    internal abstract Image8 Apply(Image8 image);

    /// <summary>
    /// torchvision's <c>Resize(size, interpolation=BILINEAR, antialias=True)</c> on a PIL image:
    /// PIL's <c>Image.resize((w, h), Image.BILINEAR)</c>.
    /// </summary>
    /// <remarks>
    /// <para>Size: <c>Resize(size)</c> scales the shorter side to size and the longer side to
    /// int(size × long / short) (truncated, as torchvision's _compute_resized_output_size);
    /// <c>Resize(height, width)</c> gives exactly that size. An image already of the output size
    /// is returned unchanged (as torchvision does before calling PIL).</para>
    /// <para>Resampling, per axis, is PIL's (Resample.c, precompute_coeffs): for output pixel i,
    ///   scale = in / out, filterscale = max(scale, 1), support = 1 × filterscale,
    ///   center = (i + 0.5) × scale,
    ///   taps x in [(int)(center − support + 0.5), (int)(center + support + 0.5)) clipped to the image,
    ///   w(x) = max(0, 1 − |(x − center + 0.5) / filterscale|), normalized to sum 1.
    /// On a downscale the triangle is stretched by the factor (an antialiasing filter); on an
    /// upscale it is plain bilinear interpolation with edge clamping. The weights are rounded to
    /// fixed point with 22 fractional bits, the horizontal pass runs first and both passes round
    /// to 8 bits (half up) and clip to [0, 255], as PIL does, so PNG images resize bit for bit as
    /// torchvision's PIL path does.</para>
    /// </remarks>
    public sealed record Resize : ImageTransform
    {
        /// <summary>Resizes the shorter side to <paramref name="size"/>, keeping the aspect ratio.</summary>
        /// <param name="size">The shorter side's length after the resize (at least 1).</param>
        public Resize(int size)
        {
            Check(size, nameof(size));
            Size = size;
        }

        /// <summary>Resizes to exactly <paramref name="height"/> × <paramref name="width"/>.</summary>
        /// <param name="height">Output height (at least 1).</param>
        /// <param name="width">Output width (at least 1).</param>
        public Resize(int height, int width)
        {
            Check(height, nameof(height));
            Check(width, nameof(width));
            Height = height;
            Width = width;
        }

        /// <summary>The shorter side's length after the resize, or null for a fixed (<see cref="Height"/>, <see cref="Width"/>).</summary>
        public int? Size { get; }

        /// <summary>The output height of a fixed-size resize (0 when <see cref="Size"/> is set).</summary>
        public int Height { get; }

        /// <summary>The output width of a fixed-size resize (0 when <see cref="Size"/> is set).</summary>
        public int Width { get; }

        /// <inheritdoc/>
        public override (int Height, int Width)? FixedSize => Size is null ? (Height, Width) : null;

        /// <inheritdoc/>
        public override (int Height, int Width) OutputSize(int height, int width)
        {
            CheckInput(height, width);
            if (Size is not { } size)
                return (Height, Width);
            bool portrait = width <= height;
            int shorter = portrait ? width : height, longer = portrait ? height : width;
            // Python's int(size * long / short): the exact product, one correctly rounded division, truncation.
            int newLonger = (int)((double)((long)size * longer) / shorter);
            return portrait ? (newLonger, size) : (size, newLonger);
        }

        /// <inheritdoc/>
        internal override Image8 Apply(Image8 image)
        {
            var (h, w) = OutputSize(image.Height, image.Width);
            return h == image.Height && w == image.Width ? image : PilResample.Bilinear(image, h, w);
        }

        private static void Check(int value, string name)
        {
            if (value < 1)
                throw new ArgumentOutOfRangeException(name, value, $"ImageTransform.Resize: {name} must be at least 1 pixel, got {value}.");
        }
    }

    /// <summary>
    /// torchvision's <c>CenterCrop((height, width))</c> on a PIL image: the crop starts at
    /// top = round((H − height) / 2), left = round((W − width) / 2) (Python's round, half to even);
    /// an image smaller than the crop is first padded with zeros, (height − H) // 2 above and
    /// (height − H + 1) // 2 below (the same across).
    /// </summary>
    public sealed record CenterCrop : ImageTransform
    {
        /// <summary>A square crop of <paramref name="size"/> × <paramref name="size"/>.</summary>
        /// <param name="size">The side (at least 1).</param>
        public CenterCrop(int size)
            : this(size, size)
        {
        }

        /// <summary>A crop of <paramref name="height"/> × <paramref name="width"/>.</summary>
        /// <param name="height">Crop height (at least 1).</param>
        /// <param name="width">Crop width (at least 1).</param>
        public CenterCrop(int height, int width)
        {
            if (height < 1)
                throw new ArgumentOutOfRangeException(nameof(height), height, $"ImageTransform.CenterCrop: height must be at least 1 pixel, got {height}.");
            if (width < 1)
                throw new ArgumentOutOfRangeException(nameof(width), width, $"ImageTransform.CenterCrop: width must be at least 1 pixel, got {width}.");
            Height = height;
            Width = width;
        }

        /// <summary>Crop height.</summary>
        public int Height { get; }

        /// <summary>Crop width.</summary>
        public int Width { get; }

        /// <inheritdoc/>
        public override (int Height, int Width)? FixedSize => (Height, Width);

        /// <inheritdoc/>
        public override (int Height, int Width) OutputSize(int height, int width)
        {
            CheckInput(height, width);
            return (Height, Width);
        }

        /// <inheritdoc/>
        internal override Image8 Apply(Image8 image)
        {
            if (image.Height == Height && image.Width == Width)
                return image;
            int padTop = Height > image.Height ? (Height - image.Height) / 2 : 0;
            int padLeft = Width > image.Width ? (Width - image.Width) / 2 : 0;
            int padBottom = Height > image.Height ? (Height - image.Height + 1) / 2 : 0;
            int padRight = Width > image.Width ? (Width - image.Width + 1) / 2 : 0;
            int h = image.Height + padTop + padBottom, w = image.Width + padLeft + padRight;
            // In the padded image's coordinates; the padding is where the source has no pixel (zeros).
            int top = (int)Math.Round((h - Height) / 2.0, MidpointRounding.ToEven) - padTop;
            int left = (int)Math.Round((w - Width) / 2.0, MidpointRounding.ToEven) - padLeft;
            int c = image.Channels;
            var output = new byte[checked(Height * Width * c)];
            for (int y = 0; y < Height; y++)
            {
                int sy = y + top;
                if ((uint)sy >= (uint)image.Height)
                    continue;
                for (int x = 0; x < Width; x++)
                {
                    int sx = x + left;
                    if ((uint)sx < (uint)image.Width)
                        image.Pixels.AsSpan((sy * image.Width + sx) * c, c).CopyTo(output.AsSpan((y * Width + x) * c, c));
                }
            }

            return new Image8(Height, Width, c, output);
        }
    }

    private static void CheckInput(int height, int width)
    {
        if (height < 1 || width < 1)
            throw new ArgumentOutOfRangeException(nameof(height), $"ImageTransform: an image of {height} x {width} pixels has no pixels.");
    }
}

/// <summary>An 8-bit image, rows of interleaved channels (H, W, C), as decoders give it.</summary>
/// <param name="Height">Rows.</param>
/// <param name="Width">Columns.</param>
/// <param name="Channels">Channels per pixel (1 for L, 3 for RGB).</param>
/// <param name="Pixels">Height × Width × Channels bytes.</param>
internal sealed record Image8(int Height, int Width, int Channels, byte[] Pixels);

/// <summary>
/// PIL's separable resampling (Pillow's libImaging/Resample.c) with the bilinear (triangle)
/// filter of support 1, on 8-bit images: coefficients in float64, normalized, rounded to fixed
/// point; horizontal pass then vertical pass, each rounding half up and clipping to 8 bits.
/// </summary>
internal static class PilResample
{
    // Pillow's PRECISION_BITS: 32 bits less 8 for the pixel and 2 for the sum's headroom.
    private const int PrecisionBits = 32 - 8 - 2;

    /// <summary>Resizes <paramref name="image"/> to <paramref name="height"/> × <paramref name="width"/> (Image.resize with Image.BILINEAR and the whole image as the box).</summary>
    public static Image8 Bilinear(Image8 image, int height, int width)
    {
        var current = image;
        if (width != image.Width)
        {
            var (bounds, weights, k) = Coefficients(image.Width, width);
            current = Horizontal(current, width, bounds, weights, k);
        }

        if (height != image.Height)
        {
            var (bounds, weights, k) = Coefficients(image.Height, height);
            current = Vertical(current, height, bounds, weights, k);
        }

        return ReferenceEquals(current, image) ? image with { Pixels = (byte[])image.Pixels.Clone() } : current;
    }

    // precompute_coeffs then normalize_coeffs_8bpc: for each output index its first tap and tap
    // count, and k fixed-point weights.
    private static (int[] Bounds, int[] Weights, int K) Coefficients(int inSize, int outSize)
    {
        double scale = (double)inSize / outSize;
        double filterscale = Math.Max(scale, 1.0);
        double support = 1.0 * filterscale;
        int k = (int)Math.Ceiling(support) * 2 + 1;
        var bounds = new int[outSize * 2];
        var weights = new int[outSize * k];
        var w = new double[k];
        for (int o = 0; o < outSize; o++)
        {
            double center = (o + 0.5) * scale;
            double ss = 1.0 / filterscale;
            int xmin = Math.Max((int)(center - support + 0.5), 0);
            int xmax = Math.Min((int)(center + support + 0.5), inSize) - xmin;
            double sum = 0;
            for (int x = 0; x < xmax; x++)
            {
                double t = Math.Abs((x + xmin - center + 0.5) * ss);
                w[x] = t < 1.0 ? 1.0 - t : 0.0;
                sum += w[x];
            }

            for (int x = 0; x < xmax; x++)
            {
                double v = sum != 0.0 ? w[x] / sum : w[x];
                weights[o * k + x] = v < 0 ? (int)(-0.5 + v * (1 << PrecisionBits)) : (int)(0.5 + v * (1 << PrecisionBits));
            }

            bounds[2 * o] = xmin;
            bounds[2 * o + 1] = xmax;
        }

        return (bounds, weights, k);
    }

    private static Image8 Horizontal(Image8 image, int width, int[] bounds, int[] weights, int k)
    {
        int c = image.Channels;
        var src = image.Pixels;
        var output = new byte[checked(image.Height * width * c)];
        for (int y = 0; y < image.Height; y++)
        {
            int row = y * image.Width * c;
            for (int o = 0; o < width; o++)
            {
                int xmin = bounds[2 * o], n = bounds[2 * o + 1];
                for (int ch = 0; ch < c; ch++)
                {
                    int sum = 1 << (PrecisionBits - 1);
                    for (int x = 0; x < n; x++)
                        sum += src[row + (xmin + x) * c + ch] * weights[o * k + x];
                    output[(y * width + o) * c + ch] = Clip8(sum);
                }
            }
        }

        return new Image8(image.Height, width, c, output);
    }

    private static Image8 Vertical(Image8 image, int height, int[] bounds, int[] weights, int k)
    {
        int c = image.Channels, stride = image.Width * c;
        var src = image.Pixels;
        var output = new byte[checked(height * stride)];
        for (int o = 0; o < height; o++)
        {
            int ymin = bounds[2 * o], n = bounds[2 * o + 1];
            for (int i = 0; i < stride; i++)
            {
                int sum = 1 << (PrecisionBits - 1);
                for (int y = 0; y < n; y++)
                    sum += src[(ymin + y) * stride + i] * weights[o * k + y];
                output[o * stride + i] = Clip8(sum);
            }
        }

        return new Image8(height, image.Width, c, output);
    }

    // Pillow's clip8: the arithmetic shift floors, then the value is clipped to [0, 255].
    private static byte Clip8(int sum) => (byte)Math.Clamp(sum >> PrecisionBits, 0, 255);
}
