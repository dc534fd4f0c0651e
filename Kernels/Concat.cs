using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// Concatenation along an axis (torch.cat) and its backward (the split of dy).
//
// Every tensor is seen as a row-major matrix around the axis: input k of shape
// (outer, size_k, inner) is the matrix (outer, W_k) with W_k = size_k * inner, and the output
// (outer, sum_k size_k, inner) is the matrix (outer, W) with W = sum_k W_k. Input k occupies
// columns [offset_k, offset_k + W_k) of every output row, offset_k = (sum_{j<k} size_j) * inner.
//
//   forward   y[o, offset_k + j] = x_k[o, j]      one launch per input
//   backward  dx_k[o, j] = dy[o, offset_k + j]    one launch per input that needs a gradient
//
// Bytes per element: reads 4 B, writes 4 B, both directions. Backward OVERWRITES dx_k. The
// inputs' slices are disjoint, so the forward launches never write the same element twice.

/// <summary>Concatenation along an axis and its split backward: one element body and checked launchers.</summary>
internal static class Concat
{
    // Element e of one input (or its gradient) and its place in the output: forward copies part to
    // whole, backward whole to part. Run by the row drivers (Runtime/RowDrivers.cs).
    internal readonly struct SliceBody<TF>(TF part, TF whole, int width, int yWidth, int offset, int toWhole) : IElementBody
        where TF : struct, IElements<float>
    {
        public void Run(int e)
        {
            int o = e / width;
            int w = (o * yWidth) + offset + (e - (o * width));
            if (toWhole != 0)
                whole[w] = part[e];
            else
                part[e] = whole[w];
        }
    }

    private static readonly ForEachDef<SliceBody<ViewElements<float>>> SliceDef = new();

    // Rows [start, end) on the CPU: SliceBody's map, one contiguous row of width floats at a time
    // (a span copy) rather than a division per element.
    internal readonly unsafe struct SliceRowsBody(float* part, float* whole, int width, int yWidth, int offset, int toWhole) : CpuLoops.IRange
    {
        public void Run(int start, int end)
        {
            for (int o = start; o < end; o++)
            {
                var p = new Span<float>(part + ((long)o * width), width);
                var w = new Span<float>(whole + ((long)o * yWidth) + offset, width);
                if (toWhole != 0)
                    p.CopyTo(w);
                else
                    w.CopyTo(p);
            }
        }
    }

    // ---------------------------------------------------------------- launchers

    /// <summary>
    /// Writes one input x (outer, width) into its columns of y (outer, yWidth): y[o, offset + j] = x[o, j];
    /// outer is the product of the dimensions before the axis, width the input's size along it times
    /// inner, offset the sizes of the inputs before it times inner. Only the input's columns are written.
    /// </summary>
    public static void Forward(KernelHost host, ArrayView<float> x, ArrayView<float> y, int outer, int width, int yWidth, int offset) =>
        Slice("Concat.Forward", host, x, nameof(x), y, nameof(y), outer, width, yWidth, offset, 1);

    /// <summary>Copies one input's columns of dy back out: dx[o, j] = dy[o, offset + j] (overwrites dx).</summary>
    public static void Backward(KernelHost host, ArrayView<float> dy, ArrayView<float> dx, int outer, int width, int yWidth, int offset) =>
        Slice("Concat.Backward", host, dx, nameof(dx), dy, nameof(dy), outer, width, yWidth, offset, 0);

    private static unsafe void Slice(string op, KernelHost host, ArrayView<float> part, string partName, ArrayView<float> whole, string wholeName, int outer, int width, int yWidth, int offset, int toWhole)
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.Dimension(op, outer, nameof(outer));
        Check.Dimension(op, width, nameof(width));
        Check.Dimension(op, offset, nameof(offset));
        if ((long)offset + width > yWidth)
            throw new ArgumentOutOfRangeException(nameof(offset), offset, $"{op}: columns [{offset}, {(long)offset + width}) of the slice do not fit in the {yWidth} columns of {wholeName}.");
        Check.Length(op, part, partName, (long)outer * width, $"(outer, width) = ({outer}, {width})");
        Check.Length(op, whole, wholeName, (long)outer * yWidth, $"(outer, yWidth) = ({outer}, {yWidth})");
        Check.Fits32(op, whole, wholeName);
        if (part.Length == 0)
            return;
        if (host.RunsManaged)
            CpuLoops.For(host, outer, new SliceRowsBody(CpuLoops.Ptr(part), CpuLoops.Ptr(whole), width, yWidth, offset, toWhole), width);
        else
            SliceDef.Launch(host, part.IntLength, new(new(part), new(whole), width, yWidth, offset, toWhole));
    }
}
