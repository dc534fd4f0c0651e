namespace IlgpuTrain.Functional;

public static partial class F
{
    /// <summary>
    /// 2-D convolution, torch.nn.functional.conv2d with groups = 1: NCHW, zero padding.
    /// </summary>
    /// <remarks>
    /// y[n, o, oy, ox] = b[o] + Σ_{c, i, j} w[o, c, i, j] x[n, c, oy sh − ph + i dh, ox sw − pw + j dw]  (x is 0 outside the input)
    /// Ho = ⌊(H + 2 ph − dh (kh − 1) − 1) / sh⌋ + 1, Wo likewise.
    /// dx = col2im(wᵀ dy), dW = Σ_n dy_n colsₙᵀ, db[o] = Σ_{n, oy, ox} dy[n, o, oy, ox].
    /// Defaults: stride (1, 1), padding (0, 0), dilation (1, 1); PyTorch's page: torch.nn.functional.conv2d.
    /// Runs as im2col + one GEMM per image; the columns (N, C kh kw, Ho Wo) come from the step and
    /// are kept for the backward.
    /// Under <see cref="Precision.Float16"/>: y = round16(half(W) half(cols)) + b per image, and the backward GEMMs take half operands (see <see cref="Precision"/>).
    /// </remarks>
    /// <param name="x">Input (N, C, H, W).</param>
    /// <param name="weight">w (O, C, kh, kw).</param>
    /// <param name="bias">b (O), or null for no bias.</param>
    /// <param name="stride">(sh, sw), each at least 1; null for (1, 1).</param>
    /// <param name="padding">(ph, pw) zeros added on both sides, each 0 or more; default (0, 0).</param>
    /// <param name="dilation">(dh, dw), each at least 1; null for (1, 1).</param>
    /// <returns>y (N, O, Ho, Wo).</returns>
    /// <exception cref="ArgumentException">A rank is wrong, the channels disagree, the bias is not (O), or the dilated kernel is larger than the padded input.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A stride or dilation is below 1, or a padding is negative.</exception>
    public static Tensor Conv2d(Tensor x, Tensor weight, Tensor? bias = null, (int H, int W)? stride = null, (int H, int W) padding = default, (int H, int W)? dilation = null)
    {
        const string op = nameof(Conv2d);
        var scope = bias is null ? ScopeOf(op, x, weight) : ScopeOf(op, x, weight, bias);
        RequireFloat(op, x, nameof(x));
        RequireFloat(op, weight, nameof(weight));
        RequireRank(op, x, nameof(x), 4, "(N, C, H, W)");
        RequireRank(op, weight, nameof(weight), 4, "(O, C, kh, kw)");
        var (sh, sw) = stride ?? (1, 1);
        var (dh, dw) = dilation ?? (1, 1);
        if (sh < 1 || sw < 1)
            throw new ArgumentOutOfRangeException(nameof(stride), stride, $"{op}: stride must be at least 1 in both directions, got ({sh}, {sw}).");
        if (dh < 1 || dw < 1)
            throw new ArgumentOutOfRangeException(nameof(dilation), dilation, $"{op}: dilation must be at least 1 in both directions, got ({dh}, {dw}).");
        if (padding.H < 0 || padding.W < 0)
            throw new ArgumentOutOfRangeException(nameof(padding), padding, $"{op}: padding must be 0 or more in both directions, got ({padding.H}, {padding.W}).");
        int o = weight.Shape[0], kh = weight.Shape[2], kw = weight.Shape[3];
        if (weight.Shape[1] != x.Shape[1])
            throw new ArgumentException($"{op}: x {x.Shape} has C = {x.Shape[1]} channels but the weight {weight.Shape} (O, C, kh, kw) takes C = {weight.Shape[1]}.", nameof(weight));
        if (kh < 1 || kw < 1)
            throw new ArgumentException($"{op}: the weight {weight.Shape} (O, C, kh, kw) has an empty kernel; kh and kw must be at least 1.", nameof(weight));
        if (bias is not null)
        {
            RequireFloat(op, bias, nameof(bias));
            if (bias.Shape.Rank != 1 || bias.Shape[0] != o)
                throw new ArgumentException($"{op}: bias is {bias.Shape} but the weight {weight.Shape} has O = {o} output channels; bias must be ({o}).", nameof(bias));
        }

        long spanH = ((long)dh * (kh - 1)) + 1, spanW = ((long)dw * (kw - 1)) + 1;
        int h = x.Shape[2], w = x.Shape[3];
        if (h + (2L * padding.H) < spanH || w + (2L * padding.W) < spanW)
            throw new ArgumentException($"{op}: the kernel ({kh}, {kw}) with dilation ({dh}, {dw}) spans ({spanH}, {spanW}) but x {x.Shape} padded by ({padding.H}, {padding.W}) is only ({h + (2L * padding.H)}, {w + (2L * padding.W)}); the output would be empty.", nameof(x));

        var g = new Conv2dGeometry(x.Shape[0], x.Shape[1], h, w, kh, kw, sh, sw, padding.H, padding.W, dh, dw);
        var y = scope.Allocate(new Shape(g.N, o, g.HO, g.WO));
        var cols = scope.Scratch<float>(g.ColumnsLength);
        var host = scope.Device.Kernels;
        var xv = x.View<float>();
        var wv = weight.View<float>();
        var bv = bias is null ? ArrayView<float>.Empty : bias.View<float>();
        if (scope.Precision == Precision.Float16)
        {
            Conv2dHalf(op, scope, x, weight, bias, y, cols, g, o);
            return y;
        }

        IlgpuTrain.Kernels.Conv2d.Forward(host, xv, wv, bv, y.View<float>(), cols, g, o);

        Record(op, y, [x, weight, bias], gr =>
        {
            var dy = gr.OutputGrad;
            if (gr.Needs(weight))
                IlgpuTrain.Kernels.Conv2d.BackwardWeight(gr.Kernels, dy, cols, gr.Into(weight), g, o);
            if (gr.Needs(x))
                IlgpuTrain.Kernels.Conv2d.BackwardInput(gr.Kernels, wv, dy, gr.Scope.Scratch<float>(g.ColumnsLength), gr.Into(x), g, o);
            if (bias is not null && gr.Needs(bias))
            {
                // Sum over (Ho, Wo) per (n, o), then over n per o: both deterministic.
                var rows = gr.Scope.Scratch<float>((long)g.N * o);
                Reductions.SumRows(gr.Kernels, dy, g.N * o, g.P, rows);
                Reductions.SumColumns(gr.Kernels, rows, g.N, o, gr.Into(bias));
            }
        });
        return y;
    }

