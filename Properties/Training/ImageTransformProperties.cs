using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// Training/ImageTransform.cs: Resize against pixels PIL produced, against a float64 reference
/// written from the definition of PIL's bilinear resampling, and invariants; CenterCrop's offsets
/// and padding as torchvision's; the output-size rule of Resize(size).
/// </summary>
public class ImageTransformProperties
{
    // The 7 x 5 (width x height) RGB test image of the PIL values below: pixel (x, y) is
    // ((37x + 91y) % 256, (13x^2 + 7y + 50) % 256, (29xy + 200) % 256).
    private static Image8 Pattern()
    {
        var p = new byte[5 * 7 * 3];
        for (int y = 0; y < 5; y++)
        {
            for (int x = 0; x < 7; x++)
            {
                p[(y * 7 + x) * 3] = (byte)((x * 37 + y * 91) % 256);
                p[(y * 7 + x) * 3 + 1] = (byte)((x * x * 13 + y * 7 + 50) % 256);
                p[(y * 7 + x) * 3 + 2] = (byte)((x * y * 29 + 200) % 256);
            }
        }

        return new Image8(5, 7, 3, p);
    }

    // Produced once with Pillow 9.4.0 (python3-pil): Image.new("RGB", (7, 5)) filled as Pattern(),
    // then im.resize((w, h), Image.BILINEAR), which is what torchvision's Resize does on a PIL image;
    // the bytes are list(out.getdata()) flattened.
    private static readonly (int H, int W, byte[] Pixels)[] PilResized =
    [
        (3, 4, [58, 61, 201, 116, 115, 138, 162, 75, 139, 137, 57, 158, 137, 72, 133, 88, 126, 76, 117, 86, 130, 132, 68, 130, 88, 83, 133, 146, 137, 119, 109, 97, 96, 126, 79, 115]),
        (8, 11, [0, 50, 200, 17, 56, 200, 40, 67, 200, 64, 91, 200, 87, 126, 200, 111, 167, 200, 135, 62, 200, 158, 34, 200, 182, 108, 200, 205, 57, 200, 222, 6, 200, 40, 53, 200, 57, 59, 206, 80, 70, 204, 104, 94, 141, 127, 129, 118, 151, 170, 126, 175, 65, 134, 167, 37, 142, 120, 111, 150, 133, 60, 158, 150, 9, 164, 97, 57, 200, 114, 63, 207, 135, 74, 195, 149, 98, 63, 168, 133, 17, 192, 174, 36, 216, 69, 56, 173, 41, 76, 44, 115, 95, 46, 64, 106, 63, 13, 113, 154, 62, 200, 171, 68, 142, 178, 79, 70, 90, 103, 50, 65, 138, 60, 89, 179, 91, 113, 74, 122, 114, 46, 153, 87, 120, 184, 103, 69, 119, 120, 18, 62, 130, 66, 200, 147, 72, 114, 155, 83, 17, 67, 107, 60, 41, 142, 103, 65, 183, 145, 89, 78, 137, 112, 50, 151, 136, 124, 193, 159, 73, 140, 176, 22, 90, 27, 71, 200, 44, 77, 122, 66, 88, 37, 80, 112, 91, 98, 147, 146, 122, 188, 200, 146, 83, 101, 169, 55, 68, 193, 129, 122, 216, 78, 167, 233, 27, 199, 68, 75, 200, 85, 81, 130, 108, 92, 57, 132, 116, 122, 155, 151, 136, 179, 192, 110, 112, 87, 104, 82, 59, 90, 106, 133, 64, 129, 82, 117, 146, 31, 164, 108, 78, 200, 125, 84, 136, 148, 95, 71, 172, 119, 144, 195, 154, 125, 219, 195, 36, 80, 90, 110, 10, 62, 114, 34, 136, 25, 57, 85, 75, 74, 34, 128]),
        (2, 13, [79, 57, 200, 90, 61, 187, 110, 68, 166, 108, 85, 130, 97, 106, 89, 112, 139, 97, 132, 174, 112, 152, 85, 122, 164, 18, 132, 128, 81, 148, 107, 109, 154, 127, 48, 139, 138, 13, 130, 87, 71, 200, 98, 75, 152, 118, 82, 67, 116, 99, 71, 104, 120, 112, 120, 153, 120, 140, 188, 124, 116, 99, 114, 97, 32, 106, 111, 95, 110, 127, 123, 116, 147, 62, 131, 158, 27, 140]),
    ];

    [Fact]
    public void Resize_gives_the_bytes_PIL_gives()
    {
        foreach (var (h, w, expected) in PilResized)
        {
            var got = new ImageTransform.Resize(h, w).Apply(Pattern());
            Assert.Equal((h, w, 3), (got.Height, got.Width, got.Channels));
            Assert.Equal(expected, got.Pixels);
        }

        // Resize(3) of the 7 x 5 image: shorter side 5 -> 3, longer int(3 * 7 / 5) = 4, the first PIL case.
        Assert.Equal(PilResized[0].Pixels, new ImageTransform.Resize(3).Apply(Pattern()).Pixels);
    }

