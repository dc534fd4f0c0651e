using System.Text;

namespace IlgpuTrain.Functional;

/// <summary>One named parameter: a view into its dtype group's flat buffer.</summary>
/// <param name="Path">The name, in PyTorch state_dict style (<c>0.weight</c>, <c>3.running_mean</c>).</param>
/// <param name="Shape">The shape.</param>
/// <param name="DType">The element type (selects the flat buffer).</param>
/// <param name="Offset">Offset in elements within that buffer.</param>
public sealed record ParamInfo(string Path, Shape Shape, DType DType, long Offset)
{
    /// <summary>Number of elements.</summary>
    public long Length => Shape.Length;
}

/// <summary>
/// The layout of a <see cref="ParamTree"/>: ordered named views into one flat contiguous buffer
/// per dtype. Gradients and optimizer moments share their parameters' layout, so a whole-model
/// update, norm or finite check is one launch over one buffer.
/// </summary>
public sealed class ParamLayout : IEquatable<ParamLayout>
{
    private readonly ParamInfo[] _params;
    private readonly Dictionary<string, ParamInfo> _byPath;
    private readonly long[] _lengths;

    /// <summary>Lays out named parameters in the given order, packed per dtype.</summary>
    /// <param name="entries">Path, shape and dtype of each parameter.</param>
    public ParamLayout(IEnumerable<(string Path, Shape Shape, DType DType)> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var list = new List<ParamInfo>();
        _byPath = new Dictionary<string, ParamInfo>(StringComparer.Ordinal);
        _lengths = new long[Enum.GetValues<DType>().Length];
        foreach (var (path, shape, dtype) in entries)
        {
            if (string.IsNullOrWhiteSpace(path))
                throw new ArgumentException("Parameter paths must be non-empty, e.g. \"0.weight\".", nameof(entries));
            ArgumentNullException.ThrowIfNull(shape);
            var info = new ParamInfo(path, shape, dtype, _lengths[(int)dtype]);
            if (!_byPath.TryAdd(path, info))
                throw new ArgumentException($"Parameter path \"{path}\" appears twice; paths must be unique.", nameof(entries));
            _lengths[(int)dtype] += shape.Length;
            list.Add(info);
        }
        _params = list.ToArray();
    }

    /// <summary>Parameters in layout order.</summary>
    public IReadOnlyList<ParamInfo> Params => _params;

    /// <summary>Number of parameters (named tensors).</summary>
    public int Count => _params.Length;

    /// <summary>The parameter at <paramref name="path"/>.</summary>
    /// <param name="path">Its path.</param>
    public ParamInfo this[string path] => _byPath.TryGetValue(path, out var p)
        ? p
        : throw new KeyNotFoundException($"No parameter \"{path}\". Known paths: {string.Join(", ", _params.Take(20).Select(x => x.Path))}{(_params.Length > 20 ? ", ..." : string.Empty)}.");

    /// <summary>Whether a parameter has this path.</summary>
    /// <param name="path">The path.</param>
    /// <returns>True when present.</returns>
    public bool Contains(string path) => _byPath.ContainsKey(path);

    /// <summary>Total elements of one dtype (the length of its flat buffer).</summary>
    /// <param name="dtype">The dtype.</param>
    /// <returns>Element count.</returns>
    public long LengthOf(DType dtype) => _lengths[(int)dtype];

    /// <summary>Throws unless <paramref name="other"/> has exactly this layout, naming the first difference.</summary>
    /// <param name="other">The other layout.</param>
    /// <param name="op">The operation, for the message.</param>
    public void RequireSame(ParamLayout other, string op)
    {
        ArgumentNullException.ThrowIfNull(other);
        if (ReferenceEquals(this, other))
            return;
        for (int i = 0; i < Math.Min(_params.Length, other._params.Length); i++)
        {
            var a = _params[i];
            var b = other._params[i];
            if (a.Path != b.Path || a.Shape != b.Shape || a.DType != b.DType)
                throw new ArgumentException($"{op}: parameter trees differ at position {i}: \"{a.Path}\" {a.Shape} {a.DType} versus \"{b.Path}\" {b.Shape} {b.DType}. Both must come from the same model.", nameof(other));
        }
        if (_params.Length != other._params.Length)
            throw new ArgumentException($"{op}: parameter trees have {_params.Length} and {other._params.Length} parameters. Both must come from the same model.", nameof(other));
    }

