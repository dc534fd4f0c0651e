using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// Permutation of the axes of a row-major tensor (torch.permute followed by .contiguous()), and
// its backward, the inverse permutation of dy.
//
//   x (d_0, ..., d_{r-1}), axes a (a permutation of 0..r-1), y (d_{a_0}, ..., d_{a_{r-1}})
//   forward   y[i_0, ..., i_{r-1}] = x[j] with j_{a_k} = i_k, i.e. flat x offset sum_k i_k stride_x(a_k)
//   backward  dx[that offset] = dy[i]     (the same map, written the other way: a scatter that
//                                          covers every element of dx once, since it is a bijection)
//
// One element body serves both: element e of the dense side (y, or dy) is split into its indices
// over y's dimensions and mapped to the strided side by the strides of x. Ranks up to MaxRank;
// lower ranks are padded in front with (size 1, stride 0). Bytes per element: reads 4 B, writes
// 4 B, both directions; the strided side is read (forward) or written (backward) out of order.
// Backward OVERWRITES dx.

/// <summary>Axis permutation of a row-major tensor and its inverse (the backward): one element body and checked launchers.</summary>
internal static class Permute
{
    /// <summary>The largest rank the body handles.</summary>
    public const int MaxRank = 6;

    private static readonly ForEachDef<CopyBody<ViewElements<float>>> CopyDef = new();

    /// <summary>The dense side's dimensions N0..N5 (y's, padded in front with 1) and, per dimension, the stride S0..S5 of the strided side (x) it walks.</summary>
    internal readonly struct Layout(int n1, int n2, int n3, int n4, int n5, int s0, int s1, int s2, int s3, int s4, int s5)
    {
        public readonly int N1 = n1, N2 = n2, N3 = n3, N4 = n4, N5 = n5;
        public readonly int S0 = s0, S1 = s1, S2 = s2, S3 = s3, S4 = s4, S5 = s5;

        // The strided side's offset of dense element e: its indices over (N0, ..., N5), innermost
        // last, each times its stride.
        public int Offset(int e) => RowOffset(e / N5) + (e % N5 * S5);

        // The strided side's offset of the first element of dense row r (a row: N5 elements, the
        // innermost dimension), whose k-th element is S5 further per step.
        public int RowOffset(int row)
        {
            int r = row;
            int i4 = r % N4;
            r /= N4;
            int i3 = r % N3;
            r /= N3;
            int i2 = r % N2;
            r /= N2;
            int i1 = r % N1;
            r /= N1;
            return (r * S0) + (i1 * S1) + (i2 * S2) + (i3 * S3) + (i4 * S4);
        }
    }

    // Dense element e: gather (toStrided 0) dense[e] = strided[offset(e)], or scatter (toStrided 1)
    // strided[offset(e)] = dense[e].
    internal readonly struct CopyBody<TF>(TF strided, TF dense, Layout layout, int toStrided) : IElementBody
        where TF : struct, IElements<float>
    {
        public void Run(int e)
        {
            int s = layout.Offset(e);
            if (toStrided != 0)
                strided[s] = dense[e];
            else
                dense[e] = strided[s];
        }
    }

    // Dense rows [start, end) on the CPU: the element body's map (Layout.RowOffset, then S5 per
    // element), with the index split done once per row rather than once per element, which
    // dominated: five divisions for every float moved. Contiguous rows (S5 = 1) copy as spans.
    internal readonly unsafe struct RowsBody(float* strided, float* dense, Layout layout, int toStrided) : CpuLoops.IRange
    {
        public void Run(int start, int end)
        {
            int n5 = layout.N5, s5 = layout.S5;
            for (int row = start; row < end; row++)
            {
                float* x = strided + layout.RowOffset(row);
                float* y = dense + ((long)row * n5);
                if (s5 == 1)
                {
                    if (toStrided != 0)
                        new ReadOnlySpan<float>(y, n5).CopyTo(new Span<float>(x, n5));
                    else
                        new ReadOnlySpan<float>(x, n5).CopyTo(new Span<float>(y, n5));
                }
                else if (toStrided != 0)
                {
                    for (int i = 0; i < n5; i++)
                        x[(long)i * s5] = y[i];
                }
                else
                {
                    for (int i = 0; i < n5; i++)
                        y[i] = x[(long)i * s5];
                }
            }
        }
    }

