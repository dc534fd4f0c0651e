namespace IlgpuTrain.Training;

/// <summary>One sample's prediction by a classifier (<see cref="Predictor.Predict"/>).</summary>
/// <param name="Class">The arg-max class.</param>
/// <param name="Label">The class's name, when the checkpoint knows the names.</param>
/// <param name="Probability">softmax(logits)[Class].</param>
/// <param name="Logits">The model's raw outputs.</param>
/// <param name="Probabilities">softmax(logits), summing to 1.</param>
public sealed record Prediction(int Class, string? Label, float Probability, float[] Logits, float[] Probabilities);

/// <summary>One sample's prediction by a multi-label model (<see cref="Predictor.PredictLabels"/>).</summary>
/// <param name="Labels">The labels that are on: σ(logit) above the label's threshold (<see cref="ModelTask.ThresholdOf"/>), in label order.</param>
/// <param name="Names">The names of <paramref name="Labels"/>, when the checkpoint knows the label names.</param>
/// <param name="Probabilities">σ(logit) of every label, in float32 as the training metrics compute it.</param>
/// <param name="Logits">The model's raw outputs.</param>
public sealed record LabelsPrediction(IReadOnlyList<int> Labels, IReadOnlyList<string>? Names, float[] Probabilities, float[] Logits);

/// <summary>One sample's prediction by a regression model (<see cref="Predictor.PredictValues"/>).</summary>
/// <param name="Values">The predicted value of each target, in the targets' own units (training does not standardize targets).</param>
/// <param name="Names">The target names, when the checkpoint knows them.</param>
public sealed record RegressionPrediction(float[] Values, IReadOnlyList<string>? Names);

/// <summary>
/// Runs a trained model on host data: loads a checkpoint that carries its model (<see cref="ModelFile.Load(string, IlgpuTrain.Functional.ComputeDevice, bool)"/>), and
/// predicts on raw inputs in batches, in Eval mode (dropout off, BatchNorm on its running statistics), after applying
/// the normalization (images) or feature standardization (CSV rows) the model was trained with.
/// </summary>
/// <remarks>
/// <para>Each task has its method, and the checkpoint's <see cref="SavedModel.Task"/> says which applies:
/// <see cref="Predict"/> for a classifier (arg-max and softmax), <see cref="PredictLabels"/> for a multi-label model
/// (σ and the thresholds it was trained with), <see cref="PredictValues"/> for regression. <see cref="Outputs"/> gives
/// any model's raw outputs. Calling another task's method throws, naming the right one.</para>
/// <para>Batching does not change the result: every sample's outputs depend only on that sample in Eval mode.</para>
/// </remarks>
public sealed class Predictor : IDisposable
{
    /// <summary>Samples per forward pass unless told otherwise.</summary>
    public const int DefaultBatchSize = 256;

    private readonly LoadedModel _model;
    private readonly Device _device;

