using IlgpuTrain.Kernels.Runtime;
using ILGPU.Algorithms;

namespace IlgpuTrain.Kernels;

// Row-wise softmax and log-softmax over x (N, C) row-major, and their VJPs (y, dy, dx (N, C)).
//
//   Softmax forward      m = max_j x_j,  y_j = exp(x_j - m) / sum_k exp(x_k - m)
//   LogSoftmax forward   y_j = (x_j - m) - log(sum_k exp(x_k - m))
//   Softmax backward     dx_j = y_j * (dy_j - sum_k dy_k y_k)            (y = softmax output)
//   LogSoftmax backward  dx_j = dy_j - exp(y_j) * sum_k dy_k              (y = log-softmax output)
//   forward reads 4 B, writes 4 B; backward reads 8 B, writes 4 B per element (re-reads from cache)
//
// The row max keeps every exp argument <= 0: nothing overflows and the largest term is exactly 1;
// log-softmax never forms log(softmax), so it stays finite for logits of any magnitude. Both
// backward passes take the forward OUTPUT y, not x (as PyTorch's autograd): the softmax VJP needs
// y, the log-softmax VJP softmax(x) = exp(y); x need not be kept. Backward OVERWRITES dx. Outputs
// may alias inputs (y = x, dx = dy or dx = y): a thread owns its row and reads element j before
// writing it. Each op is a row body generic over IElements<float>, run by the row drivers
// (Runtime/RowDrivers.cs), so kernel and managed loop agree bit for bit.
//
// One thread per row (grid-stride): classifier rows (C = 10 .. 1000) fit in L1 and the batch gives
// the parallelism. A vocabulary-sized C (32k-256k) would need a group (or warp) per row: coalesced
// strided loads, a shared-memory or warp-shuffle tree (or one online-softmax pass carrying (max,
// sum) pairs), a CPU variant without barriers, and a fixed reduction order for determinism.

/// <summary>Row-wise softmax over (N, C): row bodies (log-softmax's too) and checked launchers.</summary>
internal static class Softmax
{
    private static readonly ForEachDef<ForwardBody<ViewElements<float>>> ForwardDef = new();
    private static readonly ForEachDef<BackwardBody<ViewElements<float>>> BackwardDef = new();

    /// <summary>y = softmax(x) along each row of x (N, C), max subtracted for stability. y may alias x.</summary>
    public static void Forward(KernelHost host, ArrayView<float> x, ArrayView<float> y, int n, int c) =>
        ForwardRows(host, nameof(Softmax), x, y, n, c, log: 0);

    /// <summary>Softmax VJP: dx = y * (dy - rowsum(dy * y)), from the forward output y = softmax(x); dx may alias y or dy.</summary>
    public static void Backward(KernelHost host, ArrayView<float> y, ArrayView<float> dy, ArrayView<float> dx, int n, int c) =>
        BackwardRows(host, nameof(Softmax), y, dy, dx, n, c, log: 0);

    // Softmax (log = 0) or log-softmax (log = 1) of each row; owner names the op in messages.
    internal static void ForwardRows(KernelHost host, string owner, ArrayView<float> x, ArrayView<float> y, int n, int c, int log)
    {
        if (!RowShapes.Require(host, owner + "." + nameof(Forward), n, c, (x, nameof(x)), (y, nameof(y))))
            return;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, n, new ForwardBody<PtrElements<float>>(PtrElements.Of(x), PtrElements.Of(y), c, log), c);
        else
            ForwardDef.Launch(host, n, new(new(x), new(y), c, log));
    }

    internal static void BackwardRows(KernelHost host, string owner, ArrayView<float> y, ArrayView<float> dy, ArrayView<float> dx, int n, int c, int log)
    {
        if (!RowShapes.Require(host, owner + "." + nameof(Backward), n, c, (y, nameof(y)), (dy, nameof(dy)), (dx, nameof(dx))))
            return;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, n, new BackwardBody<PtrElements<float>>(PtrElements.Of(y), PtrElements.Of(dy), PtrElements.Of(dx), c, log), c);
        else
            BackwardDef.Launch(host, n, new(new(y), new(dy), new(dx), c, log));
    }

    // Row i, m = max_j x_j, s = sum_k exp(x_k - m): softmax y_j = exp(x_j - m) / s, or (log = 1)
    // log-softmax y_j = (x_j - m) - log s.
    internal readonly struct ForwardBody<TF>(TF x, TF y, int c, int log) : IElementBody
        where TF : struct, IElements<float>
    {
        public void Run(int i)
        {
            int o = i * c;
            float m = SoftmaxRow.Max(x, o, c);
            float sum = SoftmaxRow.SumExp(x, o, c, m);
            if (log != 0)
            {
                // The sum is in [1, C]: its log is well conditioned, and (x - m) is exact for nearby values.
                float lse = XMath.Log(sum);
                for (int j = 0; j < c; j++)
                    y[o + j] = (x[o + j] - m) - lse;
            }
            else
            {
                float inv = 1f / sum;
                for (int j = 0; j < c; j++)
                    y[o + j] = XMath.Exp(x[o + j] - m) * inv;
            }
        }
    }

    // Row i: softmax dx_j = y_j (dy_j - sum_k dy_k y_k), or (log = 1) log-softmax dx_j = dy_j - exp(y_j) sum_k dy_k.
    internal readonly struct BackwardBody<TF>(TF y, TF dy, TF dx, int c, int log) : IElementBody
        where TF : struct, IElements<float>
    {
        public void Run(int i)
        {
            int o = i * c;
            float sum = 0f;
            if (log != 0)
            {
                for (int j = 0; j < c; j++)
                    sum += dy[o + j];
                for (int j = 0; j < c; j++)
                    dx[o + j] = dy[o + j] - (XMath.Exp(y[o + j]) * sum);
            }
            else
            {
                for (int j = 0; j < c; j++)
                    sum += dy[o + j] * y[o + j];
                for (int j = 0; j < c; j++)
                    dx[o + j] = y[o + j] * (dy[o + j] - sum);
            }
        }
    }
}

