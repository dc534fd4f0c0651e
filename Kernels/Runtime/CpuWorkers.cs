using System.Runtime.ExceptionServices;

namespace IlgpuTrain.Kernels.Runtime;

// A fork-join pool for the managed CPU-accelerator paths (CpuLoops, CpuGemm). A CPU training step
// forks dozens of times for tens to hundreds of microseconds each. Parallel.For pays task creation,
// queueing and a wake-up per call, and the thread pool keeps workers spinning between calls, which
// on two cores takes cycles from the working thread. Here ProcessorCount - 1 background threads
// sleep on their own event; a fork publishes one immutable job, sets the events and the caller
// claims indices too: one wake-up, no allocation beyond the job. Indices are claimed dynamically,
// but each has a fixed piece of work, so which thread ran it never changes a result. A fork from
// inside a job, or while another thread's job runs, runs inline: same results, no deadlock.

/// <summary>Dedicated fork-join workers for the managed CPU paths.</summary>
internal static class CpuWorkers
{
    // Spins of a sleeping worker before it blocks (ManualResetEventSlim yields between spins): long
    // enough to catch the next fork of a training step, short enough not to hold a core when idle.
    private const int WakeSpins = 200;

    private static readonly object Gate = new();
    private static ManualResetEventSlim[]? _wake;
    private static Job? _job;

    /// <summary>Threads a fork can use: the caller and the workers.</summary>
    internal static int Threads => Environment.ProcessorCount;

    /// <summary>Runs body(i) for i in [0, count) on up to parallelism threads (the caller included) and returns when all are done; rethrows the first exception.</summary>
    internal static void For(int count, int parallelism, Action<int> body)
    {
        if (count <= 0)
            return;
        if (count == 1 || parallelism <= 1 || Threads <= 1 || Monitor.IsEntered(Gate) || !Monitor.TryEnter(Gate))
        {
            for (int i = 0; i < count; i++)
                body(i);
            return;
        }

        try
        {
            var wake = _wake ??= Start();
            var job = new Job(body, count);
            Volatile.Write(ref _job, job);
            int helpers = Math.Min(Math.Min(parallelism, count) - 1, wake.Length);
            for (int w = 0; w < helpers; w++)
                wake[w].Set();
            job.Work();
            var spinner = default(SpinWait);
            while (Volatile.Read(ref job.Pending) > 0)
                spinner.SpinOnce(sleep1Threshold: -1);
            Volatile.Write(ref _job, null);
            job.Error?.Throw();
        }
        finally
        {
            Monitor.Exit(Gate);
        }
    }

    private static ManualResetEventSlim[] Start()
    {
        var wake = new ManualResetEventSlim[Math.Max(0, Threads - 1)];
        for (int w = 0; w < wake.Length; w++)
        {
            var ev = wake[w] = new ManualResetEventSlim(false, WakeSpins);
            new Thread(() => Loop(ev)) { IsBackground = true, Name = $"IlgpuTrain CPU worker {w + 1}" }.Start();
        }

        return wake;
    }

    private static void Loop(ManualResetEventSlim wake)
    {
        while (true)
        {
            wake.Wait();
            wake.Reset();
            Volatile.Read(ref _job)?.Work();
        }
    }

    private sealed class Job(Action<int> body, int count)
    {
        private readonly int _count = count;
        private int _next = -1;

        public int Pending = count;

        public ExceptionDispatchInfo? Error { get; private set; }

        public void Work()
        {
            int i;
            while ((i = Interlocked.Increment(ref _next)) < _count)
            {
                try
                {
                    body(i);
                }
                catch (Exception e)
                {
                    lock (this)
                        Error ??= ExceptionDispatchInfo.Capture(e);
                }
                finally
                {
                    Interlocked.Decrement(ref Pending);
                }
            }
        }
    }
}
