using IlgpuTrain.Optimizers;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>
/// FusionPlan: which primitives run as one launch, for the named optimizers, for hand-built chains
/// of the same primitives, under MultiSteps and under Masked; and that the fused step is the chain.
/// </summary>
public class FusionPlanProperties
{
    // Fused against generic over a few steps: the kernels do the chain's float operations, fewer
    // stores and a different order in one or two places (p*(1 - lr*lambda) - lr*d against
    // p + (-lr)*(d + lambda*p); sqrt of the sum), so a rounding or two per step on values of order 1.
    private const double PathAtol = 1e-5;
    private const double PathRtol = 1e-5;

    private static readonly (int[] Shape, string Path)[] Small = [([4, 3], "0.weight"), ([4], "0.bias"), ([2, 4], "1.weight"), ([2], "1.bias")];

    /// <summary>A chain of primitives in one of the orders the planner knows, or one it has to split.</summary>
    /// <param name="Core">adam, rms, adagrad, momentum, nesterov or sgd (a bare learning rate).</param>
    /// <param name="GlobalClip">Start with ClipByGlobalNorm(0.5).</param>
    /// <param name="ValueClip">Then ClipByValue(-0.3, 0.3) (never fused).</param>
    /// <param name="Coupled">AddDecayedWeights before the core (PyTorch's L2), or none.</param>
    /// <param name="Decoupled">AddDecayedWeights after the core (AdamW's decay), or none.</param>
    /// <param name="Mask">The decays' mask (null: all).</param>
    /// <param name="Nested">Wrap the core in a chain of its own (flattening).</param>
    public sealed record Recipe(string Core, bool GlobalClip, bool ValueClip, double Coupled, double Decoupled, ParamMask? Mask, bool Nested)
    {
        /// <summary>The chain.</summary>
        /// <param name="fused">The chain's Fused flag.</param>
        /// <returns>The chain.</returns>
        public Chain Build(bool fused = true)
        {
            var list = new List<IGradientTransformation>();
            if (GlobalClip)
                list.Add(new ClipByGlobalNorm(0.5));
            if (ValueClip)
                list.Add(new ClipByValue(-0.3, 0.3));
            if (Coupled > 0)
                list.Add(new AddDecayedWeights(Coupled, Mask));
            IGradientTransformation? core = Core switch
            {
                "adam" => new ScaleByAdam(0.9, 0.99, 1e-3, 0, amsgrad: false),
                "rms" => new ScaleByRms(0.9, 1e-3, centered: false, 0.5),
                "adagrad" => new ScaleByAdagrad(0.1, 1e-3),
                "momentum" => new Trace(0.9, 0.1),
                "nesterov" => new Trace(0.9, 0, Nesterov: true),
                _ => null,
            };
            if (core is not null)
                list.Add(Nested ? new Chain(core) : core);
            if (Decoupled > 0)
                list.Add(new AddDecayedWeights(Decoupled, Mask));
            list.Add(new ScaleByLearningRate(0.05));
            return new Chain([.. list]) { Fused = fused };
        }

        /// <inheritdoc/>
        public override string ToString() =>
            $"{(GlobalClip ? "clip_by_global_norm, " : "")}{(ValueClip ? "clip_by_value, " : "")}{(Coupled > 0 ? $"decay {Coupled}, " : "")}{Core}{(Nested ? " (nested)" : "")}, {(Decoupled > 0 ? $"decay {Decoupled}, " : "")}lr; mask {Mask?.Description ?? "all"}";
    }

    public static Gen<Recipe> Recipes { get; } =
        from core in Gen.Elements("adam", "rms", "adagrad", "momentum", "nesterov", "sgd")
        from globalClip in Gen.Elements(false, true)
        from valueClip in Gen.Elements(false, false, true)
        from coupled in Gen.Elements(0.0, 0.1)
        from decoupled in Gen.Elements(0.0, 0.0, 0.2)
        from mask in Gens.DecayMask
        from nested in Gen.Elements(false, true)
        select new Recipe(core, globalClip, valueClip, coupled, decoupled, mask, nested);

    [Fact]
    public void AdamW_is_one_adam_launch()
    {
        var plan = FusionPlan.For(new AdamW(0.01));
        Assert.Equal((PlanTail.FusedKernel, FusedKernel.Adam), (plan.Tail, plan.Kernel));
        Assert.Empty(plan.Generic);
        Assert.Equal(["scale_by_adam", "add_decayed_weights", "scale_by_learning_rate"], plan.Fused);
        Assert.Equal(["adam moments", "decoupled decay", "learning rate"], plan.Roles);
        Assert.Empty(plan.Notes);
    }

