using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace IlgpuTrain.Kernels.Runtime;

// Managed fast paths for flat, per-element kernels on ILGPU's CPU accelerator. A CPU-accelerator
// launch costs ~60-140 us and its grid-stride loop runs 5-8x slower than a plain C# loop
// (PERFORMANCE.md), so on the Managed backend (KernelHost.RunsManaged) launchers run these loops on
// the buffers' host memory after synchronizing the stream; the CpuAccelerator backend runs the
// kernels on the same memory. The drivers (Map, Zip, ActivationBackward, ForEach) run the very
// operator structs and element bodies the generic kernels run, and an operator's math is one
// generic method over lanes (Runtime/Lanes.cs) that the kernels run as Lane1 and these loops as
// Lane8, the same IEEE operations per lane, never FMA (neither the kernels nor the JIT contract
// a*b+c): bitwise equal to the kernel by construction. Threads split the work only from
// ParallelThreshold elements (a CpuWorkers fork-join costs microseconds), in fixed chunks
// independent of thread timing.

/// <summary>Managed loops that replace per-element kernels on the CPU accelerator.</summary>
internal static unsafe class CpuLoops
{
    /// <summary>Below this many elements the loop runs on the calling thread.</summary>
    internal const int ParallelThreshold = 1 << 16;

    // Chunks are a multiple of 64 floats (whole cache lines, whole vectors).
    private const int ChunkAlign = 64;

    /// <summary>A body over an index range [start, end).</summary>
    internal interface IRange
    {
        /// <summary>Runs indices start (inclusive) to end (exclusive).</summary>
        void Run(int start, int end);
    }

    /// <summary>Host address of a CPU-accelerator view.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static T* Ptr<T>(ArrayView<T> view)
        where T : unmanaged => view.Length == 0 ? null : (T*)view.LoadEffectiveAddressAsPtr();

    /// <summary>The most threads a loop of <paramref name="host"/> splits over.</summary>
    internal static int Workers(KernelHost host) => Math.Max(1, Math.Min(Environment.ProcessorCount, host.Launch.MaxGroups));

    /// <summary>Waits for queued kernels, then runs body over [0, n), split over threads for large n.</summary>
    internal static void For<TBody>(KernelHost host, long n, TBody body, int grain = 1)
        where TBody : struct, IRange
    {
        host.Stream.Synchronize();
        int len = checked((int)n);
        long work = (long)len * grain;
        int threads = (int)Math.Min(Workers(host), Math.Min(len, work / (ParallelThreshold / 2)));
        if (threads <= 1)
            body.Run(0, len);
        else
            Split(body, len, threads, grain);
    }

    // Kept apart from For so that the single-threaded path does not allocate the closure.
    private static void Split<TBody>(TBody body, int len, int threads, int grain)
        where TBody : struct, IRange
    {
        int align = grain == 1 ? ChunkAlign : 1;
        int chunk = (((len + threads - 1) / threads) + align - 1) / align * align;
        int chunks = (len + chunk - 1) / chunk;
        CpuWorkers.For(chunks, threads, c => body.Run(c * chunk, Math.Min(len, (c + 1) * chunk)));
    }

    /// <summary>body.Run(i) for i in [0, n) (Elementwise.ForEachKernel).</summary>
    internal static void ForEach<TBody>(KernelHost host, long n, TBody body, int grain = 1)
        where TBody : struct, IElementBody =>
        For(host, n, new EachBody<TBody>(body), grain);

    /// <summary>y = op(x) elementwise (Elementwise.MapKernel).</summary>
    internal static void Map<TOp>(KernelHost host, ArrayView<float> x, ArrayView<float> y, TOp op)
        where TOp : struct, IUnaryOp =>
        For(host, y.Length, new MapBody<TOp>(Ptr(x), Ptr(y), op));

    /// <summary>y = op(a, b) elementwise (Elementwise.ZipKernel).</summary>
    internal static void Zip<TOp>(KernelHost host, ArrayView<float> a, ArrayView<float> b, ArrayView<float> y, TOp op)
        where TOp : struct, IBinaryOp =>
        For(host, y.Length, new ZipBody<TOp>(Ptr(a), Ptr(b), Ptr(y), op));

    /// <summary>dx = dy * op.Derivative(x) (Activations.BackwardKernel).</summary>
    internal static void ActivationBackward<TOp>(KernelHost host, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dx, TOp op)
        where TOp : struct, IActivationOp =>
        For(host, dx.Length, new BackwardBody<TOp>(Ptr(x), Ptr(dy), Ptr(dx), op));

    /// <summary>y = value (Elementwise.FillKernel, Broadcast).</summary>
    internal static void Fill(KernelHost host, ArrayView<float> y, float value)
    {
        host.Stream.Synchronize();
        new Span<float>(Ptr(y), checked((int)y.Length)).Fill(value);
    }

