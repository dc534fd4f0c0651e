using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// Elementwise arithmetic over flat float buffers of n elements.
//
//   Add    y = a + b          reads 8 B, writes 4 B per element
//   Sub    y = a - b          reads 8 B, writes 4 B
//   Mul    y = a * b          reads 8 B, writes 4 B
//   Scale  y = alpha * x      reads 4 B, writes 4 B
//   Axpy   y = alpha * x + y  reads 8 B, writes 4 B   (accumulates into y, as BLAS saxpy)
//   Fill   y = c              writes 4 B
//   Broadcast y = alpha * s[0]  writes 4 B (s is a device scalar: the backward of a sum or mean)
//
// Every output may alias an input (in-place use is allowed): each element is read and written
// by the same thread. Backward: d(a+b) = (dy, dy), d(a-b) = (dy, -dy), d(a*b) = (dy*b, dy*a),
// d(alpha*x) = alpha*dy; the Functional layer composes those from these same kernels.
// On the Managed backend (host.RunsManaged) the launchers run CpuLoops instead: the same float
// operations per element as the kernels, as managed (partly Vector256) loops on host memory.

/// <summary>Elementwise arithmetic: ILGPU kernels and checked launchers.</summary>
internal static class Elementwise
{
    /// <summary>Bytes <c>Add</c> moves per element: reads a and b (8), writes y (4). Benchmarks report GB/s from it.</summary>
    public const int AddBytesPerElement = 12;

    /// <summary>Bytes <c>Axpy</c> moves per element: reads x and y (8), writes y (4). Benchmarks report GB/s from it.</summary>
    public const int AxpyBytesPerElement = 12;

    // ---------------------------------------------------------------- ILGPU kernels

    // Kernel: y[i] = op(x[i]) over y's length, grid-stride; op carries parameters such as a scale.
    public static void MapKernel<TOp>(ArrayView<float> x, ArrayView<float> y, TOp op)
        where TOp : struct, IUnaryOp
    {
        int n = y.IntLength;
        // Grid and Group reads are thread-local on the CPU accelerator: read them once.
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
            y[i] = op.Apply(new Lane1(x[i])).V;
    }

    // Kernel: y[i] = op(a[i], b[i]) over y's length, grid-stride.
    public static void ZipKernel<TOp>(ArrayView<float> a, ArrayView<float> b, ArrayView<float> y, TOp op)
        where TOp : struct, IBinaryOp
    {
        int n = y.IntLength;
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
            y[i] = op.Apply(new Lane1(a[i]), new Lane1(b[i])).V;
    }

    // Kernel: body.Run(i) for i in [0, n), grid-stride: the ILGPU driver of every IElementBody (over
    // ArrayViews; the body carries its views and scalars).
    internal static void ForEachKernel<TBody>(int n, TBody body)
        where TBody : struct, IElementBody
    {
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
            body.Run(i);
    }

    // Kernel: y[i] = value.
    public static void FillKernel(ArrayView<float> y, float value)
    {
        int n = y.IntLength;
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
            y[i] = value;
    }

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, AddOp>> AddDef =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, ArrayView<float>, AddOp>(ZipKernel);

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, SubOp>> SubDef =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, ArrayView<float>, SubOp>(ZipKernel);

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, MulOp>> MulDef =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, ArrayView<float>, MulOp>(ZipKernel);

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ScaleOp>> ScaleDef =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, ScaleOp>(MapKernel);

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, AxpyOp>> AxpyDef =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, ArrayView<float>, AxpyOp>(ZipKernel);

    // Kernel: y[i] = alpha * s[0], s a one-element device scalar.
    public static void BroadcastKernel(ArrayView<float> s, float alpha, ArrayView<float> y)
    {
        int n = y.IntLength;
        int stride = Grid.DimX * Group.DimX;
        float v = alpha * s[0];
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
            y[i] = v;
    }

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, float, ArrayView<float>>> BroadcastDef =
        KernelDef.Of<ArrayView<float>, float, ArrayView<float>>(BroadcastKernel);

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, float>> FillDef =
        KernelDef.Of<ArrayView<float>, float>(FillKernel);

