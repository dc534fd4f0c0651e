using System.Numerics;

namespace IlgpuTrain.Functional;

/// <summary>Counters of a <see cref="MemoryPool"/>, in bytes of size-class capacity.</summary>
/// <param name="BytesInUse">Bytes handed out and not yet returned.</param>
/// <param name="PeakBytesInUse">The high-water mark of <paramref name="BytesInUse"/> since creation or <see cref="MemoryPool.ResetPeak"/>.</param>
/// <param name="BytesCached">Bytes returned and kept for reuse.</param>
/// <param name="BytesReserved">Device bytes held by the pool (in use plus cached).</param>
/// <param name="PeakBytesReserved">The high-water mark of <paramref name="BytesReserved"/>.</param>
/// <param name="DeviceAllocations">Allocations that reached the accelerator.</param>
/// <param name="CacheHits">Rents served from the cache.</param>
public readonly record struct MemoryPoolStats(
    long BytesInUse,
    long PeakBytesInUse,
    long BytesCached,
    long BytesReserved,
    long PeakBytesReserved,
    long DeviceAllocations,
    long CacheHits)
{
    /// <inheritdoc/>
    public override string ToString() =>
        $"in use {Bytes.Format(BytesInUse)} (peak {Bytes.Format(PeakBytesInUse)}), cached {Bytes.Format(BytesCached)}, " +
        $"reserved {Bytes.Format(BytesReserved)} (peak {Bytes.Format(PeakBytesReserved)}), {DeviceAllocations} device allocations, {CacheHits} cache hits";
}

/// <summary>
/// A caching allocator of device memory, in the spirit of PyTorch's CUDA caching allocator:
/// returned buffers are kept in free lists by size class and handed out again, so a training
/// loop that allocates the same temporaries every step reaches a steady state with no device
/// allocation at all. Size classes are 2^k and 1.5 * 2^k bytes (at least 256 B), so at most a
/// third of a buffer is slack.
/// </summary>
public sealed class MemoryPool : IDisposable
{
    private const long MinClass = 256;
    private readonly Accelerator _accelerator;
    private readonly Dictionary<long, Stack<MemoryBuffer1D<byte, Stride1D.Dense>>> _free = new();
    private readonly object _gate = new();
    private long _inUse;
    private long _peakInUse;
    private long _cached;
    private long _peakReserved;
    private long _allocations;
    private long _hits;
    private bool _disposed;

    internal MemoryPool(Accelerator accelerator)
    {
        _accelerator = accelerator;
    }

    /// <summary>Current counters.</summary>
    public MemoryPoolStats Stats
    {
        get
        {
            lock (_gate)
                return new MemoryPoolStats(_inUse, _peakInUse, _cached, _inUse + _cached, _peakReserved, _allocations, _hits);
        }
    }

    /// <summary>The size class that serves a request of <paramref name="bytes"/> bytes.</summary>
    /// <param name="bytes">Requested size.</param>
    /// <returns>The capacity handed out.</returns>
    public static long SizeClass(long bytes)
    {
        if (bytes <= MinClass)
            return MinClass;
        long p = (long)BitOperations.RoundUpToPowerOf2((ulong)bytes);
        long threeQuarters = p / 4 * 3;
        return bytes <= threeQuarters ? threeQuarters : p;
    }

