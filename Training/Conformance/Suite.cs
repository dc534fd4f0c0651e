using ILGPU;
using ILGPU.Runtime;
using IlgpuTrain.Kernels;
using IlgpuTrain.Kernels.Runtime;
using Half = ILGPU.Half;

namespace IlgpuTrain.Training.Conformance;

/// <summary>
/// The backend-conformance suite: every kernel family against its CPU reference on random inputs,
/// on one device. It is what <c>ilgpu-train check</c> runs and what a property runs on the CPU
/// accelerator, so a green run on a CUDA or OpenCL device means the same checks passed there.
/// Tolerances are the properties' (<see cref="Tolerances"/>), widened only where a GPU may reorder
/// sums or use its own transcendental functions (noted per check).
/// </summary>
/// <example>
/// <code>
/// using var device = Device.Create();
/// var results = Suite.Run(device, new SuiteOptions { Quick = true });
/// bool ok = results.All(r => r.Passed);
/// </code>
/// </example>
public static class Suite
{
    // Every family and its checks, in the order they run; Families is read from it.
    private static readonly (string Name, Action<Harness, int> Checks)[] Table =
    [
        (nameof(Elementwise), Elementwise),
        (nameof(Activations), Activations),
        (nameof(BiasAdd), (h, _) => BiasAdd(h)),
        (nameof(Cast), Cast),
        (nameof(Reductions), Reductions),
        (nameof(Gemm), (h, _) => Gemm(h)),
        (nameof(GemmHalf), (h, _) => GemmHalf(h)),
        (nameof(Softmax), (h, _) => Softmax(h)),
        (nameof(LogSoftmax), (h, _) => LogSoftmax(h)),
        (nameof(CrossEntropy), (h, _) => CrossEntropy(h)),
        (nameof(Philox), Philox),
        (nameof(Adam), Adam),
        (nameof(Sgd), Sgd),
        (nameof(Rms), Rms),
        (nameof(Adagrad), Adagrad),
        (nameof(WeightDecay), WeightDecay),
        (nameof(Clip), Clip),
        (nameof(LossScale), LossScale),
        (nameof(Conv2d), (h, _) => Conv2d(h)),
        (nameof(Pooling), (h, _) => Pooling(h)),
        (nameof(MaskedSoftmax), (h, _) => MaskedSoftmax(h)),
        (nameof(Attention), (h, _) => Attention(h)),
        (nameof(Permute), (h, _) => Permute(h)),
        (nameof(BatchNorm), (h, _) => BatchNorm(h)),
        (nameof(LayerNorm), (h, _) => LayerNorm(h)),
        (nameof(Dropout), Dropout),
        (nameof(Embedding), (h, _) => Embedding(h)),
        (nameof(Concat), (h, _) => Concat(h)),
        (nameof(Losses), Losses),
        (nameof(Augment), (h, _) => Augment(h)),
        (nameof(Metrics), (h, _) => Metrics(h)),
        (nameof(WeightAverage), WeightAverage),
    ];

    /// <summary>Every family the suite covers, in the order it runs them.</summary>
    public static IReadOnlyList<string> Families { get; } = [.. Table.Select(f => f.Name)];

    // Elementwise: one rounding each side; a GPU may fuse a multiply-add (one rounding fewer).
    private const double SameAtol = 1e-6;
    private const double SameRtol = 2.5e-7;

    // Transcendentals: XMath on a GPU is a few ulps from the CPU's.
    private const double MathAtol = 1e-6;
    private const double MathRtol = 1e-5;

    // Sums of n terms in another order: the error grows with n (per-term atol).
    private const double SumAtolPerTerm = 2e-6;
    private const double SumRtol = 2e-5;

    /// <summary>Runs every check on <paramref name="device"/>'s kernels and returns one result per comparison, in order.</summary>
    /// <param name="device">The device whose kernels are checked (its backend and kernel variant).</param>
    /// <param name="options">Sizes, seed and the self-test perturbation; null for the defaults (full sizes, seed 1234).</param>
    /// <returns>The results; a check that throws is a failed result, so the suite always runs to the end.</returns>
    /// <exception cref="ArgumentException">The options name a family the suite does not have.</exception>
    public static IReadOnlyList<CheckResult> Run(Device device, SuiteOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        options ??= new SuiteOptions();
        if (options.PerturbReferenceOf is { } family && !Families.Contains(family, StringComparer.OrdinalIgnoreCase))
            throw new ArgumentException($"SuiteOptions.PerturbReferenceOf {family}: no such family; use one of {string.Join(", ", Families)}.", nameof(options));
        using var harness = new Harness(device.Kernels, options.Quick, options.Seed, options.PerturbReferenceOf);
        RunAll(harness);
        return harness.Results;
    }

    private static void RunAll(Harness h)
    {
        int n = h.Quick ? 257 : 65_537;
        foreach (var (family, checks) in Table)
        {
            h.Family = family;
            checks(h, n);
        }
    }

    private static void Elementwise(Harness h, int n)
    {
        var a = h.Floats(n);
        var b = h.Floats(n);
        void Binary(string name, Action<KernelHost, ArrayView<float>, ArrayView<float>, ArrayView<float>> kernel, SpanAction reference) =>
            h.Run(name, () =>
            {
                var y = h.Zeros<float>(n);
                kernel(h.Host, h.Up(a), h.Up(b), y);
                var r = new float[n];
                reference(a, b, r);
                h.Compare(name, h.Down(y), r, SameAtol, SameRtol);
            });
        Binary("add", Kernels.Elementwise.Add, ElementwiseReference.AddReference);
        Binary("sub", Kernels.Elementwise.Sub, ElementwiseReference.SubReference);
        Binary("mul", Kernels.Elementwise.Mul, ElementwiseReference.MulReference);
        h.Run("scale", () =>
        {
            var y = h.Zeros<float>(n);
            Kernels.Elementwise.Scale(h.Host, h.Up(a), 0.37f, y);
            var r = new float[n];
            ElementwiseReference.ScaleReference(a, 0.37f, r);
            h.Compare("scale", h.Down(y), r, SameAtol, SameRtol);
        });
        h.Run("axpy", () =>
        {
            var y = h.Up(b);
            Kernels.Elementwise.Axpy(h.Host, -1.5f, h.Up(a), y);
            var r = (float[])b.Clone();
            ElementwiseReference.AxpyReference(-1.5f, a, r);
            h.Compare("axpy", h.Down(y), r, SameAtol, SameRtol);
        });
        h.Run("fill", () =>
        {
            var y = h.Zeros<float>(n);
            Kernels.Elementwise.Fill(h.Host, y, 2.5f);
            var r = new float[n];
            ElementwiseReference.FillReference(r, 2.5f);
            h.Compare("fill", h.Down(y), r, 0, 0);
        });
        h.Run("broadcast", () =>
        {
            var y = h.Zeros<float>(n);
            Kernels.Elementwise.Broadcast(h.Host, h.Up(new[] { 0.75f }), 2f, y);
            var r = new float[n];
            ElementwiseReference.BroadcastReference([0.75f], 2f, r);
            h.Compare("broadcast", h.Down(y), r, SameAtol, SameRtol);
        });
    }

    private delegate void SpanAction(ReadOnlySpan<float> a, ReadOnlySpan<float> b, Span<float> y);

    private delegate void UnaryRef(ReadOnlySpan<float> x, Span<float> y);

    private static void Activations(Harness h, int n)
    {
        var x = h.Floats(n, -6f, 6f);
        var dy = h.Floats(n);
        void Pair(string name, Action<KernelHost, ArrayView<float>, ArrayView<float>> fwd, UnaryRef fwdRef, Action<KernelHost, ArrayView<float>, ArrayView<float>, ArrayView<float>> bwd, SpanAction bwdRef)
        {
            h.Run(name, () =>
            {
                var y = h.Zeros<float>(n);
                fwd(h.Host, h.Up(x), y);
                var r = new float[n];
                fwdRef(x, r);
                h.Compare(name, h.Down(y), r, MathAtol, MathRtol);
            });
            h.Run(name + " backward", () =>
            {
                var dx = h.Zeros<float>(n);
                bwd(h.Host, h.Up(x), h.Up(dy), dx);
                var r = new float[n];
                bwdRef(x, dy, r);
                h.Compare(name + " backward", h.Down(dx), r, MathAtol, MathRtol);
            });
        }

        Pair("relu", Kernels.Activations.Relu, ActivationsReference.ReluReference, Kernels.Activations.ReluBackward, ActivationsReference.ReluBackwardReference);
        Pair("leaky_relu", (k, a, b) => Kernels.Activations.LeakyRelu(k, a, b), (a, b) => ActivationsReference.LeakyReluReference(a, b), (k, a, b, c) => Kernels.Activations.LeakyReluBackward(k, a, b, c), (a, b, c) => ActivationsReference.LeakyReluBackwardReference(a, b, c));
        Pair("gelu", (k, a, b) => Kernels.Activations.Gelu(k, a, b), (a, b) => ActivationsReference.GeluReference(a, b), (k, a, b, c) => Kernels.Activations.GeluBackward(k, a, b, c), (a, b, c) => ActivationsReference.GeluBackwardReference(a, b, c));
        Pair("gelu_tanh", (k, a, b) => Kernels.Activations.Gelu(k, a, b, GeluApproximation.Tanh), (a, b) => ActivationsReference.GeluReference(a, b, GeluApproximation.Tanh), (k, a, b, c) => Kernels.Activations.GeluBackward(k, a, b, c, GeluApproximation.Tanh), (a, b, c) => ActivationsReference.GeluBackwardReference(a, b, c, GeluApproximation.Tanh));
        Pair("tanh", Kernels.Activations.Tanh, ActivationsReference.TanhReference, Kernels.Activations.TanhBackward, ActivationsReference.TanhBackwardReference);
        Pair("sigmoid", Kernels.Activations.Sigmoid, ActivationsReference.SigmoidReference, Kernels.Activations.SigmoidBackward, ActivationsReference.SigmoidBackwardReference);
        Pair("silu", Kernels.Activations.Silu, ActivationsReference.SiluReference, Kernels.Activations.SiluBackward, ActivationsReference.SiluBackwardReference);
    }

