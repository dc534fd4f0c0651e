namespace IlgpuTrain.Optimizers;

/// <summary>The fused kernel that runs the tail of a <see cref="FusionPlan"/>.</summary>
public enum FusedKernel
{
    /// <summary>No kernel: the plan ends with ApplyUpdates or with a wrapper's own step.</summary>
    None,

    /// <summary><see cref="AdamUpdate.Step"/>: [clip by global norm] [coupled decay] Adam moments [decoupled decay] learning rate.</summary>
    Adam,

    /// <summary><see cref="SgdUpdate.Step"/>: [coupled decay] [momentum or Nesterov] learning rate.</summary>
    Sgd,

    /// <summary><see cref="RmsUpdate.Step"/>: [coupled decay without a mask] RMSProp moments learning rate.</summary>
    RmsProp,

    /// <summary><see cref="AdagradUpdate.Step"/>: [coupled decay without a mask] Adagrad sum learning rate.</summary>
    Adagrad,
}

/// <summary>How a <see cref="FusionPlan"/> ends.</summary>
public enum PlanTail
{
    /// <summary>Every transformation runs its Update, then the updates are added to the parameters.</summary>
    ApplyUpdates,

    /// <summary>The last transformations run as one launch of <see cref="FusionPlan.Kernel"/>, which writes the parameters.</summary>
    FusedKernel,

    /// <summary>The last transformation runs its own step (<see cref="IFusedStep"/>: MultiSteps, ApplyIfFinite, Masked), which hands its inner transformation to <see cref="Optimizer.Step"/>.</summary>
    OwnStep,
}

/// <summary>
/// What <see cref="Optimizer.Step"/> does with a transformation: which primitives run their own
/// Update, and which run together as one kernel launch. One planner for every optimizer: the named
/// optimizers (<see cref="AdamW"/>, <see cref="Sgd"/>, ...) are chains of primitives, and a
/// hand-built chain of the same primitives in the same order gets the same launch.
/// </summary>
/// <remarks>
/// <para>The transformation is flattened: a <see cref="Chain"/> and an <see cref="INamedChain"/>
/// are replaced by their children, recursively (unless their <c>Fused</c> is false, which keeps
/// them whole and generic). The planner then matches the longest tail of the flat list that a
/// kernel computes in one pass, reading the primitives by type and their states by type (never by
/// name), and runs everything before that tail through Update, in order:</para>
/// <para>Adam: [ClipByGlobalNorm] [AddDecayedWeights] ScaleByAdam [AddDecayedWeights] ScaleByLearningRate
/// (at most one of the two decays: the kernel has one mask; the first is PyTorch's coupled L2, the
/// second AdamW's decoupled decay; the clip must come first, as the kernel clips g before it adds λ·θ).</para>
/// <para>SGD: [AddDecayedWeights] [Trace] ScaleByLearningRate (a bare learning rate is plain SGD).</para>
/// <para>RMSProp: [AddDecayedWeights without a mask] ScaleByRms ScaleByLearningRate.</para>
/// <para>Adagrad: [AddDecayedWeights without a mask] ScaleByAdagrad ScaleByLearningRate.</para>
/// <para>The learning rate must descend (<see cref="ScaleByLearningRate.FlipSign"/>). A primitive
/// that a kernel cannot take (a masked decay before RMSProp, a ClipByValue, a clip before SGD) stays
/// in the generic part, so the math never changes, only the number of passes. Fused and generic
/// steps leave the same state (same records, counts and buffers), so they can be mixed.</para>
/// <para>Wrappers: a last transformation that steps itself (<see cref="IFusedStep"/> with Fused on)
/// runs that step. <see cref="MultiSteps"/> accumulates, and on the micro-step that applies runs
/// <see cref="Optimizer.Step"/> of its inner transformation, so the inner plan (<see cref="Inner"/>)
/// runs fused. <see cref="ApplyIfFinite"/> does the same on the steps it accepts.</para>
/// <para><see cref="Masked"/> as the last transformation steps itself too: it gathers the selected
/// parameters and gradients into a packed copy, runs <see cref="Optimizer.Step"/> of its inner
/// transformation there (so the inner plan, <see cref="Inner"/>, runs fused), adds the passed-through
/// gradients to the other parameters and scatters the stepped ones back. <see cref="Freeze.AllExcept"/>'s
/// pair, a Masked followed by a Freeze of the complement of its mask (what a trainer with
/// <c>Trainable</c> steps), runs as one such step that leaves the other parameters' bits alone.
/// A Masked that any other transformation follows must hand its updates on, so it runs Update and
/// its inner chain runs primitive by primitive; <see cref="Notes"/> says so.</para>
/// </remarks>
public sealed class FusionPlan
{
    /// <summary>The reason recorded in <see cref="Notes"/> for a <see cref="Masked"/> transformation that does not step itself.</summary>
    public const string MaskedReason =
        "generic here: a transformation after Masked (or Fused = false) needs its updates, so Masked runs Update and its inner chain runs primitive by primitive on the packed copy of the selected parameters; as the last transformation it would run its inner plan";

