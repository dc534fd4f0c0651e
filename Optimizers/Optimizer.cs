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
    /// One optimizer step: the fused kernel when the transformation (or the last transformation
    /// of a chain, as in chain(ClipByGlobalNorm, AdamW)) has one, otherwise Update then ApplyUpdates. Consumes parameters, gradients and state.
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
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(grads);
        context ??= UpdateContext.None;
        if (optimizer is IFusedStep { Fused: true } fused)
            return fused.FusedStep(parameters, grads, state, context);
        if (optimizer is Chain chain && chain.Children.Count > 0 && chain.Children[^1] is IFusedStep { Fused: true })
            return chain.StepWithFusedTail(parameters, grads, state, context);
        var (updates, next) = optimizer.Update(grads, state, parameters, context);
        using (updates)
            return (parameters.ApplyUpdates(updates), next);
    }
}
