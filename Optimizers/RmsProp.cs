namespace IlgpuTrain.Optimizers;

/// <summary>
/// RMSProp with PyTorch's semantics (<c>torch.optim.RMSprop</c>): the chain
/// [<see cref="AddDecayedWeights"/>(weight_decay) when weight_decay &gt; 0, <see cref="ScaleByRms"/>,
/// <see cref="ScaleByLearningRate"/>(lr)], which <see cref="Optimizer.Step"/> runs as one kernel
/// launch (<see cref="FusionPlan"/>).
/// </summary>
/// <remarks>
/// <para>g ← g + λ·θ   (coupled L2 weight decay)</para>
/// <para>v ← α·v + (1 − α)·g²</para>
/// <para>centered: μ ← α·μ + (1 − α)·g,  den = √(v − μ²) + eps;  otherwise den = √v + eps</para>
/// <para>momentum &gt; 0: b ← momentum·b + g/den,  θ ← θ − lr·b</para>
/// <para>otherwise: θ ← θ − lr·g/den</para>
/// <para>Defaults: lr 1e-2, alpha 0.99, eps 1e-8, weight_decay 0, momentum 0, centered false
/// (https://pytorch.org/docs/1.13/generated/torch.optim.RMSprop.html). lr and momentum may be
/// schedules (OneCycle cycles RMSprop's momentum), read at the count before the update.</para>
/// <para>The fused kernel reads θ, g, v and writes θ, v: 20 bytes per parameter, +8 for each of
/// μ (centered) and b (momentum). It and <see cref="Chain.Update"/> leave the same
/// <see cref="ChainState"/>, so a run may switch between them.</para>
/// </remarks>
public sealed class RmsProp : INamedChain
{
    /// <summary>Creates RMSProp; hyperparameters are checked here, as PyTorch's constructor does.</summary>
    /// <param name="learningRate">lr, at least 0, or a schedule. Null: 1e-2.</param>
    /// <param name="alpha">Smoothing constant α in [0, 1).</param>
    /// <param name="eps">eps, at least 0, outside the square root.</param>
    /// <param name="weightDecay">Coupled L2 coefficient λ, at least 0.</param>
    /// <param name="momentum">Momentum, at least 0, or a schedule. Null: 0 (no buffer).</param>
    /// <param name="centered">Normalize by the estimated variance of g.</param>
    public RmsProp(Schedule? learningRate = null, double alpha = 0.99, double eps = 1e-8, double weightDecay = 0, Schedule? momentum = null, bool centered = false)
    {
        LearningRate = learningRate ?? DefaultLearningRate;
        var rms = new ScaleByRms(alpha, eps, centered, momentum ?? 0.0);
        AdaptiveChecks.NonNegativeSchedule(nameof(RmsProp), "lr", LearningRate);
        rms.Validate(nameof(RmsProp));
        AdaptiveChecks.NonNegative(nameof(RmsProp), "weight_decay", weightDecay);
        Direction = rms;
        WeightDecay = weightDecay;
        IGradientTransformation[] children = weightDecay > 0
            ? [new AddDecayedWeights(weightDecay), rms, new ScaleByLearningRate(LearningRate)]
            : [rms, new ScaleByLearningRate(LearningRate)];
        Chain = new Chain(children) { Name = "rmsprop" };
    }

    /// <summary>PyTorch's default learning rate for RMSprop.</summary>
    public const double DefaultLearningRate = 1e-2;

    /// <inheritdoc/>
    public string Name => Chain.Name;

    /// <inheritdoc/>
    public Chain Chain { get; }

    /// <inheritdoc/>
    public bool Fused { get; init; } = true;

    /// <summary>The learning rate (schedule).</summary>
    public Schedule LearningRate { get; }

    /// <summary>Smoothing constant α.</summary>
    public double Alpha => Direction.Alpha;

    /// <summary>eps.</summary>
    public double Eps => Direction.Eps;

    /// <summary>Coupled L2 weight decay λ.</summary>
    public double WeightDecay { get; }

    /// <summary>Momentum (schedule).</summary>
    public Schedule Momentum => Direction.Momentum;

    /// <summary>Whether the centered variant is used.</summary>
    public bool Centered => Direction.Centered;

    private ScaleByRms Direction { get; }

    /// <inheritdoc/>
    public OptState Init(ParamTree parameters) => Chain.Init(parameters);

    /// <inheritdoc/>
    public UpdateResult Update(ParamTree grads, OptState state, ParamTree parameters, UpdateContext context) =>
        Chain.Update(grads, state, parameters, context);
}
