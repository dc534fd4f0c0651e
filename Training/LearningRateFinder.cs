using System.Globalization;
using System.Text;

namespace IlgpuTrain.Training;

/// <summary>The settings of a learning-rate range test (<see cref="LearningRateFinder"/>); the defaults are fastai's <c>lr_find</c>.</summary>
public sealed record LearningRateFinderOptions
{
    /// <summary>The learning rate of the first step (1e-7).</summary>
    public double StartLr { get; init; } = 1e-7;

    /// <summary>The learning rate of the last step (10).</summary>
    public double EndLr { get; init; } = 10;

    /// <summary>Steps of the sweep (100), at least 2; the test cycles through the data set's epochs as needed.</summary>
    public int NumIter { get; init; } = 100;

    /// <summary>β of the exponential moving average of the loss (0.98, fastai's <c>AvgSmoothLoss</c>).</summary>
    public double Beta { get; init; } = 0.98;

    /// <summary>
    /// The sweep stops once the smoothed loss exceeds this factor times the best smoothed loss so
    /// far (4, fastai's <c>stop_div</c>); <see cref="double.PositiveInfinity"/> never stops early.
    /// </summary>
    public double DivergenceFactor { get; init; } = 4;

    /// <summary>Throws when a setting is out of range, naming it and the fix.</summary>
    public void Validate()
    {
        if (!(double.IsFinite(StartLr) && StartLr > 0))
            throw new ArgumentOutOfRangeException(nameof(StartLr), StartLr, "LearningRateFinder: StartLr (--start-lr) must be finite and greater than 0.");
        if (!(double.IsFinite(EndLr) && EndLr > StartLr))
            throw new ArgumentOutOfRangeException(nameof(EndLr), EndLr, $"LearningRateFinder: EndLr (--end-lr) must be finite and greater than StartLr ({StartLr.ToString(CultureInfo.InvariantCulture)}).");
        if (NumIter < 2)
            throw new ArgumentOutOfRangeException(nameof(NumIter), NumIter, "LearningRateFinder: NumIter (--num-iter) must be at least 2 steps.");
        if (!(Beta >= 0 && Beta < 1))
            throw new ArgumentOutOfRangeException(nameof(Beta), Beta, "LearningRateFinder: Beta must be in [0, 1).");
        if (!(DivergenceFactor > 1))
            throw new ArgumentOutOfRangeException(nameof(DivergenceFactor), DivergenceFactor, "LearningRateFinder: DivergenceFactor must be greater than 1 (or +infinity to never stop early).");
    }

    /// <summary>The learning rate of step <paramref name="i"/> (0-based): StartLr·(EndLr/StartLr)^(i/(NumIter − 1)).</summary>
    /// <param name="i">The step, from 0 to NumIter − 1.</param>
    /// <returns>The rate.</returns>
    public double LearningRateAt(int i) => StartLr * Math.Pow(EndLr / StartLr, (double)i / (NumIter - 1));

    /// <summary>The sweep as a schedule: PyTorch's ExponentialLR from StartLr with γ = (EndLr/StartLr)^(1/(NumIter − 1)).</summary>
    /// <returns>The schedule.</returns>
    public ExponentialLR Schedule() => new(StartLr, Math.Pow(EndLr / StartLr, 1.0 / (NumIter - 1)));
}

/// <summary>One step of a range test.</summary>
/// <param name="Iteration">The step, from 0.</param>
/// <param name="LearningRate">The learning rate the step's update used.</param>
/// <param name="Loss">The batch's training loss (before the update).</param>
/// <param name="SmoothedLoss">The bias-corrected exponential moving average of the losses so far.</param>
public sealed record LearningRatePoint(int Iteration, double LearningRate, double Loss, double SmoothedLoss);

/// <summary>What a learning-rate range test found.</summary>
/// <param name="Curve">Every step that ran, in order.</param>
/// <param name="Steepest">The rate where the smoothed loss falls fastest against log lr (fastai's <c>steep</c>), or null when the curve is too short.</param>
/// <param name="MinimumOverTen">The rate of the lowest smoothed loss, divided by 10 (fastai's <c>minimum</c>), or null when the curve is empty.</param>
/// <param name="Diverged">Whether the sweep stopped early because the loss diverged.</param>
/// <param name="StopReason">Why the sweep ended, in words.</param>
public sealed record LearningRateFinderResult(IReadOnlyList<LearningRatePoint> Curve, double? Steepest, double? MinimumOverTen, bool Diverged, string StopReason)
{
    /// <summary>The curve as CSV: <c>iteration,lr,loss,smoothed_loss</c>, one row per step, round-trip numbers.</summary>
    /// <returns>The text.</returns>
    public string ToCsv()
    {
        var sb = new StringBuilder("iteration,lr,loss,smoothed_loss\n");
        foreach (var p in Curve)
            sb.Append(CultureInfo.InvariantCulture, $"{p.Iteration},{p.LearningRate:R},{p.Loss:R},{p.SmoothedLoss:R}\n");
        return sb.ToString();
    }

