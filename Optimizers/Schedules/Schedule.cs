using System.Text.Json;
using System.Text.Json.Serialization;

namespace IlgpuTrain.Optimizers;

/// <summary>
/// A learning-rate (or momentum) schedule: an immutable record with <see cref="At"/>, printable,
/// and serializable to JSON so a checkpoint can store it. t is the update count, starting at 0.
/// A plain number converts to a <see cref="Constant"/> schedule.
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "type")]
[JsonDerivedType(typeof(Constant), "constant")]
[JsonDerivedType(typeof(InverseTimeDecay), "inverse_time_decay")]
[JsonDerivedType(typeof(StepLR), "step_lr")]
[JsonDerivedType(typeof(MultiStepLR), "multi_step_lr")]
[JsonDerivedType(typeof(ExponentialLR), "exponential_lr")]
[JsonDerivedType(typeof(CosineAnnealingLR), "cosine_annealing_lr")]
[JsonDerivedType(typeof(CosineAnnealingWarmRestarts), "cosine_annealing_warm_restarts")]
[JsonDerivedType(typeof(LinearLR), "linear_lr")]
[JsonDerivedType(typeof(LinearWarmupDecay), "linear_warmup_decay")]
[JsonDerivedType(typeof(Noam), "noam")]
[JsonDerivedType(typeof(WarmupPlateauDecay), "warmup_plateau_decay")]
[JsonDerivedType(typeof(OneCycleLR), "one_cycle_lr")]
[JsonDerivedType(typeof(OneCycleMomentum), "one_cycle_momentum")]
[JsonDerivedType(typeof(Join), "join")]
public abstract record Schedule
{
    private static readonly JsonSerializerOptions JsonOptions = new() { WriteIndented = false };

    /// <summary>The value at update count <paramref name="step"/> (0-based).</summary>
    /// <param name="step">The update count, at least 0.</param>
    /// <returns>The learning rate.</returns>
    public abstract double At(long step);

    /// <summary>A constant schedule.</summary>
    /// <param name="value">The learning rate.</param>
    public static implicit operator Schedule(double value) => new Constant(value);

    /// <summary>Serializes the schedule (with its type) to JSON.</summary>
    /// <returns>The JSON text.</returns>
    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Reads a schedule written by <see cref="ToJson"/>.</summary>
    /// <param name="json">The JSON text.</param>
    /// <returns>The schedule.</returns>
    public static Schedule FromJson(string json)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(json);
        try
        {
            return JsonSerializer.Deserialize<Schedule>(json, JsonOptions) ?? throw new JsonException("null schedule");
        }
        catch (Exception e) when (e is JsonException or NotSupportedException)
        {
            throw new FormatException($"Not a schedule: {e.Message} (input: {(json.Length > 200 ? json[..200] + "..." : json)}).", e);
        }
    }

    /// <summary>Throws unless <paramref name="step"/> is a valid update count.</summary>
    /// <param name="step">The step.</param>
    protected static void CheckStep(long step)
    {
        if (step < 0)
            throw new ArgumentOutOfRangeException(nameof(step), step, "Schedule steps count updates from 0.");
    }

    /// <summary>
    /// Throws an <see cref="ArgumentOutOfRangeException"/> carrying the argument's name and value
    /// unless <paramref name="ok"/>. Schedules check their arguments on construction (JSON
    /// included) and again in <see cref="At"/>, because <c>with</c> sets properties without a constructor.
    /// </summary>
    /// <param name="ok">Whether the argument is valid.</param>
    /// <param name="argument">The argument's name.</param>
    /// <param name="value">Its value.</param>
    /// <param name="rule">The schedule, the valid range and the PyTorch name, e.g. "StepLR: gamma must be finite and greater than 0".</param>
    protected static void Require(bool ok, string argument, object value, string rule)
    {
        if (!ok)
            throw new ArgumentOutOfRangeException(argument, value, rule + ".");
    }

    /// <summary>
    /// low + (high − low)·(1 + cos(π·t/period))/2: half a cosine from high at t = 0 to low at
    /// t = period, in the operation order of PyTorch's CosineAnnealingLR closed form.
    /// </summary>
    /// <param name="high">The value at t = 0.</param>
    /// <param name="low">The value at t = period.</param>
    /// <param name="t">Steps into the half cosine.</param>
    /// <param name="period">Its length.</param>
    /// <returns>The value.</returns>
    protected static double HalfCosine(double high, double low, double t, double period) =>
        low + ((high - low) * (1 + Math.Cos(Math.PI * t / period)) / 2);

    /// <summary>Checks that a learning rate (or other scale) is finite and at least 0.</summary>
    /// <param name="value">The value.</param>
    /// <param name="argument">The argument's name.</param>
    /// <param name="schedule">The schedule's name and the PyTorch name, e.g. "StepLR: the base learning rate (PyTorch lr)".</param>
    protected static void RequireRate(double value, string argument, string schedule) =>
        Require(double.IsFinite(value) && value >= 0, argument, value, $"{schedule} must be finite and at least 0");
}

/// <summary>lr(t) = <paramref name="Value"/>.</summary>
/// <param name="Value">The learning rate.</param>
public sealed record Constant(double Value) : Schedule
{
    /// <inheritdoc/>
    public override double At(long step)
    {
        CheckStep(step);
        return Value;
    }
}

/// <summary>
/// lr(t) = <paramref name="Initial"/> / (1 + t·<paramref name="DecayRate"/>): PyTorch Adagrad's
/// <c>lr_decay</c> (clr = lr / (1 + (step − 1)·lr_decay) with its 1-based step) and Optax's
/// <c>inverse_time_decay</c> with decay_steps 1.
/// </summary>
/// <param name="Initial">lr(0).</param>
/// <param name="DecayRate">Decay per update, at least 0.</param>
public sealed record InverseTimeDecay(double Initial, double DecayRate) : Schedule
{
    /// <inheritdoc/>
    public override double At(long step)
    {
        CheckStep(step);
        if (!(DecayRate >= 0))
            throw new ArgumentOutOfRangeException(nameof(DecayRate), DecayRate, "InverseTimeDecay: the decay rate must be at least 0.");
        return Initial / (1 + (step * DecayRate));
    }
}

/// <summary>How a schedule moves between two values (PyTorch OneCycleLR's <c>anneal_strategy</c>).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<AnnealStrategy>))]
public enum AnnealStrategy
{
    /// <summary>Half a cosine: end + (start − end)·(1 + cos(π·p))/2 for progress p in [0, 1] (PyTorch "cos").</summary>
    Cosine,

    /// <summary>A straight line: start + (end − start)·p (PyTorch "linear").</summary>
    Linear,
}