    private readonly Node _root;
    private readonly IGradientTransformation[] _leaves;
    private readonly int _fusedStart;
    private readonly FusedGroup? _group;
    private readonly bool _freezesOthers;

    private FusionPlan(IGradientTransformation transformation)
    {
        Transformation = transformation;
        var leaves = new List<IGradientTransformation>();
        _root = Flatten(transformation, leaves);
        _leaves = [.. leaves];
        _group = Recognize(_leaves);
        var notes = new List<string>();
        // Freeze.AllExcept: Masked(inner, m) then Freeze(m.Not()) is inner's step on the parameters
        // m selects, the others untouched; the Masked steps itself without passing gradients through.
        _freezesOthers = _group is null && _leaves.Length > 1 && _leaves[^2] is Masked { Fused: true, Mask: { } kept } && _leaves[^1] is Freeze { Mask: { } frozen } && frozen.IsComplementOf(kept);
        for (int i = 0; i < _leaves.Length; i++)
        {
            // The last Masked with Fused on steps itself (OwnStep below); any other runs Update.
            if (_leaves[i] is Masked m && !(m.Fused && (i == _leaves.Length - 1 || (_freezesOthers && i == _leaves.Length - 2))))
                notes.Add($"{m.Name}({m.Inner?.Name}): {MaskedReason}");
        }
        Notes = notes;

        if (_group is not null)
        {
            Tail = PlanTail.FusedKernel;
            _fusedStart = _leaves.Length - _group.Roles.Count;
        }
        else if (_freezesOthers)
        {
            Tail = PlanTail.OwnStep;
            _fusedStart = _leaves.Length - 2;
        }
        else if (_leaves.Length > 0 && _leaves[^1] is IFusedStep { Fused: true } own)
        {
            Tail = PlanTail.OwnStep;
            _fusedStart = _leaves.Length - 1;
        }
        else
        {
            Tail = PlanTail.ApplyUpdates;
            _fusedStart = _leaves.Length;
        }
        Generic = _leaves[.._fusedStart].Select(l => l.Name).ToArray();
        Fused = _leaves[_fusedStart..].Select(l => l.Name).ToArray();
    }

    /// <summary>The transformation this plan is for.</summary>
    public IGradientTransformation Transformation { get; }

    /// <summary>The kernel that runs the tail (<see cref="FusedKernel.None"/> unless <see cref="Tail"/> is <see cref="PlanTail.FusedKernel"/>).</summary>
    public FusedKernel Kernel => _group?.Kernel ?? FusedKernel.None;

    /// <summary>How the step ends.</summary>
    public PlanTail Tail { get; }

    /// <summary>The names of the flattened transformations that run their own Update, in order.</summary>
    public IReadOnlyList<string> Generic { get; }

    /// <summary>The names of the transformations in the fused launch (or the one that runs its own step), in order.</summary>
    public IReadOnlyList<string> Fused { get; }

    /// <summary>What each transformation in the fused launch contributes (e.g. "clip", "decoupled decay", "adam moments", "learning rate"); empty without a kernel.</summary>
    public IReadOnlyList<string> Roles => _group?.Roles ?? [];

    /// <summary>For a tail that steps itself (<see cref="MultiSteps"/>, <see cref="ApplyIfFinite"/>, <see cref="Masked"/>): the plan of its inner transformation, which runs on the steps that apply (for Masked, on the packed selected parameters).</summary>
    public FusionPlan? Inner => Tail != PlanTail.OwnStep ? null : _leaves[_fusedStart] switch
    {
        MultiSteps { Inner: { } inner } => For(inner),
        ApplyIfFinite { Inner: { } inner } => For(inner),
        Masked { Inner: { } inner } => For(inner),
        _ => null,
    };