/// <summary>
/// Masked softmax over the rows of x (N, C): causal and key-length masks and an additive bias,
/// with the forward written once as a row body. The backward is <see cref="Softmax.Backward"/>:
/// masked entries have y = 0, so y (dy - sum(dy y)) gives them dx = 0.
/// </summary>
/// <remarks>
/// Row i keeps keys j &lt; valid(i) = min(C, lengths[i / rowsPerItem] (clamped to [0, C]), i mod Tq + 1 when causal)
/// (both keep a prefix of the row) and, with a key mask instead of lengths, only the j with
/// mask[i / rowsPerItem, j] != 0. v_j = x_j + bias[(i mod biasRows) C + j] for kept j;
/// m = max v_j, y_j = exp(v_j - m) / sum_kept exp(v_k - m) for kept j, y_j = 0 otherwise. A row
/// with nothing kept, or whose kept values are all -inf (a -inf bias masks), is all zeros (where
/// PyTorch gives NaN). Bytes: reads 4 B of x (and of bias) per kept entry, writes 4 B per entry.
/// </remarks>
internal static class MaskedSoftmax
{
    private static readonly ForEachDef<ForwardBody<ViewElements<float>, ViewElements<int>>> ForwardDef = new();

    // Row i of the header's masked softmax; bias is read only when hasBias, keys by keyMode: 0 none,
    // 1 lengths (one per item), 2 a key mask (item, C), nonzero = kept.
    internal readonly struct ForwardBody<TF, TI>(TF x, TF bias, TI keys, TF y, int c, int tq, int rowsPerItem, int biasRows, int causal, int hasBias, int keyMode) : IElementBody
        where TF : struct, IElements<float>
        where TI : struct, IElements<int>
    {
        public void Run(int i)
        {
            int o = i * c;
            int valid = c;
            int item = i / rowsPerItem;
            if (keyMode == 1)
                valid = XMath.Min(valid, XMath.Max(0, keys[item]));
            if (causal != 0)
                valid = XMath.Min(valid, (i % tq) + 1);
            int b = hasBias != 0 ? (i % biasRows) * c : 0;

            // Max subtraction over the kept entries only: masked values (which may be anything,
            // NaN included) are never read.
            float m = float.NegativeInfinity;
            for (int j = 0; j < valid; j++)
            {
                if (Kept(item, j))
                    m = XMath.Max(m, Value(o, b, j));
            }

            if (m == float.NegativeInfinity)
            {
                // Nothing kept, or every kept value -inf: a row of zeros, whose VJP is zero too.
                for (int j = 0; j < c; j++)
                    y[o + j] = 0f;
                return;
            }

            float sum = 0f;
            for (int j = 0; j < valid; j++)
            {
                if (Kept(item, j))
                    sum += XMath.Exp(Value(o, b, j) - m);
            }

            float inv = 1f / sum;
            for (int j = 0; j < valid; j++)
                y[o + j] = Kept(item, j) ? XMath.Exp(Value(o, b, j) - m) * inv : 0f;
            for (int j = valid; j < c; j++)
                y[o + j] = 0f;
        }

        private float Value(int o, int b, int j) => hasBias != 0 ? x[o + j] + bias[b + j] : x[o + j];

        private bool Kept(int item, int j) => keyMode != 2 || keys[(item * c) + j] != 0;
    }

