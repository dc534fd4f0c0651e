using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using ILGPU.Algorithms;
using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// Adam over the flat parameter buffer (PyTorch torch.optim.Adam / AdamW, Kingma and Ba 2015),
// t the 1-based step, bc1 = 1 - beta1^t, bc2 = 1 - beta2^t (computed on the host in float64):
//
//   m    = beta1 m + (1 - beta1) g
//   v    = beta2 v + (1 - beta2) g^2
//   vmax = max(vmax, v)                                   AMSGrad only (PyTorch: max of the raw v)
//   d    = (m / bc1) / (sqrt(v' / bc2 + epsRoot) + eps)   v' = vmax with AMSGrad, else v
//
// eps sits outside the sqrt (PyTorch); epsRoot inside is Optax's eps_root (default 0).
// Optax's AMSGrad takes the max of the bias-corrected v instead; PyTorch's form is used here.
//
// Direction (the scale_by_adam primitive): g (n) is overwritten with d; m, v (n) and, with
//   AMSGrad, vmax (n) are updated in place. Reads 12 B, writes 12 B per element (AMSGrad: 16/16).
// Step (the fused Adam/AdamW step): per element, in PyTorch's order,
//   p    = p * decayFactor           where the mask allows  (AdamW: decayFactor = 1 - lr * lambda)
//   g'   = g + weightDecay * p       where the mask allows  (Adam: coupled L2; g is not written)
//   m, v, vmax as above with g', then  p = p - lr * d.
//   AdamW reads p, g, m, v and writes p, m, v: 28 bytes per fp32 parameter (+1 B read with a
//   mask; AMSGrad reads and writes vmax too: 36 B).
// Every output is overwritten in place; nothing accumulates across launches except the moments,
// which are the optimizer's state. There is no backward: these act on gradients, not on the graph.

/// <summary>
/// The per-step scalars of the Adam direction, computed on the host in float64 and rounded once
/// to float (as PyTorch's Python-float scalars).
/// </summary>
/// <param name="Beta1">beta1 of this step.</param>
/// <param name="OneMinusBeta1">1 - beta1, rounded from float64 (1 - 0.9f in float is off by 2.4e-7).</param>
/// <param name="Beta2">beta2.</param>
/// <param name="OneMinusBeta2">1 - beta2, rounded from float64 (1 - 0.999f in float is off by 5e-5 relative).</param>
/// <param name="Eps">eps, added outside the sqrt.</param>
/// <param name="EpsRoot">Optax's eps_root, added inside the sqrt.</param>
/// <param name="BiasCorrection1">1 - beta1^t.</param>
/// <param name="BiasCorrection2">1 - beta2^t.</param>
public readonly record struct AdamScalars(float Beta1, float OneMinusBeta1, float Beta2, float OneMinusBeta2, float Eps, float EpsRoot, float BiasCorrection1, float BiasCorrection2)
{
    /// <summary>The scalars of step t = <paramref name="step"/> (1-based), bias corrections in float64; beta1, beta2 in [0, 1), eps, epsRoot at least 0.</summary>
    public static AdamScalars For(double beta1, double beta2, double eps, double epsRoot, long step)
    {
        if (step < 1)
            throw new ArgumentOutOfRangeException(nameof(step), step, "AdamScalars: the step t counts from 1.");
        return new((float)beta1, (float)(1 - beta1), (float)beta2, (float)(1 - beta2), (float)eps, (float)epsRoot,
            (float)BiasCorrection(beta1, step), (float)BiasCorrection(beta2, step));
    }

    /// <summary>The bias-correction factor 1 - beta^t for t = <paramref name="step"/>: in (0, 1] for beta in [0, 1) and t at least 1.</summary>
    public static double BiasCorrection(double beta, long step) => 1 - Math.Pow(beta, step);
}

/// <summary>The scalars of the fused Adam/AdamW step.</summary>
/// <param name="Adam">The direction's scalars.</param>
/// <param name="LearningRate">lr of this step.</param>
/// <param name="WeightDecay">Coupled L2 lambda (Adam): g' = g + lambda * p. 0 for AdamW.</param>
/// <param name="DecayFactor">Decoupled decay (AdamW): p = p * factor with factor = 1 - lr * lambda, rounded from float64. 1 for Adam.</param>
public readonly record struct AdamStepScalars(AdamScalars Adam, float LearningRate, float WeightDecay, float DecayFactor);

