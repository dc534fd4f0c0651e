namespace IlgpuTrain.Functional;

/// <summary>Host/device copies on a stream. Each call waits for the copy to finish.</summary>
public static class Transfer
{
    /// <summary>Copies host data into a device view of the same length.</summary>
    /// <typeparam name="T">Element type.</typeparam>
    /// <param name="stream">The stream (ordered after earlier launches).</param>
    /// <param name="source">Host data.</param>
    /// <param name="target">Device view.</param>
    public static void ToDevice<T>(AcceleratorStream stream, ReadOnlySpan<T> source, ArrayView<T> target)
        where T : unmanaged
    {
        if (source.Length != target.Length)
            throw new ArgumentException($"Host data has {source.Length} elements but the device view has {target.Length}.", nameof(source));
        if (source.Length == 0)
            return;
        // The span overload pins the host memory; the (ref T, length) one expects pinned memory, and
        // the GC moving a managed array during the copy silently reads or writes the old location.
        ((ArrayView1D<T, Stride1D.Dense>)target).CopyFromCPU(stream, source);
    }

    /// <summary>Copies a device view into host memory of the same length (waits for earlier launches).</summary>
    /// <typeparam name="T">Element type.</typeparam>
    /// <param name="stream">The stream.</param>
    /// <param name="source">Device view.</param>
    /// <param name="target">Host span.</param>
    public static void ToHost<T>(AcceleratorStream stream, ArrayView<T> source, Span<T> target)
        where T : unmanaged
    {
        if (source.Length != target.Length)
            throw new ArgumentException($"The device view has {source.Length} elements but the host span has {target.Length}.", nameof(target));
        if (target.Length == 0)
            return;
        // Pinned by the span overload, as in ToDevice.
        ((ArrayView1D<T, Stride1D.Dense>)source).CopyToCPU(stream, target);
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
