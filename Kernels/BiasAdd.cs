using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// Bias add: a bias vector broadcast over the rows of a row-major matrix.
//
//   y[n, f] = x[n, f] + b[f]       x (N,F), b (F), y (N,F)
//   reads 4 B of x per element plus b (F floats, re-read from cache), writes 4 B per element
//
// y may alias x (in-place): each element is read and written by the same thread.
// Backward: dx = dy (nothing to compute; pass dy on) and db[f] = sum over n of dy[n, f], the column
// sum of dy, which the Reductions kernels provide. Neither is computed here.

/// <summary>Bias add over the rows of a matrix: CPU reference, ILGPU kernel and checked launcher.</summary>
public static class BiasAdd
{
    // ---------------------------------------------------------------- CPU reference (the spec)

    /// <summary>Reference: y[n, f] = x[n, f] + b[f].</summary>
    /// <param name="x">Input (N,F), row-major.</param>
    /// <param name="b">Bias (F).</param>
    /// <param name="y">Output (N,F) (may alias x).</param>
    /// <param name="n">Rows N.</param>
    /// <param name="f">Features F.</param>
    public static void ForwardReference(ReadOnlySpan<float> x, ReadOnlySpan<float> b, Span<float> y, int n, int f)
    {
        for (int row = 0; row < n; row++)
        {
            for (int col = 0; col < f; col++)
                y[(row * f) + col] = x[(row * f) + col] + b[col];
        }
    }

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
        host.Load(ForwardDef)(host.Stream, host.Launch.GridStride(total), x, b, y, f);
    }
}