    /// <inheritdoc/>
    public bool Equals(ParamLayout? other)
    {
        if (other is null || other._params.Length != _params.Length)
            return false;
        for (int i = 0; i < _params.Length; i++)
        {
            if (_params[i] != other._params[i])
                return false;
        }
        return true;
    }

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is ParamLayout l && Equals(l);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(_params.Length, _params.Length > 0 ? _params[0].Path : string.Empty, _lengths[0]);

    /// <inheritdoc/>
    public override string ToString()
    {
        var sb = new StringBuilder();
        foreach (var p in _params)
            sb.AppendLine($"{p.Path,-32} {p.Shape,-16} {p.DType,-8} @{p.Offset}");
        return sb.ToString();
    }
}

/// <summary>A host copy of a <see cref="ParamTree"/>: its layout and one array per dtype.</summary>
/// <param name="Layout">The layout.</param>
/// <param name="Float32">The Float32 flat buffer.</param>
/// <param name="Float16">The Float16 flat buffer.</param>
/// <param name="Int32">The Int32 flat buffer.</param>
public sealed record ParamSnapshot(ParamLayout Layout, float[] Float32, Half[] Float16, int[] Int32)
{
    /// <summary>The elements of one Float32 parameter.</summary>
    /// <param name="path">The path.</param>
    /// <returns>A copy of its elements.</returns>
    public float[] Get(string path)
    {
        var p = Layout[path];
        if (p.DType != DType.Float32)
            throw new InvalidOperationException($"Parameter \"{path}\" is {p.DType}; read Float16 or Int32 parameters from their arrays.");
        return Float32.AsSpan((int)p.Offset, (int)p.Length).ToArray();
    }
}

/// <summary>
/// Named parameters (or gradients, or optimizer moments) stored in one flat contiguous device
/// buffer per dtype, with named views (path, offset, shape).
/// </summary>
/// <remarks>
/// Immutability by donation: operations documented as consuming a tree (<see cref="ApplyUpdates"/>,
/// <see cref="Consume"/>) reuse its buffers for the result; the consumed tree throws
/// <see cref="ConsumedValueException"/> on any later access. <see cref="Clone"/> copies on the
/// device, <see cref="Snapshot"/> to the host.
/// </remarks>
public sealed class ParamTree : IDisposable
{
    private PooledBuffer?[]? _groups;
    private string? _consumedBy;

    private ParamTree(Device device, ParamLayout layout, PooledBuffer?[] groups)
    {
        Device = device;
        Layout = layout;
        _groups = groups;
    }

    /// <summary>The device.</summary>
    public Device Device { get; }

    /// <summary>The layout (shared by trees of gradients and moments of the same model).</summary>
    public ParamLayout Layout { get; }

    /// <summary>Whether an operation consumed this tree.</summary>
    public bool IsConsumed => _consumedBy is not null;

    /// <summary>Total number of Float32 elements (the model's parameter count when all are Float32).</summary>
    public long Count => Layout.LengthOf(DType.Float32);

    /// <summary>A tree of zeros with the given layout (for gradients and moments).</summary>
    /// <param name="device">The device.</param>
    /// <param name="layout">The layout.</param>
    /// <returns>The tree.</returns>
    public static ParamTree Zeros(Device device, ParamLayout layout)
    {
        var t = Allocate(device, layout);
        t.ZeroInPlace();
        return t;
    }