    private static void BiasAdd(Harness h)
    {
        int rows = h.Quick ? 17 : 257, f = h.Quick ? 33 : 129, s = h.Quick ? 15 : 49;
        h.Run("features", () =>
        {
            var x = h.Floats(rows * f);
            var b = h.Floats(f);
            var y = h.Zeros<float>(x.Length);
            Kernels.BiasAdd.Forward(h.Host, h.Up(x), h.Up(b), y, rows, f);
            var r = new float[x.Length];
            BiasAddReference.ForwardReference(x, b, r, rows, f);
            h.Compare("features", h.Down(y), r, 0, 0);
        });
        h.Run("channels", () =>
        {
            var x = h.Floats(rows * f * s);
            var b = h.Floats(f);
            var y = h.Zeros<float>(x.Length);
            Kernels.BiasAdd.ForwardChannels(h.Host, h.Up(x), h.Up(b), y, rows, f, s);
            var r = new float[x.Length];
            BiasAddReference.ForwardChannelsReference(x, b, r, rows, f, s);
            h.Compare("channels", h.Down(y), r, 0, 0);
        });
    }

    private static void Cast(Harness h, int n)
    {
        var x = h.Floats(n, -70000f, 70000f);
        x[0] = 1e-6f; // subnormal half
        x[1] = float.NaN;
        x[2] = float.NegativeInfinity;
        h.Run("to_half", () =>
        {
            var y = h.Zeros<Half>(n);
            Kernels.Cast.ToHalf(h.Host, h.Up(x), y);
            var r = new Half[n];
            CastReference.ToHalfReference(x, r);
            h.Compare("to_half", Widen(h.Down(y)), Widen(r), 0, 0);
        });
        h.Run("to_float", () =>
        {
            var hx = new Half[n];
            CastReference.ToHalfReference(h.Floats(n, -100f, 100f), hx);
            var y = h.Zeros<float>(n);
            Kernels.Cast.ToFloat(h.Host, h.Up(hx), y);
            var r = new float[n];
            CastReference.ToFloatReference(hx, r);
            h.Compare("to_float", h.Down(y), r, 0, 0);
        });
        h.Run("to_index", () =>
        {
            float[] specials = [0f, -0f, 1f, -1f, 0.5f, -0.5f, 16777217f, 2147483520f, 2147483648f, -2147483648f, -2147483904f, float.NaN, float.PositiveInfinity, float.NegativeInfinity, float.Epsilon, 3.0000002f];
            var ids = new float[n];
            for (int i = 0; i < n; i++)
                ids[i] = (i % 3) switch { 0 => h.Rng.Next(-70000, 70000), 1 => specials[i % specials.Length], _ => BitConverter.Int32BitsToSingle(h.Rng.Next(int.MinValue, int.MaxValue)) };
            var y = h.Zeros<int>(n);
            Kernels.Cast.ToIndices(h.Host, h.Up(ids), y);
            h.Compare("to_index", Array.ConvertAll(h.Down(y), v => (double)v), Array.ConvertAll(ids, v => (double)CastReference.ToIndexReference(v)), 0, 0);
        });
    }

    private static Half[] Halves(Harness h, int length)
    {
        var a = new Half[length];
        CastReference.ToHalfReference(h.Floats(length), a);
        return a;
    }

    private static float[] Widen(Half[] a)
    {
        var f = new float[a.Length];
        CastReference.ToFloatReference(a, f);
        return f;
    }

    private static void Reductions(Harness h, int n)
    {
        var x = h.Floats(n);
        foreach (var mode in new[] { ReductionMode.Deterministic, ReductionMode.Atomic })
        {
            void Whole(string name, Action<KernelHost, ArrayView<float>, ArrayView<float>, ArrayView<float>, ReductionMode> kernel, Func<float[], double> reference, double atol) =>
                h.Run($"{name} {mode}", () =>
                {
                    var result = h.Zeros<float>(1);
                    kernel(h.Host, h.Up(x), result, h.Zeros<float>(Math.Max(1, Kernels.Reductions.ScratchLength(h.Host, n))), mode);
                    h.Compare($"{name} {mode}", h.Down(result), new[] { reference(x) }, atol, SumRtol);
                });
            Whole("sum", Kernels.Reductions.Sum, a => ReductionsReference.SumReference(a), SumAtolPerTerm * n);
            Whole("mean", Kernels.Reductions.Mean, a => ReductionsReference.MeanReference(a), SumAtolPerTerm);
            Whole("max", Kernels.Reductions.Max, a => ReductionsReference.MaxReference(a), 0);
            Whole("sum_of_squares", Kernels.Reductions.SumOfSquares, a => ReductionsReference.SumOfSquaresReference(a), SumAtolPerTerm * n);
            Whole("l2_norm", Kernels.Reductions.L2Norm, a => ReductionsReference.L2NormReference(a), SumAtolPerTerm * Math.Sqrt(n));
        }

        int rows = h.Quick ? 17 : 129, cols = h.Quick ? 33 : 257;
        var m = h.Floats(rows * cols);
        void Axis(string name, Action<KernelHost, ArrayView<float>, int, int, ArrayView<float>> kernel, RowsRef reference, int outLength, int terms) =>
            h.Run(name, () =>
            {
                var result = h.Zeros<float>(outLength);
                kernel(h.Host, h.Up(m), rows, cols, result);
                var r = new double[outLength];
                reference(m, rows, cols, r);
                h.Compare(name, h.Down(result), r, SumAtolPerTerm * terms, SumRtol);
            });
        Axis("sum rows", Kernels.Reductions.SumRows, ReductionsReference.SumRowsReference, rows, cols);
        Axis("mean rows", Kernels.Reductions.MeanRows, ReductionsReference.MeanRowsReference, rows, 1);
        Axis("max rows", Kernels.Reductions.MaxRows, ReductionsReference.MaxRowsReference, rows, 1);
        Axis("sum_of_squares rows", Kernels.Reductions.SumOfSquaresRows, ReductionsReference.SumOfSquaresRowsReference, rows, cols);
        Axis("l2_norm rows", Kernels.Reductions.L2NormRows, ReductionsReference.L2NormRowsReference, rows, cols);
        Axis("sum columns", Kernels.Reductions.SumColumns, ReductionsReference.SumColumnsReference, cols, rows);
        Axis("mean columns", Kernels.Reductions.MeanColumns, ReductionsReference.MeanColumnsReference, cols, 1);
        Axis("max columns", Kernels.Reductions.MaxColumns, ReductionsReference.MaxColumnsReference, cols, 1);
        Axis("sum_of_squares columns", Kernels.Reductions.SumOfSquaresColumns, ReductionsReference.SumOfSquaresColumnsReference, cols, rows);
        Axis("l2_norm columns", Kernels.Reductions.L2NormColumns, ReductionsReference.L2NormColumnsReference, cols, rows);
    }

    private delegate void RowsRef(ReadOnlySpan<float> x, int rows, int cols, Span<double> result);

    private static (int M, int N, int K) GemmShape(Harness h) => h.Quick ? (17, 33, 65) : (129, 257, 300);

    private static void Gemm(Harness h)
    {
        var (m, n, k) = GemmShape(h);
        foreach (var (ta, tb) in new[] { (false, false), (true, false), (false, true), (true, true) })
        {
            string name = $"{(ta ? "T" : "N")}{(tb ? "T" : "N")} {m}x{n}x{k}";
            h.Run(name, () =>
            {
                var a = h.Floats(m * k);
                var b = h.Floats(k * n);
                var c = h.Floats(m * n);
                var dc = h.Up(c);
                Kernels.Gemm.Run(h.Host, ta, tb, m, n, k, 0.5f, h.Up(a), h.Up(b), 0.25f, dc);
                var r = (float[])c.Clone();
                GemmReferences.GemmReference(ta, tb, m, n, k, 0.5f, a, b, 0.25f, r);
                // Dot products of k terms summed in tiles: the property's bound, scaled with k.
                h.Compare(name, h.Down(dc), r, Tolerances.Gemm.Atol * Math.Max(1, k / 64.0), Tolerances.Gemm.Rtol);
            });
            Tiled(h, name[..2], ta, tb, len => h.Floats(len), (side, dc, a, b) => Kernels.Gemm.Run(h.Host, ta, tb, TiledM, TiledN, TiledK, 0.5f, h.Up(a), h.Up(b), 0.25f, dc, side), (a, b, r) => GemmReferences.GemmReference(ta, tb, TiledM, TiledN, TiledK, 0.5f, a, b, 0.25f, r));
        }

        // Batched products (attention's BatchedMatMul): every slice its own GEMM.
        int batch = 3, bm = h.Quick ? 9 : 65, bn = h.Quick ? 17 : 70, bk = h.Quick ? 16 : 64;
        int[] sides = h.Host.Backend == KernelBackend.CpuAccelerator ? [0, Kernels.Gemm.GroupSide(h.Host.Accelerator)] : [0];
        foreach (var (ta, tb, side) in from layout in new[] { (false, false), (false, true), (true, false) } from side in sides select (layout.Item1, layout.Item2, side))
        {
            string name = $"{(side == 0 ? "" : "tiled ")}batched {(ta ? "T" : "N")}{(tb ? "T" : "N")} {batch}x{bm}x{bn}x{bk}";
            h.Run(name, () =>
            {
                var a = h.Floats(batch * bm * bk);
                var b = h.Floats(batch * bk * bn);
                var dc = h.Zeros<float>(batch * bm * bn);
                Kernels.Gemm.RunBatched(h.Host, ta, tb, batch, bm, bn, bk, 1f, h.Up(a), h.Up(b), 0f, dc, side);
                var r = new float[batch * bm * bn];
                for (int i = 0; i < batch; i++)
                {
                    var slice = new float[bm * bn];
                    GemmReferences.GemmReference(ta, tb, bm, bn, bk, 1f, a.AsSpan(i * bm * bk, bm * bk), b.AsSpan(i * bk * bn, bk * bn), 0f, slice);
                    slice.CopyTo(r, i * bm * bn);
                }

                h.Compare(name, h.Down(dc), r, Tolerances.Gemm.Atol * Math.Max(1, bk / 64.0), Tolerances.Gemm.Rtol);
            });
        }
    }

    // On the CPU accelerator backend GEMM launches run the managed CpuGemm (the tiled kernel is far
    // slower there), so the tiled kernel GPUs launch is checked here directly, at its largest group
    // side; on a GPU the launches above already run it, and the managed backend launches no kernel.
    // Its shape: several of the CPU groups' 16 x 16 tiles with ragged edges, small enough for the
    // CPU accelerator's simulated groups.
    private const int TiledM = 33, TiledN = 47, TiledK = 70;

