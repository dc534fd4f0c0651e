using IlgpuTrain.Kernels;

namespace IlgpuTrain.Functional;

public static partial class F
{
    /// <summary>
    /// Scaled dot-product attention as one fused op, torch.nn.functional.scaled_dot_product_attention:
    /// softmax(q k^T scale + bias, masked) v, with dropout on the attention weights in training.
    /// Memory grows with L, not L^2: no (Lq, Lk) matrix is ever stored, forward or backward.
    /// </summary>
    /// <remarks>
    /// <para>Per batch b and head h (q (Lq, D), k (Lk, D), v (Lk, Dv)):</para>
    /// <para>s_ij = scale q_i . k_j + bias_ij, or -inf where masked (causal and j &gt; i; key j padded out)</para>
    /// <para>P = softmax over j of s,   y_i = sum_j P_ij Z_ij v_j,   Z_ij = mask_ij / (1 - p), mask_ij ~ Bernoulli(1 - p)</para>
    /// <para>Backward (FlashAttention-2): Delta_i = dy_i . y_i, dP_ij = Z_ij dy_i . v_j, dS_ij = P_ij (dP_ij - Delta_i),
    /// dq_i = scale sum_j dS_ij k_j, dk_j = scale sum_i dS_ij q_i, dv_j = sum_i P_ij Z_ij dy_i.</para>
    /// <para>PyTorch: <c>F.scaled_dot_product_attention(q, k, v, attn_mask=bias_or_bool_mask, dropout_p=p, is_causal=causal, scale=scale)</c>;
    /// a key-padding mask (B, Lk) here is PyTorch's boolean attn_mask broadcast as (B, 1, 1, Lk), True = attend.</para>
    /// <para>Memory: the forward keeps y and one float per query row (the row's log-sum-exp); the backward
    /// recomputes P from q, k and that log-sum-exp, and regenerates the dropout mask from its Philox counter
    /// (seed, stream, counter of <paramref name="rng"/>, element ((b H + h) Lq + i) Lk + j), so nothing of size
    /// Lq x Lk exists. The softmax is the online one of FlashAttention (a running max and sum over key tiles),
    /// so large logits never overflow. GPUs run tiled kernels (groups of query rows, key tiles staged in shared
    /// memory; head dims up to 128); the CPU runs SIMD loops parallel over batch x head x query blocks.</para>
    /// <para>A query row with no key to attend to (every key masked or padded, or every bias -inf) gives
    /// zeros, and zero gradients, not NaN as PyTorch does.</para>
    /// <para>A bias that needs a gradient (a learned relative-position bias, say) gets dbias = dS summed over
    /// its broadcast axes; computing it takes one (B, H, Lq, Lk) temporary in the backward (the size of a
    /// full bias), so only then does the backward use memory of order L^2.</para>
    /// </remarks>
    /// <param name="q">Queries (B, H, Lq, D), float32.</param>
    /// <param name="k">Keys (B, H, Lk, D), float32.</param>
    /// <param name="v">Values (B, H, Lk, Dv), float32.</param>
    /// <param name="bias">
    /// An additive float mask (PyTorch's float attn_mask), broadcast as (B or 1, H or 1, Lq, Lk); leading
    /// dimensions may be left out ((Lq, Lk), (H or 1, Lq, Lk)). -inf masks an entry. Null for none.
    /// </param>
    /// <param name="keyPadding">
    /// Which keys each batch element may attend to: Int32 (B) valid lengths (key j counts when j &lt; length;
    /// a length of 0 or less masks every key), or an Int32 (B, Lk) mask, nonzero = attend. Null for none.
    /// </param>
    /// <param name="dropoutP">Drop probability of the attention weights in [0, 1], applied in <see cref="Mode.Train"/> only.</param>
    /// <param name="causal">PyTorch's is_causal: query i attends to keys j &lt;= i (top-left aligned when Lq != Lk).</param>
    /// <param name="scale">Multiplies q . k; null for 1 / sqrt(D).</param>
    /// <param name="mode">Train applies dropout (as PyTorch does whenever dropout_p &gt; 0); Eval never drops.</param>
    /// <param name="rng">The randomness of this call (this layer, this step); required when dropping.</param>
    /// <returns>y (B, H, Lq, Dv).</returns>
    /// <exception cref="ArgumentException">A shape, dtype or broadcast does not fit, or dropout is asked for without an rng.</exception>
    /// <exception cref="ArgumentOutOfRangeException">dropoutP is outside [0, 1], or scale is not finite.</exception>
    public static Tensor ScaledDotProductAttention(
        Tensor q, Tensor k, Tensor v, Tensor? bias = null, Tensor? keyPadding = null, float dropoutP = 0f,
        bool causal = false, float? scale = null, Mode mode = Mode.Train, Rng? rng = null)
    {
        const string op = nameof(ScaledDotProductAttention);
        var scope = ScopeOf(op, q, k, v);
        if (bias is not null)
            _ = ScopeOf(op, q, bias);
        if (keyPadding is not null)
            _ = ScopeOf(op, q, keyPadding);
        RequireFloat(op, q, nameof(q));
        RequireFloat(op, k, nameof(k));
        RequireFloat(op, v, nameof(v));
        RequireRank(op, q, nameof(q), 4, "(B, H, Lq, D)");
        RequireRank(op, k, nameof(k), 4, "(B, H, Lk, D)");
        RequireRank(op, v, nameof(v), 4, "(B, H, Lk, Dv)");
        int b = q.Shape[0], h = q.Shape[1], lq = q.Shape[2], d = q.Shape[3];
        int lk = k.Shape[2], dv = v.Shape[3];
        if (k.Shape[0] != b || k.Shape[1] != h || k.Shape[3] != d)
            throw new ArgumentException($"{op}: q is {q.Shape} (B, H, Lq, D) but k is {k.Shape}; k must be ({b}, {h}, Lk, {d}).", nameof(k));
        if (v.Shape[0] != b || v.Shape[1] != h || v.Shape[2] != lk)
            throw new ArgumentException($"{op}: k is {k.Shape} (B, H, Lk, D) but v is {v.Shape}; v must be ({b}, {h}, {lk}, Dv).", nameof(v));
        if (!(dropoutP >= 0f && dropoutP <= 1f))
            throw new ArgumentOutOfRangeException(nameof(dropoutP), dropoutP, $"{op}: the dropout probability must be in [0, 1], got {dropoutP}.");
        if (mode is not (Mode.Train or Mode.Eval))
            throw new ArgumentOutOfRangeException(nameof(mode), mode, $"{op}: unknown mode {(int)mode}.");
        float s = scale ?? (d > 0 ? 1f / MathF.Sqrt(d) : 1f);
        if (!float.IsFinite(s))
            throw new ArgumentOutOfRangeException(nameof(scale), s, $"{op}: the scale must be finite, got {s}.");
        bool drops = mode == Mode.Train && dropoutP > 0f;
        if (drops && rng is null)
            throw new ArgumentException($"{op}: dropoutP = {dropoutP} in Train mode needs an rng (this layer's, advanced every step with rng.Next()); pass rng, or mode: Mode.Eval for no dropout.", nameof(rng));

        var (strideB, strideH) = bias is null ? (0, 0) : BiasStrides(op, bias, b, h, lq, lk);
        bool lengths = false, keyMask = false;
        if (keyPadding is not null)
        {
            if (keyPadding.DType != DType.Int32)
                throw new ArgumentException($"{op}: keyPadding is a {keyPadding.DType} Tensor{keyPadding.Shape}; it must be Int32: valid lengths ({b}) or a (B, Lk) = ({b}, {lk}) mask, nonzero = attend.", nameof(keyPadding));
            lengths = keyPadding.Shape.Rank == 1 && keyPadding.Shape[0] == b;
            keyMask = keyPadding.Shape.Rank == 2 && keyPadding.Shape[0] == b && keyPadding.Shape[1] == lk;
            if (!lengths && !keyMask)
                throw new ArgumentException($"{op}: keyPadding is {keyPadding.Shape}; it must be valid lengths ({b}) or a (B, Lk) = ({b}, {lk}) mask, nonzero = attend.", nameof(keyPadding));
        }

        float keep = drops ? 1f - dropoutP : 1f;
        var key = drops ? new PhiloxStream(rng!.Seed, rng.Stream, rng.Counter) : default;
        var args = new AttentionArgs(
            b, h, lq, lk, d, dv, s, causal ? 1 : 0, bias is null ? 0 : 1, strideB, strideH, lengths ? 1 : 0, keyMask ? 1 : 0,
            keep, keep > 0f ? 1f / keep : 0f, key, bias is not null && Recording(scope, bias) ? 1 : 0);

        var y = scope.Allocate(new Shape(b, h, lq, dv));
        var lse = scope.Allocate(new Shape(b, h, lq));
        var biasView = bias is null ? default : bias.View<float>();
        var lengthsView = lengths ? keyPadding!.View<int>() : default;
        var maskView = keyMask ? keyPadding!.View<int>() : default;
        Attention.Forward(scope.Device.Kernels, args, q.View<float>(), k.View<float>(), v.View<float>(), y.View<float>(), lse.View<float>(), biasView, lengthsView, maskView);
        Record(op, y, [q, k, v, bias], g =>
        {
            // Every gradient is computed together; those no input needs go to scratch.
            var dq = g.Needs(q) ? g.Into(q) : g.Scope.Scratch<float>(q.Length);
            var dk = g.Needs(k) ? g.Into(k) : g.Scope.Scratch<float>(k.Length);
            var dvv = g.Needs(v) ? g.Into(v) : g.Scope.Scratch<float>(v.Length);
            var delta = g.Scope.Scratch<float>(lse.Length);
            bool full = bias is not null && bias.Length == (long)b * h * lq * lk;
            var dBias = args.HasBiasGrad == 0 ? default : full ? g.Into(bias!) : g.Scope.Scratch<float>((long)b * h * lq * lk);
            Attention.Backward(g.Kernels, args, q.View<float>(), k.View<float>(), v.View<float>(), y.View<float>(), lse.View<float>(), g.OutputGrad, dq, dk, dvv, delta, dBias, biasView, lengthsView, maskView);
            if (args.HasBiasGrad != 0 && !full)
                SumBiasGrad(g.Kernels, dBias, g.Into(bias!), b, h, lq * lk, strideB != 0);
        });
        return y;
    }