    /// <summary>y[r, j] = x[r, j] + b[j] over rows of width f (BiasAdd.AddBody with S = 1).</summary>
    internal static void BiasRows(KernelHost host, ArrayView<float> x, ArrayView<float> b, ArrayView<float> y, int f) =>
        For(host, y.Length / f, new BiasRowsBody(Ptr(x), Ptr(b), Ptr(y), f), f);

    /// <summary>y[p, s] = x[p, s] + b[p % c] over planes of s (BiasAdd.AddBody).</summary>
    internal static void BiasPlanes(KernelHost host, ArrayView<float> x, ArrayView<float> b, ArrayView<float> y, int c, int s) =>
        For(host, y.Length / s, new BiasPlanesBody(Ptr(x), Ptr(b), Ptr(y), c, s), s);

    // Lane8, then Lane1 on the tail (and everywhere without AVX). Each IRange
    // hands its fields to a static loop as arguments: as fields of `this` (a reference into the
    // fork-join closure) the pointers and the operator's scalars would be reloaded every iteration,
    // since a store through y may alias them, and a broadcast such as AxpyOp's
    // Vector256.Create(Alpha) would not be hoisted; as arguments they are registers.
    private readonly struct MapBody<TOp>(float* x, float* y, TOp op) : IRange
        where TOp : struct, IUnaryOp
    {
        public void Run(int start, int end) => Map(x, y, start, end, op);
    }

    /// <summary>y[i] = op(x[i]) for i in [start, end) on the calling thread (the Map driver's loop).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Map<TOp>(float* x, float* y, int start, int end, TOp op)
        where TOp : struct, IUnaryOp
    {
        int i = start;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= end - 8; i += 8)
                op.Apply(new Lane8(Vector256.Load(x + i))).V.Store(y + i);
        }

        for (; i < end; i++)
            y[i] = op.Apply(new Lane1(x[i])).V;
    }

    private readonly struct ZipBody<TOp>(float* a, float* b, float* y, TOp op) : IRange
        where TOp : struct, IBinaryOp
    {
        public void Run(int start, int end) => Zip(a, b, y, start, end, op);
    }

    /// <summary>y[i] = op(a[i], b[i]) for i in [start, end) on the calling thread (the Zip driver's loop).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Zip<TOp>(float* a, float* b, float* y, int start, int end, TOp op)
        where TOp : struct, IBinaryOp
    {
        int i = start;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= end - 8; i += 8)
                op.Apply(new Lane8(Vector256.Load(a + i)), new Lane8(Vector256.Load(b + i))).V.Store(y + i);
        }

        for (; i < end; i++)
            y[i] = op.Apply(new Lane1(a[i]), new Lane1(b[i])).V;
    }

    private readonly struct BackwardBody<TOp>(float* x, float* dy, float* dx, TOp op) : IRange
        where TOp : struct, IActivationOp
    {
        public void Run(int start, int end) => Backward(x, dy, dx, start, end, op);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Backward<TOp>(float* x, float* dy, float* dx, int start, int end, TOp op)
        where TOp : struct, IActivationOp
    {
        int i = start;
        if (Vector256.IsHardwareAccelerated)
        {
            // dy * f'(x), multiplied as the kernel does (so inf * 0 is NaN, -g * 0 is -0).
            for (; i <= end - 8; i += 8)
                (Vector256.Load(dy + i) * op.Derivative(new Lane8(Vector256.Load(x + i))).V).Store(dx + i);
        }

        for (; i < end; i++)
            dx[i] = dy[i] * op.Derivative(new Lane1(x[i])).V;
    }

    private readonly struct EachBody<TBody>(TBody body) : IRange
        where TBody : struct, IElementBody
    {
        public void Run(int start, int end) => Each(body, start, end);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Each<TBody>(TBody body, int start, int end)
        where TBody : struct, IElementBody
    {
        for (int i = start; i < end; i++)
            body.Run(i);
    }

    private readonly struct BiasRowsBody(float* x, float* b, float* y, int f) : IRange
    {
        public void Run(int start, int end)
        {
            for (int r = start; r < end; r++)
            {
                long o = (long)r * f;
                Zip(x + o, b, y + o, 0, f, default(AddOp));
            }
        }
    }

    /// <summary>Planes [start, end) of y[p, s] = x[p, s] + b[p % c] (BiasAdd.AddBody with planes of s).</summary>
    internal readonly struct BiasPlanesBody(float* x, float* b, float* y, int c, int s) : IRange
    {
        public void Run(int start, int end)
        {
            for (int p = start; p < end; p++)
            {
                long o = (long)p * s;
                float bias = b[p % c];
                int i = 0;
                if (Vector256.IsHardwareAccelerated)
                {
                    var vb = Vector256.Create(bias);
                    for (; i <= s - 8; i += 8)
                        (Vector256.Load(x + o + i) + vb).Store(y + o + i);
                }

                for (; i < s; i++)
                    y[o + i] = x[o + i] + bias;
            }
        }
    }
}
