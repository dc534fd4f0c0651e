using System.Globalization;
using System.Text;

namespace IlgpuTrain.Layers;

/// <summary>One parameter of a model with whether it trains, for a fine-tuning printout.</summary>
/// <param name="Path">Its state_dict path, such as <c>0.weight</c>.</param>
/// <param name="Shape">Its shape.</param>
/// <param name="Trainable">Whether it gets a gradient.</param>
public sealed record ParamStatus(string Path, Shape Shape, bool Trainable)
{
    /// <summary>Number of values.</summary>
    public long Count => Shape.Length;
}

/// <summary>Every parameter of a model with its trainable flag, and the totals; <c>ToString()</c> prints the table.</summary>
/// <param name="Trainable">The filter the flags come from.</param>
/// <param name="Rows">The Float32 parameters, in layout order.</param>
public sealed record TrainableReport(ParamFilter Trainable, IReadOnlyList<ParamStatus> Rows)
{
    /// <summary>Values that train.</summary>
    public long TrainableCount => Rows.Where(r => r.Trainable).Sum(r => r.Count);

    /// <summary>Values that stay frozen.</summary>
    public long FrozenCount => Rows.Where(r => !r.Trainable).Sum(r => r.Count);

    /// <inheritdoc/>
    public override string ToString()
    {
        int width = Math.Max(9, Rows.Count == 0 ? 0 : Rows.Max(r => r.Path.Length));
        int shapeWidth = Math.Max(5, Rows.Count == 0 ? 0 : Rows.Max(r => r.Shape.ToString().Length));
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"{"Parameter".PadRight(width)}  {"Shape".PadRight(shapeWidth)}  {"Values",10}  Status");
        foreach (var r in Rows)
            sb.AppendLine(CultureInfo.InvariantCulture, $"{r.Path.PadRight(width)}  {r.Shape.ToString().PadRight(shapeWidth)}  {r.Count,10:N0}  {(r.Trainable ? "trainable" : "frozen")}");
        sb.Append(CultureInfo.InvariantCulture, $"Trainable: {TrainableCount:N0} of {TrainableCount + FrozenCount:N0} values (frozen {FrozenCount:N0}); trainable = {Trainable.Description}");
        return sb.ToString();
    }
}

/// <summary>
/// Fine-tuning: chooses which parameters train by state_dict path. The filters plug into
/// <see cref="GradOptions.Trainable"/>; a frozen parameter is not a leaf of the tape, so its
/// gradient is exactly 0 and the kernels that would compute it (the weight-gradient GEMM of a
/// frozen Dense, the whole backward of a frozen prefix of the model) do not run.
/// </summary>
/// <remarks>
/// <para>Globs: <c>*</c> matches within one path segment, <c>**</c> across segments (<c>**.</c> zero or more whole segments: <c>"**.bias"</c> takes a top-level <c>bias</c> too), <c>?</c> one character.</para>
/// <para><c>Frozen("0.*")</c>: every parameter but those of layer 0 trains (torch: <c>p.requires_grad_(False)</c> for <c>model[0].parameters()</c>).</para>
/// <para><c>TrainableOnly("**.bias")</c>: only the biases train (BitFit).</para>
/// <code>
/// var (loss, grads) = Autodiff.ValueAndGrad(step, parameters, p =&gt; Loss(p, batch), Freezing.Frozen("0.*", "1.*").AsGradOptions());
/// </code>
/// <para>The optimizer side: <c>ParamMask.From(filter)</c> in IlgpuTrain.Optimizers, for instance to size
/// optimizer moments to the trainable parameters only (<c>Freeze.AllExcept</c>).</para>
/// </remarks>
public static class Freezing
{
    /// <summary>The trainable filter that freezes the parameters matching any glob and trains every other one.</summary>
    /// <param name="globs">Paths to freeze, such as <c>"0.*"</c> or <c>"block.**"</c>.</param>
    /// <returns>The filter of the parameters that train.</returns>
    public static ParamFilter Frozen(params string[] globs)
    {
        return ParamFilter.Glob(globs).Not() with { Description = "all but " + string.Join(" | ", globs) };
    }

    /// <summary>The trainable filter that trains only the parameters matching any glob and freezes every other one.</summary>
    /// <param name="globs">Paths to train, such as <c>"2.*"</c> or <c>"**.bias"</c>.</param>
    /// <returns>The filter of the parameters that train.</returns>
    public static ParamFilter TrainableOnly(params string[] globs)
    {
        return ParamFilter.Glob(globs) with { Description = "only " + string.Join(" | ", globs) };
    }

    /// <summary>Gradient options with <paramref name="trainable"/> as the trainable filter.</summary>
    /// <param name="trainable">Which parameters train.</param>
    /// <param name="seed">d objective / d loss (1, or the loss scale).</param>
    /// <returns>The options for Autodiff.ValueAndGrad.</returns>
    public static GradOptions AsGradOptions(this ParamFilter trainable, float seed = 1f)
    {
        ArgumentNullException.ThrowIfNull(trainable);
        return new GradOptions { Trainable = trainable, Seed = seed };
    }

    /// <summary>
    /// Every Float32 parameter of <paramref name="layout"/> with whether it trains.
    /// </summary>
    /// <param name="layout">The parameters' layout (<c>parameters.Layout</c>).</param>
    /// <param name="trainable">Which train; null means all.</param>
    /// <returns>The report; <c>ToString()</c> prints it.</returns>
    public static TrainableReport Report(ParamLayout layout, ParamFilter? trainable = null)
    {
        ArgumentNullException.ThrowIfNull(layout);
        trainable ??= ParamFilter.All;
        var rows = layout.Params
            .Where(p => p.DType == DType.Float32)
            .Select(p => new ParamStatus(p.Path, p.Shape, trainable.Matches(p.Path)))
            .ToList();
        return new TrainableReport(trainable, rows);
    }

    /// <summary>
    /// Throws when a glob of a freezing filter matches no parameter of <paramref name="layout"/>,
    /// so a misspelt path fails loudly instead of silently training (or freezing) everything.
    /// </summary>
    /// <param name="layout">The parameters' layout.</param>
    /// <param name="globs">The globs given to <see cref="Frozen"/> or <see cref="TrainableOnly"/>.</param>
    public static void RequireMatches(ParamLayout layout, params string[] globs) =>
        ParamFilter.Glob(globs).RequireMatches(layout, nameof(Freezing));
}