    /// <summary>Rents a buffer of at least <paramref name="bytes"/> bytes; return it with <see cref="PooledBuffer.Dispose"/>.</summary>
    /// <param name="bytes">Requested size in bytes (zero gives an empty buffer).</param>
    /// <returns>The buffer. Its contents are undefined (not zeroed).</returns>
    public PooledBuffer Rent(long bytes)
    {
        if (bytes < 0)
            throw new ArgumentOutOfRangeException(nameof(bytes), bytes, "A buffer size must be zero or more bytes.");
        long cls = SizeClass(bytes);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_free.TryGetValue(cls, out var stack) && stack.Count > 0)
            {
                _hits++;
                _cached -= cls;
                Account(cls);
                return new PooledBuffer(this, stack.Pop(), bytes, cls);
            }
        }

        var buffer = AllocateOnDevice(cls);
        lock (_gate)
        {
            _allocations++;
            Account(cls);
        }
        return new PooledBuffer(this, buffer, bytes, cls);
    }

    /// <summary>Frees every cached (unused) buffer back to the accelerator.</summary>
    public void Trim()
    {
        List<MemoryBuffer1D<byte, Stride1D.Dense>> toFree;
        lock (_gate)
        {
            toFree = _free.Values.SelectMany(s => s).ToList();
            _free.Clear();
            _cached = 0;
        }
        foreach (var b in toFree)
            b.Dispose();
    }

    /// <summary>Restarts the peak counters at the current values (to measure one step).</summary>
    public void ResetPeak()
    {
        lock (_gate)
        {
            _peakInUse = _inUse;
            _peakReserved = _inUse + _cached;
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
                return;
            _disposed = true;
        }
        Trim();
    }

    internal void Return(MemoryBuffer1D<byte, Stride1D.Dense> buffer, long cls)
    {
        lock (_gate)
        {
            _inUse -= cls;
            if (_disposed)
            {
                buffer.Dispose();
                return;
            }
            if (!_free.TryGetValue(cls, out var stack))
                _free[cls] = stack = new Stack<MemoryBuffer1D<byte, Stride1D.Dense>>();
            stack.Push(buffer);
            _cached += cls;
        }
    }

    private void Account(long cls)
    {
        _inUse += cls;
        _peakInUse = Math.Max(_peakInUse, _inUse);
        _peakReserved = Math.Max(_peakReserved, _inUse + _cached);
    }

    private MemoryBuffer1D<byte, Stride1D.Dense> AllocateOnDevice(long cls)
    {
        try
        {
            return _accelerator.Allocate1D<byte>(cls);
        }
        catch (Exception first) when (first is OutOfMemoryException || first is AcceleratorException)
        {
            // As PyTorch's allocator does: give the cached blocks back and try once more.
            Trim();
            try
            {
                return _accelerator.Allocate1D<byte>(cls);
            }
            catch (Exception e) when (e is OutOfMemoryException || e is AcceleratorException)
            {
                throw new OutOfMemoryException(
                    $"Out of device memory on {_accelerator.Name} allocating {Bytes.Format(cls)} ({Stats}). " +
                    "Lower the batch size, use mixed precision (FP16 activations), or accumulate gradients over smaller micro-batches.", e);
            }
        }
    }
}

/// <summary>A buffer rented from a <see cref="MemoryPool"/>; disposing it returns it to the pool.</summary>
public sealed class PooledBuffer : IDisposable
{
    private readonly MemoryPool _pool;
    private MemoryBuffer1D<byte, Stride1D.Dense>? _buffer;

    internal PooledBuffer(MemoryPool pool, MemoryBuffer1D<byte, Stride1D.Dense> buffer, long bytes, long capacity)
    {
        _pool = pool;
        _buffer = buffer;
        Bytes = bytes;
        Capacity = capacity;
    }

    /// <summary>Bytes requested.</summary>
    public long Bytes { get; }

    /// <summary>Bytes of the size class actually held.</summary>
    public long Capacity { get; }

    /// <summary>Whether the buffer went back to the pool.</summary>
    public bool IsReturned => _buffer is null;

    /// <summary>The first <paramref name="count"/> elements of type <typeparamref name="T"/>.</summary>
    /// <typeparam name="T">Element type.</typeparam>
    /// <param name="count">Elements; their bytes must fit in <see cref="Bytes"/>.</param>
    /// <param name="byteOffset">Offset in bytes (a multiple of the element size).</param>
    /// <returns>A typed view of device memory.</returns>
    public ArrayView<T> View<T>(long count, long byteOffset = 0)
        where T : unmanaged
    {
        var b = _buffer ?? throw new ObjectDisposedException(nameof(PooledBuffer), "This buffer was returned to the memory pool.");
        int size = System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
        if (byteOffset % size != 0 || count < 0 || byteOffset + (count * size) > Bytes)
            throw new ArgumentOutOfRangeException(nameof(count), $"A view of {count} x {size} B at offset {byteOffset} does not fit in a buffer of {Bytes} B.");
        if (count == 0)
            return ArrayView<T>.Empty;
        return ((ArrayView<byte>)b.View).SubView(byteOffset, count * size).Cast<T>();
    }

    /// <summary>Returns the buffer to its pool. Idempotent.</summary>
    public void Dispose()
    {
        var b = Interlocked.Exchange(ref _buffer, null);
        if (b is not null)
            _pool.Return(b, Capacity);
    }
}

/// <summary>Formats byte counts.</summary>
public static class Bytes
{
    /// <summary>Formats a byte count with a binary unit, e.g. <c>1.5 MiB</c>.</summary>
    /// <param name="bytes">The count.</param>
    /// <returns>The text.</returns>
    public static string Format(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double v = bytes;
        int u = 0;
        while (Math.Abs(v) >= 1024 && u < units.Length - 1)
        {
            v /= 1024;
            u++;
        }
        return u == 0 ? $"{bytes} B" : $"{v:0.##} {units[u]}";
    }
}
