namespace IlgpuTrain.Properties.Kernels.Runtime;

/// <summary>
/// The CPU accelerator's managed fast paths (CpuLoops and the launchers routed through it) are
/// bitwise equal to the ILGPU kernels they replace, on the same inputs, special values included.
/// </summary>
public class CpuLoopsProperties
{
    // Lengths: the usual edges, and now and then one past the parallel threshold (split over threads).
    private static Gen<int> Lengths { get; } =
        Gen.OneOf(Gens.Length, Gens.Length, Gens.Length, Gen.Elements(CpuLoops.ParallelThreshold + 7, (2 * CpuLoops.ParallelThreshold) + 129));

    private static readonly float[] Specials = [float.NaN, float.PositiveInfinity, float.NegativeInfinity, -0f, 0f, 1e-40f, -1e-40f, 3e38f];

    // Uniform values with a few specials (NaN, infinities, signed zeros, subnormals) sprinkled in.
    private static float[] Values(int seed, int n, float lo, float hi, bool specials = true)
    {
        var v = Gens.Random(seed, n, lo, hi);
        if (specials && n > 0)
        {
            var r = new Random(seed);
            for (int k = 0; k < Math.Min(n, 8); k++)
                v[r.Next(n)] = Specials[r.Next(Specials.Length)];
        }

        return v;
    }

    // Runs launch twice on fresh copies of the inputs, managed path then ILGPU kernels, and
    // compares every buffer (inputs are often outputs) bit for bit.
    private static Property Same(string what, float[][] inputs, Action<KernelHost, ArrayView<float>[]> launch) =>
        KernelParity.Same(what, inputs, launch);

    private static Property Unary(string what, Action<KernelHost, ArrayView<float>, ArrayView<float>> launch, float range = 8f) =>
        Prop.ForAll(Lengths.ToArbitrary(), Gen.Choose(0, 1_000_000).ToArbitrary(), Gen.Elements(false, true).ToArbitrary(), (n, seed, inPlace) =>
            Same($"{what} n = {n} in place = {inPlace}", [Values(seed, n, -range, range), new float[n]], (h, v) =>
                launch(h, v[0], inPlace ? v[0] : v[1])));

    private static Property Binary(string what, Action<KernelHost, ArrayView<float>, ArrayView<float>, ArrayView<float>> launch, float range = 8f) =>
        Prop.ForAll(Lengths.ToArbitrary(), Gen.Choose(0, 1_000_000).ToArbitrary(), Gen.Elements(false, true).ToArbitrary(), (n, seed, inPlace) =>
            Same($"{what} n = {n} in place = {inPlace}", [Values(seed, n, -range, range), Values(seed + 1, n, -range, range), new float[n]], (h, v) =>
                launch(h, v[0], v[1], inPlace ? v[1] : v[2])));

    [Property(MaxTest = 30)]
    public Property Add_managed_equals_kernel() => Binary("Add", Elementwise.Add);

    [Property(MaxTest = 30)]
    public Property Sub_managed_equals_kernel() => Binary("Sub", Elementwise.Sub);

    [Property(MaxTest = 30)]
    public Property Mul_managed_equals_kernel() => Binary("Mul", Elementwise.Mul);

    [Property(MaxTest = 30)]
    public Property Scale_managed_equals_kernel() =>
        Prop.ForAll(Gens.Float(-4, 4).ToArbitrary(), alpha => Unary($"Scale alpha = {alpha}", (h, x, y) => Elementwise.Scale(h, x, alpha, y)));

    [Property(MaxTest = 30)]
    public Property Axpy_managed_equals_kernel() =>
        Prop.ForAll(Lengths.ToArbitrary(), Gen.Choose(0, 1_000_000).ToArbitrary(), Gens.Float(-4, 4).ToArbitrary(), (n, seed, alpha) =>
            Same($"Axpy n = {n} alpha = {alpha}", [Values(seed, n, -8, 8), Values(seed + 1, n, -8, 8)], (h, v) => Elementwise.Axpy(h, alpha, v[0], v[1])));

