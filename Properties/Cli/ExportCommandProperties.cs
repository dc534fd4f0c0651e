using Google.Protobuf;
using IlgpuTrain.Training;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace IlgpuTrain.Properties.Cli;

/// <summary>
/// <c>ilgpu-train export --checkpoint FILE --onnx OUT.onnx</c>: the file it writes from a trained
/// checkpoint runs in ONNX Runtime and gives the checkpoint's evaluation forward; a checkpoint that carries its
/// model needs no data set, an older one is rebuilt from its configuration and data set and says so; a missing
/// checkpoint or output folder is refused with one line naming the option.
/// </summary>
[Collection(ProcessState.Name)]
public sealed class ExportCommandProperties : IDisposable
{
    private const float Atol = 1e-5f;
    private const float Rtol = 1e-5f;

    private readonly string _dir = Directory.CreateTempSubdirectory("ilgpu-export-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void A_trained_cnn_exports_to_a_file_onnx_runtime_runs_as_predict()
    {
        string data = Path.Combine(_dir, "squares"), output = Path.Combine(_dir, "run"), onnx = Path.Combine(_dir, "cnn.onnx");
        ImageFolders.Squares(data, perClass: 8, size: 12, seed: 2);
        var (code, printed, err) = CliRun.Invoke(
            "train", "--dataset", "image-folder", "--data", data, "--image-size", "12", "--model", "cnn",
            "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--seed", "1", "--output", output);
        Assert.True(code == 0, $"exit {code}: {err}\n{printed}");
        string last = Path.Combine(output, "checkpoints", "last.safetensors");

        (code, printed, err) = CliRun.Invoke("export", "--checkpoint", last, "--onnx", onnx);
        Assert.True(code == 0, $"exit {code}: {err}");
        Assert.Contains("ONNX opset 17", printed);
        Assert.Contains("input \"input\" (batch, 3, 12, 12)", printed);
        Assert.Contains("output \"output\" (batch, 2)", printed);

        // The checkpoint's own forward, in evaluation mode, on 5 random images.
        var config = Resuming.ReadConfig(last);
        var train = Recipes.LoadData(config with { TrainLimit = 0, ValSize = 0 }).Train;
        var model = Models.Build(config.Model, Recipes.Outputs(config, train), config.EffectiveDropout);
        using var ckpt = Resuming.LoadFor(last, Devices.Cpu, config, train);
        var x = GradCheck.Values(7, 5 * 3 * 12 * 12);
        float[] expected;
        using (var step = Devices.Cpu.BeginStep())
            expected = model.Predict(ckpt.Params, ckpt.State, step.Upload(x, new Shape(5, 3, 12, 12))).ToHost();

        using var session = new InferenceSession(onnx);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor("input", new DenseTensor<float>(x, [5, 3, 12, 12]))]);
        var actual = results.Single(r => r.Name == "output").AsEnumerable<float>().ToArray();
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(MathF.Abs(actual[i] - expected[i]) <= Atol + (Rtol * MathF.Abs(expected[i])), $"output {i}: onnxruntime {actual[i]}, predict {expected[i]}");
        Assert.Equal(OnnxExport.Build(model, train.SampleShape, ckpt.Params, ckpt.State).ToByteArray(), File.ReadAllBytes(onnx));
        Assert.DoesNotContain("does not carry its model", printed);

        // The same checkpoint as an older version wrote it, without its model: rebuilt from the configuration and the
        // data set, saying so, into the same file.
        using (var c = Checkpoint.Load(last, Devices.Cpu))
            Checkpoint.Save(last, c with { Model = null });
        string old = Path.Combine(_dir, "old.onnx");
        (code, printed, err) = CliRun.Invoke("export", "--checkpoint", last, "--onnx", old);
        Assert.True(code == 0, $"exit {code}: {err}");
        Assert.Contains("does not carry its model (an older checkpoint): rebuilding cnn from its stored configuration and the data set at", printed);
        Assert.Equal(File.ReadAllBytes(onnx), File.ReadAllBytes(old));
    }

    [Fact]
    public void A_checkpoint_that_carries_its_model_exports_with_its_data_set_gone_and_a_bogus_data_option()
    {
        string data = Path.Combine(_dir, "squares"), output = Path.Combine(_dir, "run"), onnx = Path.Combine(_dir, "gone.onnx");
        ImageFolders.Squares(data, perClass: 8, size: 12, seed: 3);
        var (code, printed, err) = CliRun.Invoke(
            "train", "--dataset", "image-folder", "--data", data, "--image-size", "12", "--model", "cnn",
            "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--seed", "2", "--output", output);
        Assert.True(code == 0, $"exit {code}: {err}\n{printed}");
        Directory.Delete(data, recursive: true);
        string last = Path.Combine(output, "checkpoints", "last.safetensors");

        (code, printed, err) = CliRun.Invoke("export", "--checkpoint", last, "--onnx", onnx, "--data", Path.Combine(_dir, "no-such-folder"));
        Assert.True(code == 0, $"exit {code}: {err}\n{printed}");
        Assert.Contains("is not used: the checkpoint carries its model", printed);
        Assert.Contains("input \"input\" (batch, 3, 12, 12)", printed);
        Assert.Contains("output \"output\" (batch, 2)", printed);

        // ONNX Runtime on the file gives the forward of the model the checkpoint carries (before its normalization).
        using var loaded = ModelFile.Load(last, Devices.Cpu);
        var x = GradCheck.Values(8, 3 * 3 * 12 * 12);
        float[] expected;
        using (var step = Devices.Cpu.BeginStep())
            expected = loaded.Model.Layer.Predict(loaded.Params, loaded.State, step.Upload(x, new Shape(3, 3, 12, 12))).ToHost();
        using var session = new InferenceSession(onnx);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor("input", new DenseTensor<float>(x, [3, 3, 12, 12]))]);
        var actual = results.Single(r => r.Name == "output").AsEnumerable<float>().ToArray();
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(MathF.Abs(actual[i] - expected[i]) <= Atol + (Rtol * MathF.Abs(expected[i])), $"output {i}: onnxruntime {actual[i]}, predict {expected[i]}");

        // Without its model and without its data, the checkpoint cannot be exported; the error names the data set.
        using (var c = Checkpoint.Load(last, Devices.Cpu))
            Checkpoint.Save(last, c with { Model = null });
        (code, printed, err) = CliRun.Invoke("export", "--checkpoint", last, "--onnx", onnx);
        Assert.NotEqual(0, code);
        Assert.Contains("does not carry its model", printed);
    }

    [Fact]
    public void A_missing_checkpoint_or_output_folder_is_refused_with_one_line()
    {
        var (code, _, err) = CliRun.Invoke("export", "--checkpoint", Path.Combine(_dir, "none.safetensors"), "--onnx", Path.Combine(_dir, "m.onnx"));
        Assert.Equal(2, code);
        Assert.Contains("--checkpoint", err);
        Assert.Single(err.Trim().Split('\n'));

        string ckpt = Path.Combine(_dir, "c.safetensors");
        File.WriteAllBytes(ckpt, [0]);
        (code, _, err) = CliRun.Invoke("export", "--checkpoint", ckpt, "--onnx", Path.Combine(_dir, "no", "such", "m.onnx"));
        Assert.Equal(2, code);
        Assert.Contains("--onnx", err);
        Assert.Contains("does not exist", err);
    }
}
