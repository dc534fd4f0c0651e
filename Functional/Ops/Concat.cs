namespace IlgpuTrain.Functional;

public static partial class F
{
    /// <summary>
    /// Concatenates tensors along an axis, torch.cat: every other dimension must agree.
    /// </summary>
    /// <remarks>
    /// <para>y = [x_0, x_1, ...] along <paramref name="axis"/>; size_y = sum_k size_k</para>
    /// <para>dx_k = the slice of dy that x_k occupies (a split; no gradient is summed, unless the
    /// same tensor appears twice, whose slices the tape adds).</para>
    /// <para>The result is always a new tensor, even for a single input.</para>
    /// </remarks>
    /// <param name="xs">The inputs (at least one), float32, one rank.</param>
    /// <param name="axis">The axis (negative counts from the end); 1 (channels or features) by default.</param>
    /// <returns>y.</returns>
    public static Tensor Concat(IReadOnlyList<Tensor> xs, int axis = 1)
    {
        const string op = nameof(Concat);
        ArgumentNullException.ThrowIfNull(xs);
        if (xs.Count == 0)
            throw new ArgumentException($"{op}: needs at least one tensor, got none.", nameof(xs));
        var scope = ScopeOf(op, xs.ToArray());
        var first = xs[0];
        for (int k = 0; k < xs.Count; k++)
            RequireFloat(op, xs[k], $"xs[{k}]");
        int rank = first.Shape.Rank;
        if (rank == 0)
            throw new ArgumentException($"{op}: xs[0] is a scalar Tensor{first.Shape}; scalars have no axis to concatenate along.", nameof(xs));
        if (axis < -rank || axis >= rank)
            throw new ArgumentOutOfRangeException(nameof(axis), axis, $"{op}: axis {axis} is out of range for xs[0] {first.Shape} of rank {rank}.");
        int ax = axis < 0 ? axis + rank : axis;

        var dims = first.Shape.ToArray();
        long total = 0;
        for (int k = 0; k < xs.Count; k++)
        {
            var s = xs[k].Shape;
            if (s.Rank != rank)
                throw new ArgumentException($"{op}: xs[{k}] is {s} (rank {s.Rank}) but xs[0] is {first.Shape} (rank {rank}); every tensor must have the same rank.", nameof(xs));
            for (int i = 0; i < rank; i++)
            {
                if (i != ax && s[i] != dims[i])
                    throw new ArgumentException($"{op}: xs[{k}] is {s} but xs[0] is {first.Shape}; they must agree in every dimension but the concatenation axis {ax} (dimension {i} differs).", nameof(xs));
            }

            total += s[ax];
        }

        dims[ax] = checked((int)total);
        var y = scope.Allocate(new Shape(dims));
        long outerL = 1, innerL = 1;
        for (int i = 0; i < ax; i++)
            outerL *= dims[i];
        for (int i = ax + 1; i < rank; i++)
            innerL *= dims[i];
        int outer = checked((int)outerL);
        int yWidth = checked((int)(total * innerL));
        var widths = xs.Select(x => checked((int)(x.Shape[ax] * innerL))).ToArray();
        var offsets = new int[xs.Count];
        for (int k = 1; k < xs.Count; k++)
            offsets[k] = offsets[k - 1] + widths[k - 1];

        var host = scope.Device.Kernels;
        var yv = y.View<float>();
        for (int k = 0; k < xs.Count; k++)
            IlgpuTrain.Kernels.Concat.Forward(host, xs[k].View<float>(), yv, outer, widths[k], yWidth, offsets[k]);

        var inputs = xs.ToArray();
        Record(op, y, inputs, g =>
        {
            for (int k = 0; k < inputs.Length; k++)
            {
                if (g.Needs(inputs[k]))
                    IlgpuTrain.Kernels.Concat.Backward(g.Kernels, g.OutputGrad, g.Into(inputs[k]), outer, widths[k], yWidth, offsets[k]);
            }
        });
        return y;
    }
}