    private static void Tiled<T>(Harness h, string layout, bool ta, bool tb, Func<int, T[]> values, Action<int, ArrayView<float>, T[], T[]> kernel, Action<T[], T[], float[]> reference)
    {
        if (h.Host.Backend != KernelBackend.CpuAccelerator)
            return;
        const int m = TiledM, n = TiledN, k = TiledK;
        string name = $"tiled {layout} {m}x{n}x{k}";
        h.Run(name, () =>
        {
            var (a, b) = (values(m * k), values(k * n));
            var c = h.Floats(m * n);
            var dc = h.Up(c);
            kernel(Kernels.Gemm.GroupSide(h.Host.Accelerator), dc, a, b);
            reference(a, b, c);
            h.Compare(name, h.Down(dc), c, Tolerances.Gemm.Atol * Math.Max(1, k / 64.0), Tolerances.Gemm.Rtol);
        });
    }

    private static void GemmHalf(Harness h)
    {
        var (m, n, k) = GemmShape(h);
        foreach (var (ta, tb) in new[] { (false, false), (true, false), (false, true), (true, true) })
        {
            string name = $"{(ta ? "T" : "N")}{(tb ? "T" : "N")} {m}x{n}x{k}";
            h.Run(name, () =>
            {
                var a = new Half[m * k];
                var b = new Half[k * n];
                CastReference.ToHalfReference(h.Floats(m * k), a);
                CastReference.ToHalfReference(h.Floats(k * n), b);
                var c = h.Floats(m * n);
                var dc = h.Up(c);
                Kernels.GemmHalf.Run(h.Host, ta, tb, m, n, k, 1f, h.Up(a), h.Up(b), 0.5f, dc);
                var r = (float[])c.Clone();
                GemmHalfReferences.GemmHalfReference(ta, tb, m, n, k, 1f, a, b, 0.5f, r);
                h.Compare(name, h.Down(dc), r, Tolerances.Gemm.Atol * Math.Max(1, k / 64.0), Tolerances.Gemm.Rtol);
            });
            Tiled(h, name[..2], ta, tb, len => Halves(h, len), (side, dc, a, b) => Kernels.GemmHalf.Run(h.Host, ta, tb, TiledM, TiledN, TiledK, 1f, h.Up(a), h.Up(b), 0.5f, dc, side), (a, b, r) => GemmHalfReferences.GemmHalfReference(ta, tb, TiledM, TiledN, TiledK, 1f, a, b, 0.5f, r));
        }

        h.Run("round_to_half", () =>
        {
            var x = h.Floats(1000, -1000f, 1000f);
            var dx = h.Up(x);
            Kernels.GemmHalf.RoundToHalfInPlace(h.Host, dx);
            var r = (float[])x.Clone();
            GemmHalfReferences.RoundToHalfReference(r);
            h.Compare("round_to_half", h.Down(dx), r, 0, 0);
        });
    }

    private static (int N, int C) RowsShape(Harness h) => h.Quick ? (17, 257) : (129, 1000);

    private static void Softmax(Harness h)
    {
        var (n, c) = RowsShape(h);
        var x = h.Floats(n * c, -10f, 10f);
        var dy = h.Floats(n * c);
        h.Run("forward", () =>
        {
            var y = h.Zeros<float>(n * c);
            Kernels.Softmax.Forward(h.Host, h.Up(x), y, n, c);
            var r = new float[n * c];
            SoftmaxReference.ForwardReference(x, r, n, c);
            h.Compare("forward", h.Down(y), r, Tolerances.Softmax.ForwardAtol, Tolerances.Softmax.ForwardRtol);
        });
        h.Run("backward", () =>
        {
            var y = new float[n * c];
            SoftmaxReference.ForwardReference(x, y, n, c);
            var dx = h.Zeros<float>(n * c);
            Kernels.Softmax.Backward(h.Host, h.Up(y), h.Up(dy), dx, n, c);
            var r = new float[n * c];
            SoftmaxReference.BackwardReference(y, dy, r, n, c);
            h.Compare("backward", h.Down(dx), r, MathAtol, MathRtol);
        });
    }

    private static void LogSoftmax(Harness h)
    {
        var (n, c) = RowsShape(h);
        var x = h.Floats(n * c, -10f, 10f);
        var dy = h.Floats(n * c);
        h.Run("forward", () =>
        {
            var y = h.Zeros<float>(n * c);
            Kernels.LogSoftmax.Forward(h.Host, h.Up(x), y, n, c);
            var r = new float[n * c];
            LogSoftmaxReference.ForwardReference(x, r, n, c);
            h.Compare("forward", h.Down(y), r, 1e-5, MathRtol);
        });
        h.Run("backward", () =>
        {
            var y = new float[n * c];
            LogSoftmaxReference.ForwardReference(x, y, n, c);
            var dx = h.Zeros<float>(n * c);
            Kernels.LogSoftmax.Backward(h.Host, h.Up(y), h.Up(dy), dx, n, c);
            var r = new float[n * c];
            LogSoftmaxReference.BackwardReference(y, dy, r, n, c);
            h.Compare("backward", h.Down(dx), r, SumAtolPerTerm * c, MathRtol);
        });
    }

    private static void CrossEntropy(Harness h)
    {
        var (n, c) = h.Quick ? (17, 10) : (257, 1000);
        var logits = h.Floats(n * c, -8f, 8f);
        var targets = h.Ints(n, 0, c);
        foreach (var options in new[] { new CrossEntropyOptions(), new CrossEntropyOptions { Epsilon = 0.1f }, new CrossEntropyOptions { Reduction = LossReduction.Sum } })
        {
            string tag = $"{options.Reduction.ToString().ToLowerInvariant()} eps {options.Epsilon}";
            h.Run("forward " + tag, () =>
            {
                var losses = h.Zeros<float>(n);
                var loss = h.Zeros<float>(1);
                Kernels.CrossEntropy.Forward(h.Host, h.Up(logits), h.Up(targets), losses, loss, n, c, options);
                var r = new float[n];
                CrossEntropyReference.ForwardReference(logits, targets, r, n, c, options);
                h.Compare("forward " + tag, h.Down(losses), r, Tolerances.CrossEntropy.LossAtol, Tolerances.CrossEntropy.LossRtol);
                h.Compare("reduced " + tag, h.Down(loss), new[] { CrossEntropyReference.ReduceReference(r, targets, options.Reduction) }, 1e-5 * n, 1e-5);
            });
            h.Run("backward " + tag, () =>
            {
                var dLoss = new[] { 0.7f };
                var dlogits = h.Zeros<float>(n * c);
                Kernels.CrossEntropy.Backward(h.Host, h.Up(logits), h.Up(targets), h.Up(dLoss), dlogits, n, c, options, h.Zeros<float>(1));
                var r = new float[n * c];
                CrossEntropyReference.BackwardReference(logits, targets, dLoss, r, n, c, options);
                h.Compare("backward " + tag, h.Down(dlogits), r, 1e-6, 4e-6);
            });
        }

        var labeled = (int[])targets.Clone();
        labeled[0] = CrossEntropyOptions.DefaultIgnoreIndex;
        foreach (var smoothing in new[] { LabelSmoothing.Uniform, LabelSmoothing.OffTarget })
        {
            string tag = $"smoothed_targets {smoothing.ToString().ToLowerInvariant()} eps 0.1";
            h.Run(tag, () =>
            {
                var t = h.Zeros<float>(n * c);
                Kernels.CrossEntropy.SmoothedTargets(h.Host, h.Up(labeled), t, n, c, 0.1f, smoothing);
                var r = new float[n * c];
                CrossEntropyReference.SmoothedTargetsReference(labeled, r, n, c, 0.1f, smoothing);
                h.Compare(tag, h.Down(t), r, 0, 2.5e-7);
            });
        }

        // Probability targets (MixUp/CutMix soft labels): rows of random weights summing to 1.
        var probabilities = h.Floats(n * c, 0f, 1f);
        for (int i = 0; i < n; i++)
        {
            float sum = 0;
            for (int k = 0; k < c; k++)
                sum += probabilities[(i * c) + k];
            for (int k = 0; k < c; k++)
                probabilities[(i * c) + k] /= sum;
        }

        var wide = Array.ConvertAll(logits, v => (double)v);
        foreach (var options in new[] { new CrossEntropyOptions(), new CrossEntropyOptions { Epsilon = 0.1f, Smoothing = LabelSmoothing.OffTarget }, new CrossEntropyOptions { Reduction = LossReduction.None } })
        {
            string tag = $"soft {options.Reduction.ToString().ToLowerInvariant()} eps {options.Epsilon}";
            var (rows, reduced) = CrossEntropyReference.ForwardSoftReference(wide, probabilities, n, c, options);
            h.Run(tag + " forward", () =>
            {
                var losses = h.Zeros<float>(n);
                var loss = h.Zeros<float>(1);
                Kernels.CrossEntropy.ForwardSoft(h.Host, h.Up(logits), h.Up(probabilities), losses, options.Reduction == LossReduction.None ? default : loss, n, c, options);
                h.Compare(tag + " forward", h.Down(losses), rows, Tolerances.CrossEntropy.SoftLossAtol, Tolerances.CrossEntropy.SoftLossRtol);
                if (options.Reduction != LossReduction.None)
                    h.Compare(tag + " reduced", h.Down(loss), new[] { reduced }, 1e-5 * n, 1e-5);
            });
            h.Run(tag + " backward", () =>
            {
                var dLoss = options.Reduction == LossReduction.None ? h.Floats(n) : [0.7f];
                var dlogits = h.Zeros<float>(n * c);
                Kernels.CrossEntropy.BackwardSoft(h.Host, h.Up(logits), h.Up(probabilities), h.Up(dLoss), dlogits, n, c, options);
                h.Compare(tag + " backward", h.Down(dlogits), CrossEntropyReference.BackwardSoftReference(wide, probabilities, dLoss, n, c, options), Tolerances.CrossEntropy.SoftGradAtol, Tolerances.CrossEntropy.SoftGradRtol);
            });
        }
    }

