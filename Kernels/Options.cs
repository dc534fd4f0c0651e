namespace IlgpuTrain.Functional;

// Options that users set (through F.*, layers and the Trainer) live in IlgpuTrain.Functional, where
// users look for them, although the kernels that read them are in this assembly: a user who imports
// IlgpuTrain.Functional, .Layers, .Optimizers and .Training never needs IlgpuTrain.Kernels.

/// <summary>How label smoothing spreads eps over the classes.</summary>
public enum LabelSmoothing
{
    /// <summary>
    /// PyTorch and Optax: target = (1 - eps) * onehot + eps / C over all C classes, so the true
    /// class gets 1 - eps + eps / C and every other class eps / C.
    /// </summary>
    Uniform,

    /// <summary>The true class gets 1 - eps and every other class eps / (C - 1). Needs C at least 2 when eps is positive.</summary>
    OffTarget,
}

/// <summary>How per-row losses are reduced to the returned loss (PyTorch's <c>reduction</c>).</summary>
public enum LossReduction
{
    /// <summary>Sum over non-ignored rows divided by their number (NaN when every row is ignored).</summary>
    Mean,

    /// <summary>Sum over all rows (ignored rows contribute 0).</summary>
    Sum,

    /// <summary>No reduction: the per-row losses are the result.</summary>
    None,
}

/// <summary>Options of the cross-entropy loss (<c>F.CrossEntropy</c>, the Trainer's loss), with PyTorch's defaults.</summary>
public sealed record CrossEntropyOptions
{
    /// <summary>PyTorch's default ignore_index.</summary>
    public const int DefaultIgnoreIndex = -100;

    /// <summary>Mean reduction, no label smoothing, ignore_index -100.</summary>
    public static CrossEntropyOptions Default { get; } = new();

    /// <summary>The reduction; <see cref="LossReduction.Mean"/> by default.</summary>
    public LossReduction Reduction { get; init; } = LossReduction.Mean;

    /// <summary>Label smoothing eps in [0, 1]; 0 (none) by default.</summary>
    public float Epsilon { get; init; }

    /// <summary>How eps is spread; <see cref="LabelSmoothing.Uniform"/> (PyTorch) by default.</summary>
    public LabelSmoothing Smoothing { get; init; } = LabelSmoothing.Uniform;

    /// <summary>Target value whose rows contribute no loss and no gradient; -100 by default.</summary>
    public int IgnoreIndex { get; init; } = DefaultIgnoreIndex;
}

/// <summary>Which GELU: PyTorch's <c>approximate</c> argument.</summary>
public enum GeluApproximation
{
    /// <summary>approximate='none': 0.5 x (1 + erf(x / sqrt 2)).</summary>
    None,

    /// <summary>approximate='tanh': 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).</summary>
    Tanh,
}

/// <summary>How a flat reduction combines its partial results.</summary>
public enum ReductionMode
{
    /// <summary>
    /// Two passes in a fixed order, no float atomics: bitwise-identical results run to run on the
    /// same device and launch policy. Needs <see cref="Kernels.Reductions.ScratchLength"/> scratch elements.
    /// </summary>
    Deterministic,

    /// <summary>
    /// One pass that combines group partials into the result with atomics. Faster on GPUs,
    /// needs no scratch, but sums are not bitwise reproducible (the order of the atomic adds varies).
    /// </summary>
    Atomic,
}

/// <summary>
/// Which code a launcher runs (<c>DeviceOptions.Backend</c>, <c>ComputeDevice.Backend</c>): a
/// device's backend, chosen when the device is created (never by a process-wide switch).
/// Launchers dispatch on <see cref="IlgpuTrain.Kernels.Runtime.KernelHost.Backend"/>.
/// </summary>
public enum KernelBackend
{
    /// <summary>
    /// The CPU algorithms: managed (SIMD) loops on the host memory of ILGPU's CPU accelerator, bitwise
    /// the ILGPU kernels where both run one body; where the algorithms differ (GEMM, flat and
    /// per-channel reductions, pooling backwards) each is checked against the op's reference. The
    /// default on the CPU: a CPU-accelerator launch costs tens of microseconds and does not vectorize.
    /// </summary>
    Managed,

    /// <summary>
    /// ILGPU's CPU accelerator running the GPU kernels themselves (shared memory and barriers
    /// included, simulated with OS threads): how the GPU code runs without a GPU (tests and
    /// <c>check</c> use it). GEMM still runs the managed CpuGemm, since the tiled kernel is
    /// hundreds of times slower there; the tiled kernel is tested directly.
    /// </summary>
    CpuAccelerator,

    /// <summary>An NVIDIA GPU through CUDA (PTX kernels).</summary>
    Cuda,

    /// <summary>
    /// A GPU through OpenCL 2.0. A loaded kernel's launches are serialized (see
    /// <see cref="IlgpuTrain.Kernels.Runtime.KernelHost.SerializesLaunches"/>).
    /// </summary>
    OpenCL,
}
