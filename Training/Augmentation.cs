using System.Globalization;

namespace IlgpuTrain.Training;

/// <summary>
/// On-device augmentation of a training batch x (N, C, H, W), as torchvision.transforms.v2 applied
/// per sample: resize, random resized crop, horizontal and vertical flips, random crop with zero
/// padding back to (H, W), rotation, colour jitter (brightness, contrast, saturation, hue),
/// normalization and random erasing (Kernels/Augment.cs has the exact formulas).
/// </summary>
/// <remarks>
/// <para>Order: Resize, ResizedCrop, HorizontalFlip, VerticalFlip, crop, rotation, jitter,
/// Normalize, Erasing (torchvision's reference recipe: geometry, colour, Normalize, then
/// RandomErasing on the normalized tensor, so value 0 erases to the data set mean). Each random
/// transform draws from its own child of the <see cref="Rng"/> given to <see cref="Apply"/>
/// (rng.Fold(1) flip, Fold(2) crop, Fold(3) rotation, Fold(4) jitter, Fold(5) vertical flip,
/// Fold(6) resized crop, Fold(7) erasing), so a batch's augmentation is a pure function of that
/// Rng and the sample index: pass Rng.Create(seed).Fold(purpose).At(step) and a resumed run
/// repeats it.</para>
/// <para>Three ways to feed colour jitter:</para>
/// <list type="bullet">
/// <item><b>Pixels, then Normalize (torchvision's way).</b> Set <see cref="Normalize"/> and give
/// Apply pixel values in [0, 1] (load the data set with <see cref="Normalization.Identity"/>).
/// The jitter is then exactly ColorJitter: its ops run in a random order per sample and each
/// result is clamped to [0, 1] (adjust_brightness and _blend clamp float images); Normalize(mean,
/// std) runs after it, on the device. The trainer's evaluation runs <see cref="ApplyEval"/>, the
/// pipeline's deterministic part (Resize, Normalize), so validation and test batches are scaled
/// as the training batches were.</item>
/// <item><b>Normalized data whose statistics are known.</b> Set Normalize to them and
/// <see cref="NormalizedInput"/>: the jitter runs as above on x std + mean, and Normalize maps the
/// result back; the other transforms see the normalized values. The command line does this for its
/// built-in data sets.</item>
/// <item><b>Already normalized data (the default, Normalize null).</b> Jitter acts on the values
/// it is given without clamping, in the fixed order brightness, contrast, saturation: brightness
/// scales each value (x f), contrast and saturation blend with the gray mean or gray pixel.
/// Contrast is then exactly torchvision's contrast (an affine map commutes with it); brightness
/// scales the distance from the data set mean rather than from black. Hue needs pixels and is
/// refused here.</item>
/// </list>
/// <para>torchvision equivalents: Resize(size, antialias=False), RandomResizedCrop(size, scale,
/// ratio, antialias=False), RandomHorizontalFlip(), RandomVerticalFlip(), RandomCrop((H, W),
/// padding=CropPadding), RandomRotation(RotationDegrees, interpolation=BILINEAR),
/// ColorJitter(Brightness, Contrast, Saturation, Hue), Normalize(mean, std), RandomErasing(p,
/// scale, ratio, value). MixUp and CutMix change the labels too: they are
/// <see cref="TrainerOptions.Mixing"/>.</para>
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

    /// <summary>Flip each sample upside down with probability 0.5 (RandomVerticalFlip()).</summary>
    public bool VerticalFlip { get; init; }

    /// <summary>Saturation factor uniform in [max(0, 1 - s), 1 + s]; 0 is off. Acts on C = 3 (identity on C = 1).</summary>
    public float Saturation { get; init; }

    /// <summary>Hue shift uniform in [-h, h], h at most 0.5; 0 is off. Needs <see cref="Normalize"/> (pixel values).</summary>
    public float Hue { get; init; }

    /// <summary>Resize every sample to this size first (bilinear, antialias off); null is off.</summary>
    public ImageSize? Resize { get; init; }

    /// <summary>RandomResizedCrop; null is off.</summary>
    public RandomResizedCrop? ResizedCrop { get; init; }

    /// <summary>Per-channel Normalize(mean, std) after the colour jitter; when set, Apply takes pixel values in [0, 1] and the jitter clamps (see remarks). Null is off.</summary>
    public Normalization? Normalize { get; init; }

    /// <summary>
    /// The batch arrives already normalized with <see cref="Normalize"/>'s statistics (as the
    /// built-in data sets load): the colour jitter then runs on the pixels x std + mean, clamped, and
    /// Normalize maps its result back; the other transforms act on the normalized values as given,
    /// and without colour ops nothing is denormalized. Needs Normalize.
    /// </summary>
    public bool NormalizedInput { get; init; }

    /// <summary>RandomErasing, last; null is off.</summary>
    public RandomErasing? Erasing { get; init; }

    /// <summary>Whether every option is off (then <see cref="Apply"/> returns its input).</summary>
    public bool IsNone => !HorizontalFlip && CropPadding == 0 && RotationDegrees == 0 && Brightness == 0 && Contrast == 0
        && !VerticalFlip && Saturation == 0 && Hue == 0 && Resize is null && ResizedCrop is null && Normalize is null && Erasing is null;

    /// <summary>A short description: "none", or e.g. "flip, crop pad 4, rotate ±15°, brightness 0.2, contrast 0.2".</summary>
    public string Description
    {
        get
        {
            if (IsNone)
                return "none";
            var parts = new List<string>();
            if (Resize is { } size)
                parts.Add($"resize {size}");
            if (ResizedCrop is { } rc)
                parts.Add(rc.ToString());
            if (HorizontalFlip)
                parts.Add("flip");
            if (VerticalFlip)
                parts.Add("vflip");
            if (CropPadding > 0)
                parts.Add($"crop pad {CropPadding}");
            if (RotationDegrees != 0)
                parts.Add(string.Create(CultureInfo.InvariantCulture, $"rotate ±{RotationDegrees:G}°"));
            if (Brightness != 0)
                parts.Add(string.Create(CultureInfo.InvariantCulture, $"brightness {Brightness:G}"));
            if (Contrast != 0)
                parts.Add(string.Create(CultureInfo.InvariantCulture, $"contrast {Contrast:G}"));
            if (Saturation != 0)
                parts.Add(string.Create(CultureInfo.InvariantCulture, $"saturation {Saturation:G}"));
            if (Hue != 0)
                parts.Add(string.Create(CultureInfo.InvariantCulture, $"hue {Hue:G}"));
            if (Normalize is { } norm)
                parts.Add($"normalize {norm}");
            if (Erasing is { } er)
                parts.Add(er.ToString());
            return string.Join(", ", parts);
        }
    }

    /// <summary>The shape of a sample after <see cref="Apply"/>: (C, H, W) unless Resize or ResizedCrop sets another size.</summary>
    /// <param name="sampleShape">The input sample shape (C, H, W).</param>
    /// <returns>The output sample shape.</returns>
    public Shape OutputShape(Shape sampleShape)
    {
        ArgumentNullException.ThrowIfNull(sampleShape);
        if (sampleShape.Rank != 3)
            return sampleShape;
        int c = sampleShape[0], h = sampleShape[1], w = sampleShape[2];
        if (Resize is { } size)
            (h, w) = (size.Height, size.Width);
        if (ResizedCrop is { } rc)
            (h, w) = (rc.Height > 0 ? rc.Height : h, rc.Width > 0 ? rc.Width : w);
        return new Shape(c, h, w);
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
        if (Normalize is { } stats && stats.Channels != c)
            throw new ArgumentException($"Augmentation.Apply: Normalize has {stats.Channels} channel(s) but the batch {x.Shape} has C = {c}; give one mean and std per channel.", nameof(x));
        var host = step.Device.Kernels;
        var cur = x;
        Tensor Next() => step.Allocate(new Shape(n, c, h, w));
        if (Resize is { } size)
        {
            var y = step.Allocate(new Shape(n, c, size.Height, size.Width));
            Augment.Resize(host, cur.View<float>(), y.View<float>(), step.Scratch<int>(Math.Max(1, Augment.BoxScratchLength(n))), n, c, h, w, size.Height, size.Width);
            (cur, h, w) = (y, size.Height, size.Width);
        }

        if (ResizedCrop is { } rc)
        {
            var k = rng.Fold(6);
            int oh = rc.Height > 0 ? rc.Height : h, ow = rc.Width > 0 ? rc.Width : w;
            var y = step.Allocate(new Shape(n, c, oh, ow));
            Augment.ResizedCrop(host, cur.View<float>(), y.View<float>(), step.Scratch<int>(Math.Max(1, Augment.BoxScratchLength(n))), n, c, h, w, oh, ow, rc.ScaleLo, rc.ScaleHi, rc.RatioLo, rc.RatioHi, k.Seed, k.Stream, k.Counter);
            (cur, h, w) = (y, oh, ow);
        }

        if (HorizontalFlip)
        {
            var k = rng.Fold(1);
            var y = Next();
            Augment.Flip(host, cur.View<float>(), y.View<float>(), n, c, h, w, 0.5f, k.Seed, k.Stream, k.Counter);
            cur = y;
        }

        if (VerticalFlip)
        {
            var k = rng.Fold(5);
            var y = Next();
            Augment.VerticalFlip(host, cur.View<float>(), y.View<float>(), n, c, h, w, 0.5f, k.Seed, k.Stream, k.Counter);
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

        bool colour = Brightness != 0 || Contrast != 0 || Saturation != 0 || Hue != 0;
        if (colour && NormalizedInput && Normalize is { } input)
        {
            // x std + mean as Normalize with mean' = -mean / std and std' = 1 / std.
            var y = Next();
            var inverse = step.Upload([.. input.Mean.Select((m, i) => -m / input.Std[i]), .. input.Std.Select(v => 1f / v)], new Shape(2 * c));
            Augment.Normalize(host, cur.View<float>(), y.View<float>(), inverse.View<float>(), n, c, h, w);
            cur = y;
        }

        if (colour)
        {
            var k = rng.Fold(4);
            var y = Next();
            var scratch = step.Scratch<float>(Math.Max(1, Augment.JitterScratchLength(n, c, h, w)));
            Augment.Jitter(host, cur.View<float>(), y.View<float>(), scratch, n, c, h, w, JitterRanges, k.Seed, k.Stream, k.Counter);
            cur = y;
        }

        if (Normalize is { } norm && (colour || !NormalizedInput))
        {
            var y = Next();
            var statsOnDevice = step.Upload([.. norm.Mean, .. norm.Std], new Shape(2 * c));
            Augment.Normalize(host, cur.View<float>(), y.View<float>(), statsOnDevice.View<float>(), n, c, h, w);
            cur = y;
        }

        if (Erasing is { } er)
        {
            var k = rng.Fold(7);
            var y = Next();
            Augment.Erase(host, cur.View<float>(), y.View<float>(), step.Scratch<int>(Math.Max(1, Augment.BoxScratchLength(n))), n, c, h, w, er.P, er.ScaleLo, er.ScaleHi, er.RatioLo, er.RatioHi, er.Value, k.Seed, k.Stream, k.Counter);
            cur = y;
        }

        return cur;
    }

    /// <summary>
    /// The evaluation transform of this training pipeline, as a torchvision user pairs a train and an
    /// eval transform: only its deterministic part, so validation and test batches have the shape and
    /// scale the model was trained on. Resize (or, with only a ResizedCrop, a resize of the whole image
    /// to its output size), then Normalize when the input is pixels (<see cref="NormalizedInput"/>
    /// false); flips, crops, rotation, jitter and erasing are training-only.
    /// </summary>
    /// <param name="step">The step that owns <paramref name="x"/>.</param>
    /// <param name="x">A Float32 batch (N, C, H, W) of the step.</param>
    /// <returns>A new tensor of the step, or <paramref name="x"/> when the pipeline has no deterministic part.</returns>
    public Tensor ApplyEval(StepScope step, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(step);
        ArgumentNullException.ThrowIfNull(x);
        Validate();
        bool normalize = Normalize is not null && !NormalizedInput;
        (int Height, int Width)? size = Resize is { } r ? (r.Height, r.Width) : ResizedCrop is { } rc ? (rc.Height, rc.Width) : null;
        if ((size is null && !normalize) || x.Shape.Rank != 4)
            return x;
        int n = x.Shape[0], c = x.Shape[1], h = x.Shape[2], w = x.Shape[3];
        var host = step.Device.Kernels;
        var cur = x;
        if (size is { } s && s.Height > 0 && s.Width > 0 && (s.Height, s.Width) != (h, w))
        {
            var y = step.Allocate(new Shape(n, c, s.Height, s.Width));
            Augment.Resize(host, cur.View<float>(), y.View<float>(), step.Scratch<int>(Math.Max(1, Augment.BoxScratchLength(n))), n, c, h, w, s.Height, s.Width);
            (cur, h, w) = (y, s.Height, s.Width);
        }

        if (normalize && Normalize is { } norm)
        {
            if (norm.Channels != c)
                throw new ArgumentException($"Augmentation.ApplyEval: Normalize has {norm.Channels} channel(s) but the batch {x.Shape} has C = {c}; give one mean and std per channel.", nameof(x));
            var y = step.Allocate(new Shape(n, c, h, w));
            var stats = step.Upload([.. norm.Mean, .. norm.Std], new Shape(2 * c));
            Augment.Normalize(host, cur.View<float>(), y.View<float>(), stats.View<float>(), n, c, h, w);
            cur = y;
        }

        return cur;
    }

    // torchvision's ColorJitter ranges; pixels (Normalize set) shuffle and clamp, normalized data do neither.
    private JitterRanges JitterRanges
    {
        get
        {
            int pixels = Normalize is null ? 0 : 1;
            return new(
                Math.Max(0f, 1f - Brightness), 1f + Brightness, Math.Max(0f, 1f - Contrast), 1f + Contrast,
                Math.Max(0f, 1f - Saturation), 1f + Saturation, -Hue, Hue, pixels, pixels);
        }
    }

    /// <inheritdoc/>
    public override string ToString() => $"Augmentation({Description})";

    private void Validate()
    {
        if (CropPadding < 0)
            throw new ArgumentOutOfRangeException(nameof(CropPadding), CropPadding, $"Augmentation: crop padding must be zero or more, got {CropPadding}.");
        if (!float.IsFinite(RotationDegrees))
            throw new ArgumentOutOfRangeException(nameof(RotationDegrees), RotationDegrees, "Augmentation: rotation degrees must be finite.");
        NonNegative(Brightness, nameof(Brightness));
        NonNegative(Contrast, nameof(Contrast));
        NonNegative(Saturation, nameof(Saturation));
        if (!(Hue >= 0f && Hue <= 0.5f))
            throw new ArgumentOutOfRangeException(nameof(Hue), Hue, $"Augmentation: hue must be in [0, 0.5] (the shift is uniform in [-hue, hue]), got {Hue}.");
        if (Hue != 0 && Normalize is null)
            throw new ArgumentException("Augmentation: hue works on pixel values in [0, 1], but without Normalize the batch is taken as already normalized; set Normalize (and load the data with Normalization.Identity) or turn hue off.", nameof(Hue));
        if (Resize is { } size && !(size.Height > 0 && size.Width > 0))
            throw new ArgumentOutOfRangeException(nameof(Resize), size, $"Augmentation: resize to {size} needs a positive height and width.");
        if (Normalize is { } norm)
        {
            if (norm.Std.Count != norm.Mean.Count || norm.Mean.Count == 0)
                throw new ArgumentException($"Augmentation: Normalize has {norm.Mean.Count} mean(s) and {norm.Std.Count} std(s); give one of each per channel.", nameof(Normalize));
            for (int c = 0; c < norm.Mean.Count; c++)
            {
                if (!(norm.Std[c] > 0 && float.IsFinite(norm.Std[c]) && float.IsFinite(norm.Mean[c])))
                    throw new ArgumentOutOfRangeException(nameof(Normalize), $"Augmentation: Normalize channel {c} has mean {norm.Mean[c]} and std {norm.Std[c]}; std must be positive and both finite.");
            }
        }

        if (NormalizedInput && Normalize is null)
            throw new ArgumentException("Augmentation: NormalizedInput says the batch was normalized with Normalize's statistics, but Normalize is null; set Normalize to the statistics the data were loaded with.", nameof(NormalizedInput));
        ResizedCrop?.Validate();
        Erasing?.Validate();
    }

    private static void NonNegative(float v, string name)
    {
        if (!(v >= 0 && float.IsFinite(v)))
            throw new ArgumentOutOfRangeException(name, v, $"Augmentation: {name.ToLowerInvariant()} must be finite and zero or more, got {v}.");
    }
}

