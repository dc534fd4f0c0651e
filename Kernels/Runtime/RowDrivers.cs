namespace IlgpuTrain.Kernels.Runtime;

// The two drivers of ops whose index body (a row, or an element) is written once as an
// IElementBody generic over IElements<T>; such an op is its body struct plus its launcher:
//   ILGPU    ForEachDef<TBody>.Launch   Elementwise.ForEachKernel: one thread per index, grid-stride
//   managed  CpuLoops.ForEach           body.Run over index ranges on host pointers; threads split the
//                                       indices, the row width as grain so short rows are not split thinly
// Both run the very same body, so they do the same float operations in order, bit for bit.

/// <summary><see cref="Elementwise.ForEachKernel{TBody}"/> closed over one body type: a catalogued kernel (so the offline PTX/OpenCL test compiles it) and its launch.</summary>
internal sealed class ForEachDef<TBody> : IKernelSet
    where TBody : struct, IElementBody
{
    private readonly KernelDef<Action<AcceleratorStream, KernelConfig, int, TBody>> def =
        KernelDef.Of<int, TBody>(Elementwise.ForEachKernel);

    /// <inheritdoc/>
    public IEnumerable<KernelDef> Kernels => [def];

    /// <summary>Queues body.Run(i) for i in [0, n), grid-stride, on the host's stream.</summary>
    public void Launch(KernelHost host, long n, TBody body) =>
        host.Load(def)(host.Stream, host.Launch.GridStride(n), checked((int)n), body);
}

/// <summary>Host-pointer accessors of CPU-accelerator views, for the managed side of a body.</summary>
internal static class PtrElements
{
    /// <summary>The view's elements through its host address (CPU-accelerator memory only).</summary>
    public static unsafe PtrElements<T> Of<T>(ArrayView<T> view)
        where T : unmanaged => new(CpuLoops.Ptr(view));
}