    /// <summary>Transformations that run generic where a reader might expect a fused step, with the reason (one per <see cref="Masked"/> that does not step itself).</summary>
    public IReadOnlyList<string> Notes { get; }

    /// <summary>The plan for <paramref name="transformation"/> (cheap: a walk over its children; nothing is launched).</summary>
    /// <param name="transformation">The optimizer.</param>
    /// <returns>The plan.</returns>
    public static FusionPlan For(IGradientTransformation transformation)
    {
        ArgumentNullException.ThrowIfNull(transformation);
        return new FusionPlan(transformation);
    }

    /// <summary>
    /// One line, e.g. <c>update [clip_by_value] then fused adam kernel [scale_by_adam (adam moments),
    /// add_decayed_weights (decoupled decay), scale_by_learning_rate (learning rate)]</c>.
    /// </summary>
    /// <returns>The description.</returns>
    public string Describe()
    {
        string prefix = Generic.Count == 0 ? string.Empty : $"update [{string.Join(", ", Generic)}] then ";
        string tail = Tail switch
        {
            PlanTail.FusedKernel => $"fused {Kernel.ToString().ToLowerInvariant()} kernel [{string.Join(", ", Fused.Zip(Roles, (n, r) => $"{n} ({r})"))}]",
            PlanTail.OwnStep => $"{string.Join(" + ", Fused)} step{(Inner is null ? string.Empty : $" of ({Inner.Describe()})")}",
            _ => "apply_updates",
        };
        return prefix + tail + string.Concat(Notes.Select(n => "; " + n));
    }

    /// <inheritdoc/>
    public override string ToString() => Describe();

    /// <summary>Runs one step by this plan. Consumes parameters, gradients and state.</summary>
    /// <param name="parameters">Parameters. Consumed: the result reuses their buffer.</param>
    /// <param name="grads">Gradients. Consumed.</param>
    /// <param name="state">The state the transformation's Init (or its previous step) returned. Consumed.</param>
    /// <param name="context">Extras.</param>
    /// <returns>New parameters and state.</returns>
    internal (ParamTree Parameters, OptState State) Step(ParamTree parameters, ParamTree grads, OptState state, UpdateContext context)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(grads);
        ArgumentNullException.ThrowIfNull(state);
        if (_root is Leaf && Tail == PlanTail.ApplyUpdates)
        {
            var (updates, next) = Transformation.Update(grads, state, parameters, context);
            using (updates)
                return (parameters.ApplyUpdates(updates), next);
        }

        string name = Transformation.Name;
        grads.Layout.RequireSame(parameters.Layout, name);
        var old = new List<OptState>(_leaves.Length);
        Extract(_root, state, old);
        // Everything that can throw on a bad state or hyperparameter runs before anything is consumed.
        var launch = _group?.Prepare(old.GetRange(_fusedStart, _leaves.Length - _fusedStart), parameters, name);

        var fresh = new OptState[_leaves.Length];
        var g = grads;
        for (int i = 0; i < _fusedStart; i++)
        {
            var (u, s) = _leaves[i].Update(g, old[i], parameters, context);
            g = u;
            fresh[i] = s;
        }

        ParamTree result;
        string consumer = name + (Tail == PlanTail.FusedKernel ? ".FusedStep" : ".Step");
        switch (Tail)
        {
            case PlanTail.FusedKernel:
                var states = launch!(parameters, g, consumer);
                states.CopyTo(fresh, _fusedStart);
                g.Consume(consumer).Dispose();
                result = parameters.Consume(consumer);
                break;
            case PlanTail.OwnStep when _freezesOthers:
                var frozen = Chain.Expect<FreezeState>(old[^1], _leaves[^1]);
                g.Layout.RequireSame(frozen.Plan.Layout, _leaves[^1].Name);
                (result, fresh[^2]) = ((Masked)_leaves[^2]).Step(parameters, g, old[^2], context, passThrough: false);
                frozen.MarkConsumed(consumer);
                fresh[^1] = new FreezeState(frozen.Plan);
                break;
            case PlanTail.OwnStep:
                (result, fresh[^1]) = ((IFusedStep)_leaves[^1]).FusedStep(parameters, g, old[^1], context);
                break;
            default:
                using (g)
                    result = parameters.ApplyUpdates(g);
                break;
        }

