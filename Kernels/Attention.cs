using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using ILGPU.Algorithms;
using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// Fused scaled dot-product attention (torch.nn.functional.scaled_dot_product_attention), forward
// and backward, without the (Lq, Lk) matrix: FlashAttention-2's algorithm (Dao 2023).
//
//   q (BH, Lq, D), k (BH, Lk, D), v (BH, Lk, Dv), o (BH, Lq, Dv), lse (BH, Lq); BH = B * H rows
//   s_ij  = scale q_i . k_j + bias_ij, or -inf where (i, j) is masked:
//           causal and j > i (top-left aligned, as PyTorch's is_causal), j >= lengths[b], keyMask[b, j] == 0
//   lse_i = log sum_j exp(s_ij),  P_ij = exp(s_ij - lse_i)
//   Z_ij  = keep_ij / (1 - p), keep_ij = Uniform(seed, stream, counter, (bh Lq + i) Lk + j) < 1 - p
//           (Philox, as Dropout.cs; Z = 1 without dropout)
//   o_i   = sum_j P_ij Z_ij v_j
// Backward, from o, lse and the upstream dO (P and Z are recomputed, never stored):
//   Delta_i = dO_i . o_i  (= sum_j P_ij dP_ij)
//   dP_ij   = Z_ij (dO_i . v_j),  dS_ij = P_ij (dP_ij - Delta_i)
//   dq_i = scale sum_j dS_ij k_j,  dk_j = scale sum_i dS_ij q_i,  dv_j = sum_i P_ij Z_ij dO_i
//   dbias_ij = dS_ij  (only when asked: the one output of size (BH, Lq, Lk), written by the query side;
//                      the caller sums it over the bias's broadcast axes)
// The forward runs the online softmax over key tiles: a running max m and sum l per row; a tile
// whose max exceeds m rescales the accumulated o and l by exp(m_old - m_new), so no exp argument is
// positive and nothing overflows. A row with no unmasked key (or only -inf biases) gets o = 0 and
// lse = +inf, so its P, its output and every gradient through it are 0: zeros, never NaN (PyTorch's
// math path gives NaN there).
//
// Memory: o and lse (4 B per query row) are all the forward keeps; no (Lq, Lk) buffer exists on any
// path, except dbias's when the bias needs a gradient (the size of a full bias). Work: 2 BH Lq Lk (D + Dv) FLOPs forward, about 2.5x that backward (the scores and P are
// recomputed). Backward OVERWRITES dq, dk, dv (they must not alias the inputs or each other).
//
// Two algorithms, sharing the scalar math of AttentionMath (masking, logits, dropout keep, the
// online-softmax rescale, the lse of a row):
// - GPU (and the CpuAccelerator backend): a group of Br threads owns Br query rows; key and value
//   tiles of Tile rows are staged through shared memory (D, Dv up to MaxHeadDim), so K and V are read once per group,
//   not once per row. The backward is two deterministic kernels with no atomics: dQ (query rows
//   per thread, K/V tiles staged; it also writes Delta) and dK/dV (key rows per thread, tiles of
//   queries, dO, lse and Delta staged).
// - Managed CPU: each worker takes (bh, block of query rows) and walks key tiles of CpuKeyTile with
//   the same online softmax: Vector256 dot products and axpys, the tile's exps vectorized
//   (TensorPrimitives.Exp); the backward is one pass per bh (dq, dk, dv together), parallel over bh,
//   so no two threads write one gradient row.
// Dropout draws one Philox block per (i, j) and uses one of its four words: simple, layout-free, and
// only paid when p > 0.

/// <summary>The shape and options of one attention call: what every attention kernel takes besides its buffers.</summary>
/// <param name="Batch">B.</param>
/// <param name="Heads">H.</param>
/// <param name="Lq">Query length.</param>
/// <param name="Lk">Key (and value) length.</param>
/// <param name="D">Query and key head dimension.</param>
/// <param name="Dv">Value head dimension.</param>
/// <param name="Scale">Multiplies q . k.</param>
/// <param name="Causal">1: key j is masked for query i when j &gt; i.</param>
/// <param name="HasBias">1: an additive bias is read at b BiasStrideB + h BiasStrideH + i Lk + j.</param>
/// <param name="BiasStrideB">The bias's batch stride (0 broadcasts over the batch).</param>
/// <param name="BiasStrideH">The bias's head stride (0 broadcasts over heads).</param>
/// <param name="HasLengths">1: key j of batch b is masked when j &gt;= lengths[b].</param>
/// <param name="HasKeyMask">1: key j of batch b is masked when keyMask[b Lk + j] == 0.</param>
/// <param name="Keep">1 - p, the dropout keep probability (1 without dropout).</param>
/// <param name="DropScale">1 / (1 - p) (0 when p = 1).</param>
/// <param name="Key">The Philox stream of the dropout mask.</param>
/// <param name="HasBiasGrad">1: the backward writes dS_ij = P_ij (dP_ij - Delta_i), the bias's gradient before broadcasting, to a (BH, Lq, Lk) buffer.</param>
internal readonly record struct AttentionArgs(
    int Batch, int Heads, int Lq, int Lk, int D, int Dv, float Scale, int Causal,
    int HasBias, int BiasStrideB, int BiasStrideH, int HasLengths, int HasKeyMask,
    float Keep, float DropScale, PhiloxStream Key, int HasBiasGrad = 0);

/// <summary>The scalar math of attention that every path shares: masks, logits, dropout, the online softmax.</summary>
internal static class AttentionMath
{
    /// <summary>Whether query i attends to key j of row bh (causal, lengths and key mask).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Allowed<TI>(AttentionArgs a, TI lengths, TI keyMask, int bh, int i, int j)
        where TI : struct, IElements<int>
    {
        if (a.Causal != 0 && j > i)
            return false;
        int b = bh / a.Heads;
        if (a.HasLengths != 0 && j >= lengths[b])
            return false;
        return a.HasKeyMask == 0 || keyMask[(b * a.Lk) + j] != 0;
    }

    /// <summary>s_ij = scale dot + bias_ij for an allowed (i, j).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Logit<TF>(AttentionArgs a, TF bias, float dot, int bh, int i, int j)
        where TF : struct, IElements<float>
    {
        float s = dot * a.Scale;
        if (a.HasBias != 0)
        {
            int b = bh / a.Heads, h = bh - (b * a.Heads);
            s += bias[(b * a.BiasStrideB) + (h * a.BiasStrideH) + (i * a.Lk) + j];
        }

        return s;
    }

