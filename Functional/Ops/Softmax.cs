namespace IlgpuTrain.Functional;

public static partial class F
{
    /// <summary>
    /// Softmax over the last dimension, max subtracted for stability.
    /// Backward: dx = y (dy - sum(dy y)) per row.
    /// </summary>
    /// <param name="x">Input (..., C).</param>
    /// <returns>y, the shape of x; each row sums to 1.</returns>
    public static Tensor Softmax(Tensor x)
    {
        const string op = nameof(Softmax);
        var (scope, n, c) = Rows(op, x);
        var y = scope.Allocate(x.Shape);
        IlgpuTrain.Kernels.Softmax.Forward(scope.Device.Kernels, x.View<float>(), y.View<float>(), n, c);
        Record(op, y, [x], g => IlgpuTrain.Kernels.Softmax.Backward(g.Kernels, y.View<float>(), g.OutputGrad, g.Into(x), n, c));
        return y;
    }

    /// <summary>
    /// Log-softmax over the last dimension: x - max - log sum exp(x - max).
    /// Backward: dx = dy - softmax(x) sum(dy) per row.
    /// </summary>
    /// <param name="x">Input (..., C).</param>
    /// <returns>y, the shape of x.</returns>
    public static Tensor LogSoftmax(Tensor x)
    {
        const string op = nameof(LogSoftmax);
        var (scope, n, c) = Rows(op, x);
        var y = scope.Allocate(x.Shape);
        IlgpuTrain.Kernels.LogSoftmax.Forward(scope.Device.Kernels, x.View<float>(), y.View<float>(), n, c);
        Record(op, y, [x], g => IlgpuTrain.Kernels.LogSoftmax.Backward(g.Kernels, y.View<float>(), g.OutputGrad, g.Into(x), n, c));
        return y;
    }

    /// <summary>
    /// Cross-entropy of logits against class indices, fused with log-softmax (PyTorch's
    /// nn.CrossEntropyLoss): mean reduction by default, label smoothing and ignore_index as options.
    /// The loss stays on the device.
    /// </summary>
    /// <param name="logits">Logits (N, C), float32.</param>
    /// <param name="targets">
    /// Class indices (N), Int32, in [0, C) or the ignore index; or class probabilities (N, C),
    /// Float32 (soft labels, e.g. MixUp's): then loss_i = -sum_k t'_ik log softmax(x_i)_k with
    /// t' = (1 - eps) t + eps / C smoothed as PyTorch does, Mean divides by N, and ignore_index
    /// does not apply.
    /// </param>
    /// <param name="options">Reduction, label smoothing (eps, convention) and ignore_index; PyTorch's defaults when null.</param>
    /// <returns>The loss: one value (shape ()) for Mean and Sum, (N) for None.</returns>
    public static Tensor CrossEntropy(Tensor logits, Tensor targets, CrossEntropyOptions? options = null)
    {
        const string op = nameof(CrossEntropy);
        options ??= CrossEntropyOptions.Default;
        var scope = ScopeOf(op, logits, targets);
        RequireFloat(op, logits, nameof(logits));
        RequireRank(op, logits, nameof(logits), 2, "(N, C)");
        int n = logits.Shape[0], c = logits.Shape[1];
        if (targets.DType == DType.Float32 && targets.Shape == logits.Shape)
            return CrossEntropySoft(scope, logits, targets, n, c, options);
        if (targets.DType != DType.Int32)
            throw new ArgumentException($"{op}: targets must be Int32 class indices (N) or Float32 class probabilities of the logits' shape {logits.Shape}, but are {targets.DType} {targets.Shape}; upload labels with step.Upload(int[] ...).", nameof(targets));
        if (targets.Shape.Rank != 1 || targets.Shape[0] != n)
            throw new ArgumentException($"{op}: logits are {logits.Shape} (N = {n}) but targets are {targets.Shape}; targets must be ({n}).", nameof(targets));

        var host = scope.Device.Kernels;
        var losses = scope.Allocate(new Shape(n));
        Tensor result = losses;
        if (options.Reduction != LossReduction.None)
            result = scope.Allocate(Shape.Scalar);
        IlgpuTrain.Kernels.CrossEntropy.Forward(host, logits.View<float>(), targets.View<int>(), losses.View<float>(), options.Reduction == LossReduction.None ? default : result.View<float>(), n, c, options);
        Record(op, result, [logits], g =>
        {
            var scratch = g.Scope.Scratch<float>(IlgpuTrain.Kernels.CrossEntropy.BackwardScratchLength(options.Reduction));
            IlgpuTrain.Kernels.CrossEntropy.Backward(g.Kernels, logits.View<float>(), targets.View<int>(), g.OutputGrad, g.Into(logits), n, c, options, scratch);
        });
        return result;
    }

    private static Tensor CrossEntropySoft(StepScope scope, Tensor logits, Tensor targets, int n, int c, CrossEntropyOptions options)
    {
        var losses = scope.Allocate(new Shape(n));
        var result = options.Reduction == LossReduction.None ? losses : scope.Allocate(Shape.Scalar);
        IlgpuTrain.Kernels.CrossEntropy.ForwardSoft(scope.Device.Kernels, logits.View<float>(), targets.View<float>(), losses.View<float>(), options.Reduction == LossReduction.None ? default : result.View<float>(), n, c, options);
        Record(nameof(CrossEntropy), result, [logits], g =>
            IlgpuTrain.Kernels.CrossEntropy.BackwardSoft(g.Kernels, logits.View<float>(), targets.View<float>(), g.OutputGrad, g.Into(logits), n, c, options));
        return result;
    }

    private static (StepScope Scope, int N, int C) Rows(string op, Tensor x)
    {
        var scope = ScopeOf(op, x);
        RequireFloat(op, x, nameof(x));
        if (x.Shape.Rank < 1)
            throw new ArgumentException($"{op}: x must have at least one dimension (..., C) but is a scalar.", nameof(x));
        int c = x.Shape[-1];
        int n = checked((int)ProductOfLeading(x.Shape));
        return (scope, n, c);
    }
}