        int k = 0;
        var rebuilt = Rebuild(_root, state, fresh, ref k);
        // A leaf's own update marks its state; the chains around it are marked here.
        if (_root is ChainNode)
            state.MarkConsumed(consumer);
        return (result, rebuilt);
    }

    // ---- flattening: the transformation as a tree of chains over leaves ----

    private abstract record Node;

    private sealed record Leaf(int Index) : Node;

    private sealed record ChainNode(Chain Chain, Node[] Children) : Node;

    private static Node Flatten(IGradientTransformation t, List<IGradientTransformation> leaves)
    {
        var chain = t switch
        {
            Chain { Fused: true } c => c,
            INamedChain { Fused: true } named => named.Chain,
            _ => null,
        };
        if (chain is null || !chain.Fused)
        {
            leaves.Add(t);
            return new Leaf(leaves.Count - 1);
        }
        return new ChainNode(chain, chain.Children.Select(c => Flatten(c, leaves)).ToArray());
    }

    private static void Extract(Node node, OptState state, List<OptState> leaves)
    {
        if (node is not ChainNode c)
        {
            leaves.Add(state);
            return;
        }
        var cs = Chain.Expect<ChainState>(state, c.Chain);
        if (!cs.States.Select(x => x.Name).SequenceEqual(c.Chain.Names))
        {
            throw new ArgumentException(
                $"{c.Chain.Name}: the state holds [{string.Join(", ", cs.States.Select(x => x.Name))}] but this chain is [{string.Join(", ", c.Chain.Names)}]; pass the state its Init (or previous step) returned.",
                nameof(state));
        }
        for (int i = 0; i < c.Children.Length; i++)
            Extract(c.Children[i], cs.States[i].State, leaves);
    }

    private static OptState Rebuild(Node node, OptState old, OptState[] fresh, ref int k)
    {
        if (node is not ChainNode c)
            return fresh[k++];
        var cs = (ChainState)old;
        var next = new List<(string, OptState)>(c.Children.Length);
        for (int i = 0; i < c.Children.Length; i++)
            next.Add((c.Chain.Names[i], Rebuild(c.Children[i], cs.States[i].State, fresh, ref k)));
        return new ChainState(next);
    }

    // ---- recognizing the fused tail ----

    private static FusedGroup? Recognize(IGradientTransformation[] l)
    {
        int n = l.Length;
        if (n == 0 || l[^1] is not ScaleByLearningRate { FlipSign: true } lr)
            return null;
        T? At<T>(int i)
            where T : class, IGradientTransformation => i >= 0 ? l[i] as T : null;

        int s = n - 1;
        var adam = At<ScaleByAdam>(s - 1);
        AddDecayedWeights? decoupled = null;
        if (adam is null && At<AddDecayedWeights>(s - 1) is { } after && At<ScaleByAdam>(s - 2) is { } before)
        {
            (decoupled, adam) = (after, before);
            s--;
        }
        if (adam is not null)
        {
            s--;
            var coupled = decoupled is null ? At<AddDecayedWeights>(s - 1) : null;
            if (coupled is not null)
                s--;
            var clip = At<ClipByGlobalNorm>(s - 1);
            return new AdamGroup(clip, coupled, adam, decoupled, lr);
        }

        if (At<ScaleByRms>(s - 1) is { } rms)
            return new RmsGroup(At<AddDecayedWeights>(s - 2) is { Mask: null } d ? d : null, rms, lr);
        if (At<ScaleByAdagrad>(s - 1) is { } adagrad)
            return new AdagradGroup(At<AddDecayedWeights>(s - 2) is { Mask: null } d ? d : null, adagrad, lr);

        var trace = At<Trace>(s - 1);
        if (trace is not null)
            s--;
        return new SgdGroup(At<AddDecayedWeights>(s - 1), trace, lr);
    }

    // One launch: checks and scalars first (Prepare consumes nothing), then the launch, which
    // returns the group's new states and marks the old ones consumed.
    private delegate OptState[] Launch(ParamTree parameters, ParamTree grads, string consumer);

    private abstract class FusedGroup
    {
        public abstract FusedKernel Kernel { get; }

        public abstract IReadOnlyList<string> Roles { get; }

        public abstract Launch Prepare(IReadOnlyList<OptState> states, ParamTree parameters, string name);

        protected static double LearningRate(string name, ScaleByLearningRateState s)
        {
            double lr = s.Schedule.At(s.Count);
            if (!double.IsFinite(lr))
                throw new InvalidOperationException($"{name}: the schedule {s.Schedule} gave lr = {lr} at step {s.Count}; a learning rate must be finite.");
            return lr;
        }

        protected static ScaleByLearningRateState NextLearningRate(ScaleByLearningRateState s, double lr, string consumer)
        {
            s.MarkConsumed(consumer);
            return new ScaleByLearningRateState(s.Count + 1, lr, s.Schedule);
        }

        protected static AddDecayedWeightsState? NextDecay(AddDecayedWeightsState? s, string consumer)
        {
            s?.MarkConsumed(consumer);
            return s is null ? null : new AddDecayedWeightsState(s.Mask);
        }

        protected static OptState[] Present(params OptState?[] states) => states.OfType<OptState>().ToArray();
    }

    private sealed class AdamGroup(ClipByGlobalNorm? clip, AddDecayedWeights? coupled, ScaleByAdam adam, AddDecayedWeights? decoupled, ScaleByLearningRate lr) : FusedGroup
    {
        public override FusedKernel Kernel => FusedKernel.Adam;

        public override IReadOnlyList<string> Roles { get; } =
            new[] { clip is null ? null : "clip", coupled is null ? null : "coupled decay", "adam moments", decoupled is null ? null : "decoupled decay", "learning rate" }.OfType<string>().ToArray();

        public override Launch Prepare(IReadOnlyList<OptState> states, ParamTree parameters, string name)
        {
            int k = 0;
            var clipS = clip is null ? null : Chain.Expect<ClipByGlobalNormState>(states[k++], clip);
            var coupledS = coupled is null ? null : Chain.Expect<AddDecayedWeightsState>(states[k++], coupled);
            var adamS = Chain.Expect<ScaleByAdamState>(states[k++], adam);
            var decoupledS = decoupled is null ? null : Chain.Expect<AddDecayedWeightsState>(states[k++], decoupled);
            var lrS = Chain.Expect<ScaleByLearningRateState>(states[k], lr);
            parameters.Layout.RequireSame(adamS.Mu.Layout, name);
            double rate = LearningRate(name, lrS);
            // Decoupled: 1 - lr * lambda in float64, rounded once, as PyTorch's param.mul_(1 - lr * weight_decay).
            var scalars = new AdamStepScalars(
                adam.ScalarsAt(adamS.Count),
                (float)rate,
                WeightDecay: coupled is null ? 0f : (float)coupled.WeightDecay,
                DecayFactor: decoupled is null ? 1f : (float)(1 - (rate * decoupled.WeightDecay)));
            var mask = (coupledS ?? decoupledS)?.Mask?.View ?? default;
            return (p, g, consumer) =>
            {
                // The clip measures the norm into its state; the kernel scales g by it in its own pass.
                var clipNext = clip is null ? null : clip.Measure(g, clipS!);
                AdamUpdate.Step(p.Device.Kernels, p.Flat32, g.Flat32, adamS.Mu.Flat32, adamS.Nu.Flat32, adamS.NuMax?.Flat32 ?? default, mask, scalars, clipNext?.Norm.View<float>() ?? default, clip is null ? 0f : (float)clip.MaxNorm);
                var adamNext = adamS.Advance(consumer);
                adamS.MarkConsumed(consumer);
                return Present(clipNext, NextDecay(coupledS, consumer), adamNext, NextDecay(decoupledS, consumer), NextLearningRate(lrS, rate, consumer));
            };
        }
    }

    private sealed class SgdGroup(AddDecayedWeights? decay, Trace? trace, ScaleByLearningRate lr) : FusedGroup
    {
        public override FusedKernel Kernel => FusedKernel.Sgd;

        public override IReadOnlyList<string> Roles { get; } =
            new[] { decay is null ? null : "coupled decay", trace is null ? null : trace.Nesterov ? "nesterov momentum" : "momentum", "learning rate" }.OfType<string>().ToArray();

        public override Launch Prepare(IReadOnlyList<OptState> states, ParamTree parameters, string name)
        {
            int k = 0;
            var decayS = decay is null ? null : Chain.Expect<AddDecayedWeightsState>(states[k++], decay);
            var traceS = trace is null ? null : Chain.Expect<TraceState>(states[k++], trace);
            var lrS = Chain.Expect<ScaleByLearningRateState>(states[k], lr);
            double rate = LearningRate(name, lrS);
            double mu = traceS is null ? 0 : trace!.MomentumAt(traceS.Count);
            if (traceS is not null)
                parameters.Layout.RequireSame(traceS.MomentumBuffer.Layout, name);
            return (p, g, consumer) =>
            {
                SgdUpdate.Step(
                    p.Device.Kernels,
                    p.Flat32,
                    g.Flat32,
                    traceS?.MomentumBuffer.Flat32 ?? default,
                    decayS?.Mask?.View ?? default,
                    (float)rate,
                    (float)(decay?.WeightDecay ?? 0),
                    (float)mu,
                    (float)(trace?.Dampening ?? 0),
                    trace?.Nesterov ?? false,
                    first: traceS is { HasBuffer: false });
                var traceNext = traceS is null ? null : Trace.Advance(traceS, mu, consumer);
                return Present(NextDecay(decayS, consumer), traceNext, NextLearningRate(lrS, rate, consumer));
            };
        }
    }

    private sealed class RmsGroup(AddDecayedWeights? decay, ScaleByRms rms, ScaleByLearningRate lr) : FusedGroup
    {
        public override FusedKernel Kernel => FusedKernel.RmsProp;

        public override IReadOnlyList<string> Roles { get; } =
            new[] { decay is null ? null : "coupled decay", "rms moments", "learning rate" }.OfType<string>().ToArray();

        public override Launch Prepare(IReadOnlyList<OptState> states, ParamTree parameters, string name)
        {
            int k = 0;
            var decayS = decay is null ? null : Chain.Expect<AddDecayedWeightsState>(states[k++], decay);
            var rmsS = Chain.Expect<ScaleByRmsState>(states[k++], rms);
            var lrS = Chain.Expect<ScaleByLearningRateState>(states[k], lr);
            parameters.Layout.RequireSame(rmsS.Nu.Layout, name);
            double rate = LearningRate(name, lrS);
            var scalars = new RmsStepScalars(rms.ScalarsAt(rmsS.Count), (float)rate, (float)(decay?.WeightDecay ?? 0));
            return (p, g, consumer) =>
            {
                RmsUpdate.Step(p.Device.Kernels, p.Flat32, g.Flat32, rmsS.Nu.Flat32, rmsS.Mu?.Flat32 ?? default, rmsS.MomentumBuffer?.Flat32 ?? default, scalars);
                var rmsNext = rmsS.Advance(consumer);
                rmsS.MarkConsumed(consumer);
                return Present(NextDecay(decayS, consumer), rmsNext, NextLearningRate(lrS, rate, consumer));
            };
        }
    }

    private sealed class AdagradGroup(AddDecayedWeights? decay, ScaleByAdagrad adagrad, ScaleByLearningRate lr) : FusedGroup
    {
        public override FusedKernel Kernel => FusedKernel.Adagrad;

        public override IReadOnlyList<string> Roles { get; } =
            new[] { decay is null ? null : "coupled decay", "adagrad sum", "learning rate" }.OfType<string>().ToArray();

        public override Launch Prepare(IReadOnlyList<OptState> states, ParamTree parameters, string name)
        {
            int k = 0;
            var decayS = decay is null ? null : Chain.Expect<AddDecayedWeightsState>(states[k++], decay);
            var sumS = Chain.Expect<ScaleByAdagradState>(states[k++], adagrad);
            var lrS = Chain.Expect<ScaleByLearningRateState>(states[k], lr);
            parameters.Layout.RequireSame(sumS.Sum.Layout, name);
            double rate = LearningRate(name, lrS);
            return (p, g, consumer) =>
            {
                AdagradUpdate.Step(p.Device.Kernels, p.Flat32, g.Flat32, sumS.Sum.Flat32, (float)rate, (float)(decay?.WeightDecay ?? 0), (float)adagrad.Eps);
                var sumNext = sumS.Advance(consumer);
                sumS.MarkConsumed(consumer);
                return Present(NextDecay(decayS, consumer), sumNext, NextLearningRate(lrS, rate, consumer));
            };
        }
    }
}
