using IlgpuTrain.Layers;
using IlgpuTrain.Optimizers;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// ModelFile and Predictor: a checkpoint written during training carries its model, so ModelFile.Load rebuilds it
/// with no code and predicts what the live model predicts; batching does not change predictions; checkpoints without
/// a model and inputs of the wrong size fail with a message naming the problem.
/// </summary>
public sealed class PredictorProperties : IDisposable
{
    // The same float32 kernels on the same device: only the batch's accumulation order can differ.
    private const float Atol = 1e-5f;
    private const float Rtol = 1e-5f;

    private static readonly Normalization Norm = new([0.5f, -0.25f], [2f, 0.5f]);

    private static readonly string[] Names = ["cat", "dog", "eel"];

    private readonly string _dir = Directory.CreateTempSubdirectory("predictor-props").FullName;

    private static Layer Model() => TrainerProperties.SmallCnn();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // One epoch of training with a checkpoint callback; returns the final state and the checkpoint's path.
    private (TrainState State, string Path) Train(string name)
    {
        var data = TrainerProperties.Blobs(60, 3, seed: 4);
        string dir = Path.Combine(_dir, name);
        var callback = new CheckpointCallback(dir, saveBest: null) { Normalization = Norm, ClassNames = Names };
        var trainer = new Trainer(Devices.Cpu, Model(), data.SampleShape, new AdamW(1e-2), new TrainerOptions { Epochs = 1, BatchSize = 16, Seed = 2, Callbacks = [callback] });
        var result = trainer.Fit(data);
        return (result.State, callback.LastPath);
    }

    private static float[] Inputs(int n, int seed)
    {
        var r = new Random(seed);
        return [.. Enumerable.Range(0, n * 8).Select(_ => (float)((r.NextDouble() * 6) - 3))];
    }

    private static bool Close(float[] a, float[] r) =>
        a.Length == r.Length && a.Zip(r).All(t => Math.Abs(t.First - t.Second) <= Atol + (Rtol * Math.Abs(t.Second)));

    [Fact]
    public void A_checkpoint_rebuilds_its_model_and_predicts_what_the_live_model_predicts()
    {
        var (state, path) = Train("live");
        using var _ = state;
        var x = Inputs(11, 5);

        // The live model on inputs normalized by hand: (x - mean) / std per channel of (2, 2, 2).
        var normalized = x.ToArray();
        for (int i = 0; i < normalized.Length; i++)
        {
            int c = (i % 8) / 4;
            normalized[i] = (normalized[i] - Norm.Mean[c]) / Norm.Std[c];
        }

        float[] live;
        using (var step = Devices.Cpu.BeginStep())
            live = Model().Predict(state.Params, state.State, step.Upload(normalized, new Shape(11, 2, 2, 2))).ToHost();

        using var predictor = Predictor.Load(path, Devices.Cpu);
        Assert.Equal(Model(), predictor.Model.Layer);
        Assert.Equal(new Shape(2, 2, 2), predictor.InputShape);
        Assert.Equal(Names, predictor.Model.ClassNames);
        var outputs = predictor.Outputs(x);
        Assert.True(Close(outputs, live), $"outputs {string.Join(", ", outputs.Take(6))} vs live {string.Join(", ", live.Take(6))}");

        var predictions = predictor.Predict(x);
        Assert.Equal(11, predictions.Count);
        for (int i = 0; i < 11; i++)
        {
            var z = live.AsSpan(i * 3, 3).ToArray();
            int best = Array.IndexOf(z, z.Max());
            Assert.Equal(best, predictions[i].Class);
            Assert.Equal(Names[best], predictions[i].Label);
            Assert.InRange(predictions[i].Probabilities.Sum(), 1 - 1e-5f, 1 + 1e-5f);
            Assert.Equal(predictions[i].Probabilities.Max(), predictions[i].Probability);
        }
    }

