using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace IlgpuTrain.Functional;

/// <summary>
/// Where a training step's time goes, op by op. Attach one to a step (<see cref="StepScope.Profile"/>)
/// and every differentiable op it records is timed: its forward as the time since the previous
/// recorded op (or the step's start), its backward around its VJP, each after synchronizing the
/// device, so on a GPU the times are the kernels' and not their launches'. Work outside the tape
/// (the optimizer update, copying the loss to the host) is added with <see cref="Time"/>. The
/// synchronization costs a little on a GPU, so profile steps apart from the steps you time.
/// Accumulates over any number of steps; <see cref="Steps"/> counts them for the per-step table.
/// </summary>
/// <example>
/// <code>
/// var profile = new StepProfile();
/// for (int i = 0; i &lt; 20; i++)
/// {
///     using var step = device.BeginStep();
///     step.Profile = profile;
///     ... // forward and backward through Autodiff.ValueAndGrad
///     profile.Time("optimizer", device, () => (parameters, state) = optimizer.Step(parameters, grads, state));
///     profile.EndStep();
/// }
/// Console.WriteLine(profile.Table());
/// </code>
/// </example>
public sealed class StepProfile
{
    private readonly Dictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly List<string> _order = new();
    private long _mark = Stopwatch.GetTimestamp();

    private sealed class Entry
    {
        public double ForwardMs;
        public int ForwardCalls;
        public double BackwardMs;
        public int BackwardCalls;
        public double OtherMs;
        public int OtherCalls;
    }

    /// <summary>Steps ended with <see cref="EndStep"/>.</summary>
    public int Steps { get; private set; }

    /// <summary>Ends a step: the table divides by the number of steps.</summary>
    public void EndStep() => Steps++;

    /// <summary>Every op and outside piece, in the order first seen, with its accumulated times.</summary>
    public IReadOnlyList<OpTime> Ops => _order.Select(name =>
    {
        var e = _entries[name];
        return new OpTime(name, e.ForwardMs, e.ForwardCalls, e.BackwardMs, e.BackwardCalls, e.OtherMs, e.OtherCalls);
    }).ToList();

    /// <summary>All the time accounted for, in milliseconds.</summary>
    public double TotalMs => _entries.Values.Sum(e => e.ForwardMs + e.BackwardMs + e.OtherMs);

    /// <summary>Starts the forward clock: what runs from here to the next recorded op is that op's forward.</summary>
    /// <param name="device">The device, synchronized first so earlier work is not counted.</param>
    public void Mark(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        device.Synchronize();
        _mark = Stopwatch.GetTimestamp();
    }

    /// <summary>Times <paramref name="work"/> as a piece of the step outside the tape (synchronized before and after), and restarts the forward clock.</summary>
    /// <param name="name">What it is ("optimizer", "loss to host").</param>
    /// <param name="device">The device it runs on.</param>
    /// <param name="work">The work.</param>
    public void Time(string name, Device device, Action work)
    {
        ArgumentNullException.ThrowIfNull(work);
        long start = Start(device);
        work();
        Stop(name, device, start);
    }

    /// <summary>Times <paramref name="work"/> as a piece of the step outside the tape, as <see cref="Time(string, Device, Action)"/>, and returns its result.</summary>
    /// <typeparam name="T">What the work returns.</typeparam>
    /// <param name="name">What it is ("optimizer", "metrics to host").</param>
    /// <param name="device">The device it runs on.</param>
    /// <param name="work">The work.</param>
    /// <returns>The work's result.</returns>
    public T Time<T>(string name, Device device, Func<T> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        long start = Start(device);
        var result = work();
        Stop(name, device, start);
        return result;
    }

    /// <summary>Starts timing a piece of the step outside the tape that is not one delegate: synchronizes the device and returns the time for <see cref="Stop"/>.</summary>
    /// <param name="device">The device, synchronized first so earlier work is not counted.</param>
    /// <returns>The start, for <see cref="Stop"/>.</returns>
    public long Start(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        device.Synchronize();
        return Stopwatch.GetTimestamp();
    }

