using ILGPU.Algorithms;
using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// Pointwise regression and binary losses (PyTorch's mse_loss, l1_loss, huber_loss, smooth_l1_loss,
// binary_cross_entropy_with_logits), with reductions Mean (default), Sum and None.
//
//   input x (n), target t (n), pos_weight w (C, broadcast over the last dimension; BCE only),
//   losses (n), loss (1), dLoss (1, or n for None), dx (n), dt (n);   d = x - t
//
//   MSE        l = d^2                                              dl/dx = 2 d
//   L1         l = |d|                                              dl/dx = sign(d), sign(0) = 0
//   Huber      l = 0.5 d^2            if |d| < delta                dl/dx = clamp(d, -delta, delta)
//                = delta (|d| - 0.5 delta) otherwise   (delta > 0, default 1)
//   SmoothL1   l = 0.5 d^2 / beta     if |d| < beta                 dl/dx = clamp(d / beta, -1, 1)
//                = |d| - 0.5 beta      otherwise       (beta >= 0, default 1; beta = 0 is L1)
//   For these four dl/dt = -dl/dx. At |d| = delta (beta) both branches agree in value and slope.
//   BCE with logits, lw = 1 + (w - 1) t:
//              l = (1 - t) x + lw (log(1 + exp(-|x|)) + max(-x, 0))      (= max(x,0) - x t + log(1 + exp(-|x|)) for w = 1)
//              dl/dx = lw sigmoid(x) - w t
//              dl/dt = (w - 1) softplus(-x) - x
//   Never exponentiates a positive number, so |x| = 100 gives finite, exact losses.
//
//   Mean  loss = sum_i l_i / n  (n = 0: NaN, as PyTorch)      dz_i = dl_i/dz * dLoss[0] / n
//   Sum   loss = sum_i l_i                                    dz_i = dl_i/dz * dLoss[0]
//   None  losses are the result                               dz_i = dl_i/dz * dLoss[i]
// The upstream gradient is read on the device (no host round-trip). Mean and Sum reuse the
// deterministic two-pass reduction of Reductions.cs.
//
// Bytes per element: forward reads 8 B (+4 B of w), writes 4 B (then the reduction reads them
// again); backward reads 8 B (+4 B of w, +4 B of dLoss for None), writes 4 B. Backward
// OVERWRITES dx (or dt).

/// <summary>
/// A pointwise loss l(x, t; w) of an input x, a target t and a per-element weight w (BCE's
/// pos_weight; 1 for the others), with its two partial derivatives. Implementations are small
/// <c>readonly struct</c>s; kernels are specialized per operator.
/// </summary>
public interface ILossOp
{
    /// <summary>l(x, t; w).</summary>
    /// <param name="x">Input (prediction or logit).</param>
    /// <param name="t">Target.</param>
    /// <param name="w">Weight (BCE's pos_weight; ignored by the others).</param>
    /// <returns>The loss.</returns>
    float Loss(float x, float t, float w);

    /// <summary>dl/dx, with PyTorch's conventions at kinks.</summary>
    /// <param name="x">Input.</param>
    /// <param name="t">Target.</param>
    /// <param name="w">Weight.</param>
    /// <returns>The derivative.</returns>
    float DInput(float x, float t, float w);

    /// <summary>dl/dt.</summary>
    /// <param name="x">Input.</param>
    /// <param name="t">Target.</param>
    /// <param name="w">Weight.</param>
    /// <returns>The derivative.</returns>
    float DTarget(float x, float t, float w);
}

/// <summary>Squared error (x - t)^2.</summary>
public readonly struct MseLossOp : ILossOp
{
    /// <inheritdoc/>
    public float Loss(float x, float t, float w)
    {
        float d = x - t;
        return d * d;
    }

    /// <inheritdoc/>
    public float DInput(float x, float t, float w) => 2f * (x - t);

    /// <inheritdoc/>
    public float DTarget(float x, float t, float w) => -2f * (x - t);
}

