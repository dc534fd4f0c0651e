using System.Collections.Concurrent;
using System.Diagnostics;
using System.Linq.Expressions;

namespace IlgpuTrain.Kernels.Runtime;

/// <summary>
/// What launchers need to run a kernel: the accelerator, the stream, the launch policy and a
/// cache in which each kernel is compiled and loaded once. Owned by the Functional layer's
/// <c>Device</c>; Kernels knows nothing of allocation.
/// </summary>
public sealed class KernelHost
{
    private readonly ConcurrentDictionary<KernelDef, Lazy<Delegate>> _cache = new();
    private long _compileTicks;

    /// <summary>Creates a host over an accelerator and a stream.</summary>
    /// <param name="accelerator">The accelerator kernels run on.</param>
    /// <param name="stream">The stream launches are queued on.</param>
    /// <param name="policy">The launch policy; <see cref="LaunchPolicy.For"/> when null.</param>
    /// <param name="backend">
    /// The backend; by default <see cref="KernelBackend.Managed"/> on the CPU accelerator and the
    /// GPU's own kind otherwise.
    /// </param>
    /// <exception cref="ArgumentException">The backend does not fit the accelerator.</exception>
    public KernelHost(Accelerator accelerator, AcceleratorStream stream, LaunchPolicy? policy = null, KernelBackend? backend = null)
    {
        Accelerator = accelerator ?? throw new ArgumentNullException(nameof(accelerator));
        Stream = stream ?? throw new ArgumentNullException(nameof(stream));
        Launch = policy ?? LaunchPolicy.For(accelerator);
        bool cpu = accelerator.AcceleratorType == AcceleratorType.CPU;
        var native = accelerator.AcceleratorType switch
        {
            AcceleratorType.CPU => KernelBackend.CpuAccelerator,
            AcceleratorType.Cuda => KernelBackend.Cuda,
            AcceleratorType.OpenCL => KernelBackend.OpenCL,
            var other => throw new ArgumentException($"Accelerator type {other} is not supported; use CUDA, OpenCL or the CPU accelerator.", nameof(accelerator)),
        };
        Backend = backend ?? (cpu ? KernelBackend.Managed : native);
        if (Backend == KernelBackend.Managed ? !cpu : Backend != native)
        {
            throw new ArgumentException(
                $"Backend {Backend} cannot run on a {accelerator.AcceleratorType} accelerator: "
                + "Managed needs the CPU accelerator, and every other backend its own accelerator type.",
                nameof(backend));
        }
    }

    /// <summary>The accelerator.</summary>
    public Accelerator Accelerator { get; }

    /// <summary>The stream every launch goes to.</summary>
    public AcceleratorStream Stream { get; }

    /// <summary>The launch-shape policy.</summary>
    public LaunchPolicy Launch { get; }

    /// <summary>The backend launchers dispatch on.</summary>
    public KernelBackend Backend { get; }

    /// <summary>Whether launchers run their managed loops on host memory (<see cref="KernelBackend.Managed"/>).</summary>
    public bool RunsManaged => Backend == KernelBackend.Managed;

    /// <summary>
    /// Whether each loaded kernel's launches hold a lock of that kernel's: true on OpenCL, where
    /// ILGPU sets a launch's arguments on the kernel object (clSetKernelArg) before enqueuing it,
    /// so two threads launching one kernel at once (the trainer's warm-up step beside the first
    /// real step, or a user's threads) would enqueue each other's arguments or crash the driver.
    /// CUDA passes the arguments with the launch, and the CPU accelerator captures them per launch.
    /// </summary>
    public bool SerializesLaunches => Backend == KernelBackend.OpenCL;

    /// <summary>Whether kernels run on ILGPU's CPU accelerator (its buffers are host memory).</summary>
    public bool IsCpu => Accelerator.AcceleratorType == AcceleratorType.CPU;

    /// <summary>Number of kernels compiled and loaded so far.</summary>
    public int LoadedKernels => _cache.Count;

    /// <summary>The kernels compiled (or being compiled) so far, by name, in no particular order.</summary>
    public IReadOnlyList<string> LoadedKernelNames => _cache.Keys.Select(d => d.Name).ToList();

    /// <summary>Total time spent compiling and loading kernels.</summary>
    public TimeSpan CompileTime => TimeSpan.FromTicks(Interlocked.Read(ref _compileTicks));

