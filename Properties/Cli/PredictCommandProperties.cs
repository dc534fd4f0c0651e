using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Cli;

/// <summary>ilgpu-train predict: image files (after a CLI training run on an image folder) and CSV rows, and its errors.</summary>
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
}
