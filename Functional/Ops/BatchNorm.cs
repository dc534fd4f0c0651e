using Kernel = IlgpuTrain.Kernels.BatchNorm;

namespace IlgpuTrain.Functional;

/// <summary>
/// The running statistics of a batch normalization, PyTorch's buffers: running_mean (C),
/// running_var (C) and, optionally, num_batches_tracked (an Int32 scalar).
/// </summary>
/// <param name="Mean">running_mean (C), Float32.</param>
/// <param name="Var">running_var (C), Float32 (the unbiased estimate).</param>
/// <param name="NumBatchesTracked">num_batches_tracked, one Int32, or null when not counted.</param>
public sealed record BatchNormStats(Tensor Mean, Tensor Var, Tensor? NumBatchesTracked = null);

public static partial class F
{
    /// <summary>
    /// Batch normalization, torch.nn.functional.batch_norm, over x (N, C) or (N, C, ...): statistics
    /// per channel over the batch and every spatial position.
    /// </summary>
    /// <remarks>
    /// Train (m = N × spatial size values per channel, m ≥ 2):
    /// mean = (1/m) Σ x,  var = (1/m) Σ (x − mean)²   (biased)
    /// y = weight (x − mean) / √(var + eps) + bias
    /// running_mean' = (1 − momentum) running_mean + momentum mean
    /// running_var'  = (1 − momentum) running_var + momentum var m/(m − 1)   (unbiased)
    /// num_batches_tracked' = num_batches_tracked + 1
    /// The new statistics go to <paramref name="updated"/>; <paramref name="running"/> is only read
    /// (null <paramref name="updated"/>: nothing is tracked). The VJP treats mean and var as
    /// functions of x: dx = weight invstd / m (m dy − Σdy − x̂ Σ(dy x̂)).
    /// Eval: y = weight (x − running_mean) / √(running_var + eps) + bias; dx = weight dy / √(running_var + eps).
    /// Both: dweight = Σ dy x̂, dbias = Σ dy (per channel).
    /// Synchronized (<see cref="StepScope.BatchNormSync"/> set, Train): mean and var are over every
    /// rank's batch (M = Σ m values per channel; var from Σ m (var + mean²) / M − mean², in double),
    /// the running statistics use them and M, and dx uses Σdy and Σdy x̂ summed over the ranks with
    /// M: dx = weight invstd (dy − ΣΣdy / M − x̂ ΣΣ(dy x̂) / M); dweight and dbias stay this rank's
    /// (the data-parallel gradient average combines them), as PyTorch's SyncBatchNorm.
    /// Defaults as PyTorch: momentum 0.1, eps 1e-5. https://pytorch.org/docs/stable/generated/torch.nn.BatchNorm2d.html
    /// </remarks>
    /// <param name="x">Input (N, C) or (N, C, ...).</param>
    /// <param name="weight">gamma (C), or null for 1.</param>
    /// <param name="bias">beta (C), or null for 0.</param>
    /// <param name="running">The running statistics: required in Eval; read (never written) in Train, and may be null there when <paramref name="updated"/> is.</param>
    /// <param name="mode">Train: batch statistics; Eval: running statistics.</param>
    /// <param name="momentum">Weight of the batch statistics in the running ones.</param>
    /// <param name="eps">Added to the variance.</param>
    /// <param name="updated">Train only: the NEW buffers to overwrite with the updated running statistics; null to track nothing.</param>
    /// <returns>y, the shape of x.</returns>
    public static Tensor BatchNorm(Tensor x, Tensor? weight, Tensor? bias, BatchNormStats? running, Mode mode, float momentum = 0.1f, float eps = 1e-5f, BatchNormStats? updated = null)
    {
        const string op = nameof(BatchNorm);
        var scope = ScopeOf(op, x);
        RequireFloat(op, x, nameof(x));
        if (x.Shape.Rank < 2)
            throw new ArgumentException($"{op}: x must be (N, C) or (N, C, ...) but is {x.Shape}.", nameof(x));
        int n = x.Shape[0], c = x.Shape[1];
        int s = InnerSize(x.Shape);
        PerChannel(op, weight, nameof(weight), x, c);
        PerChannel(op, bias, nameof(bias), x, c);
        if (running is not null)
            Stats(op, running, nameof(running), x, c);
        if (updated is not null)
        {
            Stats(op, updated, nameof(updated), x, c);
            if (mode != Mode.Train)
                throw new ArgumentException($"{op}: updated running statistics were given in Eval mode, which never updates them; pass null.", nameof(updated));
            if (running is null)
                throw new ArgumentException($"{op}: updated running statistics need the current ones (running) to update.", nameof(running));
            if ((updated.NumBatchesTracked is null) != (running.NumBatchesTracked is null))
                throw new ArgumentException($"{op}: num_batches_tracked must be given in both running and updated, or in neither.", nameof(updated));
        }

        int m = n * s;
        if (mode == Mode.Train && m < 2)
            throw new ArgumentException($"{op}: expected more than 1 value per channel when training, got input {x.Shape} ({m} per channel).", nameof(x));
        if (mode == Mode.Eval && running is null)
            throw new ArgumentException($"{op}: Eval normalizes with the running statistics; running must not be null.", nameof(running));

        var host = scope.Device.Kernels;
        var xv = x.View<float>();
        ArrayView<float>? gv = weight?.View<float>();
        ArrayView<float>? bv = bias?.View<float>();
        bool training = mode == Mode.Train;
        ArrayView<float> mean, var;
        var sync = training ? scope.BatchNormSync : null;
        int total = m;
        if (training)
        {
            mean = scope.Scratch<float>(Math.Max(1, c)).SubView(0, c);
            var = scope.Scratch<float>(Math.Max(1, c)).SubView(0, c);
            Kernel.Statistics(host, xv, mean, var, n, c, s);
            if (sync is not null)
                total = SyncStatistics(sync, host.Stream, mean, var, m, c);
        }
        else
        {
            mean = running!.Mean.View<float>();
            var = running.Var.View<float>();
        }

        var y = scope.Allocate(x.Shape);
        Kernel.Normalize(host, xv, mean, var, gv, bv, y.View<float>(), n, c, s, eps);
        if (updated is not null)
        {
            Kernel.Running(host, mean, var, total, momentum, running!.Mean.View<float>(), running.Var.View<float>(), updated.Mean.View<float>(), updated.Var.View<float>());
            if (updated.NumBatchesTracked is { } next)
                Kernel.Increment(host, running.NumBatchesTracked!.View<int>(), next.View<int>());
        }

        Record(op, y, [x, weight, bias], g =>
        {
            var dy = g.OutputGrad;
            bool needX = g.Needs(x);
            bool needW = weight is not null && g.Needs(weight);
            bool needB = bias is not null && g.Needs(bias);
            // The training dx needs Σ dy and Σ dy x̂ even when no parameter wants them.
            if (needW || needB || (needX && training))
            {
                var dgamma = needW ? g.Into(weight!) : g.Scope.Scratch<float>(c);
                var dbeta = needB ? g.Into(bias!) : g.Scope.Scratch<float>(c);
                Kernel.ParamGrads(g.Kernels, xv, dy, mean, var, dgamma, dbeta, n, c, s, eps);
                if (needX && sync is not null)
                {
                    var (sumDyXhat, sumDy) = SyncGradientSums(sync, g.Kernels.Stream, dgamma, dbeta, g.Scope, m, total, c);
                    Kernel.InputGrad(g.Kernels, xv, dy, mean, var, gv, sumDyXhat, sumDy, g.Into(x), n, c, s, eps, training);
                }
                else if (needX)
                {
                    Kernel.InputGrad(g.Kernels, xv, dy, mean, var, gv, dgamma, dbeta, g.Into(x), n, c, s, eps, training);
                }
            }
            else if (needX)
            {
                Kernel.InputGrad(g.Kernels, xv, dy, mean, var, gv, mean, var, g.Into(x), n, c, s, eps, training);
            }
        });
        return y;
    }

