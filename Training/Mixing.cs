namespace IlgpuTrain.Training;

/// <summary>
/// MixUp and CutMix of a classification batch (torchvision.transforms.v2.MixUp(alpha) and
/// CutMix(alpha)): each sample is mixed with the batch rolled by one (sample n with sample
/// n - 1 mod N) and its label becomes the soft target lam onehot(y_n) + (1 - lam) onehot(y_(n-1)).
/// </summary>
/// <remarks>
/// <para>Per batch, on the host, from the <see cref="Rng"/> given to <see cref="Apply"/>:</para>
/// <para>lam ~ Beta(alpha, alpha), drawn as X / (X + Y) with X, Y ~ Gamma(alpha) (Marsaglia and
/// Tsang, 2000; Gamma(a) = Gamma(a + 1) U^(1/a) for a &lt; 1) from a counter-based Philox
/// sequence, so it is reproducible and a resumed run draws the same.</para>
/// <para>MixUp: x' = x_(n-1) (1 - lam) + x_n lam.</para>
/// <para>CutMix: a center (r_x, r_y) uniform over the pixels, half-sides int(r W) and int(r H)
/// with r = sqrt(1 - lam) / 2, the box clipped to the image, x' = x_(n-1) inside it and x_n
/// outside, and lam corrected to 1 - box area / image area.</para>
/// <para>With both alphas set, each batch uses one of the two with probability 1/2 (torchvision's
/// RandomChoice([CutMix, MixUp]), timm's switch_prob 0.5).</para>
/// <para>Label smoothing: the loss (F.CrossEntropy with class-probability targets) smooths the
/// mixed targets t' = (1 - eps) t + eps / C, as PyTorch's CrossEntropyLoss(label_smoothing) does
/// for probability targets. Smoothing is linear in t, so this equals timm's Mixup, which smooths
/// each one-hot and then mixes.</para>
/// <para>Classification only: the soft targets are one-hot rows of the Int32 labels.</para>
/// </remarks>
/// <param name="MixUpAlpha">Beta(alpha, alpha) concentration of MixUp (torchvision's default 1.0); 0 is off.</param>
/// <param name="CutMixAlpha">Beta(alpha, alpha) concentration of CutMix (1.0); 0 is off.</param>
public sealed record Mixing(float MixUpAlpha = 0, float CutMixAlpha = 0)
{
    /// <summary>No mixing.</summary>
    public static Mixing None { get; } = new();

    /// <summary>Whether both are off (then <see cref="Apply"/> returns its inputs).</summary>
    public bool IsNone => MixUpAlpha == 0 && CutMixAlpha == 0;

    /// <summary>"none", "mixup 0.2", "cutmix 1" or "mixup 0.8 or cutmix 1".</summary>
    public string Description =>
        IsNone ? "none" : string.Join(" or ", new[] { MixUpAlpha > 0 ? $"mixup {MixUpAlpha.ToString("G", System.Globalization.CultureInfo.InvariantCulture)}" : null, CutMixAlpha > 0 ? $"cutmix {CutMixAlpha.ToString("G", System.Globalization.CultureInfo.InvariantCulture)}" : null }.OfType<string>());

    /// <summary>Mixes a batch on its device and makes its soft targets.</summary>
    /// <param name="step">The step that owns the tensors.</param>
    /// <param name="x">A Float32 batch: (N, C, H, W), or any (N, ...) for mixup alone.</param>
    /// <param name="labels">Its Int32 class indices (N), in [0, classes).</param>
    /// <param name="classes">The number of classes C.</param>
    /// <param name="rng">The randomness of this batch.</param>
    /// <returns>The mixed batch and the soft targets (N, classes); <paramref name="x"/> and <paramref name="labels"/> themselves when off.</returns>
    public (Tensor X, Tensor Targets) Apply(StepScope step, Tensor x, Tensor labels, int classes, Rng rng)
    {
        ArgumentNullException.ThrowIfNull(step);
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(rng);
        Validate();
        if (IsNone)
            return (x, labels);
        if (x.DType != DType.Float32 || x.Shape.Rank < 2)
            throw new ArgumentException($"Mixing.Apply: x must be a Float32 batch (N, ...), got {x.DType} {x.Shape}.", nameof(x));
        int n = x.Shape[0];
        if (labels.DType != DType.Int32 || labels.Shape.Rank != 1 || labels.Shape[0] != n)
            throw new ArgumentException($"Mixing.Apply: mixup and cutmix turn class labels into soft targets, so they need a classification task with Int32 labels ({n}); got {labels.DType} {labels.Shape}. Turn mixing off for other tasks.", nameof(labels));
        if (classes < 1)
            throw new ArgumentOutOfRangeException(nameof(classes), classes, "Mixing.Apply: classes must be at least 1.");
        if (CutMixAlpha > 0 && x.Shape.Rank != 4)
            throw new ArgumentException($"Mixing.Apply: cutmix cuts a box out of images (N, C, H, W), but the batch is {x.Shape}; use mixup alone for flat inputs.", nameof(x));
        int c = x.Shape.Rank == 4 ? x.Shape[1] : 1;
        int h = x.Shape.Rank == 4 ? x.Shape[2] : 1;
        int w = x.Shape.Rank == 4 ? x.Shape[3] : checked((int)(x.Shape.Length / Math.Max(1, n)));
        var draw = Draw(h, w, rng);
        var host = step.Device.Kernels;
        var mixed = step.Allocate(x.Shape);
        if (draw.CutMix)
            Augment.CutMix(host, x.View<float>(), mixed.View<float>(), n, c, h, w, draw.X1, draw.Y1, draw.X2, draw.Y2);
        else
            Augment.MixUp(host, x.View<float>(), mixed.View<float>(), n, c, h, w, draw.Lambda);
        var targets = step.Allocate(new Shape(n, classes));
        Augment.MixTargets(host, labels.View<int>(), targets.View<float>(), n, classes, draw.Lambda);
        return (mixed, targets);
    }