    [Property(MaxTest = 20)]
    public Property Fill_and_Broadcast_managed_equal_kernel() =>
        Prop.ForAll(Lengths.ToArbitrary(), Gen.Choose(0, 1_000_000).ToArbitrary(), Gens.Float(-4, 4).ToArbitrary(), (n, seed, alpha) =>
            Same($"Fill n = {n} value = {alpha}", [Values(seed, n, -8, 8)], (h, v) => Elementwise.Fill(h, v[0], alpha))
                .And(Same($"Broadcast n = {n} alpha = {alpha}", [Values(seed, n, -8, 8), [Gens.Random(seed, 1, -3, 3)[0]]], (h, v) => Elementwise.Broadcast(h, v[1], alpha, v[0]))));

    [Property(MaxTest = 30)]
    public Property Relu_managed_equals_kernel() => Unary("Relu", Activations.Relu);

    [Property(MaxTest = 30)]
    public Property ReluBackward_managed_equals_kernel() => Binary("ReluBackward", Activations.ReluBackward);

    [Property(MaxTest = 20)]
    public Property Other_activations_managed_equal_kernels() =>
        Unary("LeakyRelu", (h, x, y) => Activations.LeakyRelu(h, x, y, 0.2f))
            .And(Binary("LeakyReluBackward", (h, x, dy, dx) => Activations.LeakyReluBackward(h, x, dy, dx, 0.2f)))
            .And(Unary("Gelu", (h, x, y) => Activations.Gelu(h, x, y)))
            .And(Binary("GeluBackward", (h, x, dy, dx) => Activations.GeluBackward(h, x, dy, dx)))
            .And(Unary("GeluTanh", (h, x, y) => Activations.Gelu(h, x, y, GeluApproximation.Tanh)))
            .And(Binary("GeluTanhBackward", (h, x, dy, dx) => Activations.GeluBackward(h, x, dy, dx, GeluApproximation.Tanh)))
            .And(Unary("Tanh", Activations.Tanh))
            .And(Binary("TanhBackward", Activations.TanhBackward))
            .And(Unary("Sigmoid", Activations.Sigmoid))
            .And(Binary("SigmoidBackward", Activations.SigmoidBackward))
            .And(Unary("Silu", Activations.Silu))
            .And(Binary("SiluBackward", Activations.SiluBackward));

    private static Gen<(int N, int F, int Seed, bool InPlace)> BiasRows { get; } =
        from n in Gens.PositiveDim
        from f in Gen.OneOf(Gens.PositiveDim, Gen.Elements(1500, 4099))
        from seed in Gen.Choose(0, 1_000_000)
        from inPlace in Gen.Elements(false, true)
        select (n, f, seed, inPlace);

    private static Gen<(int N, int C, int S, int Seed)> BiasPlanes { get; } =
        from n in Gen.Choose(1, 40)
        from c in Gens.PositiveDim
        from s in Gen.OneOf(Gen.Choose(1, 20), Gen.Elements(7, 8, 9, 784))
        from seed in Gen.Choose(0, 1_000_000)
        select (n, c, s, seed);

    [Property(MaxTest = 30)]
    public Property BiasAdd_Forward_managed_equals_kernel() =>
        Prop.ForAll(BiasRows.ToArbitrary(), c =>
            Same($"BiasAdd.Forward {c}", [Values(c.Seed, c.N * c.F, -8, 8), Values(c.Seed + 1, c.F, -8, 8), new float[c.N * c.F]], (h, v) =>
                BiasAdd.Forward(h, v[0], v[1], c.InPlace ? v[0] : v[2], c.N, c.F)));

    [Property(MaxTest = 30)]
    public Property BiasAdd_ForwardChannels_managed_equals_kernel() =>
        Prop.ForAll(BiasPlanes.ToArbitrary(), c =>
            Same($"BiasAdd.ForwardChannels {c}", [Values(c.Seed, c.N * c.C * c.S, -8, 8), Values(c.Seed + 1, c.C, -8, 8), new float[c.N * c.C * c.S]], (h, v) =>
                BiasAdd.ForwardChannels(h, v[0], v[1], v[2], c.N, c.C, c.S)));

