using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace IlgpuTrain.Functional;

/// <summary>
/// One accelerator and everything that goes with it: the ILGPU context (built with
/// EnableAlgorithms, without which PTX has no Exp), the accelerator, the kernel cache and
/// launch policy (<see cref="Kernels"/>), the caching memory pool and the default stream.
/// </summary>
/// <remarks>
/// Named <c>ComputeDevice</c>, not <c>Device</c>, so that it never clashes with ILGPU's
/// <c>ILGPU.Runtime.Device</c> when both namespaces are imported.
/// <c>ComputeDevice.Create()</c> picks CUDA, then OpenCL, then ILGPU's CPU accelerator;
/// ILGPUTRAIN_DEVICE=cuda|opencl|cpu forces one. The CPU accelerator is built with one worker
/// group per core so grid-stride kernels run as plain loops.
/// </remarks>
public sealed class ComputeDevice : IDisposable
{
    private readonly List<Task> _background = [];
    private bool _disposed;

    private ComputeDevice(Context context, Accelerator accelerator, DeviceKind kind, DeviceOptions options)
    {
        Context = context;
        Accelerator = accelerator;
        Kind = kind;
        Options = options;
        Kernels = new KernelHost(accelerator, accelerator.DefaultStream, backend: options.Backend);
        Pool = new MemoryPool(accelerator);
    }

    /// <summary>CUDA, OpenCL or CPU.</summary>
    public DeviceKind Kind { get; }

    /// <summary>The options the device was created with.</summary>
    public DeviceOptions Options { get; }

    /// <summary>The ILGPU context (owned).</summary>
    public Context Context { get; }

    /// <summary>The ILGPU accelerator (owned).</summary>
    public Accelerator Accelerator { get; }

    /// <summary>Kernel cache, launch policy and stream, as launchers need them.</summary>
    public KernelHost Kernels { get; }

    /// <summary>The caching allocator every tensor and temporary comes from.</summary>
    public MemoryPool Pool { get; }

    /// <summary>The default stream; every launch is queued on it, in order.</summary>
    public AcceleratorStream Stream => Kernels.Stream;

    /// <summary>Whether this is ILGPU's CPU accelerator (its buffers are host memory).</summary>
    public bool IsCpu => Kind == DeviceKind.Cpu;

    /// <summary>The code ops run as: managed loops or ILGPU's kernels on the CPU, or the GPU's kernels.</summary>
    public KernelBackend Backend => Kernels.Backend;

    /// <summary>The accelerator's name.</summary>
    public string Name => Accelerator.Name;

    /// <summary>Creates the device chosen by ILGPUTRAIN_DEVICE, or the best available one.</summary>
    /// <returns>The device; dispose it when done.</returns>
    public static Device Create() => Create(DeviceOptions.FromEnvironment());

    /// <summary>Creates a device of the given kind.</summary>
    /// <param name="kind">CUDA, OpenCL, CPU, or Auto for the best available.</param>
    /// <returns>The device.</returns>
    public static Device Create(DeviceKind kind) => Create(new DeviceOptions { Kind = kind });

    /// <summary>Creates a device with explicit options.</summary>
    /// <param name="options">The options.</param>
    /// <returns>The device.</returns>
    /// <exception cref="DeviceUnavailableException">The requested kind is not available; the message says why.</exception>
    public static Device Create(DeviceOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        NativeLibraries.EnsureResolver();
        if (options.Ordinal < 0)
            throw new ArgumentOutOfRangeException(nameof(options), options.Ordinal, "Device ordinal must be zero or more.");
        if (options.Backend is KernelBackend.Managed or KernelBackend.CpuAccelerator && options.Kind != DeviceKind.Cpu)
            throw new ArgumentException($"Backend {options.Backend} runs on the CPU only, but Kind is {options.Kind}; set Kind = DeviceKind.Cpu (or --device cpu / cpu-kernels).", nameof(options));
        if (options.Backend is KernelBackend.Cuda or KernelBackend.OpenCL && options.Kind.ToString() != options.Backend.ToString())
            throw new ArgumentException($"Backend {options.Backend} needs Kind = DeviceKind.{options.Backend}, not {options.Kind}.", nameof(options));

        if (options.Kind is DeviceKind.Cuda or DeviceKind.Auto)
        {
            var d = TryCreate(options, DeviceKind.Cuda);
            if (d is not null)
                return d;
        }
        if (options.Kind is DeviceKind.OpenCL or DeviceKind.Auto)
        {
            var d = TryCreate(options, DeviceKind.OpenCL);
            if (d is not null)
                return d;
        }
        if (options.Kind is DeviceKind.Cpu or DeviceKind.Auto)
            return CreateCpu(options);

        // Forced kind not available: explain why, from a full probe.
        var report = DeviceReport.Probe();
        DeviceReport.Pick(report.Found, report.Skipped, options.Kind, options.Ordinal);
        throw new DeviceUnavailableException($"No usable {options.Kind} device #{options.Ordinal}. Run 'ilgpu-train devices' for details.");
    }