    /// <summary>
    /// PIL's bilinear resampling from its definition, in float64: per axis, output pixel i has
    /// center c = (i + 0.5) × in / out and weights w(x) = max(0, 1 − |x + 0.5 − c| / s) with
    /// s = max(in / out, 1) (the triangle stretched on a downscale), normalized to sum 1; the width
    /// is resampled first, then the height, each pass rounding half up to a byte.
    /// </summary>
    private static byte[] Reference(byte[] src, int h, int w, int c, int outH, int outW)
    {
        static byte Round(double v) => (byte)Math.Clamp(Math.Floor(v + 0.5), 0, 255);
        static (int X, double W)[] Taps(int inSize, int outSize, int i)
        {
            double scale = (double)inSize / outSize, s = Math.Max(scale, 1), center = (i + 0.5) * scale;
            var taps = Enumerable.Range(0, inSize).Select(x => (X: x, W: Math.Max(0, 1 - Math.Abs(x + 0.5 - center) / s))).Where(t => t.W > 0).ToArray();
            double sum = taps.Sum(t => t.W);
            return taps.Select(t => (t.X, t.W / sum)).ToArray();
        }

        var a = src;
        if (outW != w)
        {
            var b = new byte[h * outW * c];
            for (int y = 0; y < h; y++)
            {
                for (int i = 0; i < outW; i++)
                {
                    var taps = Taps(w, outW, i);
                    for (int ch = 0; ch < c; ch++)
                        b[(y * outW + i) * c + ch] = Round(taps.Sum(t => t.W * a[(y * w + t.X) * c + ch]));
                }
            }

            (a, w) = (b, outW);
        }

        if (outH != h)
        {
            var b = new byte[outH * w * c];
            for (int i = 0; i < outH; i++)
            {
                var taps = Taps(h, outH, i);
                for (int k = 0; k < w * c; k++)
                    b[i * w * c + k] = Round(taps.Sum(t => t.W * a[t.X * w * c + k]));
            }

            a = b;
        }

        return a;
    }

    private static Gen<Image8> Images(int maxSide) =>
        from h in Gen.Choose(1, maxSide)
        from w in Gen.Choose(1, maxSide)
        from c in Gen.Elements(1, 3)
        from pixels in Gen.ArrayOf(Gen.Choose(0, 255).Select(v => (byte)v), h * w * c)
        select new Image8(h, w, c, pixels);

    // Fixed-point weights (22 fractional bits) against float64 ones move a pass's sum by far less
    // than a level, so the two round apart only where the exact value sits at a half: one level in
    // the first pass moves the second pass's exact value by at most one level, and its own
    // rounding can add one more. (Checked once against Pillow 9.4.0 on 3000 random gray images
    // and sizes up to 12 -> 16: the implementation gave Pillow's bytes in every case.)
    private const int ReferenceLevels = 2;

    [Property(MaxTest = 200)]
    public Property Resize_is_within_a_level_of_the_float64_definition_of_PIL_bilinear() =>
        Prop.ForAll(Images(12).ToArbitrary(), Gen.Choose(1, 16).ToArbitrary(), Gen.Choose(1, 16).ToArbitrary(), (image, outH, outW) =>
        {
            var got = new ImageTransform.Resize(outH, outW).Apply(image).Pixels;
            var expected = Reference(image.Pixels, image.Height, image.Width, image.Channels, outH, outW);
            int worst = got.Zip(expected, (a, b) => Math.Abs(a - b)).DefaultIfEmpty(0).Max();
            return (got.Length == expected.Length && worst <= ReferenceLevels)
                .Label($"{image.Height}x{image.Width}x{image.Channels} -> {outH}x{outW}: worst difference {worst} levels");
        });

    [Property(MaxTest = 60)]
    public Property A_constant_image_stays_constant_and_the_same_size_is_the_identity() =>
        Prop.ForAll(Images(10).ToArbitrary(), Gen.Choose(1, 20).Two().ToArbitrary(), Gen.Choose(0, 255).ToArbitrary(), (image, size, v) =>
        {
            var (outH, outW) = size;
            var flat = image with { Pixels = Enumerable.Repeat((byte)v, image.Pixels.Length).ToArray() };
            var resized = new ImageTransform.Resize(outH, outW).Apply(flat).Pixels;
            var same = new ImageTransform.Resize(image.Height, image.Width).Apply(image).Pixels;
            return resized.All(p => p == v).Label("constant stays constant")
                .And(same.SequenceEqual(image.Pixels).Label("same size is the identity"));
        });