    private static void Philox(Harness h, int n)
    {
        // Random123's known-answer vectors for Philox4x32-10.
        h.Run("known_answers", () =>
        {
            uint[] counters = [0u, 0u, 0u, 0u, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu, 0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u];
            uint[] keys = [0u, 0u, 0xffffffffu, 0xffffffffu, 0xa4093822u, 0x299f31d0u];
            uint[] expected = [0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u, 0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu, 0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u];
            var y = h.Zeros<uint>(12);
            Kernels.Philox.Blocks(h.Host, h.Up(counters), h.Up(keys), y);
            h.Compare("known_answers", ToDouble(h.Down(y)), ToDouble(expected), 0, 0);
        });
        h.Run("bits", () =>
        {
            var y = h.Zeros<uint>(n);
            Kernels.Philox.Bits(h.Host, y, 0xC0FFEE, 3, 7);
            var r = new uint[n];
            PhiloxReference.BitsReference(r, 0xC0FFEE, 3, 7);
            h.Compare("bits", ToDouble(h.Down(y)), ToDouble(r), 0, 0);
        });
        h.Run("uniform", () =>
        {
            var y = h.Zeros<float>(n);
            Kernels.Philox.Uniform(h.Host, y, 42, 1, 2);
            var r = new float[n];
            PhiloxReference.UniformReference(r, 42, 1, 2);
            h.Compare("uniform", h.Down(y), r, 0, 0);
        });
        h.Run("bernoulli", () =>
        {
            var y = h.Zeros<float>(n);
            Kernels.Philox.Bernoulli(h.Host, y, 0.3f, 42, 1, 2);
            var r = new float[n];
            PhiloxReference.BernoulliReference(r, 0.3f, 42, 1, 2);
            h.Compare("bernoulli", h.Down(y), r, 0, 0);
        });
        h.Run("normal", () =>
        {
            var y = h.Zeros<float>(n);
            Kernels.Philox.Normal(h.Host, y, 42, 1, 2, 0.5f, 2f);
            var r = new float[n];
            PhiloxReference.NormalReference(r, 42, 1, 2, 0.5f, 2f);
            // Box-Muller through log, sqrt, sin and cos: a GPU's are a few ulps from the CPU's.
            h.Compare("normal", h.Down(y), r, 1e-5, 1e-5);
        });
    }

    private static double[] ToDouble(uint[] a) => Array.ConvertAll(a, v => (double)v);

    // Optimizer updates: a handful of roundings per element, sqrt and division on a GPU.
    private const double UpdateAtol = 1e-6;
    private const double UpdateRtol = 1e-5;

    private static void Adam(Harness h, int n)
    {
        foreach (var amsgrad in new[] { false, true })
        {
            string name = amsgrad ? "amsgrad step" : "adamw step";
            h.Run(name, () =>
            {
                var p = h.Floats(n);
                var g = h.Floats(n);
                var m = h.Floats(n, -0.1f, 0.1f);
                var v = h.Floats(n, 0f, 0.01f);
                var vmax = amsgrad ? h.Floats(n, 0f, 0.02f) : [];
                var mask = new byte[n];
                for (int i = 0; i < n; i++)
                    mask[i] = (byte)(i % 3 == 0 ? 0 : 1);
                var s = new AdamStepScalars(AdamScalars.For(0.9, 0.999, 1e-8, 0, 5), 1e-3f, 0f, 1f - (1e-3f * 0.01f));
                var (dp, dm, dv) = (h.Up(p), h.Up(m), h.Up(v));
                var dvmax = amsgrad ? h.Up(vmax) : default;
                Kernels.AdamUpdate.Step(h.Host, dp, h.Up(g), dm, dv, dvmax, h.Up(mask), s);
                AdamUpdateReference.StepReference(p, g, m, v, vmax, mask, s);
                h.Compare(name + " p", h.Down(dp), p, UpdateAtol, UpdateRtol);
                h.Compare(name + " m", h.Down(dm), m, UpdateAtol, UpdateRtol);
                h.Compare(name + " v", h.Down(dv), v, UpdateAtol, UpdateRtol);
                if (amsgrad)
                    h.Compare(name + " vmax", h.Down(dvmax), vmax, UpdateAtol, UpdateRtol);
            });

            // The direction alone: what a chain runs when no fused plan takes the whole step.
            string direction = amsgrad ? "amsgrad direction" : "adam direction";
            h.Run(direction, () =>
            {
                var g = h.Floats(n);
                var m = h.Floats(n, -0.1f, 0.1f);
                var v = h.Floats(n, 0f, 0.01f);
                var vmax = amsgrad ? h.Floats(n, 0f, 0.02f) : [];
                var s = AdamScalars.For(0.9, 0.999, 1e-8, 0, 5);
                var (dg, dm, dv) = (h.Up(g), h.Up(m), h.Up(v));
                var dvmax = amsgrad ? h.Up(vmax) : default;
                Kernels.AdamUpdate.Direction(h.Host, dg, dm, dv, dvmax, s);
                AdamUpdateReference.DirectionReference(g, m, v, vmax, s);
                h.Compare(direction + " d", h.Down(dg), g, UpdateAtol, UpdateRtol);
                h.Compare(direction + " m", h.Down(dm), m, UpdateAtol, UpdateRtol);
                h.Compare(direction + " v", h.Down(dv), v, UpdateAtol, UpdateRtol);
                if (amsgrad)
                    h.Compare(direction + " vmax", h.Down(dvmax), vmax, UpdateAtol, UpdateRtol);
            });
        }
    }

    private static void Sgd(Harness h, int n)
    {
        foreach (var (nesterov, first) in new[] { (false, true), (false, false), (true, false) })
        {
            string name = $"step nesterov {nesterov} first {first}";
            h.Run(name, () =>
            {
                var p = h.Floats(n);
                var g = h.Floats(n);
                var b = h.Floats(n);
                var mask = new byte[n];
                Array.Fill(mask, (byte)1);
                var (dp, db) = (h.Up(p), h.Up(b));
                Kernels.SgdUpdate.Step(h.Host, dp, h.Up(g), db, h.Up(mask), 0.1f, 1e-4f, 0.9f, nesterov ? 0f : 0.1f, nesterov, first);
                SgdUpdateReference.StepReference(p, g, b, mask, 0.1f, 1e-4f, 0.9f, nesterov ? 0f : 0.1f, nesterov, first);
                h.Compare(name + " p", h.Down(dp), p, UpdateAtol, UpdateRtol);
                h.Compare(name + " buffer", h.Down(db), b, UpdateAtol, UpdateRtol);
            });

            string momentum = $"momentum nesterov {nesterov} first {first}";
            h.Run(momentum, () =>
            {
                var g = h.Floats(n);
                var b = h.Floats(n);
                var (dg, db) = (h.Up(g), h.Up(b));
                Kernels.SgdUpdate.Momentum(h.Host, dg, db, 0.9f, nesterov ? 0f : 0.1f, nesterov, first);
                SgdUpdateReference.MomentumReference(g, b, 0.9f, nesterov ? 0f : 0.1f, nesterov, first);
                h.Compare(momentum + " d", h.Down(dg), g, UpdateAtol, UpdateRtol);
                h.Compare(momentum + " buffer", h.Down(db), b, UpdateAtol, UpdateRtol);
            });
        }
    }

    private static void Rms(Harness h, int n)
    {
        h.Run("step", () =>
        {
            var p = h.Floats(n);
            var g = h.Floats(n);
            var v = h.Floats(n, 0f, 0.01f);
            var mu = h.Floats(n, -0.1f, 0.1f);
            var b = h.Floats(n, -0.1f, 0.1f);
            var s = new RmsStepScalars(RmsScalars.For(0.99, 1e-8, 0.9), 1e-2f, 1e-4f);
            var (dp, dv, dmu, db) = (h.Up(p), h.Up(v), h.Up(mu), h.Up(b));
            Kernels.RmsUpdate.Step(h.Host, dp, h.Up(g), dv, dmu, db, s);
            RmsUpdateReference.StepReference(p, g, v, mu, b, s);
            h.Compare("step p", h.Down(dp), p, UpdateAtol, UpdateRtol);
            h.Compare("step v", h.Down(dv), v, UpdateAtol, UpdateRtol);
            h.Compare("step b", h.Down(db), b, UpdateAtol, UpdateRtol);
        });
        h.Run("direction", () =>
        {
            var g = h.Floats(n);
            var v = h.Floats(n, 0f, 0.01f);
            var mu = h.Floats(n, -0.01f, 0.01f);
            var b = h.Floats(n, -0.1f, 0.1f);
            var s = RmsScalars.For(0.99, 1e-8, 0.9);
            var (dg, dv, dmu, db) = (h.Up(g), h.Up(v), h.Up(mu), h.Up(b));
            Kernels.RmsUpdate.Direction(h.Host, dg, dv, dmu, db, s);
            RmsUpdateReference.DirectionReference(g, v, mu, b, s);
            h.Compare("direction d", h.Down(dg), g, UpdateAtol, UpdateRtol);
            h.Compare("direction v", h.Down(dv), v, UpdateAtol, UpdateRtol);
            h.Compare("direction mu", h.Down(dmu), mu, UpdateAtol, UpdateRtol);
            h.Compare("direction b", h.Down(db), b, UpdateAtol, UpdateRtol);
        });
    }

    private static void Adagrad(Harness h, int n)
    {
        h.Run("step", () =>
        {
            var p = h.Floats(n);
            var g = h.Floats(n);
            var sum = h.Floats(n, 0f, 1f);
            var (dp, ds) = (h.Up(p), h.Up(sum));
            Kernels.AdagradUpdate.Step(h.Host, dp, h.Up(g), ds, 1e-2f, 1e-4f, 1e-10f);
            AdagradUpdateReference.StepReference(p, g, sum, 1e-2f, 1e-4f, 1e-10f);
            h.Compare("step p", h.Down(dp), p, UpdateAtol, UpdateRtol);
            h.Compare("step sum", h.Down(ds), sum, UpdateAtol, UpdateRtol);
        });
        h.Run("direction", () =>
        {
            var g = h.Floats(n);
            var sum = h.Floats(n, 0f, 1f);
            var (dg, ds) = (h.Up(g), h.Up(sum));
            Kernels.AdagradUpdate.Direction(h.Host, dg, ds, 1e-10f);
            AdagradUpdateReference.DirectionReference(g, sum, 1e-10f);
            h.Compare("direction d", h.Down(dg), g, UpdateAtol, UpdateRtol);
            h.Compare("direction sum", h.Down(ds), sum, UpdateAtol, UpdateRtol);
        });
    }

    private static void WeightDecay(Harness h, int n)
    {
        h.Run("add", () =>
        {
            var u = h.Floats(n);
            var p = h.Floats(n);
            var mask = new byte[n];
            for (int i = 0; i < n; i++)
                mask[i] = (byte)(i % 2);
            var du = h.Up(u);
            Kernels.WeightDecay.Add(h.Host, du, h.Up(p), 0.01f, h.Up(mask));
            WeightDecayReference.AddReference(u, p, 0.01f, mask);
            h.Compare("add", h.Down(du), u, SameAtol, SameRtol);
        });
    }