    /// <summary>
    /// Replaces this rank's batch mean and biased variance (m values per channel) by those over
    /// every rank's batch; returns M, the values per channel over all ranks.
    /// </summary>
    private static int SyncStatistics(ICrossRankSum sync, AcceleratorStream stream, ArrayView<float> mean, ArrayView<float> var, int m, int c)
    {
        var mu = Transfer.ToHost(stream, mean);
        var v = Transfer.ToHost(stream, var);
        var sums = new double[(2 * c) + 1];
        for (int ch = 0; ch < c; ch++)
        {
            sums[ch] = (double)m * mu[ch];
            sums[c + ch] = m * ((double)v[ch] + ((double)mu[ch] * mu[ch]));
        }

        sums[2 * c] = m;
        sync.Sum(sums, "SyncBatchNorm statistics");
        double total = sums[2 * c];
        for (int ch = 0; ch < c; ch++)
        {
            double gm = sums[ch] / total;
            mu[ch] = (float)gm;
            v[ch] = (float)Math.Max(0, (sums[c + ch] / total) - (gm * gm));   // E[x²] − mean², clamped: rounding can make it slightly negative
        }

        Transfer.ToDevice<float>(stream, mu, mean);
        Transfer.ToDevice<float>(stream, v, var);
        return checked((int)total);
    }