/// <summary>An image size (height, width) in pixels.</summary>
/// <param name="Height">Rows.</param>
/// <param name="Width">Columns.</param>
public sealed record ImageSize(int Height, int Width)
{
    /// <inheritdoc/>
    public override string ToString() => $"{Height}x{Width}";
}

/// <summary>
/// torchvision's RandomResizedCrop(size, scale, ratio) with bilinear interpolation and antialias
/// off: a box of area fraction in [ScaleLo, ScaleHi] and aspect ratio (width / height) log-uniform
/// in [RatioLo, RatioHi], 10 tries then the central fallback, resized to (Height, Width).
/// </summary>
/// <param name="Height">Output height; 0 keeps the input's.</param>
/// <param name="Width">Output width; 0 keeps the input's.</param>
/// <param name="ScaleLo">Smallest area fraction (0.08).</param>
/// <param name="ScaleHi">Largest area fraction (1).</param>
/// <param name="RatioLo">Smallest aspect ratio (3/4).</param>
/// <param name="RatioHi">Largest aspect ratio (4/3).</param>
public sealed record RandomResizedCrop(int Height = 0, int Width = 0, float ScaleLo = 0.08f, float ScaleHi = 1f, float RatioLo = 3f / 4f, float RatioHi = 4f / 3f)
{
    /// <inheritdoc/>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"resized crop{(Height > 0 || Width > 0 ? $" to {Height}x{Width}" : string.Empty)} scale [{ScaleLo:G}, {ScaleHi:G}] ratio [{RatioLo:G4}, {RatioHi:G4}]");