    private static void Clip(Harness h, int n)
    {
        var g = h.Floats(n, -3f, 3f);
        h.Run("by_norm", () =>
        {
            float norm = (float)ReductionsReference.L2NormReference(g);
            var dg = h.Up(g);
            Kernels.Clip.ByNorm(h.Host, dg, h.Up(new[] { norm }), 1f);
            var r = (float[])g.Clone();
            ClipReference.ByNormReference(r, norm, 1f);
            h.Compare("by_norm", h.Down(dg), r, SameAtol, SameRtol);
        });
        h.Run("by_value", () =>
        {
            var dg = h.Up(g);
            Kernels.Clip.ByValue(h.Host, dg, -0.5f, 1f);
            var r = (float[])g.Clone();
            ClipReference.ByValueReference(r, -0.5f, 1f);
            h.Compare("by_value", h.Down(dg), r, 0, 0);
        });
        h.Run("abs_max", () =>
        {
            var result = h.Zeros<float>(1);
            Kernels.Clip.AbsMax(h.Host, h.Up(g), result);
            h.Compare("abs_max", h.Down(result), new[] { ClipReference.AbsMaxReference(g) }, 0, 0);
        });
    }

    private static void LossScale(Harness h, int n)
    {
        foreach (var poison in new[] { false, true })
        {
            string name = poison ? "unscale with inf" : "unscale";
            h.Run(name, () =>
            {
                var g = h.Floats(n, -1000f, 1000f);
                if (poison)
                    g[n / 2] = float.PositiveInfinity;
                var (dg, found) = (h.Up(g), h.Zeros<int>(1));
                Kernels.LossScale.Unscale(h.Host, dg, 1f / 1024f, found);
                bool r = !LossScaleReference.UnscaleReference(g, 1f / 1024f); // the reference says all finite; the kernel flags non-finite
                h.Compare(name, h.Down(dg), g, 0, Tolerances.LossScale.UnscaleRtol);
                h.Compare(name + " found", new[] { h.Down(found)[0] != 0 ? 1f : 0f }, new[] { r ? 1f : 0f }, 0, 0);
            });
        }
    }

    private static void Conv2d(Harness h)
    {
        var g = h.Quick ? new Conv2dGeometry(2, 3, 9, 8, 3, 3, 2, 1, 1, 1, 1, 2) : new Conv2dGeometry(8, 16, 28, 28, 3, 3, 1, 1, 1, 1, 1, 1);
        int o = h.Quick ? 5 : 32;
        var x = h.Floats((int)g.InputLength);
        var w = h.Floats(o * g.K);
        var bias = h.Floats(o);
        var dy = h.Floats((int)g.OutputLength(o));
        h.Run("im2col", () =>
        {
            var cols = h.Zeros<float>(g.ColumnsLength);
            Kernels.Conv2d.Im2Col(h.Host, h.Up(x), cols, g);
            var r = new float[g.ColumnsLength];
            Conv2dReference.Im2ColReference(x, r, g);
            h.Compare("im2col", h.Down(cols), r, 0, 0);
        });
        h.Run("col2im", () =>
        {
            var c = h.Floats((int)g.ColumnsLength);
            var dx = h.Zeros<float>(g.InputLength);
            Kernels.Conv2d.Col2Im(h.Host, h.Up(c), dx, g);
            var r = new float[g.InputLength];
            Conv2dReference.Col2ImReference(c, r, g);
            h.Compare("col2im", h.Down(dx), r, SumAtolPerTerm * g.KH * g.KW, SumRtol);
        });
        h.Run("forward + backward", () =>
        {
            var y = h.Zeros<float>(g.OutputLength(o));
            var cols = h.Zeros<float>(g.ColumnsLength);
            var (dx, dw) = (h.Zeros<float>(g.InputLength), h.Zeros<float>(w.Length));
            var dw0 = h.Up(w);
            Kernels.Conv2d.Forward(h.Host, h.Up(x), dw0, h.Up(bias), y, cols, g, o);
            var ddy = h.Up(dy);
            Kernels.Conv2d.BackwardWeight(h.Host, ddy, cols, dw, g, o);
            Kernels.Conv2d.BackwardInput(h.Host, dw0, ddy, h.Zeros<float>(g.ColumnsLength), dx, g, o);
            var ry = new float[g.OutputLength(o)];
            Conv2dReference.ForwardReference(x, w, bias, ry, g, o);
            var (rdx, rdw) = (new float[g.InputLength], new float[w.Length]);
            Conv2dReference.BackwardReference(x, w, dy, rdx, rdw, [], g, o);
            // Sums of K (forward, input) and N*P (weight) products: the properties' GEMM tolerance, scaled.
            h.Compare("forward", h.Down(y), ry, Tolerances.Gemm.Atol * Math.Max(1, g.K / 64.0), Tolerances.Gemm.Rtol);
            h.Compare("backward input", h.Down(dx), rdx, Tolerances.Gemm.Atol * Math.Max(1, o * g.KH * g.KW / 64.0), Tolerances.Gemm.Rtol);
            h.Compare("backward weight", h.Down(dw), rdw, Tolerances.Gemm.Atol * Math.Max(1, g.N * g.P / 64.0), Tolerances.Gemm.Rtol);
        });
    }

    private static void Pooling(Harness h)
    {
        var g = Pool2dGeometry.Create("check", h.Quick ? 2 : 8, h.Quick ? 3 : 16, h.Quick ? 9 : 28, h.Quick ? 8 : 28, (3, 2), (2, 2), (1, 0), (1, 1));
        var x = h.Floats((int)g.InputLength);
        var dy = h.Floats((int)g.OutputLength);
        h.Run("max forward + backward", () =>
        {
            var (y, arg, dx) = (h.Zeros<float>(g.OutputLength), h.Zeros<int>(g.OutputLength), h.Zeros<float>(g.InputLength));
            Kernels.Pooling.MaxPool2dForward(h.Host, h.Up(x), y, arg, g);
            Kernels.Pooling.MaxPool2dBackward(h.Host, h.Up(dy), arg, dx, g);
            var (ry, rarg, rdx) = (new float[g.OutputLength], new int[g.OutputLength], new float[g.InputLength]);
            PoolingReference.MaxPool2dForwardReference(x, ry, rarg, g);
            PoolingReference.MaxPool2dBackwardReference(dy, rarg, rdx, g);
            h.Compare("max forward", h.Down(y), ry, 0, 0);
            h.Compare("max argmax", Array.ConvertAll(h.Down(arg), v => (float)v), Array.ConvertAll(rarg, v => (float)v), 0, 0);
            h.Compare("max backward", h.Down(dx), rdx, SameAtol, SameRtol);
        });
        foreach (var include in new[] { true, false })
        {
            h.Run($"avg include_pad {include}", () =>
            {
                var (y, dx) = (h.Zeros<float>(g.OutputLength), h.Zeros<float>(g.InputLength));
                Kernels.Pooling.AvgPool2dForward(h.Host, h.Up(x), y, g, include);
                Kernels.Pooling.AvgPool2dBackward(h.Host, h.Up(dy), dx, g, include);
                var (ry, rdx) = (new float[g.OutputLength], new float[g.InputLength]);
                PoolingReference.AvgPool2dForwardReference(x, ry, g, include);
                PoolingReference.AvgPool2dBackwardReference(dy, rdx, g, include);
                h.Compare($"avg forward include_pad {include}", h.Down(y), ry, SameAtol, 1e-6);
                h.Compare($"avg backward include_pad {include}", h.Down(dx), rdx, SameAtol, 1e-6);
            });
        }

        h.Run("global avg", () =>
        {
            int s = g.H * g.W;
            var (y, dx) = (h.Zeros<float>(g.N * g.C), h.Zeros<float>(g.InputLength));
            var dyg = h.Floats(g.N * g.C);
            Kernels.Pooling.GlobalAvgPoolForward(h.Host, h.Up(x), y, g.N, g.C, s);
            Kernels.Pooling.GlobalAvgPoolBackward(h.Host, h.Up(dyg), dx, g.N, g.C, s);
            var (ry, rdx) = (new float[g.N * g.C], new float[g.InputLength]);
            PoolingReference.GlobalAvgPoolForwardReference(x, ry, s);
            PoolingReference.GlobalAvgPoolBackwardReference(dyg, rdx, s);
            h.Compare("global avg forward", h.Down(y), ry, SumAtolPerTerm, SumRtol);
            h.Compare("global avg backward", h.Down(dx), rdx, SameAtol, SameRtol);
        });
    }

    // An output buffer of NaNs, so an element a kernel fails to write cannot pass for a reference 0.
    private static ArrayView<float> Poisoned(Harness h, long n) => h.Up(Enumerable.Repeat(float.NaN, checked((int)n)).ToArray());

    private static double[] Wide(float[] a) => Array.ConvertAll(a, v => (double)v);

    private static void MaskedSoftmax(Harness h)
    {
        // x (B, H, Tq, C): N = B H Tq rows, Tq per causal block, H Tq per item of the key lengths or mask.
        var (items, heads, tq, c) = h.Quick ? (3, 2, 7, 9) : (4, 4, 65, 257);
        int n = items * heads * tq;
        var x = h.Floats(n * c, -6f, 6f);
        var lengths = h.Ints(items, 1, c + 2);
        lengths[^1] = 0; // an item with no key: its rows are zeros
        var mask = h.Ints(items * c, 0, 3); // a third of the keys dropped
        var biasRows = h.Floats(tq * c, -3f, 3f);
        var biasRow = h.Floats(c, -3f, 3f);
        (string Name, bool Causal, int Keys, float[]? Bias)[] cases =
        [
            ("causal", true, 0, null),
            ("key lengths", false, 1, null),
            ("key mask", false, 2, null),
            ("bias (Tq, C)", false, 0, biasRows),
            ("causal key lengths bias (Tq, C)", true, 1, biasRows),
            ("causal key mask bias (C)", true, 2, biasRow),
        ];
        foreach (var (name, causal, keys, bias) in cases)
        {
            h.Run(name, () =>
            {
                var y = Poisoned(h, (long)n * c);
                var keyView = keys == 1 ? h.Up(lengths) : keys == 2 ? h.Up(mask) : default;
                Kernels.MaskedSoftmax.Forward(h.Host, h.Up(x), bias is null ? default : h.Up(bias), keyView, y, n, c, causal, tq, keyMask: keys == 2);
                var r = MaskedSoftmaxReference.ForwardReference(Wide(x), bias is null ? null : Wide(bias), n, c, tq, items, causal, keys == 1 ? lengths : null, keys == 2 ? mask : null);
                h.Compare(name, h.Down(y), r, Tolerances.MaskedSoftmax.ForwardAtol, Tolerances.MaskedSoftmax.ForwardRtol);
            });
        }
    }

