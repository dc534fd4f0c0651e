using System.Globalization;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Cli;

/// <summary>
/// ilgpu-train predict: image files (after a CLI training run on an image folder) and CSV rows, and its errors; after
/// CLI runs on a CSV file, regression values and multi-label labels of raw rows, standardized as the training rows were.
/// </summary>
[Collection(ProcessState.Name)]
public sealed class PredictCommandProperties : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ilgpu-train-predict-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static byte[] Square(int h, int w, (byte R, byte G, byte B) color)
    {
        var p = new byte[h * w * 3];
        for (int k = 0; k < p.Length; k += 3)
            (p[k], p[k + 1], p[k + 2]) = (120, 120, 120);
        for (int y = 4; y < h - 4; y++)
        {
            for (int x = 4; x < w - 4; x++)
                (p[(y * w + x) * 3], p[(y * w + x) * 3 + 1], p[(y * w + x) * 3 + 2]) = color;
        }

        return p;
    }

    [Fact]
    public void Predict_names_the_class_of_generated_pngs_with_a_model_trained_by_the_cli()
    {
        string data = Path.Combine(_dir, "squares"), output = Path.Combine(_dir, "run"), inputs = Path.Combine(_dir, "inputs");
        ImageFolders.Squares(data, perClass: 80, size: 20, seed: 4);
        var (code, printed, err) = CliRun.Invoke(
            "train", "--dataset", "image-folder", "--data", data, "--image-size", "16", "--model", "cnn",
            "--epochs", "2", "--batch-size", "16", "--workers", "2", "--device", "cpu", "--seed", "1", "--output", output);
        Assert.True(code == 0, $"exit {code}: {err}\n{printed}");

        // Sizes other than the model's 16 x 16 go through the same resize and center crop as training.
        ImageFolders.WritePng(Path.Combine(inputs, "a.png"), 20, 24, 3, Square(20, 24, (220, 40, 30)));
        ImageFolders.WritePng(Path.Combine(inputs, "b.png"), 24, 20, 3, Square(24, 20, (30, 60, 220)));
        string ckpt = Path.Combine(output, "checkpoints", "last.safetensors");
        var (predictCode, predicted, predictErr) = CliRun.Invoke("predict", "--checkpoint", ckpt, "--input", inputs, "--device", "cpu");
        Assert.True(predictCode == 0, $"exit {predictCode}: {predictErr}");

        using var predictor = Predictor.Load(ckpt, Devices.Cpu);
        Assert.Equal(["blue", "red"], predictor.Model.ClassNames);
        var expected = predictor.Predict([.. predictor.ReadImage(Path.Combine(inputs, "a.png")), .. predictor.ReadImage(Path.Combine(inputs, "b.png"))]);
        var lines = predicted.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal(2, lines.Length);
        Assert.Equal(FormattableString.Invariant($"a.png: red ({expected[0].Probability:F4})"), lines[0]);
        Assert.Equal(FormattableString.Invariant($"b.png: blue ({expected[1].Probability:F4})"), lines[1]);
    }

    [Fact]
    public void Predict_reads_csv_rows_after_a_header_and_refuses_rows_of_the_wrong_width()
    {
        var trainData = Properties.Training.TrainerProperties.Blobs(30, 3, seed: 9);
        var callback = new CheckpointCallback(Path.Combine(_dir, "ckpt"), saveBest: null);
        var trainer = new Trainer(Devices.Cpu, Properties.Training.TrainerProperties.SmallCnn(), trainData.SampleShape, new IlgpuTrain.Optimizers.Sgd(0.05), new TrainerOptions { Epochs = 1, BatchSize = 10, Seed = 1, Callbacks = [callback] });
        trainer.Fit(trainData).State.Dispose();

        string csv = Path.Combine(_dir, "rows.csv");
        File.WriteAllLines(csv, ["a,b,c,d,e,f,g,h", "1,2,3,4,5,6,7,8", "-1.5,0,0,0,0.25,1e-2,3,2"]);
        var (code, printed, err) = CliRun.Invoke("predict", "--checkpoint", callback.LastPath, "--input", csv, "--device", "cpu");
        Assert.True(code == 0, $"exit {code}: {err}");
        using var predictor = Predictor.Load(callback.LastPath, Devices.Cpu);
        var expected = predictor.Predict([1, 2, 3, 4, 5, 6, 7, 8, -1.5f, 0, 0, 0, 0.25f, 1e-2f, 3, 2]);
        Assert.Equal(
            [FormattableString.Invariant($"row 1: {expected[0].Class} ({expected[0].Probability:F4})"), FormattableString.Invariant($"row 2: {expected[1].Class} ({expected[1].Probability:F4})")],
            printed.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

        File.WriteAllLines(csv, ["1,2,3,4,5,6,7"]);
        (code, _, err) = CliRun.Invoke("predict", "--checkpoint", callback.LastPath, "--input", csv, "--device", "cpu");
        Assert.NotEqual(0, code);
        Assert.Contains("line 1 has 7 values, but the model takes 8 per sample", err);

        (code, _, err) = CliRun.Invoke("predict", "--checkpoint", callback.LastPath, "--input", Path.Combine(_dir, "nothing.png"), "--device", "cpu");
        Assert.Equal(2, code);
        Assert.Contains("no such file or folder", err);
    }

    // x1 far from 0 and wide, x2 narrow: standardizing changes every row. y = 0.05 x1 - 20 x2; a = x1 > 100, b = x2 > 0.
    private static string TableCsv(string dir)
    {
        var r = new Random(5);
        var lines = new List<string> { "x1,x2,y,a,b" };
        for (int i = 0; i < 120; i++)
        {
            double x1 = 100 + (40 * ((r.NextDouble() * 2) - 1)), x2 = 0.2 * ((r.NextDouble() * 2) - 1);
            lines.Add(string.Create(CultureInfo.InvariantCulture, $"{x1:F4},{x2:F4},{(0.05 * x1) - (20 * x2):F4},{(x1 > 100 ? 1 : 0)},{(x2 > 0 ? 1 : 0)}"));
        }

        string path = Path.Combine(dir, "table.csv");
        File.WriteAllLines(path, lines);
        return path;
    }

    // Trains for 2 epochs with the CLI; returns the last checkpoint.
    private string TrainCsv(string task, string target)
    {
        string output = Path.Combine(_dir, task);
        var (code, printed, err) = CliRun.Invoke(
            "train", "--task", task, "--dataset", "csv", "--data", TableCsv(_dir), "--target", target, "--features", "x1,x2",
            "--dropout", "0", "--lr", "0.01", "--batch-size", "16", "--epochs", "2", "--device", "cpu", "--seed", "1", "--output", output);
        Assert.True(code == 0, $"exit {code}: {err}\n{printed}");
        return Path.Combine(output, "checkpoints", "last.safetensors");
    }

    // Raw rows, their header in another order than the model's features and with a column it does not take.
    private static readonly float[] RawRows = [131.5f, -0.12f, 64.25f, 0.17f, 100f, 0f];

    private string RowsCsv()
    {
        string csv = Path.Combine(_dir, "rows.csv");
        File.WriteAllLines(csv, ["note,x2,x1", "p,-0.12,131.5", "q,0.17,64.25", "r,0,100"]);
        return csv;
    }

    // predict in a culture with a decimal comma: the output stays invariant.
    private static (int Code, string Out, string Err) PredictGerman(string ckpt, string csv)
    {
        var culture = CultureInfo.CurrentCulture;
        try
        {
            CultureInfo.CurrentCulture = CultureInfo.GetCultureInfo("de-DE");
            return CliRun.Invoke("predict", "--checkpoint", ckpt, "--input", csv, "--device", "cpu");
        }
        finally
        {
            CultureInfo.CurrentCulture = culture;
        }
    }

    // The model's forward on the rows standardized by hand with the scaler refitted on the run's training rows.
    private static float[] ManualForward(string ckpt)
    {
        var data = Recipes.LoadData(Resuming.ReadConfig(ckpt));
        var scaler = data.Standardization!;
        var z = RawRows.Select((v, i) => (float)((v - scaler.Mean[i % 2]) / scaler.Std[i % 2])).ToArray();
        using var model = ModelFile.Load(ckpt, Devices.Cpu);
        Assert.Equal(scaler.Mean, model.Model.Standardization!.Mean);
        Assert.Equal(scaler.Std, model.Model.Standardization.Std);
        Assert.Equal(["x1", "x2"], model.Model.FeatureNames);
        using var step = Devices.Cpu.BeginStep();
        return model.Model.Layer.Predict(model.Params, model.State, step.Upload(z, new Shape(3, 2))).ToHost();
    }

    private static string[] Lines(string printed) => printed.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    [Fact]
    public void Predict_prints_the_target_values_of_raw_csv_rows_for_a_regression_model_trained_by_the_cli()
    {
        string ckpt = TrainCsv("regression", "y");
        var (code, printed, err) = PredictGerman(ckpt, RowsCsv());
        Assert.True(code == 0, $"exit {code}: {err}");

        using var predictor = Predictor.Load(ckpt, Devices.Cpu);
        Assert.Equal(ModelTaskKind.Regression, predictor.Model.Task.Kind);
        Assert.Equal(["y"], predictor.Model.OutputNames);
        var expected = predictor.PredictValues(RawRows);
        Assert.Equal(expected.Select((p, i) => $"row {i + 1}: y={p.Values[0].ToString(CultureInfo.InvariantCulture)}"), Lines(printed));

        // What was printed is the forward on the rows standardized as the training rows were, to the float.
        var manual = ManualForward(ckpt);
        var values = Lines(printed).Select(l => float.Parse(l[(l.IndexOf('=') + 1)..], CultureInfo.InvariantCulture)).ToArray();
        Assert.Equal(manual, values);
    }

    [Fact]
    public void Predict_prints_the_labels_above_their_thresholds_for_a_multi_label_model_trained_by_the_cli()
    {
        string ckpt = TrainCsv("multilabel", "a,b");
        var (code, printed, err) = PredictGerman(ckpt, RowsCsv());
        Assert.True(code == 0, $"exit {code}: {err}");

        using var predictor = Predictor.Load(ckpt, Devices.Cpu);
        Assert.Equal(ModelTaskKind.MultiLabel, predictor.Model.Task.Kind);
        Assert.Equal(["a", "b"], predictor.Model.OutputNames);
        var expected = predictor.PredictLabels(RawRows).Select((p, i) => $"row {i + 1}: " + (p.Labels.Count == 0 ? "(none)"
            : string.Join(", ", p.Labels.Select(l => FormattableString.Invariant($"{p.Names![p.Labels.ToList().IndexOf(l)]} ({p.Probabilities[l]:F4})")))));
        Assert.Equal(expected, Lines(printed));

        // The labels are those whose sigmoid, on the forward of the rows standardized by hand, is above 0.5.
        var manual = ManualForward(ckpt);
        var labels = Enumerable.Range(0, 3).Select(i => string.Join(", ", new[] { "a", "b" }.Where((_, l) => 1 / (1 + Math.Exp(-manual[(i * 2) + l])) > 0.5)));
        Assert.Equal(labels.Select(s => s.Length == 0 ? "(none)" : s), Lines(printed).Select(l => string.Join(", ", l[(l.IndexOf(':') + 2)..].Split(", ").Select(t => t.Split(' ')[0]))));
    }

    [Fact]
    public void A_csv_row_of_the_wrong_width_is_refused_naming_the_features_the_model_takes()
    {
        string ckpt = TrainCsv("regression", "y");
        string csv = Path.Combine(_dir, "bad.csv");
        File.WriteAllLines(csv, ["1.5,2", "3"]);
        var (code, _, err) = CliRun.Invoke("predict", "--checkpoint", ckpt, "--input", csv, "--device", "cpu");
        Assert.NotEqual(0, code);
        Assert.Contains("line 2 has 1 values, but the model takes 2 per sample (x1, x2)", err);
    }
}
