using IlgpuTrain.Training.Conformance;

namespace IlgpuTrain.Properties.Kernels;

/// <summary>
/// Kernels/Augment.cs: each kernel equals its float64 reference and runs bitwise alike on both
/// backends; flips, crops, resampling, erasing, colour jitter, normalization and mixing have their
/// identities, invariants and known values; a key fixes the result.
/// </summary>
public class AugmentProperties
{
    // Flip and crop move values: bitwise equal.
    private const double Exact = 0;

    // Rotation and jitter: shared with the conformance suite (the reasoning is there).
    private const double RotateAtol = Tolerances.Augment.RotateAtol;
    private const double JitterAtol = Tolerances.Augment.JitterAtol;
    private const double JitterRtol = Tolerances.Augment.JitterRtol;

    private sealed record Batch(int N, int C, int H, int W, float[] X, (ulong Seed, uint Stream, uint Counter) Key)
    {
        public override string ToString() => $"(N, C, H, W) = ({N}, {C}, {H}, {W}), key {Key}";
    }

    private static Gen<Batch> Batches(bool square = false) =>
        from n in Gen.Elements(0, 1, 2, 3, 5)
        from c in Gen.Elements(1, 2, 3)
        from h in Gen.Elements(1, 2, 5, 15, 16, 17)
        from w0 in Gen.Elements(1, 3, 4, 16, 17)
        let w = square ? h : w0
        from x in Gens.Floats(n * c * h * w, -2f, 2f)
        from seed in Gen.Choose(0, int.MaxValue)
        from stream in Gen.Choose(0, 100)
        from counter in Gen.Choose(0, 100000)
        select new Batch(n, c, h, w, x, ((ulong)seed * 2654435761UL, (uint)stream, (uint)counter));

    private static float[] Run(Device d, Batch b, int outLength, Action<KernelHost, ArrayView<float>, ArrayView<float>> launch)
    {
        using var x = d.Upload(b.X);
        using var y = d.Poisoned(outLength);
        launch(d.Kernels, x.View<float>(), y.View<float>());
        return y.ToHost();
    }

    private static float[] Flip(Device d, Batch b, float p, uint counter) =>
        Run(d, b, b.X.Length, (k, x, y) => Augment.Flip(k, x, y, b.N, b.C, b.H, b.W, p, b.Key.Seed, b.Key.Stream, counter));

    private static float[] Rotate(Device d, Batch b, float lo, float hi) =>
        Run(d, b, b.X.Length, (k, x, y) => Augment.Rotate(k, x, y, b.N, b.C, b.H, b.W, lo, hi, b.Key.Seed, b.Key.Stream, b.Key.Counter));

    // Brightness and contrast on normalized values: no clamping, fixed order.
    private static float[] Jitter(Device d, Batch b, float bLo, float bHi, float cLo, float cHi) =>
        Jitter(d, b, new JitterRanges(bLo, bHi, cLo, cHi, 1f, 1f, 0f, 0f, 0, 0));

    private static float[] Jitter(Device d, Batch b, JitterRanges r)
    {
        using var scratch = d.Poisoned((int)Math.Max(1, Augment.JitterScratchLength(b.N, b.C, b.H, b.W)));
        return Run(d, b, b.X.Length, (k, x, y) => Augment.Jitter(k, x, y, scratch.View<float>(), b.N, b.C, b.H, b.W, r, b.Key.Seed, b.Key.Stream, b.Key.Counter));
    }

    [Property(MaxTest = 30)]
    public Property Kernels_equal_their_references() =>
        Prop.ForAll(Batches().ToArbitrary(), Gen.Choose(0, 3).ToArbitrary(), (b, pad) =>
        {
            var (seed, stream, counter) = b.Key;
            int oh = Math.Max(1, b.H + pad - 1), ow = Math.Max(1, b.W + (2 * pad));
            var flip = new float[b.X.Length];
            AugmentReference.FlipReference(b.X, flip, b.N, b.C, b.H, b.W, 0.5f, seed, stream, counter);
            var crop = new float[b.N * b.C * oh * ow];
            AugmentReference.CropReference(b.X, crop, b.N, b.C, b.H, b.W, oh, ow, pad, seed, stream, counter);
            var rot = new float[b.X.Length];
            AugmentReference.RotateReference(b.X, rot, b.N, b.C, b.H, b.W, -30f, 45f, seed, stream, counter);
            var jit = new float[b.X.Length];
            AugmentReference.JitterReference(b.X, jit, b.N, b.C, b.H, b.W, new JitterRanges(0.6f, 1.4f, 0.5f, 1.5f, 1f, 1f, 0f, 0f, 0, 0), seed, stream, counter);
            var result = true.Label(b.ToString());
            foreach (var d in Devices.All)
            {
                string on = $" on {Devices.Describe(d)}";
                result = result
                    .And(Close.All(Flip(d, b, 0.5f, counter), flip, Exact, Exact, "flip" + on))
                    .And(Close.All(Run(d, b, crop.Length, (k, x, y) => Augment.Crop(k, x, y, b.N, b.C, b.H, b.W, oh, ow, pad, seed, stream, counter)), crop, Exact, Exact, $"crop pad {pad} to ({oh}, {ow})" + on))
                    .And(Close.All(Rotate(d, b, -30f, 45f), rot, RotateAtol, 0, "rotate" + on))
                    .And(Close.All(Jitter(d, b, 0.6f, 1.4f, 0.5f, 1.5f), jit, JitterAtol, JitterRtol, "jitter" + on));
            }

            return result;
        });