    // dbias from dS (B, H, Lq Lk): the sum over the axes the bias broadcasts along (batch, heads or both;
    // a bias of length B H Lq Lk takes dS as it is).
    private static void SumBiasGrad(IlgpuTrain.Kernels.Runtime.KernelHost host, ArrayView<float> dS, ArrayView<float> dBias, int b, int h, int plane, bool perBatch)
    {
        if (dBias.Length == 0)
            return;
        if (!perBatch)
        {
            // (1 or absent, H or 1, ...): over the batch, and over the heads too when the bias has one head.
            int cols = checked((int)dBias.Length);
            Reductions.SumColumns(host, dS, checked((int)(dS.Length / cols)), cols, dBias);
            return;
        }

        // (B, 1, Lq, Lk) with H > 1: over the heads of each batch element.
        for (int n = 0; n < b; n++)
            Reductions.SumColumns(host, dS.SubView((long)n * h * plane, (long)h * plane), h, plane, dBias.SubView((long)n * plane, plane));
    }

    // The bias's strides over batch and head (0 where it broadcasts); it must be (Lq, Lk), (H or 1, Lq, Lk) or (B or 1, H or 1, Lq, Lk).
    private static (int StrideB, int StrideH) BiasStrides(string op, Tensor bias, int b, int h, int lq, int lk)
    {
        RequireFloat(op, bias, nameof(bias));
        var sh = bias.Shape;
        string want = $"(B or 1, H or 1, Lq, Lk) = ({b} or 1, {h} or 1, {lq}, {lk}), or with leading dimensions left out";
        if (sh.Rank < 2 || sh.Rank > 4 || sh[-2] != lq || sh[-1] != lk)
            throw new ArgumentException($"{op}: bias is {sh}; it must broadcast as {want}.", nameof(bias));
        int hb = sh.Rank >= 3 ? sh[-3] : 1, bb = sh.Rank == 4 ? sh[0] : 1;
        if ((hb != 1 && hb != h) || (bb != 1 && bb != b))
            throw new ArgumentException($"{op}: bias is {sh}; it must broadcast as {want}.", nameof(bias));
        int plane = lq * lk;
        return (bb == 1 ? 0 : hb * plane, hb == 1 ? 0 : plane);
    }
}
