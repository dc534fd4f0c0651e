using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// Weight decay as an update term, over the flat parameter buffer:
//
//   u[i] += lambda * mask[i] * p[i]        mask[i] in {0, 1}; no mask means 1 everywhere
//
// u (n) updates, accumulated (this kernel adds into u); p (n) parameters, read; mask (n) bytes,
// read only when given. Bytes per element: reads 8 (+1 with a mask), writes 4.
// Coupled L2 (SGD, Adam: g <- g + lambda * theta before the moments) and decoupled decay
// (AdamW: added to the Adam direction before the learning rate) are this same kernel at two
// places in a chain. It has no backward: it acts on gradients, not on the graph.

/// <summary>Masked weight decay u += lambda * mask * p: ILGPU kernel and checked launcher.</summary>
internal static class WeightDecay
{
    /// <summary>Kernel: u[i] += lambda * p[i] where the mask allows (useMask = 0: everywhere).</summary>
    /// <param name="updates">Updates, accumulated.</param>
    /// <param name="parameters">Parameters.</param>
    /// <param name="mask">Per-element 0/1 bytes (ignored when useMask is 0).</param>
    /// <param name="lambda">Decay coefficient.</param>
    /// <param name="useMask">1 to read the mask.</param>
    public static void AddKernel(ArrayView<float> updates, ArrayView<float> parameters, ArrayView<byte> mask, float lambda, int useMask)
    {
        int n = updates.IntLength;
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
        {
            if (useMask == 0 || mask[i] != 0)
                updates[i] += lambda * parameters[i];
        }
    }

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<byte>, float, int>> AddDef =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, ArrayView<byte>, float, int>(AddKernel);

    /// <summary>u += lambda * mask * p over the flat buffer.</summary>
    /// <param name="host">Where to run.</param>
    /// <param name="updates">Updates (n), accumulated.</param>
    /// <param name="parameters">Parameters (n).</param>
    /// <param name="lambda">Decay coefficient (finite).</param>
    /// <param name="mask">Empty for no mask, else n bytes of 0/1.</param>
    public static void Add(KernelHost host, ArrayView<float> updates, ArrayView<float> parameters, float lambda, ArrayView<byte> mask)
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.SameLength(nameof(WeightDecay), updates, nameof(updates), parameters, nameof(parameters));
        if (mask.Length != 0)
            Check.SameLength(nameof(WeightDecay), updates, nameof(updates), mask, nameof(mask));
        if (!float.IsFinite(lambda))
            throw new ArgumentOutOfRangeException(nameof(lambda), lambda, "WeightDecay: lambda must be finite.");
        if (updates.Length == 0 || lambda == 0f)
            return;
        if (host.RunsManaged)
        {
            AddManaged(host, updates, parameters, mask, lambda);
            return;
        }

        host.Load(AddDef)(host.Stream, host.Launch.GridStride(updates.Length), updates, parameters, mask, lambda, mask.Length == 0 ? 0 : 1);
    }

    // CPU accelerator: the kernel's loop body as managed code on host memory.
    private static unsafe void AddManaged(KernelHost host, ArrayView<float> updates, ArrayView<float> parameters, ArrayView<byte> mask, float lambda) =>
        CpuLoops.For(host, updates.Length, new AddBody(CpuLoops.Ptr(updates), CpuLoops.Ptr(parameters), CpuLoops.Ptr(mask), lambda));

    private readonly unsafe struct AddBody(float* updates, float* parameters, byte* mask, float lambda) : CpuLoops.IRange
    {
        public void Run(int start, int end)
        {
            for (int i = start; i < end; i++)
            {
                if (mask == null || mask[i] != 0)
                    updates[i] += lambda * parameters[i];
            }
        }
    }
}
