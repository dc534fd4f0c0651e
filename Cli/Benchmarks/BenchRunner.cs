using System.Diagnostics;
using IlgpuTrain.Functional;
using IlgpuTrain.Kernels;
using IlgpuTrain.Layers;
using IlgpuTrain.Optimizers;
using IlgpuTrain.Training;

namespace IlgpuTrain.Cli.Benchmarks;

/// <summary>What one <c>bench</c> run measures and how long it may take.</summary>
/// <param name="Kind">The device kind (Auto: the best available).</param>
/// <param name="Quick">A short run: fewer repetitions, smaller sizes, no 4096^3 GEMM and no 25M-parameter step.</param>
/// <param name="Families">The row families to run (copy always runs when elementwise or reductions do: their ratios need it).</param>
internal sealed record BenchPlan(DeviceKind Kind, bool Quick, IReadOnlySet<string> Families)
{
    /// <summary>Every row family, in the order they run and print.</summary>
    public static readonly string[] AllFamilies = ["startup", "copy", "elementwise", "reductions", "gemm", "optimizer", "models"];

    /// <summary>Elements of the elementwise, reduction and copy rows: large enough to leave the caches.</summary>
    public int Elements => Quick ? 1 << 20 : 1 << 22;

    /// <summary>Timed repetitions per row (a row also stops after <see cref="BudgetSeconds"/>).</summary>
    public int Reps => Quick ? 5 : 20;

    /// <summary>Seconds of timed calls per row before it stops early (at least three calls).</summary>
    public double BudgetSeconds => Quick ? 0.5 : 3;

    /// <summary>The optimizer sizes: 1M and 25M parameters (a ResNet-50-sized model).</summary>
    public int[] OptimizerSizes => Quick ? [1 << 20] : [1 << 20, 25_000_000];

    /// <summary>GEMM shapes M x N x K.</summary>
    public static readonly (int M, int N, int K)[] GemmShapes = [(256, 784, 256), (1024, 1024, 1024), (4096, 4096, 4096)];

    /// <summary>The batch of the model rows (torch_fmnist.py's).</summary>
    public const int Batch = 128;

    /// <summary>Whether the model rows also time one op at a time (in the first round, after the timed steps).</summary>
    public bool Profile { get; init; }

    /// <summary>Steps the profile of a model row averages.</summary>
    public int ProfileSteps => Quick ? 5 : 20;

    /// <summary>How many rounds every row runs (each round: IlgpuTrain, then the peer, group by group).</summary>
    public int Rounds { get; init; } = 3;

    /// <summary>
    /// The row families of a comma list given as <paramref name="option"/> (null: all of them); an
    /// empty list or an unknown family adds a message naming it and the choices to <paramref name="problems"/>.
    /// </summary>
    public static HashSet<string> ParseFamilies(string? list, string option, List<string> problems)
    {
        if (list is null)
            return [.. AllFamilies];
        var asked = list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(s => s.ToLowerInvariant()).ToList();
        var unknown = asked.Where(a => !AllFamilies.Contains(a)).ToList();
        if (asked.Count == 0 || unknown.Count > 0)
            problems.Add($"{option} {list}: unknown row famil{(unknown.Count == 1 ? "y" : "ies")} {string.Join(", ", unknown)}; use a comma list of {string.Join(", ", AllFamilies)}.");
        return [.. asked];
    }

    /// <summary>Whether the family runs.</summary>
    public bool Has(string family) => Families.Contains(family);
}

/// <summary>
/// The measurements of <c>ilgpu-train bench</c>. Every time is the median of synchronized calls after
/// warm-up calls (kernel compilation excluded), except the startup rows, which time the first
/// step of a fresh <see cref="ComputeDevice"/> on purpose.
/// </summary>
internal static class BenchRunner
{
    // Bytes per element of the kernels come from the kernels' own constants (one source of truth);
    // a device-to-device copy is no kernel of ours: it reads 4 B and writes 4 B.
    private const double CopyBytes = 8;

    /// <summary>GEMM calls predicted to take longer than this on the CPU are skipped.</summary>
    private const double CpuGemmLimitSeconds = 20;

