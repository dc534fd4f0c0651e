namespace IlgpuTrain.Functional;

public static partial class F
{
    /// <summary>
    /// The tensor with its axes reordered, torch.permute(x, dims).contiguous(): dimension k of the
    /// result is dimension <paramref name="axes"/>[k] of x. Backward: dx = dy with the inverse
    /// permutation applied.
    /// </summary>
    /// <remarks>
    /// <para>y[i_0, ..., i_{r-1}] = x[j] with j_{axes[k]} = i_k</para>
    /// <para>The result is a new, contiguous tensor (one strided copy), not a view. Ranks up to 6;
    /// negative axes count from the end.</para>
    /// </remarks>
    /// <param name="x">Input, float32, rank 1 to 6.</param>
    /// <param name="axes">A permutation of x's axes, one entry per axis.</param>
    /// <returns>y, dimensions x.Shape[axes[k]].</returns>
    /// <exception cref="ArgumentException">axes is not a permutation of x's axes, or x has rank above 6.</exception>
    public static Tensor Permute(Tensor x, params int[] axes)
    {
        const string op = nameof(Permute);
        var scope = ScopeOf(op, x);
        RequireFloat(op, x, nameof(x));
        ArgumentNullException.ThrowIfNull(axes);
        int rank = x.Shape.Rank;
        var ax = axes.Select(a => a < 0 && a >= -rank ? a + rank : a).ToArray();
        var xDims = x.Shape.ToArray();
        try
        {
            IlgpuTrain.Kernels.Permute.CheckAxes(op, xDims, ax);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"{e.Message} (x is {x.Shape})", nameof(axes), e);
        }