    [Property(MaxTest = 30)]
    public Property Flip_twice_with_the_same_key_is_the_identity_and_p_one_mirrors() =>
        Prop.ForAll(Batches().ToArbitrary(), b =>
        {
            var d = Devices.Cpu;
            var once = Flip(d, b, 0.5f, b.Key.Counter);
            var twice = Flip(d, b with { X = once }, 0.5f, b.Key.Counter);
            var all = Flip(d, b, 1f, b.Key.Counter);
            var none = Flip(d, b, 0f, b.Key.Counter);
            var mirror = b.X.Select((_, i) => b.X[i - (i % b.W) + (b.W - 1 - (i % b.W))]).ToArray();
            return Close.All(twice, b.X, Exact, Exact, "flip twice")
                .And(Close.All(all, mirror, Exact, Exact, "p = 1 mirrors every row"))
                .And(Close.All(none, b.X, Exact, Exact, "p = 0 is the identity"));
        });

    [Property(MaxTest = 30)]
    public Property Crop_without_padding_to_full_size_is_the_identity_and_with_padding_a_zero_filled_shift() =>
        Prop.ForAll(Batches().ToArbitrary(), Gen.Choose(1, 4).ToArbitrary(), (b, pad) =>
        {
            var d = Devices.Cpu;
            var (seed, stream, counter) = b.Key;
            var same = Run(d, b, b.X.Length, (k, x, y) => Augment.Crop(k, x, y, b.N, b.C, b.H, b.W, b.H, b.W, 0, seed, stream, counter));
            var shifted = Run(d, b, b.X.Length, (k, x, y) => Augment.Crop(k, x, y, b.N, b.C, b.H, b.W, b.H, b.W, pad, seed, stream, counter));
            int plane = b.H * b.W, sample = b.C * plane;
            bool ShiftOf(int s, int di, int dj) =>
                Enumerable.Range(0, sample).All(e =>
                {
                    int ch = e / plane, i = e % plane / b.W, j = e % b.W, si = i + di, sj = j + dj;
                    float expected = si >= 0 && si < b.H && sj >= 0 && sj < b.W ? b.X[(s * sample) + (ch * plane) + (si * b.W) + sj] : 0f;
                    return shifted[(s * sample) + e] == expected;
                });
            bool shifts = Enumerable.Range(0, b.N).All(s =>
                Enumerable.Range(-pad, (2 * pad) + 1).Any(di => Enumerable.Range(-pad, (2 * pad) + 1).Any(dj => ShiftOf(s, di, dj))));
            return Close.All(same, b.X, Exact, Exact, "pad 0, full size").And(shifts.Label($"every sample is a shift within ±{pad}"));
        });

    [Property(MaxTest = 30)]
    public Property Rotation_by_zero_is_the_identity_and_by_ninety_a_transpose_flip() =>
        Prop.ForAll(Batches(square: true).ToArbitrary(), b =>
        {
            var d = Devices.Cpu;
            int s = b.H;
            // Counter-clockwise by 90 degrees as displayed: out[i][j] = in[j][S - 1 - i] (numpy rot90).
            var rot90 = b.X.Select((_, e) =>
            {
                int plane = e / (s * s), i = e % (s * s) / s, j = e % s;
                return b.X[(plane * s * s) + (j * s) + (s - 1 - i)];
            }).ToArray();
            return Close.All(Rotate(d, b, 0f, 0f), b.X, Exact, Exact, "rotate 0")
                .And(Close.All(Rotate(d, b, 90f, 90f), rot90, RotateAtol, 0, "rotate 90"));
        });