    /// <summary>Lists every device ILGPU found and every one skipped, with the reason.</summary>
    /// <returns>The report.</returns>
    public static DeviceReport Describe() => DeviceReport.Probe();

    /// <summary>Opens a per-step arena: temporaries come from the pool and all return on dispose.</summary>
    /// <returns>The scope.</returns>
    public StepScope BeginStep()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new StepScope(this);
    }

    /// <summary>
    /// Runs <paramref name="work"/> on a background thread that uses this device (the
    /// <c>Trainer</c>'s kernel warm-up does). <see cref="Dispose"/> waits for it to end, so the
    /// device's memory is never freed under it.
    /// </summary>
    /// <param name="work">The work; its exceptions end up in the returned task.</param>
    /// <returns>The task.</returns>
    /// <exception cref="ObjectDisposedException">The device is disposed.</exception>
    public Task RunInBackground(Action work)
    {
        ArgumentNullException.ThrowIfNull(work);
        lock (_background)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _background.RemoveAll(t => t.IsCompleted);
            var task = Task.Factory.StartNew(
                () =>
                {
                    Accelerator.Bind();
                    work();
                },
                CancellationToken.None,
                TaskCreationOptions.LongRunning,
                TaskScheduler.Default);
            _background.Add(task);
            return task;
        }
    }

    /// <summary>Waits for every launch queued on the default stream.</summary>
    public void Synchronize() => Stream.Synchronize();

    /// <inheritdoc/>
    public override string ToString() => Backend == KernelBackend.CpuAccelerator
        ? $"cpu-kernels: {Name}"
        : $"{Kind.ToString().ToLowerInvariant()}: {Name}";

    /// <inheritdoc/>
    public void Dispose()
    {
        Task[] background;
        lock (_background)
        {
            if (_disposed)
                return;
            _disposed = true;
            background = [.. _background];
        }

        // Background work (a warm-up step) uses this device's buffers: let it finish before they go.
        foreach (var task in background)
        {
            try
            {
                task.Wait();
            }
            catch (AggregateException)
            {
                // Its owner reports its failure; disposal goes on.
            }
        }

        Accelerator.Synchronize();
        Pool.Dispose();
        Accelerator.Dispose();
        Context.Dispose();
    }

    private static Device? TryCreate(DeviceOptions options, DeviceKind kind)
    {
        Context? context = null;
        try
        {
            context = kind == DeviceKind.Cuda
                ? Context.Create(b => b.Cuda().EnableAlgorithms())
                : Context.Create(b => b.OpenCL().EnableAlgorithms());
            Accelerator? acc = null;
            if (kind == DeviceKind.Cuda && context.GetCudaDevices().Count > options.Ordinal)
                acc = context.GetCudaDevices()[options.Ordinal].CreateAccelerator(context);
            else if (kind == DeviceKind.OpenCL && context.GetCLDevices().Count > options.Ordinal)
                acc = context.GetCLDevices()[options.Ordinal].CreateAccelerator(context);
            if (acc is null)
            {
                context.Dispose();
                return null;
            }
            return new ComputeDevice(context, acc, kind, options);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            context?.Dispose();
            if (options.Kind == kind)
                throw new DeviceUnavailableException($"Creating the {kind} accelerator failed: {e.Message}. Run 'ilgpu-train devices' for details, or use --device cpu.", e);
            return null;
        }
    }

    private static Device CreateCpu(DeviceOptions options)
    {
        int cores = options.CpuCores ?? Environment.ProcessorCount;
        int threads = options.CpuThreadsPerGroup ?? (options.Backend == KernelBackend.CpuAccelerator ? 16 : 2);
        if (cores < 1)
            throw new ArgumentOutOfRangeException(nameof(options), cores, "CpuCores must be at least 1.");
        if (threads < 2 || (threads & (threads - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(options), threads, "CpuThreadsPerGroup must be a power of two, at least 2.");
        int warp = Math.Min(threads, 32);
        var cpu = new CPUDevice(warp, threads / warp, cores);
        var context = Context.Create(b => b.CPU(cpu).EnableAlgorithms());
        try
        {
            var acc = context.GetCPUDevice(0).CreateCPUAccelerator(context);
            return new ComputeDevice(context, acc, DeviceKind.Cpu, options);
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }
}
