using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Cli;

/// <summary>
/// <c>ilgpu-train train --dataset image-folder</c> as a user runs it on a folder of their own
/// images: a short CNN run on red and blue squares beats chance, evaluate reads the checkpoint back
/// with the same held-out images, and a folder that cannot be batched or is not given is refused
/// before training with the option to add.
/// </summary>
[Collection(ProcessState.Name)]
public sealed class TrainImageFolderProperties : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ilgpu-train-images-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static double TestAccuracy(string printed)
    {
        var m = System.Text.RegularExpressions.Regex.Match(printed, @"(?m)^test: loss [\d.]+, accuracy ([\d.]+)");
        Assert.True(m.Success, printed);
        return double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public void Two_epochs_on_a_folder_of_red_and_blue_squares_beat_chance_and_evaluate_reads_the_checkpoint()
    {
        string data = Path.Combine(_dir, "squares"), output = Path.Combine(_dir, "run");
        ImageFolders.Squares(data, perClass: 80, size: 20, seed: 4);
        var (code, printed, err) = CliRun.Invoke(
            "train", "--dataset", "image-folder", "--data", data, "--image-size", "16", "--model", "cnn",
            "--epochs", "2", "--batch-size", "16", "--workers", "3", "--device", "cpu", "--seed", "1", "--output", output);
        Assert.True(code == 0, $"exit {code}: {err}\n{printed}");
        Assert.Contains("cnn on image folder squares (train split) (128 samples, 2 classes)", printed);
        Assert.Contains("32 images held out", printed);
        // Chance is 0.5 on the 32 held-out images (16 per class).
        double accuracy = TestAccuracy(printed);
        Assert.True(accuracy >= 0.75, $"test accuracy {accuracy}\n{printed}");

        string last = Path.Combine(output, "checkpoints", "last.safetensors");
        var (evalCode, evaluated, evalErr) = CliRun.Invoke("evaluate", "--checkpoint", last);
        Assert.True(evalCode == 0, $"exit {evalCode}: {evalErr}");
        Assert.Contains("cnn on image-folder", evaluated);
        Assert.Equal(accuracy, TestAccuracy(evaluated));
    }

    [Fact]
    public void A_folder_without_data_or_of_mixed_sizes_without_image_size_is_refused_before_training()
    {
        var (code, _, err) = CliRun.Invoke("train", "--dataset", "image-folder", "--device", "cpu", "--output", Path.Combine(_dir, "a"));
        Assert.Equal(2, code);
        Assert.Contains("--dataset image-folder needs --data DIR", err);

        (code, _, err) = CliRun.Invoke("train", "--dataset", "image-folder", "--data", _dir, "--image-size", "-3", "--workers", "99", "--device", "cpu", "--output", Path.Combine(_dir, "b"));
        Assert.Equal(2, code);
        Assert.Contains("--image-size -3", err);
        Assert.Contains("--workers 99", err);

        string data = Path.Combine(_dir, "mixed");
        ImageFolders.Squares(data, perClass: 2, size: 12, seed: 0);
        (code, _, err) = CliRun.Invoke("train", "--dataset", "image-folder", "--data", data, "--device", "cpu", "--output", Path.Combine(_dir, "c"));
        Assert.Equal(3, code);
        Assert.Contains("--image-size", err);
        Assert.Contains("000.png is 16 x 12", err);
        Assert.False(Directory.Exists(Path.Combine(_dir, "c")), "nothing is written before the data is checked");

        (code, _, err) = CliRun.Invoke("train", "--dataset", "image-folder", "--data", Path.Combine(_dir, "nowhere"), "--device", "cpu", "--output", Path.Combine(_dir, "d"));
        Assert.Equal(3, code);
        Assert.Contains("nowhere", err);
    }

    [Fact]
    public void The_stored_configuration_validates_the_image_size_and_workers_and_needs_the_folder()
    {
        var config = new RunConfig { Dataset = "image-folder", DataDir = "/data/pets", ImageSize = 64, Workers = 2 };
        Assert.Equal(config, RunConfig.FromJson(config.ToJson()));
        Assert.Null(RunConfig.Decode(config.ToJson().Replace("\"ImageSize\":64", "\"ImageSize\":-1", StringComparison.Ordinal), out var problem));
        Assert.Contains("\"ImageSize\" is -1", problem);
        Assert.Null(RunConfig.Decode(config.ToJson().Replace("\"Workers\":2", "\"Workers\":\"two\"", StringComparison.Ordinal), out problem));
        Assert.Contains("\"Workers\" is \"two\"; allowed: a 32-bit integer or null", problem);
        Assert.Contains("\"Workers\" is 65", (config with { Workers = 65 }).Problem());
        Assert.Contains("\"DataDir\" is null", (config with { DataDir = null }).Problem());
        Assert.Null((config with { Workers = null }).Problem());
        var data = Gens.IndexDataset(8, classes: 2);
        var (trainer, _, _) = Recipes.BuildTrainer(config with { Dataset = "mnist" }, Devices.Cpu, data);
        Assert.Equal(2, trainer.Options.Workers);
        (trainer, _, _) = Recipes.BuildTrainer(new RunConfig(), Devices.Cpu, data);
        Assert.Equal(TrainerOptions.DefaultWorkers, trainer.Options.Workers);
    }
}