/// <summary>Adam's moment update and direction, and the fused Adam/AdamW step: element bodies and checked launchers.</summary>
internal static class AdamUpdate
{
    /// <summary>Bytes the fused Adam/AdamW <c>Step</c> moves per fp32 parameter without a mask or AMSGrad: reads p, g, m, v (16), writes p, m, v (12). Benchmarks report GB/s from it.</summary>
    public const int StepBytesPerElement = 28;

    // ---------------------------------------------------------------- the per-element math, once
    // The kernels and the managed loops call these; each Vector256 form does its scalar form's
    // IEEE operations per lane in the same order (nothing fused), so the paths are bitwise equal.

    // m' = beta1 m + (1 - beta1) g
    private static float FirstMoment(float g, float m, AdamScalars s) => (s.Beta1 * m) + (s.OneMinusBeta1 * g);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> FirstMoment(Vector256<float> g, Vector256<float> m, Vector256<float> beta1, Vector256<float> oneMinusBeta1) =>
        (beta1 * m) + (oneMinusBeta1 * g);

    // v' = beta2 v + (1 - beta2) g^2
    private static float SecondMoment(float g, float v, AdamScalars s) => (s.Beta2 * v) + (s.OneMinusBeta2 * g * g);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> SecondMoment(Vector256<float> g, Vector256<float> v, Vector256<float> beta2, Vector256<float> oneMinusBeta2) =>
        (beta2 * v) + (oneMinusBeta2 * g * g);

    // (m / bc1) / (sqrt(v / bc2 + epsRoot) + eps), v already the AMSGrad max where it applies.
    private static float Direction(float m, float v, AdamScalars s) =>
        (m / s.BiasCorrection1) / (XMath.Sqrt((v / s.BiasCorrection2) + s.EpsRoot) + s.Eps);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Direction(Vector256<float> m, Vector256<float> v, Vector256<float> bc1, Vector256<float> bc2, Vector256<float> epsRoot, Vector256<float> eps) =>
        (m / bc1) / (Vector256.Sqrt((v / bc2) + epsRoot) + eps);

    // torch.maximum semantics: a NaN in either operand wins (PTX max.f32 would drop it).
    private static float MaxKeepNaN(float a, float b) => b > a || float.IsNaN(b) ? b : a;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> MaxKeepNaN(Vector256<float> a, Vector256<float> b) =>
        Vector256.ConditionalSelect(Vector256.GreaterThan(b, a) | ~Vector256.Equals(b, b), b, a);

    // Decoupled decay (AdamW: p (1 - lr lambda)), then the coupled L2 term (Adam: g + lambda p).
    private static float Decayed(float p, AdamStepScalars s) => p * s.DecayFactor;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Decayed(Vector256<float> p, Vector256<float> decayFactor) => p * decayFactor;

    private static float DecayedGradient(float g, float decayedP, AdamStepScalars s) => g + (s.WeightDecay * decayedP);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> DecayedGradient(Vector256<float> g, Vector256<float> decayedP, Vector256<float> weightDecay) =>
        g + (weightDecay * decayedP);

    // p' = p - lr d
    private static float Updated(float p, float d, AdamStepScalars s) => p - (s.LearningRate * d);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Updated(Vector256<float> p, Vector256<float> d, Vector256<float> lr) => p - (lr * d);

    internal static readonly ForEachDef<DirectionBody<ViewElements<float>>> DirectionDef = new();
    internal static readonly ForEachDef<StepBody<ViewElements<float>, ViewElements<byte>>> StepDef = new();

    // ---------------------------------------------------------------- launchers

