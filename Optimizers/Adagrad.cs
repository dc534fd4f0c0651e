namespace IlgpuTrain.Optimizers;

/// <summary>
/// Adagrad with PyTorch's semantics (<c>torch.optim.Adagrad</c>): the chain
/// [<see cref="AddDecayedWeights"/>(weight_decay) when weight_decay &gt; 0, <see cref="ScaleByAdagrad"/>,
/// <see cref="ScaleByLearningRate"/>(lr, or <see cref="InverseTimeDecay"/>(lr, lr_decay))], with a
/// fused step that does all of it in one kernel launch.
/// </summary>
/// <remarks>
/// <para>t = count (0-based)</para>
/// <para>g ← g + λ·θ   (coupled L2 weight decay)</para>
/// <para>clr = lr / (1 + t·lr_decay)   (PyTorch: lr / (1 + (step − 1)·lr_decay), step 1-based)</para>
/// <para>s ← s + g²   (s starts at initial_accumulator_value)</para>
/// <para>θ ← θ − clr·g / (√s + eps)</para>
/// <para>Defaults: lr 1e-2, lr_decay 0, weight_decay 0, initial_accumulator_value 0, eps 1e-10
/// (https://pytorch.org/docs/1.13/generated/torch.optim.Adagrad.html; Duchi, Hazan and Singer,
/// 2011). lr may be a schedule when lr_decay is 0; with lr_decay the learning rate is the
/// InverseTimeDecay schedule, which <c>Find&lt;ScaleByLearningRateState&gt;()</c> shows.</para>
/// <para>The fused kernel reads θ, g, s and writes θ, s: 20 bytes per parameter. It and
/// <see cref="Chain.Update"/> leave the same <see cref="ChainState"/>, so a run may switch between them.</para>
/// </remarks>
public sealed class Adagrad : Chain, IFusedStep
{
    private readonly ScaleByAdagrad _adagrad;

    /// <summary>Creates Adagrad; hyperparameters are checked here, as PyTorch's constructor does.</summary>
    /// <param name="learningRate">lr, at least 0, or a schedule (constant when lrDecay &gt; 0). Null: 1e-2.</param>
    /// <param name="lrDecay">lr_decay, at least 0.</param>
    /// <param name="weightDecay">Coupled L2 coefficient λ, at least 0.</param>
    /// <param name="initialAccumulatorValue">Initial value of the sum of squares, at least 0.</param>
    /// <param name="eps">eps, at least 0, outside the square root.</param>
    public Adagrad(Schedule? learningRate = null, double lrDecay = 0, double weightDecay = 0, double initialAccumulatorValue = 0, double eps = 1e-10)
        : base(Build(learningRate ?? DefaultLearningRate, lrDecay, weightDecay, initialAccumulatorValue, eps))
    {
        _adagrad = Children.OfType<ScaleByAdagrad>().Single();
        LearningRate = learningRate ?? DefaultLearningRate;
        LrDecay = lrDecay;
        WeightDecay = weightDecay;
    }

    /// <summary>PyTorch's default learning rate for Adagrad.</summary>
    public const double DefaultLearningRate = 1e-2;

    /// <inheritdoc/>
    public override string Name => "adagrad";

    /// <summary>The learning rate (schedule) before lr_decay.</summary>
    public Schedule LearningRate { get; }

    /// <summary>lr_decay.</summary>
    public double LrDecay { get; }

    /// <summary>Coupled L2 weight decay λ.</summary>
    public double WeightDecay { get; }

    /// <summary>Initial value of the sum of squares.</summary>
    public double InitialAccumulatorValue => _adagrad.InitialAccumulatorValue;

    /// <summary>eps.</summary>
    public double Eps => _adagrad.Eps;

    /// <inheritdoc/>
    public bool Fused { get; init; } = true;

    /// <inheritdoc/>
    public (ParamTree Parameters, OptState State) FusedStep(ParamTree parameters, ParamTree grads, OptState state, UpdateContext context)
    {
        var cs = AdaptiveFused.Begin(this, parameters, grads, state);
        var decay = WeightDecay > 0 ? AdaptiveFused.Child<AddDecayedWeightsState>(this, cs, "add_decayed_weights") : null;
        var adagrad = AdaptiveFused.Child<ScaleByAdagradState>(this, cs, _adagrad.Name);
        var lrState = AdaptiveFused.Child<ScaleByLearningRateState>(this, cs, "scale_by_learning_rate");
        parameters.Layout.RequireSame(adagrad.Sum.Layout, Name);
        double lr = AdaptiveFused.LearningRate(this, lrState);
        AdagradUpdate.Step(parameters.Device.Kernels, parameters.Flat32, grads.Flat32, adagrad.Sum.Flat32, (float)lr, (float)WeightDecay, (float)Eps);
        var next = new List<OptState>(3);
        if (decay is not null)
            next.Add(new AddDecayedWeightsState(decay.Mask));
        next.Add(adagrad.Advance(AdaptiveFused.Consumer(this)));
        next.Add(new ScaleByLearningRateState(lrState.Count + 1, lr, lrState.Schedule));
        return AdaptiveFused.Finish(this, parameters, grads, cs, next);
    }

    private static IGradientTransformation[] Build(Schedule lr, double lrDecay, double weightDecay, double initialAccumulatorValue, double eps)
    {
        var adagrad = new ScaleByAdagrad(initialAccumulatorValue, eps);
        AdaptiveChecks.NonNegativeSchedule(nameof(Adagrad), "lr", lr);
        AdaptiveChecks.NonNegative(nameof(Adagrad), "lr_decay", lrDecay);
        AdaptiveChecks.NonNegative(nameof(Adagrad), "weight_decay", weightDecay);
        adagrad.Validate(nameof(Adagrad));
        Schedule schedule = lr;
        if (lrDecay > 0)
        {
            schedule = lr is Constant c
                ? new InverseTimeDecay(c.Value, lrDecay)
                : throw new ArgumentException($"Adagrad: lr_decay {lrDecay} needs a constant lr, but lr is the schedule {lr}; fold the decay into the schedule and pass lrDecay 0.", nameof(lrDecay));
        }
        return weightDecay > 0
            ? [new AddDecayedWeights(weightDecay), adagrad, new ScaleByLearningRate(schedule)]
            : [adagrad, new ScaleByLearningRate(schedule)];
    }
}
