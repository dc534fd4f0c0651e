using System.Runtime.CompilerServices;
using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// Weight averaging (EMA of the weights, SWA), in place on the averaged copy a of the weights w,
// over flat float buffers of n elements (one launch for a whole parameter tree):
//
//   a = lerp(a, w, t) = a + t (w - a)          t = 1 - decay (EMA) or 1/(n_averaged + 1) (SWA)
//
// computed as torch.lerp (ATen's Lerp.h), which timm's ModelEmaV3 and torch.optim.swa_utils call
// through torch._foreach_lerp_:
//
//   |t| < 0.5:   a + t (w - a)
//   otherwise:   w - (w - a) (1 - t)
//
// The two forms make both ends exact: t = 0 (decay 1) keeps a, t = 1 (decay 0) gives w, for
// finite values. a (n) read and written, w (n) read. Bytes per element: reads 8, writes 4.
// No backward: it acts on weights after the optimizer's update, not on the graph.

/// <summary>The weight-averaging update a = lerp(a, w, t) (torch.lerp): element body and checked launcher.</summary>
internal static class WeightAverage
{
    /// <summary>Bytes <see cref="Lerp"/> moves per element: reads a and w (8), writes a (4). Benchmarks report GB/s from it.</summary>
    public const int LerpBytesPerElement = 12;

    internal static readonly ForEachDef<LerpBody<ViewElements<float>>> LerpDef = new();

    /// <summary>a = lerp(a, w, t) in place over the flat buffer, as torch.lerp.</summary>
    /// <param name="host">Where to run.</param>
    /// <param name="average">The average a (n), updated.</param>
    /// <param name="weights">The current weights w (n), read.</param>
    /// <param name="t">The weight of w, in [0, 1]: 1 − decay for an EMA, 1/(n + 1) for the (n + 1)-th SWA snapshot.</param>
    public static void Lerp(KernelHost host, ArrayView<float> average, ArrayView<float> weights, float t)
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.SameLength(nameof(WeightAverage), average, nameof(average), weights, nameof(weights));
        if (!(t >= 0f && t <= 1f))
            throw new ArgumentOutOfRangeException(nameof(t), t, "WeightAverage.Lerp: t (the weight of the current weights, 1 - decay) must be in [0, 1].");
        if (average.Length == 0)
            return;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, average.Length, new LerpBody<PtrElements<float>>(new(average), new(weights), t));
        else
            LerpDef.Launch(host, average.Length, new LerpBody<ViewElements<float>>(new(average), new(weights), t));
    }

    // a[i] = lerp(a[i], w[i], t): the one body that Elementwise.ForEachKernel (views) and
    // CpuLoops.ForEach (host pointers) both run.
    internal readonly struct LerpBody<TF>(TF average, TF weights, float t) : IElementBody
        where TF : struct, IElements<float>
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Run(int i)
        {
            float a = average[i];
            float w = weights[i];
            average[i] = t < 0.5f ? a + (t * (w - a)) : w - ((w - a) * (1f - t));
        }
    }
}
