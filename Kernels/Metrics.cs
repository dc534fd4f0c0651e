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

/// <summary>Top-k hits of a batch of logits: row body and checked launcher.</summary>
internal static class Metrics
{
    private static readonly ForEachDef<TopKHitsBody<ViewElements<float>, ViewElements<int>>> TopKHitsDef = new();

    /// <summary>hit[n] = 1 when the target of row n is among the k largest logits (ties count as hits), else 0.</summary>
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
            CpuLoops.ForEach(host, n, new TopKHitsBody<PtrElements<float>, PtrElements<int>>(PtrElements.Of(logits), PtrElements.Of(targets), PtrElements.Of(hit), c, k), c);
        else
            TopKHitsDef.Launch(host, n, new(new(logits), new(targets), new(hit), c, k));
    }

    // Row i: 1 when its target t is a class whose logit is not NaN and fewer than k logits are
    // greater (ties count as hits), else 0.
    internal readonly struct TopKHitsBody<TF, TI>(TF logits, TI targets, TF hit, int c, int k) : IElementBody
        where TF : struct, IElements<float>
        where TI : struct, IElements<int>
    {
        public void Run(int i) => hit[i] = Hit(i * c, targets[i]) ? 1f : 0f;

        private bool Hit(int o, int t)
        {
            if (t < 0 || t >= c)
                return false;
            float v = logits[o + t];
            if (XMath.IsNaN(v))
                return false;
            int greater = 0;
            for (int j = 0; j < c; j++)
            {
                if (logits[o + j] > v)
                    greater++;
            }

            return greater < k;
        }
    }
}
