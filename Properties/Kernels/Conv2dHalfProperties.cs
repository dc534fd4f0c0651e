using IlgpuTrain.Training.Conformance;

namespace IlgpuTrain.Properties.Kernels;

/// <summary>
/// The mixed-precision convolution: the CPU accelerator's per-image path equals the generic
/// launcher sequence bit for bit (forward, dX) and is deterministic (dW); every path equals the
/// float64 convolution of the half-rounded operands, the forward rounded to fp16.
/// </summary>
public class Conv2dHalfProperties
{
    // Float32 sums of at most C kh kw (forward, dX) or N Ho Wo (dW) products of halves in [-1, 1]
    // against float64 (as Conv2dProperties' GEMM tolerance).
    private const double GemmAtol = Tolerances.Gemm.Atol;
    private const double GemmRtol = Tolerances.Gemm.Rtol;

    // The forward output is rounded to fp16 after a float32 sum: a float rounding of the sum can move
    // it across a half tie, one fp16 ulp (2^-10 relative, 2^-24 absolute below 2^-14).
    private const double HalfRtol = 1.0 / 1024;

    [Property(MaxTest = 30)]
    public Property ForwardHalf_and_BackwardInputHalf_managed_equal_the_generic_path_bitwise() =>
        Prop.ForAll(Gens.ConvBatchCase.ToArbitrary(), Gen.Elements(true, false).ToArbitrary(), (c, withBias) =>
        {
            var g = c.Geometry;
            var x = GradCheck.Values(c.Seed, g.InputLength);
            var w = Halves(GradCheck.Values(c.Seed + 1, c.WShape.Length));
            float[] b = withBias ? GradCheck.Values(c.Seed + 2, c.O) : [];
            var dy = Halves(GradCheck.Values(c.Seed + 3, g.OutputLength(c.O)));
            var label = $"{c}, bias {withBias}";
            var forward = Same($"forward, {label}", [x, b, Garbage(g.OutputLength(c.O)), Garbage(g.ColumnsLength)], [w, new Half[g.ColumnsLength]], (k, f, h) =>
                Conv2d.ForwardHalf(k, f[0], h[0], f[1], f[2], f[3], h[1], g, c.O));
            var input = Same($"backward input, {label}", [Garbage(g.ColumnsLength), Garbage(g.InputLength)], [w, dy], (k, f, h) =>
                Conv2d.BackwardInputHalf(k, h[0], h[1], f[0], f[1], g, c.O));
            return forward.And(input);
        });

    [Property(MaxTest = 30)]
    public Property BackwardWeightHalf_managed_is_deterministic_and_equals_the_generic_path_within_rounding() =>
        Prop.ForAll(Gens.ConvBatchCase.ToArbitrary(), c =>
        {
            // The managed dW sums fixed image groups (not the generic path's one running sum): equal
            // within float rounding, and the same bits on every run.
            var g = c.Geometry;
            var dy = Halves(GradCheck.Values(c.Seed, g.OutputLength(c.O)));
            var cols = Halves(GradCheck.Values(c.Seed + 1, g.ColumnsLength));
            var w = new float[c.WShape.Length];
            float[] Run(bool kernels) =>
                Launch(kernels, [Garbage(w.Length)], [dy, cols], (k, f, h) => Conv2d.BackwardWeightHalf(k, h[0], h[1], f[0], g, c.O)).F[0];
            var managed = Run(false);
            var again = Run(false);
            var generic = Run(true);
            bool same = managed.Select(BitConverter.SingleToInt32Bits).SequenceEqual(again.Select(BitConverter.SingleToInt32Bits));
            return same.Label($"dW differs between two managed runs; {c}")
                .And(Close.All(managed, generic, GemmAtol, GemmRtol, $"dW managed vs generic; {c}"));
        });