    /// <summary>
    /// Σ dy x̂ and Σ dy summed over the ranks, scaled by m / M so that the per-rank dx kernel (which
    /// divides by its own m) computes dx with the global sums and the global count M.
    /// </summary>
    private static (ArrayView<float> SumDyXhat, ArrayView<float> SumDy) SyncGradientSums(ICrossRankSum sync, AcceleratorStream stream, ArrayView<float> dgamma, ArrayView<float> dbeta, StepScope scope, int m, int total, int c)
    {
        var dg = Transfer.ToHost(stream, dgamma);
        var db = Transfer.ToHost(stream, dbeta);
        var sums = new double[2 * c];
        for (int ch = 0; ch < c; ch++)
        {
            sums[ch] = dg[ch];
            sums[c + ch] = db[ch];
        }

        sync.Sum(sums, "SyncBatchNorm gradient sums");
        double scale = (double)m / total;
        for (int ch = 0; ch < c; ch++)
        {
            dg[ch] = (float)(sums[ch] * scale);
            db[ch] = (float)(sums[c + ch] * scale);
        }

        var sumDyXhat = scope.Scratch<float>(c);
        var sumDy = scope.Scratch<float>(c);
        Transfer.ToDevice<float>(stream, dg, sumDyXhat);
        Transfer.ToDevice<float>(stream, db, sumDy);
        return (sumDyXhat, sumDy);
    }

    /// <summary>The spatial size S: the product of the dimensions after N and C (1 for (N, C)).</summary>
    private static int InnerSize(Shape shape)
    {
        long p = 1;
        for (int i = 2; i < shape.Rank; i++)
            p *= shape[i];
        return checked((int)Math.Max(1, p));
    }

    private static void PerChannel(string op, Tensor? t, string name, Tensor x, int c)
    {
        if (t is null)
            return;
        _ = ScopeOf(op, x, t);
        RequireFloat(op, t, name);
        if (t.Shape.Rank != 1 || t.Shape[0] != c)
            throw new ArgumentException($"{op}: {name} is {t.Shape} but x {x.Shape} has C = {c} channels in dimension 1; {name} must be {new Shape(c)}.", name);
    }

    private static void Stats(string op, BatchNormStats stats, string name, Tensor x, int c)
    {
        PerChannel(op, stats.Mean, name + ".Mean", x, c);
        PerChannel(op, stats.Var, name + ".Var", x, c);
        if (stats.NumBatchesTracked is { } t)
        {
            _ = ScopeOf(op, x, t);
            if (t.DType != DType.Int32 || t.Length != 1)
                throw new ArgumentException($"{op}: {name}.NumBatchesTracked must be one Int32 but is a {t.DType} Tensor{t.Shape}.", name);
        }
    }
}