/// <summary>Absolute error |x - t|; gradient sign(x - t) with sign(0) = 0, as PyTorch.</summary>
public readonly struct L1LossOp : ILossOp
{
    /// <inheritdoc/>
    public float Loss(float x, float t, float w) => XMath.Abs(x - t);

    /// <inheritdoc/>
    public float DInput(float x, float t, float w) => Sign(x - t);

    /// <inheritdoc/>
    public float DTarget(float x, float t, float w) => -Sign(x - t);

    /// <summary>sign(d) with sign(0) = 0 (and NaN for NaN).</summary>
    /// <param name="d">The difference.</param>
    /// <returns>-1, 0, 1 or NaN.</returns>
    public static float Sign(float d) => d > 0f ? 1f : (d < 0f ? -1f : d * 0f);
}

/// <summary>Huber loss: 0.5 d^2 for |d| &lt; delta, else delta (|d| - 0.5 delta).</summary>
/// <param name="Delta">The threshold (positive; PyTorch's default 1).</param>
public readonly record struct HuberLossOp(float Delta) : ILossOp
{
    /// <inheritdoc/>
    public float Loss(float x, float t, float w)
    {
        float d = x - t;
        float z = XMath.Abs(d);
        return z < Delta ? 0.5f * d * d : Delta * (z - (0.5f * Delta));
    }

    /// <inheritdoc/>
    public float DInput(float x, float t, float w)
    {
        float d = x - t;
        return d <= -Delta ? -Delta : (d >= Delta ? Delta : d);
    }

    /// <inheritdoc/>
    public float DTarget(float x, float t, float w) => -DInput(x, t, w);
}

/// <summary>Smooth L1 loss: 0.5 d^2 / beta for |d| &lt; beta, else |d| - 0.5 beta; beta = 0 is L1.</summary>
/// <param name="Beta">The threshold (zero or more; PyTorch's default 1).</param>
public readonly record struct SmoothL1LossOp(float Beta) : ILossOp
{
    /// <inheritdoc/>
    public float Loss(float x, float t, float w)
    {
        float d = x - t;
        float z = XMath.Abs(d);
        return z < Beta ? 0.5f * d * d / Beta : z - (0.5f * Beta);
    }

    /// <inheritdoc/>
    public float DInput(float x, float t, float w)
    {
        float d = x - t;
        // PyTorch computes beta = 0 as l1_loss, whose gradient at d = 0 is 0, not -1.
        if (Beta == 0f)
            return L1LossOp.Sign(d);
        return d <= -Beta ? -1f : (d >= Beta ? 1f : d / Beta);
    }

    /// <inheritdoc/>
    public float DTarget(float x, float t, float w) => -DInput(x, t, w);
}

/// <summary>Binary cross-entropy on a logit x with a target probability t and positive-class weight w, computed stably.</summary>
public readonly struct BceWithLogitsOp : ILossOp
{
    /// <inheritdoc/>
    public float Loss(float x, float t, float w) => ((1f - t) * x) + ((1f + ((w - 1f) * t)) * SoftplusNeg(x));

    /// <inheritdoc/>
    public float DInput(float x, float t, float w) => ((1f + ((w - 1f) * t)) * Sigmoid(x)) - (w * t);

    /// <inheritdoc/>
    public float DTarget(float x, float t, float w) => ((w - 1f) * SoftplusNeg(x)) - x;

    /// <summary>softplus(-x) = log(1 + exp(-x)) = log(1 + exp(-|x|)) + max(-x, 0): never exponentiates a positive number.</summary>
    /// <param name="x">The logit.</param>
    /// <returns>-log sigmoid(x).</returns>
    public static float SoftplusNeg(float x) => XMath.Log(1f + XMath.Exp(-XMath.Abs(x))) + XMath.Max(-x, 0f);

    /// <summary>sigmoid(x) = 1 / (1 + exp(-x)), through exp(-|x|) so it never overflows.</summary>
    /// <param name="x">The logit.</param>
    /// <returns>sigmoid(x).</returns>
    public static float Sigmoid(float x)
    {
        float e = XMath.Exp(-XMath.Abs(x));
        return x >= 0f ? 1f / (1f + e) : e / (1f + e);
    }
}