    // ---------------------------------------------------------------- launchers

    /// <summary>y = a + b, all (n). Outputs may alias inputs (here and below).</summary>
    public static void Add(KernelHost host, ArrayView<float> a, ArrayView<float> b, ArrayView<float> y) =>
        Zip(host, AddDef, a, b, y, default(AddOp), nameof(Add));

    /// <summary>y = a - b.</summary>
    public static void Sub(KernelHost host, ArrayView<float> a, ArrayView<float> b, ArrayView<float> y) =>
        Zip(host, SubDef, a, b, y, default(SubOp), nameof(Sub));

    /// <summary>y = a * b, elementwise.</summary>
    public static void Mul(KernelHost host, ArrayView<float> a, ArrayView<float> b, ArrayView<float> y) =>
        Zip(host, MulDef, a, b, y, default(MulOp), nameof(Mul));

    /// <summary>y = alpha * x.</summary>
    public static void Scale(KernelHost host, ArrayView<float> x, float alpha, ArrayView<float> y) =>
        Map(host, ScaleDef, x, y, new ScaleOp(alpha), nameof(Scale));

    /// <summary>y = alpha * x + y (accumulates into y).</summary>
    public static void Axpy(KernelHost host, float alpha, ArrayView<float> x, ArrayView<float> y)
    {
        Check.SameLength(nameof(Axpy), x, nameof(x), y, nameof(y));
        Zip(host, AxpyDef, x, y, y, new AxpyOp(alpha), nameof(Axpy));
    }

    /// <summary>y = value everywhere.</summary>
    public static void Fill(KernelHost host, ArrayView<float> y, float value)
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.Fits32(nameof(Fill), y, nameof(y));
        if (y.Length == 0)
            return;
        if (host.RunsManaged)
            CpuLoops.Fill(host, y, value);
        else
            host.Load(FillDef)(host.Stream, host.Launch.GridStride(y.Length), y, value);
    }

    // y = op(x) for any unary operator with a kernel definition (def, instantiated for TOp); what names the op in messages.
    internal static void Map<TOp>(KernelHost host, KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, TOp>> def, ArrayView<float> x, ArrayView<float> y, TOp op, string what)
        where TOp : struct, IUnaryOp
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.SameLength(what, x, nameof(x), y, nameof(y));
        if (y.Length == 0)
            return;
        if (host.RunsManaged)
            CpuLoops.Map(host, x, y, op);
        else
            host.Load(def)(host.Stream, host.Launch.GridStride(y.Length), x, y, op);
    }

    // y = op(a, b) for any binary operator with a kernel definition, as Map.
    internal static void Zip<TOp>(KernelHost host, KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, TOp>> def, ArrayView<float> a, ArrayView<float> b, ArrayView<float> y, TOp op, string what)
        where TOp : struct, IBinaryOp
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.SameLength(what, a, nameof(a), b, nameof(b));
        Check.SameLength(what, a, nameof(a), y, nameof(y));
        if (y.Length == 0)
            return;
        if (host.RunsManaged)
            CpuLoops.Zip(host, a, b, y, op);
        else
            host.Load(def)(host.Stream, host.Launch.GridStride(y.Length), a, b, y, op);
    }

    /// <summary>y = alpha * s[0] everywhere, s a one-element device scalar read on the device (no host round-trip).</summary>
    public static unsafe void Broadcast(KernelHost host, ArrayView<float> s, float alpha, ArrayView<float> y)
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.Length(nameof(Broadcast), s, nameof(s), 1, "a scalar");
        Check.Fits32(nameof(Broadcast), y, nameof(y));
        if (y.Length == 0)
            return;
        if (host.RunsManaged)
        {
            host.Stream.Synchronize();
            CpuLoops.Fill(host, y, alpha * CpuLoops.Ptr(s)[0]);
        }
        else
        {
            host.Load(BroadcastDef)(host.Stream, host.Launch.GridStride(y.Length), s, alpha, y);
        }
    }
}