    private static void Attention(Harness h)
    {
        // The tiled kernels stage 16 keys (forward, dQ) or 16 queries (dK/dV) per tile for groups of
        // up to 32 query rows (16 on the CPU accelerator); the managed path walks 64-key tiles in
        // 32-row blocks. Full sizes span several of each with ragged ends: 77 = 2 x 32 + 13 = 4 x 16 + 13
        // queries, 150 = 9 x 16 + 6 = 2 x 64 + 22 keys. Quick sizes still cross a group of 32 rows and
        // tiles of 16 (35 = 32 + 3 = 2 x 16 + 3, 41 = 2 x 16 + 9): a causal bound that is right for the
        // first group only shows in the second.
        var (l, lk, d, dh, dv) = h.Quick ? (35, 41, 8, 5, 3) : (77, 150, 32, 40, 24);
        int mh = h.Quick ? 7 : 33; // rows of the head-dim-128 case (the kernels' largest tiles)
        (string Name, AttentionCase Case)[] cases =
        [
            ("plain", new(2, 2, l, l, d, d, false, null, 0, 0, 0f, 1)),
            ("causal", new(2, 2, l, l, d, d, true, null, 0, 0, 0f, 2)),
            ("bias (1, H, Lq, Lk)", new(2, 2, l, l, d, d, false, null, 2, 0, 0f, 3)),
            ("causal bias (B, 1, Lq, Lk)", new(2, 2, l, l, d, d, true, null, 3, 0, 0f, 4)),
            ("key lengths", new(3, 2, l, l, d, d, false, null, 0, 1, 0f, 5)),
            ("key mask", new(2, 2, l, l, d, d, false, null, 0, 2, 0f, 6)),
            ("dropout p 0.3", new(2, 2, l, l, d, d, false, null, 0, 0, 0.3f, 7)),
            ("causal Lq != Lk", new(2, 2, l, lk, d, d, true, null, 0, 0, 0f, 8)),
            ("D != Dv", new(2, 2, l, lk, dh, dv, false, null, 0, 0, 0f, 9)),
            // Everything at once: causal with Lq > Lk, a full bias (B, H, Lq, Lk), a key mask, dropout, scale 0.7, D != Dv.
            ("everything, Lq > Lk, D != Dv", new(2, 3, lk, l, dh, dv, true, 0.7f, 4, 2, 0.2f, 10)),
            // The largest head dimension the tiled kernels take, with a bias (Lq, Lk) and key lengths.
            ("head dim 128", new(1, 2, mh, lk, Kernels.Attention.MaxHeadDim, Kernels.Attention.MaxHeadDim, false, null, 1, 1, 0f, 11)),
        ];
        foreach (var (name, c) in cases)
            h.Run(name, () => AttentionCheck(h, name, c));
    }

    private static void AttentionCheck(Harness h, string name, AttentionCase c)
    {
        int bh = c.B * c.H;
        int[] pad = c.Pad switch
        {
            // Ragged lengths; the last of several batch elements has no key at all (its rows are zeros, lse +inf).
            1 => Enumerable.Range(0, c.B).Select(b => b == c.B - 1 && c.B > 1 ? 0 : Math.Max(1, c.Lk - 3 - (b * c.Lk / 3))).ToArray(),
            2 => Array.ConvertAll(h.Floats(c.B * c.Lk, 0f, 1f), u => u < 0.7f ? 1 : 0),
            _ => [],
        };
        var x = new AttentionData(
            h.Floats(bh * c.Lq * c.D), h.Floats(bh * c.Lk * c.D), h.Floats(bh * c.Lk * c.Dv),
            h.Floats((int)(c.BiasShape?.Length ?? 0)), pad, h.Floats(bh * c.Lq * c.Dv));
        var a = c.KernelArgs(biasGrad: c.Bias != 0);
        var (q, k, v) = (h.Up(x.Q), h.Up(x.K), h.Up(x.V));
        var bias = c.Bias != 0 ? h.Up(x.BiasValues) : default;
        var lengths = c.Pad == 1 ? h.Up(pad) : default;
        var keyMask = c.Pad == 2 ? h.Up(pad) : default;
        var (o, lse) = (Poisoned(h, (long)bh * c.Lq * c.Dv), Poisoned(h, (long)bh * c.Lq));
        Kernels.Attention.Forward(h.Host, a, q, k, v, o, lse, bias, lengths, keyMask);

        // The backward takes the kernel's own o and lse, as training does.
        var (dq, dk, dv) = (Poisoned(h, x.Q.Length), Poisoned(h, x.K.Length), Poisoned(h, x.V.Length));
        var dS = c.Bias != 0 ? Poisoned(h, (long)bh * c.Lq * c.Lk) : default;
        Kernels.Attention.Backward(h.Host, a, q, k, v, o, lse, h.Up(x.DOut), dq, dk, dv, h.Zeros<float>((long)bh * c.Lq), dS, bias, lengths, keyMask);

        var r = AttentionReference.Run(c, x, Wide(x.Q), Wide(x.K), Wide(x.V), Wide(x.DOut));
        var rLse = AttentionReference.LseReference(c, x, Wide(x.Q), Wide(x.K));
        const double atol = Tolerances.Attention.Atol, rtol = Tolerances.Attention.Rtol;
        h.Compare(name + " o", h.Down(o), r.Y, atol, rtol);
        h.Compare(name + " lse", h.Down(lse), rLse, atol, rtol);
        h.Compare(name + " dq", h.Down(dq), r.Dq, atol, rtol);
        h.Compare(name + " dk", h.Down(dk), r.Dk, atol, rtol);
        h.Compare(name + " dv", h.Down(dv), r.Dv, atol, rtol);
        if (c.Bias != 0) // dS (B, H, Lq, Lk): the bias's gradient before the sum over its broadcast axes
            h.Compare(name + " dS", h.Down(dS), r.DS, atol, rtol);
    }

    private static void Permute(Harness h)
    {
        // Rank 2 to 4 (and the kernels' largest, 6): contiguous rows that move, the innermost axis
        // moving (strided rows), reversals; odd sizes.
        (int[] Dims, int[] Axes)[] cases = h.Quick
            ? [([5, 7], [1, 0]), ([3, 4, 5], [2, 0, 1]), ([3, 4, 5], [0, 2, 1]), ([2, 3, 4, 5], [0, 2, 1, 3]), ([2, 3, 4, 5], [0, 2, 3, 1]), ([2, 3, 4, 5], [3, 2, 1, 0]), ([2, 3, 2, 3, 2, 3], [5, 3, 1, 4, 2, 0])]
            : [([129, 257], [1, 0]), ([17, 33, 65], [2, 0, 1]), ([17, 33, 65], [0, 2, 1]), ([8, 64, 12, 16], [0, 2, 1, 3]), ([8, 12, 64, 16], [0, 2, 3, 1]), ([7, 9, 11, 13], [3, 2, 1, 0]), ([3, 5, 4, 7, 6, 5], [5, 3, 1, 4, 2, 0])];
        foreach (var (dims, axes) in cases)
        {
            string name = $"[{string.Join(", ", dims)}] axes [{string.Join(", ", axes)}]";
            int n = dims.Aggregate(1, (p, e) => p * e);
            h.Run(name, () =>
            {
                var x = h.Floats(n);
                var y = Poisoned(h, n);
                Kernels.Permute.Forward(h.Host, h.Up(x), y, dims, axes);
                h.Compare(name + " forward", h.Down(y), PermuteReference.ForwardReference(x, dims, axes), 0, 0);
                var dy = h.Floats(n);
                var dx = Poisoned(h, n);
                Kernels.Permute.Backward(h.Host, h.Up(dy), dx, dims, axes);
                h.Compare(name + " backward", h.Down(dx), PermuteReference.BackwardReference(dy, dims, axes), 0, 0);
            });
        }
    }

    private static void BatchNorm(Harness h)
    {
        int n = h.Quick ? 4 : 32, c = h.Quick ? 3 : 16, s = h.Quick ? 17 : 196;
        const float eps = 1e-5f;
        var x = h.Floats(n * c * s, -2f, 3f);
        var dy = h.Floats(n * c * s);
        var gamma = h.Floats(c, 0.5f, 1.5f);
        var beta = h.Floats(c);
        h.Run("forward + backward", () =>
        {
            var (mean, var) = (h.Zeros<float>(c), h.Zeros<float>(c));
            var dx0 = h.Up(x);
            Kernels.BatchNorm.Statistics(h.Host, dx0, mean, var, n, c, s);
            var (rm, rv) = (new float[c], new float[c]);
            BatchNormReference.StatisticsReference(x, n, c, s, rm, rv);
            h.Compare("mean", h.Down(mean), rm, Tolerances.BatchNorm.StatisticsAtol, Tolerances.BatchNorm.StatisticsRtol);
            h.Compare("var", h.Down(var), rv, Tolerances.BatchNorm.StatisticsAtol, Tolerances.BatchNorm.StatisticsRtol);

            // The later stages take the reference statistics, so each is checked on its own.
            var (um, uv) = (h.Up(rm), h.Up(rv));
            var y = h.Zeros<float>(x.Length);
            Kernels.BatchNorm.Normalize(h.Host, dx0, um, uv, h.Up(gamma), h.Up(beta), y, n, c, s, eps);
            var ry = new float[x.Length];
            BatchNormReference.NormalizeReference(x, rm, rv, gamma, beta, ry, n, c, s, eps);
            h.Compare("normalize", h.Down(y), ry, Tolerances.BatchNorm.ElementwiseAtol, Tolerances.BatchNorm.ElementwiseRtol);

            var (dgamma, dbeta) = (h.Zeros<float>(c), h.Zeros<float>(c));
            var ddy = h.Up(dy);
            Kernels.BatchNorm.ParamGrads(h.Host, dx0, ddy, um, uv, dgamma, dbeta, n, c, s, eps);
            var (rdg, rdb) = (new float[c], new float[c]);
            BatchNormReference.ParamGradsReference(x, dy, rm, rv, rdg, rdb, n, c, s, eps);
            h.Compare("dgamma", h.Down(dgamma), rdg, Tolerances.BatchNorm.SumAtolPerTerm * n * s, Tolerances.BatchNorm.SumRtol);
            h.Compare("dbeta", h.Down(dbeta), rdb, Tolerances.BatchNorm.SumAtolPerTerm * n * s, Tolerances.BatchNorm.SumRtol);

            var dx = h.Zeros<float>(x.Length);
            Kernels.BatchNorm.InputGrad(h.Host, dx0, ddy, um, uv, h.Up(gamma), h.Up(rdg), h.Up(rdb), dx, n, c, s, eps, true);
            var rdx = new float[x.Length];
            BatchNormReference.InputGradReference(x, dy, rm, rv, gamma, rdg, rdb, rdx, n, c, s, eps, true);
            h.Compare("input grad", h.Down(dx), rdx, 2e-4, 2e-3);
        });
        h.Run("running", () =>
        {
            var (mean, var) = (h.Floats(c), h.Floats(c, 0f, 2f));
            var (runningMean, runningVar) = (h.Floats(c), h.Floats(c, 0.5f, 1.5f));
            var (newMean, newVar) = (h.Zeros<float>(c), h.Zeros<float>(c));
            Kernels.BatchNorm.Running(h.Host, h.Up(mean), h.Up(var), n * s, 0.1f, h.Up(runningMean), h.Up(runningVar), newMean, newVar);
            var (rm, rv) = (new float[c], new float[c]);
            BatchNormReference.RunningReference(mean, var, n * s, 0.1f, runningMean, runningVar, rm, rv);
            h.Compare("running mean", h.Down(newMean), rm, Tolerances.BatchNorm.ElementwiseAtol, Tolerances.BatchNorm.ElementwiseRtol);
            h.Compare("running var", h.Down(newVar), rv, Tolerances.BatchNorm.ElementwiseAtol, Tolerances.BatchNorm.ElementwiseRtol);
        });
        h.Run("num_batches_tracked", () =>
        {
            var next = h.Zeros<int>(1);
            Kernels.BatchNorm.Increment(h.Host, h.Up(new[] { 41 }), next);
            h.Compare("num_batches_tracked", [h.Down(next)[0]], [BatchNormReference.IncrementReference(41)], 0, 0);
        });
    }

