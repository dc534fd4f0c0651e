using System.Buffers.Binary;
using Half = ILGPU.Half;

namespace IlgpuTrain.Training;

/// <summary>How <see cref="StateDict.Load(string, ParamTree, ParamTree, StateDictOptions?)"/> matches a file's tensors to a model's, as torch.nn.Module.load_state_dict.</summary>
public sealed record StateDictOptions
{
    /// <summary>
    /// True (PyTorch's default): every parameter and buffer of the model must be in the file and every
    /// tensor of the file must be in the model, or nothing is loaded. False: matching tensors are
    /// loaded, the others keep their values, and the result lists the missing and unexpected keys.
    /// Shapes must match in both modes.
    /// </summary>
    public bool Strict { get; init; } = true;

    /// <summary>
    /// Maps a key of the file to the model's name for it (strip <c>"module."</c>, rename a head), or
    /// returns null to skip the tensor (it is then neither loaded nor reported as unexpected); null for
    /// the identity.
    /// </summary>
    public Func<string, string?>? MapKey { get; init; }

    /// <summary>
    /// Model keys that keep the values of the trees passed in (their initialization), such as a head
    /// replaced for a new number of classes (<c>ParamFilter.Glob("fc.*")</c>): the file's tensors for them
    /// are ignored whatever their shapes, and they are not missing in a strict load. Null for none. This
    /// is what a PyTorch user does by deleting those keys from the state_dict before loading it.
    /// </summary>
    public ParamFilter? Keep { get; init; }
}

/// <summary>What <see cref="StateDict.Load(string, ParamTree, ParamTree, StateDictOptions?)"/> produced: new trees the caller owns and disposes, and the keys that did not match.</summary>
/// <param name="Params">The parameters with the file's values (and the input's where the file had none).</param>
/// <param name="State">The state (BatchNorm running statistics, num_batches_tracked) likewise.</param>
/// <param name="MissingKeys">Model keys the file did not supply (less those <see cref="StateDictOptions.Keep"/> names), in the model's order (empty when strict).</param>
/// <param name="UnexpectedKeys">File keys (after the key map) the model has no entry for, in the file's order (empty when strict).</param>
public sealed record StateDictResult(ParamTree Params, ParamTree State, IReadOnlyList<string> MissingKeys, IReadOnlyList<string> UnexpectedKeys);

/// <summary>
/// Loads a PyTorch state_dict saved as safetensors (<c>safetensors.torch.save_file(model.state_dict(), path)</c>)
/// into a model's parameters and state, as torch.nn.Module.load_state_dict: keys are the parameter
/// paths (<c>layer1.0.conv1.weight</c>, <c>bn1.running_mean</c>), every dtype is converted on load to
/// the entry's (F16, BF16 and F64 to Float32; I64 <c>num_batches_tracked</c> to Int32), shapes must
/// match, and missing and unexpected keys fail a strict load or are reported by a non-strict one.
/// <see cref="Save"/> writes the other way: a model's trees as a state_dict that PyTorch loads.
/// </summary>
/// <example>
/// <code>
/// var model = Models.ResNet18(classes: 1000);
/// var (p, s) = model.Init(device, new Shape(3, 224, 224), Rng.Create(0));
/// var loaded = StateDict.Load("resnet18.safetensors", p, s);
/// </code>
/// </example>
public static class StateDict
{
    /// <summary>Reads <paramref name="path"/> and loads it (see <see cref="Load(SafeTensorsFile, ParamTree, ParamTree, StateDictOptions?)"/>).</summary>
    /// <param name="path">A safetensors file.</param>
    /// <param name="parameters">The model's parameters (from Init); not modified.</param>
    /// <param name="state">The model's state (from Init); not modified.</param>
    /// <param name="options">Strictness and key map; null for strict with no map.</param>
    /// <returns>New trees with the loaded values, and the keys that did not match.</returns>
    /// <exception cref="CheckpointFormatException">The file is not valid safetensors.</exception>
    /// <exception cref="CheckpointMismatchException">A shape differs, an integer does not fit, or (strict) keys are missing or unexpected; the message lists them.</exception>
    public static StateDictResult Load(string path, ParamTree parameters, ParamTree state, StateDictOptions? options = null) =>
        Load(SafeTensors.Load(path), parameters, state, options);