    [Property(MaxTest = 25)]
    public Property Every_path_equals_the_float64_convolution_of_the_half_operands() =>
        Prop.ForAll(Gens.ConvKernelCase.ToArbitrary(), Gen.Elements(true, false).ToArbitrary(), (c, withBias) =>
        {
            // Conv2d's float references on the widened halves (the widening is exact, so only the
            // float32 accumulation and the fp16 output rounding differ).
            var g = c.Geometry;
            var x = GradCheck.Values(c.Seed, g.InputLength);
            var wh = Halves(GradCheck.Values(c.Seed + 1, c.WShape.Length));
            float[] b = withBias ? GradCheck.Values(c.Seed + 2, c.O) : [];
            var dyh = Halves(GradCheck.Values(c.Seed + 3, g.OutputLength(c.O)));
            float[] xr = Widen(Halves(x)), wr = Widen(wh), dyr = Widen(dyh);
            var y = new float[g.OutputLength(c.O)];
            var dx = new float[x.Length];
            var dw = new float[wh.Length];
            Conv2dReference.ForwardReference(xr, wr, [], y, g, c.O);
            Conv2dReference.BackwardReference(xr, wr, dyr, dx, dw, [], g, c.O);
            var result = true.Label($"{c}, bias {withBias}");
            foreach (var d in Devices.All)
            {
                using var tx = d.Upload(x);
                using var tb = d.Upload(b);
                using var tw = Tensor.FromHost(d, wh.AsSpan(), new Shape(wh.Length));
                using var tdy = Tensor.FromHost(d, dyh.AsSpan(), new Shape(dyh.Length));
                using var ty = d.Poisoned(y.Length);
                using var cols = d.Poisoned((int)g.ColumnsLength);
                using var colsH = Tensor.Empty(d, new Shape((int)g.ColumnsLength), DType.Float16);
                using var dcols = d.Poisoned((int)g.ColumnsLength);
                using var tdx = d.Poisoned(dx.Length);
                using var tdw = d.Poisoned(dw.Length);
                var k = d.Kernels;
                Conv2d.ForwardHalf(k, tx.View<float>(), tw.View<Half>(), tb.View<float>(), ty.View<float>(), cols.View<float>(), colsH.View<Half>(), g, c.O);
                Conv2d.BackwardWeightHalf(k, tdy.View<Half>(), colsH.View<Half>(), tdw.View<float>(), g, c.O);
                Conv2d.BackwardInputHalf(k, tw.View<Half>(), tdy.View<Half>(), dcols.View<float>(), tdx.View<float>(), g, c.O);
                var got = ty.ToHost();
                for (int i = 0; i < y.Length; i++)
                {
                    // Undo the bias (added after the rounding, in float32: exact to within 1 ulp of y).
                    double bias = withBias ? b[i / g.P % c.O] : 0;
                    double product = got[i] - bias, expected = y[i];
                    double allowed = GemmAtol + (HalfRtol * Math.Abs(expected)) + (1e-6 * Math.Abs(bias));
                    if (Math.Abs(product - expected) > allowed)
                        return result.And(false.Label($"y[{i}] on {k.Backend}: {got[i]:R} - b {bias:R} = {product:R}, expected {expected:R} (allowed {allowed:E3})"));
                    if (!withBias && BitConverter.SingleToUInt32Bits(got[i]) != BitConverter.SingleToUInt32Bits((float)(System.Half)got[i]))
                        return result.And(false.Label($"y[{i}] on {k.Backend} = {got[i]:R} is not an fp16 value"));
                }

                result = result
                    .And(Close.All(tdw.ToHost(), dw, GemmAtol, GemmRtol, $"dW on {k.Backend}"))
                    .And(Close.All(tdx.ToHost(), dx, GemmAtol, GemmRtol, $"dx on {k.Backend}"));
            }

            return result;
        });

