namespace IlgpuTrain.Optimizers;

/// <summary>
/// Stochastic gradient descent with momentum, dampening, Nesterov and coupled weight decay:
/// PyTorch's <c>torch.optim.SGD</c>, as a chain of primitives that <see cref="Optimizer.Step"/> runs
/// as one kernel launch (<see cref="FusionPlan"/>).
/// </summary>
/// <remarks>
/// <para>g ← g + λ·θ                           (coupled L2, if weight_decay λ &gt; 0)</para>
/// <para>b₁ = g;  b_t = μ·b_{t−1} + (1 − τ)·g     (if momentum μ &gt; 0; see <see cref="Trace"/>)</para>
/// <para>g ← g + μ·b_t (Nesterov)  or  g ← b_t</para>
/// <para>θ ← θ − lr(t)·g</para>
/// <para>The chain: [<see cref="AddDecayedWeights"/>(λ) if λ &gt; 0, <see cref="Trace"/>(μ, τ,
/// nesterov) unless μ is the constant 0, <see cref="ScaleByLearningRate"/>(lr)]. The learning
/// rate has no default (PyTorch requires it); momentum 0, dampening 0, weight_decay 0,
/// nesterov false. Learning rate and momentum are schedules read at the update count before it
/// is incremented (so OneCycle can cycle both). Nesterov requires μ &gt; 0 and τ = 0.</para>
/// <para><see cref="Optimizer.Step"/> runs the whole update as one kernel launch
/// (<see cref="SgdUpdate.Step"/>) while <see cref="Fused"/> is true; its state has exactly the
/// chain's structure, so the two paths can be mixed. A hand-built chain of the same primitives
/// gets the same launch. See
/// https://pytorch.org/docs/1.13/generated/torch.optim.SGD.html.</para>
/// </remarks>
public sealed class Sgd : INamedChain
{
    /// <summary>SGD with PyTorch's arguments.</summary>
    /// <param name="learningRate">lr, a schedule or a number, at least 0.</param>
    /// <param name="momentum">μ, a schedule or a number, at least 0; null means 0 (no momentum buffer).</param>
    /// <param name="dampening">τ.</param>
    /// <param name="weightDecay">Coupled weight decay λ, at least 0.</param>
    /// <param name="nesterov">Nesterov momentum (needs μ &gt; 0 and τ = 0).</param>
    /// <param name="weightDecayMask">Which parameters decay; null means all (PyTorch's default).</param>
    public Sgd(Schedule learningRate, Schedule? momentum = null, double dampening = 0, double weightDecay = 0, bool nesterov = false, ParamMask? weightDecayMask = null)
    {
        Chain = new Chain(Build(learningRate, momentum, dampening, weightDecay, nesterov, weightDecayMask)) { Name = "sgd" };
        LearningRate = learningRate;
        Momentum = momentum ?? 0.0;
        Dampening = dampening;
        WeightDecay = weightDecay;
        Nesterov = nesterov;
        WeightDecayMask = weightDecayMask;
    }

    /// <inheritdoc/>
    public string Name => Chain.Name;

    /// <inheritdoc/>
    public Chain Chain { get; }

    /// <summary>Whether <see cref="Optimizer.Step"/> runs the fused kernel (default true); false forces the chain.</summary>
    public bool Fused { get; init; } = true;

    /// <summary>The learning-rate schedule.</summary>
    public Schedule LearningRate { get; }

    /// <summary>The momentum schedule (the constant 0 when there is none).</summary>
    public Schedule Momentum { get; }

    /// <summary>The dampening τ.</summary>
    public double Dampening { get; }

    /// <summary>The coupled weight decay λ.</summary>
    public double WeightDecay { get; }

    /// <summary>Whether the step direction is Nesterov's.</summary>
    public bool Nesterov { get; }

    /// <summary>Which parameters decay (null: all).</summary>
    public ParamMask? WeightDecayMask { get; }

    /// <summary>SGD with (heavy-ball) momentum, Optax's <c>sgd(lr, momentum)</c>.</summary>
    /// <param name="learningRate">lr.</param>
    /// <param name="momentum">μ (default 0.9).</param>
    /// <param name="weightDecay">Coupled weight decay λ.</param>
    /// <returns>The optimizer.</returns>
    public static Sgd WithMomentum(Schedule learningRate, double momentum = 0.9, double weightDecay = 0) =>
        new(learningRate, momentum, weightDecay: weightDecay);

    /// <summary>SGD with Nesterov momentum, Optax's <c>sgd(lr, momentum, nesterov=True)</c>.</summary>
    /// <param name="learningRate">lr.</param>
    /// <param name="momentum">μ (default 0.9), greater than 0.</param>
    /// <param name="weightDecay">Coupled weight decay λ.</param>
    /// <returns>The optimizer.</returns>
    public static Sgd WithNesterov(Schedule learningRate, double momentum = 0.9, double weightDecay = 0) =>
        new(learningRate, momentum, weightDecay: weightDecay, nesterov: true);

    /// <inheritdoc/>
    public OptState Init(ParamTree parameters) => Chain.Init(parameters);

    /// <inheritdoc/>
    public UpdateResult Update(ParamTree grads, OptState state, ParamTree parameters, UpdateContext context) =>
        Chain.Update(grads, state, parameters, context);

    private static IGradientTransformation[] Build(Schedule learningRate, Schedule? momentum, double dampening, double weightDecay, bool nesterov, ParamMask? weightDecayMask)
    {
        ArgumentNullException.ThrowIfNull(learningRate);
        double lr0 = learningRate.At(0);
        if (!(lr0 >= 0) || double.IsInfinity(lr0))
            throw new ArgumentOutOfRangeException(nameof(learningRate), lr0, "Sgd: the learning rate must be finite and at least 0 (PyTorch: lr >= 0).");
        if (!(weightDecay >= 0) || double.IsInfinity(weightDecay))
            throw new ArgumentOutOfRangeException(nameof(weightDecay), weightDecay, "Sgd: weight_decay must be finite and at least 0 (PyTorch: weight_decay >= 0).");
        var trace = new Trace(momentum ?? 0.0, dampening, nesterov);
        trace.Validate();
        var list = new List<IGradientTransformation>(3);
        if (weightDecay > 0)
            list.Add(new AddDecayedWeights(weightDecay, weightDecayMask));
        if (momentum is not (null or Constant { Value: 0 }))
            list.Add(trace);
        list.Add(new ScaleByLearningRate(learningRate));
        return [.. list];
    }
}
