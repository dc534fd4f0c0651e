namespace IlgpuTrain.Functional;

public static partial class F
{
    /// <summary>
    /// Mean squared error, torch.nn.functional.mse_loss.
    /// </summary>
    /// <remarks>
    /// <para>l_i = (x_i - t_i)^2;  Mean: sum_i l_i / n (default), Sum: sum_i l_i, None: l</para>
    /// <para>dx_i = 2 (x_i - t_i) g_i,  dt_i = -dx_i,  g_i = dLoss / n (Mean), dLoss (Sum), dLoss_i (None)</para>
    /// </remarks>
    /// <param name="input">x, any shape, float32.</param>
    /// <param name="target">t, the shape of x, float32 (differentiable).</param>
    /// <param name="reduction">Mean (default), Sum or None.</param>
    /// <returns>The loss: shape () for Mean and Sum, x's shape for None.</returns>
    public static Tensor MseLoss(Tensor input, Tensor target, LossReduction reduction = LossReduction.Mean) =>
        PointwiseLoss(nameof(MseLoss), default(MseLossOp), input, target, null, reduction);

    /// <summary>
    /// Mean absolute error, torch.nn.functional.l1_loss.
    /// </summary>
    /// <remarks>
    /// <para>l_i = |x_i - t_i|;  reductions as <see cref="MseLoss"/></para>
    /// <para>dx_i = sign(x_i - t_i) g_i with sign(0) = 0 (PyTorch),  dt_i = -dx_i</para>
    /// </remarks>
    /// <param name="input">x, any shape, float32.</param>
    /// <param name="target">t, the shape of x (differentiable).</param>
    /// <param name="reduction">Mean (default), Sum or None.</param>
    /// <returns>The loss.</returns>
    public static Tensor L1Loss(Tensor input, Tensor target, LossReduction reduction = LossReduction.Mean) =>
        PointwiseLoss(nameof(L1Loss), default(L1LossOp), input, target, null, reduction);

    /// <summary>
    /// Huber loss, torch.nn.functional.huber_loss.
    /// </summary>
    /// <remarks>
    /// <para>d = x - t;  l = 0.5 d^2 if |d| &lt; delta, else delta (|d| - 0.5 delta)</para>
    /// <para>dx = clamp(d, -delta, delta) g,  dt = -dx;  delta = 1 by default (must be positive)</para>
    /// </remarks>
    /// <param name="input">x, any shape, float32.</param>
    /// <param name="target">t, the shape of x (differentiable).</param>
    /// <param name="delta">The threshold, positive and finite (1).</param>
    /// <param name="reduction">Mean (default), Sum or None.</param>
    /// <returns>The loss.</returns>
    public static Tensor HuberLoss(Tensor input, Tensor target, float delta = 1f, LossReduction reduction = LossReduction.Mean)
    {
        if (!(delta > 0f && float.IsFinite(delta)))
            throw new ArgumentOutOfRangeException(nameof(delta), delta, $"{nameof(HuberLoss)}: delta must be positive and finite, got {delta}.");
        return PointwiseLoss(nameof(HuberLoss), new HuberLossOp(delta), input, target, null, reduction);
    }

    /// <summary>
    /// Smooth L1 loss, torch.nn.functional.smooth_l1_loss.
    /// </summary>
    /// <remarks>
    /// <para>d = x - t;  l = 0.5 d^2 / beta if |d| &lt; beta, else |d| - 0.5 beta</para>
    /// <para>dx = clamp(d / beta, -1, 1) g,  dt = -dx;  beta = 1 by default; beta = 0 is the L1 loss</para>
    /// </remarks>
    /// <param name="input">x, any shape, float32.</param>
    /// <param name="target">t, the shape of x (differentiable).</param>
    /// <param name="beta">The threshold, zero or more and finite (1).</param>
    /// <param name="reduction">Mean (default), Sum or None.</param>
    /// <returns>The loss.</returns>
    public static Tensor SmoothL1Loss(Tensor input, Tensor target, float beta = 1f, LossReduction reduction = LossReduction.Mean)
    {
        if (!(beta >= 0f && float.IsFinite(beta)))
            throw new ArgumentOutOfRangeException(nameof(beta), beta, $"{nameof(SmoothL1Loss)}: beta must be zero or more and finite, got {beta}.");
        return PointwiseLoss(nameof(SmoothL1Loss), new SmoothL1LossOp(beta), input, target, null, reduction);
    }