    // Precision.Float16 Conv2d: the columns and the weight as halves, y_n = round16(half(W) half(cols_n))
    // per image, then the fp32 channel bias (Kernels.Conv2d.ForwardHalf). The VJP's GEMMs take
    // half(dy), the half columns and the half weight: dW (float) and dcols (float) then col2im.
    private static void Conv2dHalf(string op, StepScope scope, Tensor x, Tensor weight, Tensor? bias, Tensor y, ArrayView<float> cols, Conv2dGeometry g, int o)
    {
        var host = scope.Device.Kernels;
        var colsH = scope.Scratch<Half>(g.ColumnsLength);
        var wh = HalfCopy(scope, weight.View<float>());
        var bv = bias is null ? ArrayView<float>.Empty : bias.View<float>();
        IlgpuTrain.Kernels.Conv2d.ForwardHalf(host, x.View<float>(), wh, bv, y.View<float>(), cols, colsH, g, o);

        Record(op, y, [x, weight, bias], gr =>
        {
            var dy = gr.OutputGrad;
            bool gemms = gr.Needs(x) || gr.Needs(weight);
            var dyh = gemms ? HalfCopy(gr.Scope, dy) : default;
            if (gr.Needs(weight))
                IlgpuTrain.Kernels.Conv2d.BackwardWeightHalf(gr.Kernels, dyh, colsH, gr.Into(weight), g, o);
            if (gr.Needs(x))
                IlgpuTrain.Kernels.Conv2d.BackwardInputHalf(gr.Kernels, wh, dyh, gr.Scope.Scratch<float>(g.ColumnsLength), gr.Into(x), g, o);
            if (bias is not null && gr.Needs(bias))
            {
                var rows = gr.Scope.Scratch<float>((long)g.N * o);
                Reductions.SumRows(gr.Kernels, dy, g.N * o, g.P, rows);
                Reductions.SumColumns(gr.Kernels, rows, g.N, o, gr.Into(bias));
            }
        });
    }
}
