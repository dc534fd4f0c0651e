using System.Text;

namespace IlgpuTrain.Optimizers;

/// <summary>
/// Schedules one after another: Optax's <c>join_schedules(schedules, boundaries)</c>. From
/// boundary b_i on, schedule i + 1 runs on its own clock, t − b_i.
/// </summary>
/// <remarks>
/// <para>lr(t) = s_0(t) for t &lt; b_0</para>
/// <para>lr(t) = s_{i+1}(t − b_i) for b_i ≤ t &lt; b_{i+1}</para>
/// <para>Example: warmup then cosine, <c>new Join([new LinearLR(peak, 0.01, 1, W), new CosineAnnealingLR(peak, T − W)], [W])</c>.
/// PyTorch's SequentialLR(schedulers, milestones) gives the same values for closed-form schedulers.</para>
/// </remarks>
/// <param name="Schedules">The schedules, at least one.</param>
/// <param name="Boundaries">Where each next schedule starts: one fewer than the schedules, each at least 0, strictly increasing.</param>
public sealed record Join(IReadOnlyList<Schedule> Schedules, IReadOnlyList<int> Boundaries) : Schedule
{
    private readonly bool _checked = Check(Schedules, Boundaries);

    /// <summary>The schedules (a copy of the constructor's list).</summary>
    public IReadOnlyList<Schedule> Schedules { get; init; } = [.. Schedules];

    /// <summary>The boundaries (a copy of the constructor's list).</summary>
    public IReadOnlyList<int> Boundaries { get; init; } = [.. Boundaries];

    /// <inheritdoc/>
    public override double At(long step)
    {
        CheckStep(step);
        Check(Schedules, Boundaries);
        int i = 0;
        while (i < Boundaries.Count && Boundaries[i] <= step)
            i++;
        return Schedules[i].At(i == 0 ? step : step - Boundaries[i - 1]);
    }

    /// <inheritdoc/>
    public bool Equals(Join? other) =>
        other is not null && Schedules.SequenceEqual(other.Schedules) && Boundaries.SequenceEqual(other.Boundaries);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var h = new HashCode();
        foreach (var s in Schedules)
            h.Add(s);
        foreach (int b in Boundaries)
            h.Add(b);
        return h.ToHashCode();
    }

    /// <summary>Prints the lists' items rather than their type names.</summary>
    /// <param name="builder">The builder.</param>
    /// <returns>True: members were printed.</returns>
    protected override bool PrintMembers(StringBuilder builder)
    {
        builder.Append($"Schedules = [{string.Join(", ", Schedules)}], Boundaries = [{string.Join(", ", Boundaries)}]");
        return true;
    }

    private static bool Check(IReadOnlyList<Schedule> schedules, IReadOnlyList<int> boundaries)
    {
        ArgumentNullException.ThrowIfNull(schedules);
        ArgumentNullException.ThrowIfNull(boundaries);
        Require(schedules.Count >= 1, nameof(Schedules), schedules.Count, "Join: needs at least one schedule");
        for (int i = 0; i < schedules.Count; i++)
            Require(schedules[i] is not null, nameof(Schedules), $"[{i}] = null", "Join: no schedule may be null");
        Require(boundaries.Count == schedules.Count - 1, nameof(Boundaries), boundaries.Count, $"Join: needs one boundary fewer than schedules ({schedules.Count - 1})");
        for (int i = 0; i < boundaries.Count; i++)
        {
            Require(boundaries[i] >= (i == 0 ? 0 : boundaries[i - 1] + 1), nameof(Boundaries), $"[{string.Join(", ", boundaries)}]",
                "Join: boundaries must be at least 0 and strictly increasing");
        }
        return true;
    }
}