    private static Gen<(int N, int Seed, bool AmsGrad, bool Mask, int T, float Lr, float Wd, bool Decoupled)> AdamCases { get; } =
        from n in Lengths
        from seed in Gen.Choose(0, 1_000_000)
        from amsgrad in Gen.Elements(false, true)
        from mask in Gen.Elements(false, true)
        from t in Gen.Choose(1, 2000)
        from lr in Gens.Float(0f, 0.5f)
        from wd in Gens.Float(0f, 0.3f)
        from decoupled in Gen.Elements(false, true)
        select (n, seed, amsgrad, mask, t, lr, wd, decoupled);

    [Property(MaxTest = 30)]
    public Property AdamUpdate_managed_equals_kernel() =>
        Prop.ForAll(AdamCases.ToArbitrary(), c =>
        {
            var adam = AdamScalars.For(0.9, 0.999, 1e-8, 0, c.T);
            var s = new AdamStepScalars(adam, c.Lr, c.Decoupled ? 0f : c.Wd, c.Decoupled ? (float)(1 - (c.Lr * (double)c.Wd)) : 1f);
            int nv = c.AmsGrad ? c.N : 0;
            var maskBytes = c.Mask ? Gens.Random(c.Seed + 9, c.N, 0, 1).Select(x => (byte)(x < 0.5f ? 0 : 1)).ToArray() : [];
            var d = Devices.Cpu;
            using var mb = d.Pool.Rent(Math.Max(1, maskBytes.Length));
            var mask = maskBytes.Length == 0 ? default : mb.View<byte>(maskBytes.Length);
            if (maskBytes.Length > 0)
                Transfer.ToDevice<byte>(d.Stream, maskBytes, mask);
            float[][] inputs = [Values(c.Seed, c.N, -3, 3), Values(c.Seed + 1, c.N, -2, 2), Values(c.Seed + 2, c.N, -1, 1, false), Values(c.Seed + 3, c.N, 0, 1, false), Values(c.Seed + 4, nv, 0, 1, false)];
            return Same($"AdamUpdate.Step {c}", inputs, (h, v) => AdamUpdate.Step(h, v[0], v[1], v[2], v[3], v[4], mask, s))
                .And(Same($"AdamUpdate.Direction {c}", inputs[1..], (h, v) => AdamUpdate.Direction(h, v[0], v[1], v[2], v[3], adam)));
        });

    private static readonly (string Name, Action<KernelHost, ArrayView<float>, ArrayView<float>, ArrayView<float>> Flat, Action<KernelHost, ArrayView<float>, int, int, ArrayView<float>> Rows, Action<KernelHost, ArrayView<float>, int, int, ArrayView<float>> Columns)[] Reducers =
    [
        ("Sum", (h, x, r, s) => Reductions.Sum(h, x, r, s), Reductions.SumRows, Reductions.SumColumns),
        ("Mean", (h, x, r, s) => Reductions.Mean(h, x, r, s), Reductions.MeanRows, Reductions.MeanColumns),
        ("Max", (h, x, r, s) => Reductions.Max(h, x, r, s), Reductions.MaxRows, Reductions.MaxColumns),
        ("SumOfSquares", (h, x, r, s) => Reductions.SumOfSquares(h, x, r, s), Reductions.SumOfSquaresRows, Reductions.SumOfSquaresColumns),
        ("L2Norm", (h, x, r, s) => Reductions.L2Norm(h, x, r, s), Reductions.L2NormRows, Reductions.L2NormColumns),
    ];

    private static Gen<(int N, int Seed, int Which, bool Specials)> FlatCases { get; } =
        from n in Lengths.Select(n => Math.Max(1, n))
        from seed in Gen.Choose(0, 1_000_000)
        from which in Gen.Choose(0, Reducers.Length - 1)
        from specials in Gen.Elements(false, true)
        select (n, seed, which, specials);

    // The managed reductions are the CPU algorithm of their own (fixed chains, not the kernels'
    // groups; both are checked against the references in ReductionsProperties). What they promise
    // beyond the reference bound is that threads never change a rounding: the same bits on one
    // worker as on every core.
    private static readonly Lazy<KernelHost> OneWorker = new(() => new KernelHost(
        Devices.Cpu.Accelerator, Devices.Cpu.Stream, Devices.Cpu.Kernels.Launch with { MaxGroups = 1 }));

