namespace IlgpuTrain.Optimizers;

/// <summary>
/// Adagrad with PyTorch's semantics (<c>torch.optim.Adagrad</c>): the chain
/// [<see cref="AddDecayedWeights"/>(weight_decay) when weight_decay &gt; 0, <see cref="ScaleByAdagrad"/>,
/// <see cref="ScaleByLearningRate"/>(lr, or <see cref="InverseTimeDecay"/>(lr, lr_decay))], which
/// <see cref="Optimizer.Step"/> runs as one kernel launch (<see cref="FusionPlan"/>).
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
public sealed class Adagrad : INamedChain
{
    /// <summary>Creates Adagrad; hyperparameters are checked here, as PyTorch's constructor does.</summary>
    /// <param name="learningRate">lr, at least 0, or a schedule (constant when lrDecay &gt; 0). Null: 1e-2.</param>
    /// <param name="lrDecay">lr_decay, at least 0.</param>
    /// <param name="weightDecay">Coupled L2 coefficient λ, at least 0.</param>
    /// <param name="initialAccumulatorValue">Initial value of the sum of squares, at least 0.</param>
    /// <param name="eps">eps, at least 0, outside the square root.</param>
    public Adagrad(Schedule? learningRate = null, double lrDecay = 0, double weightDecay = 0, double initialAccumulatorValue = 0, double eps = 1e-10)
    {
        LearningRate = learningRate ?? DefaultLearningRate;
        LrDecay = lrDecay;
        WeightDecay = weightDecay;
        Chain = new Chain(Build(LearningRate, lrDecay, weightDecay, initialAccumulatorValue, eps)) { Name = "adagrad" };
        Direction = Chain.Children.OfType<ScaleByAdagrad>().Single();
    }

    /// <summary>PyTorch's default learning rate for Adagrad.</summary>
    public const double DefaultLearningRate = 1e-2;

    /// <inheritdoc/>
    public string Name => Chain.Name;

    /// <inheritdoc/>
    public Chain Chain { get; }

    /// <inheritdoc/>
    public bool Fused { get; init; } = true;

    /// <summary>The learning rate (schedule) before lr_decay.</summary>
    public Schedule LearningRate { get; }

    /// <summary>lr_decay.</summary>
    public double LrDecay { get; }

    /// <summary>Coupled L2 weight decay λ.</summary>
    public double WeightDecay { get; }

    /// <summary>Initial value of the sum of squares.</summary>
    public double InitialAccumulatorValue => Direction.InitialAccumulatorValue;

    /// <summary>eps.</summary>
    public double Eps => Direction.Eps;

    private ScaleByAdagrad Direction { get; }

    /// <inheritdoc/>
    public OptState Init(ParamTree parameters) => Chain.Init(parameters);

    /// <inheritdoc/>
    public UpdateResult Update(ParamTree grads, OptState state, ParamTree parameters, UpdateContext context) =>
        Chain.Update(grads, state, parameters, context);

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
