using System.Runtime.CompilerServices;

namespace IlgpuTrain.Kernels.Runtime;

// Math written once as generic methods over IElements<T>: a kernel passes its ArrayView
// (ViewElements), the managed loop a host pointer (PtrElements). ILGPU and the JIT specialize per
// accessor, so both run the same float operations in order, and the indirection costs nothing.

/// <summary>The elements of a buffer: an ArrayView in kernels, a host pointer in managed loops.</summary>
internal interface IElements<T>
    where T : unmanaged
{
    /// <summary>The element at index i.</summary>
    ref T this[int i] { get; }
}

/// <summary>A buffer seen through an ArrayView (kernels, and the ILGPU CPU accelerator).</summary>
internal readonly struct ViewElements<T>(ArrayView<T> view) : IElements<T>
    where T : unmanaged
{
    /// <inheritdoc/>
    public ref T this[int i] => ref view[i];
}

/// <summary>A buffer seen through a host pointer (managed loops on CPU-accelerator memory).</summary>
internal readonly unsafe struct PtrElements<T>(T* p) : IElements<T>
    where T : unmanaged
{
    /// <summary>The host memory of a CPU-accelerator view (<see cref="CpuLoops.Ptr{T}"/>), so a launcher builds its body alike for both paths.</summary>
    public PtrElements(ArrayView<T> view)
        : this(CpuLoops.Ptr(view))
    {
    }

    /// <inheritdoc/>
    public ref T this[int i]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ref p[i];
    }
}

/// <summary>The work of one index over its buffers' <see cref="IElements{T}"/>, run by <see cref="Elementwise.ForEachKernel{TBody}"/> (views) and <see cref="CpuLoops.ForEach{TBody}"/> (pointers).</summary>
/// <remarks>
/// CpuLoops.ForEach calls <see cref="Run"/> once per element: where the work per element is a few
/// flops (an optimizer step), mark it <c>[MethodImpl(MethodImplOptions.AggressiveInlining)]</c>, or
/// the JIT may leave a call in the loop (it did for SgdUpdate.StepBody, about twice the time).
/// </remarks>
internal interface IElementBody
{
    /// <summary>Does the work of index i.</summary>
    void Run(int i);
}
