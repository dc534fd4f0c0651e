namespace IlgpuTrain.Optimizers;

/// <summary>
/// AdamW with PyTorch's semantics (<c>torch.optim.AdamW</c>): the chain [<see cref="ScaleByAdam"/>,
/// <see cref="AddDecayedWeights"/>(weight_decay, mask), <see cref="ScaleByLearningRate"/>(lr)], which
/// <see cref="Optimizer.Step"/> runs as one kernel launch (<see cref="FusionPlan"/>).
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
/// <see cref="ChainState"/>, so a run may switch between them. A hand-built chain of the same
/// primitives in the same order gets the same launch; so does
/// <c>new Chain(new ClipByGlobalNorm(c), new AdamW(...))</c>, with the clip in the same pass.</para>
/// </remarks>
public sealed class AdamW : INamedChain
{
    /// <summary>Creates AdamW; hyperparameters are checked here, as PyTorch's constructor does.</summary>
    /// <param name="learningRate">lr, at least 0, or a schedule. Null: 1e-3.</param>
    /// <param name="beta1">β₁ (<c>betas[0]</c>) in [0, 1), or a schedule. Null: 0.9.</param>
    /// <param name="beta2">β₂ (<c>betas[1]</c>) in [0, 1).</param>
    /// <param name="eps">eps, at least 0, outside the square root.</param>
    /// <param name="weightDecay">Decoupled decay λ, at least 0.</param>
    /// <param name="amsgrad">Use AMSGrad (PyTorch's form).</param>
    /// <param name="decayMask">Which parameters decay; null means all.</param>
    public AdamW(Schedule? learningRate = null, Schedule? beta1 = null, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0.01, bool amsgrad = false, ParamMask? decayMask = null)
    {
        LearningRate = learningRate ?? DefaultLearningRate;
        var adam = new ScaleByAdam(beta1 ?? 0.9, beta2, eps, epsRoot: 0, amsgrad);
        AdaptiveChecks.NonNegativeSchedule(nameof(AdamW), "lr", LearningRate);
        adam.Validate(nameof(AdamW));
        AdaptiveChecks.NonNegative(nameof(AdamW), "weight_decay", weightDecay);
        Direction = adam;
        WeightDecay = weightDecay;
        DecayMask = decayMask;
        Chain = new Chain(adam, new AddDecayedWeights(weightDecay, decayMask), new ScaleByLearningRate(LearningRate)) { Name = "adamw" };
    }

    /// <summary>PyTorch's default learning rate for AdamW.</summary>
    public const double DefaultLearningRate = 1e-3;

    /// <inheritdoc/>
    public string Name => Chain.Name;

    /// <inheritdoc/>
    public Chain Chain { get; }

    /// <inheritdoc/>
    public bool Fused { get; init; } = true;

    /// <summary>The learning rate (schedule).</summary>
    public Schedule LearningRate { get; }

    /// <summary>β₁ (schedule).</summary>
    public Schedule Beta1 => Direction.B1;

    /// <summary>β₂.</summary>
    public double Beta2 => Direction.B2;

    /// <summary>eps.</summary>
    public double Eps => Direction.Eps;

    /// <summary>Decoupled weight decay λ.</summary>
    public double WeightDecay { get; }

    /// <summary>Whether AMSGrad is used.</summary>
    public bool Amsgrad => Direction.Amsgrad;

    /// <summary>Which parameters decay (null: all).</summary>
    public ParamMask? DecayMask { get; }

    private ScaleByAdam Direction { get; }

    /// <inheritdoc/>
    public OptState Init(ParamTree parameters) => Chain.Init(parameters);

    /// <inheritdoc/>
    public UpdateResult Update(ParamTree grads, OptState state, ParamTree parameters, UpdateContext context) =>
        Chain.Update(grads, state, parameters, context);
}