    [Property(MaxTest = 30)]
    public Property Brightness_one_is_the_identity_and_contrast_zero_gives_the_gray_mean() =>
        Prop.ForAll(Batches().ToArbitrary(), Gen.Choose(1, 30).ToArbitrary(), (b, f10) =>
        {
            var d = Devices.Cpu;
            float f = f10 / 10f;
            int sample = b.C * b.H * b.W, hw = b.H * b.W;
            var flat = Jitter(d, b, f, f, 0f, 0f);
            bool gray = Enumerable.Range(0, b.N).All(s =>
            {
                double m = 0;
                for (int k = 0; k < hw; k++)
                {
                    m += b.C == 3
                        ? (0.2989 * b.X[(s * sample) + k]) + (0.587 * b.X[(s * sample) + hw + k]) + (0.114 * b.X[(s * sample) + (2 * hw) + k])
                        : Enumerable.Range(0, b.C).Average(ch => (double)b.X[(s * sample) + (ch * hw) + k]);
                }

                m = f * m / hw;
                return Enumerable.Range(0, sample).All(e => Math.Abs(flat[(s * sample) + e] - m) <= JitterAtol + (JitterRtol * Math.Abs(m)));
            });
            return Close.All(Jitter(d, b, 1f, 1f, 1f, 1f), b.X, Exact, Exact, "brightness 1, contrast 1")
                .And(Close.All(Jitter(d, b, f, f, 1f, 1f), b.X.Select(v => v * f).ToArray(), Exact, Exact, $"brightness {f}"))
                .And(gray.Label($"contrast 0 at brightness {f}: every value is the scaled gray mean"));
        });

    [Fact]
    public void The_same_key_gives_the_same_result_and_another_counter_another()
    {
        var d = Devices.Cpu;
        var b = new Batch(64, 1, 4, 5, Gens.Random(1, 64 * 20), (42, 7, 3));
        var next = b with { Key = (42, 7, 4) };
        var x = b.X;
        var runs = new (string Name, Func<Batch, float[]> F)[]
        {
            ("flip", v => Flip(d, v, 0.5f, v.Key.Counter)),
            ("crop", v => Run(d, v, x.Length, (k, a, y) => Augment.Crop(k, a, y, 64, 1, 4, 5, 4, 5, 2, v.Key.Seed, v.Key.Stream, v.Key.Counter))),
            ("rotate", v => Rotate(d, v, -20f, 20f)),
            ("jitter", v => Jitter(d, v, 0.5f, 1.5f, 0.5f, 1.5f)),
            ("vflip", v => VerticalFlip(d, v, 0.5f)),
            ("resized crop", v => Resample(d, v, 3, 3, random: true).Y),
            ("erase", v => Erase(d, v, 0.5f, 9f).Y),
            ("colour jitter", v => Jitter(d, v with { X = v.X.Select(Math.Abs).Select(a => a / 2f).ToArray() }, Torchvision)),
        };
        foreach (var (name, f) in runs)
        {
            Assert.True(f(b).SequenceEqual(f(b)), $"{name}: same key, same result");
            Assert.False(f(b).SequenceEqual(f(next)), $"{name}: counter + 1 changed nothing");
        }
    }

    [Fact]
    public void About_half_the_samples_flip()
    {
        // 4000 samples of width 2: Binomial(4000, 1/2) has sd ~ 32; 5 sd is 160.
        const int n = 4000;
        var b = new Batch(n, 1, 1, 2, Enumerable.Range(0, 2 * n).Select(i => (float)(i % 2)).ToArray(), (9, 1, 1));
        var y = Flip(Devices.Cpu, b, 0.5f, 1);
        int flipped = Enumerable.Range(0, n).Count(s => y[2 * s] == 1f);
        Assert.InRange(flipped, 2000 - 160, 2000 + 160);
    }

    // ---------------------------------------------------------------- vertical flip, resampling, erasing, normalize, colour, mixing

    // Resampling: float source coordinates and weights against float64 (see Tolerances).
    private const double ResampleAtol = Tolerances.Augment.ResampleAtol * 2;

    // Colour stages on [0, 1] pixels: shared with the conformance suite.
    private const double ColorAtol = Tolerances.Augment.ColorAtol;

    // One float HSV round trip of values at most 1: a few ulp.
    private const double HueAtol = 1e-6;

    private static Gen<Batch> Pixels(bool rgb = false) =>
        from b in Batches()
        from c in rgb ? Gen.Constant(3) : Gen.Elements(1, 3)
        from x in Gens.Floats(b.N * c * b.H * b.W, 0f, 1f)
        select b with { C = c, X = x };

    private static float[] VerticalFlip(Device d, Batch b, float p) =>
        Run(d, b, b.X.Length, (k, x, y) => Augment.VerticalFlip(k, x, y, b.N, b.C, b.H, b.W, p, b.Key.Seed, b.Key.Stream, b.Key.Counter));

    // The output and the boxes of a resampling launch.
    private static (float[] Y, int[] Boxes) Resample(Device d, Batch b, int oh, int ow, bool random, float scaleLo = 0.08f, float scaleHi = 1f, float ratioLo = 0.75f, float ratioHi = 4f / 3f)
    {
        using var boxes = d.Upload(new int[Math.Max(1, Augment.BoxScratchLength(b.N))]);
        var y = Run(d, b, b.N * b.C * oh * ow, (k, x, o) =>
        {
            if (random)
                Augment.ResizedCrop(k, x, o, boxes.View<int>(), b.N, b.C, b.H, b.W, oh, ow, scaleLo, scaleHi, ratioLo, ratioHi, b.Key.Seed, b.Key.Stream, b.Key.Counter);
            else
                Augment.Resize(k, x, o, boxes.View<int>(), b.N, b.C, b.H, b.W, oh, ow);
        });
        return (y, boxes.ToHost<int>());
    }

