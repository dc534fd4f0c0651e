using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Cli;

/// <summary>
/// <c>ilgpu-train train --dataset text --model transformer</c> and <c>generate</c> as a user runs them: a small
/// character-level Transformer learns a text its context determines and continues a prompt with it; misuse is
/// refused before training, naming the option to change.
/// </summary>
[Collection(ProcessState.Name)]
public sealed class TextCommandProperties : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ilgpu-train-textcli-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void A_transformer_trains_on_a_text_file_and_generate_continues_a_prompt()
    {
        // Period 9, coprime to the training stride (half the block, 8): every phase meets every position.
        string text = Path.Combine(_dir, "cats.txt");
        File.WriteAllText(text, string.Concat(Enumerable.Repeat("the cats ", 300)));
        string output = Path.Combine(_dir, "run");
        var (code, printed, err) = CliRun.Invoke("train", "--dataset", "text", "--data", text, "--model", "transformer", "--block-size", "16", "--dim", "32",
            "--layers", "2", "--heads", "4", "--epochs", "6", "--batch-size", "16", "--lr", "3e-3", "--dropout", "0", "--device", "cpu", "--output", output);
        Assert.True(code == 0, $"exit {code}: {err}\n{printed}");
        Assert.Contains("transformer on cats.txt train", printed);
        Assert.Contains("a vocabulary of 7 characters", printed);
        var m = System.Text.RegularExpressions.Regex.Match(printed, @"(?m)^test: loss [\d.]+, accuracy ([\d.]+), bits_per_token ([\d.]+)");
        Assert.True(m.Success, printed);
        double bits = double.Parse(m.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(bits < 0.5, $"bits per character {bits}; one previous character alone leaves about 0.44");

        string best = Path.Combine(output, "checkpoints", "best.safetensors");
        (code, printed, err) = CliRun.Invoke("generate", "--checkpoint", best, "--prompt", "the c", "--tokens", "40", "--temperature", "0", "--device", "cpu");
        Assert.True(code == 0, $"exit {code}: {err}");
        Assert.Equal("the cats the cats the cats the cats the cats ", printed.TrimEnd('\n'));

        var (c1, p1, _) = CliRun.Invoke("generate", "--checkpoint", best, "--prompt", "the", "--tokens", "30", "--top-k", "3", "--seed", "9", "--device", "cpu");
        var (c2, p2, _) = CliRun.Invoke("generate", "--checkpoint", best, "--prompt", "the", "--tokens", "30", "--top-k", "3", "--seed", "9", "--device", "cpu");
        Assert.Equal(0, c1);
        Assert.Equal(p1, p2);

        (code, _, err) = CliRun.Invoke("generate", "--checkpoint", best, "--prompt", "xyz", "--device", "cpu");
        Assert.Equal(2, code);
        Assert.Contains("\"x\" (U+0078, rune 0 of the text) is not in the vocabulary of 7 symbols", err);
    }

    [Fact]
    public void Misuse_is_refused_before_training_naming_the_option()
    {
        string text = Path.Combine(_dir, "t.txt");
        File.WriteAllText(text, "abc abc abc abc abc abc abc abc");
        (int Code, string Err) Train(params string[] more)
        {
            var (code, _, err) = CliRun.Invoke(["train", "--device", "cpu", "--output", Path.Combine(_dir, "bad"), .. more]);
            return (code, err);
        }

        var r = Train("--dataset", "text", "--data", text);
        Assert.Equal(2, r.Code);
        Assert.Contains("--dataset text: trains a language model; add --model transformer.", r.Err);
        r = Train("--model", "transformer");
        Assert.Equal(2, r.Code);
        Assert.Contains("--model transformer: trains on text", r.Err);
        r = Train("--dataset", "text", "--model", "transformer", "--data", text, "--dim", "30", "--heads", "4", "--block-size", "1");
        Assert.Equal(2, r.Code);
        Assert.Contains("--heads 4: must divide --dim 30.", r.Err);
        Assert.Contains("--block-size 1: must be from 2 to 8192 characters.", r.Err);
        r = Train("--dataset", "text", "--model", "transformer", "--data", Path.Combine(_dir, "missing.txt"));
        Assert.NotEqual(0, r.Code);
        Assert.Contains("missing.txt: no such text file or folder", r.Err);
        r = Train("--dataset", "text", "--model", "transformer", "--data", text, "--block-size", "64");
        Assert.NotEqual(0, r.Code);
        Assert.Contains("too few for one sample of 64 tokens", r.Err);
        Assert.False(Directory.Exists(Path.Combine(_dir, "bad")), "nothing is written by a refused run");

        var (code, _, err) = CliRun.Invoke("generate", "--checkpoint", Path.Combine(_dir, "none.safetensors"), "--temperature", "-1", "--top-k", "0");
        Assert.Equal(2, code);
        Assert.Contains("none.safetensors: no such file", err);
        Assert.Contains("--temperature -1", err);
        Assert.Contains("--top-k 0: must be at least 1", err);
    }
}
