namespace IlgpuTrain.Functional;

/// <summary>A host copy of a tensor: its shape, dtype and elements.</summary>
/// <param name="Shape">The shape.</param>
/// <param name="DType">The element type.</param>
/// <param name="Data">float[], ILGPU.Half[] or int[], row-major.</param>
public sealed record HostTensor(Shape Shape, DType DType, Array Data);

/// <summary>
/// An n-dimensional array in device memory: a shape, a dtype (Float32, Float16, Int32) and a
/// buffer from the device's pool. Row-major and contiguous.
/// </summary>
/// <remarks>
/// Tensors are values. An operation documented as consuming a tensor (such as
/// <see cref="Reshape"/>) reuses its buffer for the result and leaves it consumed: any later
/// access throws <see cref="ConsumedValueException"/>. Temporaries allocated from a
/// <see cref="StepScope"/> are released when the scope ends. Dispose returns the buffer to the pool.
/// </remarks>
public sealed class Tensor : IDisposable
{
    private PooledBuffer? _buffer;
    private string? _consumedBy;
    private readonly long _byteOffset;
    private readonly bool _borrowed;

    internal Tensor(Device device, Shape shape, DType dtype, PooledBuffer buffer, StepScope? scope)
        : this(device, shape, dtype, buffer, scope, 0, borrowed: false)
    {
    }

    private Tensor(Device device, Shape shape, DType dtype, PooledBuffer buffer, StepScope? scope, long byteOffset, bool borrowed)
    {
        Device = device;
        Shape = shape;
        DType = dtype;
        _buffer = buffer;
        Scope = scope;
        _byteOffset = byteOffset;
        _borrowed = borrowed;
    }

    /// <summary>The device that holds the data.</summary>
    public Device Device { get; }

    /// <summary>The shape.</summary>
    public Shape Shape { get; }

    /// <summary>The element type.</summary>
    public DType DType { get; }

    /// <summary>Number of elements.</summary>
    public long Length => Shape.Length;

    /// <summary>Whether an operation consumed this tensor (or its scope ended).</summary>
    public bool IsConsumed => _consumedBy is not null;

    /// <summary>What consumed this tensor, or null.</summary>
    internal string? ConsumedBy => _consumedBy;

    /// <summary>The step this tensor belongs to: its memory returns to the pool when the step ends, and operations on it record on the step's tape. Null for tensors the caller owns.</summary>
    public StepScope? Scope { get; }

    /// <summary>The tape entry that produced this tensor, or null for inputs, constants and untracked values.</summary>
    internal TapeNode? Node { get; set; }

    /// <summary>Whether gradients flow to this tensor: a trainable parameter, or a value computed from one on a recording tape.</summary>
    public bool RequiresGrad => Node is not null;

