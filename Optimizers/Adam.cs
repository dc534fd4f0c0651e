namespace IlgpuTrain.Optimizers;

/// <summary>
/// Adam with PyTorch's semantics (<c>torch.optim.Adam</c>): the chain
/// [<see cref="AddDecayedWeights"/>(weight_decay) when weight_decay &gt; 0, <see cref="ScaleByAdam"/>,
/// <see cref="ScaleByLearningRate"/>(lr)], with a fused step that does all of it in one kernel launch.
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
/// (reads θ, g, m, v and writes θ, m, v: 28 bytes per parameter); <see cref="Chain.Update"/> runs
/// the chain. Both leave the same <see cref="ChainState"/> (same names, state types and counts),
/// so a run may switch between them.</para>
/// </remarks>
public sealed class Adam : Chain, IFusedStep, IClipFusedStep
{
    private readonly ScaleByAdam _adam;

    /// <summary>Creates Adam; hyperparameters are checked here, as PyTorch's constructor does.</summary>
    /// <param name="learningRate">lr, at least 0, or a schedule. Null: 1e-3.</param>
    /// <param name="beta1">β₁ (<c>betas[0]</c>) in [0, 1), or a schedule. Null: 0.9.</param>
    /// <param name="beta2">β₂ (<c>betas[1]</c>) in [0, 1).</param>
    /// <param name="eps">eps, at least 0, outside the square root.</param>
    /// <param name="weightDecay">Coupled L2 coefficient λ, at least 0.</param>
    /// <param name="amsgrad">Use AMSGrad (PyTorch's form).</param>
    public Adam(Schedule? learningRate = null, Schedule? beta1 = null, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0, bool amsgrad = false)
        : base(Build(learningRate ?? DefaultLearningRate, beta1 ?? 0.9, beta2, eps, weightDecay, amsgrad))
    {
        _adam = Children.OfType<ScaleByAdam>().Single();
        LearningRate = learningRate ?? DefaultLearningRate;
        WeightDecay = weightDecay;
    }

    /// <summary>PyTorch's default learning rate for Adam.</summary>
    public const double DefaultLearningRate = 1e-3;

    /// <inheritdoc/>
    public override string Name => "adam";

    /// <summary>The learning rate (schedule).</summary>
    public Schedule LearningRate { get; }

    /// <summary>β₁ (schedule).</summary>
    public Schedule Beta1 => _adam.B1;

    /// <summary>β₂.</summary>
    public double Beta2 => _adam.B2;

    /// <summary>eps.</summary>
    public double Eps => _adam.Eps;

    /// <summary>Coupled L2 weight decay λ.</summary>
    public double WeightDecay { get; }

    /// <summary>Whether AMSGrad is used.</summary>
    public bool Amsgrad => _adam.Amsgrad;

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
        var decay = WeightDecay > 0 ? AdaptiveFused.Child<AddDecayedWeightsState>(this, cs, "add_decayed_weights") : null;
        var adam = AdaptiveFused.Child<ScaleByAdamState>(this, cs, _adam.Name);
        var lrState = AdaptiveFused.Child<ScaleByLearningRateState>(this, cs, "scale_by_learning_rate");
        parameters.Layout.RequireSame(adam.Mu.Layout, Name);
        double lr = AdaptiveFused.LearningRate(this, lrState);
        var scalars = new AdamStepScalars(_adam.ScalarsAt(adam.Count), (float)lr, (float)WeightDecay, DecayFactor: 1f);
        AdamUpdate.Step(parameters.Device.Kernels, parameters.Flat32, grads.Flat32, adam.Mu.Flat32, adam.Nu.Flat32, adam.NuMax?.Flat32 ?? default, default, scalars, clipNorm, maxNorm);
        var next = new List<OptState>(3);
        if (decay is not null)
            next.Add(new AddDecayedWeightsState(decay.Mask));
        next.Add(adam.Advance(AdaptiveFused.Consumer(this)));
        next.Add(new ScaleByLearningRateState(lrState.Count + 1, lr, lrState.Schedule));
        return AdaptiveFused.Finish(this, parameters, grads, cs, next);
    }

    private static IGradientTransformation[] Build(Schedule lr, Schedule beta1, double beta2, double eps, double weightDecay, bool amsgrad)
    {
        var adam = new ScaleByAdam(beta1, beta2, eps, epsRoot: 0, amsgrad);
        AdaptiveChecks.NonNegativeSchedule(nameof(Adam), "lr", lr);
        adam.Validate(nameof(Adam));
        AdaptiveChecks.NonNegative(nameof(Adam), "weight_decay", weightDecay);
        return weightDecay > 0
            ? [new AddDecayedWeights(weightDecay), adam, new ScaleByLearningRate(lr)]
            : [adam, new ScaleByLearningRate(lr)];
    }
}

/// <summary>
/// What the fused steps of the adaptive aliases share: checks made before anything is consumed,
/// typed child states by name, and the hand-over of buffers to the new <see cref="ChainState"/>.
/// </summary>
internal static class AdaptiveFused
{
    /// <summary>The name old values are marked consumed by.</summary>
    public static string Consumer(Chain chain) => chain.Name + ".FusedStep";

    /// <summary>Checks the arguments and returns the chain's state; consumes nothing.</summary>
    public static ChainState Begin(Chain chain, ParamTree parameters, ParamTree grads, OptState state)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(grads);
        var cs = Chain.Expect<ChainState>(state, chain);
        if (!cs.States.Select(c => c.Name).SequenceEqual(chain.Names))
        {
            throw new ArgumentException(
                $"{chain.Name}: the state holds [{string.Join(", ", cs.States.Select(c => c.Name))}] but this optimizer is the chain [{string.Join(", ", chain.Names)}]; pass the state its Init (or previous step) returned.",
                nameof(state));
        }
        grads.Layout.RequireSame(parameters.Layout, chain.Name);
        return cs;
    }

    /// <summary>The child state named <paramref name="name"/>, checked to be a live <typeparamref name="T"/>.</summary>
    public static T Child<T>(Chain chain, ChainState cs, string name)
        where T : OptState
    {
        int i = chain.Names.ToList().IndexOf(name);
        return Chain.Expect<T>(cs.States[i].State, chain.Children[i]);
    }

    /// <summary>The learning rate of this update, read as <see cref="ScaleByLearningRate"/> reads it.</summary>
    public static double LearningRate(Chain chain, ScaleByLearningRateState s)
    {
        double lr = s.Schedule.At(s.Count);
        if (!double.IsFinite(lr))
            throw new InvalidOperationException($"{chain.Name}: the schedule {s.Schedule} gave lr = {lr} at step {s.Count}; a learning rate must be finite.");
        return lr;
    }

    /// <summary>Consumes the old state, the gradients and the parameters (whose buffer holds the result).</summary>
    public static (ParamTree Parameters, OptState State) Finish(Chain chain, ParamTree parameters, ParamTree grads, ChainState old, IReadOnlyList<OptState> next)
    {
        string by = Consumer(chain);
        old.MarkConsumed(by);
        grads.Consume(by).Dispose();
        return (parameters.Consume(by), new ChainState(chain.Names.Zip(next).ToList()));
    }
}
