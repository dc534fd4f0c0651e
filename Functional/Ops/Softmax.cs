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
    /// Softmax over the last dimension with masks: a causal mask, key padding (as lengths or as a
    /// per-item key mask) and an additive bias, as the attention weights of
    /// torch.nn.functional.scaled_dot_product_attention (is_causal, nn.MultiheadAttention's
    /// key_padding_mask, a float attn_mask). Masked entries get probability exactly 0.
    /// </summary>
    /// <remarks>
    /// <para>x (..., Tq, Tk); entry (q, j) of row (item b, query q) is kept when j &lt; lengths[b] (with
    /// lengths), keyMask[b, j] != 0 (with a key mask; note PyTorch's key_padding_mask marks the
    /// masked keys with true, the opposite) and j &lt;= q (when causal, top-left aligned: torch.ones(Tq, Tk).tril())</para>
    /// <para>v = x + bias (bias broadcast over the leading dimensions), m = max over kept v</para>
    /// <para>y_j = exp(v_j - m) / sum_kept exp(v_k - m) when kept, y_j = 0 when masked</para>
    /// <para>dx = y (dy - sum(dy y)) per row (0 at masked entries); dbias = dx summed over the broadcast dimensions</para>
    /// <para>A row with no kept entry (length 0, or every kept v = -inf, e.g. a -inf bias) is all
    /// zeros with zero gradient; PyTorch gives NaN there. An arbitrary boolean mask is a bias of 0
    /// and -inf. Lengths above Tk keep every key and below 0 none.</para>
    /// </remarks>
    /// <param name="x">Scores (..., Tq, Tk), float32; rank 2 or more when causal or with lengths.</param>
    /// <param name="causal">Mask keys after the query (j &gt; q).</param>
    /// <param name="keyLengths">Int32 (B) valid key counts per entry of x's first dimension, or null.</param>
    /// <param name="bias">Additive float32 bias shaped as the trailing dimensions of x (leading 1s allowed), e.g. (Tq, Tk) or (1, H, Tq, Tk) for x (B, H, Tq, Tk); or null.</param>
    /// <param name="keyMask">Int32 (B, Tk), nonzero where a key is kept, per entry of x's first dimension; or null. Not with keyLengths.</param>
    /// <returns>y, the shape of x; each row sums to 1 over its kept entries (or is all 0).</returns>
    public static Tensor MaskedSoftmax(Tensor x, bool causal = false, Tensor? keyLengths = null, Tensor? bias = null, Tensor? keyMask = null)
    {
        const string op = nameof(MaskedSoftmax);
        var (scope, n, c) = Rows(op, x);
        if (keyLengths is not null)
            ScopeOf(op, x, keyLengths);
        if (bias is not null)
        {
            ScopeOf(op, x, bias);
            RequireFloat(op, bias, nameof(bias));
        }

        int rank = x.Shape.Rank;
        if (keyMask is not null)
            ScopeOf(op, x, keyMask);
        if (keyMask is not null && keyLengths is not null)
            throw new ArgumentException($"{op}: got both keyLengths {keyLengths.Shape} and keyMask {keyMask.Shape} for x {x.Shape}; give one (a length l is the mask of keys j < l).", nameof(keyMask));
        if ((causal || keyLengths is not null || keyMask is not null) && rank < 2)
            throw new ArgumentException($"{op}: x is {x.Shape}; a causal mask or key lengths need rows of queries, x (..., Tq, Tk) of rank 2 or more (reshape x to (1, Tk) for one query).", nameof(x));
        int tq = rank >= 2 ? x.Shape[-2] : 1;
        if (keyLengths is not null && (keyLengths.DType != DType.Int32 || keyLengths.Shape.Rank != 1 || keyLengths.Shape[0] != x.Shape[0]))
            throw new ArgumentException($"{op}: keyLengths is a {keyLengths.DType} Tensor{keyLengths.Shape} but x is {x.Shape}; it must be Int32 ({x.Shape[0]}), one valid key count per entry of x's first dimension (upload it with step.Upload(int[] ...)).", nameof(keyLengths));
        if (keyMask is not null && (keyMask.DType != DType.Int32 || keyMask.Shape.Rank != 2 || keyMask.Shape[0] != x.Shape[0] || keyMask.Shape[1] != c))
            throw new ArgumentException($"{op}: keyMask is a {keyMask.DType} Tensor{keyMask.Shape} but x is {x.Shape}; it must be Int32 ({x.Shape[0]}, {c}), nonzero where a key is kept, one row per entry of x's first dimension.", nameof(keyMask));
        if (bias is not null)
        {
            var bd = bias.Shape.ToArray().SkipWhile(d => d == 1).ToArray();
            bool suffix = bd.Length <= rank && bd.Length >= 1 && bd.Select((d, i) => d == x.Shape[rank - bd.Length + i]).All(t => t);
            if (!suffix && !(bd.Length == 0 && c == 1))
                throw new ArgumentException($"{op}: bias is {bias.Shape} but x is {x.Shape}; bias must equal x's trailing dimensions (leading 1s allowed), e.g. ({(rank >= 2 ? $"{tq}, " : string.Empty)}{c}), to broadcast over the rest.", nameof(bias));
        }

        var y = scope.Allocate(x.Shape);
        var host = scope.Device.Kernels;
        var bv = bias?.View<float>() ?? default;
        var keys = keyMask ?? keyLengths;
        IlgpuTrain.Kernels.MaskedSoftmax.Forward(host, x.View<float>(), bv, keys?.View<int>() ?? default, y.View<float>(), n, c, causal, tq, keyMask is not null);
        Record(op, y, [x, bias], g =>
        {
            bool biasGrad = bias is not null && g.Needs(bias);
            var dx = g.Needs(x) ? g.Into(x) : g.Scope.Scratch<float>((long)n * c);
            IlgpuTrain.Kernels.Softmax.Backward(g.Kernels, y.View<float>(), g.OutputGrad, dx, n, c);
            if (biasGrad && n > 0 && c > 0)
            {
                int biasLength = checked((int)bias!.Length);
                Reductions.SumColumns(g.Kernels, dx, checked((int)((long)n * c / biasLength)), biasLength, g.Into(bias!));
            }
            else if (biasGrad)
            {
                IlgpuTrain.Kernels.Elementwise.Fill(g.Kernels, g.Into(bias!), 0f);
            }
        });
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