    private static (float[] Y, int[] Boxes) Erase(Device d, Batch b, float p, float value)
    {
        using var boxes = d.Upload(new int[Math.Max(1, Augment.BoxScratchLength(b.N))]);
        var y = Run(d, b, b.X.Length, (k, x, o) => Augment.Erase(k, x, o, boxes.View<int>(), b.N, b.C, b.H, b.W, p, 0.02f, 0.33f, 0.3f, 3.3f, value, b.Key.Seed, b.Key.Stream, b.Key.Counter));
        return (y, boxes.ToHost<int>());
    }

    private static float[] Normalize(Device d, Batch b, float[] stats) =>
        Run(d, b, b.X.Length, (k, x, y) =>
        {
            using var s = d.Upload(stats);
            Augment.Normalize(k, x, y, s.View<float>(), b.N, b.C, b.H, b.W);
        });

    private static readonly JitterRanges Torchvision = new(0.6f, 1.4f, 0.6f, 1.4f, 0.5f, 1.5f, -0.3f, 0.3f, 1, 1);

    [Property(MaxTest = 30)]
    public Property New_kernels_run_bitwise_alike_on_both_backends() =>
        Prop.ForAll(Pixels().ToArbitrary(), b =>
        {
            var (seed, stream, counter) = b.Key;
            int n = b.N, c = b.C, h = b.H, w = b.W, len = b.X.Length, oh = h + 2, ow = Math.Max(1, w - 1);
            int[] boxes = new int[Math.Max(1, 4 * n)];
            float[] Out(int length) => new float[length];
            float[] stats = [.. Enumerable.Range(0, c).Select(i => 0.3f + (0.1f * i)), .. Enumerable.Range(0, c).Select(i => 0.2f + (0.05f * i))];
            int[] labels = Enumerable.Range(0, n).Select(i => i % 3).ToArray();
            return KernelParity.Same("vflip", [b.X, Out(len)], (k, f) => Augment.VerticalFlip(k, f[0], f[1], n, c, h, w, 0.5f, seed, stream, counter))
                .And(KernelParity.Same("resize", [b.X, Out(n * c * oh * ow)], [boxes], (k, f, i) => Augment.Resize(k, f[0], f[1], i[0], n, c, h, w, oh, ow)))
                .And(KernelParity.Same("resized crop", [b.X, Out(n * c * oh * ow)], [boxes], (k, f, i) => Augment.ResizedCrop(k, f[0], f[1], i[0], n, c, h, w, oh, ow, 0.08f, 1f, 0.75f, 4f / 3f, seed, stream, counter)))
                .And(KernelParity.Same("erase", [b.X, Out(len)], [boxes], (k, f, i) => Augment.Erase(k, f[0], f[1], i[0], n, c, h, w, 0.7f, 0.02f, 0.33f, 0.3f, 3.3f, 0.5f, seed, stream, counter)))
                .And(KernelParity.Same("normalize", [b.X, Out(len), stats], (k, f) => Augment.Normalize(k, f[0], f[1], f[2], n, c, h, w)))
                .And(KernelParity.Same("jitter", [b.X, Out(len), Out((int)Math.Max(1, Augment.JitterScratchLength(n, c, h, w)))], (k, f) => Augment.Jitter(k, f[0], f[1], f[2], n, c, h, w, Torchvision, seed, stream, counter)))
                .And(KernelParity.Same("mixup", [b.X, Out(len)], (k, f) => Augment.MixUp(k, f[0], f[1], n, c, h, w, 0.37)))
                .And(KernelParity.Same("cutmix", [b.X, Out(len)], (k, f) => Augment.CutMix(k, f[0], f[1], n, c, h, w, 0, h / 3, w / 2, h)))
                .And(KernelParity.Same("mix targets", [Out(n * 3)], [labels], (k, f, i) => Augment.MixTargets(k, i[0], f[0], n, 3, 0.37)))
                .Label(b.ToString());
        });