        var y = scope.Allocate(new Shape(ax.Select(a => xDims[a]).ToArray()));
        IlgpuTrain.Kernels.Permute.Forward(scope.Device.Kernels, x.View<float>(), y.View<float>(), xDims, ax);
        Record(op, y, [x], g => IlgpuTrain.Kernels.Permute.Backward(g.Kernels, g.OutputGrad, g.Into(x), xDims, ax));
        return y;
    }

    /// <summary>
    /// Swaps two axes, torch.transpose(x, dim0, dim1).contiguous(): a <see cref="Permute"/> that
    /// exchanges <paramref name="dim0"/> and <paramref name="dim1"/>. Backward: the same swap of dy.
    /// </summary>
    /// <param name="x">Input, float32, rank 1 to 6.</param>
    /// <param name="dim0">One axis (negative counts from the end).</param>
    /// <param name="dim1">The other axis.</param>
    /// <returns>y, x's shape with the two dimensions exchanged (a new, contiguous tensor).</returns>
    public static Tensor Transpose(Tensor x, int dim0, int dim1)
    {
        ArgumentNullException.ThrowIfNull(x);
        int a = x.Shape.Axis(dim0), b = x.Shape.Axis(dim1);
        var axes = Enumerable.Range(0, x.Shape.Rank).ToArray();
        (axes[a], axes[b]) = (axes[b], axes[a]);
        return Permute(x, axes);
    }

    /// <summary>
    /// A contiguous range along one axis, torch.narrow(x, dim, start, length) (x[..., start:start+length, ...]).
    /// Backward: dx is dy inside the range and 0 outside it.
    /// </summary>
    /// <remarks>
    /// <para>y[o, j, i] = x[o, start + j, i] for x seen as (outer, size, inner) around the axis</para>
    /// <para>The result is a new tensor (a copy), not a view.</para>
    /// </remarks>
    /// <param name="x">Input, float32, rank 1 or more.</param>
    /// <param name="axis">The axis (negative counts from the end).</param>
    /// <param name="start">First index kept, in [0, size].</param>
    /// <param name="length">How many indices, with start + length at most the axis' size.</param>
    /// <returns>y, x's shape with dimension <paramref name="axis"/> = length.</returns>
    public static Tensor Slice(Tensor x, int axis, int start, int length)
    {
        const string op = nameof(Slice);
        var scope = ScopeOf(op, x);
        RequireFloat(op, x, nameof(x));
        if (x.Shape.Rank == 0)
            throw new ArgumentException($"{op}: x is a scalar Tensor{x.Shape}; scalars have no axis to slice (reshape it to (1) first).", nameof(x));
        if (axis < -x.Shape.Rank || axis >= x.Shape.Rank)
            throw new ArgumentOutOfRangeException(nameof(axis), axis, $"{op}: axis {axis} is out of range for x {x.Shape} of rank {x.Shape.Rank}; use an axis in [-{x.Shape.Rank}, {x.Shape.Rank}).");
        int ax = x.Shape.Axis(axis);
        int size = x.Shape[ax];
        if (start < 0 || length < 0 || (long)start + length > size)
            throw new ArgumentOutOfRangeException(nameof(length), length, $"{op}: the range [{start}, {(long)start + length}) does not fit in axis {ax} of x {x.Shape} (size {size}); start and length must be non-negative with start + length <= {size}.");

        var dims = x.Shape.ToArray();
        dims[ax] = length;
        var y = scope.Allocate(new Shape(dims));
        long outerL = 1, innerL = 1;
        for (int i = 0; i < ax; i++)
            outerL *= dims[i];
        for (int i = ax + 1; i < dims.Length; i++)
            innerL *= dims[i];
        int outer = checked((int)outerL);
        int width = checked((int)(length * innerL)), xWidth = checked((int)(size * innerL)), offset = checked((int)(start * innerL));

        // A slice is one part of a concatenation along the axis: its forward is the concat's split
        // (the part's columns read out) and its backward the concat's forward into zeros.
        IlgpuTrain.Kernels.Concat.Backward(scope.Device.Kernels, x.View<float>(), y.View<float>(), outer, width, xWidth, offset);
        Record(op, y, [x], g =>
        {
            var dx = g.Into(x);
            IlgpuTrain.Kernels.Elementwise.Fill(g.Kernels, dx, 0f);
            IlgpuTrain.Kernels.Concat.Forward(g.Kernels, g.OutputGrad, dx, outer, width, xWidth, offset);
        });
        return y;
    }

    /// <summary>
    /// Selects entries along an axis by index, torch.index_select(x, dim, indices): the result's
    /// slice j along the axis is x's slice indices[j]. Indices may repeat.
    /// </summary>
    /// <remarks>
    /// <para>y[o, j, i] = x[o, indices[j], i] for x seen as (outer, size, inner) around the axis</para>
    /// <para>dx[o, v, i] = sum over j with indices[j] == v of dy[o, j, i]  (a scatter-add: repeated
    /// indices sum their gradients, in increasing j, deterministically; unselected entries get 0)</para>
    /// <para>No gradient flows to the indices. It is built from <see cref="Embedding"/> (the lookup
    /// and its deterministic scatter-add) on x with the axis moved to the front by
    /// <see cref="Permute"/>, which is skipped when the axis is already outermost. Out-of-range
    /// indices throw as Embedding's do, naming the first one (one host synchronization).</para>
    /// </remarks>
    /// <param name="x">Input, float32, rank 1 to 6.</param>
    /// <param name="axis">The axis (negative counts from the end).</param>
    /// <param name="indices">Int32 indices (L), each in [0, size of the axis).</param>
    /// <returns>y, x's shape with dimension <paramref name="axis"/> = L.</returns>
    /// <exception cref="ArgumentOutOfRangeException">An index is outside the axis.</exception>
    public static Tensor Gather(Tensor x, int axis, Tensor indices)
    {
        const string op = nameof(Gather);
        ScopeOf(op, x, indices);
        RequireFloat(op, x, nameof(x));
        if (indices.DType != DType.Int32 || indices.Shape.Rank != 1)
            throw new ArgumentException($"{op}: indices must be a one-dimensional Int32 tensor (L) but are a {indices.DType} Tensor{indices.Shape} (x is {x.Shape}); flatten them with F.Reshape(indices, -1) and upload integers with step.Upload(int[] ...).", nameof(indices));
        if (x.Shape.Rank == 0)
            throw new ArgumentException($"{op}: x is a scalar Tensor{x.Shape}; scalars have no axis to select along (reshape it to (1) first).", nameof(x));
        if (axis < -x.Shape.Rank || axis >= x.Shape.Rank)
            throw new ArgumentOutOfRangeException(nameof(axis), axis, $"{op}: axis {axis} is out of range for x {x.Shape} of rank {x.Shape.Rank}; use an axis in [-{x.Shape.Rank}, {x.Shape.Rank}).");
        int ax = x.Shape.Axis(axis);
        int rank = x.Shape.Rank, size = x.Shape[ax], l = indices.Shape[0];
        bool outermost = true;
        for (int i = 0; i < ax; i++)
            outermost &= x.Shape[i] == 1;

        // (size, rest) rows for the lookup: x itself when nothing of size > 1 precedes the axis.
        var toFront = Enumerable.Range(0, rank).Where(i => i != ax).Prepend(ax).ToArray();
        var front = outermost ? x : Permute(x, toFront);
        long rest = size == 0 ? 0 : front.Length / size;
        var rows = F.Reshape(front, size, checked((int)rest));
        Tensor picked;
        try
        {
            picked = Embedding(indices, rows);
        }
        catch (ArgumentOutOfRangeException e) when (e.ParamName == nameof(indices))
        {
            throw new ArgumentOutOfRangeException(nameof(indices), $"{op}: an index is outside axis {ax} of x {x.Shape} (size {size}); every index must be in [0, {size}). {e.Message}");
        }

        var frontDims = front.Shape.ToArray();
        frontDims[outermost ? ax : 0] = l;
        var y = F.Reshape(picked, frontDims);
        if (outermost)
            return y;

        // Back from (L, the other axes in order) to x's order with L at the axis.
        var back = new int[rank];
        for (int k = 0; k < rank; k++)
            back[k] = k == ax ? 0 : (k < ax ? k + 1 : k);
        return Permute(y, back);
    }
}