    /// <summary>Loads the tensors of <paramref name="file"/> into copies of <paramref name="parameters"/> and <paramref name="state"/>.</summary>
    /// <param name="file">The tensors (for instance from <see cref="SafeTensors.Load"/>).</param>
    /// <param name="parameters">The model's parameters (from Init); not modified.</param>
    /// <param name="state">The model's state (from Init); not modified.</param>
    /// <param name="options">Strictness and key map; null for strict with no map.</param>
    /// <returns>New trees with the loaded values, and the keys that did not match.</returns>
    /// <exception cref="CheckpointMismatchException">A shape differs, an integer does not fit, or (strict) keys are missing or unexpected; the message lists them.</exception>
    /// <exception cref="ArgumentException">The key map sends two file keys to the same model key, or a glob of <see cref="StateDictOptions.Keep"/> matches no key of the model.</exception>
    public static StateDictResult Load(SafeTensorsFile file, ParamTree parameters, ParamTree state, StateDictOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(state);
        options ??= new StateDictOptions();
        var trees = new[] { parameters, state };
        options.Keep?.RequireMatches(trees.SelectMany(tr => tr.Layout.Params).Select(p => p.Path).ToList(), "StateDict.Load: StateDictOptions.Keep");

        // Match: file key -> (tree, entry).
        var matched = new Dictionary<string, (int Tree, ParamInfo Info, SafeTensor Tensor)>(StringComparer.Ordinal);
        var from = new Dictionary<string, string>(StringComparer.Ordinal);
        var unexpected = new List<string>();
        var shapeErrors = new List<string>();
        foreach (var t in file.Tensors)
        {
            string? key = options.MapKey is null ? t.Name : options.MapKey(t.Name);
            if (key is null)
                continue;
            if (from.TryGetValue(key, out var other))
                throw new ArgumentException($"StateDict.Load: the key map sends both \"{other}\" and \"{t.Name}\" to \"{key}\"; map each file key to its own model key.", nameof(options));
            from[key] = t.Name;
            int tree = Array.FindIndex(trees, tr => tr.Layout.Contains(key));
            if (tree < 0)
            {
                unexpected.Add(key);
                continue;
            }

            if (options.Keep?.Matches(key) == true)
                continue;

            var info = trees[tree].Layout[key];
            if (!SameShape(info.Shape, t.Shape))
            {
                shapeErrors.Add($"\"{key}\"{(key == t.Name ? string.Empty : $" (\"{t.Name}\" in the file)")}: the file has shape [{string.Join(", ", t.Shape)}] but the model has [{string.Join(", ", info.Shape)}]");
                continue;
            }

            matched[key] = (tree, info, t);
        }

        if (shapeErrors.Count > 0)
            throw new CheckpointMismatchException(file.Source, $"size mismatch for {string.Join("; ", shapeErrors)}. Build the model with the file's sizes (classes, width), or keep the model's own values for these keys with StateDictOptions.Keep (a replaced head).");

        var missing = trees.SelectMany(tr => tr.Layout.Params).Select(p => p.Path)
            .Where(p => !matched.ContainsKey(p) && options.Keep?.Matches(p) != true).ToList();
        if (options.Strict && (missing.Count > 0 || unexpected.Count > 0))
        {
            var parts = new List<string>();
            if (missing.Count > 0)
                parts.Add($"missing key(s) in the file: {List(missing)}");
            if (unexpected.Count > 0)
                parts.Add($"unexpected key(s) in the file: {List(unexpected)}");
            throw new CheckpointMismatchException(file.Source, $"the file does not match the model: {string.Join("; ", parts)}. Rename keys with StateDictOptions.MapKey, or load what matches with Strict = false.");
        }

        var snaps = trees.Select(tr => tr.Snapshot()).ToArray();
        foreach (var (key, (tree, info, tensor)) in matched)
        {
            var snap = snaps[tree];
            int off = (int)info.Offset;
            switch (info.DType)
            {
                case DType.Float32:
                    tensor.ConvertToFloat32().CopyTo(snap.Float32, off);
                    break;
                case DType.Float16:
                    var f = tensor.ConvertToFloat32();
                    for (int i = 0; i < f.Length; i++)
                        snap.Float16[off + i] = (Half)f[i];
                    break;
                default:
                    try
                    {
                        tensor.ConvertToInt32().CopyTo(snap.Int32, off);
                    }
                    catch (OverflowException e)
                    {
                        throw new CheckpointMismatchException(file.Source, $"\"{key}\": {e.Message}");
                    }

                    break;
            }
        }

        var p = ParamTree.FromSnapshot(parameters.Device, snaps[0]);
        try
        {
            return new StateDictResult(p, ParamTree.FromSnapshot(state.Device, snaps[1]), missing, unexpected);
        }
        catch
        {
            p.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Writes a model's parameters and state as a PyTorch state_dict in safetensors, atomically: what
    /// <c>safetensors.torch.load_file</c> reads and <c>torch.nn.Module.load_state_dict</c> accepts, and
    /// what <see cref="Load(string, ParamTree, ParamTree, StateDictOptions?)"/> reads back unchanged.
    /// The tensors are those of <see cref="ToTensors"/>; the file's metadata is <c>{"format": "pt"}</c>,
    /// as Hugging Face's PyTorch checkpoints have it.
    /// </summary>
    /// <param name="path">The file to write (replaced when it exists).</param>
    /// <param name="parameters">The model's parameters (from Init, training or Load); not modified.</param>
    /// <param name="state">The model's state (BatchNorm running statistics and num_batches_tracked); not modified.</param>
    /// <exception cref="ArgumentException">A path is in both trees, or <paramref name="path"/> is empty.</exception>
    /// <exception cref="ConsumedValueException">A tree was consumed by an earlier operation.</exception>
    public static void Save(string path, ParamTree parameters, ParamTree state)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        SafeTensors.Save(path, ToTensors(parameters, state), PyTorchFormat);
    }

    /// <summary>
    /// The state_dict of a model as safetensors tensors, in PyTorch's order (module by module, each
    /// module's parameters, then its buffers: <c>bn1.weight</c>, <c>bn1.bias</c>, <c>bn1.running_mean</c>,
    /// <c>bn1.running_var</c>, <c>bn1.num_batches_tracked</c>), keyed by path. Float32 entries are F32;
    /// Float16 entries stay F16 (exact, and <c>load_state_dict</c> converts them to the module's dtype
    /// as it copies); Int32 entries are I64, the dtype in which PyTorch keeps <c>num_batches_tracked</c>.
    /// </summary>
    /// <param name="parameters">The model's parameters; not modified.</param>
    /// <param name="state">The model's state; not modified.</param>
    /// <returns>One tensor per entry of both trees.</returns>
    /// <exception cref="ArgumentException">A path is in both trees.</exception>
    /// <exception cref="ConsumedValueException">A tree was consumed by an earlier operation.</exception>
    public static IReadOnlyList<SafeTensor> ToTensors(ParamTree parameters, ParamTree state)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(state);
        var both = parameters.Layout.Params.Select(p => p.Path).Where(state.Layout.Contains).ToList();
        if (both.Count > 0)
            throw new ArgumentException($"StateDict.Save: the key(s) {List(both)} are in both the parameters and the state, but a state_dict key names one tensor. Pass the parameters and the state of one model, as Init returns them.", nameof(state));

        var snaps = new[] { parameters.Snapshot(), state.Snapshot() };
        var entries = parameters.Layout.Params.Select(p => (Tree: 0, Info: p)).Concat(state.Layout.Params.Select(p => (Tree: 1, Info: p))).ToList();
        var tensors = new List<SafeTensor>(entries.Count);
        foreach (var (tree, info) in entries.GroupBy(e => Module(e.Info.Path), StringComparer.Ordinal).SelectMany(g => g))
        {
            var snap = snaps[tree];
            long[] shape = info.Shape.Select(d => (long)d).ToArray();
            int off = (int)info.Offset, n = (int)info.Length;
            tensors.Add(info.DType switch
            {
                DType.Float32 => SafeTensor.Float32(info.Path, shape, snap.Float32.AsSpan(off, n)),
                DType.Float16 => SafeTensor.Float16(info.Path, shape, snap.Float16.AsSpan(off, n)),
                _ => Int64(info.Path, shape, snap.Int32.AsSpan(off, n)),
            });
        }

        return tensors;

        // A module's entries sit together in PyTorch's order: GroupBy keeps the groups in the order of
        // their first entry (the module's first parameter) and the entries of each in the input order
        // (parameters before buffers).
        static string Module(string path) => path[..Math.Max(0, path.LastIndexOf('.'))];
    }

    private static readonly Dictionary<string, string> PyTorchFormat = new(StringComparer.Ordinal) { ["format"] = "pt" };

    private static SafeTensor Int64(string name, long[] shape, ReadOnlySpan<int> values)
    {
        var bytes = new byte[values.Length * sizeof(long)];
        for (int i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteInt64LittleEndian(bytes.AsSpan(i * sizeof(long)), values[i]);
        return new SafeTensor(name, SafeTensorDType.I64, shape, bytes);
    }

    private static bool SameShape(Shape model, IReadOnlyList<long> file) =>
        model.Rank == file.Count && model.Select((d, i) => d == file[i]).All(x => x);

    private static string List(List<string> keys) =>
        string.Join(", ", keys.Take(20).Select(k => $"\"{k}\"")) + (keys.Count > 20 ? $" and {keys.Count - 20} more" : string.Empty);
}
