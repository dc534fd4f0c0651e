namespace IlgpuTrain.Functional;

public static partial class F
{
    /// <summary>
    /// Matrix product C = op(A) op(B), with op(X) = X or X^T.
    /// Backward: dA = dC op(B)^T (transposed back when A is), dB = op(A)^T dC.
    /// Under <see cref="Precision.Float16"/>: C = round16(half(op(A)) half(op(B))) and the backward GEMMs take half operands (see <see cref="Precision"/>).
    /// </summary>
    /// <param name="a">A: (M, K), or (K, M) when <paramref name="transA"/>.</param>
    /// <param name="b">B: (K, N), or (N, K) when <paramref name="transB"/>.</param>
    /// <param name="transA">Whether to use A^T.</param>
    /// <param name="transB">Whether to use B^T.</param>
    /// <returns>C (M, N).</returns>
    public static Tensor MatMul(Tensor a, Tensor b, bool transA = false, bool transB = false)
    {
        const string op = nameof(MatMul);
        var scope = ScopeOf(op, a, b);
        RequireFloat(op, a, nameof(a));
        RequireFloat(op, b, nameof(b));
        RequireRank(op, a, nameof(a), 2, transA ? "(K, M)" : "(M, K)");
        RequireRank(op, b, nameof(b), 2, transB ? "(N, K)" : "(K, N)");
        int m = transA ? a.Shape[1] : a.Shape[0], k = transA ? a.Shape[0] : a.Shape[1];
        int kb = transB ? b.Shape[1] : b.Shape[0], n = transB ? b.Shape[0] : b.Shape[1];
        if (k != kb)
            throw new ArgumentException($"{op}: op(A) is ({m}, {k}) and op(B) is ({kb}, {n}); the inner dimensions must agree (A {a.Shape}{(transA ? "^T" : string.Empty)}, B {b.Shape}{(transB ? "^T" : string.Empty)}).", nameof(b));

        var c = scope.Allocate(new Shape(m, n));
        var host = scope.Device.Kernels;
        if (scope.Precision == Precision.Float16)
        {
            MatMulHalf(op, scope, a, b, c, transA, transB, m, n, k);
            return c;
        }

        Gemm.Run(host, transA, transB, m, n, k, 1f, a.View<float>(), b.View<float>(), 0f, c.View<float>());
        Record(op, c, [a, b], g =>
        {
            var dc = g.OutputGrad;
            if (g.Needs(a))
            {
                // A (M,K): dA = dC B^T-of-op ; A stored (K,M): dA = op(B) dC^T.
                if (!transA)
                    Gemm.Run(g.Kernels, false, !transB, m, k, n, 1f, dc, b.View<float>(), 0f, g.Into(a));
                else
                    Gemm.Run(g.Kernels, transB, true, k, m, n, 1f, b.View<float>(), dc, 0f, g.Into(a));
            }

            if (g.Needs(b))
            {
                // B (K,N): dB = op(A)^T dC ; B stored (N,K): dB = dC^T op(A).
                if (!transB)
                    Gemm.Run(g.Kernels, !transA, false, k, n, m, 1f, a.View<float>(), dc, 0f, g.Into(b));
                else
                    Gemm.Run(g.Kernels, true, transA, n, k, m, 1f, dc, a.View<float>(), 0f, g.Into(b));
            }
        });
        return c;
    }