    /// <summary>Writes <see cref="ToCsv"/> to <paramref name="path"/>, through a temporary file beside it.</summary>
    /// <param name="path">The file.</param>
    public void WriteCsv(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string tmp = path + ".tmp";
        File.WriteAllText(tmp, ToCsv());
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>The suggestions in one line, e.g. "steepest descent at lr 3.02e-03, minimum/10 at lr 1.1e-02".</summary>
    /// <returns>The text.</returns>
    public string Describe()
    {
        static string F(double? v) => v is { } x ? x.ToString("0.##e+00", CultureInfo.InvariantCulture) : "none";
        return $"steepest descent at lr {F(Steepest)}, minimum/10 at lr {F(MinimumOverTen)} ({Curve.Count} steps; {StopReason})";
    }
}

/// <summary>
/// The learning-rate range test (Smith 2017, "Cyclical Learning Rates for Training Neural
/// Networks", §3.3), with the exponential sweep, smoothing, divergence stop and suggestions of
/// fastai's <c>lr_find</c>: train from the run's initial weights for a few steps while the
/// learning rate grows exponentially, record the loss, and read a good rate off the curve.
/// </summary>
/// <remarks>
/// <para>lr_i = start·(end/start)^(i/(n−1)), i = 0..n−1 (torch-lr-finder's ExponentialLR: the
/// sweep spans [start, end] exactly; PyTorch's ExponentialLR with γ = (end/start)^(1/(n−1))).</para>
/// <para>avg_i = β·avg_{i−1} + (1−β)·loss_i, avg_{−1} = 0; smoothed_i = avg_i/(1−β^(i+1))
/// (fastai's AvgSmoothLoss, β = 0.98, bias-corrected as Adam's moments).</para>
/// <para>Stop after step i when smoothed_i &gt; 4·min_{j≤i} smoothed_j (fastai's stop_div), or when
/// the loss is not finite (that step is not in the curve).</para>
/// <para>Suggestions (fastai's <c>steep</c> and <c>minimum</c>, on the smoothed loss without the first
/// n/10 steps and the last 5, or on the whole curve when that leaves fewer than 2 points):
/// steepest = lr_j with j = argmin_j (s_{j+1} − s_j)/(ln lr_{j+1} − ln lr_j);
/// minimum/10 = lr_{argmin s}/10.</para>
/// <para>The caller's state is never touched: the test trains a copy (of the trainer's
/// initialization, or of the state given) with an optimizer state of its own, and releases it at
/// the end, so nothing needs restoring.</para>
/// </remarks>
public static class LearningRateFinder
{
    /// <summary>Steps left out at the end of the curve before suggesting (fastai's <c>[:-5]</c>).</summary>
    public const int SkipEnd = 5;

    /// <summary>Runs a range test.</summary>
    /// <param name="trainer">
    /// Builds the trainer of the test around the swept learning rate: the model, loss, batch size,
    /// seed and optimizer of the run, with the schedule it is given as the optimizer's learning rate,
    /// e.g. <c>lr =&gt; new Trainer(device, model, shape, new AdamW(lr), options)</c>.
    /// </param>
    /// <param name="train">The training set (shuffled with the trainer's seed, cycled as often as needed).</param>
    /// <param name="options">The sweep, or null for fastai's defaults.</param>
    /// <param name="from">A state to start from (read only: its parameters and model state are copied), or null for the trainer's initialization.</param>
    /// <returns>The curve and the suggestions.</returns>
    /// <exception cref="ArgumentException">The data do not fit the model, or the optimizer does not use the learning rate it is given.</exception>
    public static LearningRateFinderResult Run(Func<Schedule, Trainer> trainer, IDataset train, LearningRateFinderOptions? options = null, TrainState? from = null)
    {
        ArgumentNullException.ThrowIfNull(trainer);
        ArgumentNullException.ThrowIfNull(train);
        var o = options ?? new LearningRateFinderOptions();
        o.Validate();
        var t = trainer(o.Schedule()) ?? throw new ArgumentException("LearningRateFinder: the trainer factory returned null; return a Trainer built around the schedule it is given.", nameof(trainer));
        using var loader = new DataLoader(train, t.Options.BatchSize, shuffle: true, dropLast: t.Options.DropLast, seed: t.Options.Seed);
        if (loader.BatchesPerEpoch == 0)
            throw new ArgumentException($"LearningRateFinder: {train.Name} has {train.Count} samples, fewer than one batch of {t.Options.BatchSize} with drop-last; lower the batch size.", nameof(train));

        var s = Start(t, from);
        var curve = new List<LearningRatePoint>(o.NumIter);
        double avg = 0, best = double.PositiveInfinity;
        string? reason = null;
        bool diverged = false;
        try
        {
            for (int epoch = 1; reason is null; epoch++)
            {
                foreach (var batch in loader.Epoch(epoch))
                {
                    int i = curve.Count;
                    double loss;
                    try
                    {
                        (s, loss) = t.Step(s, batch);
                    }
                    catch (NonFiniteTrainingException)
                    {
                        // The NaN guard fired before the update: the state was not consumed.
                        loss = double.NaN;
                    }

                    double lr = o.LearningRateAt(i);
                    if (!double.IsFinite(loss))
                    {
                        diverged = true;
                        reason = string.Create(CultureInfo.InvariantCulture, $"diverged: the loss was not finite at step {i} (lr {lr:G3})");
                        break;
                    }

                    double applied = AppliedRate(s);
                    if (!(Math.Abs(applied - lr) <= 1e-9 * lr))
                        throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"LearningRateFinder: step {i} updated with learning rate {applied:G6}, not the swept {lr:G6}; build the optimizer around the schedule the factory is given (lr => new AdamW(lr)), with no gradient accumulation and no schedule of its own."), nameof(trainer));
                    avg = (o.Beta * avg) + ((1 - o.Beta) * loss);
                    double smoothed = avg / (1 - Math.Pow(o.Beta, i + 1));
                    curve.Add(new LearningRatePoint(i, applied, loss, smoothed));
                    best = Math.Min(best, smoothed);
                    if (smoothed > o.DivergenceFactor * best)
                    {
                        diverged = true;
                        reason = string.Create(CultureInfo.InvariantCulture, $"diverged: at step {i} (lr {lr:G3}) the smoothed loss {smoothed:G4} exceeded {o.DivergenceFactor:G3} x the best {best:G4}");
                        break;
                    }

                    if (curve.Count == o.NumIter)
                    {
                        reason = "completed the sweep";
                        break;
                    }
                }
            }
        }
        finally
        {
            s.Dispose();
        }

