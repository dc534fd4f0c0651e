namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>Permute</c> kernels: plain loops, slow and obviously right.</summary>
internal static class PermuteReference
{
    /// <summary>Reference: y = permute(x, axes): each element of x, at multi-index j, goes to y's index (j[axes[0]], ..., j[axes[r-1]]).</summary>
    /// <typeparam name="T">The element type (the map only moves elements).</typeparam>
    /// <param name="x">Input (dims), row-major.</param>
    /// <param name="dims">x's dimensions.</param>
    /// <param name="axes">A permutation of 0..rank-1: y's dimension k is x's dimension axes[k].</param>
    /// <returns>y (dims[axes[0]], ..., dims[axes[r-1]]), row-major.</returns>
    public static T[] ForwardReference<T>(T[] x, int[] dims, int[] axes)
    {
        int r = dims.Length;
        var yDims = axes.Select(a => dims[a]).ToArray();
        var yStrides = RowMajorStrides(yDims);
        var y = new T[x.Length];
        var j = new int[r];
        for (int e = 0; e < x.Length; e++)
        {
            int rem = e;
            for (int i = r - 1; i >= 0; i--)
            {
                j[i] = rem % dims[i];
                rem /= dims[i];
            }

            int at = 0;
            for (int k = 0; k < r; k++)
                at += j[axes[k]] * yStrides[k];
            y[at] = x[e];
        }

        return y;
    }

    /// <summary>Reference VJP: dx = dy permuted back by the inverse permutation (a permutation's VJP is its inverse).</summary>
    /// <typeparam name="T">The element type.</typeparam>
    /// <param name="dy">The gradient of y (dims[axes[0]], ..., dims[axes[r-1]]), row-major.</param>
    /// <param name="dims">x's dimensions.</param>
    /// <param name="axes">The forward's permutation.</param>
    /// <returns>dx (dims), row-major.</returns>
    public static T[] BackwardReference<T>(T[] dy, int[] dims, int[] axes)
    {
        var inverse = new int[axes.Length];
        for (int k = 0; k < axes.Length; k++)
            inverse[axes[k]] = k;
        return ForwardReference(dy, axes.Select(a => dims[a]).ToArray(), inverse);
    }

    private static int[] RowMajorStrides(int[] dims)
    {
        var s = new int[dims.Length];
        int acc = 1;
        for (int i = dims.Length - 1; i >= 0; i--)
        {
            s[i] = acc;
            acc *= dims[i];
        }

        return s;
    }
}