    [Fact]
    public void Mismatched_half_buffers_name_the_op_and_both_sizes()
    {
        var d = Devices.Cpu;
        var g = new Conv2dGeometry(2, 3, 5, 5, 3, 3, 1, 1, 1, 1, 1, 1);
        using var x = d.Poisoned((int)g.InputLength);
        using var y = d.Poisoned((int)g.OutputLength(4));
        using var cols = d.Poisoned((int)g.ColumnsLength);
        using var colsH = Tensor.Empty(d, new Shape((int)g.ColumnsLength - 1), DType.Float16);
        using var w = Tensor.Empty(d, new Shape(4 * g.K), DType.Float16);
        var e = Assert.Throws<ArgumentException>(() => Conv2d.ForwardHalf(d.Kernels, x.View<float>(), w.View<Half>(), ArrayView<float>.Empty, y.View<float>(), cols.View<float>(), colsH.View<Half>(), g, 4));
        Assert.Contains("ForwardHalf", e.Message);
        Assert.Contains($"{g.ColumnsLength - 1}", e.Message);
        Assert.Contains($"{g.ColumnsLength}", e.Message);
    }

    private static Half[] Halves(float[] v) => v.Select(CastReference.ToHalfReference).ToArray();

    // Widening through the BCL's System.Half, independent of Cast.
    private static float[] Widen(Half[] h) => h.Select(v => (float)BitConverter.UInt16BitsToHalf((ushort)Interop.FloatAsInt(v))).ToArray();

    // Output buffers start as this pattern (NaNs among values) in both runs: an entry left unwritten shows.
    private static float[] Garbage(long n) =>
        Enumerable.Range(0, checked((int)n)).Select(i => i % 3 == 0 ? float.NaN : i * 0.25f).ToArray();

    private static (float[][] F, ushort[][] H) Launch(bool kernels, float[][] floats, Half[][] halves, Action<KernelHost, ArrayView<float>[], ArrayView<Half>[]> launch)
    {
        var d = kernels ? Devices.CpuKernels : Devices.Cpu;
        var ft = floats.Select(d.Upload).ToArray();
        var ht = halves.Select(h => Tensor.FromHost(d, h.AsSpan(), new Shape(h.Length))).ToArray();
        try
        {
            launch(d.Kernels, ft.Select(t => t.View<float>()).ToArray(), ht.Select(t => t.View<Half>()).ToArray());
            return (ft.Select(t => t.ToHost()).ToArray(), ht.Select(t => t.ToHost<Half>().Select(v => Interop.FloatAsInt(v)).ToArray()).ToArray());
        }
        finally
        {
            foreach (var t in ft.Concat(ht))
                t.Dispose();
        }
    }

    // Runs launch managed, then on the generic path (the CpuAccelerator backend), on fresh copies of the
    // buffers, and compares every buffer (float and half) bit for bit.
    private static Property Same(string what, float[][] floats, Half[][] halves, Action<KernelHost, ArrayView<float>[], ArrayView<Half>[]> launch)
    {
        var managed = Launch(false, floats, halves, launch);
        var kernel = Launch(true, floats, halves, launch);
        for (int b = 0; b < managed.F.Length; b++)
        {
            for (int i = 0; i < managed.F[b].Length; i++)
            {
                int mb = BitConverter.SingleToInt32Bits(managed.F[b][i]), kb = BitConverter.SingleToInt32Bits(kernel.F[b][i]);
                if (mb != kb)
                    return false.Label($"{what}: float buffer {b} element {i} of {managed.F[b].Length}: managed {managed.F[b][i]:R} (0x{mb:x8}), generic {kernel.F[b][i]:R} (0x{kb:x8})");
            }
        }

        for (int b = 0; b < managed.H.Length; b++)
        {
            for (int i = 0; i < managed.H[b].Length; i++)
            {
                if (managed.H[b][i] != kernel.H[b][i])
                    return false.Label($"{what}: half buffer {b} element {i} of {managed.H[b].Length}: managed 0x{managed.H[b][i]:x4}, generic 0x{kernel.H[b][i]:x4}");
            }
        }

        return true.Label(what);
    }
}
