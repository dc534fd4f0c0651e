namespace IlgpuTrain.Optimizers;

/// <summary>
/// An average of a model's weights kept beside the trained ones: the averaged parameters, the
/// averaged (or copied) model state (BatchNorm running statistics) and how many times it was
/// updated. A value: <see cref="Ema.Update"/> and <see cref="Swa.Update"/> consume it and return
/// the next; its trees have the layouts of the model's parameters and state.
/// </summary>
/// <param name="Params">The averaged parameters.</param>
/// <param name="State">The averaged model state (same layout as the model's state; an empty tree when the model has none).</param>
/// <param name="Count">Updates folded in: optimizer updates for an EMA, snapshots (PyTorch's n_averaged) for SWA.</param>
public sealed record AveragedWeights(ParamTree Params, ParamTree State, long Count) : IDisposable
{
    /// <summary>Releases the device memory of both trees.</summary>
    public void Dispose()
    {
        Params.Dispose();
        State.Dispose();
    }

    /// <summary>
    /// Folds the current weights into this average in place, as torch.lerp with weight
    /// <paramref name="t"/>: one launch over the flat Float32 parameter buffer, and one over the
    /// state's when <paramref name="averageState"/> (else the state is copied). Integer and Float16
    /// entries (num_batches_tracked) are copied, as timm does for non-floating buffers.
    /// Consumes this value.
    /// </summary>
    internal AveragedWeights Lerp(ParamTree parameters, ParamTree state, float t, bool averageState, long count, string op)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(state);
        Params.Layout.RequireSame(parameters.Layout, op);
        State.Layout.RequireSame(state.Layout, op);
        var host = parameters.Device.Kernels;
        WeightAverage.Lerp(host, Params.Flat32, parameters.Flat32, t);
        if (averageState)
            WeightAverage.Lerp(host, State.Flat32, state.Flat32, t);
        else
            Transfer.Copy(host.Stream, state.Flat32, State.Flat32);
        Transfer.Copy(host.Stream, parameters.Flat<Half>(), Params.Flat<Half>());
        Transfer.Copy(host.Stream, parameters.Flat<int>(), Params.Flat<int>());
        Transfer.Copy(host.Stream, state.Flat<Half>(), State.Flat<Half>());
        Transfer.Copy(host.Stream, state.Flat<int>(), State.Flat<int>());
        return new AveragedWeights(Params.Consume(op), State.Consume(op), count);
    }

    /// <summary>A copy of the weights, as the start of an average.</summary>
    internal static AveragedWeights CopyOf(ParamTree parameters, ParamTree state, long count)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(state);
        var p = parameters.Clone();
        try
        {
            return new AveragedWeights(p, state.Clone(), count);
        }
        catch
        {
            p.Dispose();
            throw;
        }
    }
}

/// <summary>
/// How a run averages its weights: <see cref="Ema"/> (an exponential moving average updated after
/// every optimizer update) or <see cref="Swa"/> (an equal average of end-of-epoch snapshots). The
/// trainer calls <see cref="Start"/> once, <see cref="AfterUpdate"/> after each applied optimizer
/// update and <see cref="AfterEpoch"/> at the end of each epoch; each returns the next average
/// (null: none yet) and consumes the one it was given when it changes it.
/// </summary>
public abstract record WeightAveraging
{
    // Only Ema and Swa: the trainer, checkpoints and the CLI know both.
    private protected WeightAveraging()
    {
    }

    /// <summary>The short name stored in checkpoints and printed: "ema" or "swa".</summary>
    public abstract string Kind { get; }

    /// <summary>Whether the averaged model's BatchNorm statistics are recomputed from the training data (SWA's update_bn) before they are used.</summary>
    public abstract bool RefreshesBatchNorm { get; }

    /// <summary>Throws when an option is out of range (a <c>with</c> expression skips the constructor's checks).</summary>
    /// <param name="epochs">The run's epochs, for options that name an epoch (0: do not check them).</param>
    public abstract void Validate(int epochs = 0);

    /// <summary>The average at the start of a run, from the initial weights (null: none until later).</summary>
    /// <param name="parameters">The initial parameters (read).</param>
    /// <param name="state">The initial model state (read).</param>
    /// <returns>The average, or null.</returns>
    public abstract AveragedWeights? Start(ParamTree parameters, ParamTree state);

    /// <summary>After an applied optimizer update (not a skipped step or an accumulating micro-batch).</summary>
    /// <param name="averaged">The average so far, or null; consumed when the result differs.</param>
    /// <param name="parameters">The parameters after the update (read).</param>
    /// <param name="state">The model state after the step (read).</param>
    /// <returns>The new average.</returns>
    public abstract AveragedWeights? AfterUpdate(AveragedWeights? averaged, ParamTree parameters, ParamTree state);

    /// <summary>At the end of epoch <paramref name="epoch"/> (1-based).</summary>
    /// <param name="averaged">The average so far, or null; consumed when the result differs.</param>
    /// <param name="parameters">The parameters (read).</param>
    /// <param name="state">The model state (read).</param>
    /// <param name="epoch">The epoch that ended, from 1.</param>
    /// <returns>The new average.</returns>
    public abstract AveragedWeights? AfterEpoch(AveragedWeights? averaged, ParamTree parameters, ParamTree state, int epoch);
}