    /// <summary>Z_ij: 1 without dropout, else 1 / (1 - p) where the Philox draw keeps (i, j) and 0 where it drops it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Drop(AttentionArgs a, int bh, int i, int j)
    {
        if (a.Keep >= 1f)
            return 1f;
        long e = ((((long)bh * a.Lq) + i) * a.Lk) + j;
        return DropOf(a, Philox.BitsAt(a.Key.Seed, a.Key.Stream, a.Key.Counter, e));
    }

    /// <summary>Z from the Philox word of (i, j): 1 / (1 - p) when its uniform keeps, else 0.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float DropOf(AttentionArgs a, uint word) => Philox.ToUniform(word) < a.Keep ? a.DropScale : 0f;

    /// <summary>exp(s - m) with exp(-inf - m) = 0 spelled out (m finite, or lse = +inf for an empty row).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Prob(float s, float m) => s == float.NegativeInfinity ? 0f : XMath.Exp(s - m);

    /// <summary>The online-softmax rescale exp(mOld - mNew) of what was accumulated under the old running max (0 when nothing was).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Rescale(float mOld, float mNew) => mOld == float.NegativeInfinity ? 0f : XMath.Exp(mOld - mNew);

    /// <summary>A finished row's lse = m + log l, or +inf for a row with no unmasked key (so every P of it is 0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Lse(float m, float l) => l > 0f ? m + XMath.Log(l) : float.PositiveInfinity;

    /// <summary>1 / l, or 0 for an empty row (its output is 0).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Normalizer(float l) => l > 0f ? 1f / l : 0f;
}

/// <summary>Fused scaled dot-product attention: tiled ILGPU kernels, the managed CPU algorithm and checked launchers.</summary>
internal static class Attention
{
    /// <summary>Largest D and Dv of the tiled kernels (their shared-memory tiles are sized for it); the managed CPU path has no limit.</summary>
    public const int MaxHeadDim = 128;

    // Query rows per group (one per thread) at most; the group is min(this, the accelerator's group limit).
    private const int MaxRows = 32;

    // Key rows (forward, dQ) or query rows (dK/dV) per staged tile: 2 x 16 x 128 floats = 16 KB of tiles.
    private const int Tile = 16;

    // Key rows per tile of the managed path (a multiple of 8: its transposed tiles are whole vectors).
    private const int CpuKeyTile = 64;

    // Query rows per work item of the managed forward and per block of the managed backward.
    private const int CpuQueryBlock = 32;

    // ---------------------------------------------------------------- ILGPU kernels

    // Forward. Group t of BH * ceil(Lq / Br): row bh, query rows i0 .. i0 + Br - 1, one per thread.
    // The tile loops depend on the group only, so every thread reaches every barrier.
    public static void ForwardKernel(
        ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> o, ArrayView<float> lse,
        ArrayView<float> bias, ArrayView<int> lengths, ArrayView<int> keyMask, AttentionArgs a)
    {
        var sk = SharedMemory.Allocate<float>(Tile * MaxHeadDim);
        var sv = SharedMemory.Allocate<float>(Tile * MaxHeadDim);
        var ss = SharedMemory.Allocate<float>(Tile * MaxRows);
        var fb = new ViewElements<float>(bias);
        var il = new ViewElements<int>(lengths);
        var im = new ViewElements<int>(keyMask);
        int tid = Group.IdxX, br = Group.DimX, d = a.D, dv = a.Dv;
        int blocks = (a.Lq + br - 1) / br;
        int tiles = a.Batch * a.Heads * blocks;
        for (int t = Grid.IdxX; t < tiles; t += Grid.DimX)
        {
            int bh = t / blocks, i0 = (t - (bh * blocks)) * br, i = i0 + tid;
            bool row = i < a.Lq;
            int qo = ((bh * a.Lq) + i) * d, oo = ((bh * a.Lq) + i) * dv;
            float m = float.NegativeInfinity, l = 0f;
            if (row)
            {
                for (int c = 0; c < dv; c++)
                    o[oo + c] = 0f;
            }

            int jEnd = a.Causal != 0 ? XMath.Min(a.Lk, i0 + br) : a.Lk;
            for (int j0 = 0; j0 < jEnd; j0 += Tile)
            {
                int bc = XMath.Min(Tile, jEnd - j0);
                StagePair(k, sk, ((bh * a.Lk) + j0) * d, bc * d, v, sv, ((bh * a.Lk) + j0) * dv, bc * dv, tid, br);
                if (!row)
                    continue;
                float mt = float.NegativeInfinity;
                for (int c = 0; c < bc; c++)
                {
                    int j = j0 + c;
                    float s = float.NegativeInfinity;
                    if (AttentionMath.Allowed(a, il, im, bh, i, j))
                        s = AttentionMath.Logit(a, fb, Dot(q, qo, sk, c * d, d), bh, i, j);
                    ss[(c * MaxRows) + tid] = s;
                    mt = XMath.Max(mt, s);
                }

                float mNew = XMath.Max(m, mt);
                if (mNew == float.NegativeInfinity)
                    continue;
                float alpha = AttentionMath.Rescale(m, mNew);
                l *= alpha;
                for (int c = 0; c < bc; c++)
                {
                    float p = AttentionMath.Prob(ss[(c * MaxRows) + tid], mNew);
                    l += p;
                    ss[(c * MaxRows) + tid] = p * AttentionMath.Drop(a, bh, i, j0 + c);
                }

                AccumulateTile(o, oo, dv, alpha, ss, tid, sv, bc);

                m = mNew;
            }

            if (row)
            {
                float inv = AttentionMath.Normalizer(l);
                for (int e = 0; e < dv; e++)
                    o[oo + e] *= inv;
                lse[(bh * a.Lq) + i] = AttentionMath.Lse(m, l);
            }
        }
    }