    /// <summary>
    /// y = masked softmax of each row of x (N, C), as the class remarks: Tq rows per causal block
    /// (row i is query i mod Tq), N / B rows per item of keys: lengths (B), or with keyMask a mask
    /// (B, C) whose nonzero entries are kept; bias (biasRows, C) tiled over the rows. Without a mask
    /// or bias pass causal false and empty views.
    /// </summary>
    public static void Forward(KernelHost host, ArrayView<float> x, ArrayView<float> bias, ArrayView<int> keys, ArrayView<float> y, int n, int c, bool causal, int tq, bool keyMask = false)
    {
        const string op = "MaskedSoftmax.Forward";
        if (!RowShapes.Require(host, op, n, c, (x, nameof(x)), (y, nameof(y))))
            return;
        if (causal && (tq < 1 || n % tq != 0))
            throw new ArgumentException($"{op}: causal rows come in blocks of Tq query rows, but Tq = {tq} does not divide N = {n}.", nameof(tq));
        bool hasBias = bias.Length > 0, hasKeys = keys.Length > 0;
        long biasRows = bias.Length / c;
        if (hasBias && (bias.Length % c != 0 || n % biasRows != 0))
            throw new ArgumentException($"{op}: bias has {bias.Length} elements; it must be (R, C = {c}) rows with R dividing N = {n}, tiled over the rows.", nameof(bias));
        long items = keyMask ? keys.Length / c : keys.Length;
        if (hasKeys && ((keyMask && keys.Length % c != 0) || n % items != 0))
            throw new ArgumentException($"{op}: keys has {keys.Length} entries; it must be {(keyMask ? $"a mask (B, C = {c})" : "lengths (B)")} with B dividing N = {n} (N / B rows per item).", nameof(keys));
        int rowsPerItem = hasKeys ? (int)(n / items) : 1;
        int keyMode = !hasKeys ? 0 : keyMask ? 2 : 1;
        int rows = hasBias ? (int)biasRows : 1;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, n, new ForwardBody<PtrElements<float>, PtrElements<int>>(PtrElements.Of(x), PtrElements.Of(bias), PtrElements.Of(keys), PtrElements.Of(y), c, Math.Max(tq, 1), rowsPerItem, rows, causal ? 1 : 0, hasBias ? 1 : 0, keyMode), c);
        else
        {
            // An absent mask or bias is never read; x stands in for it so every kernel argument is a valid view.
            ForwardDef.Launch(host, n, new(new(x), new(hasBias ? bias : x), new(hasKeys ? keys : x.Cast<int>()), new(y), c, Math.Max(tq, 1), rowsPerItem, rows, causal ? 1 : 0, hasBias ? 1 : 0, keyMode));
        }
    }
}

/// <summary>Row-wise log-softmax over (N, C): launchers of Softmax's row bodies.</summary>
internal static class LogSoftmax
{
    /// <summary>y = log(softmax(x)) along each row of x (N, C), computed as x - max - log-sum-exp. y may alias x.</summary>
    public static void Forward(KernelHost host, ArrayView<float> x, ArrayView<float> y, int n, int c) =>
        Softmax.ForwardRows(host, nameof(LogSoftmax), x, y, n, c, log: 1);

    /// <summary>Log-softmax VJP: dx = dy - exp(y) * rowsum(dy), from the forward output y = log-softmax(x); dx may alias y or dy.</summary>
    public static void Backward(KernelHost host, ArrayView<float> y, ArrayView<float> dy, ArrayView<float> dx, int n, int c) =>
        Softmax.BackwardRows(host, nameof(LogSoftmax), y, dy, dx, n, c, log: 1);
}

/// <summary>The two row passes every softmax-based op shares (softmax, log-softmax, cross-entropy), written once.</summary>
internal static class SoftmaxRow
{
    /// <summary>m = max_k x[o + k] over the row's c entries (c at least 1), by XMath.Max in index order.</summary>
    public static float Max<TF>(TF x, int o, int c)
        where TF : struct, IElements<float>
    {
        float m = x[o];
        for (int k = 1; k < c; k++)
            m = XMath.Max(m, x[o + k]);
        return m;
    }

    /// <summary>sum_k exp(x[o + k] - m) in index order, m the row max: no term overflows, and the sum is in [1, c] for finite rows.</summary>
    public static float SumExp<TF>(TF x, int o, int c, float m)
        where TF : struct, IElements<float>
    {
        float s = 0f;
        for (int k = 0; k < c; k++)
            s += XMath.Exp(x[o + k] - m);
        return s;
    }
}

/// <summary>Argument checks for row-wise (N, C) kernels.</summary>
internal static class RowShapes
{
    /// <summary>Throws unless n, c are non-negative and every view holds exactly N * C floats; returns whether N C > 0.</summary>
    public static bool Require(KernelHost host, string op, int n, int c, params ReadOnlySpan<(ArrayView<float> View, string Name)> views)
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.Dimension(op, n, nameof(n));
        Check.Dimension(op, c, nameof(c));
        long nc = (long)n * c;
        foreach (var (view, name) in views)
        {
            Check.Length(op, view, name, nc, $"(N, C) = ({n}, {c})");
            Check.Fits32(op, view, name);
        }

        return nc > 0;
    }
}