    /// <summary>
    /// Binary cross-entropy on logits, torch.nn.functional.binary_cross_entropy_with_logits, computed stably.
    /// </summary>
    /// <remarks>
    /// <para>l = -(w t log sigmoid(x) + (1 - t) log(1 - sigmoid(x)))</para>
    /// <para>  = (1 - t) x + (1 + (w - 1) t) (log(1 + exp(-|x|)) + max(-x, 0))</para>
    /// <para>dx = ((1 + (w - 1) t) sigmoid(x) - w t) g,  dt = ((w - 1) softplus(-x) - x) g</para>
    /// <para>w = pos_weight broadcast over the last dimension (1 when null); it gets no gradient.</para>
    /// </remarks>
    /// <param name="input">Logits x, any shape, float32.</param>
    /// <param name="target">Target probabilities t in [0, 1], the shape of x (differentiable).</param>
    /// <param name="posWeight">pos_weight (C) with C the last dimension of x (or (1)), or null.</param>
    /// <param name="reduction">Mean (default), Sum or None.</param>
    /// <returns>The loss.</returns>
    public static Tensor BinaryCrossEntropyWithLogits(Tensor input, Tensor target, Tensor? posWeight = null, LossReduction reduction = LossReduction.Mean) =>
        PointwiseLoss(nameof(BinaryCrossEntropyWithLogits), default(BceWithLogitsOp), input, target, posWeight, reduction);

    private static Tensor PointwiseLoss<TOp>(string op, TOp lossOp, Tensor input, Tensor target, Tensor? posWeight, LossReduction reduction)
        where TOp : struct, ILossOp
    {
        var scope = posWeight is null ? ScopeOf(op, input, target) : ScopeOf(op, input, target, posWeight);
        RequireFloat(op, input, nameof(input));
        RequireFloat(op, target, nameof(target));
        if (input.Shape != target.Shape)
            throw new ArgumentException($"{op}: input is {input.Shape} but target is {target.Shape}; they must have the same shape.", nameof(target));
        if (reduction is not (LossReduction.Mean or LossReduction.Sum or LossReduction.None))
            throw new ArgumentOutOfRangeException(nameof(reduction), reduction, $"{op}: unknown reduction {(int)reduction}.");
        ArrayView<float> w = default;
        if (posWeight is not null)
        {
            RequireFloat(op, posWeight, nameof(posWeight));
            int c = input.Shape.Rank == 0 ? 1 : input.Shape[-1];
            if (posWeight.Shape.Rank > 1 || (posWeight.Length != c && posWeight.Length != 1))
                throw new ArgumentException($"{op}: posWeight is {posWeight.Shape} but input is {input.Shape}; posWeight must be ({c}), one weight per entry of the last dimension, or (1).", nameof(posWeight));
            w = posWeight.View<float>();
        }

        var host = scope.Device.Kernels;
        var losses = scope.Allocate(input.Shape);
        var result = reduction == LossReduction.None ? losses : scope.Allocate(Shape.Scalar);
        var scratch = scope.Scratch<float>(Math.Max(1, Losses.ScratchLength(host, input.Length, reduction)));
        var xv = input.View<float>();
        var tv = target.View<float>();
        Losses.Forward(host, lossOp, xv, tv, w, losses.View<float>(), reduction == LossReduction.None ? default : result.View<float>(), scratch, reduction);
        Record(op, result, [input, target], g =>
        {
            if (g.Needs(input))
                Losses.Backward(g.Kernels, lossOp, xv, tv, w, g.OutputGrad, g.Into(input), reduction);
            if (g.Needs(target))
                Losses.Backward(g.Kernels, lossOp, xv, tv, w, g.OutputGrad, g.Into(target), reduction, wrtTarget: true);
        });
        return result;
    }
}