    [Property(MaxTest = 30)]
    public Property Vertical_flip_twice_is_the_identity_p_one_mirrors_and_it_equals_the_reference() =>
        Prop.ForAll(Batches().ToArbitrary(), b =>
        {
            var d = Devices.Cpu;
            var once = VerticalFlip(d, b, 0.5f);
            var twice = VerticalFlip(d, b with { X = once }, 0.5f);
            int plane = b.H * b.W;
            var mirror = b.X.Select((_, e) => b.X[(e / plane * plane) + ((b.H - 1 - (e % plane / b.W)) * b.W) + (e % b.W)]).ToArray();
            var reference = new float[b.X.Length];
            AugmentReference.VerticalFlipReference(b.X, reference, b.N, b.C, b.H, b.W, 0.5f, b.Key.Seed, b.Key.Stream, b.Key.Counter);
            return Close.All(twice, b.X, Exact, Exact, "vflip twice")
                .And(Close.All(VerticalFlip(d, b, 1f), mirror, Exact, Exact, "p = 1 mirrors every column"))
                .And(Close.All(VerticalFlip(d, b, 0f), b.X, Exact, Exact, "p = 0 is the identity"))
                .And(Close.All(once, reference, Exact, Exact, "reference"))
                .Label(b.ToString());
        });

    [Property(MaxTest = 30)]
    public Property Resize_to_the_same_size_is_the_identity_and_equals_the_float64_reference() =>
        Prop.ForAll(Batches().ToArbitrary(), Gen.Choose(1, 20).ToArbitrary(), Gen.Choose(1, 20).ToArbitrary(), (b, oh, ow) =>
        {
            var result = true.Label($"{b} to ({oh}, {ow})");
            foreach (var d in Devices.All)
            {
                var (same, _) = Resample(d, b, b.H, b.W, random: false);
                var (y, boxes) = Resample(d, b, oh, ow, random: false);
                var reference = new float[y.Length];
                AugmentReference.ResampleReference(b.X, reference, AugmentReference.BoxesReference(b.N, b.H, b.W, 0, 1, 1, 1, 1, 1, 0, 0, 0), b.N, b.C, b.H, b.W, oh, ow);
                result = result.And(Close.All(same, b.X, Exact, Exact, "same size on " + Devices.Describe(d)))
                    .And(Close.All(y, reference, ResampleAtol, 0, "float64 reference on " + Devices.Describe(d)));
            }

            return result;
        });

    [Fact]
    public void Resize_known_values_of_PyTorch()
    {
        // F.interpolate(torch.arange(4.).view(1, 1, 2, 2), size=(4, 4), mode="bilinear", align_corners=False)
        // (torchvision's Resize((4, 4), antialias=False) on a tensor calls it); the values follow from
        // the half-pixel formula by hand: source coordinate (i + 0.5) / 2 - 0.5, clamped at 0.
        float[] expected =
        [
            0.00f, 0.25f, 0.75f, 1.00f,
            0.50f, 0.75f, 1.25f, 1.50f,
            1.50f, 1.75f, 2.25f, 2.50f,
            2.00f, 2.25f, 2.75f, 3.00f,
        ];
        var b = new Batch(1, 1, 2, 2, [0f, 1f, 2f, 3f], (1, 0, 0));
        foreach (var d in Devices.All)
            Assert.Equal(expected, Resample(d, b, 4, 4, random: false).Y);
        // Down to 1x1: source coordinate 0.5, the mean of the four.
        Assert.Equal([1.5f], Resample(Devices.Cpu, b, 1, 1, random: false).Y);
    }

    [Property(MaxTest = 30)]
    public Property Resized_crop_boxes_stay_in_bounds_follow_the_reference_and_resample_them() =>
        Prop.ForAll(Batches().ToArbitrary(), Gen.Choose(1, 12).ToArbitrary(), (b, side) =>
        {
            var (seed, stream, counter) = b.Key;
            var expectedBoxes = AugmentReference.BoxesReference(b.N, b.H, b.W, 1, 0.08, 1, 0.75, 4 / 3.0, 1, seed, stream, counter);
            var result = true.Label($"{b} to {side}x{side}");
            foreach (var d in Devices.All)
            {
                var (y, boxes) = Resample(d, b, side, side, random: true);
                bool inBounds = Enumerable.Range(0, b.N).All(s =>
                    boxes[4 * s] >= 0 && boxes[(4 * s) + 1] >= 0 && boxes[(4 * s) + 2] >= 1 && boxes[(4 * s) + 3] >= 1
                    && boxes[4 * s] + boxes[(4 * s) + 2] <= b.H && boxes[(4 * s) + 1] + boxes[(4 * s) + 3] <= b.W);
                var reference = new float[y.Length];
                AugmentReference.ResampleReference(b.X, reference, boxes, b.N, b.C, b.H, b.W, side, side);
                result = result.And(inBounds.Label("every box inside the image on " + Devices.Describe(d)))
                    .And(boxes.Take(4 * b.N).SequenceEqual(expectedBoxes).Label($"boxes [{string.Join(", ", boxes.Take(4 * b.N))}] vs the reference [{string.Join(", ", expectedBoxes)}]"))
                    .And(Close.All(y, reference, ResampleAtol, 0, "the crop resampled on " + Devices.Describe(d)));
            }

            return result;
        });