    /// <summary>Uploads Float32 parameters, in the dictionary's enumeration order.</summary>
    /// <param name="device">The device.</param>
    /// <param name="parameters">Path to (shape, row-major data).</param>
    /// <returns>The tree.</returns>
    public static ParamTree FromHost(Device device, IEnumerable<KeyValuePair<string, (int[] Shape, float[] Data)>> parameters)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(parameters);
        var entries = parameters.ToList();
        var layout = new ParamLayout(entries.Select(e => (e.Key, new Shape(e.Value.Shape), DType.Float32)));
        var flat = new float[layout.LengthOf(DType.Float32)];
        foreach (var e in entries)
        {
            var p = layout[e.Key];
            if (e.Value.Data is null || e.Value.Data.Length != p.Length)
                throw new ArgumentException($"FromHost: parameter \"{e.Key}\" has shape {p.Shape} ({p.Length} elements) but its data has {e.Value.Data?.Length ?? 0}.", nameof(parameters));
            e.Value.Data.CopyTo(flat, p.Offset);
        }
        return FromSnapshot(device, new ParamSnapshot(layout, flat, [], []));
    }

    /// <summary>Uploads a host snapshot.</summary>
    /// <param name="device">The device.</param>
    /// <param name="snapshot">The snapshot (its arrays must match its layout).</param>
    /// <returns>The tree.</returns>
    public static ParamTree FromSnapshot(Device device, ParamSnapshot snapshot)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(snapshot);
        var layout = snapshot.Layout;
        Require(snapshot.Float32.Length, layout.LengthOf(DType.Float32), DType.Float32);
        Require(snapshot.Float16.Length, layout.LengthOf(DType.Float16), DType.Float16);
        Require(snapshot.Int32.Length, layout.LengthOf(DType.Int32), DType.Int32);
        var t = Allocate(device, layout);
        Transfer.ToDevice<float>(device.Stream, snapshot.Float32, t.Flat<float>());
        Transfer.ToDevice<Half>(device.Stream, snapshot.Float16, t.Flat<Half>());
        Transfer.ToDevice<int>(device.Stream, snapshot.Int32, t.Flat<int>());
        return t;

        static void Require(long have, long want, DType d)
        {
            if (have != want)
                throw new ArgumentException($"Snapshot's {d} array has {have} elements but its layout needs {want}.", nameof(snapshot));
        }
    }

    /// <summary>A tree of zeros with this tree's layout, on the same device.</summary>
    /// <returns>The tree.</returns>
    public ParamTree ZerosLike()
    {
        EnsureAlive();
        return Zeros(Device, Layout);
    }

    /// <summary>The flat Float32 buffer holding every Float32 parameter.</summary>
    public ArrayView<float> Flat32 => Flat<float>();

    /// <summary>The flat buffer of one dtype.</summary>
    /// <typeparam name="T">float, ILGPU.Half or int.</typeparam>
    /// <returns>The view (empty when the tree has no parameter of that dtype).</returns>
    public ArrayView<T> Flat<T>()
        where T : unmanaged
    {
        var d = DTypeExtensions.Of<T>();
        var g = Groups[(int)d];
        return g is null ? ArrayView<T>.Empty : g.View<T>(Layout.LengthOf(d));
    }

    /// <summary>The named view of one parameter.</summary>
    /// <typeparam name="T">Its element type.</typeparam>
    /// <param name="path">Its path.</param>
    /// <returns>A view into the flat buffer.</returns>
    public ArrayView<T> View<T>(string path)
        where T : unmanaged
    {
        var p = Layout[path];
        var want = DTypeExtensions.Of<T>();
        if (p.DType != want)
            throw new InvalidOperationException($"Parameter \"{path}\" {p.Shape} is {p.DType} but a {want} view was requested.");
        return p.Length == 0 ? ArrayView<T>.Empty : Flat<T>().SubView(p.Offset, p.Length);
    }

    /// <summary>The named view of one Float32 parameter.</summary>
    /// <param name="path">Its path.</param>
    public ArrayView<float> this[string path] => View<float>(path);

    /// <summary>Copies the Float32 parameters to the host, by path (in layout order).</summary>
    /// <returns>Path to (shape, data).</returns>
    public Dictionary<string, (int[] Shape, float[] Data)> ToHost()
    {
        var s = Snapshot();
        var result = new Dictionary<string, (int[] Shape, float[] Data)>(StringComparer.Ordinal);
        foreach (var p in Layout.Params.Where(p => p.DType == DType.Float32))
            result[p.Path] = (p.Shape.ToArray(), s.Get(p.Path));
        return result;
    }

    /// <summary>A host copy of every buffer.</summary>
    /// <returns>The snapshot.</returns>
    public ParamSnapshot Snapshot() =>
        new(Layout, Transfer.ToHost(Device.Stream, Flat<float>()), Transfer.ToHost(Device.Stream, Flat<Half>()), Transfer.ToHost(Device.Stream, Flat<int>()));

    /// <summary>A device copy with its own buffers.</summary>
    /// <returns>The copy.</returns>
    public ParamTree Clone()
    {
        EnsureAlive();
        var copy = Allocate(Device, Layout);
        Transfer.Copy(Device.Stream, Flat<float>(), copy.Flat<float>());
        Transfer.Copy(Device.Stream, Flat<Half>(), copy.Flat<Half>());
        Transfer.Copy(Device.Stream, Flat<int>(), copy.Flat<int>());
        return copy;
    }

    /// <summary>
    /// params + updates, as Optax's apply_updates: one launch over the flat Float32 buffer.
    /// Consumes this tree (its buffer holds the result); <paramref name="updates"/> is only read.
    /// </summary>
    /// <param name="updates">A tree with the same layout.</param>
    /// <returns>The updated parameters.</returns>
    public ParamTree ApplyUpdates(ParamTree updates)
    {
        ArgumentNullException.ThrowIfNull(updates);
        EnsureAlive();
        updates.EnsureAlive();
        Layout.RequireSame(updates.Layout, nameof(ApplyUpdates));
        Elementwise.Axpy(Device.Kernels, 1f, updates.Flat<float>(), Flat<float>());
        return Consume(nameof(ApplyUpdates));
    }

    /// <summary>
    /// Hands this tree's buffers to a new tree and marks this one consumed by
    /// <paramref name="consumer"/>. Operations that update values in place (optimizer steps)
    /// use it, so the old value can never be observed after it changed.
    /// </summary>
    /// <param name="consumer">The consuming operation, named in later error messages.</param>
    /// <returns>The new owner of the buffers.</returns>
    public ParamTree Consume(string consumer)
    {
        var groups = Groups;
        _groups = null;
        _consumedBy = consumer;
        return new ParamTree(Device, Layout, groups);
    }

    /// <summary>Sets every element of every buffer to zero (asynchronously).</summary>
    public void ZeroInPlace()
    {
        foreach (var d in Enum.GetValues<DType>())
        {
            long bytes = Layout.LengthOf(d) * d.SizeInBytes();
            var g = Groups[(int)d];
            if (g is not null && bytes > 0)
                g.View<byte>(bytes).MemSetToZero(Device.Stream);
        }
    }

    /// <summary>Returns the buffers to the pool. A consumed tree has nothing to return.</summary>
    public void Dispose()
    {
        var g = _groups;
        _groups = null;
        _consumedBy ??= "Dispose";
        if (g is null)
            return;
        foreach (var b in g)
            b?.Dispose();
    }

    /// <inheritdoc/>
    public override string ToString() => $"ParamTree({Layout.Count} tensors, {Count} float32 values) on {Device}";

    /// <summary>
    /// One entry as a tensor of <paramref name="step"/>, over this tree's memory (no copy): writes
    /// through it change the tree. Valid while the tree is alive and not consumed.
    /// </summary>
    /// <param name="step">The step the view belongs to.</param>
    /// <param name="path">The entry's path.</param>
    /// <returns>The view.</returns>
    public Tensor ViewIn(StepScope step, string path)
    {
        ArgumentNullException.ThrowIfNull(step);
        var info = Layout[path];
        var group = Groups[(int)info.DType];
        if (group is null)
            return step.Allocate(info.Shape, info.DType); // an empty parameter: no storage to share
        return Tensor.Borrow(Device, group, info.Offset * info.DType.SizeInBytes(), info.Shape, info.DType, step);
    }

    /// <summary>The flat buffer holding every parameter of one dtype, or null when the layout has none.</summary>
    /// <param name="dtype">The dtype.</param>
    /// <returns>The buffer.</returns>
    internal PooledBuffer? Group(DType dtype) => Groups[(int)dtype];

    private PooledBuffer?[] Groups => _groups ?? throw new ConsumedValueException(nameof(ParamTree), _consumedBy ?? "an earlier operation");

    private void EnsureAlive() => _ = Groups;

    /// <summary>A tree with <paramref name="layout"/> whose float32 values are not initialized (every other dtype is zeroed); for outputs that are overwritten, such as gradients.</summary>
    /// <param name="device">The device.</param>
    /// <param name="layout">The layout.</param>
    /// <returns>The tree.</returns>
    internal static ParamTree Empty(Device device, ParamLayout layout)
    {
        var t = Allocate(device, layout);
        foreach (var d in Enum.GetValues<DType>())
        {
            long bytes = layout.LengthOf(d) * d.SizeInBytes();
            if (d != DType.Float32 && bytes > 0)
                t.Groups[(int)d]!.View<byte>(bytes).MemSetToZero(device.Stream);
        }
        return t;
    }

    private static ParamTree Allocate(Device device, ParamLayout layout)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(layout);
        var groups = new PooledBuffer?[Enum.GetValues<DType>().Length];
        foreach (var d in Enum.GetValues<DType>())
        {
            long n = layout.LengthOf(d);
            if (n > 0)
                groups[(int)d] = device.Pool.Rent(n * d.SizeInBytes());
        }
        return new ParamTree(device, layout, groups);
    }
}
