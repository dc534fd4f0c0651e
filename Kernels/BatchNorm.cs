using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using IlgpuTrain.Kernels.Runtime;
using ILGPU.Algorithms;

namespace IlgpuTrain.Kernels;

// Batch normalization over x (N, C, S), S = H*W for images or 1 for (N, C) features; per-channel
// statistics over the m = N*S values x[n, c, s] at (n*C + c)*S + s. Per-channel buffers (mean, var,
// gamma, beta, dgamma, dbeta, running) are (C); num_batches_tracked is one Int32.
//
//   Statistics  mean = (1/m) Σ x,  var = (1/m) Σ (x - mean)²   (BIASED; two passes)     reads 8 B
//   Normalize   x̂ = (x - mean) / sqrt(var + eps),  y = gamma x̂ + beta                  reads 4 B, writes 4 B
//               (training passes the batch statistics, evaluation the running ones)
//   Running     running_mean' = (1 - momentum) running_mean + momentum mean
//               running_var'  = (1 - momentum) running_var + momentum var m/(m - 1)   (UNBIASED, PyTorch)
//               num_batches_tracked' = num_batches_tracked + 1
//   ParamGrads  dbeta = Σ dy,  dgamma = Σ dy x̂   (both modes)                          reads 8 B
//   InputGrad   training:   dx = gamma invstd / m (m dy - dbeta - x̂ dgamma)  (mean, var depend on x)
//               evaluation: dx = gamma invstd dy  (running stats are constants)       reads 8 B, writes 4 B
//
// Bytes are per element of x. Statistics reads x twice: the second pass centers on the first pass's
// mean, avoiding the cancellation of E[x²] - E[x]². Only mean and var are saved for the backward;
// invstd = 1/sqrt(var + eps) is recomputed per channel (nothing against m reads). Every output is
// OVERWRITTEN. y may alias x and dx may alias dy (each element read and written by one thread). No
// float atomics: per-channel sums run in a fixed order, bitwise reproducible per device and policy.
//
// Statistics and ParamGrads have two algorithms. Kernels: one group per channel (grid-stride over
// channels); thread t takes values t, t + G, ... (S-contiguous runs read together, coalesced),
// then a shared-memory tree (any group size up to MaxGroupSize; C is small, so groups are
// plentiful). Managed: one loop per channel over n, then s, in order from 0f. Normalize, InputGrad
// and Running are elementwise: grid-stride kernels, and managed loops with the same float
// operations per element (bitwise equal given the same statistics).
//
// Accuracy: plain float sums of m terms per channel (m/G per thread then a tree of depth log2 G in
// the kernels), so the mean is within about (m - 1) u mean|x| of exact (m/G + log2 G in the
// kernels), and x̂ inherits that divided by the channel's std.

/// <summary>Batch normalization over (N, C, S): ILGPU kernels and checked launchers.</summary>
internal static class BatchNorm
{
    /// <summary>Shared-memory capacity of the per-channel reduction kernels: the largest group they accept.</summary>
    public const int MaxGroupSize = 256;

    // ---------------------------------------------------------------- ILGPU kernels

    /// <summary>Kernel, x (N, C, S) -> mean, var (C): one group per channel (grid-stride over channels), two passes, shared-memory trees.</summary>
    public static void StatisticsKernel(ArrayView<float> x, ArrayView<float> mean, ArrayView<float> var, int n, int s)
    {
        var shared = SharedMemory.Allocate<float>(MaxGroupSize);
        int c = mean.IntLength;
        int m = n * s;
        int tid = Group.IdxX;
        int size = Group.DimX;
        int groups = Grid.DimX;
        // ch is the same for every thread of a group, so the barriers inside are uniform.
        for (int ch = Grid.IdxX; ch < c; ch += groups)
        {
            float sum = 0f;
            for (int k = tid; k < m; k += size)
                sum += x[At(k, ch, c, s)];
            float mu = GroupSum(shared, tid, size, sum) / m;
            float sq = 0f;
            for (int k = tid; k < m; k += size)
            {
                float d = x[At(k, ch, c, s)] - mu;
                sq += d * d;
            }

            float total = GroupSum(shared, tid, size, sq);
            if (tid == 0)
            {
                mean[ch] = mu;
                var[ch] = total / m;
            }
        }
    }