    [Property(MaxTest = 20)]
    public Property Resized_crop_of_the_whole_square_image_is_the_identity() =>
        Prop.ForAll(Batches(square: true).ToArbitrary(), b =>
            Close.All(Resample(Devices.Cpu, b, b.H, b.W, random: true, scaleLo: 1f, scaleHi: 1f, ratioLo: 1f, ratioHi: 1f).Y, b.X, Exact, Exact, "scale 1, ratio 1").Label(b.ToString()));

    [Fact]
    public void Resized_crop_falls_back_to_the_central_crop_of_torchvision()
    {
        // A 2x8 image with ratios [1, 1] and scale [0.9, 1]: no square of 90% of the area fits, so after
        // ten tries the central crop: W/H = 4 > max ratio 1 -> bh = 2, bw = round(2 * 1) = 2, left = (8 - 2) / 2 = 3.
        var b = new Batch(3, 1, 2, 8, Gens.Random(5, 48), (11, 2, 3));
        var (_, boxes) = Resample(Devices.Cpu, b, 2, 2, random: true, scaleLo: 0.9f, scaleHi: 1f, ratioLo: 1f, ratioHi: 1f);
        Assert.Equal([0, 3, 2, 2, 0, 3, 2, 2, 0, 3, 2, 2], boxes);
    }

    [Property(MaxTest = 30)]
    public Property Erasing_changes_only_its_box_which_stays_inside_and_p_zero_is_the_identity() =>
        Prop.ForAll(Batches().ToArbitrary(), b =>
        {
            var (seed, stream, counter) = b.Key;
            var expectedBoxes = AugmentReference.BoxesReference(b.N, b.H, b.W, 2, 0.02, 0.33, 0.3, 3.3, 0.5, seed, stream, counter);
            var (y, boxes) = Erase(Devices.Cpu, b, 0.5f, 7f);
            var reference = new float[y.Length];
            AugmentReference.EraseReference(b.X, reference, boxes, b.N, b.C, b.H, b.W, 7f);
            bool inside = Enumerable.Range(0, b.N).All(s =>
                boxes[(4 * s) + 2] == 0 || (boxes[4 * s] >= 0 && boxes[(4 * s) + 1] >= 0 && boxes[4 * s] + boxes[(4 * s) + 2] <= b.H && boxes[(4 * s) + 1] + boxes[(4 * s) + 3] <= b.W
                    && boxes[(4 * s) + 2] < b.H && boxes[(4 * s) + 3] < b.W));
            return Close.All(y, reference, Exact, Exact, "value inside the box, x elsewhere")
                .And(inside.Label("each box is inside and smaller than the image (torchvision's h < H, w < W)"))
                .And(boxes.Take(4 * b.N).SequenceEqual(expectedBoxes).Label("boxes vs the float64 reference"))
                .And(Close.All(Erase(Devices.Cpu, b, 0f, 7f).Y, b.X, Exact, Exact, "p = 0"))
                .Label(b.ToString());
        });

    [Fact]
    public void Erasing_hits_about_p_of_the_large_images()
    {
        // 2000 samples of 16x16, p 0.5: a box is found in the first tries almost always, so about
        // half are erased; Binomial(2000, 1/2) has sd ~ 22; 5 sd is 112.
        const int n = 2000;
        var b = new Batch(n, 1, 16, 16, new float[n * 256], (3, 4, 5));
        var (_, boxes) = Erase(Devices.Cpu, b, 0.5f, 1f);
        int erased = Enumerable.Range(0, n).Count(s => boxes[(4 * s) + 2] > 0);
        Assert.InRange(erased, 1000 - 112, 1000 + 2);
    }

    [Property(MaxTest = 30)]
    public Property Normalize_equals_the_reference_and_unnormalize_round_trips() =>
        Prop.ForAll(Pixels().ToArbitrary(), Gens.Floats(3, 0f, 1f).ToArbitrary(), Gens.Floats(3, 0.05f, 2f).ToArbitrary(), (b, mean, std) =>
        {
            var m = mean.Take(b.C).ToArray();
            var sd = std.Take(b.C).ToArray();
            var reference = new float[b.X.Length];
            AugmentReference.NormalizeReference(b.X, reference, m, sd, b.N, b.H, b.W);
            var result = true.Label(b.ToString());
            foreach (var d in Devices.All)
            {
                var y = Normalize(d, b, [.. m, .. sd]);
                var back = Normalize(d, b with { X = y }, [.. m.Select((v, i) => -v / sd[i]), .. sd.Select(v => 1f / v)]);
                result = result.And(Close.All(y, reference, Tolerances.Augment.NormalizeRtol, Tolerances.Augment.NormalizeRtol, "reference on " + Devices.Describe(d)))
                    .And(Close.All(back, b.X, 1e-5, 1e-5, "x std + mean recovers the pixels on " + Devices.Describe(d)));
            }

            return result;
        });

