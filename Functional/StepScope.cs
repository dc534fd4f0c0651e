namespace IlgpuTrain.Functional;

/// <summary>
/// A per-step arena: activations, tape entries and scratch buffers come from the device's
/// caching pool and all go back when the scope is disposed. A training loop that opens one
/// scope per step reaches a steady state: after the first step, no device allocation happens.
/// </summary>
/// <example>
/// <code>
/// using (var step = device.BeginStep())
/// {
///     var h = step.Allocate(new Shape(128, 256));
///     ...
/// } // every temporary returns to the pool here
/// </code>
/// </example>
public sealed class StepScope : IDisposable
{
    private readonly List<PooledBuffer> _buffers = new();
    private readonly List<Tensor> _tensors = new();
    private bool _disposed;

    internal StepScope(Device device)
    {
        Device = device;
    }

    /// <summary>The device.</summary>
    public Device Device { get; }

    /// <summary>Number of buffers this scope holds.</summary>
    public int BufferCount => _buffers.Count;

    /// <summary>
    /// The numeric policy F ops consult: <see cref="Functional.Precision.Float32"/> (the default) or
    /// <see cref="Functional.Precision.Float16"/> mixed precision (see <see cref="Functional.Precision"/>
    /// for which ops change). Set it before the forward; the backward uses what each op recorded.
    /// </summary>
    public Precision Precision { get; set; } = Precision.Float32;

    /// <summary>
    /// Where this step's time goes, op by op, or null (the default) for no timing. Setting it starts
    /// its forward clock; uploads count as "upload". See <see cref="StepProfile"/>.
    /// </summary>
    public StepProfile? Profile
    {
        get => _profile;
        set
        {
            _profile = value;
            value?.Mark(Device);
        }
    }

    private StepProfile? _profile;

    /// <summary>
    /// Synchronized batch normalization (PyTorch's SyncBatchNorm) for this step, or null (the
    /// default: each process normalizes with its own batch's statistics). When set, every
    /// training-mode <see cref="F.BatchNorm"/> of the step normalizes with the mean and variance over
    /// all ranks' batches (its running statistics too), and its backward sums Σdy and Σdy x̂ over
    /// the ranks. Set it before the forward, on every rank.
    /// </summary>
    public ICrossRankSum? BatchNormSync { get; set; }

    /// <summary>The tape recording this step's training-mode forward, or null when nothing records (evaluation, inference).</summary>
    public Tape? Tape { get; internal set; }

    /// <summary>Uploads host data into a tensor of this step (released when the step ends).</summary>
    /// <param name="data">Values, row-major.</param>
    /// <param name="shape">Their shape.</param>
    /// <returns>The tensor.</returns>
    public Tensor Upload(ReadOnlySpan<float> data, Shape shape)
    {
        var t = Allocate(shape);
        if (data.Length != shape.Length)
            throw new ArgumentException($"Upload: shape {shape} needs {shape.Length} elements but the data has {data.Length}.", nameof(shape));
        long start = _profile?.Start(Device) ?? 0;
        Transfer.ToDevice(Device.Stream, data, t.View<float>());
        _profile?.Stop("upload", Device, start);
        return t;
    }

    /// <summary>Uploads host integers (class labels, token ids) into a tensor of this step.</summary>
    /// <param name="data">Values.</param>
    /// <param name="shape">Their shape.</param>
    /// <returns>The tensor.</returns>
    public Tensor Upload(ReadOnlySpan<int> data, Shape shape)
    {
        var t = Allocate(shape, DType.Int32);
        if (data.Length != shape.Length)
            throw new ArgumentException($"Upload: shape {shape} needs {shape.Length} elements but the data has {data.Length}.", nameof(shape));
        long start = _profile?.Start(Device) ?? 0;
        Transfer.ToDevice(Device.Stream, data, t.View<int>());
        _profile?.Stop("upload", Device, start);
        return t;
    }

    /// <summary>Brings a tensor the caller owns into this step without copying: the result reads the same memory, and operations on it allocate in this step.</summary>
    /// <param name="t">A tensor that outlives the step.</param>
    /// <returns>A view of it in this step.</returns>
    public Tensor Use(Tensor t)
    {
        ArgumentNullException.ThrowIfNull(t);
        if (ReferenceEquals(t.Scope, this))
            return t;
        return Tensor.Borrow(t.Device, t.BufferForView, t.ByteOffset, t.Shape, t.DType, this);
    }

    /// <summary>An uninitialized temporary tensor, released when the scope ends.</summary>
    /// <param name="shape">The shape.</param>
    /// <param name="dtype">The element type.</param>
    /// <returns>The tensor.</returns>
    public Tensor Allocate(Shape shape, DType dtype = DType.Float32)
    {
        ArgumentNullException.ThrowIfNull(shape);
        var t = new Tensor(Device, shape, dtype, Rent(shape.Length * dtype.SizeInBytes()), this);
        _tensors.Add(t);
        return t;
    }

    /// <summary>A temporary tensor of zeros.</summary>
    /// <param name="shape">The shape.</param>
    /// <param name="dtype">The element type.</param>
    /// <returns>The tensor.</returns>
    public Tensor Zeros(Shape shape, DType dtype = DType.Float32)
    {
        var t = Allocate(shape, dtype);
        t.ZeroInPlace();
        return t;
    }

    /// <summary>Raw scratch memory of <paramref name="count"/> elements (contents undefined).</summary>
    /// <typeparam name="T">Element type.</typeparam>
    /// <param name="count">Number of elements.</param>
    /// <returns>The view, valid until the scope ends.</returns>
    public ArrayView<T> Scratch<T>(long count)
        where T : unmanaged =>
        Rent(count * System.Runtime.CompilerServices.Unsafe.SizeOf<T>()).View<T>(count);

    /// <summary>Returns every temporary to the pool; tensors from this scope become unusable.</summary>
    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        foreach (var t in _tensors)
            t.Release("the end of its StepScope");
        foreach (var b in _buffers)
            b.Dispose();
        _tensors.Clear();
        _buffers.Clear();
    }

    internal void Track(Tensor t) => _tensors.Add(t);

    private PooledBuffer Rent(long bytes)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var b = Device.Pool.Rent(bytes);
        _buffers.Add(b);
        return b;
    }
}