    // Backward, query side: dq_i = scale sum_j dS_ij k_j over key tiles staged like the forward's;
    // also writes Delta_i = dO_i . o_i, which the key side reads.
    public static void BackwardQueryKernel(
        ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> o, ArrayView<float> lse, ArrayView<float> dO,
        ArrayView<float> dq, ArrayView<float> delta, ArrayView<float> dBias, ArrayView<float> bias, ArrayView<int> lengths, ArrayView<int> keyMask, AttentionArgs a)
    {
        var sk = SharedMemory.Allocate<float>(Tile * MaxHeadDim);
        var sv = SharedMemory.Allocate<float>(Tile * MaxHeadDim);
        var ss = SharedMemory.Allocate<float>(Tile * MaxRows);
        var fb = new ViewElements<float>(bias);
        var il = new ViewElements<int>(lengths);
        var im = new ViewElements<int>(keyMask);
        int tid = Group.IdxX, br = Group.DimX, d = a.D, dv = a.Dv;
        int blocks = (a.Lq + br - 1) / br;
        int tiles = a.Batch * a.Heads * blocks;
        for (int t = Grid.IdxX; t < tiles; t += Grid.DimX)
        {
            int bh = t / blocks, i0 = (t - (bh * blocks)) * br, i = i0 + tid;
            bool row = i < a.Lq;
            int qo = ((bh * a.Lq) + i) * d, oo = ((bh * a.Lq) + i) * dv;
            float rowLse = 0f, rowDelta = 0f;
            if (row)
            {
                for (int c = 0; c < d; c++)
                    dq[qo + c] = 0f;
                rowDelta = Dot(dO, oo, o, oo, dv);
                delta[(bh * a.Lq) + i] = rowDelta;
                rowLse = lse[(bh * a.Lq) + i];
            }

            int jEnd = a.Causal != 0 ? XMath.Min(a.Lk, i0 + br) : a.Lk;
            for (int j0 = 0; j0 < jEnd; j0 += Tile)
            {
                int bc = XMath.Min(Tile, jEnd - j0);
                StagePair(k, sk, ((bh * a.Lk) + j0) * d, bc * d, v, sv, ((bh * a.Lk) + j0) * dv, bc * dv, tid, br);
                if (!row)
                    continue;
                for (int c = 0; c < bc; c++)
                {
                    int j = j0 + c;
                    float ds = 0f;
                    if (AttentionMath.Allowed(a, il, im, bh, i, j))
                    {
                        float p = AttentionMath.Prob(AttentionMath.Logit(a, fb, Dot(q, qo, sk, c * d, d), bh, i, j), rowLse);
                        float dp = Dot(dO, oo, sv, c * dv, dv) * AttentionMath.Drop(a, bh, i, j);
                        ds = p * (dp - rowDelta);
                        if (a.HasBiasGrad != 0)
                            dBias[(((bh * a.Lq) + i) * a.Lk) + j] = ds;
                    }

                    ss[(c * MaxRows) + tid] = ds * a.Scale;
                }

                AccumulateTile(dq, qo, d, 1f, ss, tid, sk, bc);
            }
        }
    }

    // Backward, key side: group t of BH * ceil(Lk / Br) owns key rows j0 .. j0 + Br - 1, one per
    // thread, and walks tiles of queries (q, dO, lse, Delta staged): dv_j = sum_i P_ij Z_ij dO_i,
    // dk_j = scale sum_i dS_ij q_i.
    public static void BackwardKeyKernel(
        ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> lse, ArrayView<float> dO, ArrayView<float> delta,
        ArrayView<float> dk, ArrayView<float> dv, ArrayView<float> bias, ArrayView<int> lengths, ArrayView<int> keyMask, AttentionArgs a)
    {
        var sq = SharedMemory.Allocate<float>(Tile * MaxHeadDim);
        var sdo = SharedMemory.Allocate<float>(Tile * MaxHeadDim);
        var sl = SharedMemory.Allocate<float>(Tile);
        var sd = SharedMemory.Allocate<float>(Tile);
        var sp = SharedMemory.Allocate<float>(Tile * MaxRows);
        var ss = SharedMemory.Allocate<float>(Tile * MaxRows);
        var fb = new ViewElements<float>(bias);
        var il = new ViewElements<int>(lengths);
        var im = new ViewElements<int>(keyMask);
        int tid = Group.IdxX, br = Group.DimX, d = a.D, dvw = a.Dv;
        int blocks = (a.Lk + br - 1) / br;
        int tiles = a.Batch * a.Heads * blocks;
        for (int t = Grid.IdxX; t < tiles; t += Grid.DimX)
        {
            int bh = t / blocks, j0 = (t - (bh * blocks)) * br, j = j0 + tid;
            bool col = j < a.Lk;
            int ko = ((bh * a.Lk) + j) * d, vo = ((bh * a.Lk) + j) * dvw;
            if (col)
            {
                for (int c = 0; c < d; c++)
                    dk[ko + c] = 0f;
                for (int c = 0; c < dvw; c++)
                    dv[vo + c] = 0f;
            }

            // Causal: query i sees key j only when i >= j, so tiles below j0 hold nothing for this group.
            int iStart = a.Causal != 0 ? j0 / Tile * Tile : 0;
            for (int i0 = iStart; i0 < a.Lq; i0 += Tile)
            {
                int bq = XMath.Min(Tile, a.Lq - i0);
                Group.Barrier();
                Stage(q, sq, ((bh * a.Lq) + i0) * d, bq * d, tid, br);
                Stage(dO, sdo, ((bh * a.Lq) + i0) * dvw, bq * dvw, tid, br);
                Stage(lse, sl, (bh * a.Lq) + i0, bq, tid, br);
                Stage(delta, sd, (bh * a.Lq) + i0, bq, tid, br);
                Group.Barrier();
                if (!col)
                    continue;
                for (int r = 0; r < bq; r++)
                {
                    int i = i0 + r;
                    float pz = 0f, ds = 0f;
                    if (AttentionMath.Allowed(a, il, im, bh, i, j))
                    {
                        float p = AttentionMath.Prob(AttentionMath.Logit(a, fb, Dot(sq, r * d, k, ko, d), bh, i, j), sl[r]);
                        float z = AttentionMath.Drop(a, bh, i, j);
                        float dp = Dot(sdo, r * dvw, v, vo, dvw) * z;
                        pz = p * z;
                        ds = p * (dp - sd[r]) * a.Scale;
                    }

                    sp[(r * MaxRows) + tid] = pz;
                    ss[(r * MaxRows) + tid] = ds;
                }

                AccumulateTile(dv, vo, dvw, 1f, sp, tid, sdo, bq);
                AccumulateTile(dk, ko, d, 1f, ss, tid, sq, bq);
            }
        }
    }