    [Property(MaxTest = 30)]
    public Property Colour_jitter_on_pixels_stays_in_the_unit_range_and_equals_the_float64_reference() =>
        Prop.ForAll(Pixels().ToArbitrary(), b =>
        {
            var (seed, stream, counter) = b.Key;
            var reference = new float[b.X.Length];
            AugmentReference.JitterReference(b.X, reference, b.N, b.C, b.H, b.W, Torchvision, seed, stream, counter);
            var result = true.Label(b.ToString());
            foreach (var d in Devices.All)
            {
                var y = Jitter(d, b, Torchvision);
                result = result.And(y.All(v => v >= 0f && v <= 1f).Label("every value in [0, 1] on " + Devices.Describe(d)))
                    .And(Close.All(y, reference, ColorAtol, 0, "float64 reference on " + Devices.Describe(d)));
            }

            return result;
        });

    [Property(MaxTest = 30)]
    public Property Saturation_zero_gives_gray_pixels_and_ops_at_their_identity_change_nothing() =>
        Prop.ForAll(Pixels(rgb: true).ToArbitrary(), b =>
        {
            var d = Devices.Cpu;
            var gray = Jitter(d, b, new JitterRanges(1f, 1f, 1f, 1f, 0f, 0f, 0f, 0f, 1, 1));
            int plane = b.H * b.W;
            bool allGray = Enumerable.Range(0, b.N * plane).All(p =>
            {
                int s = p / plane, k = p % plane, o = (s * 3 * plane) + k;
                double g = (0.2989 * b.X[o]) + (0.587 * b.X[o + plane]) + (0.114 * b.X[o + (2 * plane)]);
                return Enumerable.Range(0, 3).All(ch => Math.Abs(gray[o + (ch * plane)] - g) <= 1e-6);
            });
            var identity = Jitter(d, b, new JitterRanges(1f, 1f, 1f, 1f, 1f, 1f, 0f, 0f, 1, 1));
            return allGray.Label("saturation 0: every channel is the pixel's gray 0.2989 R + 0.587 G + 0.114 B")
                .And(Close.All(identity, b.X, Exact, Exact, "brightness, contrast, saturation 1 and hue 0"))
                .Label(b.ToString());
        });

    [Property(MaxTest = 200)]
    public Property Hue_shift_keeps_the_value_max_RGB_is_the_identity_at_zero_and_equals_the_textbook_conversion() =>
        Prop.ForAll(Gens.Floats(3, 0f, 1f).ToArbitrary(), Gens.Float(-0.5f, 0.5f).ToArbitrary(), (rgb, f) =>
        {
            float r = rgb[0], g = rgb[1], b = rgb[2];
            float[] Shift(float by) => [Augment.HueShift(r, g, b, 0, by), Augment.HueShift(r, g, b, 1, by), Augment.HueShift(r, g, b, 2, by)];
            var shifted = Shift(f);
            var (er, eg, eb) = AugmentReference.HueReference(r, g, b, f);
            return Close.Scalar(shifted.Max(), Math.Max(r, Math.Max(g, b)), HueAtol, 0, "max(R, G, B) = V is kept")
                .And(Close.All(Shift(0f), rgb, HueAtol, 0, "shift 0"))
                .And(Close.All(shifted, new[] { er, eg, eb }, HueAtol * 4, 0, "float64 colorsys-style reference"))
                .Label($"({r}, {g}, {b}) shifted by {f}");
        });

    [Theory]
    [InlineData(1f, 0.5f, 0f, 0.25f, 0f, 1f, 0f)]      // orange (30°) + 90° = green (120°)
    [InlineData(1f, 0f, 0f, 1f / 3f, 0f, 1f, 0f)]      // red + 120° = green
    [InlineData(0.2f, 0.4f, 0.8f, -0.5f, 0.8f, 0.6f, 0.2f)] // 180°: each channel becomes max + min - itself
    [InlineData(0.5f, 0.5f, 0.5f, 0.2f, 0.5f, 0.5f, 0.5f)]  // gray has no hue
    public void Hue_known_values(float r, float g, float b, float f, float er, float eg, float eb)
    {
        // By hand from the HSV definitions that torchvision's _rgb2hsv / _hsv2rgb implement.
        Assert.Equal(er, Augment.HueShift(r, g, b, 0, f), 1e-6f);
        Assert.Equal(eg, Augment.HueShift(r, g, b, 1, f), 1e-6f);
        Assert.Equal(eb, Augment.HueShift(r, g, b, 2, f), 1e-6f);
    }

