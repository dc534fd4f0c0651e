namespace IlgpuTrain.Optimizers;

/// <summary>
/// Extras an update may read besides the gradients: the current loss (for plateau schedules)
/// and named metrics. Host values the training loop already has; nothing here forces a device
/// round-trip.
/// </summary>
/// <param name="Loss">The loss the update should react to (validation loss for ReduceOnPlateau), if any.</param>
public sealed record UpdateContext(double? Loss = null)
{
    /// <summary>No extras.</summary>
    public static UpdateContext None { get; } = new();
}

/// <summary>What <see cref="IGradientTransformation.Update"/> returns.</summary>
/// <param name="Updates">The transformed gradients: add them to the parameters (<see cref="Optimizer.ApplyUpdates"/>).</param>
/// <param name="State">The new state; the old one was consumed.</param>
public readonly record struct UpdateResult(ParamTree Updates, OptState State);

/// <summary>
/// An Optax-style gradient transformation: a pair of pure functions. <see cref="Init"/> builds
/// the state for a parameter tree; <see cref="Update"/> maps gradients to updates and the old
/// state to the new one. Optimizers are chains of these (<see cref="Chain"/>).
/// </summary>
/// <remarks>
/// Ownership (immutability by donation): <see cref="Update"/> consumes <c>grads</c> (the updates
/// reuse its buffer) and <c>state</c> (moments are updated in place and move to the returned
/// state); both throw <see cref="ConsumedValueException"/> if touched afterwards. Parameters are
/// only read. Schedules are evaluated at the update count before it is incremented, so update 1
/// uses lr(0), as PyTorch's optimizer.step() followed by scheduler.step().
/// </remarks>
public interface IGradientTransformation
{
    /// <summary>Name of this transformation in a chain's state (e.g. "scale_by_adam").</summary>
    string Name { get; }

    /// <summary>Creates the initial state for <paramref name="parameters"/>.</summary>
    /// <param name="parameters">The parameters (only their layout and device are used unless documented).</param>
    /// <returns>The state.</returns>
    OptState Init(ParamTree parameters);

    /// <summary>Transforms gradients into updates.</summary>
    /// <param name="grads">Gradients, same layout as the parameters. Consumed.</param>
    /// <param name="state">The state from <see cref="Init"/> or the previous update. Consumed.</param>
    /// <param name="parameters">Current parameters (read only).</param>
    /// <param name="context">Extras such as the loss.</param>
    /// <returns>The updates and the new state.</returns>
    UpdateResult Update(ParamTree grads, OptState state, ParamTree parameters, UpdateContext context);
}

/// <summary>
/// A transformation that runs its own whole step, parameters included: the wrappers whose step is
/// not "Update, then ApplyUpdates" (<see cref="MultiSteps"/> leaves parameters bitwise untouched on
/// intermediate micro-steps, <see cref="ApplyIfFinite"/> on a rejected update) and that hand the
/// steps they do take to <see cref="Optimizer.Step"/> of their inner transformation, so its
/// <see cref="FusionPlan"/> still runs fused. The planner runs such a transformation's
/// <see cref="FusedStep"/> when it is the last of a (flattened) chain.
/// </summary>
public interface IFusedStep : IGradientTransformation
{
    /// <summary>Whether <see cref="Optimizer.Step"/> uses <see cref="FusedStep"/> (false forces Update, then ApplyUpdates).</summary>
    bool Fused { get; }

    /// <summary>Updates parameters and state in one step.</summary>
    /// <param name="parameters">Parameters. Consumed: the result reuses their buffer.</param>
    /// <param name="grads">Gradients. Consumed.</param>
    /// <param name="state">State. Consumed.</param>
    /// <param name="context">Extras.</param>
    /// <returns>New parameters and state.</returns>
    (ParamTree Parameters, OptState State) FusedStep(ParamTree parameters, ParamTree grads, OptState state, UpdateContext context);
}

/// <summary>
/// A named optimizer that is a chain of primitives (<see cref="Adam"/>, <see cref="AdamW"/>,
/// <see cref="Sgd"/>, <see cref="RmsProp"/>, <see cref="Adagrad"/>): its <see cref="IGradientTransformation.Init"/>
/// and <see cref="IGradientTransformation.Update"/> are its <see cref="Chain"/>'s, its state is that
/// chain's <see cref="ChainState"/>, and <see cref="FusionPlan"/> looks through it to the primitives.
/// </summary>
public interface INamedChain : IGradientTransformation
{
    /// <summary>The primitives this optimizer is, in order.</summary>
    Chain Chain { get; }

    /// <summary>Whether <see cref="Optimizer.Step"/> may fuse its primitives (default true); false runs the chain's Update, then ApplyUpdates.</summary>
    bool Fused { get; }
}
