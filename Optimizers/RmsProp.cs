namespace IlgpuTrain.Optimizers;

/// <summary>
/// RMSProp with PyTorch's semantics (<c>torch.optim.RMSprop</c>): the chain
/// [<see cref="AddDecayedWeights"/>(weight_decay) when weight_decay &gt; 0, <see cref="ScaleByRms"/>,
/// <see cref="ScaleByLearningRate"/>(lr)], with a fused step that does all of it in one kernel launch.
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
public sealed class RmsProp : Chain, IFusedStep
{
    private readonly ScaleByRms _rms;

    /// <summary>Creates RMSProp; hyperparameters are checked here, as PyTorch's constructor does.</summary>
    /// <param name="learningRate">lr, at least 0, or a schedule. Null: 1e-2.</param>
    /// <param name="alpha">Smoothing constant α, at least 0.</param>
    /// <param name="eps">eps, at least 0, outside the square root.</param>
    /// <param name="weightDecay">Coupled L2 coefficient λ, at least 0.</param>
    /// <param name="momentum">Momentum, at least 0, or a schedule. Null: 0 (no buffer).</param>
    /// <param name="centered">Normalize by the estimated variance of g.</param>
    public RmsProp(Schedule? learningRate = null, double alpha = 0.99, double eps = 1e-8, double weightDecay = 0, Schedule? momentum = null, bool centered = false)
        : base(Build(learningRate ?? DefaultLearningRate, alpha, eps, weightDecay, momentum ?? 0.0, centered))
    {
        _rms = Children.OfType<ScaleByRms>().Single();
        LearningRate = learningRate ?? DefaultLearningRate;
        WeightDecay = weightDecay;
    }

    /// <summary>PyTorch's default learning rate for RMSprop.</summary>
    public const double DefaultLearningRate = 1e-2;

    /// <inheritdoc/>
    public override string Name => "rmsprop";

    /// <summary>The learning rate (schedule).</summary>
    public Schedule LearningRate { get; }

    /// <summary>Smoothing constant α.</summary>
    public double Alpha => _rms.Alpha;

    /// <summary>eps.</summary>
    public double Eps => _rms.Eps;

    /// <summary>Coupled L2 weight decay λ.</summary>
    public double WeightDecay { get; }

    /// <summary>Momentum (schedule).</summary>
    public Schedule Momentum => _rms.Momentum;

    /// <summary>Whether the centered variant is used.</summary>
    public bool Centered => _rms.Centered;

    /// <inheritdoc/>
    public bool Fused { get; init; } = true;

    /// <inheritdoc/>
    public (ParamTree Parameters, OptState State) FusedStep(ParamTree parameters, ParamTree grads, OptState state, UpdateContext context)
    {
        var cs = AdaptiveFused.Begin(this, parameters, grads, state);
        var decay = WeightDecay > 0 ? AdaptiveFused.Child<AddDecayedWeightsState>(this, cs, "add_decayed_weights") : null;
        var rms = AdaptiveFused.Child<ScaleByRmsState>(this, cs, _rms.Name);
        var lrState = AdaptiveFused.Child<ScaleByLearningRateState>(this, cs, "scale_by_learning_rate");
        parameters.Layout.RequireSame(rms.Nu.Layout, Name);
        double lr = AdaptiveFused.LearningRate(this, lrState);
        var scalars = new RmsStepScalars(_rms.ScalarsAt(rms.Count), (float)lr, (float)WeightDecay);
        RmsUpdate.Step(parameters.Device.Kernels, parameters.Flat32, grads.Flat32, rms.Nu.Flat32, rms.Mu?.Flat32 ?? default, rms.MomentumBuffer?.Flat32 ?? default, scalars);
        var next = new List<OptState>(3);
        if (decay is not null)
            next.Add(new AddDecayedWeightsState(decay.Mask));
        next.Add(rms.Advance(AdaptiveFused.Consumer(this)));
        next.Add(new ScaleByLearningRateState(lrState.Count + 1, lr, lrState.Schedule));
        return AdaptiveFused.Finish(this, parameters, grads, cs, next);
    }

    private static IGradientTransformation[] Build(Schedule lr, double alpha, double eps, double weightDecay, Schedule momentum, bool centered)
    {
        var rms = new ScaleByRms(alpha, eps, centered, momentum);
        AdaptiveChecks.NonNegativeSchedule(nameof(RmsProp), "lr", lr);
        rms.Validate(nameof(RmsProp));
        AdaptiveChecks.NonNegative(nameof(RmsProp), "weight_decay", weightDecay);
        return weightDecay > 0
            ? [new AddDecayedWeights(weightDecay), rms, new ScaleByLearningRate(lr)]
            : [rms, new ScaleByLearningRate(lr)];
    }
}
