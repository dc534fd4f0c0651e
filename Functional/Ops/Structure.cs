namespace IlgpuTrain.Functional;

public static partial class F
{
    /// <summary>
    /// The same values in another shape (row-major order kept); one dimension may be -1 and is
    /// inferred. The result is a view: no copy. Backward passes the gradient back in x's shape.
    /// </summary>
    /// <param name="x">Input.</param>
    /// <param name="shape">New dimensions, at most one of them -1.</param>
    /// <returns>The view.</returns>
    public static Tensor Reshape(Tensor x, params int[] shape)
    {
        const string op = nameof(Reshape);
        var scope = ScopeOf(op, x);
        ArgumentNullException.ThrowIfNull(shape);
        var target = Infer(op, x.Shape, shape);
        var y = x.ViewAs(target);
        Record(op, y, [x], g => Transfer.Copy(g.Kernels.Stream, g.OutputGrad, g.Into(x)));
        _ = scope;
        return y;
    }

    /// <summary>Flattens dimensions <paramref name="startDim"/>.. into one, as torch.flatten (default: all but the batch).</summary>
    /// <param name="x">Input.</param>
    /// <param name="startDim">First dimension to flatten (1 keeps the batch).</param>
    /// <returns>The view.</returns>
    public static Tensor Flatten(Tensor x, int startDim = 1)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.Shape.Rank == 0)
            return Reshape(x, 1);
        int start = x.Shape.Axis(startDim);
        var dims = new int[start + 1];
        long rest = 1;
        for (int i = 0; i < x.Shape.Rank; i++)
        {
            if (i < start)
                dims[i] = x.Shape[i];
            else
                rest *= x.Shape[i];
        }

        dims[start] = checked((int)rest);
        return Reshape(x, dims);
    }

    /// <summary>Elementwise sum a + b of two tensors of one shape (a residual connection). Backward: da = db = dy.</summary>
    /// <param name="a">First input.</param>
    /// <param name="b">Second input, the shape of a.</param>
    /// <returns>a + b.</returns>
    public static Tensor Add(Tensor a, Tensor b)
    {
        const string op = nameof(Add);
        var scope = ScopeOf(op, a, b);
        RequireFloat(op, a, nameof(a));
        RequireFloat(op, b, nameof(b));
        if (a.Shape != b.Shape)
            throw new ArgumentException($"{op}: a is {a.Shape} and b is {b.Shape}; they must have the same shape (there is no broadcasting).", nameof(b));
        var y = scope.Allocate(a.Shape);
        Elementwise.Add(scope.Device.Kernels, a.View<float>(), b.View<float>(), y.View<float>());
        Record(op, y, [a, b], g =>
        {
            // When a and b are the same tensor, the tape sums the two contributions.
            if (g.Needs(a))
                Transfer.Copy(g.Kernels.Stream, g.OutputGrad, g.Into(a));
            if (g.Needs(b))
                Transfer.Copy(g.Kernels.Stream, g.OutputGrad, g.Into(b));
        });
        return y;
    }

    /// <summary>Elementwise product a * b of two tensors of one shape. Backward: da = dy b, db = dy a.</summary>
    /// <param name="a">First input.</param>
    /// <param name="b">Second input, the shape of a.</param>
    /// <returns>a * b.</returns>
    public static Tensor Mul(Tensor a, Tensor b)
    {
        const string op = nameof(Mul);
        var scope = ScopeOf(op, a, b);
        RequireFloat(op, a, nameof(a));
        RequireFloat(op, b, nameof(b));
        if (a.Shape != b.Shape)
            throw new ArgumentException($"{op}: a is {a.Shape} and b is {b.Shape}; they must have the same shape (there is no broadcasting).", nameof(b));
        var y = scope.Allocate(a.Shape);
        Elementwise.Mul(scope.Device.Kernels, a.View<float>(), b.View<float>(), y.View<float>());
        Record(op, y, [a, b], g =>
        {
            if (g.Needs(a))
                Elementwise.Mul(g.Kernels, g.OutputGrad, b.View<float>(), g.Into(a));
            if (g.Needs(b))
                Elementwise.Mul(g.Kernels, g.OutputGrad, a.View<float>(), g.Into(b));
        });
        return y;
    }

    /// <summary>alpha x. Backward: dx = alpha dy.</summary>
    /// <param name="x">Input.</param>
    /// <param name="alpha">Factor.</param>
    /// <returns>alpha x.</returns>
    public static Tensor Scale(Tensor x, float alpha)
    {
        const string op = nameof(Scale);
        var scope = ScopeOf(op, x);
        RequireFloat(op, x, nameof(x));
        var y = scope.Allocate(x.Shape);
        Elementwise.Scale(scope.Device.Kernels, x.View<float>(), alpha, y.View<float>());
        Record(op, y, [x], g => Elementwise.Scale(g.Kernels, g.OutputGrad, alpha, g.Into(x)));
        return y;
    }

    /// <summary>The sum of every element, one value (deterministic, compensated). Backward: dx = dy everywhere.</summary>
    /// <param name="x">Input.</param>
    /// <returns>A one-element tensor of shape ().</returns>
    public static Tensor Sum(Tensor x) => Total(nameof(Sum), x, mean: false);

    /// <summary>The mean of every element, one value. Backward: dx = dy / n everywhere.</summary>
    /// <param name="x">Input.</param>
    /// <returns>A one-element tensor of shape ().</returns>
    public static Tensor Mean(Tensor x) => Total(nameof(Mean), x, mean: true);

    private static Tensor Total(string op, Tensor x, bool mean)
    {
        var scope = ScopeOf(op, x);
        RequireFloat(op, x, nameof(x));
        var y = scope.Allocate(Shape.Scalar);
        var host = scope.Device.Kernels;
        var scratch = scope.Scratch<float>(Math.Max(1, Reductions.ScratchLength(host, x.Length)));
        if (mean)
            Reductions.Mean(host, x.View<float>(), y.View<float>(), scratch);
        else
            Reductions.Sum(host, x.View<float>(), y.View<float>(), scratch);
        long count = x.Length;
        Record(op, y, [x], g => Elementwise.Broadcast(g.Kernels, g.OutputGrad, mean ? 1f / count : 1f, g.Into(x)));
        return y;
    }

    private static Shape Infer(string op, Shape from, int[] dims)
    {
        int unknown = -1;
        long known = 1;
        for (int i = 0; i < dims.Length; i++)
        {
            if (dims[i] == -1)
            {
                if (unknown >= 0)
                    throw new ArgumentException($"{op}: only one dimension may be -1, but [{string.Join(", ", dims)}] has two.", nameof(dims));
                unknown = i;
            }
            else if (dims[i] < 0)
            {
                throw new ArgumentException($"{op}: dimension {i} of [{string.Join(", ", dims)}] is negative; use -1 for one inferred dimension.", nameof(dims));
            }
            else
            {
                known *= dims[i];
            }
        }

        var result = (int[])dims.Clone();
        if (unknown >= 0)
        {
            if (known == 0 || from.Length % known != 0)
                throw new ArgumentException($"{op}: cannot view {from} ({from.Length} elements) as [{string.Join(", ", dims)}]: {from.Length} is not a multiple of {known}.", nameof(dims));
            result[unknown] = checked((int)(from.Length / known));
        }

        var shape = new Shape(result);
        if (shape.Length != from.Length)
            throw new ArgumentException($"{op}: cannot view {from} ({from.Length} elements) as {shape} ({shape.Length} elements).", nameof(dims));
        return shape;
    }
}
