using ILGPU.Algorithms;
using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// Classification metrics over a batch of logits, on the device.
//
//   TopKHits  hit[n] = 1 when fewer than k classes have a logit strictly greater than the
//             target's, else 0        logits (N, C), targets (N), hit (N)
//             reads 4C + 4 B, writes 4 B per row
//
// k = 1 is accuracy. A tie with the target's logit counts as a hit (the target is among the
// maxima); PyTorch's argmax would pick the first maximum, so the two differ only on exact ties.
// A NaN logit for the target, or a target outside [0, C), is a miss. No backward: metrics are not
// differentiated. Summing hit (Reductions.Sum) gives the number of correct samples.

/// <summary>Top-k hits of a batch of logits: ILGPU kernel and checked launcher.</summary>
internal static class Metrics
{
    // ---------------------------------------------------------------- ILGPU kernels

    /// <summary>Kernel: one row per thread, grid-stride.</summary>
    /// <param name="logits">Logits (N, C).</param>
    /// <param name="targets">Targets (N).</param>
    /// <param name="hit">Output (N).</param>
    /// <param name="n">Rows N.</param>
    /// <param name="c">Classes C.</param>
    /// <param name="k">k.</param>
    public static void TopKHitsKernel(ArrayView<float> logits, ArrayView<int> targets, ArrayView<float> hit, int n, int c, int k)
    {
        int stride = Grid.DimX * Group.DimX;
        for (int row = Grid.GlobalIndex.X; row < n; row += stride)
            hit[row] = Hit(new ViewElements<float>(logits), row * c, c, targets[row], k);
    }

    // One row (starting at o): 1 when target t is a class whose logit is not NaN and fewer than k
    // logits are greater (ties count as hits), else 0. The kernel and the managed loop both run it.
    private static float Hit<TF>(TF logits, int o, int c, int t, int k)
        where TF : struct, IElements<float>
    {
        if (t < 0 || t >= c)
            return 0f;
        float v = logits[o + t];
        if (XMath.IsNaN(v))
            return 0f;
        int greater = 0;
        for (int j = 0; j < c; j++)
        {
            if (logits[o + j] > v)
                greater++;
        }

        return greater < k ? 1f : 0f;
    }

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, int>> TopKHitsDef =
        KernelDef.Of<ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, int>(TopKHitsKernel);

    // ---------------------------------------------------------------- launchers

    /// <summary>hit[n] = 1 when the target of row n is among the k largest logits (ties count as hits), else 0.</summary>
    /// <param name="host">Where to run.</param>
    /// <param name="logits">Logits (N, C).</param>
    /// <param name="targets">Targets (N).</param>
    /// <param name="hit">Output (N), overwritten.</param>
    /// <param name="n">Rows N.</param>
    /// <param name="c">Classes C.</param>
    /// <param name="k">k, at least 1.</param>
    public static void TopKHits(KernelHost host, ArrayView<float> logits, ArrayView<int> targets, ArrayView<float> hit, int n, int c, int k)
    {
        ArgumentNullException.ThrowIfNull(host);
        const string op = nameof(Metrics) + "." + nameof(TopKHits);
        Check.Dimension(op, n, nameof(n));
        Check.Dimension(op, c, nameof(c));
        if (k < 1)
            throw new ArgumentOutOfRangeException(nameof(k), k, $"{op}: k must be at least 1, got {k}.");
        Check.Length(op, logits, nameof(logits), (long)n * c, $"(N, C) = ({n}, {c})");
        Check.Length(op, targets, nameof(targets), n, $"(N) = ({n})");
        Check.Length(op, hit, nameof(hit), n, $"(N) = ({n})");
        Check.Fits32(op, logits, nameof(logits));
        if (n == 0)
            return;
        if (host.RunsManaged)
        {
            // TopKHitsKernel's comparisons, row by row on host memory (bitwise the same hits).
            unsafe
            {
                CpuLoops.For(host, n, new TopKRows(CpuLoops.Ptr(logits), CpuLoops.Ptr(targets), CpuLoops.Ptr(hit), c, k), c);
            }

            return;
        }

        host.Load(TopKHitsDef)(host.Stream, host.Launch.GridStride(n), logits, targets, hit, n, c, k);
    }

    private readonly unsafe struct TopKRows(float* logits, int* targets, float* hit, int c, int k) : CpuLoops.IRange
    {
        public void Run(int start, int end)
        {
            for (int row = start; row < end; row++)
                hit[row] = Hit(new PtrElements<float>(logits), row * c, c, targets[row], k);
        }
    }
}
