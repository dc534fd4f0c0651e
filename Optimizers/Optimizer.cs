namespace IlgpuTrain.Optimizers;

/// <summary>The training-loop side of an optimizer: init, step, apply.</summary>
public static class Optimizer
{
    /// <summary>params + updates (Optax's apply_updates). Consumes <paramref name="parameters"/>; the updates are only read.</summary>
    /// <param name="parameters">Parameters. Consumed.</param>
    /// <param name="updates">Updates of the same layout.</param>
    /// <returns>The new parameters.</returns>
    public static ParamTree ApplyUpdates(ParamTree parameters, ParamTree updates)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        return parameters.ApplyUpdates(updates);
    }

    /// <summary>
    /// One optimizer step, as <see cref="FusionPlan.For"/> plans it: the primitives a fused kernel
    /// covers (for AdamW: decay, moments, bias correction and learning rate; before them a
    /// ClipByGlobalNorm) run as one launch that writes the parameters; the others run their Update
    /// first; with nothing to fuse it is Update, then ApplyUpdates. Consumes parameters, gradients and state.
    /// </summary>
    /// <param name="optimizer">The transformation.</param>
    /// <param name="parameters">Parameters. Consumed.</param>
    /// <param name="grads">Gradients. Consumed.</param>
    /// <param name="state">State. Consumed.</param>
    /// <param name="context">Extras (the loss for plateau schedules).</param>
    /// <returns>New parameters and state.</returns>
    public static (ParamTree Parameters, OptState State) Step(this IGradientTransformation optimizer, ParamTree parameters, ParamTree grads, OptState state, UpdateContext? context = null)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        // A chain keeps its plan; a named optimizer's is its chain's (same leaves, same name).
        var plan = optimizer switch
        {
            Chain chain => chain.Plan,
            INamedChain { Fused: true } named => named.Chain.Plan,
            _ => FusionPlan.For(optimizer),
        };
        return plan.Step(parameters, grads, state, context ?? UpdateContext.None);
    }
}