    [Fact]
    public void The_named_optimizers_fuse_as_before()
    {
        void Expect(IGradientTransformation opt, FusedKernel kernel, string[] roles)
        {
            var plan = FusionPlan.For(opt);
            Assert.Equal(kernel, plan.Kernel);
            Assert.Equal(roles, plan.Roles);
            Assert.Empty(plan.Generic);
        }

        Expect(new Adam(weightDecay: 0.1), FusedKernel.Adam, ["coupled decay", "adam moments", "learning rate"]);
        Expect(new Adam(), FusedKernel.Adam, ["adam moments", "learning rate"]);
        Expect(new Sgd(0.1), FusedKernel.Sgd, ["learning rate"]);
        Expect(Sgd.WithNesterov(0.1, weightDecay: 1e-4), FusedKernel.Sgd, ["coupled decay", "nesterov momentum", "learning rate"]);
        Expect(new Sgd(0.1, momentum: 0.9, weightDecayMask: ParamMask.ByRank(2), weightDecay: 0.1), FusedKernel.Sgd, ["coupled decay", "momentum", "learning rate"]);
        Expect(new RmsProp(weightDecay: 0.1, momentum: 0.9), FusedKernel.RmsProp, ["coupled decay", "rms moments", "learning rate"]);
        Expect(new Adagrad(lrDecay: 0.01), FusedKernel.Adagrad, ["adagrad sum", "learning rate"]);
    }

    [Fact]
    public void A_hand_built_chain_gets_the_same_launch_as_the_alias()
    {
        var mask = ParamMask.ByRank(2);
        var alias = FusionPlan.For(new Chain(new ClipByGlobalNorm(1), new AdamW(0.01, weightDecay: 0.1, decayMask: mask)));
        var hand = FusionPlan.For(new Chain(new ClipByGlobalNorm(1), new ScaleByAdam(), new AddDecayedWeights(0.1, mask), new ScaleByLearningRate(0.01)));
        Assert.Equal(FusedKernel.Adam, hand.Kernel);
        Assert.Equal(["clip", "adam moments", "decoupled decay", "learning rate"], hand.Roles);
        Assert.Equal(alias.Describe(), hand.Describe());

        // PyTorch's coupled order: clip, L2 decay, moments, learning rate.
        var coupled = FusionPlan.For(new Chain(new ClipByGlobalNorm(1), new AddDecayedWeights(0.1), new ScaleByAdam(), new ScaleByLearningRate(0.01)));
        Assert.Equal(["clip", "coupled decay", "adam moments", "learning rate"], coupled.Roles);
        Assert.Equal(FusionPlan.For(new Chain(new ClipByGlobalNorm(1), new Adam(0.01, weightDecay: 0.1))).Describe(), coupled.Describe());
    }

    [Fact]
    public void What_a_kernel_cannot_take_runs_first_through_update()
    {
        void Expect(IGradientTransformation opt, string[] generic, FusedKernel kernel, string[] roles)
        {
            var plan = FusionPlan.For(opt);
            Assert.Equal(generic, plan.Generic);
            Assert.Equal(kernel, plan.Kernel);
            Assert.Equal(roles, plan.Roles);
        }

        // The SGD kernel has no clip; a clip by value is no kernel's.
        Expect(new Chain(new ClipByGlobalNorm(1), new Sgd(0.1, momentum: 0.9)), ["clip_by_global_norm"], FusedKernel.Sgd, ["momentum", "learning rate"]);
        Expect(new Chain(new ClipByValue(-1, 1), new AdamW()), ["clip_by_value"], FusedKernel.Adam, ["adam moments", "decoupled decay", "learning rate"]);
        // The RMSProp kernel's decay has no mask.
        Expect(new Chain(new AddDecayedWeights(0.1, ParamMask.ByRank(2)), new ScaleByRms(), new ScaleByLearningRate(0.01)), ["add_decayed_weights"], FusedKernel.RmsProp, ["rms moments", "learning rate"]);
        // One mask in the Adam kernel: with both decays the coupled one runs first, and the clip
        // before it (the kernel clips before it decays) runs too.
        Expect(new Chain(new ClipByGlobalNorm(1), new AddDecayedWeights(0.1), new ScaleByAdam(), new AddDecayedWeights(0.2), new ScaleByLearningRate(0.01)), ["clip_by_global_norm", "add_decayed_weights"], FusedKernel.Adam, ["adam moments", "decoupled decay", "learning rate"]);
        // A decay before the clip: the clip measures the decayed gradients, so it stays fused and the decay runs first.
        Expect(new Chain(new AddDecayedWeights(0.1), new ClipByGlobalNorm(1), new ScaleByAdam(), new ScaleByLearningRate(0.01)), ["add_decayed_weights"], FusedKernel.Adam, ["clip", "adam moments", "learning rate"]);
        // A decoupled decay after RMSProp is SGD's coupled decay on RMSProp's direction.
        Expect(new Chain(new ScaleByRms(), new AddDecayedWeights(0.1), new ScaleByLearningRate(0.01)), ["scale_by_rms"], FusedKernel.Sgd, ["coupled decay", "learning rate"]);
    }

