using System.Globalization;

namespace IlgpuTrain.Training;

/// <summary>Where a non-finite value was first found, and the context of the step.</summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="Step">Training batches processed before this one.</param>
/// <param name="Batch">0-based batch in the epoch.</param>
/// <param name="LearningRate">The learning rate the failing update would have used.</param>
/// <param name="Source">The first non-finite source: "input batch", "parameter 3.weight", "output of layer \"2\" (Dense(10))", "loss", "gradient of 0.weight".</param>
/// <param name="Detail">What was found there (counts, largest magnitude).</param>
/// <param name="MaxAbs">The largest finite magnitude in the source.</param>
/// <param name="Loss">The loss value of the step.</param>
/// <param name="ConsecutiveSkips">Loss-scaling skips in a row that preceded it (0 without loss scaling).</param>
/// <param name="LossScale">The loss scale under mixed precision, else null.</param>
public sealed record NanReport(int Epoch, long Step, int Batch, double LearningRate, string Source, string Detail, double MaxAbs, double Loss, int ConsecutiveSkips, double? LossScale)
{
    /// <summary>The diagnosis with the likely fixes (<see cref="NanDiagnosis.Format"/>).</summary>
    /// <returns>The multi-line message.</returns>
    public override string ToString()
    {
        string skips = ConsecutiveSkips > 0 ? $"; the loss scale skipped {ConsecutiveSkips} steps in a row, so the gradients stay non-finite at every scale" : string.Empty;
        string where = string.Create(CultureInfo.InvariantCulture, $"{Source} at batch {Batch} ({Detail}); loss {Loss:G6}{skips}");
        return new NanDiagnosis(Step, Epoch, LearningRate, where, MaxAbs, LossScale).Format();
    }
}

/// <summary>Thrown by the trainer's NaN guard; <see cref="Report"/> says where and what to try.</summary>
public sealed class NonFiniteTrainingException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="report">The diagnosis.</param>
    public NonFiniteTrainingException(NanReport report)
        : base(report?.ToString())
    {
        Report = report!;
    }

    /// <summary>The diagnosis.</summary>
    public NanReport Report { get; }
}

/// <summary>
/// Finds the first non-finite value of a failing step, in the order the data flows: the input
/// batch, the parameters, each layer's output (the forward is run again with an observer on the
/// same batch and randomness), the loss, then the gradients in parameter order.
/// </summary>
public static class NanGuard
{
    // Inputs this large overflow fp16 and make activations explode in fp32; call them out even when finite.
    private const float HugeInput = 1e6f;

    /// <summary>Diagnoses a step whose loss or gradients were not finite.</summary>
    /// <param name="device">The device.</param>
    /// <param name="model">The model.</param>
    /// <param name="s">The state before the step.</param>
    /// <param name="batch">The batch.</param>
    /// <param name="dropout">The step's dropout randomness.</param>
    /// <param name="grads">The step's gradients (after unscaling).</param>
    /// <param name="loss">The step's loss.</param>
    /// <param name="epoch">1-based epoch.</param>
    /// <param name="consecutiveSkips">Loss-scaling skips in a row (0 without loss scaling).</param>
    /// <returns>The report.</returns>
    public static NanReport Diagnose(Device device, Layer model, TrainState s, HostBatch batch, Rng dropout, ParamTree grads, float loss, int epoch, int consecutiveSkips)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(s);
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(grads);
        double? scale = s.LossScale is DynamicLossScale d ? d.Scale : null;
        NanReport At(string source, Scanned? f, string? detail = null) =>
            new(epoch, s.Step, batch.Index, s.NextLearningRate, source, detail ?? f?.Describe() ?? string.Empty, f?.MaxAbs ?? double.NaN, loss, consecutiveSkips, scale);

        var input = Scan(batch.X);
        if (input.NonFinite > 0 || input.MaxAbs > HugeInput)
            return At("input batch", input);

        var parameters = s.Params.ToHost();
        foreach (var info in s.Params.Layout.Params)
        {
            if (parameters.TryGetValue(info.Path, out var p) && Scan(p.Data) is { NonFinite: > 0 } bad)
                return At("parameter " + info.Path, bad);
        }

        (string Path, string Layer, Scanned Found)? layer = null;
        using (var step = device.BeginStep())
        {
            var x = step.Upload(batch.X, batch.Shape);
            var (_, newState) = model.Apply(Params.Bind(s.Params, step), s.State, x, Mode.Train, dropout, (path, l, y) =>
            {
                if (layer is null && y.DType == DType.Float32 && Scan(y.ToHost()) is { NonFinite: > 0 } f)
                    layer = (path, l.Describe(), f);
            });
            if (!ReferenceEquals(newState, s.State))
                newState.Dispose();
        }

        if (layer is { } found)
            return At($"output of layer \"{found.Path}\" ({found.Layer})", found.Found);
        if (!float.IsFinite(loss))
            return At("loss", null, "the model's outputs are finite, so the loss itself overflowed (logits too large for the loss, or label smoothing on bad targets)");

        var g = grads.ToHost();
        foreach (var info in grads.Layout.Params)
        {
            if (g.TryGetValue(info.Path, out var v) && Scan(v.Data) is { NonFinite: > 0 } bad)
                return At("gradient of " + info.Path, bad);
        }

        return At("unknown", null, "every value checked was finite on the second look; the failure may depend on timing or atomics");
    }

    private static Scanned Scan(ReadOnlySpan<float> values)
    {
        int nan = 0, inf = 0;
        float max = 0;
        foreach (float v in values)
        {
            if (float.IsNaN(v))
                nan++;
            else if (float.IsInfinity(v))
                inf++;
            else
                max = Math.Max(max, Math.Abs(v));
        }

        return new Scanned(nan, inf, max, values.Length);
    }

    private readonly record struct Scanned(int Nan, int Inf, float MaxAbs, int Count)
    {
        public int NonFinite => Nan + Inf;

        public string Describe() => string.Create(CultureInfo.InvariantCulture, $"{Nan} NaN and {Inf} inf of {Count} values; largest finite |value| {MaxAbs:G4}");
    }
}
