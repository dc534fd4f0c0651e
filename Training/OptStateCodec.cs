using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using IlgpuTrain.Optimizers;
using Half = ILGPU.Half;

namespace IlgpuTrain.Training;

/// <summary>An optimizer state as stored: named tensors (moments, buffers) and a JSON tree of everything else.</summary>
/// <param name="Tensors">One tensor per parameter of every moment tree, plus device scalars.</param>
/// <param name="Json">The structure and the scalars (counts, flags, schedules).</param>
public sealed record EncodedOptState(IReadOnlyList<SafeTensor> Tensors, JsonObject Json);

/// <summary>
/// Saves any <see cref="OptState"/> tree to named tensors and JSON, and restores it exactly (bitwise)
/// into the state that <c>optimizer.Init(params)</c> produces for the same optimizer and model.
/// </summary>
/// <remarks>
/// Each state record is walked through its primary constructor: <see cref="ParamTree"/> properties
/// become one tensor per parameter, named <c>prefix/state path/property/parameter path</c>
/// (e.g. <c>optimizer/adamw/scale_by_adam/mu/0.weight</c>); a <see cref="Tensor"/> becomes one tensor;
/// numbers, flags and strings go to JSON (doubles and floats round-trip exactly); nested states and
/// (name, state) lists recurse; schedules are stored as JSON and must match on restore. Masks and
/// mask plans are derived from the optimizer's configuration, so the template's are kept.
/// Restoring validates everything before it changes anything: a checkpoint of another optimizer or
/// model raises <see cref="CheckpointMismatchException"/> naming the first difference, and the
/// template is left intact.
/// </remarks>
public static class OptStateCodec
{
    /// <summary>The default prefix of optimizer tensor names.</summary>
    public const string DefaultPrefix = "optimizer";

    private const string Consumer = "OptStateCodec.Restore";