    // Copies n contiguous floats from x[offset..] into the tile, the group's threads striding.
    private static void Stage(ArrayView<float> x, ArrayView<float> tile, int offset, int n, int tid, int br)
    {
        for (int e = tid; e < n; e += br)
            tile[e] = x[offset + e];
    }

    // Stages two tiles (keys and values, or queries and dO) between barriers: every thread of the group must call it.
    private static void StagePair(ArrayView<float> x, ArrayView<float> xTile, int xOffset, int xn, ArrayView<float> y, ArrayView<float> yTile, int yOffset, int yn, int tid, int br)
    {
        Group.Barrier();
        Stage(x, xTile, xOffset, xn, tid, br);
        Stage(y, yTile, yOffset, yn, tid, br);
        Group.Barrier();
    }

    // out[o + e] = out[o + e] alpha + sum_c w[c MaxRows + tid] tile[c n + e] for e < n, over the
    // tile's rows c in order: this thread's weighted sum of a staged tile (alpha 1 is exact).
    private static void AccumulateTile(ArrayView<float> output, int o, int n, float alpha, ArrayView<float> w, int tid, ArrayView<float> tile, int rows)
    {
        for (int e = 0; e < n; e++)
        {
            float acc = output[o + e] * alpha;
            for (int c = 0; c < rows; c++)
                acc += w[(c * MaxRows) + tid] * tile[(c * n) + e];
            output[o + e] = acc;
        }
    }

    // x[xo .. xo + n) . y[yo .. yo + n) in index order.
    private static float Dot(ArrayView<float> x, int xo, ArrayView<float> y, int yo, int n)
    {
        float s = 0f;
        for (int e = 0; e < n; e++)
            s += x[xo + e] * y[yo + e];
        return s;
    }

    private static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, AttentionArgs>> ForwardDef =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, AttentionArgs>(ForwardKernel);

    private static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, AttentionArgs>> BackwardQueryDef =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, AttentionArgs>(BackwardQueryKernel);

    private static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, AttentionArgs>> BackwardKeyDef =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, AttentionArgs>(BackwardKeyKernel);

    // ---------------------------------------------------------------- launchers

    /// <summary>
    /// o = softmax(scale q k^T + bias, masked) Z v per (b, h), and lse (BH, Lq) for the backward;
    /// o and lse OVERWRITTEN. bias, lengths and keyMask are read only when <paramref name="a"/> says so.
    /// </summary>
    public static void Forward(KernelHost host, AttentionArgs a, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> o, ArrayView<float> lse, ArrayView<float> bias, ArrayView<int> lengths, ArrayView<int> keyMask)
    {
        if (!Require(host, nameof(Forward), a, (q, nameof(q), (long)a.Lq * a.D), (k, nameof(k), (long)a.Lk * a.D), (v, nameof(v), (long)a.Lk * a.Dv), (o, nameof(o), (long)a.Lq * a.Dv), (lse, nameof(lse), a.Lq)))
        {
            // No keys: every row is empty, so o = 0 and lse = +inf (as for a fully masked row).
            if (o.Length > 0)
                Elementwise.Fill(host, o, 0f);
            if (lse.Length > 0)
                Elementwise.Fill(host, lse, float.PositiveInfinity);
            return;
        }

        if (host.RunsManaged)
        {
            int blocks = (a.Lq + CpuQueryBlock - 1) / CpuQueryBlock;
            CpuLoops.For(host, (long)a.Batch * a.Heads * blocks, new ForwardRange(a, Views.Of(q, k, v, o, lse, bias, lengths, keyMask), blocks), Grain(a, CpuQueryBlock));
            return;
        }

        ForwardTiled(host, a, q, k, v, o, lse, bias, lengths, keyMask, DefaultRows(host));
    }

    /// <summary>As <see cref="Forward"/>, but the tiled kernel on any accelerator, with <paramref name="rows"/> query rows (threads) per group; tests run several.</summary>
    internal static void ForwardTiled(KernelHost host, AttentionArgs a, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> o, ArrayView<float> lse, ArrayView<float> bias, ArrayView<int> lengths, ArrayView<int> keyMask, int rows)
    {
        RequireTiled(host, nameof(Forward), a, rows);
        host.Load(ForwardDef)(host.Stream, Config(host, a.Lq, a, rows), q, k, v, o, lse, bias, lengths, keyMask, a);
    }

    /// <summary>
    /// dq, dk, dv (OVERWRITTEN) from the forward's o and lse and the upstream dO; the probabilities and
    /// the dropout mask are recomputed. delta (BH, Lq) is scratch. When a.HasBiasGrad, dBias (BH, Lq, Lk)
    /// is OVERWRITTEN with dS (0 where masked); otherwise it is not touched.
    /// </summary>
    public static unsafe void Backward(
        KernelHost host, AttentionArgs a, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> o, ArrayView<float> lse, ArrayView<float> dO,
        ArrayView<float> dq, ArrayView<float> dk, ArrayView<float> dv, ArrayView<float> delta, ArrayView<float> dBias, ArrayView<float> bias, ArrayView<int> lengths, ArrayView<int> keyMask)
    {
        if (a.HasBiasGrad != 0)
        {
            ArgumentNullException.ThrowIfNull(host);
            Check.Length(nameof(Attention) + "." + nameof(Backward), dBias, nameof(dBias), (long)a.Batch * a.Heads * a.Lq * a.Lk, $"(B H, Lq, Lk) = ({a.Batch * a.Heads}, {a.Lq}, {a.Lk})");
            Check.Fits32(nameof(Attention) + "." + nameof(Backward), dBias, nameof(dBias));
        }

        if (!Require(
            host, nameof(Backward), a,
            (q, nameof(q), (long)a.Lq * a.D), (k, nameof(k), (long)a.Lk * a.D), (v, nameof(v), (long)a.Lk * a.Dv), (o, nameof(o), (long)a.Lq * a.Dv), (lse, nameof(lse), a.Lq),
            (dO, nameof(dO), (long)a.Lq * a.Dv), (dq, nameof(dq), (long)a.Lq * a.D), (dk, nameof(dk), (long)a.Lk * a.D), (dv, nameof(dv), (long)a.Lk * a.Dv), (delta, nameof(delta), a.Lq)))
        {
            // Nothing to attend with or to: whatever gradients exist are zeros.
            foreach (var g in (ReadOnlySpan<ArrayView<float>>)[dq, dk, dv])
            {
                if (g.Length > 0)
                    Elementwise.Fill(host, g, 0f);
            }

            return;
        }

        if (host.RunsManaged)
        {
            var views = Views.Of(q, k, v, o, lse, bias, lengths, keyMask);
            CpuLoops.For(host, (long)a.Batch * a.Heads, new BackwardRange(a, views, CpuLoops.Ptr(dO), CpuLoops.Ptr(dq), CpuLoops.Ptr(dk), CpuLoops.Ptr(dv), CpuLoops.Ptr(dBias)), Grain(a, 3L * a.Lq));
            return;
        }

        BackwardTiled(host, a, q, k, v, o, lse, dO, dq, dk, dv, delta, dBias, bias, lengths, keyMask, DefaultRows(host));
    }

