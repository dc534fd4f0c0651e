using System.Buffers.Binary;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Cli;

/// <summary>
/// The seeds' fine-tuning recipe through <c>ilgpu-train train</c>: a torchvision-named ResNet-18 starts from a
/// state_dict as PyTorch writes it (1000 ImageNet classes, int64 <c>num_batches_tracked</c>), its head is replaced
/// for the folder's classes, the backbone is frozen (its weights keep their exact bits under weight decay) and the
/// rest trains. Strict and non-strict loading, and every misuse, are refused with the option to change.
/// </summary>
[Collection(ProcessState.Name)]
public sealed class FineTuneCommandProperties : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ilgpu-train-finetune-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    // A "pretrained" ResNet-18 as PyTorch saves it: 1000 classes, float32 weights, int64 num_batches_tracked.
    // Entries in `drop` are left out of the file.
    private string Pretrained(string name, params string[] drop)
    {
        using var device = Device.Create(DeviceOptions.Parse("cpu", "test"));
        var (p, s) = Models.ResNet18(classes: 1000).Init(device, new Shape(3, 16, 16), Rng.Create(77));
        using (p)
        using (s)
        {
            var tensors = new List<SafeTensor>();
            foreach (var tree in new[] { p.Snapshot(), s.Snapshot() })
            {
                foreach (var info in tree.Layout.Params.Where(i => !drop.Contains(i.Path)))
                {
                    long[] shape = [.. info.Shape.Select(d => (long)d)];
                    if (info.DType == DType.Float32)
                    {
                        tensors.Add(SafeTensor.Float32(info.Path, shape, tree.Get(info.Path)));
                        continue;
                    }

                    var bytes = new byte[8 * info.Length];
                    for (int i = 0; i < info.Length; i++)
                        BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(8 * i), tree.Int32[(int)info.Offset + i]);
                    tensors.Add(new SafeTensor(info.Path, SafeTensorDType.I64, shape, bytes));
                }
            }

            string path = Path.Combine(_dir, name);
            SafeTensors.Save(path, tensors);
            return path;
        }
    }

    private static void Has(string printed, string expected) =>
        Assert.True(printed.Contains(expected, StringComparison.Ordinal), $"missing: {expected}\n---\n{printed}");

    private string Squares()
    {
        string data = Path.Combine(_dir, "squares");
        if (!Directory.Exists(data))
            ImageFolders.Squares(data, perClass: 24, size: 16, seed: 3);
        return data;
    }

    private string[] Train(string output, params string[] more) =>
        ["train", "--model", "resnet18", "--dataset", "image-folder", "--data", Squares(), "--image-size", "16", "--epochs", "1", "--batch-size", "16",
         "--workers", "0", "--device", "cpu", "--output", Path.Combine(_dir, output), .. more];

    [Fact]
    public void Resnet18_from_a_pytorch_state_dict_replaces_its_head_freezes_its_backbone_and_trains_the_rest()
    {
        string file = Pretrained("resnet18.safetensors");
        const string Frozen = "conv1.*,bn1.*,layer1.**,layer2.**,layer3.**";
        var (code, printed, err) = CliRun.Invoke(Train("run", "--init-from", file, "--freeze", Frozen, "--weight-decay", "0.1", "--lr", "0.001"));
        Assert.True(code == 0, $"exit {code}: {err}\n{printed}");
        string all = printed + err;
        Has(all, $"--init-from {file}: 120 of 122 tensors loaded (a state_dict, strict)");
        Has(all, "head fc replaced: the file's fc.weight is [1000, 512] and the model's [2, 512], so fc starts from initialization");
        Has(all, "--freeze conv1.*,bn1.*,layer1.**,layer2.**,layer3.**: 2,782,784 of 11,177,538 parameter values frozen");

        // The checkpoint: frozen weights keep the file's exact values under weight decay 0.1; layer4 and the new head trained.
        var pre = SafeTensors.Load(file);
        var after = SafeTensors.Load(Path.Combine(_dir, "run", "checkpoints", "last.safetensors"));
        foreach (var key in new[] { "conv1.weight", "bn1.bias", "layer1.0.conv1.weight", "layer3.1.bn2.weight", "layer2.0.downsample.0.weight" })
            Assert.Equal(pre.Find(key)!.ConvertToFloat32(), after.Find(key)!.ConvertToFloat32());
        Assert.NotEqual(pre.Find("layer4.1.conv2.weight")!.ConvertToFloat32(), after.Find("layer4.1.conv2.weight")!.ConvertToFloat32());
        Assert.Equal([2L, 512L], after.Find("fc.weight")!.Shape);

        // As in PyTorch, BatchNorm in train mode still tracks its statistics in a frozen layer.
        Assert.NotEqual(pre.Find("bn1.running_mean")!.ConvertToFloat32(), after.Find("bn1.running_mean")!.ConvertToFloat32());
        Assert.Equal(pre.Find("layer1.0.bn1.num_batches_tracked")!.ConvertToInt32()[0] + 3, after.Find("layer1.0.bn1.num_batches_tracked")!.ConvertToInt32()[0]);
    }

    [Fact]
    public void A_file_that_misses_a_key_fails_a_strict_load_and_is_listed_by_a_loose_one()
    {
        string file = Pretrained("partial.safetensors", "layer4.1.bn2.running_var");
        var (code, printed, err) = CliRun.Invoke(Train("strict", "--init-from", file));
        Assert.Equal(3, code);
        Assert.Contains("missing key(s) in the file: \"layer4.1.bn2.running_var\"", err);
        Assert.False(Directory.Exists(Path.Combine(_dir, "strict", "checkpoints")), "nothing is trained or written");

        (code, printed, err) = CliRun.Invoke(Train("loose", "--init-from", file, "--strict", "false", "--init-skip", "layer4.1.**"));
        Assert.True(code == 0, $"exit {code}: {err}\n{printed}");
        string all = printed + err;
        Has(all, "(a state_dict, not strict)");
        Has(all, "--init-skip layer4.1.**: 12 tensor(s) keep their initialization");
        Assert.DoesNotContain("missing from the file", all);
    }

    [Fact]
    public void A_checkpoint_of_train_starts_a_new_run_with_another_freeze()
    {
        var (code, printed, err) = CliRun.Invoke(Train("first", "--freeze", "conv1.*,bn1.*,layer1.**,layer2.**,layer3.**,layer4.**"));
        Assert.True(code == 0, $"exit {code}: {err}\n{printed}");
        string ckpt = Path.Combine(_dir, "first", "checkpoints", "last.safetensors");

        // Resuming with another --freeze is refused (the optimizer state covers the trainable parameters only) ...
        (code, _, err) = CliRun.Invoke(Train("first", "--resume", ckpt));
        Assert.Equal(2, code);
        Assert.Contains("the run froze --freeze conv1.*,bn1.*,layer1.**,layer2.**,layer3.**,layer4.** and this one nothing (no --freeze)", err);
        Assert.Contains("--init-from", err);

        // ... while --init-from the checkpoint unfreezes: all of its weights load, its optimizer state does not.
        (code, printed, err) = CliRun.Invoke(Train("second", "--init-from", ckpt));
        Assert.True(code == 0, $"exit {code}: {err}\n{printed}");
        Assert.Contains($"--init-from {ckpt}: 122 of 122 tensors loaded (an IlgpuTrain checkpoint, strict)", printed + err);
        var first = SafeTensors.Load(ckpt);
        var second = SafeTensors.Load(Path.Combine(_dir, "second", "checkpoints", "last.safetensors"));
        Assert.NotEqual(first.Find("conv1.weight")!.ConvertToFloat32(), second.Find("conv1.weight")!.ConvertToFloat32());
    }

    [Fact]
    public void Misuse_is_refused_before_training_with_the_option_to_change()
    {
        string file = Pretrained("r18.safetensors");
        (int Code, string Err) Run(params string[] more)
        {
            var (code, _, err) = CliRun.Invoke(Train("bad", more));
            return (code, err);
        }

        var r = Run("--freeze", "layer9.**");
        Assert.Equal(2, r.Code);
        Assert.Contains("\"layer9.**\" matches no parameter", r.Err);

        r = Run("--init-from", Path.Combine(_dir, "nowhere.safetensors"));
        Assert.Equal(2, r.Code);
        Assert.Contains("nowhere.safetensors: no such file", r.Err);

        r = Run("--init-skip", "fc.*");
        Assert.Equal(2, r.Code);
        Assert.Contains("--init-skip fc.*: names weights not to load, but nothing is loaded", r.Err);

        r = Run("--strict", "false");
        Assert.Equal(2, r.Code);
        Assert.Contains("--strict false: says how to load --init-from", r.Err);

        r = Run("--init-from", file, "--resume", file);
        Assert.Equal(2, r.Code);
        Assert.Contains("pick one", r.Err);

        r = Run("--init-from", file, "--init-skip", "head.*");
        Assert.Equal(2, r.Code);
        Assert.Contains("--init-skip head.*: matches no parameter or buffer of the model", r.Err);

        r = Run("--dropout", "0.2");
        Assert.Equal(2, r.Code);
        Assert.Contains("--dropout 0.2: resnet18 has no dropout layer", r.Err);

        // A shape that differs outside the head (one input channel against the file's three) names both shapes.
        var (code, _, err) = CliRun.Invoke("train", "--model", "resnet18", "--train-limit", "32", "--epochs", "1", "--device", "cpu",
            "--output", Path.Combine(_dir, "gray"), "--init-from", file);
        Assert.Equal(3, code);
        Assert.Contains("\"conv1.weight\": the file has shape [64, 3, 7, 7] but the model has [64, 1, 7, 7]", err);
        Assert.False(Directory.Exists(Path.Combine(_dir, "bad")), "nothing is written by a refused run");
    }
}