    /// <summary>Encodes <paramref name="state"/> (copies its device buffers to the host).</summary>
    /// <param name="state">A live state.</param>
    /// <param name="prefix">Prefix of the tensor names.</param>
    /// <returns>The tensors and JSON.</returns>
    /// <exception cref="NotSupportedException">A state record holds a property type the codec cannot store.</exception>
    public static EncodedOptState Encode(OptState state, string prefix = DefaultPrefix)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentException.ThrowIfNullOrEmpty(prefix);
        var tensors = new List<SafeTensor>();
        var node = EncodeNode(state, prefix, tensors);
        node["description"] = Describe(state);
        return new EncodedOptState(tensors, node);
    }

    /// <summary>
    /// Initializes <paramref name="optimizer"/> on <paramref name="parameters"/> and restores the saved
    /// state into it.
    /// </summary>
    /// <param name="optimizer">The optimizer (same structure as the one that saved).</param>
    /// <param name="parameters">The model's parameters (same layout as when saved).</param>
    /// <param name="tensors">The saved tensors by name (other names are ignored).</param>
    /// <param name="json">The saved JSON (<see cref="EncodedOptState.Json"/>).</param>
    /// <param name="source">The checkpoint file, for messages.</param>
    /// <param name="prefix">Prefix of the tensor names.</param>
    /// <returns>The restored state.</returns>
    public static OptState Restore(IGradientTransformation optimizer, ParamTree parameters, IReadOnlyDictionary<string, SafeTensor> tensors, JsonObject json, string source = "checkpoint", string prefix = DefaultPrefix)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(parameters);
        var template = optimizer.Init(parameters);
        try
        {
            return Restore(template, tensors, json, source, prefix, optimizer.Name);
        }
        catch
        {
            template.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Restores the saved state into <paramref name="template"/> (a fresh state of the same
    /// optimizer): its device buffers receive the saved values and move to the returned state, and
    /// the template is consumed. On a mismatch nothing is changed.
    /// </summary>
    /// <param name="template">A live state with the saved structure, e.g. from <c>optimizer.Init(params)</c>.</param>
    /// <param name="tensors">The saved tensors by name.</param>
    /// <param name="json">The saved JSON.</param>
    /// <param name="source">The checkpoint file, for messages.</param>
    /// <param name="prefix">Prefix of the tensor names.</param>
    /// <param name="optimizerName">The optimizer's name, for messages (null: described from the state).</param>
    /// <returns>The restored state.</returns>
    /// <exception cref="CheckpointMismatchException">The saved state has another structure, or moments of another layout.</exception>
    public static OptState Restore(OptState template, IReadOnlyDictionary<string, SafeTensor> tensors, JsonObject json, string source = "checkpoint", string prefix = DefaultPrefix, string? optimizerName = null)
    {
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentNullException.ThrowIfNull(json);
        template.EnsureAlive();
        var ctx = new RestoreContext(source, tensors, json, template, optimizerName);
        RestoreNode(ctx, json, template, prefix, apply: false);
        var restored = RestoreNode(ctx, json, template, prefix, apply: true);
        template.MarkConsumed(Consumer);
        return restored;
    }

    /// <summary>A one-line description of a state tree's structure, e.g. <c>chain(clip_by_global_norm, adamw(scale_by_adam, add_decayed_weights, scale_by_learning_rate))</c>.</summary>
    /// <param name="state">The state.</param>
    /// <returns>The description.</returns>
    public static string Describe(OptState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        return DescribeChildren(StateName(state), state);
    }

    private static string DescribeChildren(string name, OptState state)
    {
        var children = state.Children.ToList();
        return children.Count == 0 ? name : $"{name}({string.Join(", ", children.Select(c => DescribeChildren(c.Name, c.State)))})";
    }

    private static string StateName(OptState s) => s is ChainState ? "chain" : Snake(s.GetType().Name.EndsWith("State", StringComparison.Ordinal) ? s.GetType().Name[..^5] : s.GetType().Name);

    // ---- encoding ----

    private static JsonObject EncodeNode(OptState state, string path, List<SafeTensor> tensors)
    {
        state.EnsureAlive();
        var type = state.GetType();
        var fields = new JsonObject();
        foreach (var p in PrimaryParameters(type))
        {
            var prop = Property(type, p);
            object? value = prop.GetValue(state);
            string sub = $"{path}/{Snake(p.Name!)}";
            fields[p.Name!] = EncodeValue(state, type, p, prop.PropertyType, value, sub, tensors);
        }
        return new JsonObject { ["type"] = type.Name, ["fields"] = fields };
    }

    private static JsonNode? EncodeValue(OptState owner, Type ownerType, ParameterInfo p, Type t, object? value, string path, List<SafeTensor> tensors)
    {
        if (value is null)
            return null;
        switch (value)
        {
            case ParamTree tree:
                var snap = tree.Snapshot();
                var entries = new JsonArray();
                foreach (var info in snap.Layout.Params)
                {
                    tensors.Add(TensorOf($"{path}/{info.Path}", info, snap));
                    entries.Add(new JsonArray(info.Path, DTypeName(info.DType), new JsonArray(info.Shape.Select(d => (JsonNode)d).ToArray())));
                }
                return new JsonObject { ["tree"] = entries };
            case Tensor tensor:
                var host = tensor.Snapshot();
                var shape = tensor.Shape.Select(d => (long)d).ToArray();
                tensors.Add(tensor.DType switch
                {
                    DType.Float32 => SafeTensor.Float32(path, shape, (float[])host.Data),
                    DType.Float16 => SafeTensor.Float16(path, shape, (Half[])host.Data),
                    _ => SafeTensor.Int32(path, shape, (int[])host.Data),
                });
                return new JsonObject { ["tensor"] = path };
            case OptState child:
                return EncodeNode(child, ChildPath(owner, child, path), tensors);
            case IReadOnlyList<(string Name, OptState State)> list:
                var arr = new JsonArray();
                string parent = path[..path.LastIndexOf('/')];
                foreach (var (name, s) in list)
                    arr.Add(new JsonObject { ["name"] = name, ["state"] = EncodeNode(s, $"{parent}/{name}", tensors) });
                return arr;
            case Schedule schedule:
                return JsonNode.Parse(schedule.ToJson());
            case DeviceMask or MaskPlan:
                return JsonValue.Create(value.ToString());
            case double d:
                return Number(d);
            case float f:
                return Number(f);
            case long or int or bool or string:
                return JsonValue.Create(value);
            default:
                throw new NotSupportedException($"OptStateCodec: {ownerType.Name}.{p.Name} is a {t.Name}, which the codec cannot store; extend Training/OptStateCodec.cs.");
        }
    }

    // A child reached through a property takes its name from Children (e.g. "inner"), so tensor
    // names follow OptState's own paths.
    private static string ChildPath(OptState owner, OptState child, string propertyPath)
    {
        string parent = propertyPath[..propertyPath.LastIndexOf('/')];
        foreach (var (name, s) in owner.Children)
        {
            if (ReferenceEquals(s, child))
                return $"{parent}/{name}";
        }
        return propertyPath;
    }

    private static SafeTensor TensorOf(string name, ParamInfo info, ParamSnapshot snap)
    {
        var shape = info.Shape.Select(d => (long)d).ToArray();
        int offset = (int)info.Offset, length = (int)info.Length;
        return info.DType switch
        {
            DType.Float32 => SafeTensor.Float32(name, shape, snap.Float32.AsSpan(offset, length)),
            DType.Float16 => SafeTensor.Float16(name, shape, snap.Float16.AsSpan(offset, length)),
            _ => SafeTensor.Int32(name, shape, snap.Int32.AsSpan(offset, length)),
        };
    }

    // Finite values as JSON numbers (the shortest text that parses back to the same double);
    // NaN and the infinities as strings, which JSON numbers cannot hold.
    private static JsonNode Number(double d) => double.IsFinite(d) ? JsonValue.Create(d) : JsonValue.Create(d.ToString("R", System.Globalization.CultureInfo.InvariantCulture));

    // ---- restoring ----

    private sealed record RestoreContext(string Source, IReadOnlyDictionary<string, SafeTensor> Tensors, JsonObject Root, OptState Template, string? OptimizerName);

    private static OptState RestoreNode(RestoreContext ctx, JsonNode? node, OptState template, string path, bool apply)
    {
        template.EnsureAlive();
        var type = template.GetType();
        if (node is not JsonObject obj || obj["fields"] is not JsonObject fields)
            throw Mismatch(ctx, path, $"the checkpoint has no state here but the optimizer has a {type.Name}");
        string savedType = obj["type"]?.GetValueKind() == JsonValueKind.String ? obj["type"]!.GetValue<string>() : "?";
        if (savedType != type.Name)
            throw Mismatch(ctx, path, $"the checkpoint has a {savedType} where the optimizer has a {type.Name}");
        var parameters = PrimaryParameters(type);
        var args = new object?[parameters.Length];
        for (int i = 0; i < parameters.Length; i++)
        {
            var p = parameters[i];
            var prop = Property(type, p);
            object? value = prop.GetValue(template);
            string sub = $"{path}/{Snake(p.Name!)}";
            if (!fields.ContainsKey(p.Name!))
                throw Mismatch(ctx, path, $"the checkpoint's {type.Name} has no {p.Name}");
            args[i] = RestoreValue(ctx, template, type, p, prop.PropertyType, value, fields[p.Name!], sub, apply);
        }
        return apply ? (OptState)Constructor(type).Invoke(args) : template;
    }

    private static object? RestoreValue(RestoreContext ctx, OptState owner, Type ownerType, ParameterInfo p, Type t, object? value, JsonNode? saved, string path, bool apply)
    {
        string what = $"{ownerType.Name}.{p.Name}";
        if (value is null || saved is null)
        {
            if (value is null && saved is null)
                return null;
            if (value is DeviceMask or MaskPlan)
                return value;
            throw Mismatch(ctx, path, $"{what} is {(saved is null ? "absent" : "present")} in the checkpoint but {(value is null ? "absent" : "present")} in the optimizer's state (a different option, such as amsgrad or momentum, was used)");
        }
        switch (value)
        {
            case ParamTree tree:
                return RestoreTree(ctx, tree, saved, path, what, apply);
            case Tensor tensor:
                var st = Find(ctx, path, what);
                if (st.DType != SafeDType(tensor.DType) || !st.Shape.SequenceEqual(tensor.Shape.Select(d => (long)d)))
                    throw Mismatch(ctx, path, $"{what} is {st} in the checkpoint but {tensor.DType} {tensor.Shape} in the optimizer's state");
                if (apply)
                    Upload(tensor, st);
                return tensor;
            case OptState child:
                return RestoreNode(ctx, saved, child, ChildPath(owner, child, path), apply);
            case IReadOnlyList<(string Name, OptState State)> list:
                if (saved is not JsonArray arr || arr.Count != list.Count)
                    throw Mismatch(ctx, path, $"the checkpoint has {(saved as JsonArray)?.Count.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "no"} parts here but the optimizer's {ownerType.Name} has {list.Count}");
                string parent = path[..path.LastIndexOf('/')];
                var result = new List<(string, OptState)>(list.Count);
                for (int i = 0; i < list.Count; i++)
                {
                    string savedName = arr[i]?["name"]?.GetValueKind() == JsonValueKind.String ? arr[i]!["name"]!.GetValue<string>() : "?";
                    if (savedName != list[i].Name)
                        throw Mismatch(ctx, parent, $"part {i} is \"{savedName}\" in the checkpoint but \"{list[i].Name}\" in the optimizer");
                    result.Add((list[i].Name, RestoreNode(ctx, arr[i]!["state"], list[i].State, $"{parent}/{list[i].Name}", apply)));
                }
                return result;
            case Schedule schedule:
                string want = schedule.ToJson();
                string have = saved.ToJsonString();
                if (!JsonNode.DeepEquals(JsonNode.Parse(want), saved))
                    throw Mismatch(ctx, path, $"{what}: the checkpoint's schedule {have} differs from the optimizer's {want}; resuming with another schedule would not continue the run");
                return schedule;
            case DeviceMask or MaskPlan:
                return value;
            default:
                return Scalar(ctx, path, what, t, saved);
        }
    }

    private static object Scalar(RestoreContext ctx, string path, string what, Type t, JsonNode saved)
    {
        var underlying = Nullable.GetUnderlyingType(t) ?? t;
        try
        {
            if (underlying == typeof(double))
                return saved.GetValueKind() == JsonValueKind.String ? double.Parse(saved.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture) : saved.GetValue<double>();
            if (underlying == typeof(float))
                return saved.GetValueKind() == JsonValueKind.String ? float.Parse(saved.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture) : saved.GetValue<float>();
            if (underlying == typeof(long))
                return saved.GetValue<long>();
            if (underlying == typeof(int))
                return saved.GetValue<int>();
            if (underlying == typeof(bool))
                return saved.GetValue<bool>();
            if (underlying == typeof(string))
                return saved.GetValue<string>();
        }
        catch (Exception e) when (e is FormatException or InvalidOperationException or OverflowException)
        {
            throw new CheckpointFormatException(ctx.Source, $"optimizer state {path}: {what} should be a {underlying.Name} but is {saved.ToJsonString()}.");
        }
        throw new NotSupportedException($"OptStateCodec: {what} is a {t.Name}, which the codec cannot restore; extend Training/OptStateCodec.cs.");
    }

    private static ParamTree RestoreTree(RestoreContext ctx, ParamTree tree, JsonNode saved, string path, string what, bool apply)
    {
        var layout = tree.Layout;
        if (saved["tree"] is not JsonArray entries)
            throw new CheckpointFormatException(ctx.Source, $"optimizer state {path}: {what} has no parameter list.");
        var found = new SafeTensor[layout.Count];
        for (int i = 0; i < layout.Count; i++)
        {
            var info = layout.Params[i];
            string savedPath = i < entries.Count && entries[i] is JsonArray e && e.Count > 0 && e[0]?.GetValueKind() == JsonValueKind.String ? e[0]!.GetValue<string>() : "?";
            if (i >= entries.Count)
                throw Mismatch(ctx, path, $"{what}: the model has parameter {i} \"{info.Path}\" {info.Shape} but the checkpoint's state stops after {entries.Count} parameters");
            if (savedPath != info.Path)
                throw Mismatch(ctx, path, $"{what}: parameter {i} is \"{savedPath}\" in the checkpoint but \"{info.Path}\" [{string.Join(", ", info.Shape)}] in the model");
            var st = Find(ctx, $"{path}/{info.Path}", what);
            if (st.DType != SafeDType(info.DType) || !st.Shape.SequenceEqual(info.Shape.Select(d => (long)d)))
                throw Mismatch(ctx, path, $"{what}: parameter \"{info.Path}\" is {SafeTensors.DTypeName(st.DType)} [{string.Join(", ", st.Shape)}] in the checkpoint but {DTypeName(info.DType)} [{string.Join(", ", info.Shape)}] in the model");
            found[i] = st;
        }
        if (entries.Count > layout.Count)
        {
            string extra = entries[layout.Count] is JsonArray e && e.Count > 0 ? e[0]?.ToJsonString() ?? "?" : "?";
            throw Mismatch(ctx, path, $"{what}: the checkpoint has {entries.Count} parameters but the model {layout.Count}; the first extra is {extra}");
        }
        if (!apply)
            return tree;
        var moved = tree.Consume(Consumer);
        var f32 = new float[layout.LengthOf(DType.Float32)];
        var f16 = new Half[layout.LengthOf(DType.Float16)];
        var i32 = new int[layout.LengthOf(DType.Int32)];
        for (int i = 0; i < layout.Count; i++)
        {
            var info = layout.Params[i];
            var bytes = found[i].Data.Span;
            switch (info.DType)
            {
                case DType.Float32: bytes.CopyTo(MemoryMarshal.AsBytes(f32.AsSpan((int)info.Offset, (int)info.Length))); break;
                case DType.Float16: bytes.CopyTo(MemoryMarshal.AsBytes(f16.AsSpan((int)info.Offset, (int)info.Length))); break;
                default: bytes.CopyTo(MemoryMarshal.AsBytes(i32.AsSpan((int)info.Offset, (int)info.Length))); break;
            }
        }
        var stream = moved.Device.Stream;
        Transfer.ToDevice<float>(stream, f32, moved.Flat<float>());
        Transfer.ToDevice<Half>(stream, f16, moved.Flat<Half>());
        Transfer.ToDevice<int>(stream, i32, moved.Flat<int>());
        return moved;
    }

    private static void Upload(Tensor tensor, SafeTensor st)
    {
        var stream = tensor.Device.Stream;
        var bytes = st.Data.Span;
        switch (tensor.DType)
        {
            case DType.Float32: Transfer.ToDevice(stream, MemoryMarshal.Cast<byte, float>(bytes), tensor.View<float>()); break;
            case DType.Float16: Transfer.ToDevice(stream, MemoryMarshal.Cast<byte, Half>(bytes), tensor.View<Half>()); break;
            default: Transfer.ToDevice(stream, MemoryMarshal.Cast<byte, int>(bytes), tensor.View<int>()); break;
        }
    }

    private static SafeTensor Find(RestoreContext ctx, string name, string what) =>
        ctx.Tensors.TryGetValue(name, out var t) ? t : throw new CheckpointFormatException(ctx.Source, $"the optimizer state lists {what} but the tensor \"{name}\" is missing.");

    private static CheckpointMismatchException Mismatch(RestoreContext ctx, string path, string detail)
    {
        string saved = ctx.Root["description"]?.GetValueKind() == JsonValueKind.String ? ctx.Root["description"]!.GetValue<string>() : "an unknown optimizer";
        string mine = Describe(ctx.Template);
        string head = saved == mine
            ? $"the checkpoint's optimizer state ({saved}) does not fit this model"
            : $"the checkpoint has optimizer state for {saved} but the optimizer{(ctx.OptimizerName is null ? string.Empty : $" ({ctx.OptimizerName})")} is {mine}";
        return new CheckpointMismatchException(ctx.Source, $"{head}. First difference at {path}: {detail}.");
    }

    // ---- reflection ----

    private static ParameterInfo[] PrimaryParameters(Type type) => Constructor(type).GetParameters();

    private static ConstructorInfo Constructor(Type type)
    {
        var ctor = type.GetConstructors(BindingFlags.Public | BindingFlags.Instance)
            .Where(c => !c.GetParameters().Any(p => p.ParameterType == type))
            .OrderByDescending(c => c.GetParameters().Length)
            .FirstOrDefault();
        return ctor ?? throw new NotSupportedException($"OptStateCodec: {type.Name} has no public constructor to restore it through.");
    }

    private static PropertyInfo Property(Type type, ParameterInfo p) =>
        type.GetProperty(p.Name!, BindingFlags.Public | BindingFlags.Instance)
        ?? throw new NotSupportedException($"OptStateCodec: {type.Name}'s constructor parameter {p.Name} has no property of that name.");

    private static SafeTensorDType SafeDType(DType d) => d switch
    {
        DType.Float32 => SafeTensorDType.F32,
        DType.Float16 => SafeTensorDType.F16,
        _ => SafeTensorDType.I32,
    };

    private static string DTypeName(DType d) => SafeTensors.DTypeName(SafeDType(d));

    /// <summary>PascalCase to snake_case ("MomentumBuffer" to "momentum_buffer").</summary>
    /// <param name="s">The name.</param>
    /// <returns>The snake_case name.</returns>
    internal static string Snake(string s)
    {
        var sb = new StringBuilder(s.Length + 4);
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsUpper(s[i]) && i > 0 && !char.IsUpper(s[i - 1]))
                sb.Append('_');
            sb.Append(char.ToLowerInvariant(s[i]));
        }
        return sb.ToString();
    }
}