/// <summary>Pointwise losses: element bodies generic over <see cref="ILossOp"/> and checked launchers.</summary>
internal static class Losses
{
    // ---------------------------------------------------------------- the element bodies, once
    // Run by the drivers of Runtime/RowDrivers.cs (one kernel per operator, catalogued through LossKernels).

    // losses[i] = op.Loss(x[i], t[i], w[i % C]), w = 1 when the weight is empty (c = 0).
    internal readonly struct ForwardBody<TF, TOp>(TF input, TF target, TF weight, int c, TF losses, TOp op) : IElementBody
        where TF : struct, IElements<float>
        where TOp : struct, ILossOp
    {
        public void Run(int i) => losses[i] = op.Loss(input[i], target[i], c == 0 ? 1f : weight[i % c]);
    }

    // dz[i] = (wrtTarget ? dl/dt : dl/dx)(x[i], t[i], w[i % C]) * g_i, g_i = dLoss[i] * scale
    // (perElement, reduction None) or dLoss[0] * scale; scale = 1 / n for Mean, else 1.
    internal readonly struct BackwardBody<TF, TOp>(TF input, TF target, TF weight, int c, TF dLoss, TF dz, float scale, int perElement, int wrtTarget, TOp op) : IElementBody
        where TF : struct, IElements<float>
        where TOp : struct, ILossOp
    {
        public void Run(int i)
        {
            float x = input[i], t = target[i];
            float w = c == 0 ? 1f : weight[i % c];
            float d = wrtTarget != 0 ? op.DTarget(x, t, w) : op.DInput(x, t, w);
            dz[i] = d * (dLoss[perElement != 0 ? i : 0] * scale);
        }
    }

    internal static readonly LossKernels<MseLossOp> MseKernels = LossKernels<MseLossOp>.Instance;
    internal static readonly LossKernels<L1LossOp> L1Kernels = LossKernels<L1LossOp>.Instance;
    internal static readonly LossKernels<HuberLossOp> HuberKernels = LossKernels<HuberLossOp>.Instance;
    internal static readonly LossKernels<SmoothL1LossOp> SmoothL1Kernels = LossKernels<SmoothL1LossOp>.Instance;
    internal static readonly LossKernels<BceWithLogitsOp> BceWithLogitsKernels = LossKernels<BceWithLogitsOp>.Instance;

    // ---------------------------------------------------------------- launchers

    /// <summary>Scratch elements <see cref="Forward{TOp}"/> needs for <paramref name="reduction"/> over n elements (0 for None).</summary>
    public static int ScratchLength(KernelHost host, long n, LossReduction reduction) =>
        reduction == LossReduction.None || n == 0 ? 0 : Reductions.ScratchLength(host, n);

    /// <summary>
    /// Per-element losses l_i = op(x_i, t_i, w_{i mod C}) (n) of input and target (n), posWeight (C
    /// dividing n, or empty for w = 1); then for Mean or Sum their deterministic reduction into result
    /// (1; Mean of 0 elements is NaN; unused, may be empty, for None), with a scratch of <see cref="ScratchLength"/>.
    /// The five built-in operators have catalogued kernels.
    /// </summary>
    public static void Forward<TOp>(KernelHost host, TOp op, ArrayView<float> input, ArrayView<float> target, ArrayView<float> posWeight, ArrayView<float> losses, ArrayView<float> result, ArrayView<float> scratch, LossReduction reduction)
        where TOp : struct, ILossOp
    {
        string name = $"Losses.Forward<{typeof(TOp).Name}>";
        CheckOperands(host, name, input, target, posWeight, losses, nameof(losses), reduction);
        if (reduction != LossReduction.None)
            Check.Length(name, result, nameof(result), 1, $"reduction {reduction}");
        int c = posWeight.IntLength;
        if (input.Length > 0 && host.RunsManaged)
            CpuLoops.ForEach(host, input.Length, new ForwardBody<PtrElements<float>, TOp>(PtrElements.Of(input), PtrElements.Of(target), PtrElements.Of(posWeight), c, PtrElements.Of(losses), op));
        else if (input.Length > 0)
            LossKernels<TOp>.Instance.Forward.Launch(host, input.IntLength, new(new(input), new(target), new(posWeight), c, new(losses), op));

        if (reduction == LossReduction.Mean)
            Reductions.Mean(host, losses, result, scratch);
        else if (reduction == LossReduction.Sum)
            Reductions.Sum(host, losses, result, scratch);
    }