    [Fact]
    public void Nothing_is_fused_where_the_updates_are_not_the_last_word()
    {
        void Expect(IGradientTransformation opt, string[] generic)
        {
            var plan = FusionPlan.For(opt);
            Assert.Equal((PlanTail.ApplyUpdates, FusedKernel.None), (plan.Tail, plan.Kernel));
            Assert.Equal(generic, plan.Generic);
            Assert.Empty(plan.Fused);
        }

        Expect(new Chain(new AdamW(), new Freeze(ParamMask.ByRank(1))), ["scale_by_adam", "add_decayed_weights", "scale_by_learning_rate", "freeze"]);
        Expect(new ScaleByLearningRate(0.1, FlipSign: false), ["scale_by_learning_rate"]);
        Expect(new AdamW { Fused = false }, ["adamw"]);
        Expect(new Chain(new ClipByGlobalNorm(1), new AdamW()) { Fused = false }, ["chain"]);
        Expect(new Chain(new ClipByGlobalNorm(1), new Sgd(0.1) { Fused = false }), ["clip_by_global_norm", "sgd"]);
    }

    [Fact]
    public void MultiSteps_runs_the_inner_plan_on_the_step_that_applies()
    {
        var plan = FusionPlan.For(new MultiSteps(new Chain(new ClipByGlobalNorm(1), new AdamW(0.01)), 3));
        Assert.Equal((PlanTail.OwnStep, FusedKernel.None), (plan.Tail, plan.Kernel));
        Assert.Equal(["multi_steps"], plan.Fused);
        Assert.NotNull(plan.Inner);
        Assert.Equal(FusedKernel.Adam, plan.Inner.Kernel);
        Assert.Equal(["clip", "adam moments", "decoupled decay", "learning rate"], plan.Inner.Roles);
        Assert.Contains("multi_steps step of (fused adam kernel", plan.Describe(), StringComparison.Ordinal);
        Assert.Equal(FusedKernel.Sgd, FusionPlan.For(new ApplyIfFinite(new Sgd(0.1), 3)).Inner?.Kernel);
        Assert.Equal(PlanTail.ApplyUpdates, FusionPlan.For(new MultiSteps(new AdamW(), 2) { Fused = false }).Tail);

        // The run: parameters untouched by the first micro-step, then consumed by the inner fused launch.
        var d = Devices.Cpu;
        var opt = new MultiSteps(new AdamW(0.01), 2);
        var p0 = Trees.Random(d, Small, 1);
        var s0 = opt.Init(p0);
        var (p1, s1) = opt.Step(p0, Trees.Random(d, Small, 2), s0);
        Assert.Equal("multi_steps", Assert.Throws<ConsumedValueException>(() => p0.Flat32).ConsumedBy);
        var (p2, s2) = opt.Step(p1, Trees.Random(d, Small, 3), s1);
        Assert.Equal("adamw.FusedStep", Assert.Throws<ConsumedValueException>(() => p1.Flat32).ConsumedBy);
        Assert.Equal(1, s2.Find<ScaleByAdamState>().Count);
        p2.Dispose();
        s2.Dispose();
    }

