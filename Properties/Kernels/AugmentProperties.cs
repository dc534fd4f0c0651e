using IlgpuTrain.Training.Conformance;

namespace IlgpuTrain.Properties.Kernels;

/// <summary>Kernels/Augment.cs: each kernel equals its reference; flip, crop, rotation and jitter have their identities and known values; a key fixes the result.</summary>
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

    private static float[] Jitter(Device d, Batch b, float bLo, float bHi, float cLo, float cHi)
    {
        using var scratch = d.Poisoned(Math.Max(1, Augment.JitterScratchLength(b.N)));
        return Run(d, b, b.X.Length, (k, x, y) => Augment.Jitter(k, x, y, scratch.View<float>(), b.N, b.C, b.H, b.W, bLo, bHi, cLo, cHi, b.Key.Seed, b.Key.Stream, b.Key.Counter));
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
            AugmentReference.JitterReference(b.X, jit, b.N, b.C, b.H, b.W, 0.6f, 1.4f, 0.5f, 1.5f, seed, stream, counter);
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
}
