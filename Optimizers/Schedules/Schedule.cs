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
