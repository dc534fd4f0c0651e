using System.Text;

namespace IlgpuTrain.Optimizers;

// Decay by a factor gamma: every StepSize updates (StepLR), at milestones (MultiStepLR), or every
// update (ExponentialLR). PyTorch's closed forms (_get_closed_form_lr); its chainable recursive
// form multiplies the previous lr by gamma and agrees to float rounding.

/// <summary>
/// lr(t) = base·γ^⌊t/step_size⌋: PyTorch <c>torch.optim.lr_scheduler.StepLR</c>.
/// </summary>
/// <param name="BaseLr">lr(0) (the optimizer's lr in PyTorch), finite and at least 0.</param>
/// <param name="StepSize">Updates between decays (PyTorch step_size), at least 1.</param>
/// <param name="Gamma">Factor per decay (PyTorch gamma, default 0.1), finite and greater than 0.</param>
public sealed record StepLR(double BaseLr, int StepSize, double Gamma = 0.1) : Schedule
{
    private readonly bool _checked = Check(BaseLr, StepSize, Gamma);

    /// <inheritdoc/>
    public override double At(long step)
    {
        CheckStep(step);
        Check(BaseLr, StepSize, Gamma);
        return BaseLr * Math.Pow(Gamma, step / StepSize);
    }

    private static bool Check(double baseLr, int stepSize, double gamma)
    {
        RequireRate(baseLr, nameof(BaseLr), "StepLR: the base learning rate (PyTorch lr)");
        Require(stepSize >= 1, nameof(StepSize), stepSize, "StepLR: step_size must be at least 1");
        Require(double.IsFinite(gamma) && gamma > 0, nameof(Gamma), gamma, "StepLR: gamma must be finite and greater than 0");
        return true;
    }
}

/// <summary>
/// lr(t) = base·γ^(number of milestones ≤ t): PyTorch <c>torch.optim.lr_scheduler.MultiStepLR</c>.
/// A milestone listed twice decays twice, as PyTorch's Counter of milestones does.
/// </summary>
/// <param name="BaseLr">lr(0), finite and at least 0.</param>
/// <param name="Milestones">Update counts at which lr is multiplied by γ (PyTorch milestones), each at least 0, in any order.</param>
/// <param name="Gamma">Factor per milestone (PyTorch gamma, default 0.1), finite and greater than 0.</param>
public sealed record MultiStepLR(double BaseLr, IReadOnlyList<int> Milestones, double Gamma = 0.1) : Schedule
{
    private readonly bool _checked = Check(BaseLr, Milestones, Gamma);

    /// <summary>The milestones (a copy of the constructor's list, so the caller's array cannot change the schedule).</summary>
    public IReadOnlyList<int> Milestones { get; init; } = [.. Milestones];

    /// <inheritdoc/>
    public override double At(long step)
    {
        CheckStep(step);
        Check(BaseLr, Milestones, Gamma);
        int passed = 0;
        foreach (int m in Milestones)
        {
            if (m <= step)
                passed++;
        }
        return BaseLr * Math.Pow(Gamma, passed);
    }

    /// <inheritdoc/>
    public bool Equals(MultiStepLR? other) =>
        other is not null && BaseLr.Equals(other.BaseLr) && Gamma.Equals(other.Gamma) && Milestones.SequenceEqual(other.Milestones);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var h = new HashCode();
        h.Add(BaseLr);
        h.Add(Gamma);
        foreach (int m in Milestones)
            h.Add(m);
        return h.ToHashCode();
    }

    /// <summary>Prints the milestones as a list rather than a type name.</summary>
    /// <param name="builder">The builder.</param>
    /// <returns>True: members were printed.</returns>
    protected override bool PrintMembers(StringBuilder builder)
    {
        builder.Append($"BaseLr = {BaseLr}, Milestones = [{string.Join(", ", Milestones)}], Gamma = {Gamma}");
        return true;
    }

    private static bool Check(double baseLr, IReadOnlyList<int> milestones, double gamma)
    {
        RequireRate(baseLr, nameof(BaseLr), "MultiStepLR: the base learning rate (PyTorch lr)");
        ArgumentNullException.ThrowIfNull(milestones);
        foreach (int m in milestones)
            Require(m >= 0, nameof(Milestones), m, "MultiStepLR: every milestone must be at least 0 (PyTorch milestones count updates from 0)");
        Require(double.IsFinite(gamma) && gamma > 0, nameof(Gamma), gamma, "MultiStepLR: gamma must be finite and greater than 0");
        return true;
    }
}

/// <summary>
/// lr(t) = base·γ^t: PyTorch <c>torch.optim.lr_scheduler.ExponentialLR</c>.
/// </summary>
/// <param name="BaseLr">lr(0), finite and at least 0.</param>
/// <param name="Gamma">Factor per update (PyTorch gamma), finite and greater than 0.</param>
public sealed record ExponentialLR(double BaseLr, double Gamma) : Schedule
{
    private readonly bool _checked = Check(BaseLr, Gamma);

    /// <inheritdoc/>
    public override double At(long step)
    {
        CheckStep(step);
        Check(BaseLr, Gamma);
        return BaseLr * Math.Pow(Gamma, step);
    }

    private static bool Check(double baseLr, double gamma)
    {
        RequireRate(baseLr, nameof(BaseLr), "ExponentialLR: the base learning rate (PyTorch lr)");
        Require(double.IsFinite(gamma) && gamma > 0, nameof(Gamma), gamma, "ExponentialLR: gamma must be finite and greater than 0");
        return true;
    }
}
