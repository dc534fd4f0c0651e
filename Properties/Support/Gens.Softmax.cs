namespace IlgpuTrain.Properties.Support;

/// <summary>Generators for row-wise (N, C) kernels: softmax, log-softmax, cross-entropy.</summary>
public static partial class Gens
{
    /// <summary>Edge row counts N: empty, one, a prime, the GPU group size 16 and the real group size 256, each plus or minus one.</summary>
    public static readonly int[] EdgeRows = [0, 1, 2, 7, 15, 16, 17, 31, 255, 256, 257];

    /// <summary>Edge class counts C: one, a prime, the Fashion-MNIST 10, 16 and 256 plus or minus one.</summary>
    public static readonly int[] EdgeClasses = [1, 2, 3, 7, 10, 15, 16, 17, 97, 255, 256, 257];

    /// <summary>A row count N: an edge half the time, otherwise uniform in [0, 64].</summary>
    public static Gen<int> SoftmaxRows { get; } = Gen.OneOf(Gen.Elements(EdgeRows), Gen.Choose(0, 64));

    /// <summary>A class count C: an edge half the time, otherwise uniform in [1, 40].</summary>
    public static Gen<int> SoftmaxClasses { get; } = Gen.OneOf(Gen.Elements(EdgeClasses), Gen.Choose(1, 40));

    /// <summary>Small shapes for finite differences (cost grows as (N*C)^2): N in {0..5}, C with edges 1, 16, 17.</summary>
    public static Gen<(int N, int C)> FiniteDifferenceShape { get; } =
        from n in Gen.Elements(0, 1, 2, 3, 5)
        from c in Gen.Elements(1, 2, 3, 7, 10, 16, 17)
        select (n, c);

    /// <summary>An (N, C) row-major matrix of logits in [lo, hi], with edge shapes.</summary>
    /// <param name="lo">Lower bound.</param>
    /// <param name="hi">Upper bound.</param>
    /// <returns>The generator.</returns>
    public static Gen<Matrix> RowMatrix(float lo = -10f, float hi = 10f) =>
        from n in SoftmaxRows
        from c in SoftmaxClasses
        from v in Floats(n * c, lo, hi)
        select new Matrix(n, c, v);

    /// <summary>Two (N, C) matrices of the same shape: x in [lo, hi] and an upstream gradient dy in [-2, 2].</summary>
    /// <param name="lo">Lower bound of x.</param>
    /// <param name="hi">Upper bound of x.</param>
    /// <returns>The generator.</returns>
    public static Gen<(Matrix X, float[] Dy)> RowMatrixWithGradient(float lo = -10f, float hi = 10f) =>
        from x in RowMatrix(lo, hi)
        from dy in Floats(x.Rows * x.Cols, -2f, 2f)
        select (x, dy);
}
