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