    /// <summary>
    /// Runs the plan for <see cref="BenchPlan.Rounds"/> rounds and returns the rows in print order, each
    /// with its median over the rounds and the spread. Within a round, each group of rows goes to
    /// <paramref name="peer"/> right after IlgpuTrain measured it, so the two sides alternate and each
    /// round's ratio compares times taken a moment apart. The startup rows need a fresh process's
    /// first compilation, so only the first round has them.
    /// </summary>
    /// <param name="plan">What to measure.</param>
    /// <param name="log">Hears progress.</param>
    /// <param name="startPeer">Starts the peer for the device in use (it is asked after the startup rows, which it has no counterpart of).</param>
    /// <param name="deviceName">The device in use.</param>
    /// <param name="peer">The peer it started; the caller disposes it.</param>
    public static List<BenchRow> Run(BenchPlan plan, Action<string> log, Func<ComputeDevice, PeerSession> startPeer, out string deviceName, out PeerSession peer)
    {
        var startup = new List<BenchRow>();

        // First, before anything else compiles in this process: time to first step of a fresh device.
        if (plan.Has("startup"))
        {
            foreach (var model in new[] { "mlp", "cnn" })
            {
                log($"startup {model}");
                startup.AddRange(FirstStep(plan, model));
            }
        }

        using var device = ComputeDevice.Create(plan.Kind);
        deviceName = device.ToString();
        peer = startPeer(device);
        var session = peer;
        var rounds = new List<List<BenchRow>>();
        for (int round = 1; round <= plan.Rounds; round++)
        {
            string of = plan.Rounds > 1 ? $"round {round}/{plan.Rounds}: " : string.Empty;
            var rows = new List<BenchRow>();
            void Group(IEnumerable<BenchRow> ours)
            {
                var list = ours.ToList();
                var theirs = session.Measure(list);
                rows.AddRange(list.Select(r => theirs.TryGetValue(r.Name, out var ms) ? r with { PeerMs = ms } : r));
            }

            double? copyGbs = null;
            if (plan.Has("copy") || plan.Has("elementwise") || plan.Has("reductions"))
            {
                log(of + "copy");
                var copy = Copy(plan, device);
                copyGbs = copy.Value;
                Group([copy]);
            }

            if (plan.Has("elementwise"))
            {
                log(of + "elementwise");
                Group(Elementwise(plan, device).Select(r => r with { VsCopy = r.Value / copyGbs }));
            }

            if (plan.Has("reductions"))
            {
                log(of + "reductions");
                Group(Reductions(plan, device).Select(r => r with { VsCopy = r.Value / copyGbs }));
            }

            if (plan.Has("gemm"))
            {
                log(of + "gemm");
                foreach (var row in Gemms(plan, device, msg => log(of + msg)))
                    Group([row]);
            }

            if (plan.Has("optimizer"))
            {
                log(of + "optimizer");
                foreach (int n in plan.OptimizerSizes)
                    Group([AdamWStep(plan, device, n)]);
            }

            if (plan.Has("models"))
            {
                foreach (var model in new[] { "mlp", "cnn", "transformer" })
                {
                    log($"{of}models {model}");
                    Group(ModelRows(plan, device, model, plan.Profile && round == 1));
                }
            }

            rounds.Add(rows);
        }

        return [.. startup, .. Merge(rounds)];
    }

    /// <summary>
    /// One row per name (in the first round's order) from the rounds' rows: the median time with its
    /// spread, the peer's likewise, and the spread of the rounds' own ratios. A throughput is the
    /// work over the time, so it follows the median time; a row without a time (memory) keeps the
    /// median of its values. A row measured in one round only comes back as it was.
    /// </summary>
    public static List<BenchRow> Merge(IReadOnlyList<IReadOnlyList<BenchRow>> rounds)
    {
        var byName = rounds.SelectMany(r => r).GroupBy(r => r.Name).ToList();
        var merged = new List<BenchRow>();
        foreach (var group in byName)
        {
            var rows = group.ToList();
            var first = rows[0];
            if (rows.Count == 1)
            {
                merged.Add(first);
                continue;
            }

            var ms = rows.Where(r => r.Ms is not null).Select(r => r.Ms!.Value).ToList();
            var peer = rows.Where(r => r.PeerMs is not null).Select(r => r.PeerMs!.Value).ToList();
            var ratios = rows.Where(r => r.Ms is not null && r.PeerMs is > 0).Select(r => r.Ms!.Value / r.PeerMs!.Value).ToList();
            var timed = rows.FirstOrDefault(r => r.Ms is not null && r.Value is not null);
            Spread? msSpread = ms.Count > 0 ? Spread.Of(ms) : null;
            double? value = msSpread is { } t && timed is not null
                ? timed.Value!.Value * timed.Ms!.Value / t.Median
                : rows.Any(r => r.Value is not null) ? Spread.Of(rows.Where(r => r.Value is not null).Select(r => r.Value!.Value).ToList()).Median : null;
            merged.Add(first with
            {
                Ms = msSpread?.Median,
                Value = value,
                MsSpread = msSpread,
                PeerMs = peer.Count > 0 ? Spread.Of(peer).Median : null,
                PeerSpread = peer.Count > 0 ? Spread.Of(peer) : null,
                RatioSpread = ratios.Count > 0 ? Spread.Of(ratios) : null,
            });
        }

        // vs copy: the row's median throughput over the copy's.
        double? copy = merged.FirstOrDefault(r => r.Family == "copy")?.Value;
        return merged.Select(r => r.VsCopy is not null && copy is > 0 ? r with { VsCopy = r.Value / copy } : r).ToList();
    }

