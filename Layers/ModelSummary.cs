using System.Globalization;
using System.Text;

namespace IlgpuTrain.Layers;

/// <summary>One row of a <see cref="ModelSummary"/>: a leaf layer, its output shape and its parameter count.</summary>
/// <param name="Path">Its path prefix, such as "3" or "2.block.0".</param>
/// <param name="Layer">Its description.</param>
/// <param name="OutputShape">Per-sample output shape.</param>
/// <param name="Parameters">Parameter values, trainable and frozen.</param>
/// <param name="Buffers">State values (running statistics).</param>
/// <param name="Frozen">The parameter values among <paramref name="Parameters"/> that do not train (fine-tuning; 0 when all train).</param>
public sealed record SummaryRow(string Path, string Layer, Shape OutputShape, long Parameters, long Buffers, long Frozen = 0);

/// <summary>
/// A model's table, as Keras' <c>model.summary()</c>: every leaf layer with its output shape and
/// parameter count, the totals, and an estimate of the memory one training step needs.
/// </summary>
/// <param name="InputShape">Per-sample input shape.</param>
/// <param name="BatchSize">Batch size of the estimate.</param>
/// <param name="Rows">The leaf layers in order.</param>
public sealed record ModelSummary(Shape InputShape, int BatchSize, IReadOnlyList<SummaryRow> Rows)
{
    /// <summary>Parameter values, trainable and frozen.</summary>
    public long TotalParameters => Rows.Sum(r => r.Parameters);

    /// <summary>Parameter values that do not train (0 unless the summary was made with a trainable filter).</summary>
    public long FrozenParameters => Rows.Sum(r => r.Frozen);

    /// <summary>Parameter values that train: <see cref="TotalParameters"/> less <see cref="FrozenParameters"/>.</summary>
    public long TrainableParameters => TotalParameters - FrozenParameters;

    /// <summary>Buffer values.</summary>
    public long TotalBuffers => Rows.Sum(r => r.Buffers);

    /// <summary>Per-sample values of every layer output (the activations a training forward keeps).</summary>
    public long ActivationsPerSample => Rows.Sum(r => r.OutputShape.Length);

    /// <summary>
    /// Bytes of one fp32 training step with Adam: the parameters (4 B each), the trainable ones'
    /// gradients and two moments (3 x 4 B each), buffers, and the activations with their gradients
    /// (2 x 4 B per value per sample). Convolutions also need im2col workspace, which this estimate
    /// leaves out.
    /// </summary>
    public long EstimatedTrainingBytes => (4 * TotalParameters) + (12 * TrainableParameters) + (4 * TotalBuffers) + (8L * ActivationsPerSample * BatchSize);

    /// <summary>Builds the summary; throws the first layer's shape error if the model cannot take the input.</summary>
    /// <param name="model">The model.</param>
    /// <param name="inputShape">Per-sample input shape.</param>
    /// <param name="batchSize">Batch size for the estimate.</param>
    /// <param name="trainable">Which parameters train (by path, as <c>TrainerOptions.Trainable</c>), or null for all.</param>
    /// <returns>The summary.</returns>
    public static ModelSummary Of(Layer model, Shape inputShape, int batchSize = 1, ParamFilter? trainable = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(inputShape);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        _ = model.OutputShape(inputShape);
        var rows = new List<SummaryRow>();
        Walk(model, string.Empty, inputShape, trainable, rows);
        return new ModelSummary(inputShape, batchSize, rows);
    }

    /// <inheritdoc/>
    public override string ToString()
    {
        var table = new List<string[]> { new[] { "Layer", "Output shape", "Params" } };
        foreach (var r in Rows)
            table.Add([(r.Path.Length > 0 ? r.Path + " " : string.Empty) + r.Layer, "(N, " + string.Join(", ", r.OutputShape) + ")", r.Parameters.ToString("N0", CultureInfo.InvariantCulture)]);
        var widths = Enumerable.Range(0, 3).Select(c => table.Max(row => row[c].Length)).ToArray();
        var sb = new StringBuilder();
        string rule = new('-', widths.Sum() + 4);
        sb.AppendLine(CultureInfo.InvariantCulture, $"Input: (N, {string.Join(", ", InputShape)})");
        sb.AppendLine(rule);
        for (int i = 0; i < table.Count; i++)
        {
            var row = table[i];
            sb.AppendLine(CultureInfo.InvariantCulture, $"{row[0].PadRight(widths[0])}  {row[1].PadRight(widths[1])}  {row[2].PadLeft(widths[2])}");
            if (i == 0)
                sb.AppendLine(rule);
        }

        sb.AppendLine(rule);
        sb.AppendLine(FrozenParameters == 0
            ? string.Create(CultureInfo.InvariantCulture, $"Trainable parameters: {TotalParameters:N0} ({Bytes.Format(4 * TotalParameters)})")
            : string.Create(CultureInfo.InvariantCulture, $"Trainable parameters: {TrainableParameters:N0} of {TotalParameters:N0} ({FrozenParameters:N0} frozen; {Bytes.Format(4 * TotalParameters)} in all)"));
        sb.AppendLine(CultureInfo.InvariantCulture, $"Buffers: {TotalBuffers:N0}");
        sb.Append(CultureInfo.InvariantCulture, $"Estimated training memory at batch {BatchSize} (fp32, Adam): {Bytes.Format(EstimatedTrainingBytes)}");
        return sb.ToString();
    }

    private static void Walk(Layer layer, string path, Shape input, ParamFilter? trainable, List<SummaryRow> rows)
    {
        var children = layer.Children().ToList();
        var parameters = layer.Parameters(input);
        long own = parameters.Sum(p => p.Shape.Length);
        long frozen = trainable is null ? 0 : parameters.Where(p => !trainable.Matches(path.Length == 0 ? p.Name : path + "." + p.Name)).Sum(p => p.Shape.Length);
        long buffers = layer.Buffers(input).Sum(p => p.Shape.Length);
        if (children.Count == 0 || own > 0 || buffers > 0)
            rows.Add(new SummaryRow(path, layer.Describe(), layer.OutputShape(input), own, buffers, frozen));
        if (children.Count == 0)
            return;
        var shapes = layer.ChildInputShapes(input);
        for (int i = 0; i < children.Count; i++)
            Walk(children[i].Layer, path.Length == 0 ? children[i].Name : path + "." + children[i].Name, shapes[i], trainable, rows);
    }
}