    /// <summary>As <see cref="Backward"/>, but the tiled kernels on any accelerator, with <paramref name="rows"/> threads per group; tests run several.</summary>
    internal static void BackwardTiled(
        KernelHost host, AttentionArgs a, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> o, ArrayView<float> lse, ArrayView<float> dO,
        ArrayView<float> dq, ArrayView<float> dk, ArrayView<float> dv, ArrayView<float> delta, ArrayView<float> dBias, ArrayView<float> bias, ArrayView<int> lengths, ArrayView<int> keyMask, int rows)
    {
        RequireTiled(host, nameof(Backward), a, rows);

        // The query kernel writes the unmasked entries only.
        if (a.HasBiasGrad != 0)
            Elementwise.Fill(host, dBias, 0f);
        host.Load(BackwardQueryDef)(host.Stream, Config(host, a.Lq, a, rows), q, k, v, o, lse, dO, dq, delta, dBias, bias, lengths, keyMask, a);
        host.Load(BackwardKeyDef)(host.Stream, Config(host, a.Lk, a, rows), q, k, v, lse, dO, delta, dk, dv, bias, lengths, keyMask, a);
    }

    // Checks the views against the shape; false when there is no work (BH, Lq or Lk zero).
    private static bool Require(KernelHost host, string op, AttentionArgs a, params ReadOnlySpan<(ArrayView<float> View, string Name, long PerRow)> views)
    {
        ArgumentNullException.ThrowIfNull(host);
        string name = nameof(Attention) + "." + op;
        Check.Dimension(name, a.Batch, "B");
        Check.Dimension(name, a.Heads, "H");
        Check.Dimension(name, a.Lq, "Lq");
        Check.Dimension(name, a.Lk, "Lk");
        Check.Dimension(name, a.D, "D");
        Check.Dimension(name, a.Dv, "Dv");
        long bh = (long)a.Batch * a.Heads;
        string legend = $"(B, H, Lq, Lk, D, Dv) = ({a.Batch}, {a.Heads}, {a.Lq}, {a.Lk}, {a.D}, {a.Dv})";
        foreach (var (view, viewName, perRow) in views)
        {
            Check.Length(name, view, viewName, bh * perRow, legend);
            Check.Fits32(name, view, viewName);
        }

        return bh > 0 && a.Lq > 0 && a.Lk > 0;
    }

    private static void RequireTiled(KernelHost host, string op, AttentionArgs a, int rows)
    {
        if (rows < 1 || rows > MaxRows || rows > host.Accelerator.MaxNumThreadsPerGroup)
            throw new ArgumentOutOfRangeException(nameof(rows), rows, $"Attention.{op}: the rows per group must be 1 to {Math.Min(MaxRows, host.Accelerator.MaxNumThreadsPerGroup)}, got {rows}.");

        if (a.D > MaxHeadDim || a.Dv > MaxHeadDim)
            throw new NotSupportedException($"Attention.{op}: the {host.Backend} kernels take head dimensions up to {MaxHeadDim} (their shared-memory tiles are sized for it), got D = {a.D}, Dv = {a.Dv}; split the heads further, or run on the CPU (Managed) backend, which has no limit.");
    }

    // Br = min(MaxRows, the accelerator's group limit) threads per group, one row each.
    private static int DefaultRows(KernelHost host) => Math.Min(MaxRows, host.Accelerator.MaxNumThreadsPerGroup);

    // Groups of br threads, grid-stride over BH * ceil(length / br).
    private static KernelConfig Config(KernelHost host, int length, AttentionArgs a, int br)
    {
        long tiles = (long)a.Batch * a.Heads * ((length + br - 1) / br);
        return new KernelConfig((int)Math.Min(tiles, Math.Max(1, host.Launch.MaxGroups)), br);
    }

    // Floats touched by `rows` query rows over all keys: the parallel split's grain.
    private static int Grain(AttentionArgs a, long rows) => (int)Math.Min(1 << 24, rows * a.Lk * (a.D + a.Dv));

    // ---------------------------------------------------------------- managed CPU algorithm

    // The buffers as host pointers (the CPU accelerator's memory).
    private readonly unsafe struct Views(float* q, float* k, float* v, float* o, float* lse, PtrElements<float> bias, PtrElements<int> lengths, PtrElements<int> keyMask)
    {
        public float* Q => q;

        public float* K => k;

        public float* V => v;

        public float* O => o;

        public float* Lse => lse;

        public PtrElements<float> Bias => bias;

        public PtrElements<int> Lengths => lengths;

        public PtrElements<int> KeyMask => keyMask;

        public static Views Of(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> o, ArrayView<float> lse, ArrayView<float> bias, ArrayView<int> lengths, ArrayView<int> keyMask) =>
            new(CpuLoops.Ptr(q), CpuLoops.Ptr(k), CpuLoops.Ptr(v), CpuLoops.Ptr(o), CpuLoops.Ptr(lse), new(CpuLoops.Ptr(bias)), new(CpuLoops.Ptr(lengths)), new(CpuLoops.Ptr(keyMask)));
    }