    /// <summary>Ends a piece outside the tape begun at <paramref name="start"/> (<see cref="Start"/>): synchronizes, adds the time under <paramref name="name"/> and restarts the forward clock.</summary>
    /// <param name="name">What it is.</param>
    /// <param name="device">The device it runs on.</param>
    /// <param name="start">What <see cref="Start"/> returned.</param>
    public void Stop(string name, Device device, long start)
    {
        ArgumentNullException.ThrowIfNull(device);
        device.Synchronize();
        Add(name, Stopwatch.GetElapsedTime(start));
        _mark = Stopwatch.GetTimestamp();
    }

    /// <summary>Adds time measured elsewhere (host work such as waiting for data) to a piece outside the tape, as one call.</summary>
    /// <param name="name">What it is ("data (waiting for the batch)").</param>
    /// <param name="elapsed">How long it took.</param>
    public void Add(string name, TimeSpan elapsed)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (elapsed < TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(elapsed), elapsed, "StepProfile.Add: a duration cannot be negative.");
        var e = Get(name);
        e.OtherMs += elapsed.TotalMilliseconds;
        e.OtherCalls++;
    }

    /// <summary>A recorded op's forward ended now: the time since the last mark is its.</summary>
    internal void Forward(string op, Device device)
    {
        device.Synchronize();
        long now = Stopwatch.GetTimestamp();
        var e = Get(op);
        e.ForwardMs += Stopwatch.GetElapsedTime(_mark, now).TotalMilliseconds;
        e.ForwardCalls++;
        _mark = Stopwatch.GetTimestamp();
    }

    /// <summary>Times one VJP.</summary>
    internal void Backward(string op, Device device, Action vjp)
    {
        device.Synchronize();
        long t0 = Stopwatch.GetTimestamp();
        vjp();
        device.Synchronize();
        var e = Get(op);
        e.BackwardMs += Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        e.BackwardCalls++;
        _mark = Stopwatch.GetTimestamp();
    }

    private Entry Get(string name)
    {
        if (!_entries.TryGetValue(name, out var e))
        {
            _entries[name] = e = new Entry();
            _order.Add(name);
        }

        return e;
    }

    /// <summary>
    /// The profile as a table, per step (over <see cref="Steps"/>, at least 1): each op's forward,
    /// backward and outside milliseconds, calls per step and share of the total, largest first.
    /// </summary>
    /// <returns>The table.</returns>
    public string Table()
    {
        int steps = Math.Max(1, Steps);
        double total = TotalMs;
        var sb = new StringBuilder();
        string header = $"{"op",-28} {"fwd ms",9} {"bwd ms",9} {"other ms",9} {"total ms",9} {"share",6} {"calls",6}";
        sb.AppendLine(header);
        sb.AppendLine(new string('-', header.Length));
        foreach (var op in Ops.OrderByDescending(o => o.TotalMs))
        {
            int calls = Math.Max(op.ForwardCalls, Math.Max(op.BackwardCalls, op.OtherCalls));
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"{op.Op,-28} {op.ForwardMs / steps,9:F3} {op.BackwardMs / steps,9:F3} {op.OtherMs / steps,9:F3} {op.TotalMs / steps,9:F3} {(total > 0 ? op.TotalMs / total : 0),6:P0} {(double)calls / steps,6:0.#}");
        }

        sb.AppendLine(CultureInfo.InvariantCulture, $"{"step",-28} {Ops.Sum(o => o.ForwardMs) / steps,9:F3} {Ops.Sum(o => o.BackwardMs) / steps,9:F3} {Ops.Sum(o => o.OtherMs) / steps,9:F3} {total / steps,9:F3} {"100%",6} {"",6}");
        return sb.ToString();
    }
}

/// <summary>One op's (or outside piece's) accumulated time in a <see cref="StepProfile"/>.</summary>
/// <param name="Op">The op name, as the tape records it, or the outside piece's name.</param>
/// <param name="ForwardMs">Forward milliseconds, all steps together.</param>
/// <param name="ForwardCalls">Forward calls.</param>
/// <param name="BackwardMs">Backward (VJP) milliseconds.</param>
/// <param name="BackwardCalls">VJP calls.</param>
/// <param name="OtherMs">Milliseconds of work outside the tape under this name.</param>
/// <param name="OtherCalls">Calls of that work.</param>
public sealed record OpTime(string Op, double ForwardMs, int ForwardCalls, double BackwardMs, int BackwardCalls, double OtherMs, int OtherCalls)
{
    /// <summary>Forward, backward and outside milliseconds together.</summary>
    public double TotalMs => ForwardMs + BackwardMs + OtherMs;
}
