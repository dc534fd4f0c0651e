using System.Runtime.CompilerServices;
using ILGPU.Algorithms;
using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// RMSProp over the flat parameter buffer (PyTorch torch.optim.RMSprop; Hinton's lecture 6e,
// centered form from Graves 2013):
//
//   v   = alpha v + (1 - alpha) g^2
//   mu  = alpha mu + (1 - alpha) g                     centered only
//   den = sqrt(v - mu^2) + eps    (centered)   or   sqrt(v) + eps
//   d   = g / den
//   b   = momentum b + d,  d = b                       momentum buffer only (initially 0)
//
// eps sits outside the sqrt (PyTorch; Optax's scale_by_rms puts it inside). The centered
// difference v - mu^2 is non-negative in exact arithmetic; like PyTorch, no clamp is applied, so
// rounding can make it slightly negative (NaN) after many identical gradients.
//
// Direction (the scale_by_rms primitive): g (n) is overwritten with d; v (n), mu (n, centered)
//   and b (n, momentum) are updated in place. Reads 8 B, writes 8 B per element, +8/+8 for each
//   of mu and b.
// Step (the fused RMSProp step): g' = g + weightDecay * p (coupled L2, g is not written), the
//   same moments with g', then p = p - lr * d. Reads p, g, v and writes p, v: 20 B per element,
//   +8 B for each of mu and b.
// Everything is updated in place; there is no backward.

/// <summary>The per-step scalars of the RMSProp direction (rounded once from float64).</summary>
/// <param name="Alpha">Smoothing constant alpha.</param>
/// <param name="OneMinusAlpha">1 - alpha, rounded from float64.</param>
/// <param name="Eps">eps, added outside the sqrt.</param>
/// <param name="Momentum">Momentum of the buffer b (used only when a buffer is given).</param>
public readonly record struct RmsScalars(float Alpha, float OneMinusAlpha, float Eps, float Momentum)
{
    /// <summary>The scalars from float64 hyperparameters alpha, eps and momentum.</summary>
    public static RmsScalars For(double alpha, double eps, double momentum) =>
        new((float)alpha, (float)(1 - alpha), (float)eps, (float)momentum);
}

/// <summary>The scalars of the fused RMSProp step.</summary>
/// <param name="Rms">The direction's scalars.</param>
/// <param name="LearningRate">lr of this step.</param>
/// <param name="WeightDecay">Coupled L2 lambda: g' = g + lambda * p.</param>
public readonly record struct RmsStepScalars(RmsScalars Rms, float LearningRate, float WeightDecay);

/// <summary>RMSProp's moment update and direction, and the fused RMSProp step: element bodies and checked launchers.</summary>
internal static class RmsUpdate
{
    // ---------------------------------------------------------------- element bodies

    // One element: updates v, mu, b at i and returns the direction.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Moments<TF>(float g, TF v, TF mu, TF b, int i, RmsScalars s, int centered, int useMomentum)
        where TF : struct, IElements<float>
    {
        float vi = (s.Alpha * v[i]) + (s.OneMinusAlpha * g * g);
        v[i] = vi;
        if (centered != 0)
        {
            float mi = (s.Alpha * mu[i]) + (s.OneMinusAlpha * g);
            mu[i] = mi;
            vi -= mi * mi;
        }
        float d = g / (XMath.Sqrt(vi) + s.Eps);
        if (useMomentum != 0)
        {
            d = (s.Momentum * b[i]) + d;
            b[i] = d;
        }
        return d;
    }

    // The bodies, run by Elementwise.ForEachKernel over views and by CpuLoops.ForEach over host pointers.

    // g becomes the direction; v, mu, b updated.
    internal readonly struct DirectionBody<TF>(TF g, TF v, TF mu, TF b, RmsScalars s, int centered, int useMomentum) : IElementBody
        where TF : struct, IElements<float>
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Run(int i) => g[i] = Moments(g[i], v, mu, b, i, s, centered, useMomentum);
    }

    // p = p - lr d with d the direction of g + wd p.
    internal readonly struct StepBody<TF>(TF p, TF g, TF v, TF mu, TF b, RmsStepScalars s, int centered, int useMomentum) : IElementBody
        where TF : struct, IElements<float>
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Run(int i)
        {
            float pi = p[i];
            float gi = g[i] + (s.WeightDecay * pi);
            p[i] = pi - (s.LearningRate * Moments(gi, v, mu, b, i, s.Rms, centered, useMomentum));
        }
    }

    internal static readonly ForEachDef<DirectionBody<ViewElements<float>>> DirectionDef = new();
    internal static readonly ForEachDef<StepBody<ViewElements<float>>> StepDef = new();

    // ---------------------------------------------------------------- launchers

    /// <summary>
    /// RMSProp moments and direction over the flat buffer, all (n): g becomes d; v (running mean of
    /// g^2), mu (of g, centered variant, or empty) and b (momentum, or empty) are updated in place.
    /// </summary>
    public static void Direction(KernelHost host, ArrayView<float> g, ArrayView<float> v, ArrayView<float> mu, ArrayView<float> b, RmsScalars s)
    {
        ArgumentNullException.ThrowIfNull(host);
        var (centered, useMomentum) = CheckState("RmsUpdate.Direction", g, v, mu, b);
        if (g.Length == 0)
            return;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, g.Length, new DirectionBody<PtrElements<float>>(new(g), new(v), new(mu), new(b), s, centered, useMomentum));
        else
            DirectionDef.Launch(host, g.Length, new(new(g), new(v), new(mu), new(b), s, centered, useMomentum));
    }

    /// <summary>The fused RMSProp step over the flat buffer: p, v, mu and b (as Direction) are updated in place; g is only read.</summary>
    public static void Step(KernelHost host, ArrayView<float> p, ArrayView<float> g, ArrayView<float> v, ArrayView<float> mu, ArrayView<float> b, RmsStepScalars s)
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.SameLength("RmsUpdate.Step", p, nameof(p), g, nameof(g));
        var (centered, useMomentum) = CheckState("RmsUpdate.Step", g, v, mu, b);
        if (p.Length == 0)
            return;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, p.Length, new StepBody<PtrElements<float>>(new(p), new(g), new(v), new(mu), new(b), s, centered, useMomentum));
        else
            StepDef.Launch(host, p.Length, new(new(p), new(g), new(v), new(mu), new(b), s, centered, useMomentum));
    }

    // v against g, and mu and b where given; returns the flags (centered, momentum) the bodies take.
    private static (int Centered, int UseMomentum) CheckState(string op, ArrayView<float> g, ArrayView<float> v, ArrayView<float> mu, ArrayView<float> b)
    {
        Check.SameLength(op, g, nameof(g), v, nameof(v));
        if (mu.Length != 0)
            Check.SameLength(op, g, nameof(g), mu, nameof(mu));
        if (b.Length != 0)
            Check.SameLength(op, g, nameof(g), b, nameof(b));
        return (mu.Length == 0 ? 0 : 1, b.Length == 0 ? 0 : 1);
    }
}
