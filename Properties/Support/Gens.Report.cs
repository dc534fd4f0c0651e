using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Support;

/// <summary>Generators for metrics logs, plots and curve diagnosis.</summary>
public static partial class Gens
{
    /// <summary>A double that is a round number, an awkward fraction, tiny, huge, or non-finite (a diverged loss).</summary>
    public static Gen<double> MetricValue { get; } = Gen.OneOf(
        Gen.Elements(0.0, 1.0, 0.1, 1.0 / 3.0, 2.302585092994046, 1e-12, 6.02e23, -0.0, double.NaN, double.PositiveInfinity, double.NegativeInfinity),
        Gen.Choose(0, 1 << 30).Select(k => k / (double)(1 << 24)));

    /// <summary>A double or null.</summary>
    public static Gen<double?> MaybeMetric { get; } =
        Gen.OneOf(Gen.Constant<double?>(null), MetricValue.Select(v => (double?)v));

    /// <summary>Metrics of one epoch, every field generated (nulls and non-finite values included).</summary>
    /// <param name="epoch">The epoch number.</param>
    /// <returns>The generator.</returns>
    public static Gen<EpochMetrics> Epoch(int epoch) =>
        from tl in MetricValue
        from ta in MetricValue
        from vl in MaybeMetric
        from va in MaybeMetric
        from vk in MaybeMetric
        from k in Gen.Choose(1, 10)
        from lr in MetricValue
        from ls in MaybeMetric
        from skipped in Gen.Choose(0, 100)
        from steps in Gen.Choose(0, 100000)
        from samples in Gen.Elements(0L, 1L, 60000L, 5_000_000_000L)
        from sec in MetricValue
        from al in MaybeMetric
        from aa in MaybeMetric
        select new EpochMetrics(epoch, tl, ta, vl, va, vk, k, lr, ls, skipped, steps, samples, sec) { AveragedValLoss = al, AveragedValAccuracy = aa };

    /// <summary>A history of 0 to 12 generated epochs numbered 1..n.</summary>
    public static Gen<History> AnyHistory { get; } =
        from n in Gen.Choose(0, 12)
        from epochs in Gen.ArrayOf(Epoch(0), n)
        select new History([.. epochs.Select((m, i) => m with { Epoch = i + 1 })]);

    /// <summary>A plausible run: losses falling, accuracies rising, validation present or absent.</summary>
    public static Gen<History> PlausibleHistory { get; } =
        from n in Gen.Choose(1, 30)
        from withVal in Gen.Elements(true, false)
        from rate in Gen.Choose(20, 150).Select(k => k / 100.0)
        select Curves(n, i => 0.3 + (2.0 * Math.Exp(-rate * i)), i => withVal ? 0.4 + (2.0 * Math.Exp(-rate * i)) : null);

    /// <summary>A history from loss curves: accuracy derived from the loss, learning rate 0.01.</summary>
    /// <param name="n">Epochs.</param>
    /// <param name="train">Training loss of 0-based epoch i.</param>
    /// <param name="val">Validation loss of 0-based epoch i, or null.</param>
    /// <param name="classes">Classes, for the accuracy's floor.</param>
    /// <returns>The history.</returns>
    public static History Curves(int n, Func<int, double> train, Func<int, double?> val, int classes = 10) =>
        new([.. Enumerable.Range(0, n).Select(i =>
        {
            double tl = train(i);
            double? vl = val(i);
            return new EpochMetrics(i + 1, tl, Acc(tl, classes), vl, vl is double v ? Acc(v, classes) : null, null, 5,
                0.01, null, 0, 100, 6400, 1.5);
        })]);

    // exp(-loss) is the geometric-mean probability of the right class: a monotone stand-in for accuracy.
    private static double Acc(double loss, int classes) =>
        double.IsFinite(loss) ? Math.Max(1.0 / classes, Math.Min(1, Math.Exp(-loss))) : 1.0 / classes;
}