    // Masked delegates to its inner plan: alone (the last transformation) it steps itself, and so does
    // Freeze.AllExcept's pair (a trainer's Trainable); followed by anything else it must hand its
    // updates on and runs generic, with a note.
    [Fact]
    public void Masked_runs_its_inner_plan_when_it_ends_the_chain_and_says_why_when_it_cannot()
    {
        var mask = ParamMask.ByRank(2);
        foreach (var opt in new IGradientTransformation[] { new Masked(new AdamW(0.01), mask), Freeze.AllExcept(mask, new AdamW(0.01)), new MultiSteps(Freeze.AllExcept(mask, new AdamW(0.01)), 2) })
        {
            var plan = FusionPlan.For(opt);
            var inner = opt is MultiSteps ? plan.Inner!.Inner : plan.Inner;
            Assert.Equal(PlanTail.OwnStep, plan.Tail);
            Assert.Equal((PlanTail.FusedKernel, FusedKernel.Adam), (inner!.Tail, inner.Kernel));
            Assert.Empty(plan.Notes);
        }

        Assert.Equal("masked + freeze step of (fused adam kernel [scale_by_adam (adam moments), add_decayed_weights (decoupled decay), scale_by_learning_rate (learning rate)])", FusionPlan.For(Freeze.AllExcept(mask, new AdamW(0.01))).Describe());
        foreach (var opt in new IGradientTransformation[] { new Chain(new Masked(new AdamW(0.01), mask), new ClipByValue(1)), new Chain(new Masked(new AdamW(0.01), mask), new Freeze(mask)), new Masked(new AdamW(0.01), mask) { Fused = false } })
        {
            var plan = FusionPlan.For(opt);
            Assert.Equal((PlanTail.ApplyUpdates, FusedKernel.None), (plan.Tail, plan.Kernel));
            Assert.Contains(FusionPlan.MaskedReason, Assert.Single(plan.Notes), StringComparison.Ordinal);
            Assert.Contains(FusionPlan.MaskedReason, plan.Describe(), StringComparison.Ordinal);
        }

        // The pair's step runs inner's fused launch on the packed copy and hands the parameters on
        // without an add: the frozen ones keep their bits, -0 included.
        var d = Devices.Cpu;
        var pair = Freeze.AllExcept(mask, new AdamW(0.01));
        var p = Trees.Random(d, Small, 1);
        Transfer.ToDevice(d.Stream, new float[] { -0f }, p.Flat32.SubView(12, 1));
        var before = p.Flat();
        var s = pair.Init(p);
        var old = p;
        (p, s) = pair.Step(p, Trees.Random(d, Small, 2), s);
        Assert.Equal("masked.FusedStep", Assert.Throws<ConsumedValueException>(() => old.Flat32).ConsumedBy);
        var after = p.Flat();
        foreach (int i in new[] { 12, 13, 14, 15, 24, 25 })
            Assert.Equal(BitConverter.SingleToInt32Bits(before[i]), BitConverter.SingleToInt32Bits(after[i]));
        Assert.Equal(1, s.Find<ScaleByAdamState>().Count);
        p.Dispose();
        s.Dispose();
    }

    [Property(MaxTest = 60)]
    public Property A_planned_step_equals_the_chain_of_updates() =>
        Prop.ForAll(
            (from recipe in Recipes
             from layout in Trees.Layouts
             from seed in Gen.Choose(0, 10_000)
             from steps in Gen.Choose(1, 4)
             select (recipe, layout, seed, steps)).ToArbitrary(),
            args =>
            {
                var (recipe, layout, seed, steps) = args;
                using var p = Trees.Random(Devices.Cpu, layout, seed);
                var opt = recipe.Build();
                var plan = FusionPlan.For(opt);
                string expected = recipe.Core switch
                {
                    "adam" => "Adam",
                    "rms" => recipe.Decoupled > 0 ? "Sgd" : "RmsProp",
                    "adagrad" => recipe.Decoupled > 0 ? "Sgd" : "Adagrad",
                    _ => "Sgd",
                };
                var (fused, fs) = AdaptiveRuns.Run(opt, p, steps, AdaptiveRuns.RandomGrad(seed), StepPath.Fused);
                var (generic, gs) = AdaptiveRuns.Run(opt, p, steps, AdaptiveRuns.RandomGrad(seed), StepPath.Generic);
                using (fs)
                using (gs)
                {
                    string a = AdaptiveRuns.Describe(fs), b = AdaptiveRuns.Describe(gs);
                    return (plan.Kernel.ToString() == expected).Label($"{recipe}: kernel {plan.Kernel}, expected {expected} ({plan.Describe()})")
                        .And((a == b).Label($"state shapes: {a} versus {b}"))
                        .And(Close.All(fused, generic, PathAtol, PathRtol, $"{recipe}: fused ({plan.Describe()}) versus generic"));
                }
            });

