using System.Runtime.CompilerServices;
using ILGPU.Algorithms;
using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// Adagrad over the flat parameter buffer (PyTorch torch.optim.Adagrad; Duchi, Hazan and Singer 2011):
//
//   s = s + g^2
//   d = g / (sqrt(s) + eps)
//
// eps sits outside the sqrt (PyTorch's default 1e-10; Optax's adagrad adds eps inside).
// Direction (the scale_by_adagrad primitive): g (n) is overwritten with d, s (n) accumulates.
//   Reads 8 B, writes 8 B per element.
// Step (the fused Adagrad step): g' = g + weightDecay * p (coupled L2, g is not written),
//   s += g'^2, p = p - clr * g' / (sqrt(s) + eps), clr = lr / (1 + (t - 1) lr_decay) computed on
//   the host. Reads p, g, s and writes p, s: 20 B per element.
// s accumulates across steps by design (it is the optimizer's state); there is no backward.

/// <summary>Adagrad's accumulator update and direction, and the fused Adagrad step: element bodies and checked launchers.</summary>
internal static class AdagradUpdate
{
    // ---------------------------------------------------------------- element bodies

    // One element: sum += g^2, and the direction g / (sqrt(sum) + eps).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Accumulate(float g, ref float sum, float eps)
    {
        float s = sum + (g * g);
        sum = s;
        return g / (XMath.Sqrt(s) + eps);
    }

    // The bodies, run by Elementwise.ForEachKernel over views and by CpuLoops.ForEach over host pointers.

    // g becomes the direction; sum accumulates g^2.
    internal readonly struct DirectionBody<TF>(TF g, TF sum, float eps) : IElementBody
        where TF : struct, IElements<float>
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Run(int i) => g[i] = Accumulate(g[i], ref sum[i], eps);
    }

    // p = p - lr d with d the direction of g + wd p.
    internal readonly struct StepBody<TF>(TF p, TF g, TF sum, float learningRate, float weightDecay, float eps) : IElementBody
        where TF : struct, IElements<float>
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Run(int i)
        {
            float pi = p[i];
            p[i] = pi - (learningRate * Accumulate(g[i] + (weightDecay * pi), ref sum[i], eps));
        }
    }

    internal static readonly ForEachDef<DirectionBody<ViewElements<float>>> DirectionDef = new();
    internal static readonly ForEachDef<StepBody<ViewElements<float>>> StepDef = new();

    // ---------------------------------------------------------------- launchers

    /// <summary>Adagrad accumulator and direction over the flat buffer (n): g becomes d, sum accumulates g^2; eps finite, at least 0.</summary>
    public static void Direction(KernelHost host, ArrayView<float> g, ArrayView<float> sum, float eps)
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.SameLength("AdagradUpdate.Direction", g, nameof(g), sum, nameof(sum));
        if (g.Length == 0)
            return;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, g.Length, new DirectionBody<PtrElements<float>>(new(g), new(sum), eps));
        else
            DirectionDef.Launch(host, g.Length, new(new(g), new(sum), eps));
    }

    /// <summary>The fused Adagrad step over the flat buffer: p and sum are updated in place; g is only read; learningRate is this step's clr.</summary>
    public static void Step(KernelHost host, ArrayView<float> p, ArrayView<float> g, ArrayView<float> sum, float learningRate, float weightDecay, float eps)
    {
        ArgumentNullException.ThrowIfNull(host);
        const string op = "AdagradUpdate.Step";
        Check.SameLength(op, p, nameof(p), g, nameof(g));
        Check.SameLength(op, p, nameof(p), sum, nameof(sum));
        if (p.Length == 0)
            return;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, p.Length, new StepBody<PtrElements<float>>(new(p), new(g), new(sum), learningRate, weightDecay, eps));
        else
            StepDef.Launch(host, p.Length, new(new(p), new(g), new(sum), learningRate, weightDecay, eps));
    }
}
