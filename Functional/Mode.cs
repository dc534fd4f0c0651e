namespace IlgpuTrain.Functional;

/// <summary>
/// Whether a forward trains or evaluates: Dropout drops only in <see cref="Train"/>, BatchNorm
/// normalizes with batch statistics (and updates its running ones) in <see cref="Train"/> and with
/// the running statistics in <see cref="Eval"/>. A value passed to every Apply, never global state.
/// </summary>
public enum Mode
{
    /// <summary>Training: stochastic layers are active and batch statistics are used.</summary>
    Train,

    /// <summary>Evaluation and inference: deterministic, running statistics.</summary>
    Eval,
}