    /// <summary>Allocates an uninitialized tensor from the device pool.</summary>
    /// <param name="device">The device.</param>
    /// <param name="shape">The shape.</param>
    /// <param name="dtype">The element type.</param>
    /// <returns>The tensor; its contents are undefined.</returns>
    public static Tensor Empty(Device device, Shape shape, DType dtype = DType.Float32)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(shape);
        return new Tensor(device, shape, dtype, device.Pool.Rent(shape.Length * dtype.SizeInBytes()), null);
    }

    /// <summary>A tensor of zeros.</summary>
    /// <param name="device">The device.</param>
    /// <param name="shape">The shape.</param>
    /// <param name="dtype">The element type.</param>
    /// <returns>The tensor.</returns>
    public static Tensor Zeros(Device device, Shape shape, DType dtype = DType.Float32)
    {
        var t = Empty(device, shape, dtype);
        t.ZeroInPlace();
        return t;
    }

    /// <summary>Copies float data to the device, as Float32 or (converted) Float16.</summary>
    /// <param name="device">The device.</param>
    /// <param name="data">Row-major elements; their count must equal the shape's.</param>
    /// <param name="shape">The shape.</param>
    /// <param name="dtype">Float32, or Float16 to round each value to half precision.</param>
    /// <returns>The tensor.</returns>
    public static Tensor FromHost(Device device, ReadOnlySpan<float> data, Shape shape, DType dtype = DType.Float32)
    {
        CheckData(data.Length, shape);
        if (dtype == DType.Float32)
            return Upload(device, data, shape, dtype);
        if (dtype == DType.Float16)
        {
            // ILGPU.Half's own conversion truncates on the host; Cast.FloatToHalf rounds to nearest
            // even on every backend, as PyTorch and the GPU's cvt.rn.f16.f32 do.
            var h = new Half[data.Length];
            for (int i = 0; i < h.Length; i++)
                h[i] = Cast.FloatToHalf(data[i]);
            return Upload<Half>(device, h, shape, dtype);
        }
        throw new ArgumentException($"FromHost: float data cannot become a {dtype} tensor; pass int[] for Int32.", nameof(dtype));
    }

    /// <summary>Copies float data to the device.</summary>
    /// <param name="device">The device.</param>
    /// <param name="data">Row-major elements.</param>
    /// <param name="shape">The dimensions; their product must equal the data length.</param>
    /// <returns>The Float32 tensor.</returns>
    public static Tensor FromHost(Device device, float[] data, params int[] shape) => FromHost(device, data.AsSpan(), new Shape(shape));

    /// <summary>Copies half-precision data to the device.</summary>
    /// <param name="device">The device.</param>
    /// <param name="data">Row-major elements.</param>
    /// <param name="shape">The shape.</param>
    /// <returns>The Float16 tensor.</returns>
    public static Tensor FromHost(Device device, ReadOnlySpan<Half> data, Shape shape)
    {
        CheckData(data.Length, shape);
        return Upload(device, data, shape, DType.Float16);
    }

    /// <summary>Copies integer data to the device.</summary>
    /// <param name="device">The device.</param>
    /// <param name="data">Row-major elements.</param>
    /// <param name="shape">The shape.</param>
    /// <returns>The Int32 tensor.</returns>
    public static Tensor FromHost(Device device, ReadOnlySpan<int> data, Shape shape)
    {
        CheckData(data.Length, shape);
        return Upload(device, data, shape, DType.Int32);
    }

    /// <summary>Copies integer data to the device.</summary>
    /// <param name="device">The device.</param>
    /// <param name="data">Row-major elements.</param>
    /// <param name="shape">The dimensions.</param>
    /// <returns>The Int32 tensor.</returns>
    public static Tensor FromHost(Device device, int[] data, params int[] shape) => FromHost(device, data.AsSpan(), new Shape(shape));

    /// <summary>The elements as a typed device view; the dtype must match <typeparamref name="T"/>.</summary>
    /// <typeparam name="T">float, ILGPU.Half or int.</typeparam>
    /// <returns>The view (valid while this tensor is alive and not consumed).</returns>
    public ArrayView<T> View<T>()
        where T : unmanaged
    {
        var want = DTypeExtensions.Of<T>();
        if (want != DType)
            throw new InvalidOperationException($"Tensor of shape {Shape} has dtype {DType} but a {want} view was requested; cast it first.");
        return Buffer.View<T>(Length, _byteOffset);
    }

    /// <summary>Copies the elements to the host as float (Float16 is widened; Int32 is refused).</summary>
    /// <returns>Row-major elements.</returns>
    public float[] ToHost()
    {
        switch (DType)
        {
            case DType.Float32:
                return Transfer.ToHost(Device.Stream, View<float>());
            case DType.Float16:
                return Array.ConvertAll(Transfer.ToHost(Device.Stream, View<Half>()), h => (float)h);
            default:
                throw new InvalidOperationException($"Tensor of shape {Shape} has dtype Int32; read it with ToHost<int>().");
        }
    }

    /// <summary>Copies the elements to the host in their own type.</summary>
    /// <typeparam name="T">float, ILGPU.Half or int, matching the dtype.</typeparam>
    /// <returns>Row-major elements.</returns>
    public T[] ToHost<T>()
        where T : unmanaged => Transfer.ToHost(Device.Stream, View<T>());

    /// <summary>A host copy with shape and dtype.</summary>
    /// <returns>The snapshot.</returns>
    public HostTensor Snapshot() => DType switch
    {
        DType.Float32 => new HostTensor(Shape, DType, ToHost<float>()),
        DType.Float16 => new HostTensor(Shape, DType, ToHost<Half>()),
        _ => new HostTensor(Shape, DType, ToHost<int>()),
    };

    /// <summary>A device copy in a new buffer from the pool (not tied to any step scope).</summary>
    /// <returns>The copy.</returns>
    public Tensor Clone()
    {
        var copy = new Tensor(Device, Shape, DType, Device.Pool.Rent(Length * DType.SizeInBytes()), null);
        Transfer.Copy(Device.Stream, RawBytes, copy.RawBytes);
        return copy;
    }

    /// <summary>Returns the same elements with a new shape of equal length. Consumes this tensor.</summary>
    /// <param name="shape">The new shape.</param>
    /// <returns>The reshaped tensor, owning this tensor's buffer.</returns>
    public Tensor Reshape(Shape shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (shape.Length != Length)
            throw new ArgumentException($"Reshape: cannot view shape {Shape} ({Length} elements) as {shape} ({shape.Length} elements).", nameof(shape));
        if (Node is not null)
            throw new InvalidOperationException($"Reshape consumes its input, but this Tensor{Shape} is recorded on a tape; use F.Reshape, which keeps the gradient path.");
        var buffer = Buffer;
        _consumedBy = nameof(Reshape);
        _buffer = null;
        var t = new Tensor(Device, shape, DType, buffer, Scope, _byteOffset, _borrowed);
        Scope?.Track(t);
        return t;
    }

    /// <summary>
    /// A tensor of another shape over the same memory, without copying and without consuming this one.
    /// The view lives in this tensor's step and is valid while this tensor is.
    /// </summary>
    /// <param name="shape">The new shape; it must have as many elements.</param>
    /// <returns>The view.</returns>
    internal Tensor ViewAs(Shape shape)
    {
        if (shape.Length != Length)
            throw new ArgumentException($"Reshape: cannot view shape {Shape} ({Length} elements) as {shape} ({shape.Length} elements).", nameof(shape));
        var t = new Tensor(Device, shape, DType, Buffer, Scope, _byteOffset, borrowed: true);
        Scope?.Track(t);
        return t;
    }

    /// <summary>A tensor over part of a buffer someone else owns (a parameter inside a ParamTree's flat buffer); disposing it releases nothing.</summary>
    /// <param name="device">The device.</param>
    /// <param name="buffer">The owner's buffer.</param>
    /// <param name="byteOffset">Where the tensor starts.</param>
    /// <param name="shape">Its shape.</param>
    /// <param name="dtype">Its element type.</param>
    /// <param name="scope">The step it belongs to.</param>
    /// <returns>The borrowed tensor.</returns>
    internal static Tensor Borrow(Device device, PooledBuffer buffer, long byteOffset, Shape shape, DType dtype, StepScope? scope)
    {
        var t = new Tensor(device, shape, dtype, buffer, scope, byteOffset, borrowed: true);
        scope?.Track(t);
        return t;
    }

    /// <summary>
    /// Marks this tensor consumed by <paramref name="consumer"/> and hands over its buffer. For
    /// operations that reuse their input's memory; any later access to this tensor throws.
    /// </summary>
    /// <param name="consumer">The consuming operation, named in later error messages.</param>
    /// <returns>The buffer, now owned by the caller.</returns>
    public PooledBuffer Consume(string consumer)
    {
        if (_borrowed || _byteOffset != 0)
            throw new InvalidOperationException($"{consumer}: Tensor{Shape} is a view of memory it does not own (a parameter or a reshaped view), so its buffer cannot be taken; Clone() it first.");
        var b = Buffer;
        _consumedBy = consumer;
        _buffer = null;
        return b;
    }

    /// <summary>Sets every element to zero (asynchronously on the device stream).</summary>
    public void ZeroInPlace()
    {
        if (Length > 0)
            RawBytes.MemSetToZero(Device.Stream);
    }

    /// <summary>Returns the buffer to the pool. A consumed tensor has nothing to return.</summary>
    public void Dispose()
    {
        var b = _buffer;
        _buffer = null;
        if (!_borrowed)
            b?.Dispose();
        _consumedBy ??= "Dispose";
    }

    /// <inheritdoc/>
    public override string ToString() => $"Tensor{Shape} {DType} on {Device}{(IsConsumed ? $" (consumed by {_consumedBy})" : string.Empty)}";

    /// <summary>Throws <see cref="ConsumedValueException"/> naming <paramref name="what"/> when this tensor was consumed.</summary>
    /// <param name="what">How the caller calls it, such as "Autodiff.Vjp: inputs[1]".</param>
    internal void ThrowIfConsumed(string what)
    {
        if (_consumedBy is { } by)
            throw new ConsumedValueException($"{what} (Tensor{Shape}) was consumed by {by} and can no longer be read. Pass the value that call returned, or Clone() the tensor before it is consumed.");
    }

    internal void Release(string by)
    {
        _buffer = null;
        _consumedBy ??= by;
    }

    internal PooledBuffer BufferForView => Buffer;

    internal long ByteOffset => _byteOffset;

    /// <summary>The tensor's memory as bytes.</summary>
    internal ArrayView<byte> RawBytes => Buffer.View<byte>(Length * DType.SizeInBytes(), _byteOffset);

    private PooledBuffer Buffer => _buffer ?? throw new ConsumedValueException($"Tensor{Shape}", _consumedBy ?? "an earlier operation");

    private static void CheckData(int dataLength, Shape shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (dataLength != shape.Length)
            throw new ArgumentException($"FromHost: shape {shape} needs {shape.Length} elements but the data has {dataLength}.", nameof(shape));
    }

    private static Tensor Upload<T>(Device device, ReadOnlySpan<T> data, Shape shape, DType dtype)
        where T : unmanaged
    {
        var t = Empty(device, shape, dtype);
        Transfer.ToDevice(device.Stream, data, t.View<T>());
        return t;
    }
}