    // y[i] = gamma (x - mean) rsqrt(var + eps) + beta at channel (i / s) % c; gamma read only when
    // hasGamma = 1, beta when hasBeta = 1.
    internal readonly struct NormalizeBody<TF>(TF x, TF mean, TF var, TF gamma, TF beta, TF y, int c, int s, float eps, int hasGamma, int hasBeta) : IElementBody
        where TF : struct, IElements<float>
    {
        public void Run(int i)
        {
            int ch = (i / s) % c;
            float scale = XMath.Rsqrt(var[ch] + eps);
            if (hasGamma != 0)
                scale *= gamma[ch];
            float v = (x[i] - mean[ch]) * scale;
            y[i] = hasBeta != 0 ? v + beta[ch] : v;
        }
    }

    /// <summary>Kernel: one group per channel writes dgamma = Σ dy x̂ and dbeta = Σ dy through shared-memory trees.</summary>
    public static void ParamGradsKernel(ArrayView<float> x, ArrayView<float> dy, ArrayView<float> mean, ArrayView<float> var, ArrayView<float> dgamma, ArrayView<float> dbeta, int n, int s, float eps)
    {
        var shared = SharedMemory.Allocate<float>(MaxGroupSize);
        int c = mean.IntLength;
        int m = n * s;
        int tid = Group.IdxX;
        int size = Group.DimX;
        int groups = Grid.DimX;
        for (int ch = Grid.IdxX; ch < c; ch += groups)
        {
            float mu = mean[ch];
            float sg = 0f, sb = 0f;
            for (int k = tid; k < m; k += size)
            {
                int at = At(k, ch, c, s);
                float g = dy[at];
                sb += g;
                sg += g * (x[at] - mu);
            }

            float tg = GroupSum(shared, tid, size, sg);
            float tb = GroupSum(shared, tid, size, sb);
            if (tid == 0)
            {
                dgamma[ch] = tg * XMath.Rsqrt(var[ch] + eps);
                dbeta[ch] = tb;
            }
        }
    }

    // dx[i] at channel (i / s) % c. training = 1: gamma invstd (dy - invM (dbeta + x̂ dgamma)), invM = 1 / m;
    // 0: gamma invstd dy (dgamma, dbeta unread). gamma read only when hasGamma = 1.
    internal readonly struct InputGradBody<TF>(TF x, TF dy, TF mean, TF var, TF gamma, TF dgamma, TF dbeta, TF dx, int c, int s, float eps, float invM, int hasGamma, int training) : IElementBody
        where TF : struct, IElements<float>
    {
        public void Run(int i)
        {
            int ch = (i / s) % c;
            float invstd = XMath.Rsqrt(var[ch] + eps);
            float scale = hasGamma != 0 ? gamma[ch] * invstd : invstd;
            if (training != 0)
            {
                float xhat = (x[i] - mean[ch]) * invstd;
                dx[i] = scale * (dy[i] - (invM * (dbeta[ch] + (xhat * dgamma[ch]))));
            }
            else
            {
                dx[i] = scale * dy[i];
            }
        }
    }

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>> StatisticsDef =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>(StatisticsKernel);

    private static readonly ForEachDef<NormalizeBody<ViewElements<float>>> NormalizeDef = new();
    private static readonly ForEachDef<InputGradBody<ViewElements<float>>> InputGradDef = new();

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float>> ParamGradsDef =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float>(ParamGradsKernel);

    // Index of value k (k = n S + s) of channel ch in (N, C, S).
    private static int At(int k, int ch, int c, int s)
    {
        int i = k / s;
        return (((i * c) + ch) * s) + (k - (i * s));
    }

    // The group's sum (Reductions' fixed-pairing tree), returned to EVERY thread; every thread must call it.
    private static float GroupSum(ArrayView<float> shared, int tid, int size, float value)
    {
        Reductions.GroupCombine<SumOp>(shared, 0, tid, size, 1, value);
        float total = shared[0];
        // Everyone reads slot 0 before the next call overwrites it.
        Group.Barrier();
        return total;
    }