    /// <summary>
    /// Adam moments and direction over the flat buffer, all (n): g becomes d; m, v (and vmax, the
    /// running max of v for AMSGrad, or empty for plain Adam) are updated in place.
    /// </summary>
    public static void Direction(KernelHost host, ArrayView<float> g, ArrayView<float> m, ArrayView<float> v, ArrayView<float> vmax, AdamScalars s)
    {
        ArgumentNullException.ThrowIfNull(host);
        int amsgrad = CheckMoments("AdamUpdate.Direction", g, m, v, vmax);
        if (g.Length == 0)
            return;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, g.Length, new DirectionBody<PtrElements<float>>(new(g), new(m), new(v), new(vmax), s, amsgrad));
        else
            DirectionDef.Launch(host, g.Length, new(new(g), new(m), new(v), new(vmax), s, amsgrad));
    }

    /// <summary>
    /// The fused Adam/AdamW step over the flat buffer: p, m, v (and vmax) are updated in place; g is
    /// only read; mask is empty (decay everywhere) or n bytes of 0/1. clipNorm is empty, or one
    /// float of device memory holding the global gradient norm: the gradients are then clipped on
    /// the fly, g · min(1, maxNorm / (norm + 1e-6)) as <see cref="Clip.ByNorm"/>, in the same pass
    /// (a clip-then-Adam chain in one launch).
    /// </summary>
    public static void Step(KernelHost host, ArrayView<float> p, ArrayView<float> g, ArrayView<float> m, ArrayView<float> v, ArrayView<float> vmax, ArrayView<byte> mask, AdamStepScalars s, ArrayView<float> clipNorm = default, float maxNorm = 0f)
    {
        ArgumentNullException.ThrowIfNull(host);
        const string op = "AdamUpdate.Step";
        Check.SameLength(op, p, nameof(p), g, nameof(g));
        int amsgrad = CheckMoments(op, g, m, v, vmax);
        if (mask.Length != 0)
            Check.SameLength(op, p, nameof(p), mask, nameof(mask));
        if (clipNorm.Length > 1)
            throw new ArgumentException($"{op}: clipNorm has {clipNorm.Length} elements; it is empty (no clip) or the one norm.", nameof(clipNorm));
        if (clipNorm.Length == 1 && !(maxNorm >= 0))
            throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, $"{op}: max_norm of the fused clip must be at least 0.");
        if (p.Length == 0)
            return;
        int useMask = mask.Length == 0 ? 0 : 1, clip = clipNorm.Length == 0 ? 0 : 1;
        if (host.RunsManaged)
        {
            var body = new StepBody<PtrElements<float>, PtrElements<byte>>(new(p), new(g), new(m), new(v), new(vmax), new(mask), s, amsgrad, useMask, new(clipNorm), clip, maxNorm);
            host.Stream.Synchronize();
            unsafe
            {
                float factor = clip == 0 ? 1f : Clip.NormFactor(CpuLoops.Ptr(clipNorm)[0], maxNorm);
                CpuLoops.For(host, p.Length, new StepVectorBody(CpuLoops.Ptr(p), CpuLoops.Ptr(g), CpuLoops.Ptr(m), CpuLoops.Ptr(v), CpuLoops.Ptr(vmax), CpuLoops.Ptr(mask), s, clip != 0, factor, body));
            }
        }
        else
        {
            StepDef.Launch(host, p.Length, new(new(p), new(g), new(m), new(v), new(vmax), new(mask), s, amsgrad, useMask, new(clipNorm), clip, maxNorm));
        }
    }

    // m and v against g, and vmax where given; returns the AMSGrad flag the bodies take.
    private static int CheckMoments(string op, ArrayView<float> g, ArrayView<float> m, ArrayView<float> v, ArrayView<float> vmax)
    {
        Check.SameLength(op, g, nameof(g), m, nameof(m));
        Check.SameLength(op, g, nameof(g), v, nameof(v));
        if (vmax.Length != 0)
            Check.SameLength(op, g, nameof(g), vmax, nameof(vmax));
        return vmax.Length == 0 ? 0 : 1;
    }

    // The fused step of one element, run by Elementwise.ForEachKernel over views and, on the
    // managed path, for what StepVectorBody leaves (its tail, or everything without AVX2). With the
    // fused clip each element computes the factor from the norm (the same float operations each
    // time, so every element and both paths get the same factor).
    internal readonly struct StepBody<TF, TB>(TF p, TF g, TF m, TF v, TF vmax, TB mask, AdamStepScalars s, int amsgrad, int useMask, TF clipNorm, int clip, float maxNorm) : IElementBody
        where TF : struct, IElements<float>
        where TB : struct, IElements<byte>
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Run(int i)
        {
            float pi = p[i], gi = g[i];
            if (clip != 0)
                gi *= Clip.NormFactor(clipNorm[0], maxNorm);
            if (useMask == 0 || mask[i] != 0)
            {
                pi = Decayed(pi, s);
                gi = DecayedGradient(gi, pi, s);
            }
            float mi = m[i] = FirstMoment(gi, m[i], s.Adam);
            float vi = v[i] = SecondMoment(gi, v[i], s.Adam);
            if (amsgrad != 0)
                vi = vmax[i] = MaxKeepNaN(vmax[i], vi);
            p[i] = Updated(pi, Direction(mi, vi, s.Adam), s);
        }
    }

    // The managed step: eight elements at a time through the vector forms (AVX2), then StepBody.
    private readonly unsafe struct StepVectorBody(float* p, float* g, float* m, float* v, float* vmax, byte* mask, AdamStepScalars s, bool clip, float factor, StepBody<PtrElements<float>, PtrElements<byte>> body) : CpuLoops.IRange
    {
        public void Run(int start, int end)
        {
            int i = Avx2.IsSupported ? Vectorized(p, g, m, v, vmax, mask, s, clip, factor, start, end) : start;
            for (; i < end; i++)
                body.Run(i);
        }

        // Returns where the scalar tail starts. Static, so the pointers and the broadcast scalars
        // are locals that stay in registers.
        private static int Vectorized(float* p, float* g, float* m, float* v, float* vmax, byte* mask, AdamStepScalars s, bool clip, float factor, int start, int end)
        {
            var a = s.Adam;
            var beta1 = Vector256.Create(a.Beta1);
            var oneMinusBeta1 = Vector256.Create(a.OneMinusBeta1);
            var beta2 = Vector256.Create(a.Beta2);
            var oneMinusBeta2 = Vector256.Create(a.OneMinusBeta2);
            var bc1 = Vector256.Create(a.BiasCorrection1);
            var bc2 = Vector256.Create(a.BiasCorrection2);
            var epsRoot = Vector256.Create(a.EpsRoot);
            var eps = Vector256.Create(a.Eps);
            var lr = Vector256.Create(s.LearningRate);
            var wd = Vector256.Create(s.WeightDecay);
            var decay = Vector256.Create(s.DecayFactor);
            var clipFactor = Vector256.Create(factor);
            int i = start;
            for (; i + 8 <= end; i += 8)
            {
                var pi = Vector256.Load(p + i);
                var gi = Vector256.Load(g + i);
                if (clip)
                    gi *= clipFactor;
                var decayed = Decayed(pi, decay);
                var gDecayed = DecayedGradient(gi, decayed, wd);
                if (mask == null)
                {
                    pi = decayed;
                    gi = gDecayed;
                }
                else
                {
                    var on = ~Vector256.Equals(Avx2.ConvertToVector256Int32(mask + i), Vector256<int>.Zero).AsSingle();
                    pi = Vector256.ConditionalSelect(on, decayed, pi);
                    gi = Vector256.ConditionalSelect(on, gDecayed, gi);
                }

                var mi = FirstMoment(gi, Vector256.Load(m + i), beta1, oneMinusBeta1);
                var vi = SecondMoment(gi, Vector256.Load(v + i), beta2, oneMinusBeta2);
                mi.Store(m + i);
                vi.Store(v + i);
                if (vmax != null)
                {
                    vi = MaxKeepNaN(Vector256.Load(vmax + i), vi);
                    vi.Store(vmax + i);
                }

                Updated(pi, Direction(mi, vi, bc1, bc2, epsRoot, eps), lr).Store(p + i);
            }

            return i;
        }
    }

    // The Adam direction of one element (g becomes d; m, v and, with AMSGrad, vmax updated), run by
    // Elementwise.ForEachKernel over views and by CpuLoops.ForEach over host pointers.
    internal readonly struct DirectionBody<TF>(TF g, TF m, TF v, TF vmax, AdamScalars s, int amsgrad) : IElementBody
        where TF : struct, IElements<float>
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Run(int i)
        {
            float gi = g[i];
            float mi = m[i] = FirstMoment(gi, m[i], s);
            float vi = v[i] = SecondMoment(gi, v[i], s);
            if (amsgrad != 0)
                vi = vmax[i] = MaxKeepNaN(vmax[i], vi);
            g[i] = Direction(mi, vi, s);
        }
    }
}