    /// <summary>A predictor over a loaded model; it takes ownership of <paramref name="model"/>.</summary>
    /// <param name="model">The model and its weights.</param>
    /// <param name="device">The device the weights live on.</param>
    /// <param name="batchSize">Samples per forward pass.</param>
    public Predictor(LoadedModel model, Device device, int batchSize = DefaultBatchSize)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(device);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        _model = model;
        _device = device;
        BatchSize = batchSize;
        OutputShape = model.Model.Layer.OutputShape(model.Model.InputShape);
    }

    /// <summary>The model, input shape, normalization and class names.</summary>
    public SavedModel Model => _model.Model;

    /// <summary>Per-sample input shape.</summary>
    public Shape InputShape => _model.Model.InputShape;

    /// <summary>Per-sample output shape.</summary>
    public Shape OutputShape { get; }

    /// <summary>Samples per forward pass.</summary>
    public int BatchSize { get; }

    /// <summary>A predictor for the model a checkpoint carries.</summary>
    /// <param name="path">The checkpoint.</param>
    /// <param name="device">Where to run.</param>
    /// <param name="batchSize">Samples per forward pass.</param>
    /// <param name="averaged">Use the averaged weights (a run with EMA or SWA) instead of the trained ones.</param>
    /// <returns>The predictor; dispose it to free the weights.</returns>
    public static Predictor Load(string path, Device device, int batchSize = DefaultBatchSize, bool averaged = false)
    {
        var model = ModelFile.Load(path, device, averaged);
        try
        {
            return new Predictor(model, device, batchSize);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The model's raw outputs for <paramref name="inputs"/>: whole samples of <see cref="InputShape"/>, back to back,
    /// as they come from the data set (before normalization or standardization: <see cref="SavedModel.Normalization"/>
    /// and then <see cref="SavedModel.Standardization"/> are applied here). The result holds one <see cref="OutputShape"/> per sample.
    /// </summary>
    /// <param name="inputs">N samples, N * InputShape.Length floats.</param>
    /// <returns>N * OutputShape.Length floats.</returns>
    /// <exception cref="ArgumentException">The length is not a whole number of samples.</exception>
    public float[] Outputs(ReadOnlySpan<float> inputs)
    {
        int sample = checked((int)InputShape.Length), outLen = checked((int)OutputShape.Length);
        if (sample == 0 || inputs.Length % sample != 0)
        {
            throw new ArgumentException(
                $"Predictor: {inputs.Length} floats are not whole samples of shape {InputShape} ({sample} floats each); pass N samples back to back, each of the model's input shape.",
                nameof(inputs));
        }

        int n = inputs.Length / sample;
        var result = new float[n * outLen];
        var x = new float[Math.Min(n, BatchSize) * sample];
        for (int start = 0; start < n; start += BatchSize)
        {
            int b = Math.Min(BatchSize, n - start);
            var chunk = x.AsSpan(0, b * sample);
            inputs.Slice(start * sample, b * sample).CopyTo(chunk);
            Model.Normalization?.Apply(chunk, InputShape);
            Model.Standardization?.Apply(chunk);
            using var step = _device.BeginStep();
            var y = _model.Model.Layer.Predict(_model.Params, _model.State, step.Upload(chunk, new Shape([b, .. InputShape])));
            y.ToHost().CopyTo(result, start * outLen);
        }

        return result;
    }

    /// <summary>Class predictions: arg-max, its probability and name, and the full softmax of each sample's outputs.</summary>
    /// <param name="inputs">N samples back to back, before normalization.</param>
    /// <returns>One prediction per sample.</returns>
    /// <exception cref="InvalidOperationException">The model is not a classifier (the message names the method for its task).</exception>
    public IReadOnlyList<Prediction> Predict(ReadOnlySpan<float> inputs)
    {
        Require(ModelTaskKind.Classification, nameof(Predict));
        int classes = checked((int)OutputShape.Length);
        var logits = Outputs(inputs);
        var result = new Prediction[classes == 0 ? 0 : logits.Length / classes];
        for (int i = 0; i < result.Length; i++)
        {
            var z = logits.AsSpan(i * classes, classes).ToArray();

            // softmax in float64 after subtracting the row max, so large logits do not overflow.
            double max = z.Max(), sum = 0;
            var p = new double[classes];
            for (int c = 0; c < classes; c++)
                sum += p[c] = Math.Exp(z[c] - max);
            var probs = p.Select(v => (float)(v / sum)).ToArray();
            int best = Array.IndexOf(z, z.Max());
            var names = Model.ClassNames;
            result[i] = new Prediction(best, names is not null && best < names.Count ? names[best] : null, probs[best], z, probs);
        }

        return result;
    }

    /// <summary>
    /// Multi-label predictions: σ(logit) of every label, and the labels above their thresholds (the ones the model was
    /// trained with, <see cref="ModelTask.ThresholdOf"/>; torchmetrics' rule σ(x) &gt; threshold, as the training metrics).
    /// </summary>
    /// <param name="inputs">N samples back to back, before normalization or standardization.</param>
    /// <returns>One prediction per sample.</returns>
    /// <exception cref="InvalidOperationException">The model is not a multi-label model (the message names the method for its task).</exception>
    public IReadOnlyList<LabelsPrediction> PredictLabels(ReadOnlySpan<float> inputs)
    {
        Require(ModelTaskKind.MultiLabel, nameof(PredictLabels));
        int labels = checked((int)OutputShape.Length);
        var logits = Outputs(inputs);
        var names = Model.OutputNames;
        var result = new LabelsPrediction[labels == 0 ? 0 : logits.Length / labels];
        for (int i = 0; i < result.Length; i++)
        {
            var z = logits.AsSpan(i * labels, labels).ToArray();
            var p = z.Select(x => 1f / (1f + MathF.Exp(-x))).ToArray();
            var on = Enumerable.Range(0, labels).Where(l => p[l] > Model.Task.ThresholdOf(l)).ToArray();
            result[i] = new LabelsPrediction(on, names is null ? null : [.. on.Select(l => names[l])], p, z);
        }

        return result;
    }

    /// <summary>Regression predictions: each sample's outputs, the predicted target values in the targets' own units.</summary>
    /// <param name="inputs">N samples back to back, before normalization or standardization.</param>
    /// <returns>One prediction per sample.</returns>
    /// <exception cref="InvalidOperationException">The model is not a regression model (the message names the method for its task).</exception>
    public IReadOnlyList<RegressionPrediction> PredictValues(ReadOnlySpan<float> inputs)
    {
        Require(ModelTaskKind.Regression, nameof(PredictValues));
        int targets = checked((int)OutputShape.Length);
        var y = Outputs(inputs);
        var result = new RegressionPrediction[targets == 0 ? 0 : y.Length / targets];
        for (int i = 0; i < result.Length; i++)
            result[i] = new RegressionPrediction(y.AsSpan(i * targets, targets).ToArray(), Model.OutputNames);
        return result;
    }

    private void Require(ModelTaskKind kind, string method)
    {
        var actual = Model.Task.Kind;
        if (actual == kind)
            return;
        string use = actual switch
        {
            ModelTaskKind.Classification => nameof(Predict),
            ModelTaskKind.MultiLabel => nameof(PredictLabels),
            ModelTaskKind.Regression => nameof(PredictValues),
            _ => nameof(Outputs),
        };
        throw new InvalidOperationException(
            $"Predictor.{method}: the model was trained for {ModelTask.NameOf(actual)}, not {ModelTask.NameOf(kind)}; call {use} (or Outputs for the raw outputs).");
    }

    /// <summary>
    /// A PNG or JPEG file as one raw sample of <see cref="InputShape"/> (C, H, W): decoded to RGB, turned to luminance
    /// for C = 1 (ITU-R 601, as PIL's convert("L")), and when its size differs, resized (shorter side to max(H, W), PIL bilinear) and
    /// center-cropped to H x W as an image folder trained with --image-size; then scaled to [0, 1].
    /// Normalization is left to <see cref="Predict"/>.
    /// </summary>
    /// <param name="path">The image file.</param>
    /// <returns>C * H * W floats.</returns>
    /// <exception cref="ArgumentException">The model does not take images of 1 or 3 channels.</exception>
    public float[] ReadImage(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (InputShape.Rank != 3 || InputShape[0] is not (1 or 3))
            throw new ArgumentException($"Predictor: the model takes samples of shape {InputShape}, not images (C, H, W) with 1 or 3 channels; pass its inputs as numbers (a CSV row) instead.", nameof(path));
        var image = ImageDecoding.Rgb(path);
        if (InputShape[0] == 1)
            image = ImageDecoding.Luminance(image);
        int h = InputShape[1], w = InputShape[2];
        if (image.Height != h || image.Width != w)
            image = new ImageTransform.CenterCrop(h, w).Apply(new ImageTransform.Resize(Math.Max(h, w)).Apply(image));
        return ImageDecoding.ToTensor(image);
    }

    /// <summary>
    /// Rows of a CSV file as raw samples (invariant culture). A first row that is not all numbers is a header and is
    /// skipped; when it names every one of the model's <see cref="SavedModel.FeatureNames"/>, those columns are read
    /// by name (others, such as the targets, are ignored), so the training file itself can be passed. Otherwise every
    /// row holds exactly <see cref="InputShape"/>'s length of numbers, in the model's feature order.
    /// </summary>
    /// <param name="path">The CSV file.</param>
    /// <returns>The rows back to back.</returns>
    /// <exception cref="InvalidDataException">A row has another number of values (the message names the expected count and the features when known) or a value that is not a number.</exception>
    public float[] ReadCsv(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        int sample = checked((int)InputShape.Length);
        var features = Model.FeatureNames;
        string expected = features is null
            ? $"the model takes {sample} per sample (shape {InputShape}); give each row exactly the model's features"
            : $"the model takes {sample} per sample ({string.Join(", ", features)}); give each row exactly these features, in this order, or a header row that names them";
        var x = new List<float>();
        int[]? columns = null;
        int line = 0;
        foreach (var text in File.ReadLines(path))
        {
            line++;
            if (string.IsNullOrWhiteSpace(text))
                continue;
            var cells = text.Split(',');
            if (line == 1 && !cells.All(c => Number(c, out _)))
            {
                var header = cells.Select(c => c.Trim().Trim('"')).ToList();
                if (features is not null && features.All(header.Contains))
                    columns = [.. features.Select(f => header.IndexOf(f))];
                continue;
            }

            if (columns is null && cells.Length != sample)
                throw new InvalidDataException($"{path}: line {line} has {cells.Length} values, but {expected}.");
            if (columns is not null && cells.Length <= columns.Max())
                throw new InvalidDataException($"{path}: line {line} has {cells.Length} values, but the header names {columns.Max() + 1} or more columns; give every row a value in each column.");
            foreach (int c in columns ?? Enumerable.Range(0, sample))
            {
                if (!Number(cells[c], out float v))
                    throw new InvalidDataException($"{path}: line {line}, column {c + 1}: \"{cells[c].Trim()}\" is not a number; every feature after the header must be a number (a point as the decimal separator).");
                x.Add(v);
            }
        }

        return [.. x];
    }

    private static bool Number(string cell, out float value) =>
        float.TryParse(cell.Trim(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out value);

    /// <summary>Frees the weights.</summary>
    public void Dispose() => _model.Dispose();
}