    /// <summary>Returns the launcher for <paramref name="def"/>, compiling it on first use only.</summary>
    /// <typeparam name="TLauncher">The launcher delegate type.</typeparam>
    /// <param name="def">The kernel definition.</param>
    /// <returns>The loaded launcher, kept alive by this cache.</returns>
    public TLauncher Load<TLauncher>(KernelDef<TLauncher> def)
        where TLauncher : Delegate
    {
        ArgumentNullException.ThrowIfNull(def);
        return (TLauncher)Entry(def).Value;
    }

    /// <summary>Compiles every given kernel now (in parallel), so later launches start at once.</summary>
    /// <param name="defs">The kernels to warm up.</param>
    public void Warm(IEnumerable<KernelDef> defs)
    {
        ArgumentNullException.ThrowIfNull(defs);
        Parallel.ForEach(defs, d => _ = Entry(d).Value);
    }

    /// <summary>
    /// Starts compiling the given kernels, in order, on one background thread, and returns at once;
    /// a launch that needs a kernel still being compiled waits for that compilation only.
    /// </summary>
    /// <remarks>
    /// One thread, not many: ILGPU 1.5.3 compiles and loads a kernel under its accelerator's lock
    /// (KernelCache.LoadCachedKernel), so loads on one accelerator never run in parallel. A kernel
    /// that fails to compile here fails again, with the same message, at the launch that needs it.
    /// </remarks>
    /// <param name="defs">The kernels, in the order they will first be launched.</param>
    /// <returns>The task that ends when every kernel is compiled (or has failed to).</returns>
    public Task WarmInBackground(IEnumerable<KernelDef> defs)
    {
        ArgumentNullException.ThrowIfNull(defs);
        var list = defs.ToList();
        return Task.Factory.StartNew(
            () =>
            {
                foreach (var d in list)
                {
                    try
                    {
                        _ = Entry(d).Value;
                    }
                    catch (InvalidOperationException)
                    {
                        // Cached in the Lazy: the launch that needs this kernel reports it.
                    }
                }
            },
            CancellationToken.None,
            TaskCreationOptions.LongRunning,
            TaskScheduler.Default);
    }

    /// <summary>Waits for every launch queued on <see cref="Stream"/>.</summary>
    public void Synchronize() => Stream.Synchronize();

    private Lazy<Delegate> Entry(KernelDef def) =>
        _cache.GetOrAdd(def, d => new Lazy<Delegate>(() => Compile(d), LazyThreadSafetyMode.ExecutionAndPublication));

    private Delegate Compile(KernelDef def)
    {
        var sw = Stopwatch.StartNew();
        try
        {
            var launcher = def.Load(Accelerator);
            return SerializesLaunches ? Serialized(launcher) : launcher;
        }
        catch (Exception e)
        {
            throw new InvalidOperationException($"Kernel {def.Name} failed to compile for {Accelerator.AcceleratorType} ({Accelerator.Name}): {e.Message}", e);
        }
        finally
        {
            Interlocked.Add(ref _compileTicks, sw.Elapsed.Ticks);
        }
    }

    /// <summary>
    /// The launcher with the same signature that runs <paramref name="launcher"/> under a lock of
    /// its own: one launch of that kernel at a time, each setting its arguments and enqueuing
    /// before the next begins. Other kernels are not held up.
    /// </summary>
    /// <param name="launcher">A loaded ILGPU launcher (<c>Action&lt;AcceleratorStream, KernelConfig, ...&gt;</c>).</param>
    /// <returns>The serialized launcher, of <paramref name="launcher"/>'s delegate type.</returns>
    internal static Delegate Serialized(Delegate launcher)
    {
        ArgumentNullException.ThrowIfNull(launcher);
        var type = launcher.GetType();
        var parameters = type.GetMethod(nameof(Action.Invoke))!.GetParameters().Select(p => Expression.Parameter(p.ParameterType, p.Name)).ToArray();
        var gate = Expression.Constant(new object());
        var taken = Expression.Variable(typeof(bool), "taken");
        var enter = typeof(Monitor).GetMethod(nameof(Monitor.Enter), [typeof(object), typeof(bool).MakeByRefType()])!;
        var exit = typeof(Monitor).GetMethod(nameof(Monitor.Exit), [typeof(object)])!;
        var body = Expression.Block(
            [taken],
            Expression.TryFinally(
                Expression.Block(Expression.Call(enter, gate, taken), Expression.Invoke(Expression.Constant(launcher, type), parameters)),
                Expression.IfThen(taken, Expression.Call(exit, gate))));
        return Expression.Lambda(type, body, parameters).Compile();
    }
}
