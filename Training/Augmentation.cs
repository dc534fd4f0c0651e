using System.Globalization;

namespace IlgpuTrain.Training;

/// <summary>
/// On-device augmentation of a training batch x (N, C, H, W), as torchvision transforms applied per
/// sample: random horizontal flip (p 0.5), random crop with zero padding back to (H, W), random
/// rotation, brightness and contrast jitter (Kernels/Augment.cs has the exact formulas).
/// </summary>
/// <remarks>
/// <para>Order: flip, crop, rotation, jitter. Each transform draws from its own child of the
/// <see cref="Rng"/> given to <see cref="Apply"/> (rng.Fold(1) flip, Fold(2) crop, Fold(3)
/// rotation, Fold(4) jitter), so a batch's augmentation is a pure function of that Rng and the
/// sample index: pass Rng.Create(seed).Fold(purpose).At(step) and a resumed run repeats it.</para>
/// <para>Jitter acts on the values it is given, normally already normalized, without clamping:
/// brightness scales each value (x f) and contrast scales the distance from the image's mean
/// ((x - m) f + m). On normalized values contrast is exactly torchvision's contrast (an affine map
/// commutes with it); brightness scales the distance from the data set mean rather than from
/// black, and nothing is clipped to the pixel range. That is a deliberate simplification.</para>
/// <para>torchvision equivalents: RandomHorizontalFlip(), RandomCrop((H, W), padding=CropPadding),
/// RandomRotation(RotationDegrees, interpolation=BILINEAR), ColorJitter(brightness=Brightness,
/// contrast=Contrast).</para>
/// </remarks>
/// <param name="HorizontalFlip">Flip each sample left-right with probability 0.5.</param>
/// <param name="CropPadding">Pad by this many zeros on each side, then crop a random (H, W) window; 0 is off.</param>
/// <param name="RotationDegrees">Rotate by a uniform angle in [-d, d] degrees; 0 is off.</param>
/// <param name="Brightness">Brightness factor uniform in [max(0, 1 - b), 1 + b]; 0 is off.</param>
/// <param name="Contrast">Contrast factor uniform in [max(0, 1 - c), 1 + c]; 0 is off.</param>
public sealed record Augmentation(bool HorizontalFlip = false, int CropPadding = 0, float RotationDegrees = 0, float Brightness = 0, float Contrast = 0)
{
    /// <summary>No augmentation.</summary>
    public static Augmentation None { get; } = new();

    /// <summary>Whether every option is off (then <see cref="Apply"/> returns its input).</summary>
    public bool IsNone => !HorizontalFlip && CropPadding == 0 && RotationDegrees == 0 && Brightness == 0 && Contrast == 0;

    /// <summary>A short description: "none", or e.g. "flip, crop pad 4, rotate ±15°, brightness 0.2, contrast 0.2".</summary>
    public string Description
    {
        get
        {
            if (IsNone)
                return "none";
            var parts = new List<string>();
            if (HorizontalFlip)
                parts.Add("flip");
            if (CropPadding > 0)
                parts.Add($"crop pad {CropPadding}");
            if (RotationDegrees != 0)
                parts.Add(string.Create(CultureInfo.InvariantCulture, $"rotate ±{RotationDegrees:G}°"));
            if (Brightness != 0)
                parts.Add(string.Create(CultureInfo.InvariantCulture, $"brightness {Brightness:G}"));
            if (Contrast != 0)
                parts.Add(string.Create(CultureInfo.InvariantCulture, $"contrast {Contrast:G}"));
            return string.Join(", ", parts);
        }
    }

    /// <summary>Augments a batch on its device.</summary>
    /// <param name="step">The step that owns <paramref name="x"/>; the result belongs to it too.</param>
    /// <param name="x">A Float32 batch (N, C, H, W) of the step.</param>
    /// <param name="rng">The randomness of this batch (for example Rng.Create(seed).Fold(purpose).At(step)).</param>
    /// <returns>A new tensor of the step, or <paramref name="x"/> itself when every option is off.</returns>
    public Tensor Apply(StepScope step, Tensor x, Rng rng)
    {
        ArgumentNullException.ThrowIfNull(step);
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(rng);
        Validate();
        if (IsNone)
            return x;
        if (x.DType != DType.Float32 || x.Shape.Rank != 4)
            throw new ArgumentException($"Augmentation.Apply: x must be a Float32 batch (N, C, H, W), got {x.DType} {x.Shape}.", nameof(x));
        int n = x.Shape[0], c = x.Shape[1], h = x.Shape[2], w = x.Shape[3];
        var host = step.Device.Kernels;
        var cur = x;
        Tensor Next() => step.Allocate(x.Shape);
        if (HorizontalFlip)
        {
            var k = rng.Fold(1);
            var y = Next();
            Augment.Flip(host, cur.View<float>(), y.View<float>(), n, c, h, w, 0.5f, k.Seed, k.Stream, k.Counter);
            cur = y;
        }

        if (CropPadding > 0)
        {
            var k = rng.Fold(2);
            var y = Next();
            Augment.Crop(host, cur.View<float>(), y.View<float>(), n, c, h, w, h, w, CropPadding, k.Seed, k.Stream, k.Counter);
            cur = y;
        }

        if (RotationDegrees != 0)
        {
            var k = rng.Fold(3);
            var y = Next();
            float d = Math.Abs(RotationDegrees);
            Augment.Rotate(host, cur.View<float>(), y.View<float>(), n, c, h, w, -d, d, k.Seed, k.Stream, k.Counter);
            cur = y;
        }

        if (Brightness != 0 || Contrast != 0)
        {
            var k = rng.Fold(4);
            var y = Next();
            var scratch = step.Scratch<float>(Math.Max(1, Augment.JitterScratchLength(n)));
            Augment.Jitter(host, cur.View<float>(), y.View<float>(), scratch, n, c, h, w,
                Math.Max(0f, 1f - Brightness), 1f + Brightness, Math.Max(0f, 1f - Contrast), 1f + Contrast, k.Seed, k.Stream, k.Counter);
            cur = y;
        }

        return cur;
    }

    /// <inheritdoc/>
    public override string ToString() => $"Augmentation({Description})";

    private void Validate()
    {
        if (CropPadding < 0)
            throw new ArgumentOutOfRangeException(nameof(CropPadding), CropPadding, $"Augmentation: crop padding must be zero or more, got {CropPadding}.");
        if (!float.IsFinite(RotationDegrees))
            throw new ArgumentOutOfRangeException(nameof(RotationDegrees), RotationDegrees, "Augmentation: rotation degrees must be finite.");
        if (!(Brightness >= 0 && float.IsFinite(Brightness)))
            throw new ArgumentOutOfRangeException(nameof(Brightness), Brightness, $"Augmentation: brightness must be finite and zero or more, got {Brightness}.");
        if (!(Contrast >= 0 && float.IsFinite(Contrast)))
            throw new ArgumentOutOfRangeException(nameof(Contrast), Contrast, $"Augmentation: contrast must be finite and zero or more, got {Contrast}.");
    }
}
