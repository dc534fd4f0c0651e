namespace IlgpuTrain.Functional;

public static partial class F
{
    /// <summary>
    /// Embedding lookup, torch.nn.functional.embedding: row indices[...] of the weight.
    /// </summary>
    /// <remarks>
    /// <para>y[..., :] = W[indices[...], :]</para>
    /// <para>dW[v, :] = sum over positions p with indices[p] == v of dy[p, :]  (deterministic, in index order)</para>
    /// <para>dW[padding_idx, :] = 0  (the padding row is looked up as usual but never trained)</para>
    /// <para>No gradient flows to the indices. Out-of-range indices are detected on the device
    /// (the kernels never read outside W) and reported by reading an 8-byte flag back after the
    /// forward, so this op costs one host synchronization; it then throws, naming the first
    /// offending position and value. See https://pytorch.org/docs/stable/generated/torch.nn.functional.embedding.html.</para>
    /// </remarks>
    /// <param name="indices">Int32 indices, any shape (...), each in [0, V).</param>
    /// <param name="weight">W (V, D), float32.</param>
    /// <param name="paddingIdx">The row that gets no gradient, in [-V, V) (negative counts from the end), or null.</param>
    /// <returns>y (..., D).</returns>
    /// <exception cref="ArgumentOutOfRangeException">An index is outside [0, V), or paddingIdx is outside [-V, V).</exception>
    public static Tensor Embedding(Tensor indices, Tensor weight, int? paddingIdx = null)
    {
        const string op = nameof(Embedding);
        var scope = ScopeOf(op, indices, weight);
        if (indices.DType != DType.Int32)
            throw new ArgumentException($"{op}: indices must be Int32 but are a {indices.DType} Tensor{indices.Shape}; upload them with step.Upload(int[] ...), or convert float ids with F.Indices.", nameof(indices));
        RequireFloat(op, weight, nameof(weight));
        RequireRank(op, weight, nameof(weight), 2, "(V, D)");
        int v = weight.Shape[0], d = weight.Shape[1];
        int? padding = IlgpuTrain.Kernels.Embedding.NormalizePadding(op, paddingIdx, v);

        var dims = indices.Shape.ToArray().Append(d).ToArray();
        var y = scope.Allocate(new Shape(dims));
        var host = scope.Device.Kernels;
        var errors = scope.Scratch<int>(IlgpuTrain.Kernels.Embedding.ErrorsLength);
        var iv = indices.View<int>();
        IlgpuTrain.Kernels.Embedding.Forward(host, iv, weight.View<float>(), y.View<float>(), v, d, errors);
        if (indices.Length > 0)
        {
            var flag = Transfer.ToHost(host.Stream, errors);
            if (flag[0] != 0)
            {
                int n = checked((int)indices.Length);
                int value = Transfer.ToHost(host.Stream, iv.SubView(n - flag[1], 1))[0];
                throw new ArgumentOutOfRangeException(nameof(indices), IlgpuTrain.Kernels.Embedding.DescribeErrors(op, flag[0], flag[1], n, value, v) + $" (indices {indices.Shape}, weight {weight.Shape})");
            }
        }

        Record(op, y, [weight], g => IlgpuTrain.Kernels.Embedding.Backward(g.Kernels, iv, g.OutputGrad, g.Into(weight), v, d, padding));
        return y;
    }

    /// <summary>
    /// Float token ids as Int32 indices (torch's <c>x.long()</c> on ids that a float tensor carries, as a data set's
    /// samples do): each element must be a whole number; anything else (a fraction, NaN, an infinity, a value outside
    /// int) becomes int.MinValue, which an index consumer such as <see cref="Embedding"/> then reports as out of range.
    /// Int32 input is returned as it is. No gradient flows to indices.
    /// </summary>
    /// <param name="x">Float32 or Int32 ids, any shape.</param>
    /// <returns>Int32 indices of x's shape.</returns>
    public static Tensor Indices(Tensor x)
    {
        const string op = nameof(Indices);
        var scope = ScopeOf(op, x);
        if (x.DType == DType.Int32)
            return x;
        RequireFloat(op, x, nameof(x));
        var y = scope.Allocate(x.Shape, DType.Int32);
        IlgpuTrain.Kernels.Cast.ToIndices(scope.Device.Kernels, x.View<float>(), y.View<int>());
        return y;
    }
}
