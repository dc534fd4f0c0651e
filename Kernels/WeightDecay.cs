using System.Runtime.CompilerServices;
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

/// <summary>Masked weight decay u += lambda * mask * p: element body and checked launcher.</summary>
internal static class WeightDecay
{
    internal static readonly ForEachDef<AddBody<ViewElements<float>, ViewElements<byte>>> AddDef = new();

    /// <summary>u += lambda * mask * p over the flat buffer (lambda finite; mask empty, or n bytes of 0/1).</summary>
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
        int useMask = mask.Length == 0 ? 0 : 1;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, updates.Length, new AddBody<PtrElements<float>, PtrElements<byte>>(new(updates), new(parameters), new(mask), lambda, useMask));
        else
            AddDef.Launch(host, updates.Length, new(new(updates), new(parameters), new(mask), lambda, useMask));
    }

    // u[i] += lambda * p[i] where the mask allows (useMask = 0: everywhere): the one body that
    // Elementwise.ForEachKernel (views) and CpuLoops.ForEach (host pointers) both run.
    internal readonly struct AddBody<TF, TB>(TF updates, TF parameters, TB mask, float lambda, int useMask) : IElementBody
        where TF : struct, IElements<float>
        where TB : struct, IElements<byte>
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Run(int i)
        {
            if (useMask == 0 || mask[i] != 0)
                updates[i] += lambda * parameters[i];
        }
    }
}