    private static void LayerNorm(Harness h)
    {
        int n = h.Quick ? 17 : 257, d = h.Quick ? 33 : 768;
        const float eps = 1e-5f;
        var x = h.Floats(n * d, -2f, 3f);
        var dy = h.Floats(n * d);
        var gamma = h.Floats(d, 0.5f, 1.5f);
        var beta = h.Floats(d);
        h.Run("forward + backward", () =>
        {
            var (y, mean, rstd) = (h.Zeros<float>(x.Length), h.Zeros<float>(n), h.Zeros<float>(n));
            var dx0 = h.Up(x);
            Kernels.LayerNorm.Forward(h.Host, dx0, h.Up(gamma), h.Up(beta), y, mean, rstd, n, d, eps);
            var (ry, rm, rr) = (new float[x.Length], new float[n], new float[n]);
            LayerNormReference.ForwardReference(x, gamma, beta, ry, rm, rr, n, d, eps);
            h.Compare("forward", h.Down(y), ry, Tolerances.LayerNorm.ForwardAtol * Math.Max(1, d / 64.0), Tolerances.LayerNorm.ForwardRtol);
            h.Compare("mean", h.Down(mean), rm, SumAtolPerTerm, SumRtol);
            h.Compare("rstd", h.Down(rstd), rr, 3e-5, 3e-5 * Math.Max(1, d / 64.0));

            var (um, ur, ddy) = (h.Up(rm), h.Up(rr), h.Up(dy));
            var dx = h.Zeros<float>(x.Length);
            Kernels.LayerNorm.InputGrad(h.Host, dx0, ddy, h.Up(gamma), um, ur, dx, n, d);
            var rdx = new float[x.Length];
            LayerNormReference.InputGradReference(x, dy, gamma, rm, rr, rdx, n, d);
            h.Compare("input grad", h.Down(dx), rdx, Tolerances.LayerNorm.InputGradAtol * Math.Max(1, d / 64.0), Tolerances.LayerNorm.InputGradRtol);

            var (dgamma, dbeta) = (h.Zeros<float>(d), h.Zeros<float>(d));
            Kernels.LayerNorm.ParamGrads(h.Host, dx0, ddy, um, ur, dgamma, dbeta, n, d);
            var (rdg, rdb) = (new float[d], new float[d]);
            LayerNormReference.ParamGradsReference(x, dy, rm, rr, rdg, rdb, n, d);
            h.Compare("dgamma", h.Down(dgamma), rdg, Tolerances.LayerNorm.SumAtolPerTerm * n, Tolerances.LayerNorm.SumRtol);
            h.Compare("dbeta", h.Down(dbeta), rdb, Tolerances.LayerNorm.SumAtolPerTerm * n, Tolerances.LayerNorm.SumRtol);
        });
    }

    private static void Dropout(Harness h, int n)
    {
        var x = h.Floats(n);
        h.Run("forward + backward", () =>
        {
            var (y, dx) = (h.Zeros<float>(n), h.Zeros<float>(n));
            var dx0 = h.Up(x);
            Kernels.Dropout.Forward(h.Host, dx0, y, 0.3f, 99, 4, 5);
            Kernels.Dropout.Backward(h.Host, dx0, dx, 0.3f, 99, 4, 5);
            var (ry, rdx) = (new float[n], new float[n]);
            DropoutReference.ForwardReference(x, ry, 0.3f, 99, 4, 5);
            DropoutReference.BackwardReference(x, rdx, 0.3f, 99, 4, 5);
            h.Compare("forward", h.Down(y), ry, 0, SameRtol);
            h.Compare("backward", h.Down(dx), rdx, 0, SameRtol);
        });
    }

    private static void Embedding(Harness h)
    {
        int v = h.Quick ? 17 : 1000, d = h.Quick ? 15 : 128, count = h.Quick ? 33 : 4096;
        var weight = h.Floats(v * d);
        var idx = h.Ints(count, 0, v);
        var dy = h.Floats(count * d);
        h.Run("forward", () =>
        {
            var y = h.Zeros<float>(count * d);
            Kernels.Embedding.Forward(h.Host, h.Up(idx), h.Up(weight), y, v, d, h.Zeros<int>(2));
            var r = new float[count * d];
            EmbeddingReference.ForwardReference(idx, weight, r, v, d);
            h.Compare("forward", h.Down(y), r, 0, 0);
        });
        h.Run("backward", () =>
        {
            var dw = h.Zeros<float>(v * d);
            Kernels.Embedding.Backward(h.Host, h.Up(idx), h.Up(dy), dw, v, d, 0);
            var r = new double[v * d];
            EmbeddingReference.BackwardReference(idx, dy, r, v, d, 0);
            h.Compare("backward", h.Down(dw), r, SumAtolPerTerm * Math.Max(1, count / v), SumRtol);
        });
    }

    private static void Concat(Harness h)
    {
        int outer = h.Quick ? 5 : 64;
        int[] widths = h.Quick ? [3, 1, 7] : [100, 1, 257];
        int yWidth = widths.Sum();
        var xs = widths.Select(w => h.Floats(outer * w)).ToArray();
        h.Run("forward + backward", () =>
        {
            var y = h.Zeros<float>(outer * yWidth);
            int offset = 0;
            for (int i = 0; i < widths.Length; i++)
            {
                Kernels.Concat.Forward(h.Host, h.Up(xs[i]), y, outer, widths[i], yWidth, offset);
                offset += widths[i];
            }

            var ry = new float[outer * yWidth];
            ConcatReference.ForwardReference(xs, widths, outer, ry);
            h.Compare("forward", h.Down(y), ry, 0, 0);

            var dy = h.Floats(outer * yWidth);
            var ddy = h.Up(dy);
            var rdx = ConcatReference.BackwardReference(dy, widths, outer);
            offset = 0;
            for (int i = 0; i < widths.Length; i++)
            {
                var dx = h.Zeros<float>(outer * widths[i]);
                Kernels.Concat.Backward(h.Host, ddy, dx, outer, widths[i], yWidth, offset);
                h.Compare($"backward part {i}", h.Down(dx), rdx[i], 0, 0);
                offset += widths[i];
            }
        });
    }

    private static void Losses(Harness h, int n)
    {
        var x = h.Floats(n, -3f, 3f);
        var t = h.Floats(n, -3f, 3f);
        var p01 = h.Floats(n, 0f, 1f);
        Loss(h, "mse", new MseLossOp(), LossesReference.MseReference, LossesReference.MseGradReference, x, t);
        Loss(h, "l1", new L1LossOp(), LossesReference.L1Reference, LossesReference.L1GradReference, x, t);
        Loss(h, "huber", new HuberLossOp(1.5f), (a, b) => LossesReference.HuberReference(a, b, 1.5), (a, b) => LossesReference.HuberGradReference(a, b, 1.5), x, t);
        Loss(h, "smooth_l1", new SmoothL1LossOp(0.5f), (a, b) => LossesReference.SmoothL1Reference(a, b, 0.5), (a, b) => LossesReference.SmoothL1GradReference(a, b, 0.5), x, t);
        Loss(h, "bce_with_logits", new BceWithLogitsOp(), (a, b) => LossesReference.BceWithLogitsReference(a, b), (a, b) => LossesReference.BceWithLogitsGradReference(a, b), x, p01);
    }

    private static void Loss<TOp>(Harness h, string name, TOp op, Func<double, double, double> loss, Func<double, double, double> grad, float[] x, float[] t)
        where TOp : struct, ILossOp
    {
        int n = x.Length;
        foreach (var reduction in new[] { LossReduction.Mean, LossReduction.Sum, LossReduction.None })
        {
            string tag = $"{name} {reduction.ToString().ToLowerInvariant()}";
            h.Run(tag, () =>
            {
                var (dxx, dt) = (h.Up(x), h.Up(t));
                var losses = h.Zeros<float>(n);
                var result = h.Zeros<float>(1);
                var scratch = h.Zeros<float>(Math.Max(1, Kernels.Losses.ScratchLength(h.Host, n, reduction)));
                Kernels.Losses.Forward(h.Host, op, dxx, dt, default, losses, result, scratch, reduction);
                var rl = new double[n];
                LossesReference.ForwardReference((a, b, _) => loss(a, b), x, t, [], rl);
                h.Compare(tag + " losses", h.Down(losses), rl, Tolerances.Losses.ForwardAtol, Tolerances.Losses.ForwardRtol);
                if (reduction != LossReduction.None)
                    h.Compare(tag + " reduced", h.Down(result), new[] { LossesReference.ReduceReference(rl, reduction) }, Tolerances.Losses.ReduceAtol * (reduction == LossReduction.Sum ? n : 1), Tolerances.Losses.ReduceRtol);

                var dLoss = reduction == LossReduction.None ? h.Floats(n) : [0.7f];
                var dz = h.Zeros<float>(n);
                Kernels.Losses.Backward(h.Host, op, dxx, dt, default, h.Up(dLoss), dz, reduction);
                var rdz = new double[n];
                LossesReference.BackwardReference((a, b, _) => grad(a, b), x, t, [], dLoss, reduction, rdz);
                h.Compare(tag + " backward", h.Down(dz), rdz, Tolerances.Losses.BackwardAtol, Tolerances.Losses.BackwardRtol);
            });
        }
    }