    /// <summary>
    /// PyTorch's linear: y = x W^T + b, with W stored (F, D) as nn.Linear's weight.
    /// Leading dimensions of x are batch: x (..., D) gives y (..., F).
    /// Backward: dx = dy W, dW = dy^T x, db = sum over rows of dy.
    /// Under <see cref="Precision.Float16"/>: y = round16(half(x) half(W)^T) + b and the backward GEMMs take half operands (see <see cref="Precision"/>).
    /// </summary>
    /// <param name="x">Input (..., D).</param>
    /// <param name="weight">W (F, D).</param>
    /// <param name="bias">b (F), or null for no bias.</param>
    /// <returns>y (..., F).</returns>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias = null)
    {
        const string op = nameof(Linear);
        var scope = bias is null ? ScopeOf(op, x, weight) : ScopeOf(op, x, weight, bias);
        RequireFloat(op, x, nameof(x));
        RequireFloat(op, weight, nameof(weight));
        RequireRank(op, weight, nameof(weight), 2, "(F, D)");
        int f = weight.Shape[0], d = weight.Shape[1];
        if (x.Shape.Rank < 1 || x.Shape[-1] != d)
            throw new ArgumentException($"{op}: x is {x.Shape} but the weight {weight.Shape} takes D = {d} input features in the last dimension.", nameof(x));
        if (bias is not null && (bias.Shape.Rank != 1 || bias.Shape[0] != f))
            throw new ArgumentException($"{op}: bias is {bias.Shape} but the weight {weight.Shape} has F = {f} outputs; bias must be ({f}).", nameof(bias));

        int n = checked((int)ProductOfLeading(x.Shape));
        var outDims = x.Shape.ToArray();
        outDims[^1] = f;
        var y = scope.Allocate(new Shape(outDims));
        var host = scope.Device.Kernels;
        var xv = x.View<float>();
        var wv = weight.View<float>();
        var yv = y.View<float>();
        if (scope.Precision == Precision.Float16)
        {
            LinearHalf(op, scope, x, weight, bias, y, n, d, f);
            return y;
        }

        Gemm.Run(host, false, true, n, f, d, 1f, xv, wv, 0f, yv);
        if (bias is not null)
            IlgpuTrain.Kernels.BiasAdd.Forward(host, yv, bias.View<float>(), yv, n, f);

        Record(op, y, [x, weight, bias], g =>
        {
            var dy = g.OutputGrad;
            if (g.Needs(x))
                Gemm.Run(g.Kernels, false, false, n, d, f, 1f, dy, wv, 0f, g.Into(x));
            if (g.Needs(weight))
                Gemm.Run(g.Kernels, true, false, f, d, n, 1f, dy, xv, 0f, g.Into(weight));
            if (bias is not null && g.Needs(bias))
                Reductions.SumColumns(g.Kernels, dy, n, f, g.Into(bias));
        });
        return y;
    }

    /// <summary>
    /// Adds a bias per feature: y[n, f] = x[n, f] + b[f] for x (N, F), or per channel
    /// y[n, c, ...] = x[n, c, ...] + b[c] for x (N, C, ...).
    /// Backward: dx = dy, db = sum of dy over every axis but the feature/channel one.
    /// </summary>
    /// <param name="x">Input (N, F) or (N, C, ...).</param>
    /// <param name="bias">b (F) or (C).</param>
    /// <returns>y, the shape of x.</returns>
    public static Tensor BiasAdd(Tensor x, Tensor bias)
    {
        const string op = nameof(BiasAdd);
        var scope = ScopeOf(op, x, bias);
        RequireFloat(op, x, nameof(x));
        RequireFloat(op, bias, nameof(bias));
        if (x.Shape.Rank < 2)
            throw new ArgumentException($"{op}: x must be (N, F) or (N, C, ...) but is {x.Shape}.", nameof(x));
        int c = x.Shape[1];
        if (bias.Shape.Rank != 1 || bias.Shape[0] != c)
            throw new ArgumentException($"{op}: bias is {bias.Shape} but x {x.Shape} has {c} features/channels in dimension 1; bias must be ({c}).", nameof(bias));
        int n = x.Shape[0];
        int inner = c == 0 || n == 0 ? 0 : checked((int)(x.Length / ((long)n * c)));
        var y = scope.Allocate(x.Shape);
        var host = scope.Device.Kernels;
        if (inner == 1 || x.Length == 0)
        {
            IlgpuTrain.Kernels.BiasAdd.Forward(host, x.View<float>(), bias.View<float>(), y.View<float>(), n, c);
        }
        else
        {
            // (N, C, S): one row per (n, c) gets b[c]; the channel bias is the row bias of an (N*C, S) matrix with b tiled.
            IlgpuTrain.Kernels.BiasAdd.ForwardChannels(host, x.View<float>(), bias.View<float>(), y.View<float>(), n, c, inner);
        }

        Record(op, y, [x, bias], g =>
        {
            var dy = g.OutputGrad;
            if (g.Needs(x))
                Transfer.Copy(g.Kernels.Stream, dy, g.Into(x));
            if (g.Needs(bias))
            {
                if (inner == 1 || x.Length == 0)
                {
                    Reductions.SumColumns(g.Kernels, dy, n, c, g.Into(bias));
                }
                else
                {
                    // Sum over S per (n, c), then over n per c.
                    var rows = g.Scope.Scratch<float>((long)n * c);
                    Reductions.SumRows(g.Kernels, dy, n * c, inner, rows);
                    Reductions.SumColumns(g.Kernels, rows, n, c, g.Into(bias));
                }
            }
        });
        return y;
    }