    // One worker's scratch, carved from a pinned per-thread buffer kept between calls (GemmHalf.WideScratch,
    // as the GEMM's packing buffers: no allocation per step): the key and value tiles transposed (D x
    // CpuKeyTile, Dv x CpuKeyTile, zero-padded to whole vectors by Transpose), a row of scores and one of
    // dP, the dropout row, and CpuQueryBlock rows of P Z and of dS (the backward's per-block matrices),
    // and the forward's running max and sum per query row. Every piece is written before it is read.
    [ThreadStatic]
    private static float[]? _scratch;

    private unsafe readonly struct Scratch
    {
        public readonly float* Kt, Vt, S, Dp, Z, Pz, Ds, M, L;

        public Scratch(AttentionArgs a)
        {
            long kt = (long)a.D * CpuKeyTile, vt = (long)a.Dv * CpuKeyTile, tile = (long)CpuQueryBlock * CpuKeyTile;
            Kt = GemmHalf.WideScratch(ref _scratch, kt + vt + (3L * CpuKeyTile) + (2 * tile) + (2L * CpuQueryBlock));
            Vt = Kt + kt;
            S = Vt + vt;
            Dp = S + CpuKeyTile;
            Z = Dp + CpuKeyTile;
            Pz = Z + CpuKeyTile;
            Ds = Pz + tile;
            M = Ds + tile;
            L = M + CpuQueryBlock;
        }
    }

    // Work item w = (bh, block of CpuQueryBlock query rows): key tiles outer, the block's rows inner,
    // each row with the online softmax (running max M and sum L per row).
    private readonly unsafe struct ForwardRange(AttentionArgs a, Views x, int blocks) : CpuLoops.IRange
    {
        public void Run(int start, int end)
        {
            var t = new Scratch(a);
            for (int w = start; w < end; w++)
            {
                int bh = w / blocks, i0 = (w - (bh * blocks)) * CpuQueryBlock;
                ForwardBlock(a, x, bh, i0, Math.Min(a.Lq, i0 + CpuQueryBlock), t);
            }
        }
    }

    private static unsafe void ForwardBlock(AttentionArgs a, Views x, int bh, int i0, int iEnd, Scratch t)
    {
        int d = a.D, dv = a.Dv;
        long qBase = (long)bh * a.Lq;
        float* k = x.K + ((long)bh * a.Lk * d);
        float* v = x.V + ((long)bh * a.Lk * dv);
        new Span<float>(x.O + ((qBase + i0) * dv), (iEnd - i0) * dv).Clear();
        for (int r = 0; r < iEnd - i0; r++)
        {
            t.M[r] = float.NegativeInfinity;
            t.L[r] = 0f;
        }

        int jEnd = a.Causal != 0 ? Math.Min(a.Lk, iEnd) : a.Lk;
        for (int j0 = 0; j0 < jEnd; j0 += CpuKeyTile)
        {
            int bc = Math.Min(CpuKeyTile, jEnd - j0);
            Transpose(k + ((long)j0 * d), bc, d, t.Kt);
            for (int i = Math.Max(i0, a.Causal != 0 ? j0 : 0); i < iEnd; i++)
            {
                int r = i - i0;
                float* oi = x.O + ((qBase + i) * dv);
                int n = a.Causal != 0 ? Math.Min(bc, i - j0 + 1) : bc;                   // the keys of the tile not causally masked
                RowTimesTransposed(x.Q + ((qBase + i) * d), t.Kt, d, n, t.S);
                Logits(a, x, bh, i, j0, n, t.S);
                var tile = new Span<float>(t.S, n);
                float m = t.M[r], mNew = MathF.Max(m, TensorPrimitives.Max(tile));
                if (mNew == float.NegativeInfinity)
                    continue;
                var o = new Span<float>(oi, dv);
                float alpha = AttentionMath.Rescale(m, mNew);
                if (alpha != 1f)
                {
                    t.L[r] *= alpha;
                    TensorPrimitives.Multiply(o, alpha, o);
                }

                // P of the tile, vectorized: exp(s - m) with masked entries exp(-inf) = 0 (AttentionMath.Prob).
                TensorPrimitives.Subtract(tile, mNew, tile);
                TensorPrimitives.Exp(tile, tile);
                t.L[r] += TensorPrimitives.Sum(tile);
                if (a.Keep < 1f)
                {
                    DropTile(a, bh, i, j0, n, t.Z);
                    TensorPrimitives.Multiply(tile, new ReadOnlySpan<float>(t.Z, n), tile);
                }

                AddWeightedRows(t.S, 1, n, v + ((long)j0 * dv), dv, oi);
                t.M[r] = mNew;
            }
        }

        for (int i = i0; i < iEnd; i++)
        {
            var o = new Span<float>(x.O + ((qBase + i) * dv), dv);
            TensorPrimitives.Multiply(o, AttentionMath.Normalizer(t.L[i - i0]), o);
            x.Lse[qBase + i] = AttentionMath.Lse(t.M[i - i0], t.L[i - i0]);
        }
    }

    // s[c] = s_ij for the keys j = j0 + c, c < n, of query i, from their dot products in s: scaled, plus
    // the bias, and -inf where masked (AttentionMath.Allowed and Logit); the causal mask is the caller's n.
    private static unsafe void Logits(AttentionArgs a, Views x, int bh, int i, int j0, int n, float* s)
    {
        if ((a.HasBias | a.HasLengths | a.HasKeyMask) == 0)
        {
            var row = new Span<float>(s, n);
            TensorPrimitives.Multiply(row, a.Scale, row);                                              // Logit without a bias: dot * scale
            return;
        }

        for (int c = 0; c < n; c++)
        {
            int j = j0 + c;
            s[c] = AttentionMath.Allowed(a, x.Lengths, x.KeyMask, bh, i, j) ? AttentionMath.Logit(a, x.Bias, s[c], bh, i, j) : float.NegativeInfinity;
        }
    }