    private static void Augment(Harness h)
    {
        int n = h.Quick ? 3 : 64, c = 3, hh = h.Quick ? 9 : 32, w = h.Quick ? 8 : 32;
        var x = h.Floats(n * c * hh * w);
        void One(string name, int outLength, Action<ArrayView<float>, ArrayView<float>> kernel, Action<float[], float[]> reference, double atol, double rtol) =>
            h.Run(name, () =>
            {
                var y = h.Zeros<float>(outLength);
                kernel(h.Up(x), y);
                var r = new float[outLength];
                reference(x, r);
                h.Compare(name, h.Down(y), r, atol, rtol);
            });
        One("flip", x.Length, (a, y) => Kernels.Augment.Flip(h.Host, a, y, n, c, hh, w, 0.5f, 7, 1, 2), (a, r) => AugmentReference.FlipReference(a, r, n, c, hh, w, 0.5f, 7, 1, 2), 0, 0);
        One("crop", n * c * (hh - 1) * (w - 2), (a, y) => Kernels.Augment.Crop(h.Host, a, y, n, c, hh, w, hh - 1, w - 2, 2, 7, 1, 2), (a, r) => AugmentReference.CropReference(a, r, n, c, hh, w, hh - 1, w - 2, 2, 7, 1, 2), 0, 0);
        One("rotate", x.Length, (a, y) => Kernels.Augment.Rotate(h.Host, a, y, n, c, hh, w, -15f, 15f, 7, 1, 2), (a, r) => AugmentReference.RotateReference(a, r, n, c, hh, w, -15f, 15f, 7, 1, 2), Tolerances.Augment.RotateAtol, 0);
        var legacy = new JitterRanges(0.8f, 1.2f, 0.8f, 1.2f, 0.7f, 1.3f, 0f, 0f, 0, 0);
        One("jitter", x.Length, (a, y) => Kernels.Augment.Jitter(h.Host, a, y, h.Zeros<float>(Kernels.Augment.JitterScratchLength(n, c, hh, w)), n, c, hh, w, legacy, 7, 1, 2), (a, r) => AugmentReference.JitterReference(a, r, n, c, hh, w, legacy, 7, 1, 2), Tolerances.Augment.JitterAtol, Tolerances.Augment.JitterRtol);
        One("vflip", x.Length, (a, y) => Kernels.Augment.VerticalFlip(h.Host, a, y, n, c, hh, w, 0.5f, 7, 1, 2), (a, r) => AugmentReference.VerticalFlipReference(a, r, n, c, hh, w, 0.5f, 7, 1, 2), 0, 0);
        var pixels = x.Select(v => (v + 1f) / 2f).ToArray();
        var color = new JitterRanges(0.6f, 1.4f, 0.6f, 1.4f, 0.5f, 1.5f, -0.2f, 0.2f, 1, 1);
        h.Run("color jitter", () =>
        {
            var y = h.Zeros<float>(x.Length);
            Kernels.Augment.Jitter(h.Host, h.Up(pixels), y, h.Zeros<float>(Kernels.Augment.JitterScratchLength(n, c, hh, w)), n, c, hh, w, color, 7, 1, 2);
            var r = new float[x.Length];
            AugmentReference.JitterReference(pixels, r, n, c, hh, w, color, 7, 1, 2);
            h.Compare("color jitter", h.Down(y), r, Tolerances.Augment.ColorAtol, 0);
        });
        int oh = hh + 3, ow = w - 3;
        var whole = AugmentReference.BoxesReference(n, hh, w, 0, 1, 1, 1, 1, 1, 7, 1, 2);
        One("resize", n * c * oh * ow, (a, y) => Kernels.Augment.Resize(h.Host, a, y, h.Zeros<int>(Kernels.Augment.BoxScratchLength(n)), n, c, hh, w, oh, ow), (a, r) => AugmentReference.ResampleReference(a, r, whole, n, c, hh, w, oh, ow), Tolerances.Augment.ResampleAtol, 0);
        var crops = AugmentReference.BoxesReference(n, hh, w, 1, 0.08, 1, 3 / 4.0, 4 / 3.0, 1, 7, 1, 2);
        One("resized crop", n * c * oh * ow, (a, y) => Kernels.Augment.ResizedCrop(h.Host, a, y, h.Zeros<int>(Kernels.Augment.BoxScratchLength(n)), n, c, hh, w, oh, ow, 0.08f, 1f, 3f / 4f, 4f / 3f, 7, 1, 2), (a, r) => AugmentReference.ResampleReference(a, r, crops, n, c, hh, w, oh, ow), Tolerances.Augment.ResampleAtol, 0);
        var erased = AugmentReference.BoxesReference(n, hh, w, 2, 0.02, 0.33, 0.3, 3.3, 0.5, 7, 1, 2);
        One("erase", x.Length, (a, y) => Kernels.Augment.Erase(h.Host, a, y, h.Zeros<int>(Kernels.Augment.BoxScratchLength(n)), n, c, hh, w, 0.5f, 0.02f, 0.33f, 0.3f, 3.3f, 0f, 7, 1, 2), (a, r) => AugmentReference.EraseReference(a, r, erased, n, c, hh, w, 0f), 0, 0);
        float[] mean = [0.4914f, 0.4822f, 0.4465f], std = [0.2470f, 0.2435f, 0.2616f];
        One("normalize", x.Length, (a, y) => Kernels.Augment.Normalize(h.Host, a, y, h.Up(mean.Concat(std).ToArray()), n, c, hh, w), (a, r) => AugmentReference.NormalizeReference(a, r, mean, std, n, hh, w), 0, Tolerances.Augment.NormalizeRtol);
        One("mixup", x.Length, (a, y) => Kernels.Augment.MixUp(h.Host, a, y, n, c, hh, w, 0.3), (a, r) => AugmentReference.MixUpReference(a, r, n, 0.3), Tolerances.Augment.MixAtol, 0);
        var box = (X1: 1, Y1: 2, X2: w - 2, Y2: hh - 1);
        One("cutmix", x.Length, (a, y) => Kernels.Augment.CutMix(h.Host, a, y, n, c, hh, w, box.X1, box.Y1, box.X2, box.Y2), (a, r) => AugmentReference.CutMixReference(a, r, n, hh, w, box), 0, 0);
        h.Run("mix targets", () =>
        {
            const int classes = 10;
            var labels = h.Ints(n, 0, classes);
            var t = h.Zeros<float>(n * classes);
            Kernels.Augment.MixTargets(h.Host, h.Up(labels), t, n, classes, 0.3);
            h.Compare("mix targets", h.Down(t), AugmentReference.MixTargetsReference(labels, classes, 0.3), Tolerances.Augment.MixAtol, 0);
        });
    }

    private static void Metrics(Harness h)
    {
        int n = h.Quick ? 33 : 1024, c = h.Quick ? 10 : 1000;
        var logits = h.Floats(n * c, -5f, 5f);
        var targets = h.Ints(n, 0, c);
        foreach (int k in new[] { 1, 5 })
        {
            h.Run($"top{k}", () =>
            {
                var hit = h.Zeros<float>(n);
                Kernels.Metrics.TopKHits(h.Host, h.Up(logits), h.Up(targets), hit, n, c, k);
                var r = new float[n];
                MetricsReference.TopKHitsReference(logits, targets, r, n, c, k);
                h.Compare($"top{k}", h.Down(hit), r, 0, 0);
            });
        }

        // Coarse logits tie often, and some are NaN: a NaN logit is never greater and a NaN target
        // is a miss (ILGPU's OpenCL backend drops a float branch's unordered flag, which once
        // counted NaN logits as greater there).
        var coarse = Array.ConvertAll(h.Ints(n * c, -3, 4), v => (float)v);
        for (int i = 0; i < coarse.Length; i += 7)
            coarse[i] = float.NaN;
        h.Run("top2 ties and NaN", () =>
        {
            var hit = h.Zeros<float>(n);
            Kernels.Metrics.TopKHits(h.Host, h.Up(coarse), h.Up(targets), hit, n, c, 2);
            var r = new float[n];
            MetricsReference.TopKHitsReference(coarse, targets, r, n, c, 2);
            h.Compare("top2 ties and NaN", h.Down(hit), r, 0, 0);
        });

        // Multi-label: logits on a grid of halves keep sigmoid away from the thresholds, where a
        // GPU's exp may decide the other way; targets 0 or 1.
        int labels = h.Quick ? 7 : 100;
        var multi = h.Ints(n * labels, -10, 11);
        var x = Array.ConvertAll(multi, v => v / 2f);
        var truth = Array.ConvertAll(h.Ints(n * labels, 0, 2), v => (float)v);
        var thresholds = Enumerable.Range(0, labels).Select(j => j % 3 == 0 ? 0.3f : j % 3 == 1 ? 0.5f : 0.8f).ToArray();
        h.Run("multilabel counts", () =>
        {
            var counts = h.Zeros<float>(3 * labels);
            Kernels.Metrics.MultiLabelCounts(h.Host, h.Up(x), h.Up(truth), h.Up(thresholds), counts, n, labels);
            h.Compare("multilabel counts", h.Down(counts), MetricsReference.MultiLabelCountsReference(x, truth, thresholds, n, labels), 0, 0);
        });
        h.Run("exact matches", () =>
        {
            var match = h.Zeros<float>(n);
            Kernels.Metrics.ExactMatches(h.Host, h.Up(x), h.Up(truth), h.Up(thresholds), match, n, labels);
            h.Compare("exact matches", h.Down(match), MetricsReference.ExactMatchesReference(x, truth, thresholds, n, labels), 0, 0);
        });
    }

    private static void WeightAverage(Harness h, int n)
    {
        foreach (float t in new[] { 0.001f, 0.5f, 0.9f })
        {
            h.Run($"lerp t {t}", () =>
            {
                var a = h.Floats(n);
                var w = h.Floats(n);
                var da = h.Up(a);
                Kernels.WeightAverage.Lerp(h.Host, da, h.Up(w), t);
                // Three roundings, each at most half an ulp of |a| + |w| <= 2.
                h.Compare($"lerp t {t}", h.Down(da), WeightAverageReference.LerpReference(a, w, t), Tolerances.WeightAverage.LerpRtol * 2, 0);
            });
        }
    }
}
