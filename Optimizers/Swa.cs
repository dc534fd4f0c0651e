namespace IlgpuTrain.Optimizers;

/// <summary>
/// Stochastic weight averaging (Izmailov et al., 2018) with the semantics of
/// <c>torch.optim.swa_utils.AveragedModel</c> as PyTorch's SWA recipe drives it: at the end of
/// epochs <see cref="StartEpoch"/>, <see cref="StartEpoch"/> + <see cref="Every"/>, ... the
/// weights are folded into an equal average, and the averaged model's BatchNorm statistics are
/// then recomputed from the training data (<c>update_bn</c>).
/// </summary>
/// <remarks>
/// <para>Snapshot n + 1 (n = n_averaged so far):</para>
/// <para>n = 0:  swa ← w (a copy)</para>
/// <para>n ≥ 1:  swa ← swa + (w − swa)/(n + 1), computed as torch.lerp(swa, w, 1/(n + 1)) (PyTorch's foreach path)</para>
/// <para>so after k snapshots swa is their mean. Buffers: as AveragedModel's default
/// (use_buffers False) the model state is copied, not averaged; a trainer then refreshes the
/// BatchNorm statistics for the averaged weights (<see cref="WeightAveraging.RefreshesBatchNorm"/>:
/// reset, momentum None, one pass over the training data in Train mode). Epochs count from 1:
/// <c>Swa(startEpoch: 4)</c> in a 5-epoch run averages the weights after epochs 4 and 5.
/// https://pytorch.org/docs/stable/optim.html#weight-averaging-swa-and-ema</para>
/// </remarks>
public sealed record Swa : WeightAveraging
{
    /// <summary>Creates SWA; options are checked here.</summary>
    /// <param name="startEpoch">The first epoch (from 1) whose end weights enter the average.</param>
    /// <param name="every">Epochs between snapshots, at least 1.</param>
    /// <param name="averageBuffers">Average the floating-point model state too (AveragedModel's use_buffers=True) instead of copying it.</param>
    public Swa(int startEpoch, int every = 1, bool averageBuffers = false)
    {
        StartEpoch = startEpoch;
        Every = every;
        AverageBuffers = averageBuffers;
        Validate();
    }

    /// <summary>The first epoch (from 1) whose end weights enter the average.</summary>
    public int StartEpoch { get; init; }

    /// <summary>Epochs between snapshots.</summary>
    public int Every { get; init; }

    /// <summary>Whether the floating-point model state is averaged (use_buffers=True) rather than copied.</summary>
    public bool AverageBuffers { get; init; }

    /// <inheritdoc/>
    public override string Kind => "swa";

    /// <inheritdoc/>
    public override bool RefreshesBatchNorm => true;

    /// <inheritdoc/>
    public override void Validate(int epochs = 0)
    {
        if (StartEpoch < 1)
            throw new ArgumentOutOfRangeException(nameof(StartEpoch), StartEpoch, $"Swa: start epoch {StartEpoch} is before the first epoch; epochs count from 1 (--swa-start 1 averages from the end of the first epoch).");
        if (Every < 1)
            throw new ArgumentOutOfRangeException(nameof(Every), Every, "Swa: every must be at least 1 epoch.");
        if (epochs > 0 && StartEpoch > epochs)
            throw new ArgumentOutOfRangeException(nameof(StartEpoch), StartEpoch, $"Swa: start epoch {StartEpoch} is beyond the run's {epochs} epochs, so nothing would be averaged; start at an epoch from 1 to {epochs} (--swa-start), or train for more epochs.");
    }

    /// <summary>Whether the weights at the end of <paramref name="epoch"/> (from 1) enter the average.</summary>
    /// <param name="epoch">The epoch.</param>
    /// <returns>True at StartEpoch, StartEpoch + Every, ...</returns>
    public bool AveragesAt(int epoch) => epoch >= StartEpoch && (epoch - StartEpoch) % Every == 0;

    /// <summary>Folds a snapshot of the weights into the average (AveragedModel.update_parameters). Consumes <paramref name="swa"/>.</summary>
    /// <param name="swa">The average so far, or null before the first snapshot. Consumed.</param>
    /// <param name="parameters">The parameters (read).</param>
    /// <param name="state">The model state (read).</param>
    /// <returns>The new average, its count one more.</returns>
    public AveragedWeights Update(AveragedWeights? swa, ParamTree parameters, ParamTree state)
    {
        if (swa is null || swa.Count == 0)
        {
            swa?.Dispose();
            return AveragedWeights.CopyOf(parameters, state, 1);
        }

        long n = swa.Count;
        return swa.Lerp(parameters, state, 1f / (n + 1), averageState: AverageBuffers, n + 1, "Swa.Update");
    }

    /// <inheritdoc/>
    public override AveragedWeights? Start(ParamTree parameters, ParamTree state) => null;

    /// <inheritdoc/>
    public override AveragedWeights? AfterUpdate(AveragedWeights? averaged, ParamTree parameters, ParamTree state) => averaged;

    /// <inheritdoc/>
    public override AveragedWeights? AfterEpoch(AveragedWeights? averaged, ParamTree parameters, ParamTree state, int epoch) =>
        AveragesAt(epoch) ? Update(averaged, parameters, state) : averaged;
}
