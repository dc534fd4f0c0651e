using System.Runtime.InteropServices;

namespace IlgpuTrain.Functional;

/// <summary>Host/device copies on a stream. Each call waits for the copy to finish.</summary>
public static class Transfer
{
    /// <summary>Copies host data into a device view of the same length.</summary>
    /// <typeparam name="T">Element type.</typeparam>
    /// <param name="stream">The stream (ordered after earlier launches).</param>
    /// <param name="source">Host data.</param>
    /// <param name="target">Device view.</param>
    public static unsafe void ToDevice<T>(AcceleratorStream stream, ReadOnlySpan<T> source, ArrayView<T> target)
        where T : unmanaged
    {
        if (source.Length != target.Length)
            throw new ArgumentException($"Host data has {source.Length} elements but the device view has {target.Length}.", nameof(source));
        if (source.Length == 0)
            return;
        // ILGPU turns the ref into a raw pointer (Unsafe.AsPointer) and allocates before it copies;
        // without a pin the GC can move a managed array in between and the copy reads stale memory.
        fixed (T* pinned = source)
            ((ArrayView1D<T, Stride1D.Dense>)target).CopyFromCPU(stream, ref MemoryMarshal.GetReference(source), source.Length);
    }

    /// <summary>Copies a device view into host memory of the same length (waits for earlier launches).</summary>
    /// <typeparam name="T">Element type.</typeparam>
    /// <param name="stream">The stream.</param>
    /// <param name="source">Device view.</param>
    /// <param name="target">Host span.</param>
    public static unsafe void ToHost<T>(AcceleratorStream stream, ArrayView<T> source, Span<T> target)
        where T : unmanaged
    {
        if (source.Length != target.Length)
            throw new ArgumentException($"The device view has {source.Length} elements but the host span has {target.Length}.", nameof(target));
        if (target.Length == 0)
            return;
        // Pinned for the same reason as in ToDevice: ILGPU writes through a raw pointer.
        fixed (T* pinned = target)
            ((ArrayView1D<T, Stride1D.Dense>)source).CopyToCPU(stream, ref MemoryMarshal.GetReference(target), target.Length);
    }

    /// <summary>Copies a device view to a new host array.</summary>
    /// <typeparam name="T">Element type.</typeparam>
    /// <param name="stream">The stream.</param>
    /// <param name="source">Device view.</param>
    /// <returns>The host copy.</returns>
    public static T[] ToHost<T>(AcceleratorStream stream, ArrayView<T> source)
        where T : unmanaged
    {
        var data = new T[source.Length];
        ToHost(stream, source, data);
        return data;
    }

    /// <summary>Copies one device view into another of the same length, asynchronously on the stream.</summary>
    /// <typeparam name="T">Element type.</typeparam>
    /// <param name="stream">The stream.</param>
    /// <param name="source">Source view.</param>
    /// <param name="target">Target view.</param>
    public static void Copy<T>(AcceleratorStream stream, ArrayView<T> source, ArrayView<T> target)
        where T : unmanaged
    {
        if (source.Length != target.Length)
            throw new ArgumentException($"Copy: source has {source.Length} elements but target has {target.Length}.", nameof(target));
        if (source.Length == 0)
            return;
        source.CopyTo(stream, target);
    }
}
