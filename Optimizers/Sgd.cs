namespace IlgpuTrain.Optimizers;

/// <summary>
/// Stochastic gradient descent with momentum, dampening, Nesterov and coupled weight decay:
/// PyTorch's <c>torch.optim.SGD</c>, as a chain of primitives with a fused one-launch step.
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
/// chain's structure, so the two paths can be mixed. See
/// https://pytorch.org/docs/1.13/generated/torch.optim.SGD.html.</para>
/// </remarks>
public sealed class Sgd : Chain, IFusedStep
{
    private readonly int _decayIndex;
    private readonly int _traceIndex;
    private readonly int _lrIndex;

    /// <summary>SGD with PyTorch's arguments.</summary>
    /// <param name="learningRate">lr, a schedule or a number, at least 0.</param>
    /// <param name="momentum">μ, a schedule or a number, at least 0; null means 0 (no momentum buffer).</param>
    /// <param name="dampening">τ.</param>
    /// <param name="weightDecay">Coupled weight decay λ, at least 0.</param>
    /// <param name="nesterov">Nesterov momentum (needs μ &gt; 0 and τ = 0).</param>
    /// <param name="weightDecayMask">Which parameters decay; null means all (PyTorch's default).</param>
    public Sgd(Schedule learningRate, Schedule? momentum = null, double dampening = 0, double weightDecay = 0, bool nesterov = false, ParamMask? weightDecayMask = null)
        : base(Build(learningRate, momentum, dampening, weightDecay, nesterov, weightDecayMask))
    {
        LearningRate = learningRate;
        Momentum = momentum ?? 0.0;
        Dampening = dampening;
        WeightDecay = weightDecay;
        Nesterov = nesterov;
        WeightDecayMask = weightDecayMask;
        _decayIndex = IndexOf<AddDecayedWeights>();
        _traceIndex = IndexOf<Trace>();
        _lrIndex = IndexOf<ScaleByLearningRate>();
    }

    /// <inheritdoc/>
    public override string Name => "sgd";

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
    public (ParamTree Parameters, OptState State) FusedStep(ParamTree parameters, ParamTree grads, OptState state, UpdateContext context)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(grads);
        var cs = Expect<ChainState>(state, this);
        if (cs.States.Count != Children.Count)
            throw new ArgumentException($"{Name}: the state has {cs.States.Count} parts but this optimizer has {Children.Count} transformations; use the state its Init made.", nameof(state));
        grads.Layout.RequireSame(parameters.Layout, Name);
        string consumer = Name + ".FusedStep";

        var decay = _decayIndex < 0 ? null : Expect<AddDecayedWeightsState>(cs.States[_decayIndex].State, Children[_decayIndex]);
        var traceOp = _traceIndex < 0 ? null : (Trace)Children[_traceIndex];
        var trace = _traceIndex < 0 ? null : Expect<TraceState>(cs.States[_traceIndex].State, traceOp!);
        var lrState = Expect<ScaleByLearningRateState>(cs.States[_lrIndex].State, Children[_lrIndex]);

        double lr = lrState.Schedule.At(lrState.Count);
        if (!double.IsFinite(lr))
            throw new InvalidOperationException($"{Name}: the schedule {lrState.Schedule} gave lr = {lr} at step {lrState.Count}; a learning rate must be finite.");
        double mu = trace is null ? 0 : traceOp!.MomentumAt(trace.Count);
        if (trace is not null)
            grads.Layout.RequireSame(trace.MomentumBuffer.Layout, Name);

        SgdUpdate.Step(
            parameters.Device.Kernels,
            parameters.Flat32,
            grads.Flat32,
            trace?.MomentumBuffer.Flat32 ?? default,
            decay?.Mask?.View ?? default,
            (float)lr,
            (float)WeightDecay,
            (float)mu,
            (float)Dampening,
            Nesterov,
            first: trace is { HasBuffer: false });

        var next = new List<(string, OptState)>(cs.States.Count);
        for (int i = 0; i < cs.States.Count; i++)
        {
            OptState s = i == _decayIndex ? new AddDecayedWeightsState(decay!.Mask)
                : i == _traceIndex ? Trace.Advance(trace!, mu, consumer)
                : new ScaleByLearningRateState(lrState.Count + 1, lr, lrState.Schedule);
            next.Add((Names[i], s));
        }
        cs.MarkConsumed(consumer);
        grads.Consume(consumer).Dispose();
        return (parameters.Consume(consumer), new ChainState(next));
    }

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

    private int IndexOf<T>()
        where T : IGradientTransformation
    {
        for (int i = 0; i < Children.Count; i++)
        {
            if (Children[i] is T)
                return i;
        }
        return -1;
    }
}