    /// <summary>The median milliseconds of <paramref name="run"/>; <paramref name="setup"/> runs before each call, untimed.</summary>
    /// <param name="warmupSeconds">Keep warming up until this much time has passed too: .NET compiles a method again, optimized with the profile of its first calls, after about 30 calls and a 100 ms delay, so a step timed earlier measures start-up code.</param>
    public static double Median(BenchPlan plan, ComputeDevice device, Action run, Action? setup = null, int warmup = 2, double warmupSeconds = 0)
    {
        var warming = Stopwatch.StartNew();
        for (int i = 0; i < warmup || (warming.Elapsed.TotalSeconds < warmupSeconds && i < 1000); i++)
        {
            setup?.Invoke();
            run();
            device.Synchronize();
        }

        var times = new List<double>();
        var total = Stopwatch.StartNew();
        while (times.Count < plan.Reps && (times.Count < 3 || total.Elapsed.TotalSeconds < plan.BudgetSeconds))
        {
            setup?.Invoke();
            device.Synchronize();
            long t0 = Stopwatch.GetTimestamp();
            run();
            device.Synchronize();
            times.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }

        times.Sort();
        return times.Count % 2 == 1 ? times[times.Count / 2] : (times[(times.Count / 2) - 1] + times[times.Count / 2]) / 2;
    }

    private static Dictionary<string, object> Spec(string kind, params (string Key, object Value)[] sizes)
    {
        var d = new Dictionary<string, object> { ["kind"] = kind };
        foreach (var (key, value) in sizes)
            d[key] = value;
        return d;
    }

    private static double GbPerS(double bytes, double ms) => bytes / (ms * 1e6);

    private static float[] Random(int n, int seed)
    {
        var r = new Random(seed);
        var v = new float[n];
        for (int i = 0; i < n; i++)
            v[i] = (float)((r.NextDouble() * 2) - 1);
        return v;
    }

    private static BenchRow Copy(BenchPlan plan, ComputeDevice device)
    {
        int n = plan.Elements;
        using var x = Tensor.FromHost(device, Random(n, 1), n);
        using var y = Tensor.Zeros(device, new Shape(n));
        double ms = Median(plan, device, () => Transfer.Copy(device.Stream, x.View<float>(), y.View<float>()));
        return new BenchRow("copy", $"copy {n}", ms, GbPerS(CopyBytes * n, ms), "GB/s", "device-to-device copy, 8 B/elem (read + write): the reference") { PeerSpec = Spec("copy", ("n", n)) };
    }