    [Fact]
    public void Colour_ops_run_in_a_random_order_per_sample_and_each_order_occurs()
    {
        // With all four on, the op at stage 0 is each of the four for about a quarter of 4000 samples.
        var key = new PhiloxStream(5, 6, 7);
        var counts = new int[4];
        for (int s = 0; s < 4000; s++)
            counts[Augment.JitterOp(key, s, 0, 15, 1)]++;
        Assert.All(counts, k => Assert.InRange(k, 1000 - 150, 1000 + 150));
        for (int s = 0; s < 50; s++)
        {
            var ops = Enumerable.Range(0, 4).Select(t => Augment.JitterOp(key, s, t, 15, 1)).ToArray();
            Assert.Equal([0, 1, 2, 3], ops.Order());
            Assert.Equal([0, 1, 2, 3], Enumerable.Range(0, 4).Select(t => Augment.JitterOp(key, s, t, 15, 0)));
            Assert.Equal([1, 3], Enumerable.Range(0, 2).Select(t => Augment.JitterOp(key, s, t, 0b1010, 0)));
        }
    }

    [Property(MaxTest = 30)]
    public Property Mixup_equals_the_reference_and_of_identical_samples_is_the_identity() =>
        Prop.ForAll(Batches().ToArbitrary(), Gen.Choose(0, 100).ToArbitrary(), (b, l100) =>
        {
            double lam = l100 / 100.0;
            var d = Devices.Cpu;
            var reference = new float[b.X.Length];
            AugmentReference.MixUpReference(b.X, reference, b.N, lam);
            var y = Run(d, b, b.X.Length, (k, x, o) => Augment.MixUp(k, x, o, b.N, b.C, b.H, b.W, lam));
            int sample = b.C * b.H * b.W;
            var same = b with { X = b.X.Select((_, e) => b.X[e % Math.Max(1, sample)]).ToArray() };
            var mixedSame = Run(d, same, same.X.Length, (k, x, o) => Augment.MixUp(k, x, o, b.N, b.C, b.H, b.W, lam));
            return Close.All(y, reference, Tolerances.Augment.MixAtol * 2, 0, "float64 reference")
                .And(Close.All(mixedSame, same.X, 1e-6, 1e-6, "identical samples"))
                .Label($"{b}, lam {lam}");
        });

    [Property(MaxTest = 30)]
    public Property Soft_targets_sum_to_one_and_equal_the_reference() =>
        Prop.ForAll((from n in Gen.Choose(0, 9) from classes in Gen.Choose(1, 12) from l100 in Gen.Choose(0, 100) from seed in Gen.Choose(0, 1000) select (n, classes, l100, seed)).ToArbitrary(), g =>
        {
            var (n, classes, l100, seed) = g;
            double lam = l100 / 100.0;
            var labels = new Random(seed).GetItems(Enumerable.Range(0, classes).ToArray(), n);
            var d = Devices.Cpu;
            using var y = d.Upload(labels);
            using var t = d.Poisoned(Math.Max(1, n * classes));
            Augment.MixTargets(d.Kernels, y.View<int>(), t.View<float>().SubView(0, n * classes), n, classes, lam);
            var got = t.ToHost().Take(n * classes).ToArray();
            var sums = Enumerable.Range(0, n).Select(i => got.Skip(i * classes).Take(classes).Sum(v => (double)v)).ToArray();
            return Close.All(got, AugmentReference.MixTargetsReference(labels, classes, lam), 1e-7, 0, "reference")
                .And(Close.All(sums.Select(v => (float)v).ToArray(), Enumerable.Repeat(1.0, n).ToArray(), 1e-6, 0, "rows sum to 1"))
                .Label($"labels [{string.Join(", ", labels)}], lam {lam}");
        });

    [Property(MaxTest = 30)]
    public Property Cutmix_takes_the_box_from_the_previous_sample_and_keeps_the_rest() =>
        Prop.ForAll(Batches().ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), (b, seed) =>
        {
            var draw = new IlgpuTrain.Training.Mixing(CutMixAlpha: 1f).Draw(b.H, b.W, Rng.Create((ulong)seed));
            var y = Run(Devices.Cpu, b, b.X.Length, (k, x, o) => Augment.CutMix(k, x, o, b.N, b.C, b.H, b.W, draw.X1, draw.Y1, draw.X2, draw.Y2));
            var expected = new float[b.X.Length];
            AugmentReference.CutMixReference(b.X, expected, b.N, b.H, b.W, (draw.X1, draw.Y1, draw.X2, draw.Y2));
            bool ok = y.AsSpan().SequenceEqual(expected);
            double area = (double)(draw.X2 - draw.X1) * (draw.Y2 - draw.Y1);
            bool boxInside = draw.CutMix && 0 <= draw.X1 && draw.X1 <= draw.X2 && draw.X2 <= b.W && 0 <= draw.Y1 && draw.Y1 <= draw.Y2 && draw.Y2 <= b.H;
            return ok.Label("rolled inside, own outside")
                .And(boxInside.Label($"box {draw} inside the image"))
                .And((draw.Lambda == 1.0 - (area / (b.H * b.W))).Label($"lambda {draw.Lambda} = 1 - box area / image area"))
                .Label(b.ToString());
        });
}