    // Precision.Float16 MatMul: C = round16(half(op(A)) half(op(B))); the VJP's GEMMs take the
    // half copies of A, B and dC and write float gradients.
    private static void MatMulHalf(string op, StepScope scope, Tensor a, Tensor b, Tensor c, bool transA, bool transB, int m, int n, int k)
    {
        var host = scope.Device.Kernels;
        var ah = HalfCopy(scope, a.View<float>());
        var bh = HalfCopy(scope, b.View<float>());
        GemmHalf.Run(host, transA, transB, m, n, k, 1f, ah, bh, 0f, c.View<float>());
        GemmHalf.RoundToHalfInPlace(host, c.View<float>());
        Record(op, c, [a, b], g =>
        {
            // dC in fp16: gradients below 2^-25 flush to 0 unless the loss scale lifts them.
            var dch = HalfCopy(g.Scope, g.OutputGrad);
            if (g.Needs(a))
            {
                if (!transA)
                    GemmHalf.Run(g.Kernels, false, !transB, m, k, n, 1f, dch, bh, 0f, g.Into(a));
                else
                    GemmHalf.Run(g.Kernels, transB, true, k, m, n, 1f, bh, dch, 0f, g.Into(a));
            }

            if (g.Needs(b))
            {
                if (!transB)
                    GemmHalf.Run(g.Kernels, !transA, false, k, n, m, 1f, ah, dch, 0f, g.Into(b));
                else
                    GemmHalf.Run(g.Kernels, true, transA, n, k, m, 1f, dch, ah, 0f, g.Into(b));
            }
        });
    }

    // Precision.Float16 Linear: y = round16(half(x) half(W)^T) + b, the bias in fp32; the VJP's
    // GEMMs take half(dy), half(x), half(W) and write float dx and dW; db sums the float dy.
    private static void LinearHalf(string op, StepScope scope, Tensor x, Tensor weight, Tensor? bias, Tensor y, int n, int d, int f)
    {
        var host = scope.Device.Kernels;
        var xh = HalfCopy(scope, x.View<float>());
        var wh = HalfCopy(scope, weight.View<float>());
        var yv = y.View<float>();
        GemmHalf.Run(host, false, true, n, f, d, 1f, xh, wh, 0f, yv);
        GemmHalf.RoundToHalfInPlace(host, yv);
        if (bias is not null)
            IlgpuTrain.Kernels.BiasAdd.Forward(host, yv, bias.View<float>(), yv, n, f);

        Record(op, y, [x, weight, bias], g =>
        {
            var dy = g.OutputGrad;
            bool gemms = g.Needs(x) || g.Needs(weight);
            var dyh = gemms ? HalfCopy(g.Scope, dy) : default;
            if (g.Needs(x))
                GemmHalf.Run(g.Kernels, false, false, n, d, f, 1f, dyh, wh, 0f, g.Into(x));
            if (g.Needs(weight))
                GemmHalf.Run(g.Kernels, true, false, f, d, n, 1f, dyh, xh, 0f, g.Into(weight));
            if (bias is not null && g.Needs(bias))
                Reductions.SumColumns(g.Kernels, dy, n, f, g.Into(bias));
        });
    }

    // A binary16 copy of x in the step arena (round to nearest even, +-inf from 65520): x itself,
    // a master weight included, stays float32.
    private static ArrayView<Half> HalfCopy(StepScope scope, ArrayView<float> x)
    {
        var h = scope.Scratch<Half>(x.Length);
        Cast.ToHalf(scope.Device.Kernels, x, h);
        return h;
    }

    private static long ProductOfLeading(Shape s)
    {
        long p = 1;
        for (int i = 0; i < s.Rank - 1; i++)
            p *= s[i];
        return p;
    }
}