        var (steepest, minimum) = Suggest(curve, o.NumIter);
        return new LearningRateFinderResult(curve, steepest, minimum, diverged, reason);
    }

    /// <summary>
    /// fastai's <c>steep</c> and <c>minimum</c> suggestions on a curve: the smoothed losses less the
    /// first <paramref name="numIter"/>/10 steps and the last <see cref="SkipEnd"/> (all of them
    /// when that leaves fewer than 2).
    /// </summary>
    /// <param name="curve">The curve.</param>
    /// <param name="numIter">The steps the sweep was planned for.</param>
    /// <returns>The rate of steepest descent (null with fewer than 2 points) and the rate of the minimum divided by 10 (null with none).</returns>
    public static (double? Steepest, double? MinimumOverTen) Suggest(IReadOnlyList<LearningRatePoint> curve, int numIter)
    {
        ArgumentNullException.ThrowIfNull(curve);
        int skipStart = Math.Max(0, numIter / 10);
        var w = curve.Skip(skipStart).Take(curve.Count - skipStart - SkipEnd).ToList();
        if (w.Count < 2)
            w = [.. curve];
        if (w.Count == 0)
            return (null, null);
        int min = 0;
        for (int j = 1; j < w.Count; j++)
        {
            if (w[j].SmoothedLoss < w[min].SmoothedLoss)
                min = j;
        }

        if (w.Count < 2)
            return (null, w[min].LearningRate / 10);
        int steep = 0;
        double steepest = double.PositiveInfinity;
        for (int j = 0; j + 1 < w.Count; j++)
        {
            double slope = (w[j + 1].SmoothedLoss - w[j].SmoothedLoss) / (Math.Log(w[j + 1].LearningRate) - Math.Log(w[j].LearningRate));
            if (slope < steepest)
            {
                steepest = slope;
                steep = j;
            }
        }

        return (w[steep].LearningRate, w[min].LearningRate / 10);
    }

    /// <summary>The starting state: the trainer's initialization, with copies of <paramref name="from"/>'s parameters and model state when given.</summary>
    private static TrainState Start(Trainer t, TrainState? from)
    {
        var s = t.Init();
        if (from is null)
            return s;
        try
        {
            if (!from.Params.Layout.Equals(s.Params.Layout) || !from.State.Layout.Equals(s.State.Layout))
                throw new ArgumentException($"LearningRateFinder: the state to start from does not have the parameters of the trainer's model ({t.ModelDescription}); pass a state of this model.", nameof(from));
            var p = from.Params.Clone();
            var st = from.State.Clone();
            s.Params.Dispose();
            s.State.Dispose();
            return s with { Params = p, State = st };
        }
        catch
        {
            s.Dispose();
            throw;
        }
    }

    /// <summary>The learning rate of the last update, or NaN when the optimizer has no learning-rate schedule or made no update.</summary>
    private static double AppliedRate(TrainState s) =>
        s.OptState.FindAll<ScaleByLearningRateState>().FirstOrDefault() is { Count: > 0 } state ? state.LastLearningRate : double.NaN;
}
