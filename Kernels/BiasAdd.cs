using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// Bias add: a bias vector broadcast over the rows of a row-major matrix.
//
//   y[n, f] = x[n, f] + b[f]       x (N,F), b (F), y (N,F)
//   reads 4 B of x per element plus b (F floats, re-read from cache), writes 4 B per element
//
// y may alias x (in-place): each element is read and written by the same thread. On the CPU
// accelerator the launchers run CpuLoops (row by row, x + b in the kernel's order: bitwise equal).
//   y[n, c, s] = x[n, c, s] + b[c]    ForwardChannels: x (N,C,S) with S = H*W, a per-channel bias (convolutions)
//
// Backward: dx = dy (nothing to compute; pass dy on) and db[f] = sum over n of dy[n, f], the column
// sum of dy, which the Reductions kernels provide. Neither is computed here.

/// <summary>Bias add over the rows of a matrix: ILGPU kernel and checked launcher.</summary>
internal static class BiasAdd
{
    // ---------------------------------------------------------------- ILGPU kernels

    /// <summary>Kernel: y[i] = x[i] + b[i mod F] over the N*F elements of y, grid-stride.</summary>
    /// <param name="x">Input (N,F).</param>
    /// <param name="b">Bias (F).</param>
    /// <param name="y">Output (N,F).</param>
    /// <param name="f">Features F (at least 1).</param>
    public static void ForwardKernel(ArrayView<float> x, ArrayView<float> b, ArrayView<float> y, int f)
    {
        int total = y.IntLength;
        // Grid and Group reads are thread-local on the CPU accelerator: read them once.
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < total; i += stride)
            y[i] = x[i] + b[i % f];
    }

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int>> ForwardDef =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, ArrayView<float>, int>(ForwardKernel);

    /// <summary>Kernel: y[i] = x[i] + b[(i / S) mod C] over the N*C*S elements of y, grid-stride.</summary>
    /// <param name="x">Input (N,C,S).</param>
    /// <param name="b">Bias (C).</param>
    /// <param name="y">Output (N,C,S).</param>
    /// <param name="c">Channels C (at least 1).</param>
    /// <param name="s">Inner size S (at least 1).</param>
    public static void ForwardChannelsKernel(ArrayView<float> x, ArrayView<float> b, ArrayView<float> y, int c, int s)
    {
        int total = y.IntLength;
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < total; i += stride)
            y[i] = x[i] + b[(i / s) % c];
    }

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>> ForwardChannelsDef =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(ForwardChannelsKernel);

    // ---------------------------------------------------------------- launchers

    /// <summary>y[n, f] = x[n, f] + b[f]. y may alias x.</summary>
    /// <param name="host">Where to run.</param>
    /// <param name="x">Input (N,F), row-major.</param>
    /// <param name="b">Bias (F).</param>
    /// <param name="y">Output (N,F).</param>
    /// <param name="n">Rows N.</param>
    /// <param name="f">Features F.</param>
    public static void Forward(KernelHost host, ArrayView<float> x, ArrayView<float> b, ArrayView<float> y, int n, int f)
    {
        ArgumentNullException.ThrowIfNull(host);
        const string op = nameof(BiasAdd) + "." + nameof(Forward);
        Check.Dimension(op, n, nameof(n));
        Check.Dimension(op, f, nameof(f));
        long total = (long)n * f;
        string shape = $"(N, F) = ({n}, {f})";
        Check.Length(op, x, nameof(x), total, shape);
        Check.Length(op, b, nameof(b), f, $"(F) = ({f})");
        Check.Length(op, y, nameof(y), total, shape);
        Check.Fits32(op, y, nameof(y));
        if (total == 0)
            return;
        if (host.RunsManaged)
        {
            CpuLoops.BiasRows(host, x, b, y, f);
            return;
        }

        host.Load(ForwardDef)(host.Stream, host.Launch.GridStride(total), x, b, y, f);
    }

    /// <summary>y[n, c, s] = x[n, c, s] + b[c] for x (N, C, S): a per-channel bias over NCHW with S = H*W. y may alias x.</summary>
    /// <param name="host">Where to run.</param>
    /// <param name="x">Input (N,C,S), row-major.</param>
    /// <param name="b">Bias (C).</param>
    /// <param name="y">Output (N,C,S).</param>
    /// <param name="n">Batch N.</param>
    /// <param name="c">Channels C.</param>
    /// <param name="s">Inner size S.</param>
    public static void ForwardChannels(KernelHost host, ArrayView<float> x, ArrayView<float> b, ArrayView<float> y, int n, int c, int s)
    {
        ArgumentNullException.ThrowIfNull(host);
        const string op = nameof(BiasAdd) + "." + nameof(ForwardChannels);
        Check.Dimension(op, n, nameof(n));
        Check.Dimension(op, c, nameof(c));
        Check.Dimension(op, s, nameof(s));
        long total = (long)n * c * s;
        string shape = $"(N, C, S) = ({n}, {c}, {s})";
        Check.Length(op, x, nameof(x), total, shape);
        Check.Length(op, b, nameof(b), c, $"(C) = ({c})");
        Check.Length(op, y, nameof(y), total, shape);
        Check.Fits32(op, y, nameof(y));
        if (total == 0)
            return;
        if (host.RunsManaged)
        {
            CpuLoops.BiasPlanes(host, x, b, y, c, s);
            return;
        }

        host.Load(ForwardChannelsDef)(host.Stream, host.Launch.GridStride(total), x, b, y, c, s);
    }
}