    internal void Validate()
    {
        if (Height < 0 || Width < 0)
            throw new ArgumentOutOfRangeException(nameof(Height), $"RandomResizedCrop: the size ({Height}, {Width}) must be positive, or 0 to keep the input's.");
        if (!(ScaleLo > 0 && ScaleLo <= ScaleHi && float.IsFinite(ScaleHi)))
            throw new ArgumentOutOfRangeException(nameof(ScaleLo), $"RandomResizedCrop: scale [{ScaleLo}, {ScaleHi}] must be positive and ordered (torchvision's default is [0.08, 1]).");
        if (!(RatioLo > 0 && RatioLo <= RatioHi && float.IsFinite(RatioHi)))
            throw new ArgumentOutOfRangeException(nameof(RatioLo), $"RandomResizedCrop: ratio [{RatioLo}, {RatioHi}] must be positive, finite and ordered (torchvision's default is [3/4, 4/3]).");
    }
}

/// <summary>
/// torchvision's RandomErasing(p, scale, ratio, value): with probability P, a box of area fraction
/// in [ScaleLo, ScaleHi] and aspect ratio (height / width) log-uniform in [RatioLo, RatioHi]
/// (10 tries, then nothing) is set to Value.
/// </summary>
/// <param name="P">Probability of erasing a sample (0.5).</param>
/// <param name="ScaleLo">Smallest area fraction (0.02).</param>
/// <param name="ScaleHi">Largest area fraction (0.33).</param>
/// <param name="RatioLo">Smallest aspect ratio (0.3).</param>
/// <param name="RatioHi">Largest aspect ratio (3.3).</param>
/// <param name="Value">The fill (0).</param>
public sealed record RandomErasing(float P = 0.5f, float ScaleLo = 0.02f, float ScaleHi = 0.33f, float RatioLo = 0.3f, float RatioHi = 3.3f, float Value = 0f)
{
    /// <inheritdoc/>
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"erasing p {P:G} scale [{ScaleLo:G}, {ScaleHi:G}] ratio [{RatioLo:G}, {RatioHi:G}] value {Value:G}");

    internal void Validate()
    {
        if (!(P >= 0 && P <= 1))
            throw new ArgumentOutOfRangeException(nameof(P), P, $"RandomErasing: p is a probability and must be in [0, 1], got {P}.");
        if (!(ScaleLo > 0 && ScaleLo <= ScaleHi && ScaleHi <= 1))
            throw new ArgumentOutOfRangeException(nameof(ScaleLo), $"RandomErasing: scale [{ScaleLo}, {ScaleHi}] must be ordered within (0, 1] (torchvision's default is [0.02, 0.33]).");
        if (!(RatioLo > 0 && RatioLo <= RatioHi && float.IsFinite(RatioHi)))
            throw new ArgumentOutOfRangeException(nameof(RatioLo), $"RandomErasing: ratio [{RatioLo}, {RatioHi}] must be positive, finite and ordered (torchvision's default is [0.3, 3.3]).");
        if (!float.IsFinite(Value))
            throw new ArgumentOutOfRangeException(nameof(Value), Value, "RandomErasing: the fill value must be finite.");
    }
}
