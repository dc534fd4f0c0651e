namespace IlgpuTrain.Optimizers;

/// <summary>
/// Adam with PyTorch's semantics (<c>torch.optim.Adam</c>): the chain
/// [<see cref="AddDecayedWeights"/>(weight_decay) when weight_decay &gt; 0, <see cref="ScaleByAdam"/>,
/// <see cref="ScaleByLearningRate"/>(lr)], which <see cref="Optimizer.Step"/> runs as one kernel
/// launch (<see cref="FusionPlan"/>).
/// </summary>
/// <remarks>
/// <para>t = count + 1</para>
/// <para>g ← g + λ·θ   (coupled L2 weight decay, before the moments)</para>
/// <para>m ← β₁·m + (1 − β₁)·g</para>
/// <para>v ← β₂·v + (1 − β₂)·g²;  AMSGrad: v_max ← max(v_max, v) replaces v below</para>
/// <para>θ ← θ − lr · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + eps)</para>
/// <para>Defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0, amsgrad false
/// (https://pytorch.org/docs/1.13/generated/torch.optim.Adam.html; Kingma and Ba, 2015).
/// lr and β₁ may be schedules, read at the count before the update (OneCycle cycles both).
/// For decoupled decay use <see cref="AdamW"/>.</para>
/// <para><see cref="Optimizer.Step"/> runs the fused kernel when <see cref="Fused"/> is true
/// (reads θ, g, m, v and writes θ, m, v: 28 bytes per parameter); <see cref="Update"/> runs
/// the chain. Both leave the same <see cref="ChainState"/> (same names, state types and counts),
/// so a run may switch between them.</para>
/// </remarks>
public sealed class Adam : INamedChain
{
    /// <summary>Creates Adam; hyperparameters are checked here, as PyTorch's constructor does.</summary>
    /// <param name="learningRate">lr, at least 0, or a schedule. Null: 1e-3.</param>
    /// <param name="beta1">β₁ (<c>betas[0]</c>) in [0, 1), or a schedule. Null: 0.9.</param>
    /// <param name="beta2">β₂ (<c>betas[1]</c>) in [0, 1).</param>
    /// <param name="eps">eps, at least 0, outside the square root.</param>
    /// <param name="weightDecay">Coupled L2 coefficient λ, at least 0.</param>
    /// <param name="amsgrad">Use AMSGrad (PyTorch's form).</param>
    public Adam(Schedule? learningRate = null, Schedule? beta1 = null, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0, bool amsgrad = false)
    {
        LearningRate = learningRate ?? DefaultLearningRate;
        var adam = new ScaleByAdam(beta1 ?? 0.9, beta2, eps, epsRoot: 0, amsgrad);
        AdaptiveChecks.NonNegativeSchedule(nameof(Adam), "lr", LearningRate);
        adam.Validate(nameof(Adam));
        AdaptiveChecks.NonNegative(nameof(Adam), "weight_decay", weightDecay);
        Direction = adam;
        WeightDecay = weightDecay;
        IGradientTransformation[] children = weightDecay > 0
            ? [new AddDecayedWeights(weightDecay), adam, new ScaleByLearningRate(LearningRate)]
            : [adam, new ScaleByLearningRate(LearningRate)];
        Chain = new Chain(children) { Name = "adam" };
    }

    /// <summary>PyTorch's default learning rate for Adam.</summary>
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

    /// <summary>Coupled L2 weight decay λ.</summary>
    public double WeightDecay { get; }

    /// <summary>Whether AMSGrad is used.</summary>
    public bool Amsgrad => Direction.Amsgrad;

    private ScaleByAdam Direction { get; }

    /// <inheritdoc/>
    public OptState Init(ParamTree parameters) => Chain.Init(parameters);

    /// <inheritdoc/>
    public UpdateResult Update(ParamTree grads, OptState state, ParamTree parameters, UpdateContext context) =>
        Chain.Update(grads, state, parameters, context);
}