    // Z_ij (AttentionMath.Drop) of keys j0 .. j0 + n - 1 of query i (n at most CpuKeyTile): the Philox
    // words of the row's consecutive elements drawn sixteen at a time (four blocks, PhiloxSimd: the same
    // words as Philox.BlockAt), then Z for eight keys at once as Dropout's vector mask: (w >> 8) is below
    // 2^24, so its conversion and the power-of-two scale are exact and Z equals DropOf bit for bit.
    private static unsafe void DropTile(AttentionArgs a, int bh, int i, int j0, int n, float* z)
    {
        ulong e0 = (ulong)(((((long)bh * a.Lq) + i) * a.Lk) + j0);
        ulong first = e0 >> 2;
        int off = (int)(e0 & 3);
        uint* words = stackalloc uint[CpuKeyTile + 16];
        for (int g = 0; 16 * g < off + n; g++)
        {
            ulong block = first + (ulong)(4 * g);
            uint* w = words + (16 * g);
            if (PhiloxSimd.IsSupported)
            {
                PhiloxSimd.Blocks4(a.Key.Seed, a.Key.Stream, a.Key.Counter, block, w);
                continue;
            }

            for (int b = 0; b < 4; b++)
            {
                var x = Philox.BlockAt(a.Key.Seed, a.Key.Stream, a.Key.Counter, block + (ulong)b);
                for (int k = 0; k < 4; k++)
                    w[(4 * b) + k] = x.Word(k);
            }
        }

        int c = 0;
        var keep = Vector256.Create(a.Keep);
        var scale = Vector256.Create(a.DropScale);
        var inv24 = Vector256.Create(Philox.Inv24);
        for (; c + 8 <= n; c += 8)
        {
            var u = Vector256.ConvertToSingle((Vector256.Load(words + off + c) >>> 8).AsInt32()) * inv24;
            Vector256.ConditionalSelect(Vector256.LessThan(u, keep), scale, Vector256<float>.Zero).Store(z + c);
        }

        for (; c < n; c++)
            z[c] = AttentionMath.DropOf(a, words[off + c]);
    }

    // Work item = bh: dq, dk, dv of the whole (b, h). Key tiles outer (K and V transposed once per
    // tile), blocks of query rows inner: per row its P, dP and dS over the tile (scores vectorized over
    // keys), dq_i += dS_i K_tile; then per key of the tile dv_j += (P Z)^T dO and dk_j += dS^T Q over the
    // block's rows. Parallel over bh, so no two threads write one gradient row.
    private readonly unsafe struct BackwardRange(AttentionArgs a, Views x, float* dO, float* dq, float* dk, float* dv, float* dBias) : CpuLoops.IRange
    {
        public void Run(int start, int end)
        {
            var t = new Scratch(a);
            for (int bh = start; bh < end; bh++)
                BackwardHead(a, x, dO, dq, dk, dv, dBias, bh, t);
        }
    }

    private static unsafe void BackwardHead(AttentionArgs a, Views x, float* dO, float* dq, float* dk, float* dv, float* dBias, int bh, Scratch t)
    {
        int d = a.D, dvw = a.Dv;
        long qBase = (long)bh * a.Lq, kBase = (long)bh * a.Lk;
        new Span<float>(dq + (qBase * d), a.Lq * d).Clear();
        new Span<float>(dk + (kBase * d), a.Lk * d).Clear();
        new Span<float>(dv + (kBase * dvw), a.Lk * dvw).Clear();
        if (a.HasBiasGrad != 0)
            new Span<float>(dBias + (qBase * a.Lk), a.Lq * a.Lk).Clear();
        for (int j0 = 0; j0 < a.Lk; j0 += CpuKeyTile)
        {
            int bc = Math.Min(CpuKeyTile, a.Lk - j0);
            float* kTile = x.K + ((kBase + j0) * d);
            Transpose(kTile, bc, d, t.Kt);
            Transpose(x.V + ((kBase + j0) * dvw), bc, dvw, t.Vt);
            for (int i0 = a.Causal != 0 ? j0 / CpuQueryBlock * CpuQueryBlock : 0; i0 < a.Lq; i0 += CpuQueryBlock)
            {
                int rows = Math.Min(CpuQueryBlock, a.Lq - i0);
                for (int r = 0; r < rows; r++)
                {
                    int i = i0 + r;
                    float* pz = t.Pz + (r * CpuKeyTile), ds = t.Ds + (r * CpuKeyTile);
                    int n = a.Causal != 0 ? Math.Min(bc, Math.Max(0, i - j0 + 1)) : bc;            // the keys of the tile not causally masked
                    float lse = x.Lse[qBase + i];
                    if (lse == float.PositiveInfinity)
                        n = 0;
                    new Span<float>(pz + n, bc - n).Clear();
                    new Span<float>(ds + n, bc - n).Clear();
                    if (n == 0)
                        continue;

                    float* qi = x.Q + ((qBase + i) * d);
                    float* doi = dO + ((qBase + i) * dvw);
                    RowTimesTransposed(qi, t.Kt, d, n, t.S);
                    Logits(a, x, bh, i, j0, n, t.S);

                    // P = exp(s - lse) for the tile, vectorized; masked entries give 0.
                    var tile = new Span<float>(t.S, n);
                    TensorPrimitives.Subtract(tile, lse, tile);
                    TensorPrimitives.Exp(tile, tile);
                    if (a.Keep < 1f)
                        DropTile(a, bh, i, j0, n, t.Z);
                    RowTimesTransposed(doi, t.Vt, dvw, n, t.Dp);
                    float delta = Dot(doi, x.O + ((qBase + i) * dvw), dvw);
                    Scores(a, t, n, delta, pz, ds, a.HasBiasGrad != 0 ? dBias + ((qBase + i) * a.Lk) + j0 : null);

                    AddWeightedRows(ds, 1, n, kTile, d, dq + ((qBase + i) * d));
                }

                for (int c = 0; c < bc; c++)
                {
                    long j = kBase + j0 + c;
                    AddWeightedRows(t.Pz + c, CpuKeyTile, rows, dO + ((qBase + i0) * dvw), dvw, dv + (j * dvw));
                    AddWeightedRows(t.Ds + c, CpuKeyTile, rows, x.Q + ((qBase + i0) * d), d, dk + (j * d));
                }
            }
        }
    }