    private static Property SameOnAnyWorkers(string what, float[][] inputs, Action<KernelHost, ArrayView<float>[]> launch)
    {
        float[][] Go(KernelHost host)
        {
            var d = Devices.Cpu;
            var bufs = inputs.Select(d.Upload).ToArray();
            try
            {
                launch(host, bufs.Select(t => t.View<float>()).ToArray());
                return bufs.Select(t => t.ToHost()).ToArray();
            }
            finally
            {
                foreach (var t in bufs)
                    t.Dispose();
            }
        }

        float[][] one = Go(OneWorker.Value), all = Go(Devices.Cpu.Kernels);
        for (int b = 0; b < one.Length; b++)
        {
            for (int i = 0; i < one[b].Length; i++)
            {
                if (!Bits.Equal(one[b][i], all[b][i]))
                    return false.Label($"{what}: buffer {b} element {i}: one worker {one[b][i]:R}, {Devices.Cpu.Kernels.Launch.MaxGroups} workers {all[b][i]:R}");
            }
        }

        return true.Label(what);
    }

    [Property(MaxTest = 30)]
    public Property Flat_reductions_managed_are_bitwise_the_same_on_any_number_of_workers() =>
        Prop.ForAll(FlatCases.ToArbitrary(), c =>
        {
            var (name, flat, _, _) = Reducers[c.Which];
            int partials = Reductions.ScratchLength(Devices.Cpu.Kernels, c.N);
            return SameOnAnyWorkers($"{name} {c}", [Values(c.Seed, c.N, -8, 8, c.Specials), [0f], new float[partials]], (h, v) => flat(h, v[0], v[1], v[2]));
        });

    private static Gen<(int Rows, int Cols, int Seed, int Which, bool Specials)> Matrices { get; } =
        from rows in Gen.OneOf(Gens.PositiveDim, Gen.Elements(300, 1100))
        from cols in Gen.OneOf(Gens.PositiveDim, Gen.Elements(255, 257, 600))
        from seed in Gen.Choose(0, 1_000_000)
        from which in Gen.Choose(0, Reducers.Length - 1)
        from specials in Gen.Elements(false, true)
        select (rows, cols, seed, which, specials);

    [Property(MaxTest = 40)]
    public Property Row_and_column_reductions_managed_are_bitwise_the_same_on_any_number_of_workers() =>
        Prop.ForAll(Matrices.ToArbitrary(), c =>
        {
            var (name, _, rowsOp, columnsOp) = Reducers[c.Which];
            float[] x = Values(c.Seed, c.Rows * c.Cols, -8, 8, c.Specials);
            return SameOnAnyWorkers($"{name}Rows {c}", [x, new float[c.Rows]], (h, v) => rowsOp(h, v[0], c.Rows, c.Cols, v[1]))
                .And(SameOnAnyWorkers($"{name}Columns {c}", [x, new float[c.Cols]], (h, v) => columnsOp(h, v[0], c.Rows, c.Cols, v[1])));
        });