    [Property(MaxTest = 25)]
    public Property A_hand_built_AdamW_steps_bitwise_as_the_alias() =>
        Prop.ForAll(
            (from c in AdamWProperties.Configs
             from clip in Gen.Elements(false, true)
             from layout in Trees.Layouts
             from seed in Gen.Choose(0, 10_000)
             select (c, clip, layout, seed)).ToArbitrary(),
            args =>
            {
                var (c, clip, layout, seed) = args;
                using var p = Trees.Random(Devices.Cpu, layout, seed);
                IGradientTransformation alias = clip ? new Chain(new ClipByGlobalNorm(0.5), c.Make()) : c.Make();
                var explicitChain = c.Explicit();
                IGradientTransformation hand = clip ? new Chain([new ClipByGlobalNorm(0.5), .. explicitChain.Children]) : explicitChain;
                var a = AdaptiveRuns.Final(alias, p, c.Steps, AdaptiveRuns.RandomGrad(seed), StepPath.Fused);
                var h = AdaptiveRuns.Final(hand, p, c.Steps, AdaptiveRuns.RandomGrad(seed), StepPath.Fused);
                var g = AdaptiveRuns.Final(hand, p, c.Steps, AdaptiveRuns.RandomGrad(seed), StepPath.Generic);
                return Close.All(h, a, 0, 0, $"{c} clip {clip}: hand-built chain versus alias, both fused")
                    .And(Close.All(h, g, PathAtol, PathRtol, $"{c} clip {clip}: fused versus generic"));
            });

    [Property(MaxTest = 25)]
    public Property MultiSteps_of_a_fused_chain_equals_its_generic_run() =>
        Prop.ForAll(
            (from recipe in Recipes
             from k in Gen.Choose(1, 3)
             from seed in Gen.Choose(0, 10_000)
             select (recipe, k, seed)).ToArbitrary(),
            args =>
            {
                var (recipe, k, seed) = args;
                using var p = Trees.Random(Devices.Cpu, Small, seed);
                int steps = 2 * k;
                var fused = AdaptiveRuns.Final(new MultiSteps(recipe.Build(), k), p, steps, AdaptiveRuns.RandomGrad(seed), StepPath.Fused);
                var generic = AdaptiveRuns.Final(new MultiSteps(recipe.Build(fused: false), k) { Fused = false }, p, steps, AdaptiveRuns.RandomGrad(seed), StepPath.Generic);
                return Close.All(fused, generic, PathAtol, PathRtol, $"{recipe}, k {k}: MultiSteps fused versus generic");
            });

    [Fact]
    public void Fused_and_generic_states_save_alike()
    {
        // A checkpoint written after fused steps names and shapes its tensors as one written after
        // generic steps, so either loads into the other.
        var d = Devices.Cpu;
        var opt = new Chain(new ClipByGlobalNorm(1), new AdamW(0.01, amsgrad: true));
        using var p = Trees.Random(d, Small, 5);
        var (_, fs) = AdaptiveRuns.Run(opt, p, 2, AdaptiveRuns.RandomGrad(5), StepPath.Fused);
        var (_, gs) = AdaptiveRuns.Run(opt, p, 2, AdaptiveRuns.RandomGrad(5), StepPath.Generic);
        using (fs)
        using (gs)
        {
            var a = OptStateCodec.Encode(fs);
            var b = OptStateCodec.Encode(gs);
            Assert.Equal(b.Tensors.Select(t => t.Name), a.Tensors.Select(t => t.Name));
            Assert.Equal(b.Json["description"]!.ToJsonString(), a.Json["description"]!.ToJsonString());
            Assert.Equal("\"chain(clip_by_global_norm, adamw(scale_by_adam, add_decayed_weights, scale_by_learning_rate))\"", a.Json["description"]!.ToJsonString());
            var tensors = a.Tensors.ToDictionary(t => t.Name);
            using var restored = OptStateCodec.Restore(opt, p, tensors, a.Json);
            Assert.Equal(2, restored.Find<ScaleByAdamState>().Count);
        }
    }
}
