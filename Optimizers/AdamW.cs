namespace IlgpuTrain.Optimizers;

/// <summary>
/// AdamW with PyTorch's semantics (<c>torch.optim.AdamW</c>): the chain [<see cref="ScaleByAdam"/>,
/// <see cref="AddDecayedWeights"/>(weight_decay, mask), <see cref="ScaleByLearningRate"/>(lr)], with a
/// fused step that does all of it in one kernel launch.
/// </summary>
/// <remarks>
/// <para>t = count + 1</para>
/// <para>θ ← θ − lr·λ·θ   (decoupled decay, on the parameters the mask selects, before the Adam step)</para>
/// <para>m ← β₁·m + (1 − β₁)·g</para>
/// <para>v ← β₂·v + (1 − β₂)·g²;  AMSGrad: v_max ← max(v_max, v) replaces v below</para>
/// <para>θ ← θ − lr · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + eps)</para>
/// <para>Defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0.01, amsgrad false, every
/// parameter decays (https://pytorch.org/docs/1.13/generated/torch.optim.AdamW.html; Loshchilov
/// and Hutter, "Decoupled Weight Decay Regularization", 2019). The chain gives
/// θ − lr·(adam_direction + λ·θ), the same update. A common mask is
/// <c>ParamMask.ByRank(2)</c>: no decay on biases or normalization scales (PyTorch: a parameter
/// group with weight_decay 0). lr and β₁ may be schedules, read at the count before the update.</para>
/// <para>The fused kernel reads θ, g, m, v and writes θ, m, v: 28 bytes per fp32 parameter
/// (+1 with a mask, +8 with AMSGrad). It and <see cref="Chain.Update"/> leave the same
/// <see cref="ChainState"/>, so a run may switch between them.</para>
/// </remarks>
public sealed class AdamW : Chain, IFusedStep, IClipFusedStep
{
    private readonly ScaleByAdam _adam;

    /// <summary>Creates AdamW; hyperparameters are checked here, as PyTorch's constructor does.</summary>
    /// <param name="learningRate">lr, at least 0, or a schedule. Null: 1e-3.</param>
    /// <param name="beta1">β₁ (<c>betas[0]</c>) in [0, 1), or a schedule. Null: 0.9.</param>
    /// <param name="beta2">β₂ (<c>betas[1]</c>) in [0, 1).</param>
    /// <param name="eps">eps, at least 0, outside the square root.</param>
    /// <param name="weightDecay">Decoupled decay λ, at least 0.</param>
    /// <param name="amsgrad">Use AMSGrad (PyTorch's form).</param>
    /// <param name="decayMask">Which parameters decay; null means all.</param>
    public AdamW(Schedule? learningRate = null, Schedule? beta1 = null, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0.01, bool amsgrad = false, ParamMask? decayMask = null)
        : base(Build(learningRate ?? DefaultLearningRate, beta1 ?? 0.9, beta2, eps, weightDecay, amsgrad, decayMask))
    {
        _adam = Children.OfType<ScaleByAdam>().Single();
        LearningRate = learningRate ?? DefaultLearningRate;
        WeightDecay = weightDecay;
        DecayMask = decayMask;
    }

    /// <summary>PyTorch's default learning rate for AdamW.</summary>
    public const double DefaultLearningRate = 1e-3;

    /// <inheritdoc/>
    public override string Name => "adamw";

    /// <summary>The learning rate (schedule).</summary>
    public Schedule LearningRate { get; }

    /// <summary>β₁ (schedule).</summary>
    public Schedule Beta1 => _adam.B1;

    /// <summary>β₂.</summary>
    public double Beta2 => _adam.B2;

    /// <summary>eps.</summary>
    public double Eps => _adam.Eps;

    /// <summary>Decoupled weight decay λ.</summary>
    public double WeightDecay { get; }

    /// <summary>Whether AMSGrad is used.</summary>
    public bool Amsgrad => _adam.Amsgrad;

    /// <summary>Which parameters decay (null: all).</summary>
    public ParamMask? DecayMask { get; }

    /// <inheritdoc/>
    public bool Fused { get; init; } = true;

    /// <inheritdoc/>
    public (ParamTree Parameters, OptState State) FusedStep(ParamTree parameters, ParamTree grads, OptState state, UpdateContext context) =>
        FusedStep(parameters, grads, state, context, default, 0f);

    /// <inheritdoc/>
    (ParamTree Parameters, OptState State) IClipFusedStep.FusedStep(ParamTree parameters, ParamTree grads, OptState state, UpdateContext context, ArrayView<float> clipNorm, float maxNorm) =>
        FusedStep(parameters, grads, state, context, clipNorm, maxNorm);

    private (ParamTree Parameters, OptState State) FusedStep(ParamTree parameters, ParamTree grads, OptState state, UpdateContext context, ArrayView<float> clipNorm, float maxNorm)
    {
        var cs = AdaptiveFused.Begin(this, parameters, grads, state);
        var adam = AdaptiveFused.Child<ScaleByAdamState>(this, cs, _adam.Name);
        var decay = AdaptiveFused.Child<AddDecayedWeightsState>(this, cs, "add_decayed_weights");
        var lrState = AdaptiveFused.Child<ScaleByLearningRateState>(this, cs, "scale_by_learning_rate");
        parameters.Layout.RequireSame(adam.Mu.Layout, Name);
        double lr = AdaptiveFused.LearningRate(this, lrState);
        // 1 - lr * lambda in float64, rounded once, as PyTorch's param.mul_(1 - lr * weight_decay).
        var scalars = new AdamStepScalars(_adam.ScalarsAt(adam.Count), (float)lr, WeightDecay: 0f, DecayFactor: (float)(1 - (lr * WeightDecay)));
        AdamUpdate.Step(parameters.Device.Kernels, parameters.Flat32, grads.Flat32, adam.Mu.Flat32, adam.Nu.Flat32, adam.NuMax?.Flat32 ?? default, decay.Mask?.View ?? default, scalars, clipNorm, maxNorm);
        OptState[] next =
        [
            adam.Advance(AdaptiveFused.Consumer(this)),
            new AddDecayedWeightsState(decay.Mask),
            new ScaleByLearningRateState(lrState.Count + 1, lr, lrState.Schedule),
        ];
        return AdaptiveFused.Finish(this, parameters, grads, cs, next);
    }

    private static IGradientTransformation[] Build(Schedule lr, Schedule beta1, double beta2, double eps, double weightDecay, bool amsgrad, ParamMask? mask)
    {
        var adam = new ScaleByAdam(beta1, beta2, eps, epsRoot: 0, amsgrad);
        AdaptiveChecks.NonNegativeSchedule(nameof(AdamW), "lr", lr);
        adam.Validate(nameof(AdamW));
        AdaptiveChecks.NonNegative(nameof(AdamW), "weight_decay", weightDecay);
        return [adam, new AddDecayedWeights(weightDecay, mask), new ScaleByLearningRate(lr)];
    }
}