    // ---------------------------------------------------------------- managed CPU paths
    // Per-channel sums run over n, then s, in order from 0f; invstd is XMath.Rsqrt, as in the
    // kernels, so the elementwise passes are bitwise the kernels'. A float sum is a chain of
    // dependent adds (4 cycles each), so the reductions walk 4 channels side by side (4, ParamGrads
    // 8, independent chains). The elementwise passes walk one (n, c) plane at a time, per-channel
    // constants hoisted, Vector256 sub/mul/add (never FMA), lane = element. Threads split channels
    // or planes, never one sum.

    private static unsafe void StatisticsManaged(KernelHost host, ArrayView<float> x, ArrayView<float> mean, ArrayView<float> var, int n, int c, int s) =>
        CpuLoops.For(host, c, new StatisticsBody(CpuLoops.Ptr(x), CpuLoops.Ptr(mean), CpuLoops.Ptr(var), n, c, s), n * s);

    private static unsafe void ParamGradsManaged(KernelHost host, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> mean, ArrayView<float> var, ArrayView<float> dgamma, ArrayView<float> dbeta, int n, int c, int s, float eps) =>
        CpuLoops.For(host, c, new ParamGradsBody(CpuLoops.Ptr(x), CpuLoops.Ptr(dy), CpuLoops.Ptr(mean), CpuLoops.Ptr(var), CpuLoops.Ptr(dgamma), CpuLoops.Ptr(dbeta), n, c, s, eps), n * s);

    private static readonly ForEachDef<RunningBody<ViewElements<float>>> RunningDef = new();
    private static readonly ForEachDef<IncrementBody<ViewElements<int>>> IncrementDef = new();

