using System.Runtime.CompilerServices;

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
        if (OnHost(stream))
        {
            stream.Synchronize();
            source.CopyTo(new Span<T>((void*)target.LoadEffectiveAddressAsPtr(), source.Length));
            return;
        }

        // ILGPU turns the reference into a raw pointer (Unsafe.AsPointer) without pinning it; a GC
        // that moves the array mid-copy would read freed memory. Pin for the duration.
        fixed (T* pinned = source)
            ((ArrayView1D<T, Stride1D.Dense>)target).CopyFromCPU(stream, ref Unsafe.AsRef<T>(pinned), source.Length);
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
        if (OnHost(stream))
        {
            stream.Synchronize();
            new ReadOnlySpan<T>((void*)source.LoadEffectiveAddressAsPtr(), target.Length).CopyTo(target);
            return;
        }

        // Pinned for the same reason as in ToDevice: an unpinned target that a GC moves would make
        // the copy write into freed memory and leave the array unwritten.
        fixed (T* pinned = target)
            ((ArrayView1D<T, Stride1D.Dense>)source).CopyToCPU(stream, ref Unsafe.AsRef<T>(pinned), target.Length);
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

    // The CPU accelerator's buffers are host memory: once the stream has drained, a copy is a
    // memcpy. ILGPU's CopyFromCPU/CopyToCPU would wrap the host span in a temporary accelerator
    // buffer (registered with the accelerator, finalizable) on every call, twice per step.
    private static bool OnHost(AcceleratorStream stream) => stream.Accelerator.AcceleratorType == AcceleratorType.CPU;
}