    private static IEnumerable<BenchRow> Elementwise(BenchPlan plan, ComputeDevice device)
    {
        int n = plan.Elements;
        var host = device.Kernels;
        using var x = Tensor.FromHost(device, Random(n, 1), n);
        using var y = Tensor.FromHost(device, Random(n, 2), n);
        using var z = Tensor.Zeros(device, new Shape(n));
        double axpy = Median(plan, device, () => Kernels.Elementwise.Axpy(host, 1e-6f, x.View<float>(), y.View<float>()));
        double add = Median(plan, device, () => Kernels.Elementwise.Add(host, x.View<float>(), y.View<float>(), z.View<float>()));
        double relu = Median(plan, device, () => Activations.Relu(host, x.View<float>(), z.View<float>()));
        return
        [
            new BenchRow("elementwise", $"axpy {n}", axpy, GbPerS((double)Kernels.Elementwise.AxpyBytesPerElement * n, axpy), "GB/s", $"{Kernels.Elementwise.AxpyBytesPerElement} B/elem") { PeerSpec = Spec("axpy", ("n", n)) },
            new BenchRow("elementwise", $"add {n}", add, GbPerS((double)Kernels.Elementwise.AddBytesPerElement * n, add), "GB/s", $"{Kernels.Elementwise.AddBytesPerElement} B/elem") { PeerSpec = Spec("add", ("n", n)) },
            new BenchRow("elementwise", $"relu {n}", relu, GbPerS((double)Activations.ForwardBytesPerElement * n, relu), "GB/s", $"{Activations.ForwardBytesPerElement} B/elem") { PeerSpec = Spec("relu", ("n", n)) },
        ];
    }

    private static IEnumerable<BenchRow> Reductions(BenchPlan plan, ComputeDevice device)
    {
        int n = plan.Elements;
        var host = device.Kernels;
        using var x = Tensor.FromHost(device, Random(n, 3), n);
        using var result = Tensor.Zeros(device, new Shape(1));
        using var scratch = Tensor.Zeros(device, new Shape(Math.Max(1, Kernels.Reductions.ScratchLength(host, n))));
        double sum = Median(plan, device, () => Kernels.Reductions.Sum(host, x.View<float>(), result.View<float>(), scratch.View<float>()));
        double l2 = Median(plan, device, () => Kernels.Reductions.L2Norm(host, x.View<float>(), result.View<float>(), scratch.View<float>()));
        return
        [
            new BenchRow("reductions", $"sum {n}", sum, GbPerS((double)Kernels.Reductions.BytesPerElement * n, sum), "GB/s", $"{Kernels.Reductions.BytesPerElement} B/elem, deterministic") { PeerSpec = Spec("sum", ("n", n)) },
            new BenchRow("reductions", $"l2norm {n}", l2, GbPerS((double)Kernels.Reductions.BytesPerElement * n, l2), "GB/s", $"{Kernels.Reductions.BytesPerElement} B/elem, deterministic") { PeerSpec = Spec("l2norm", ("n", n)) },
        ];
    }

    private static IEnumerable<BenchRow> Gemms(BenchPlan plan, ComputeDevice device, Action<string> log)
    {
        double? gflops = null; // the last measured rate predicts the next shape's time
        foreach (var (m, n, k) in BenchPlan.GemmShapes)
        {
            string name = $"gemm {m}x{n}x{k}";
            double flops = 2.0 * m * n * k;
            long bytes = 4L * ((long)m * k + (long)k * n + (long)m * n);
            if (plan.Quick && m == 4096)
            {
                yield return BenchRow.Skip("gemm", name, "GFLOP/s", "--quick");
                continue;
            }

            if (device.IsCpu && gflops is { } rate && flops / (rate * 1e9) > CpuGemmLimitSeconds)
            {
                yield return BenchRow.Skip("gemm", name, "GFLOP/s", $"about {flops / (rate * 1e9):F0} s a call at {rate:F1} GFLOP/s on the CPU (limit {CpuGemmLimitSeconds:F0} s)");
                continue;
            }

            if (!device.IsCpu && bytes > device.Accelerator.MemorySize / 2)
            {
                yield return BenchRow.Skip("gemm", name, "GFLOP/s", $"needs {bytes >> 20} MiB of {device.Accelerator.MemorySize >> 20} MiB device memory");
                continue;
            }

            log(name);
            using var a = Tensor.FromHost(device, Random(m * k, 1), m * k);
            using var b = Tensor.FromHost(device, Random(k * n, 2), k * n);
            using var c = Tensor.Zeros(device, new Shape(m * n));
            var host = device.Kernels;
            bool big = flops > 1e10;
            double ms = Median(plan, device, () => Gemm.Run(host, false, false, m, n, k, 1f, a.View<float>(), b.View<float>(), 0f, c.View<float>()), warmup: big ? 1 : 2);
            gflops = flops / (ms * 1e6);
            yield return new BenchRow("gemm", name, ms, gflops, "GFLOP/s", "C = A B, fp32, 2MNK flops") { PeerSpec = Spec("gemm", ("m", m), ("n", n), ("k", k)) };
        }
    }