    // Channel ch of the running statistics' update: the one body of both backends.
    internal readonly struct RunningBody<TF>(TF mean, TF var, TF runningMean, TF runningVar, TF newRunningMean, TF newRunningVar, float momentum, float unbias) : IElementBody
        where TF : struct, IElements<float>
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Run(int ch)
        {
            float keep = 1f - momentum;
            newRunningMean[ch] = (keep * runningMean[ch]) + (momentum * mean[ch]);
            newRunningVar[ch] = (keep * runningVar[ch]) + (momentum * var[ch] * unbias);
        }
    }

    // num_batches_tracked + 1 (one index).
    internal readonly struct IncrementBody<TI>(TI counter, TI next) : IElementBody
        where TI : struct, IElements<int>
    {
        public void Run(int i) => next[0] = counter[0] + 1;
    }

    // Channels are taken four at a time, [ch, ch + count) with count <= 4: a lane past count
    // re-reads channel ch (offset 0) and is dropped, so a remainder runs the same loop.
    private readonly unsafe struct StatisticsBody(float* x, float* mean, float* var, int n, int c, int s) : CpuLoops.IRange
    {
        public void Run(int start, int end)
        {
            for (int ch = start; ch < end; ch += 4)
                Four(ch, Math.Min(4, end - ch));
        }

        private void Four(int ch, int count)
        {
            int m = n * s;
            long o1 = count > 1 ? s : 0, o2 = count > 2 ? 2L * s : 0, o3 = count > 3 ? 3L * s : 0;
            float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
            for (int i = 0; i < n; i++)
            {
                float* r0 = x + ((((long)i * c) + ch) * s), r1 = r0 + o1, r2 = r0 + o2, r3 = r0 + o3;
                for (int j = 0; j < s; j++)
                {
                    s0 += r0[j];
                    s1 += r1[j];
                    s2 += r2[j];
                    s3 += r3[j];
                }
            }

            float mu0 = s0 / m, mu1 = s1 / m, mu2 = s2 / m, mu3 = s3 / m;
            float q0 = 0f, q1 = 0f, q2 = 0f, q3 = 0f;
            for (int i = 0; i < n; i++)
            {
                float* r0 = x + ((((long)i * c) + ch) * s), r1 = r0 + o1, r2 = r0 + o2, r3 = r0 + o3;
                for (int j = 0; j < s; j++)
                {
                    float d0 = r0[j] - mu0, d1 = r1[j] - mu1, d2 = r2[j] - mu2, d3 = r3[j] - mu3;
                    q0 += d0 * d0;
                    q1 += d1 * d1;
                    q2 += d2 * d2;
                    q3 += d3 * d3;
                }
            }

            Span<float> mu = [mu0, mu1, mu2, mu3], q = [q0, q1, q2, q3];
            for (int k = 0; k < count; k++)
            {
                mean[ch + k] = mu[k];
                var[ch + k] = q[k] / m;
            }
        }
    }

    private readonly unsafe struct ParamGradsBody(float* x, float* dy, float* mean, float* var, float* dgamma, float* dbeta, int n, int c, int s, float eps) : CpuLoops.IRange
    {
        public void Run(int start, int end)
        {
            for (int ch = start; ch < end; ch += 4)
                Four(ch, Math.Min(4, end - ch));
        }

        private void Four(int ch, int count)
        {
            long o1 = count > 1 ? s : 0, o2 = count > 2 ? 2L * s : 0, o3 = count > 3 ? 3L * s : 0;
            float mu0 = mean[ch], mu1 = count > 1 ? mean[ch + 1] : mu0, mu2 = count > 2 ? mean[ch + 2] : mu0, mu3 = count > 3 ? mean[ch + 3] : mu0;
            float g0 = 0f, g1 = 0f, g2 = 0f, g3 = 0f, b0 = 0f, b1 = 0f, b2 = 0f, b3 = 0f;
            for (int i = 0; i < n; i++)
            {
                long row = (((long)i * c) + ch) * s;
                float* x0 = x + row, x1 = x0 + o1, x2 = x0 + o2, x3 = x0 + o3;
                float* d0 = dy + row, d1 = d0 + o1, d2 = d0 + o2, d3 = d0 + o3;
                for (int j = 0; j < s; j++)
                {
                    float e0 = d0[j], e1 = d1[j], e2 = d2[j], e3 = d3[j];
                    b0 += e0;
                    b1 += e1;
                    b2 += e2;
                    b3 += e3;
                    g0 += e0 * (x0[j] - mu0);
                    g1 += e1 * (x1[j] - mu1);
                    g2 += e2 * (x2[j] - mu2);
                    g3 += e3 * (x3[j] - mu3);
                }
            }

            Span<float> g = [g0, g1, g2, g3], b = [b0, b1, b2, b3];
            for (int k = 0; k < count; k++)
            {
                dgamma[ch + k] = g[k] * XMath.Rsqrt(var[ch + k] + eps);
                dbeta[ch + k] = b[k];
            }
        }
    }

    // Plane p = (n, c) of NormalizeBody: gamma and beta are null when absent; the tail is the body.
    private readonly unsafe struct NormalizePlanes(float* x, float* mean, float* var, float* gamma, float* beta, float* y, int c, int s, float eps, NormalizeBody<PtrElements<float>> element) : CpuLoops.IRange
    {
        public void Run(int start, int end)
        {
            for (int p = start; p < end; p++)
            {
                int ch = p % c;
                float scale = XMath.Rsqrt(var[ch] + eps);
                if (gamma != null)
                    scale *= gamma[ch];
                float* xp = x + ((long)p * s), yp = y + ((long)p * s);
                int j = 0;
                if (Vector256.IsHardwareAccelerated)
                {
                    Vector256<float> vmu = Vector256.Create(mean[ch]), vscale = Vector256.Create(scale);
                    if (beta != null)
                    {
                        var vb = Vector256.Create(beta[ch]);
                        for (; j <= s - 8; j += 8)
                            (((Vector256.Load(xp + j) - vmu) * vscale) + vb).Store(yp + j);
                    }
                    else
                    {
                        for (; j <= s - 8; j += 8)
                            ((Vector256.Load(xp + j) - vmu) * vscale).Store(yp + j);
                    }
                }

                for (; j < s; j++)
                    element.Run((p * s) + j);
            }
        }
    }

    // Plane p = (n, c) of InputGradBody: gamma is null when absent; the tail is the body.
    private readonly unsafe struct InputGradPlanes(float* x, float* dy, float* mean, float* var, float* gamma, float* dgamma, float* dbeta, float* dx, int c, int s, float eps, float invM, bool training, InputGradBody<PtrElements<float>> element) : CpuLoops.IRange
    {
        public void Run(int start, int end)
        {
            for (int p = start; p < end; p++)
            {
                int ch = p % c;
                float invstd = XMath.Rsqrt(var[ch] + eps);
                float scale = gamma != null ? gamma[ch] * invstd : invstd;
                float* xp = x + ((long)p * s), gp = dy + ((long)p * s), dp = dx + ((long)p * s);
                int j = 0;
                if (Vector256.IsHardwareAccelerated && training)
                {
                    Vector256<float> vmu = Vector256.Create(mean[ch]), vinv = Vector256.Create(invstd), vscale = Vector256.Create(scale);
                    Vector256<float> vdb = Vector256.Create(dbeta[ch]), vdg = Vector256.Create(dgamma[ch]), vm = Vector256.Create(invM);
                    for (; j <= s - 8; j += 8)
                    {
                        var xhat = (Vector256.Load(xp + j) - vmu) * vinv;
                        (vscale * (Vector256.Load(gp + j) - (vm * (vdb + (xhat * vdg))))).Store(dp + j);
                    }
                }
                else if (Vector256.IsHardwareAccelerated)
                {
                    var vscale = Vector256.Create(scale);
                    for (; j <= s - 8; j += 8)
                        (vscale * Vector256.Load(gp + j)).Store(dp + j);
                }

                for (; j < s; j++)
                    element.Run((p * s) + j);
            }
        }
    }

    // ---------------------------------------------------------------- launchers

    /// <summary>Per-channel mean and BIASED variance (C) of x (N, C, S), two passes, deterministic; NaN when N = 0.</summary>
    public static void Statistics(KernelHost host, ArrayView<float> x, ArrayView<float> mean, ArrayView<float> var, int n, int c, int s)
    {
        const string op = nameof(BatchNorm) + "." + nameof(Statistics);
        Shapes(host, op, n, c, s, [(x, nameof(x))], [(mean, nameof(mean)), (var, nameof(var))]);
        if (c == 0)
            return;
        if (n == 0)
        {
            // The mean of no values is 0/0 (as PyTorch's); kernels never see empty views.
            Elementwise.Fill(host, mean, float.NaN);
            Elementwise.Fill(host, var, float.NaN);
            return;
        }

        if (host.RunsManaged)
            StatisticsManaged(host, x, mean, var, n, c, s);
        else
            host.Load(StatisticsDef)(host.Stream, PerChannel(host, c), x, mean, var, n, s);
    }

    /// <summary>y = gamma (x - mean) / sqrt(var + eps) + beta per channel (gamma null: 1, beta null: 0), with the batch's or the running statistics. y may alias x.</summary>
    public static void Normalize(KernelHost host, ArrayView<float> x, ArrayView<float> mean, ArrayView<float> var, ArrayView<float>? gamma, ArrayView<float>? beta, ArrayView<float> y, int n, int c, int s, float eps)
    {
        const string op = nameof(BatchNorm) + "." + nameof(Normalize);
        Shapes(host, op, n, c, s, [(x, nameof(x)), (y, nameof(y))], [(mean, nameof(mean)), (var, nameof(var))]);
        Optional(op, gamma, nameof(gamma), c);
        Optional(op, beta, nameof(beta), c);
        if (y.Length == 0)
            return;
        int hasGamma = gamma.HasValue ? 1 : 0, hasBeta = beta.HasValue ? 1 : 0;
        if (host.RunsManaged)
        {
            unsafe
            {
                var element = new NormalizeBody<PtrElements<float>>(PtrElements.Of(x), PtrElements.Of(mean), PtrElements.Of(var), PtrElements.Of(gamma ?? mean), PtrElements.Of(beta ?? mean), PtrElements.Of(y), c, s, eps, hasGamma, hasBeta);
                CpuLoops.For(host, (long)n * c, new NormalizePlanes(CpuLoops.Ptr(x), CpuLoops.Ptr(mean), CpuLoops.Ptr(var), gamma is { } g ? CpuLoops.Ptr(g) : null, beta is { } b ? CpuLoops.Ptr(b) : null, CpuLoops.Ptr(y), c, s, eps, element), s);
            }

            return;
        }

        NormalizeDef.Launch(host, y.IntLength, new(new(x), new(mean), new(var), new(gamma ?? mean), new(beta ?? mean), new(y), c, s, eps, hasGamma, hasBeta));
    }

    /// <summary>
    /// The running statistics after a training batch of m = N S values per channel (m at least 2):
    /// new mean = (1 - momentum) mean + momentum batch mean, new var = (1 - momentum) var + momentum
    /// batch var m / (m - 1). The new buffers may alias the old ones.
    /// </summary>
    public static void Running(KernelHost host, ArrayView<float> mean, ArrayView<float> var, int m, float momentum, ArrayView<float> runningMean, ArrayView<float> runningVar, ArrayView<float> newRunningMean, ArrayView<float> newRunningVar)
    {
        ArgumentNullException.ThrowIfNull(host);
        const string op = nameof(BatchNorm) + "." + nameof(Running);
        if (m < 2)
            throw new ArgumentOutOfRangeException(nameof(m), m, $"{op}: the unbiased variance needs at least 2 values per channel, got m = {m}.");
        Check.SameLength(op, mean, nameof(mean), var, nameof(var));
        Check.SameLength(op, mean, nameof(mean), runningMean, nameof(runningMean));
        Check.SameLength(op, mean, nameof(mean), runningVar, nameof(runningVar));
        Check.SameLength(op, mean, nameof(mean), newRunningMean, nameof(newRunningMean));
        Check.SameLength(op, mean, nameof(mean), newRunningVar, nameof(newRunningVar));
        if (mean.Length == 0)
            return;
        float unbias = (float)((double)m / (m - 1));
        if (host.RunsManaged)
            CpuLoops.ForEach(host, mean.Length, new RunningBody<PtrElements<float>>(PtrElements.Of(mean), PtrElements.Of(var), PtrElements.Of(runningMean), PtrElements.Of(runningVar), PtrElements.Of(newRunningMean), PtrElements.Of(newRunningVar), momentum, unbias));
        else
            RunningDef.Launch(host, mean.IntLength, new(new(mean), new(var), new(runningMean), new(runningVar), new(newRunningMean), new(newRunningVar), momentum, unbias));
    }

    /// <summary>next[0] = counter[0] + 1: num_batches_tracked after a training batch. next may alias counter.</summary>
    public static void Increment(KernelHost host, ArrayView<int> counter, ArrayView<int> next)
    {
        ArgumentNullException.ThrowIfNull(host);
        const string op = nameof(BatchNorm) + "." + nameof(Increment);
        Check.Length(op, counter, nameof(counter), 1, "a scalar count");
        Check.Length(op, next, nameof(next), 1, "a scalar count");
        if (host.RunsManaged)
            CpuLoops.ForEach(host, 1, new IncrementBody<PtrElements<int>>(PtrElements.Of(counter), PtrElements.Of(next)));
        else
            IncrementDef.Launch(host, 1, new(new(counter), new(next)));
    }

    /// <summary>dgamma = Σ dy x̂ and dbeta = Σ dy per channel, x̂ from the mean and var the forward used. Overwrites both.</summary>
    public static void ParamGrads(KernelHost host, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> mean, ArrayView<float> var, ArrayView<float> dgamma, ArrayView<float> dbeta, int n, int c, int s, float eps)
    {
        const string op = nameof(BatchNorm) + "." + nameof(ParamGrads);
        Shapes(host, op, n, c, s, [(x, nameof(x)), (dy, nameof(dy))], [(mean, nameof(mean)), (var, nameof(var)), (dgamma, nameof(dgamma)), (dbeta, nameof(dbeta))]);
        if (c == 0)
            return;
        if (n == 0)
        {
            dgamma.MemSetToZero(host.Stream);
            dbeta.MemSetToZero(host.Stream);
            return;
        }

        if (host.RunsManaged)
            ParamGradsManaged(host, x, dy, mean, var, dgamma, dbeta, n, c, s, eps);
        else
            host.Load(ParamGradsDef)(host.Stream, PerChannel(host, c), x, dy, mean, var, dgamma, dbeta, n, s, eps);
    }

    /// <summary>
    /// dx of batch normalization. Training (mean and var are the batch's, so functions of x):
    /// dx = gamma invstd / m (m dy - dbeta - x̂ dgamma), dgamma and dbeta from <see cref="ParamGrads"/>.
    /// Evaluation: dx = gamma invstd dy. gamma null: 1. dx may alias dy.
    /// </summary>
    public static void InputGrad(KernelHost host, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> mean, ArrayView<float> var, ArrayView<float>? gamma, ArrayView<float> dgamma, ArrayView<float> dbeta, ArrayView<float> dx, int n, int c, int s, float eps, bool training)
    {
        const string op = nameof(BatchNorm) + "." + nameof(InputGrad);
        Shapes(host, op, n, c, s, [(x, nameof(x)), (dy, nameof(dy)), (dx, nameof(dx))], [(mean, nameof(mean)), (var, nameof(var)), (dgamma, nameof(dgamma)), (dbeta, nameof(dbeta))]);
        Optional(op, gamma, nameof(gamma), c);
        if (dx.Length == 0)
            return;
        // m = N S as an int, then 1 / (float)m: the same invM on both paths.
        float invM = 1f / (dx.IntLength / c);
        int hasGamma = gamma.HasValue ? 1 : 0, train = training ? 1 : 0;
        if (host.RunsManaged)
        {
            unsafe
            {
                var element = new InputGradBody<PtrElements<float>>(PtrElements.Of(x), PtrElements.Of(dy), PtrElements.Of(mean), PtrElements.Of(var), PtrElements.Of(gamma ?? mean), PtrElements.Of(dgamma), PtrElements.Of(dbeta), PtrElements.Of(dx), c, s, eps, invM, hasGamma, train);
                CpuLoops.For(host, (long)n * c, new InputGradPlanes(CpuLoops.Ptr(x), CpuLoops.Ptr(dy), CpuLoops.Ptr(mean), CpuLoops.Ptr(var), gamma is { } g ? CpuLoops.Ptr(g) : null, CpuLoops.Ptr(dgamma), CpuLoops.Ptr(dbeta), CpuLoops.Ptr(dx), c, s, eps, invM, training, element), s);
            }

            return;
        }

        InputGradDef.Launch(host, dx.IntLength, new(new(x), new(dy), new(mean), new(var), new(gamma ?? mean), new(dgamma), new(dbeta), new(dx), c, s, eps, invM, hasGamma, train));
    }

    // One group per channel, up to the policy's cap.
    private static KernelConfig PerChannel(KernelHost host, int c)
    {
        int group = Math.Min(host.Launch.ReduceGroupSize, MaxGroupSize);
        return new KernelConfig(Math.Min(c, host.Launch.MaxGroups), group);
    }

    private static void Shapes(KernelHost host, string op, int n, int c, int s, ReadOnlySpan<(ArrayView<float> View, string Name)> full, ReadOnlySpan<(ArrayView<float> View, string Name)> perChannel)
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.Dimension(op, n, nameof(n));
        Check.Dimension(op, c, nameof(c));
        Check.Dimension(op, s, nameof(s), allowZero: false);
        long total = (long)n * c * s;
        string shape = $"(N, C, S) = ({n}, {c}, {s})";
        foreach (var (view, name) in full)
        {
            Check.Length(op, view, name, total, shape);
            Check.Fits32(op, view, name);
        }

        foreach (var (view, name) in perChannel)
            Check.Length(op, view, name, c, $"(C) = ({c})");
    }

    private static void Optional(string op, ArrayView<float>? view, string name, int c)
    {
        if (view is { } v)
            Check.Length(op, v, name, c, $"(C) = ({c})");
    }
}