    // Values near float's limit with mixed signs: whether a running sum overflows depends on the
    // order of the terms, which compensation cannot hide, so these catch a reordering between splits.
    private static float[] OrderSensitive(int seed, int n)
    {
        float[] pool = [3e38f, -3e38f, 2e38f, -2e38f, 1f, -1f];
        var r = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => pool[r.Next(pool.Length)]).ToArray();
    }

    [Property(MaxTest = 40)]
    public Property Reductions_keep_their_order_of_terms_on_any_number_of_workers() =>
        Prop.ForAll(Matrices.ToArbitrary(), c =>
        {
            float[] x = OrderSensitive(c.Seed, c.Rows * c.Cols);
            int partials = Reductions.ScratchLength(Devices.Cpu.Kernels, x.Length);
            return SameOnAnyWorkers($"SumRows {c}", [x, new float[c.Rows]], (h, v) => Reductions.SumRows(h, v[0], c.Rows, c.Cols, v[1]))
                .And(SameOnAnyWorkers($"SumColumns {c}", [x, new float[c.Cols]], (h, v) => Reductions.SumColumns(h, v[0], c.Rows, c.Cols, v[1])))
                .And(SameOnAnyWorkers($"Sum {c}", [x, [0f], new float[partials]], (h, v) => Reductions.Sum(h, v[0], v[1], v[2])));
        });

    private static Gen<(int N, int Seed, bool Mask, float Lr, float Wd, float Mu, float Dampening, bool Nesterov, bool First)> SgdCases { get; } =
        from n in Lengths
        from seed in Gen.Choose(0, 1_000_000)
        from mask in Gen.Elements(false, true)
        from lr in Gens.Float(0f, 0.5f)
        from wd in Gen.OneOf(Gen.Constant(0f), Gens.Float(0f, 0.3f))
        from mu in Gen.OneOf(Gen.Constant(0f), Gens.Float(0f, 0.99f))
        from dampening in Gen.OneOf(Gen.Constant(0f), Gens.Float(0f, 0.5f))
        from nesterov in Gen.Elements(false, true)
        from first in Gen.Elements(false, true)
        select (n, seed, mask, lr, wd, mu, dampening, nesterov && dampening == 0f, first);

    private static byte[] Mask(int seed, int n) => Gens.Random(seed, n, 0, 1).Select(x => (byte)(x < 0.5f ? 0 : 1)).ToArray();

    // Runs body with a device copy of mask bytes (an empty view when there are none).
    private static Property WithMask(byte[] bytes, Func<ArrayView<byte>, Property> body)
    {
        var d = Devices.Cpu;
        using var mb = d.Pool.Rent(Math.Max(1, bytes.Length));
        var mask = bytes.Length == 0 ? default : mb.View<byte>(bytes.Length);
        if (bytes.Length > 0)
            Transfer.ToDevice<byte>(d.Stream, bytes, mask);
        return body(mask);
    }

    [Property(MaxTest = 30)]
    public Property SgdUpdate_managed_equals_kernel() =>
        Prop.ForAll(SgdCases.ToArbitrary(), c => WithMask(c.Mask ? Mask(c.Seed + 9, c.N) : [], mask =>
        {
            float[][] inputs = [Values(c.Seed, c.N, -3, 3), Values(c.Seed + 1, c.N, -2, 2), Values(c.Seed + 2, c.N, -1, 1)];
            return Same($"SgdUpdate.Step {c}", inputs, (h, v) => SgdUpdate.Step(h, v[0], v[1], v[2], mask, c.Lr, c.Wd, c.Mu, c.Dampening, c.Nesterov, c.First))
                .And(Same($"SgdUpdate.Momentum {c}", inputs[1..], (h, v) => SgdUpdate.Momentum(h, v[0], v[1], c.Mu, c.Dampening, c.Nesterov, c.First)));
        }));

    private static Gen<(int N, int Seed, bool Centered, bool Momentum)> RmsCases { get; } =
        from n in Lengths
        from seed in Gen.Choose(0, 1_000_000)
        from centered in Gen.Elements(false, true)
        from momentum in Gen.Elements(false, true)
        select (n, seed, centered, momentum);

    [Property(MaxTest = 30)]
    public Property RmsUpdate_and_AdagradUpdate_managed_equal_kernels() =>
        Prop.ForAll(RmsCases.ToArbitrary(), c =>
        {
            var (n, seed, centered, momentum) = c;
            var s = new RmsScalars(0.99f, 0.01f, 1e-8f, momentum ? 0.9f : 0f);
            string what = $"n = {n} centered = {centered} momentum = {momentum}";
            float[][] inputs = [Values(seed, n, -3, 3), Values(seed + 1, n, -2, 2), Values(seed + 2, n, 0, 1, false), Values(seed + 3, centered ? n : 0, -1, 1, false), Values(seed + 4, momentum ? n : 0, -1, 1, false)];
            return Same($"RmsUpdate.Step {what}", inputs, (h, v) => RmsUpdate.Step(h, v[0], v[1], v[2], v[3], v[4], new RmsStepScalars(s, 0.01f, 0.001f)))
                .And(Same($"RmsUpdate.Direction {what}", inputs[1..], (h, v) => RmsUpdate.Direction(h, v[0], v[1], v[2], v[3], s)))
                .And(Same($"AdagradUpdate.Step {what}", inputs[..3], (h, v) => AdagradUpdate.Step(h, v[0], v[1], v[2], 0.01f, 0.001f, 1e-10f)))
                .And(Same($"AdagradUpdate.Direction {what}", inputs[1..3], (h, v) => AdagradUpdate.Direction(h, v[0], v[1], 1e-10f)));
        });

    [Property(MaxTest = 30)]
    public Property WeightDecay_managed_equals_kernel() =>
        Prop.ForAll(Lengths.ToArbitrary(), Gen.Choose(0, 1_000_000).ToArbitrary(), Gen.Elements(false, true).ToArbitrary(), (n, seed, useMask) =>
            WithMask(useMask ? Mask(seed + 9, n) : [], mask =>
                Same($"WeightDecay.Add n = {n} mask = {useMask}", [Values(seed, n, -3, 3), Values(seed + 1, n, -3, 3)], (h, v) => WeightDecay.Add(h, v[0], v[1], 0.05f, mask))));

    private static Gen<(int N, int Seed, float Norm, float MaxNorm)> ClipCases { get; } =
        from n in Lengths
        from seed in Gen.Choose(0, 1_000_000)
        from norm in Gen.OneOf(Gens.Float(0f, 20f), Gen.Elements(float.NaN, float.PositiveInfinity))
        from maxNorm in Gen.Elements(0f, 1f, 5f, float.PositiveInfinity)
        select (n, seed, norm, maxNorm);

    [Property(MaxTest = 30)]
    public Property Clip_managed_equals_kernel() =>
        Prop.ForAll(ClipCases.ToArbitrary(), c =>
            Same($"Clip.ByNorm {c}", [Values(c.Seed, c.N, -8, 8), [c.Norm]], (h, v) => Clip.ByNorm(h, v[0], v[1], c.MaxNorm))
                .And(Same($"Clip.ByValue {c}", [Values(c.Seed, c.N, -8, 8)], (h, v) => Clip.ByValue(h, v[0], -2.5f, 4f))));

    private static Gen<(int N, int Seed, bool Specials, float InvScale)> UnscaleCases { get; } =
        from n in Lengths
        from seed in Gen.Choose(0, 1_000_000)
        from specials in Gen.Elements(false, true)
        from invScale in Gen.Elements(1f, 1f / 1024, 1f / 65536)
        select (n, seed, specials, invScale);

    [Property(MaxTest = 30)]
    public Property LossScale_Unscale_managed_equals_kernel() =>
        Prop.ForAll(UnscaleCases.ToArbitrary(), c =>
        {
            var grads = Values(c.Seed, c.N, -8000, 8000, c.Specials);
            int FoundOf(Device d)
            {
                using var g = d.Upload(grads);
                using var found = d.Upload(new int[1]);
                LossScale.Unscale(d.Kernels, g.View<float>(), c.InvScale, found.View<int>());
                return found.ToHost<int>()[0];
            }

            int managed = FoundOf(Devices.Cpu), kernel = FoundOf(Devices.CpuKernels), expected = grads.Any(x => !float.IsFinite(x * c.InvScale)) ? 1 : 0;
            return KernelParity.Same($"LossScale.Unscale {c}", [grads], [new int[1]], (h, v, iv) => LossScale.Unscale(h, v[0], c.InvScale, iv[0]))
                .And((managed == kernel && managed == expected).Label($"found flag: managed {managed}, kernel {kernel}, data says {expected}"));
        });

    private static Gen<(int N, int Seed, float P, bool InPlace)> DropoutCases { get; } =
        from n in Lengths
        from seed in Gen.Choose(0, 1_000_000)
        from p in Gen.OneOf(Gen.Elements(0f, 1f, 0.5f), Gens.Float(0f, 1f))
        from inPlace in Gen.Elements(false, true)
        select (n, seed, p, inPlace);

    [Property(MaxTest = 30)]
    public Property Dropout_managed_equals_kernel() =>
        Prop.ForAll(DropoutCases.ToArbitrary(), c =>
            Same($"Dropout.Forward {c}", [Values(c.Seed, c.N, -8, 8), new float[c.N]], (h, v) => Dropout.Forward(h, v[0], c.InPlace ? v[0] : v[1], c.P, (ulong)c.Seed, 3, 7))
                .And(Same($"Dropout.Backward {c}", [Values(c.Seed, c.N, -8, 8), new float[c.N]], (h, v) => Dropout.Backward(h, v[0], v[1], c.P, (ulong)c.Seed, 3, 7))));
}