    private static BenchRow AdamWStep(BenchPlan plan, ComputeDevice device, int n)
    {
        using var grads = ParamTree.FromHost(device, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([n], Random(n, 2)) });
        var parameters = ParamTree.FromHost(device, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([n], Random(n, 1)) });
        var opt = new AdamW(1e-3);
        var state = opt.Init(parameters);
        ParamTree? fresh = null;
        try
        {
            // The step consumes its gradients (donation): a fresh copy, made untimed, stands in for the backward pass.
            double ms = Median(plan, device, () => (parameters, state) = opt.Step(parameters, fresh!, state), () => fresh = grads.Clone());
            return new BenchRow("optimizer", $"adamw {FormatCount(n)}", ms, GbPerS((double)AdamUpdate.StepBytesPerElement * n, ms), "GB/s", $"fused AdamW step, {AdamUpdate.StepBytesPerElement} B/param") { PeerSpec = Spec("adamw", ("n", n)) };
        }
        finally
        {
            parameters.Dispose();
            state.Dispose();
        }
    }

    private static string FormatCount(int n) => n % 1_000_000 == 0 ? $"{n / 1_000_000}M" : n == 1 << 20 ? "1M" : n.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>A model with its parameters, optimizer (clip at 1, then AdamW, as the trainer's default) and a synthetic batch.</summary>
    private sealed class ModelRig : IDisposable
    {
        private readonly ComputeDevice _device;
        private readonly Layer _model;
        private readonly float[] _x;
        private readonly int[] _y;
        private readonly Shape _xShape;
        private readonly IGradientTransformation _opt;
        private readonly CrossEntropyOptions _ce = new() { Epsilon = 0.1f };
        private ParamTree _params;
        private ParamTree _state;
        private OptState _optState;
        private uint _step;

        // The transformer row: the README's character-level model (vocabulary 96, context 64, width 64,
        // 2 pre-norm blocks of 4 heads, feed-forward 256, dropout 0.1, tied weights), batch 64, next-character
        // cross-entropy over every position; Cli/peer/torch_bench.py builds the same model.
        public const int LmVocab = 96, LmContext = 64, LmBatch = 64;

        public ModelRig(ComputeDevice device, string name)
        {
            _device = device;
            var r = new Random(1);
            bool lm = name == "transformer";
            var sample = lm ? new Shape(LmContext) : new Shape(1, 28, 28);
            _model = lm ? new TransformerLM(LmVocab, LmContext, 64, 4, 2, 256, 0.1f) : Models.Build(name, 10);
            (_params, _state) = _model.Init(device, sample, Rng.Create(0));
            _opt = new Chain(new ClipByGlobalNorm(1.0), new AdamW(1e-3));
            _optState = _opt.Init(_params);
            Batch = lm ? LmBatch : BenchPlan.Batch;
            _xShape = new Shape([Batch, .. sample]);
            _x = new float[_xShape.Length];
            for (int i = 0; i < _x.Length; i++)
                _x[i] = lm ? r.Next(LmVocab) : (float)r.NextDouble();
            _y = Enumerable.Range(0, lm ? Batch * LmContext : Batch).Select(i => r.Next(lm ? LmVocab : 10)).ToArray();
            _lm = lm;
        }

        private readonly bool _lm;

        /// <summary>Samples per step.</summary>
        public int Batch { get; }

        /// <summary>Forward, loss and backward; the gradients are dropped.</summary>
        public void ForwardBackward() => Step(update: false);

        /// <summary>What Trainer.TrainStep does: upload, forward, loss, backward, loss to the host, clip, AdamW.</summary>
        public void TrainStep() => Step(update: true);

        /// <summary>One train step with every piece timed into <paramref name="profile"/>.</summary>
        public void ProfiledStep(StepProfile profile)
        {
            Step(update: true, profile);
            profile.EndStep();
        }

        private void Step(bool update, StepProfile? profile = null)
        {
            using var scope = _device.BeginStep();
            scope.Profile = profile;
            var x = scope.Upload(_x, _xShape);
            var y = scope.Upload(_y, new Shape(_y.Length));
            ParamTree? newState = null;
            var rng = Rng.Create(1).At(_step++);
            var (loss, grads) = Autodiff.ValueAndGrad(scope, _params, p =>
            {
                var (logits, st) = _model.Apply(p, _state, x, Mode.Train, rng);
                newState = st;
                return F.CrossEntropy(_lm ? F.Reshape(logits, _y.Length, LmVocab) : logits, y, _ce);
            });
            if (update && profile is not null)
            {
                profile.Time("loss to host", _device, () => _ = loss.ToHost()[0]);
                profile.Time("optimizer (clip, AdamW)", _device, () => (_params, _optState) = _opt.Step(_params, grads, _optState));
            }
            else if (update)
            {
                _ = loss.ToHost()[0];
                (_params, _optState) = _opt.Step(_params, grads, _optState);
            }
            else
            {
                grads.Dispose();
            }

            if (newState is not null && !ReferenceEquals(newState, _state))
            {
                if (update)
                {
                    _state.Dispose();
                    _state = newState;
                }
                else
                {
                    newState.Dispose();
                }
            }
        }

        public void Dispose()
        {
            _params.Dispose();
            _state.Dispose();
            _optState.Dispose();
        }
    }

    private static IEnumerable<BenchRow> FirstStep(BenchPlan plan, string name)
    {
        var total = Stopwatch.StartNew();
        using var device = ComputeDevice.Create(plan.Kind);
        using var rig = new ModelRig(device, name);
        device.Synchronize();
        double setupMs = total.Elapsed.TotalMilliseconds;
        long t0 = Stopwatch.GetTimestamp();
        rig.TrainStep();
        device.Synchronize();
        double firstMs = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        double steady = Median(plan, device, rig.TrainStep, warmup: 1);
        return
        [
            new BenchRow("startup", $"{name} first step", firstMs, firstMs / 1000, "s", $"fresh device, kernel compilation included; device + init {setupMs:F0} ms before it; steady step {steady:F2} ms"),
        ];
    }

    private static IEnumerable<BenchRow> ModelRows(BenchPlan plan, ComputeDevice device, string name, bool profile)
    {
        // The pool keeps what earlier rows returned (the 25M-parameter step, the large GEMMs): free it, so
        // the high-water mark is this model's alone. Reserved bytes only fall on Trim, so the later
        // ResetPeak (for the per-step peak) keeps it.
        device.Pool.Trim();
        device.Pool.ResetPeak();
        using var rig = new ModelRig(device, name);
        // Model rows measure the steady state of training (thousands of steps), after the JIT's
        // tiered recompilation: at least 10 warm-up calls and a second.
        double warmupSeconds = plan.Quick ? 0.3 : 1.0;
        double fb = Median(plan, device, rig.ForwardBackward, warmup: 10, warmupSeconds: warmupSeconds);
        double step = Median(plan, device, rig.TrainStep, warmup: 10, warmupSeconds: warmupSeconds);
        var pool = device.Pool;
        long reservedBefore = pool.Stats.PeakBytesReserved;
        pool.ResetPeak();
        rig.TrainStep();
        device.Synchronize();
        var stats = pool.Stats;
        for (int i = 0; i < 5; i++)
            rig.TrainStep();
        device.Synchronize();
        long reservedAfter = pool.Stats.PeakBytesReserved;
        const double MiB = 1 << 20;
        StepProfile? steps = null;
        if (profile)
        {
            steps = new StepProfile();
            for (int i = 0; i < plan.ProfileSteps; i++)
                rig.ProfiledStep(steps);
        }

        return
        [
            new BenchRow("models", $"{name} fwd+bwd", fb, rig.Batch / (fb / 1000), "samples/s", $"batch {rig.Batch}{(name == "transformer" ? $" x {ModelRig.LmContext} characters" : string.Empty)}, cross-entropy with label smoothing 0.1") { PeerSpec = Spec("fwdbwd", ("model", name)) },
            new BenchRow("models", $"{name} train step", step, rig.Batch / (step / 1000), "samples/s", $"batch {rig.Batch}: upload, fwd+bwd, loss to host, clip 1, AdamW") { PeerSpec = Spec("step", ("model", name)), Profile = steps },
            new BenchRow("memory", $"{name} peak per step", null, stats.PeakBytesInUse / MiB, "MiB", "MemoryPool PeakBytesInUse over one train step"),
            new BenchRow("memory", $"{name} pool high-water", null, reservedAfter / MiB, "MiB", reservedAfter == reservedBefore ? "PeakBytesReserved since the model's first step, flat over the last 6 steps" : $"PeakBytesReserved grew from {reservedBefore / MiB:F1} MiB over the last 6 steps"),
        ];
    }
}
