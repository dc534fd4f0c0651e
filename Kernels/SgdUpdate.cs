using System.Runtime.CompilerServices;
using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// SGD with momentum, dampening and Nesterov, as PyTorch's torch.optim.SGD, over flat float
// buffers of n elements (one launch for a whole parameter tree).
//
// Momentum (the Trace transformation), in place on the gradients g and the momentum buffer b:
//   first update (no buffer yet):  b = g                         PyTorch clones d_p, no dampening
//   later updates:                 b = mu*b + (1 - dampening)*g
//   g = g + mu*b  (nesterov)   or   g = b
//   mu = 0 is PyTorch's "no momentum": g passes unchanged and b is not touched (not launched).
//   Bytes per element: reads 8 (4 on the first update), writes 8.
//
// Step (the whole SGD step fused, what Sgd.FusedStep launches), in place on p and b:
//   d = g + wd*mask*p                                             coupled L2, before the momentum
//   if mu != 0:  b = d on the first update, else mu*b + (1 - dampening)*d
//                d = d + mu*b (nesterov) or d = b
//   p = p - lr*d
//   Bytes per element: reads p, g, b (12; 8 without momentum or on the first update; +1 with a
//   mask), writes p, b (8; 4 without momentum). The generic chain (AddDecayedWeights, Trace,
//   ScaleByLearningRate, ApplyUpdates) moves 48 B per element with momentum and weight decay.
//
// Each element is computed with the chain's float operations in the chain's order, so on a
// backend that does not contract a*b + c into an FMA the fused step equals the chain bitwise.
// No backward: these act on gradients, not on the graph.

/// <summary>SGD momentum (PyTorch semantics) and the fused whole SGD step: element bodies and checked launchers.</summary>
internal static class SgdUpdate
{
    /// <summary>Bytes the fused SGD <c>Step</c> with momentum (after the first update, no mask) moves per element: reads p, g, b (12), writes p, b (8). Benchmarks report GB/s from it.</summary>
    public const int StepBytesPerElement = 20;

    // ---------------------------------------------------------------- element bodies

    internal static readonly ForEachDef<MomentumBody<ViewElements<float>>> MomentumDef = new();
    internal static readonly ForEachDef<StepBody<ViewElements<float>, ViewElements<byte>>> StepDef = new();

    // ---------------------------------------------------------------- launchers

    /// <summary>
    /// The momentum update in place on g and b (n): b = g (first: no buffer yet) or mu*b + (1 − dampening)*g,
    /// then g = g + mu*b (Nesterov) or b; mu finite, at least 0, dampening finite. Nothing is launched
    /// when mu = 0 (PyTorch's plain SGD).
    /// </summary>
    public static void Momentum(KernelHost host, ArrayView<float> g, ArrayView<float> b, float mu, float dampening, bool nesterov, bool first)
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.SameLength(nameof(Momentum), g, nameof(g), b, nameof(b));
        CheckMomentum(nameof(Momentum), mu, dampening);
        if (g.Length == 0 || mu == 0f)
            return;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, g.Length, new MomentumBody<PtrElements<float>>(new(g), new(b), new(mu, dampening, nesterov, first)));
        else
            MomentumDef.Launch(host, g.Length, new(new(g), new(b), new(mu, dampening, nesterov, first)));
    }

    /// <summary>
    /// One fused SGD step in place on p and b (n; b may be empty when mu = 0, plain SGD), reading g;
    /// mask is empty (weight decay everywhere) or n bytes of 0/1; lr, weightDecay finite; momentum as
    /// <see cref="Momentum"/>, with first setting b to the decayed gradient.
    /// </summary>
    public static void Step(KernelHost host, ArrayView<float> p, ArrayView<float> g, ArrayView<float> b, ArrayView<byte> mask, float lr, float weightDecay, float mu, float dampening, bool nesterov, bool first)
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.SameLength(nameof(Step), p, nameof(p), g, nameof(g));
        if (mu != 0f || b.Length != 0)
            Check.SameLength(nameof(Step), p, nameof(p), b, nameof(b));
        if (mask.Length != 0)
            Check.SameLength(nameof(Step), p, nameof(p), mask, nameof(mask));
        if (!float.IsFinite(lr))
            throw new ArgumentOutOfRangeException(nameof(lr), lr, "SgdUpdate.Step: lr must be finite.");
        if (!float.IsFinite(weightDecay))
            throw new ArgumentOutOfRangeException(nameof(weightDecay), weightDecay, "SgdUpdate.Step: weightDecay must be finite.");
        CheckMomentum(nameof(Step), mu, dampening);
        if (p.Length == 0)
            return;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, p.Length, new StepBody<PtrElements<float>, PtrElements<byte>>(new(p), new(g), new(b), new(mask), mask.Length == 0 ? 0 : 1, lr, weightDecay, new(mu, dampening, nesterov, first)));
        else
            StepDef.Launch(host, p.Length, new(new(p), new(g), new(b), new(mask), mask.Length == 0 ? 0 : 1, lr, weightDecay, new(mu, dampening, nesterov, first)));
    }

    private static void CheckMomentum(string op, float mu, float dampening)
    {
        if (!(mu >= 0f) || float.IsInfinity(mu))
            throw new ArgumentOutOfRangeException(nameof(mu), mu, $"SgdUpdate.{op}: mu (momentum) must be finite and at least 0.");
        if (!float.IsFinite(dampening))
            throw new ArgumentOutOfRangeException(nameof(dampening), dampening, $"SgdUpdate.{op}: dampening must be finite.");
    }

    // ---------------------------------------------------------------- the per-element bodies, once
    // Run by Elementwise.ForEachKernel over views and by CpuLoops.ForEach over host pointers.

    // g = the momentum direction of g; b updated.
    internal readonly struct MomentumBody<TF>(TF g, TF b, MomentumOp op) : IElementBody
        where TF : struct, IElements<float>
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Run(int i) => g[i] = op.Direction(g[i], ref b[i]);
    }

    // d = g + wd p (where the mask allows; wd = 0 must not add 0*p, as 0*inf would turn an infinite
    // parameter's update into NaN), then the momentum direction when mu != 0, then p = p + (-lr) d.
    internal readonly struct StepBody<TF, TB>(TF p, TF g, TF b, TB mask, int useMask, float lr, float weightDecay, MomentumOp op) : IElementBody
        where TF : struct, IElements<float>
        where TB : struct, IElements<byte>
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Run(int i)
        {
            float d = g[i];
            if (weightDecay != 0f && (useMask == 0 || mask[i] != 0))
                d += weightDecay * p[i];
            if (op.Mu != 0f)
                d = op.Direction(d, ref b[i]);
            p[i] += -lr * d;
        }
    }

    // The momentum update of one element: b = g (first) or mu b + (1 - dampening) g; the direction
    // is g + mu b (Nesterov) or b.
    internal readonly struct MomentumOp(float mu, float dampening, bool nesterov, bool first)
    {
        public readonly float Mu = mu;
        private readonly float keep = 1f - dampening;
        private readonly int nesterov = nesterov ? 1 : 0;
        private readonly int first = first ? 1 : 0;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public float Direction(float g, ref float b)
        {
            float bi = first != 0 ? g : (Mu * b) + (keep * g);
            b = bi;
            return nesterov != 0 ? g + (Mu * bi) : bi;
        }
    }
}