    [Property(MaxTest = 12)]
    public Property Predicting_in_batches_equals_predicting_at_once() =>
        Prop.ForAll(Gen.Choose(0, 23).ToArbitrary(), Gen.Elements(1, 2, 5, 7, 64).ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), (n, batch, seed) =>
        {
            using var once = new Predictor(ModelFile.Load(SharedCheckpoint.Value, Devices.Cpu), Devices.Cpu, batchSize: 64);
            using var batched = new Predictor(ModelFile.Load(SharedCheckpoint.Value, Devices.Cpu), Devices.Cpu, batchSize: batch);
            var x = Inputs(n, seed);
            var a = once.Outputs(x);
            var b = batched.Outputs(x);
            return Close(b, a).Label($"{n} samples in batches of {batch}")
                .And((a.Length == n * 3).Label("one output row per sample"));
        });

    private static readonly Lazy<string> SharedCheckpoint = new(() =>
    {
        string dir = Directory.CreateTempSubdirectory("predictor-shared").FullName;
        var data = TrainerProperties.Blobs(30, 3, seed: 9);
        var callback = new CheckpointCallback(dir, saveBest: null) { Normalization = Norm };
        var trainer = new Trainer(Devices.Cpu, Model(), data.SampleShape, new Sgd(0.05), new TrainerOptions { Epochs = 1, BatchSize = 10, Seed = 1, Callbacks = [callback] });
        trainer.Fit(data).State.Dispose();
        return callback.LastPath;
    });

    [Fact]
    public void A_checkpoint_without_its_model_is_refused_with_the_way_out()
    {
        var (state, path) = Train("old");
        using var _ = state;

        // What older versions wrote: the same checkpoint without the model.
        using (var c = Checkpoint.Load(path, Devices.Cpu))
            Checkpoint.Save(path, c with { Model = null });
        var e = Assert.Throws<CheckpointFormatException>(() => ModelFile.Load(path, Devices.Cpu));
        Assert.Contains("does not carry its model", e.Message, StringComparison.Ordinal);
        Assert.Contains("Checkpoint.Load", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Inputs_that_are_not_whole_samples_are_refused()
    {
        using var predictor = Predictor.Load(SharedCheckpoint.Value, Devices.Cpu);
        var e = Assert.Throws<ArgumentException>(() => predictor.Predict(new float[13]));
        Assert.Contains("13 floats are not whole samples of shape (2, 2, 2)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_checkpoint_keeps_the_model_through_save_and_load()
    {
        var (state, path) = Train("roundtrip");
        using var _ = state;
        using var c = Checkpoint.Load(path, Devices.Cpu);
        Assert.NotNull(c.Model);
        Assert.Equal(Model(), c.Model!.Layer);
        Assert.Equal(Norm.Mean, c.Model.Normalization!.Mean);
        Assert.Equal(Norm.Std, c.Model.Normalization.Std);
    }

    // A tabular regression model (3 features, 2 targets) trained for one epoch on raw rows standardized by hand, as
    // the csv data set does; the callback records the scaler, the names and (from the fit) the task.
    private static readonly Lazy<(string Path, Standardization Scaler)> Tabular = new(() => TrainTabular(new RegressionTask(), binary: false));

    // Thresholds on either side of 0.5, so that a predictor using 0.5 for every label would be caught.
    private static readonly float[] LabelThresholds = [0.35f, 0.65f];

    private static readonly Lazy<(string Path, Standardization Scaler)> MultiLabel = new(() => TrainTabular(new MultiLabelTask { Thresholds = LabelThresholds }, binary: true));

    private static (string Path, Standardization Scaler) TrainTabular(ITrainingTask task, bool binary)
    {
        var r = new Random(3);
        int n = 40;
        var x = Enumerable.Range(0, n * 3).Select(i => (float)((r.NextDouble() * 10 * ((i % 3) + 1)) + (50 * (i % 3)))).ToArray();
        var y = Enumerable.Range(0, n * 2).Select(_ => binary ? r.Next(2) : (float)r.NextDouble()).ToArray();
        var raw = new TabularDataset("rows", x, ["a", "b", "c"], y, ["u", "v"]);
        var scaler = Standardization.Fit(raw);
        string dir = Directory.CreateTempSubdirectory("predictor-tabular").FullName;
        var callback = new CheckpointCallback(dir, saveBest: null) { Standardization = scaler, OutputNames = ["u", "v"], FeatureNames = ["a", "b", "c"] };
        var trainer = new Trainer(Devices.Cpu, TabularModel(), raw.SampleShape, new Sgd(0.05), new TrainerOptions { Task = task, Epochs = 1, BatchSize = 8, Seed = 1, Callbacks = [callback] });
        trainer.Fit(raw.Standardize(scaler)).State.Dispose();
        return (callback.LastPath, scaler);
    }

    // n rows like the training rows (within two standard deviations of the mean), so tanh does not saturate.
    private static float[] Rows(Standardization scaler, int n, int seed)
    {
        var r = new Random(seed);
        return [.. Enumerable.Range(0, n * 3).Select(i => (float)(scaler.Mean[i % 3] + (scaler.Std[i % 3] * ((r.NextDouble() * 4) - 2))))];
    }

    [Property(MaxTest = 20)]
    public Property A_multi_label_model_predicts_the_labels_whose_sigmoid_is_above_their_trained_thresholds() =>
        Prop.ForAll(Gen.Choose(1, 30).ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), (n, seed) =>
        {
            var (path, scaler) = MultiLabel.Value;
            using var predictor = Predictor.Load(path, Devices.Cpu);
            var x = Rows(scaler, n, seed);
            var logits = predictor.Outputs(x);
            var predictions = predictor.PredictLabels(x);
            bool all = predictions.Count == n;
            for (int i = 0; i < n && all; i++)
            {
                var z = logits.AsSpan(i * 2, 2).ToArray();
                var p = z.Select(v => 1 / (1 + Math.Exp(-v))).ToArray();
                int[] on = [.. Enumerable.Range(0, 2).Where(l => p[l] > LabelThresholds[l])];
                all = predictions[i].Labels.SequenceEqual(on)
                    && predictions[i].Names!.SequenceEqual(on.Select(l => new[] { "u", "v" }[l]))
                    && predictions[i].Logits.SequenceEqual(z)
                    && predictions[i].Probabilities.Zip(p).All(t => Math.Abs(t.First - t.Second) <= 1e-6);
            }

            return all.Label($"{n} rows: labels by sigmoid(logit) > ({string.Join(", ", LabelThresholds)})");
        });

    [Fact]
    public void A_multi_label_checkpoint_records_its_per_label_thresholds_and_the_sample_crosses_them()
    {
        var (path, scaler) = MultiLabel.Value;
        using var predictor = Predictor.Load(path, Devices.Cpu);
        Assert.Equal(ModelTaskKind.MultiLabel, predictor.Model.Task.Kind);
        Assert.Equal(LabelThresholds, predictor.Model.Task.Thresholds);

        // The rows the property draws give probabilities between the two thresholds, where 0.5 would decide otherwise.
        var p = predictor.PredictLabels(Rows(scaler, 200, 1)).SelectMany(q => q.Probabilities.Select((v, l) => (v, l))).ToList();
        Assert.Contains(p, t => t.l == 0 && t.v > 0.35f && t.v <= 0.5f);
        Assert.Contains(p, t => t.l == 1 && t.v > 0.5f && t.v <= 0.65f);
    }

    [Property(MaxTest = 10)]
    public Property A_regression_model_predicts_its_outputs_as_the_target_values() =>
        Prop.ForAll(Gen.Choose(0, 12).ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), (n, seed) =>
        {
            var (path, scaler) = Tabular.Value;
            using var predictor = Predictor.Load(path, Devices.Cpu);
            var x = Rows(scaler, n, seed);
            var y = predictor.Outputs(x);
            var predictions = predictor.PredictValues(x);
            return (predictions.Count == n).Label("one prediction per row")
                .And(predictions.SelectMany(q => q.Values).SequenceEqual(y).Label("the values are the outputs"))
                .And(predictions.All(q => q.Names!.SequenceEqual(["u", "v"])).Label("the target names"));
        });

    [Fact]
    public void Another_tasks_prediction_method_is_refused_naming_the_right_one()
    {
        using var regression = Predictor.Load(Tabular.Value.Path, Devices.Cpu);
        var e = Assert.Throws<InvalidOperationException>(() => regression.Predict(new float[3]));
        Assert.Contains("trained for regression, not classification; call PredictValues", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<InvalidOperationException>(() => regression.PredictLabels(new float[3]));
        Assert.Contains("call PredictValues", e.Message, StringComparison.Ordinal);
        using var labels = Predictor.Load(MultiLabel.Value.Path, Devices.Cpu);
        e = Assert.Throws<InvalidOperationException>(() => labels.PredictValues(new float[3]));
        Assert.Contains("trained for multilabel, not regression; call PredictLabels", e.Message, StringComparison.Ordinal);
        using var classifier = Predictor.Load(SharedCheckpoint.Value, Devices.Cpu);
        e = Assert.Throws<InvalidOperationException>(() => classifier.PredictLabels(new float[8]));
        Assert.Contains("call Predict ", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_csv_row_of_the_wrong_width_is_refused_naming_the_expected_features_and_a_header_selects_them()
    {
        var (path, scaler) = Tabular.Value;
        using var predictor = Predictor.Load(path, Devices.Cpu);
        string csv = Path.Combine(_dir, "rows.csv");
        File.WriteAllLines(csv, ["1,2,3", "4,5"]);
        var e = Assert.Throws<InvalidDataException>(() => predictor.ReadCsv(csv));
        Assert.Contains("line 2 has 2 values, but the model takes 3 per sample (a, b, c)", e.Message, StringComparison.Ordinal);

        // A header naming the features selects them by name, in the model's order; other columns are ignored.
        File.WriteAllLines(csv, ["u,c,a,b", "9,3,1,2", "x,6,4,5"]);
        Assert.Equal([1f, 2, 3, 4, 5, 6], predictor.ReadCsv(csv));
    }

    private static Layer TabularModel() => new Dense(5) >> new Tanh() >> new Dense(2);

    [Property(MaxTest = 20)]
    public Property Outputs_on_raw_rows_equal_the_models_forward_on_the_standardized_rows() =>
        Prop.ForAll(Gen.Choose(1, 9).ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), (n, seed) =>
        {
            var (path, scaler) = Tabular.Value;
            var raw = Rows(scaler, n, seed);

            // z = (x - mean) / std per feature, in float64, rounded to float32: the training rows' transform.
            var z = raw.Select((v, i) => (float)((v - scaler.Mean[i % 3]) / scaler.Std[i % 3])).ToArray();
            using var loaded = ModelFile.Load(path, Devices.Cpu);
            float[] forward;
            using (var step = Devices.Cpu.BeginStep())
                forward = loaded.Model.Layer.Predict(loaded.Params, loaded.State, step.Upload(z, new Shape(n, 3))).ToHost();
            float[] unstandardized;
            using (var step = Devices.Cpu.BeginStep())
                unstandardized = loaded.Model.Layer.Predict(loaded.Params, loaded.State, step.Upload(raw, new Shape(n, 3))).ToHost();

            using var predictor = Predictor.Load(path, Devices.Cpu);
            var outputs = predictor.Outputs(raw);
            return outputs.SequenceEqual(forward).Label($"outputs {string.Join(", ", outputs.Take(4))} vs forward on standardized rows {string.Join(", ", forward.Take(4))}")
                .And((!unstandardized.SequenceEqual(forward)).Label("standardizing changes the forward (the property can fail)"));
        });

    [Fact]
    public void A_checkpoint_records_the_task_names_and_standardization_of_its_fit()
    {
        var (path, scaler) = Tabular.Value;
        using var predictor = Predictor.Load(path, Devices.Cpu);
        var m = predictor.Model;
        Assert.Equal(ModelTaskKind.Regression, m.Task.Kind);
        Assert.Equal(["u", "v"], m.OutputNames);
        Assert.Equal(["a", "b", "c"], m.FeatureNames);
        Assert.Equal(scaler.Mean, m.Standardization!.Mean);
        Assert.Equal(scaler.Std, m.Standardization.Std);
        Assert.Null(m.Normalization);
    }

    private static float Threshold(Random r) => r.Next(1, 1000) / 1000f;

    // Any finite double (random bits), positive when asked: the JSON must keep every bit.
    private static double AnyDouble(Random r, bool positive)
    {
        double v = BitConverter.Int64BitsToDouble(r.NextInt64(long.MinValue, long.MaxValue));
        v = double.IsFinite(v) ? v : 1.5;
        return positive ? (Math.Abs(v) is var a && a > 0 ? a : 2.0) : v;
    }

    [Property(MaxTest = 100)]
    public Property A_saved_model_round_trips_its_task_names_and_standardization_through_json() =>
        Prop.ForAll(
            Gen.Elements(ModelTaskKind.Classification, ModelTaskKind.MultiLabel, ModelTaskKind.Regression, ModelTaskKind.Other).ToArbitrary(),
            Gen.Choose(1, 4).ToArbitrary(),
            Gen.Choose(0, int.MaxValue).ToArbitrary(),
            (kind, d, seed) =>
            {
                var r = new Random(seed);
                int outputs = 3;
                var t = new ModelTask(kind);
                if (kind == ModelTaskKind.MultiLabel)
                {
                    t = r.Next(2) == 0
                        ? t with { Threshold = Threshold(r) }
                        : t with { Thresholds = [.. Enumerable.Range(0, outputs).Select(_ => Threshold(r))] };
                }

                var mean = Enumerable.Range(0, d).Select(_ => AnyDouble(r, false)).ToArray();
                var std = Enumerable.Range(0, d).Select(_ => AnyDouble(r, true)).ToArray();
                var saved = new SavedModel(new Dense(outputs), new Shape(d))
                {
                    Task = t,
                    OutputNames = [.. Enumerable.Range(0, outputs).Select(i => $"out \"{i}\" é")],
                    FeatureNames = [.. Enumerable.Range(0, d).Select(i => $"f{i}")],
                    Standardization = r.Next(4) == 0 ? null : new Standardization(mean, std),
                };
                string json = saved.ToNode().ToJsonString();
                var back = SavedModel.FromNode(System.Text.Json.Nodes.JsonNode.Parse(json), "test");
                bool thresholds = (back.Task.Thresholds is null && t.Thresholds is null) || (back.Task.Thresholds is { } bt && t.Thresholds is { } tt && bt.SequenceEqual(tt));
                bool scaler = saved.Standardization is null ? back.Standardization is null
                    : back.Standardization is { } z && z.Mean.SequenceEqual(mean) && z.Std.SequenceEqual(std);
                return (back.Task.Kind == kind).Label("kind")
                    .And((back.Task.Threshold == t.Threshold && thresholds).Label("thresholds"))
                    .And(back.OutputNames!.SequenceEqual(saved.OutputNames!).Label("output names"))
                    .And(back.FeatureNames!.SequenceEqual(saved.FeatureNames!).Label("feature names"))
                    .And(scaler.Label($"standardization {json}"));
            });

    [Fact]
    public void An_older_checkpoints_model_loads_as_a_classifier_without_standardization()
    {
        // What the first version with models wrote: class names, no task, no standardization.
        var node = new SavedModel(new Dense(3), new Shape(4)).ToNode();
        foreach (var member in new[] { "task", "output_names", "standardization", "feature_names" })
            node.Remove(member);
        node["class_names"] = new System.Text.Json.Nodes.JsonArray("cat", "dog", "eel");
        var back = SavedModel.FromNode(node, "old.safetensors");
        Assert.Equal(ModelTaskKind.Classification, back.Task.Kind);
        Assert.Null(back.Standardization);
        Assert.Null(back.FeatureNames);
        Assert.Equal(["cat", "dog", "eel"], back.ClassNames);
        Assert.Equal(["cat", "dog", "eel"], back.OutputNames);
    }

    [Theory]
    [InlineData("standardization", "standardization has 2 means and 2 standard deviations for 4 features")]
    [InlineData("feature_names", "feature_names has 2 names for 4 features")]
    [InlineData("thresholds", "task.thresholds has 2 values for 3 outputs")]
    [InlineData("kind", "task.kind \"ranking\" is not classification, multilabel, regression, language-model or other")]
    public void A_stored_model_whose_fields_disagree_with_its_shapes_is_refused(string field, string expected)
    {
        var saved = new SavedModel(new Dense(3), new Shape(4)) { Task = new ModelTask(ModelTaskKind.MultiLabel) };
        var node = saved.ToNode();
        switch (field)
        {
            case "standardization":
                node["standardization"] = new System.Text.Json.Nodes.JsonObject { ["mean"] = new System.Text.Json.Nodes.JsonArray(0.0, 1.0), ["std"] = new System.Text.Json.Nodes.JsonArray(1.0, 1.0) };
                break;
            case "feature_names":
                node["feature_names"] = new System.Text.Json.Nodes.JsonArray("a", "b");
                break;
            case "thresholds":
                node["task"]!["thresholds"] = new System.Text.Json.Nodes.JsonArray(0.5f, 0.5f);
                break;
            default:
                node["task"]!["kind"] = "ranking";
                break;
        }

        var e = Assert.Throws<CheckpointFormatException>(() => SavedModel.FromNode(node, "bad.safetensors"));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }
}