    /// <summary>
    /// dz_i = dl/dz(x_i, t_i, w) times the upstream gradient read on the device: dLoss[0] / n
    /// (Mean), dLoss[0] (Sum) or dLoss[i] (None; dLoss has n elements); z is the input, or the
    /// target when <paramref name="wrtTarget"/>.
    /// </summary>
    public static void Backward<TOp>(KernelHost host, TOp op, ArrayView<float> input, ArrayView<float> target, ArrayView<float> posWeight, ArrayView<float> dLoss, ArrayView<float> dz, LossReduction reduction, bool wrtTarget = false)
        where TOp : struct, ILossOp
    {
        string name = $"Losses.Backward<{typeof(TOp).Name}>";
        CheckOperands(host, name, input, target, posWeight, dz, nameof(dz), reduction);
        long n = input.Length;
        if (reduction == LossReduction.None)
            Check.Length(name, dLoss, nameof(dLoss), n, $"reduction None over n = {n} elements");
        else
            Check.Length(name, dLoss, nameof(dLoss), 1, $"reduction {reduction}");
        if (n == 0)
            return;
        float scale = reduction == LossReduction.Mean ? (float)(1.0 / n) : 1f;
        int c = posWeight.IntLength, perElement = reduction == LossReduction.None ? 1 : 0, dt = wrtTarget ? 1 : 0;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, n, new BackwardBody<PtrElements<float>, TOp>(PtrElements.Of(input), PtrElements.Of(target), PtrElements.Of(posWeight), c, PtrElements.Of(dLoss), PtrElements.Of(dz), scale, perElement, dt, op));
        else
            LossKernels<TOp>.Instance.Backward.Launch(host, input.IntLength, new(new(input), new(target), new(posWeight), c, new(dLoss), new(dz), scale, perElement, dt, op));
    }

    private static void CheckOperands(KernelHost host, string name, ArrayView<float> input, ArrayView<float> target, ArrayView<float> posWeight, ArrayView<float> output, string outputName, LossReduction reduction)
    {
        ArgumentNullException.ThrowIfNull(host);
        if (reduction is not (LossReduction.Mean or LossReduction.Sum or LossReduction.None))
            throw new ArgumentOutOfRangeException(nameof(reduction), reduction, $"{name}: unknown reduction {(int)reduction}.");
        Check.SameLength(name, input, nameof(input), target, nameof(target));
        Check.SameLength(name, input, nameof(input), output, outputName);
        if (posWeight.Length > 0 && input.Length % posWeight.Length != 0)
            throw new ArgumentException($"{name}: posWeight has {posWeight.Length} elements, which must divide the {input.Length} elements of input (it broadcasts over the last dimension).", nameof(posWeight));
    }
}

/// <summary>The forward and backward kernels of one loss operator.</summary>
internal sealed class LossKernels<TOp> : IKernelSet
    where TOp : struct, ILossOp
{
    public static readonly LossKernels<TOp> Instance = new();

    public readonly ForEachDef<Losses.ForwardBody<ViewElements<float>, TOp>> Forward = new();

    public readonly ForEachDef<Losses.BackwardBody<ViewElements<float>, TOp>> Backward = new();

    /// <inheritdoc/>
    public IEnumerable<KernelDef> Kernels => [.. Forward.Kernels, .. Backward.Kernels];
}