    // Halving a pattern of period 2 (a, b, a, b, ...): away from the edges each output's taps are
    // x = 2i - 1 .. 2i + 2 with weights 1/8, 3/8, 3/8, 1/8, so it is the mean (a + b) / 2, rounded
    // half up. At the edges the clipped triangle is not symmetric, so those two pixels are left out.
    [Property(MaxTest = 60)]
    public Property Halving_a_two_pixel_pattern_averages_it_away_from_the_edges() =>
        Prop.ForAll(Gen.Choose(3, 12).ToArbitrary(), Gen.Choose(0, 255).Two().ToArbitrary(), Gen.Elements(false, true).ToArbitrary(), (half, ab, across) =>
        {
            var (a, b) = ab;
            int n = 2 * half;
            var line = Enumerable.Range(0, n).Select(i => (byte)(i % 2 == 0 ? a : b)).ToArray();
            var image = across ? new Image8(1, n, 1, line) : new Image8(n, 1, 1, line);
            var output = (across ? new ImageTransform.Resize(1, half) : new ImageTransform.Resize(half, 1)).Apply(image).Pixels;
            int mean = (a + b + 1) / 2;
            return output.Skip(1).Take(half - 2).All(p => p == mean).Label($"interior of [{string.Join(", ", output)}] is {mean}");
        });

    [Property(MaxTest = 100)]
    public Property Resize_of_the_shorter_side_keeps_the_aspect_ratio_truncated() =>
        Prop.ForAll(Gen.Choose(1, 5000).ToArbitrary(), Gen.Choose(1, 5000).ToArbitrary(), Gen.Choose(1, 600).ToArbitrary(), (h, w, size) =>
        {
            var (oh, ow) = new ImageTransform.Resize(size).OutputSize(h, w);
            // torchvision: the shorter side (the width on a tie) becomes size, the other floor(size * long / short).
            var expected = w <= h ? ((int)((long)size * h / w), size) : (size, (int)((long)size * w / h));
            return ((oh, ow) == expected).Label($"{h}x{w} with Resize({size}) gave {oh}x{ow}, expected {expected}");
        });

    [Fact]
    public void Center_crop_offsets_round_half_to_even_and_padding_is_zero_as_torchvision()
    {
        // A 1-channel 5 x 7 image whose pixel is 10y + x + 1 (no zeros, so padding shows).
        var pixels = Enumerable.Range(0, 35).Select(i => (byte)(i / 7 * 10 + i % 7 + 1)).ToArray();
        var image = new Image8(5, 7, 1, pixels);

        // (5 - 2) / 2 = 1.5 rounds to 2, (7 - 2) / 2 = 2.5 rounds to 2: rows 2-3, columns 2-3.
        Assert.Equal(new byte[] { 23, 24, 33, 34 }, new ImageTransform.CenterCrop(2).Apply(image).Pixels);
        // (5 - 4) / 2 = 0.5 rounds to 0, (7 - 4) / 2 = 1.5 rounds to 2.
        Assert.Equal(new byte[] { 3, 4, 5, 6, 13, 14, 15, 16, 23, 24, 25, 26, 33, 34, 35, 36 }, new ImageTransform.CenterCrop(4, 4).Apply(image).Pixels);
        // Wider than the image: pad (9 - 7) // 2 = 1 column left and 1 right; height 3 of 5 starts at round(1) = 1.
        Assert.Equal(
            new byte[] { 0, 11, 12, 13, 14, 15, 16, 17, 0, 0, 21, 22, 23, 24, 25, 26, 27, 0, 0, 31, 32, 33, 34, 35, 36, 37, 0 },
            new ImageTransform.CenterCrop(3, 9).Apply(image).Pixels);
        // Taller by an odd amount: (8 - 5) // 2 = 1 row above, (8 - 5 + 1) // 2 = 2 below; width 1 of 7 at round(3) = 3.
        Assert.Equal(new byte[] { 0, 4, 14, 24, 34, 44, 0, 0 }, new ImageTransform.CenterCrop(8, 1).Apply(image).Pixels);
        Assert.Same(image, new ImageTransform.CenterCrop(5, 7).Apply(image));
    }

    [Fact]
    public void Sizes_below_one_pixel_are_refused_naming_the_argument()
    {
        Assert.Contains("size must be at least 1", Assert.Throws<ArgumentOutOfRangeException>(() => new ImageTransform.Resize(0)).Message);
        Assert.Contains("width must be at least 1", Assert.Throws<ArgumentOutOfRangeException>(() => new ImageTransform.Resize(3, -1)).Message);
        Assert.Contains("height must be at least 1", Assert.Throws<ArgumentOutOfRangeException>(() => new ImageTransform.CenterCrop(0, 3)).Message);
    }
}