    // ---------------------------------------------------------------- launchers

    /// <summary>y = x with its axes permuted: y's dimension k is x's dimension axes[k] (row-major, contiguous result).</summary>
    public static void Forward(KernelHost host, ArrayView<float> x, ArrayView<float> y, ReadOnlySpan<int> xDims, ReadOnlySpan<int> axes) =>
        Copy("Permute.Forward", host, x, nameof(x), y, nameof(y), xDims, axes, 0);

    /// <summary>The backward of <see cref="Forward"/>: dx = dy with the axes put back (overwrites dx).</summary>
    public static void Backward(KernelHost host, ArrayView<float> dy, ArrayView<float> dx, ReadOnlySpan<int> xDims, ReadOnlySpan<int> axes) =>
        Copy("Permute.Backward", host, dx, nameof(dx), dy, nameof(dy), xDims, axes, 1);

    /// <summary>Throws unless axes is a permutation of 0..rank-1 of a rank at most <see cref="MaxRank"/>.</summary>
    public static void CheckAxes(string op, ReadOnlySpan<int> xDims, ReadOnlySpan<int> axes)
    {
        string dims = $"({string.Join(", ", xDims.ToArray())})";
        if (xDims.Length > MaxRank)
            throw new ArgumentException($"{op}: x {dims} has rank {xDims.Length}, more than the {MaxRank} axes a permutation handles; reshape to merge neighbouring axes that stay together first.", nameof(xDims));
        if (axes.Length != xDims.Length)
            throw new ArgumentException($"{op}: axes [{string.Join(", ", axes.ToArray())}] name {axes.Length} axes but x {dims} has {xDims.Length}; give each axis of x once.", nameof(axes));
        Span<bool> seen = stackalloc bool[MaxRank];
        foreach (int a in axes)
        {
            if (a < 0 || a >= xDims.Length || seen[a])
                throw new ArgumentException($"{op}: axes [{string.Join(", ", axes.ToArray())}] must be a permutation of 0..{xDims.Length - 1} for x {dims} (each axis once).", nameof(axes));
            seen[a] = true;
        }
    }

    private static unsafe void Copy(string op, KernelHost host, ArrayView<float> strided, string stridedName, ArrayView<float> dense, string denseName, ReadOnlySpan<int> xDims, ReadOnlySpan<int> axes, int toStrided)
    {
        ArgumentNullException.ThrowIfNull(host);
        CheckAxes(op, xDims, axes);
        long length = 1;
        foreach (int d in xDims)
        {
            Check.Dimension(op, d, nameof(xDims));
            length *= d;
        }

        string shape = $"x ({string.Join(", ", xDims.ToArray())})";
        Check.Length(op, strided, stridedName, length, shape);
        Check.Length(op, dense, denseName, length, shape);
        Check.Fits32(op, dense, denseName);
        if (length == 0)
            return;

        // Row-major strides of x, then y's dimensions and the x stride each walks, padded in front.
        int rank = xDims.Length;
        Span<int> xStride = stackalloc int[MaxRank];
        int s = 1;
        for (int i = rank - 1; i >= 0; i--)
        {
            xStride[i] = s;
            s *= xDims[i];
        }

        Span<int> n = stackalloc int[MaxRank];
        Span<int> st = stackalloc int[MaxRank];
        n.Fill(1);
        for (int k = 0; k < rank; k++)
        {
            n[MaxRank - rank + k] = xDims[axes[k]];
            st[MaxRank - rank + k] = xStride[axes[k]];
        }

        var layout = new Layout(n[1], n[2], n[3], n[4], n[5], st[0], st[1], st[2], st[3], st[4], st[5]);
        if (host.RunsManaged)
            CpuLoops.For(host, length / n[5], new RowsBody(CpuLoops.Ptr(strided), CpuLoops.Ptr(dense), layout, toStrided), n[5]);
        else
            CopyDef.Launch(host, (int)length, new(new(strided), new(dense), layout, toStrided));
    }
}