    // Per key c < n of a row, from P (t.S), dP (t.Dp) and Z (t.Z): pz = P Z, dS = P (dP Z - Delta) (0 where
    // P is 0: masked), ds = dS scale, and dS into dBias when it is asked for; eight keys at a time.
    private static unsafe void Scores(AttentionArgs a, Scratch t, int n, float delta, float* pz, float* ds, float* dBias)
    {
        bool drops = a.Keep < 1f;
        var vDelta = Vector256.Create(delta);
        var vScale = Vector256.Create(a.Scale);
        int c = 0;
        for (; c + 8 <= n; c += 8)
        {
            var p = Vector256.Load(t.S + c);
            var z = drops ? Vector256.Load(t.Z + c) : Vector256<float>.One;
            var dsu = Vector256.ConditionalSelect(Vector256.GreaterThan(p, Vector256<float>.Zero), p * ((Vector256.Load(t.Dp + c) * z) - vDelta), Vector256<float>.Zero);
            if (dBias != null)
                dsu.Store(dBias + c);
            (p * z).Store(pz + c);
            (dsu * vScale).Store(ds + c);
        }

        for (; c < n; c++)
        {
            float p = t.S[c];
            float z = drops ? t.Z[c] : 1f;
            float dsu = p > 0f ? p * ((t.Dp[c] * z) - delta) : 0f;
            if (dBias != null)
                dBias[c] = dsu;
            pz[c] = p * z;
            ds[c] = dsu * a.Scale;
        }
    }

    // xt[e * CpuKeyTile + c] = x[c * width + e] for the tile's n rows; lanes n .. the next multiple of 8 stay 0.
    private static unsafe void Transpose(float* x, int n, int width, float* xt)
    {
        for (int c = 0; c < n; c++)
        {
            float* row = x + ((long)c * width);
            for (int e = 0; e < width; e++)
                xt[(e * CpuKeyTile) + c] = row[e];
        }

        for (int e = 0; e < width; e++)
            new Span<float>(xt + (e * CpuKeyTile) + n, (-n & 7)).Clear();
    }

    // s[c] = x . row c of the tile, for c below n rounded up to 8, from the transposed tile xt
    // (width x CpuKeyTile): eight keys per vector, four vectors in flight.
    private static unsafe void RowTimesTransposed(float* x, float* xt, int width, int n, float* s)
    {
        int c = 0;
        for (; c + 32 <= n; c += 32)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int e = 0; e < width; e++)
            {
                var xe = Vector256.Create(x[e]);
                float* row = xt + (e * CpuKeyTile) + c;
                a0 = Madd(xe, Vector256.Load(row), a0);
                a1 = Madd(xe, Vector256.Load(row + 8), a1);
                a2 = Madd(xe, Vector256.Load(row + 16), a2);
                a3 = Madd(xe, Vector256.Load(row + 24), a3);
            }

            a0.Store(s + c);
            a1.Store(s + c + 8);
            a2.Store(s + c + 16);
            a3.Store(s + c + 24);
        }

        for (; c < n; c += 8)
        {
            Vector256<float> a0 = default;
            for (int e = 0; e < width; e++)
                a0 = Madd(Vector256.Create(x[e]), Vector256.Load(xt + (e * CpuKeyTile) + c), a0);
            a0.Store(s + c);
        }
    }

    // y += sum over r < n of w[r * stride] * rows[r * width ..], the weights' zeros skipped (a
    // masked key's row, inf or NaN, never reaches y); y stays in registers over r, 16 floats at a time.
    private static unsafe void AddWeightedRows(float* w, int stride, int n, float* rows, int width, float* y)
    {
        int e = 0;
        for (; e + 16 <= width; e += 16)
        {
            // Even and odd rows in separate accumulators: two chains of FMAs in flight instead of one.
            var y0 = Vector256.Load(y + e);
            var y1 = Vector256.Load(y + e + 8);
            Vector256<float> u0 = default, u1 = default;
            int r = 0;
            for (; r + 2 <= n; r += 2)
            {
                float w0 = w[(long)r * stride], w1 = w[(long)(r + 1) * stride];
                float* row = rows + ((long)r * width) + e;
                if (w0 != 0f)
                {
                    var b = Vector256.Create(w0);
                    y0 = Madd(b, Vector256.Load(row), y0);
                    y1 = Madd(b, Vector256.Load(row + 8), y1);
                }

                if (w1 != 0f)
                {
                    var b = Vector256.Create(w1);
                    u0 = Madd(b, Vector256.Load(row + width), u0);
                    u1 = Madd(b, Vector256.Load(row + width + 8), u1);
                }
            }

            if (r < n && w[(long)r * stride] is var wl && wl != 0f)
            {
                var b = Vector256.Create(wl);
                float* row = rows + ((long)r * width) + e;
                y0 = Madd(b, Vector256.Load(row), y0);
                y1 = Madd(b, Vector256.Load(row + 8), y1);
            }

            (y0 + u0).Store(y + e);
            (y1 + u1).Store(y + e + 8);
        }

        for (; e + 8 <= width; e += 8)
        {
            var y0 = Vector256.Load(y + e);
            for (int r = 0; r < n; r++)
            {
                float wr = w[(long)r * stride];
                if (wr != 0f)
                    y0 = Madd(Vector256.Create(wr), Vector256.Load(rows + ((long)r * width) + e), y0);
            }

            y0.Store(y + e);
        }

        for (; e < width; e++)
        {
            float acc = y[e];
            for (int r = 0; r < n; r++)
            {
                float wr = w[(long)r * stride];
                if (wr != 0f)
                    acc += wr * rows[((long)r * width) + e];
            }

            y[e] = acc;
        }
    }

    // a * b + c, fused where the CPU has FMA.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Madd(Vector256<float> a, Vector256<float> b, Vector256<float> c) =>
        Fma.IsSupported ? Fma.MultiplyAdd(a, b, c) : (a * b) + c;

    // x . y over n floats: Vector256 with two accumulators (D = 32, 64 are a few iterations), scalar tail.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe float Dot(float* x, float* y, int n)
    {
        int e = 0;
        float sum = 0f;
        if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            var a0 = Vector256<float>.Zero;
            var a1 = Vector256<float>.Zero;
            for (; e <= n - 16; e += 16)
            {
                a0 += Vector256.Load(x + e) * Vector256.Load(y + e);
                a1 += Vector256.Load(x + e + 8) * Vector256.Load(y + e + 8);
            }

            if (e <= n - 8)
            {
                a0 += Vector256.Load(x + e) * Vector256.Load(y + e);
                e += 8;
            }

            sum = Vector256.Sum(a0 + a1);
        }

        for (; e < n; e++)
            sum += x[e] * y[e];
        return sum;
    }
}
