namespace IlgpuTrain.Training;

/// <summary>
/// Per-channel normalization of pixel values already scaled to [0, 1]: x' = (x - Mean[c]) / Std[c]
/// (torchvision transforms.Normalize). Channel c is the outermost per-sample dimension of a
/// (C, H, W) sample; a sample of another rank has one channel.
/// </summary>
/// <param name="Mean">Per-channel means.</param>
/// <param name="Std">Per-channel standard deviations (positive).</param>
public sealed record Normalization(IReadOnlyList<float> Mean, IReadOnlyList<float> Std)
{
    /// <summary>
    /// Fashion-MNIST: mean 0.2860, std 0.3530, the population mean and standard deviation of all
    /// 60000 x 784 training pixels scaled to [0, 1] (measured: 0.28604, 0.35302).
    /// </summary>
    public static Normalization FashionMnist { get; } = new([0.2860f], [0.3530f]);

    /// <summary>MNIST: mean 0.1307, std 0.3081 (training pixels, the values torchvision examples use).</summary>
    public static Normalization Mnist { get; } = new([0.1307f], [0.3081f]);

    /// <summary>ImageNet's (R, G, B) mean 0.485, 0.456, 0.406 and std 0.229, 0.224, 0.225: torchvision's Normalize for its pretrained models, and the CLI's for image folders.</summary>
    public static Normalization ImageNet { get; } = new([0.485f, 0.456f, 0.406f], [0.229f, 0.224f, 0.225f]);

    /// <summary>CIFAR-10: per-channel (R, G, B) mean 0.4914, 0.4822, 0.4465 and std 0.2470, 0.2435, 0.2616 of the training pixels.</summary>
    public static Normalization Cifar10 { get; } = new([0.4914f, 0.4822f, 0.4465f], [0.2470f, 0.2435f, 0.2616f]);

    /// <summary>The identity for <paramref name="channels"/> channels: mean 0, std 1.</summary>
    /// <param name="channels">Number of channels.</param>
    /// <returns>The normalization.</returns>
    public static Normalization Identity(int channels) =>
        new(Enumerable.Repeat(0f, channels).ToArray(), Enumerable.Repeat(1f, channels).ToArray());

    /// <summary>Number of channels.</summary>
    public int Channels => Mean.Count;

    /// <summary>
    /// The per-channel population mean and standard deviation of a data set's features, accumulated
    /// in float64 (apply it to unnormalized data to get the constants above).
    /// </summary>
    /// <param name="data">The data set.</param>
    /// <returns>The normalization that maps it to mean 0, std 1 per channel (std 1 where a channel is constant).</returns>
    public static Normalization Compute(IDataset data)
    {
        ArgumentNullException.ThrowIfNull(data);
        int channels = ChannelsOf(data.SampleShape);
        int sample = checked((int)data.SampleShape.Length);
        int plane = sample / channels;
        var sum = new double[channels];
        var sumSq = new double[channels];
        const int chunk = 256;
        var x = new float[chunk * sample];
        var labels = new int[chunk];
        var idx = new int[chunk];
        for (int start = 0; start < data.Count; start += chunk)
        {
            int n = Math.Min(chunk, data.Count - start);
            for (int k = 0; k < n; k++)
                idx[k] = start + k;
            data.Gather(idx.AsSpan(0, n), x.AsSpan(0, n * sample), labels.AsSpan(0, n));
            for (int k = 0; k < n; k++)
            {
                for (int c = 0; c < channels; c++)
                {
                    double s = 0, s2 = 0;
                    foreach (float v in x.AsSpan((k * sample) + (c * plane), plane))
                    {
                        s += v;
                        s2 += (double)v * v;
                    }

                    sum[c] += s;
                    sumSq[c] += s2;
                }
            }
        }

        var mean = new float[channels];
        var std = new float[channels];
        double count = (double)data.Count * plane;
        for (int c = 0; c < channels; c++)
        {
            double m = count > 0 ? sum[c] / count : 0;
            double v = count > 0 ? Math.Max(0, (sumSq[c] / count) - (m * m)) : 0;
            mean[c] = (float)m;
            std[c] = v > 0 ? (float)Math.Sqrt(v) : 1f;
        }

        return new Normalization(mean, std);
    }

    /// <summary>Normalizes samples in place: x = (x - Mean[c]) / Std[c].</summary>
    /// <param name="x">Whole samples of <paramref name="sampleShape"/>, back to back.</param>
    /// <param name="sampleShape">The per-sample shape; its first dimension is the channel when its rank is 3.</param>
    public void Apply(Span<float> x, Shape sampleShape)
    {
        ArgumentNullException.ThrowIfNull(sampleShape);
        int channels = ChannelsOf(sampleShape);
        if (channels != Channels || Std.Count != Channels)
            throw new ArgumentException($"Normalization.Apply: {Channels} channel(s) of mean and {Std.Count} of std, but samples of shape {sampleShape} have {channels}.", nameof(sampleShape));
        int sample = checked((int)sampleShape.Length);
        if (sample == 0 || x.Length % sample != 0)
            throw new ArgumentException($"Normalization.Apply: {x.Length} floats are not whole samples of shape {sampleShape}.", nameof(x));
        int plane = sample / channels;
        var scale = new float[channels];
        for (int c = 0; c < channels; c++)
        {
            if (!(Std[c] > 0) || !float.IsFinite(Std[c]) || !float.IsFinite(Mean[c]))
                throw new ArgumentException($"Normalization.Apply: channel {c} has mean {Mean[c]} and std {Std[c]}; std must be positive and both finite.", nameof(x));
            scale[c] = 1f / Std[c];
        }

        for (int s = 0; s < x.Length; s += sample)
        {
            for (int c = 0; c < channels; c++)
            {
                var p = x.Slice(s + (c * plane), plane);
                float m = Mean[c], k = scale[c];
                for (int i = 0; i < p.Length; i++)
                    p[i] = (p[i] - m) * k;
            }
        }
    }

    /// <summary>"mean (0.2860), std (0.3530)".</summary>
    /// <returns>The description.</returns>
    public override string ToString() =>
        $"mean ({string.Join(", ", Mean.Select(v => v.ToString("F4", System.Globalization.CultureInfo.InvariantCulture)))}), std ({string.Join(", ", Std.Select(v => v.ToString("F4", System.Globalization.CultureInfo.InvariantCulture)))})";

    private static int ChannelsOf(Shape s) => s.Rank == 3 ? Math.Max(1, s[0]) : 1;
}
