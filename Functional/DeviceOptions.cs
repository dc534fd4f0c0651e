namespace IlgpuTrain.Functional;

/// <summary>Which kind of accelerator a <see cref="Device"/> runs on.</summary>
public enum DeviceKind
{
    /// <summary>The best available: CUDA, then OpenCL, then the CPU accelerator.</summary>
    Auto,

    /// <summary>An NVIDIA GPU through CUDA (PTX).</summary>
    Cuda,

    /// <summary>A GPU through OpenCL 2.0 (AMD, Intel).</summary>
    OpenCL,

    /// <summary>ILGPU's CPU accelerator, one worker per core.</summary>
    Cpu,
}

/// <summary>How to create a <see cref="Device"/>.</summary>
public sealed record DeviceOptions
{
    /// <summary>The environment variable that forces a device kind: cuda, opencl, cpu (or auto).</summary>
    public const string EnvironmentVariable = "ILGPUTRAIN_DEVICE";

    /// <summary>The kind of accelerator; <see cref="DeviceKind.Auto"/> picks CUDA, then OpenCL, then CPU.</summary>
    public DeviceKind Kind { get; init; } = DeviceKind.Auto;

    /// <summary>Index among the devices of <see cref="Kind"/> (for machines with several GPUs).</summary>
    public int Ordinal { get; init; }

    /// <summary>
    /// CPU accelerator only: worker groups run in parallel (one per core by default,
    /// <see cref="Environment.ProcessorCount"/>).
    /// </summary>
    public int? CpuCores { get; init; }

    /// <summary>
    /// CPU accelerator only: threads per group (a power of two, at least 2). Every simulated
    /// thread is an OS thread. By default 2 on the managed backend (whose loops do not use the
    /// accelerator's threads) and 16 on <see cref="KernelBackend.CpuAccelerator"/>, so the GPU
    /// kernels' groups, shared memory and barriers are exercised as on a GPU.
    /// </summary>
    public int? CpuThreadsPerGroup { get; init; }

    /// <summary>
    /// CPU only: which code runs the ops. <see cref="KernelBackend.Managed"/> (the default) runs
    /// the CPU algorithms, managed SIMD loops on the CPU accelerator's memory;
    /// <see cref="KernelBackend.CpuAccelerator"/> runs the ILGPU kernels on ILGPU's CPU
    /// accelerator, which is how the GPU code paths run without a GPU. Null picks the default
    /// for the kind.
    /// </summary>
    public KernelBackend? Backend { get; init; }

    /// <summary>Options from <see cref="EnvironmentVariable"/> (Auto when unset).</summary>
    /// <returns>The options.</returns>
    public static DeviceOptions FromEnvironment() =>
        Parse(Environment.GetEnvironmentVariable(EnvironmentVariable), EnvironmentVariable);

    /// <summary>
    /// Parses a device name: cuda, opencl, cpu (managed loops), cpu-kernels (ILGPU's kernels on
    /// the CPU accelerator) or auto (case-insensitive); null or empty means auto.
    /// </summary>
    /// <param name="text">The text.</param>
    /// <param name="source">Where the text came from, for the error message.</param>
    /// <returns>The options.</returns>
    /// <exception cref="ArgumentException">The text names no device.</exception>
    public static DeviceOptions Parse(string? text, string source = "device") =>
        text?.Trim().ToLowerInvariant() is "cpu-kernels" or "cpu-accelerator"
            ? new() { Kind = DeviceKind.Cpu, Backend = KernelBackend.CpuAccelerator }
            : new() { Kind = ParseKind(text, source) };

    /// <summary>Parses cuda, opencl, cpu or auto (case-insensitive); null or empty means auto.</summary>
    /// <param name="text">The text.</param>
    /// <param name="source">Where the text came from, for the error message.</param>
    /// <returns>The kind.</returns>
    public static DeviceKind ParseKind(string? text, string source = "device")
    {
        switch (text?.Trim().ToLowerInvariant())
        {
            case null or "" or "auto":
                return DeviceKind.Auto;
            case "cuda" or "gpu" or "nvidia":
                return DeviceKind.Cuda;
            case "opencl" or "cl":
                return DeviceKind.OpenCL;
            case "cpu" or "cpu-kernels" or "cpu-accelerator":
                return DeviceKind.Cpu;
            default:
                throw new ArgumentException($"{source}='{text}' is not a device kind; use one of cuda, opencl, cpu, cpu-kernels or auto.");
        }
    }
}

/// <summary>Thrown when the requested accelerator is not available; the message says why and what to do.</summary>
public sealed class DeviceUnavailableException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">What was asked for, why it is missing and what to do.</param>
    public DeviceUnavailableException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public DeviceUnavailableException()
    {
    }

    /// <summary>Creates the exception.</summary>
    /// <param name="message">The message.</param>
    /// <param name="inner">The cause.</param>
    public DeviceUnavailableException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