    /// <summary>The batch's draw: which of the two, lam (for CutMix already corrected by the clipped box) and the box.</summary>
    /// <param name="h">Image height H.</param>
    /// <param name="w">Image width W.</param>
    /// <param name="rng">The randomness of this batch.</param>
    /// <returns>The draw.</returns>
    public MixingDraw Draw(int h, int w, Rng rng)
    {
        ArgumentNullException.ThrowIfNull(rng);
        Validate();
        if (IsNone)
            throw new InvalidOperationException("Mixing.Draw: both MixUpAlpha and CutMixAlpha are 0; there is nothing to draw.");
        var u = new HostUniforms(rng);
        bool cutMix = MixUpAlpha == 0 || (CutMixAlpha > 0 && u.Next() < 0.5);
        double lam = Beta(cutMix ? CutMixAlpha : MixUpAlpha, u);
        if (!cutMix)
            return new MixingDraw(false, lam, 0, 0, 0, 0);
        int rx = u.Index(w), ry = u.Index(h);
        double r = 0.5 * Math.Sqrt(1.0 - lam);
        int rw = (int)(r * w), rh = (int)(r * h);
        int x1 = Math.Max(rx - rw, 0), y1 = Math.Max(ry - rh, 0);
        int x2 = Math.Min(rx + rw, w), y2 = Math.Min(ry + rh, h);
        double adjusted = 1.0 - ((double)(x2 - x1) * (y2 - y1) / ((double)w * h));
        return new MixingDraw(true, adjusted, x1, y1, x2, y2);
    }

    /// <summary>A Beta(alpha, alpha) draw from the counter-based sequence of <paramref name="rng"/> (see remarks).</summary>
    /// <param name="alpha">The concentration, positive.</param>
    /// <param name="rng">The randomness.</param>
    /// <returns>lam in [0, 1].</returns>
    public static double Beta(double alpha, Rng rng)
    {
        ArgumentNullException.ThrowIfNull(rng);
        if (!(alpha > 0 && double.IsFinite(alpha)))
            throw new ArgumentOutOfRangeException(nameof(alpha), alpha, $"Mixing.Beta: alpha must be positive and finite, got {alpha}.");
        return Beta(alpha, new HostUniforms(rng));
    }

    /// <inheritdoc/>
    public override string ToString() => $"Mixing({Description})";

    private static double Beta(double alpha, HostUniforms u)
    {
        double a = Gamma(alpha, u), b = Gamma(alpha, u);
        // Both underflow only for a tiny alpha; torch's Beta then gives 0 or 1 alike.
        return a + b > 0 ? a / (a + b) : (u.Next() < 0.5 ? 0.0 : 1.0);
    }

    // Marsaglia and Tsang's squeeze method for Gamma(a, 1), a > 0.
    private static double Gamma(double a, HostUniforms u)
    {
        if (a < 1)
            return Gamma(a + 1, u) * Math.Pow(u.NextOpen(), 1 / a);
        double d = a - (1.0 / 3.0), c = 1 / Math.Sqrt(9 * d);
        while (true)
        {
            double z = u.Normal();
            double v = 1 + (c * z);
            if (v <= 0)
                continue;
            v = v * v * v;
            if (Math.Log(u.NextOpen()) < (0.5 * z * z) + d - (d * v) + (d * Math.Log(v)))
                return d * v;
        }
    }

    private void Validate()
    {
        if (!(MixUpAlpha >= 0 && float.IsFinite(MixUpAlpha)))
            throw new ArgumentOutOfRangeException(nameof(MixUpAlpha), MixUpAlpha, $"Mixing: the mixup alpha must be finite and zero (off) or more, got {MixUpAlpha} (torchvision's default is 1.0).");
        if (!(CutMixAlpha >= 0 && float.IsFinite(CutMixAlpha)))
            throw new ArgumentOutOfRangeException(nameof(CutMixAlpha), CutMixAlpha, $"Mixing: the cutmix alpha must be finite and zero (off) or more, got {CutMixAlpha} (torchvision's default is 1.0).");
    }

    // Uniform doubles from consecutive Philox words of the Rng's (seed, stream, counter): 53 bits from two words.
    private sealed class HostUniforms(Rng rng)
    {
        private long _next;

        public double Next()
        {
            ulong hi = Philox.BitsAt(rng.Seed, rng.Stream, rng.Counter, _next++) >> 5;
            ulong lo = Philox.BitsAt(rng.Seed, rng.Stream, rng.Counter, _next++) >> 6;
            return ((hi << 26) | lo) * (1.0 / (1UL << 53));
        }

        public double NextOpen() => 1.0 - Next();

        public int Index(int range) => Math.Min(range - 1, (int)(Next() * range));

        public double Normal() => Math.Sqrt(-2 * Math.Log(NextOpen())) * Math.Cos(2 * Math.PI * Next());
    }
}

/// <summary>One batch's mixing draw.</summary>
/// <param name="CutMix">CutMix (true) or MixUp.</param>
/// <param name="Lambda">The weight of each sample's own label: Beta(alpha, alpha) for MixUp, 1 - box area / image area for CutMix.</param>
/// <param name="X1">CutMix box left column.</param>
/// <param name="Y1">Top row.</param>
/// <param name="X2">End column (exclusive).</param>
/// <param name="Y2">End row (exclusive).</param>
public sealed record MixingDraw(bool CutMix, double Lambda, int X1, int Y1, int X2, int Y2);
