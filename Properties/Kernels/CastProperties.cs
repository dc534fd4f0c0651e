using System.Runtime.Intrinsics;

namespace IlgpuTrain.Properties.Kernels;

/// <summary>
/// float/half casts: kernels equal their references and the BCL's IEEE binary16 conversion, bit
/// for bit: exhaustively for half to float and for every tie between neighbouring halves; the
/// managed CPU paths (TensorPrimitives' conversions) equal the ILGPU kernels bit for bit.
/// </summary>
public unsafe class CastProperties
{
    // Every finite half and its successor toward infinity (65536 past 65504, where rounding overflows).
    private static readonly float[] TieInputs = BuildTieInputs();

    [Fact]
    public void ToFloat_is_exact_for_all_65536_halves()
    {
        var halves = Enumerable.Range(0, 1 << 16).Select(b => Interop.IntAsFloat((ushort)b)).ToArray();
        foreach (var d in Devices.All)
        {
            using var x = Tensor.FromHost(d, halves.AsSpan(), new Shape(halves.Length));
            using var y = d.Poisoned(halves.Length);
            Cast.ToFloat(d.Kernels, x.View<Half>(), y.View<float>());
            var got = y.ToHost();
            for (int b = 0; b < halves.Length; b++)
            {
                uint expected = BitConverter.SingleToUInt32Bits((float)BitConverter.UInt16BitsToHalf((ushort)b));
                uint reference = BitConverter.SingleToUInt32Bits(CastReference.ToFloatReference(halves[b]));
                uint actual = BitConverter.SingleToUInt32Bits(got[b]);
                Assert.True(actual == expected, $"half 0x{b:X4} on {Devices.Describe(d)}: kernel 0x{actual:X8}, BCL 0x{expected:X8}");
                Assert.True(reference == expected, $"half 0x{b:X4}: reference 0x{reference:X8}, BCL 0x{expected:X8}");
            }
        }
    }

    [Fact]
    public void ToHalf_rounds_every_tie_between_halves_to_even()
    {
        var got = RunToHalf(Devices.Cpu, TieInputs);
        for (int i = 0; i < TieInputs.Length; i++)
        {
            var (ok, label) = SameHalf(TieInputs[i], got[i]);
            Assert.True(ok, label);
            (ok, label) = SameHalf(TieInputs[i], Interop.FloatAsInt(CastReference.ToHalfReference(TieInputs[i])), "reference");
            Assert.True(ok, label);
        }
    }

    [Fact]
    public void ToHalf_boundaries()
    {
        float[] x =
        [
            65504f, MathF.BitIncrement(65504f), MathF.BitDecrement(65520f), 65520f, 65536f, 1e10f,
            6.1035156e-5f, MathF.BitDecrement(6.1035156e-5f), 5.96e-8f, 5.9604645e-8f, 2.9802322e-8f, MathF.BitIncrement(2.9802322e-8f), 1e-30f, float.Epsilon,
            0f, -0f, 1f, float.NaN, -float.NaN, float.PositiveInfinity, float.NegativeInfinity, float.MaxValue,
        ];
        x = [.. x, .. x.Select(v => -v)];
        foreach (var d in Devices.All)
        {
            var got = RunToHalf(d, x);
            for (int i = 0; i < x.Length; i++)
            {
                var (ok, label) = SameHalf(x[i], got[i]);
                Assert.True(ok, label + $" on {Devices.Describe(d)}");
            }
        }

        Assert.Equal(0x7BFF, RunToHalf(Devices.Cpu, [65519.996f])[0]);
        Assert.Equal(0x7C00, RunToHalf(Devices.Cpu, [65520f])[0]);
        Assert.Equal(0x0001, RunToHalf(Devices.Cpu, [5.96e-8f])[0]);
        Assert.Equal(0x0000, RunToHalf(Devices.Cpu, [2.9802322e-8f])[0]);
        Assert.Equal(0x0400, RunToHalf(Devices.Cpu, [6.1035156e-5f])[0]);
    }

    [Property(MaxTest = 40)]
    public Property ToHalf_equals_reference_and_BCL() =>
        Prop.ForAll(Gens.HalfCastInput.ToArbitrary(), x =>
        {
            var result = true.Label($"n = {x.Length}");
            foreach (var d in Devices.All)
            {
                var got = RunToHalf(d, x);
                for (int i = 0; i < x.Length; i++)
                {
                    var (ok, label) = SameHalf(x[i], got[i]);
                    var (refOk, refLabel) = SameHalf(x[i], Interop.FloatAsInt(CastReference.ToHalfReference(x[i])), "reference");
                    if (!ok || !refOk)
                        return result.And(false.Label($"{(ok ? refLabel : label)} on {Devices.Describe(d)}"));
                }
            }

            return result;
        });

    [Property(MaxTest = 30)]
    public Property Round_trip_is_within_half_an_ulp_and_exact_on_halves() =>
        Prop.ForAll(Gens.Floats(257, -70000f, 70000f).ToArbitrary(), x =>
        {
            var d = Devices.Cpu;
            using var tx = d.Upload(x);
            using var th = Tensor.Empty(d, new Shape(x.Length), DType.Float16);
            using var back = d.Poisoned(x.Length);
            Cast.ToHalf(d.Kernels, tx.View<float>(), th.View<Half>());
            Cast.ToFloat(d.Kernels, th.View<Half>(), back.View<float>());
            var once = back.ToHost();
            using var twice = d.Poisoned(x.Length);
            Cast.ToHalf(d.Kernels, back.View<float>(), th.View<Half>());
            Cast.ToFloat(d.Kernels, th.View<Half>(), twice.View<float>());
            var again = twice.ToHost();
            var result = true.Label("round trip");
            for (int i = 0; i < x.Length; i++)
            {
                double a = Math.Abs(x[i]);
                // A half has 11 significant bits: rounding moves a normal value by at most 2^-11 relative,
                // a subnormal (below 2^-14) by at most 2^-25; past 65520 it overflows.
                double bound = Math.Max(a * Math.Pow(2, -11), Math.Pow(2, -25));
                bool ok = a >= 65520 ? float.IsInfinity(once[i]) : Math.Abs(once[i] - x[i]) <= bound;
                if (!ok || BitConverter.SingleToUInt32Bits(again[i]) != BitConverter.SingleToUInt32Bits(once[i]))
                    return result.And(false.Label($"x = {x[i]:R}: once {once[i]:R}, twice {again[i]:R}"));
            }

            return result;
        });

    // RoundToHalfOp (GemmHalf's rounding, on eight lanes and on one) against the scalar routines the kernels call:
    // every float whose top 19 bits (sign, exponent, the ten mantissa bits a half keeps) are anything
    // and whose 13 dropped bits are each rounding case (0, just above 0, just below / at / just above
    // one half, all ones) or one pseudo-random pattern.
    [Fact]
    public void Vector_rounding_equals_the_kernels_scalar_routines()
    {
        uint[] low = [0, 1, 0xFFF, 0x1000, 0x1001, 0x1FFF, 0, 0];
        var rng = new Random(7);
        for (uint top = 0; top < (1u << 19); top++)
        {
            low[6] = (uint)rng.Next(0x2000);
            low[7] = (uint)rng.Next(0x2000);
            var v = Vector256.Create(low) | Vector256.Create(top << 13);
            var round = default(RoundToHalfOp).Apply(new Lane8(v.AsSingle())).V.AsUInt32();
            for (int j = 0; j < 8; j++)
            {
                uint f = v[j], r = Cast.HalfToFloatBits(Cast.FloatToHalfBits(f));
                uint one = BitConverter.SingleToUInt32Bits(default(RoundToHalfOp).Apply(new Lane1(BitConverter.UInt32BitsToSingle(f))).V);
                if (round[j] != r || one != r)
                    Assert.Fail($"float 0x{f:X8}: eight-lane round 0x{round[j]:X8}, one-lane 0x{one:X8}, scalar routines 0x{r:X8}");
            }
        }
    }

    [Property(MaxTest = 30)]
    public Property Managed_casts_equal_the_ilgpu_kernels_bitwise() =>
        Prop.ForAll(CastLength.ToArbitrary(), Gen.Choose(int.MinValue, int.MaxValue).ToArbitrary(), (n, seed) =>
        {
            // Values near and across the half range with the kernel tests' specials, and arbitrary bit
            // patterns (NaN payloads, every exponent); lengths cover the vector tails and the thread split.
            var rng = new Random(seed);
            var x = Gens.HalfCastValues(seed, n);
            for (int i = 0; i < n; i += 3)
                x[i] = BitConverter.UInt32BitsToSingle((uint)rng.NextInt64(1L << 32));
            var halves = Enumerable.Range(0, n).Select(_ => Interop.IntAsFloat((ushort)rng.Next(1 << 16))).ToArray();
            ushort[] managedHalf = RunToHalf(Devices.Cpu, x), kernelHalf = RunToHalf(Devices.CpuKernels, x);
            float[] managedFloat = RunToFloat(Devices.Cpu, halves), kernelFloat = RunToFloat(Devices.CpuKernels, halves);

            for (int i = 0; i < n; i++)
            {
                if (managedHalf[i] != kernelHalf[i])
                    return false.Label($"ToHalf n = {n}, element {i}: x = 0x{BitConverter.SingleToUInt32Bits(x[i]):X8}, managed 0x{managedHalf[i]:X4}, kernel 0x{kernelHalf[i]:X4}");
                uint mf = BitConverter.SingleToUInt32Bits(managedFloat[i]), kf = BitConverter.SingleToUInt32Bits(kernelFloat[i]);
                if (mf != kf)
                    return false.Label($"ToFloat n = {n}, element {i}: half 0x{Interop.FloatAsInt(halves[i]):X4}, managed 0x{mf:X8}, kernel 0x{kf:X8}");
            }

            return true.Label($"n = {n}");
        });

    [Fact]
    public void Mismatched_lengths_name_the_op_and_both_sizes()
    {
        var d = Devices.Cpu;
        using var x = d.Upload(new float[5]);
        using var h = Tensor.Empty(d, new Shape(6), DType.Float16);
        var e = Assert.Throws<ArgumentException>(() => Cast.ToHalf(d.Kernels, x.View<float>(), h.View<Half>()));
        Assert.Contains("ToHalf", e.Message);
        Assert.Contains("5", e.Message);
        Assert.Contains("6", e.Message);
        e = Assert.Throws<ArgumentException>(() => Cast.ToFloat(d.Kernels, h.View<Half>(), x.View<float>()));
        Assert.Contains("ToFloat", e.Message);
    }

    [Fact]
    public void Empty_inputs_launch_nothing()
    {
        var d = Devices.Cpu;
        using var x = d.Upload(Array.Empty<float>());
        using var h = Tensor.Empty(d, new Shape(0), DType.Float16);
        Cast.ToHalf(d.Kernels, x.View<float>(), h.View<Half>());
        Cast.ToFloat(d.Kernels, h.View<Half>(), x.View<float>());
    }

    private static ushort[] RunToHalf(Device d, float[] x)
    {
        using var tx = d.Upload(x);
        // Poisoned with a NaN pattern no input maps to (sign set, payload 0x155), so unwritten elements show.
        var poison = Enumerable.Repeat(Interop.IntAsFloat((ushort)0xFD55), x.Length).ToArray();
        using var ty = Tensor.FromHost(d, poison.AsSpan(), new Shape(x.Length));
        Cast.ToHalf(d.Kernels, tx.View<float>(), ty.View<Half>());
        return ty.ToHost<Half>().Select(h => Interop.FloatAsInt(h)).ToArray();
    }

    // 0, 1, a prime, the 16-lane vector edges, and past the 2^18 elements from which the managed cast splits over threads.
    private static Gen<int> CastLength =>
        Gen.OneOf(Gen.Elements(0, 1, 13, 15, 16, 17, 31, 33, 255, 256, 257, (1 << 18) + 17), Gen.Choose(0, 600));

    private static float[] RunToFloat(Device d, Half[] h)
    {
        using var x = Tensor.FromHost(d, h.AsSpan(), new Shape(h.Length));
        using var y = d.Poisoned(h.Length);
        Cast.ToFloat(d.Kernels, x.View<Half>(), y.View<float>());
        return y.ToHost();
    }

    // Same bits as the BCL's conversion; for NaN, any NaN of the same sign.
    private static (bool Ok, string Label) SameHalf(float x, ushort actual, string who = "kernel")
    {
        ushort expected = BitConverter.HalfToUInt16Bits((System.Half)x);
        bool ok = float.IsNaN(x)
            ? (actual & 0x7C00) == 0x7C00 && (actual & 0x3FF) != 0 && (actual & 0x8000) == (expected & 0x8000)
            : actual == expected;
        return (ok, $"x = {x:R} (0x{BitConverter.SingleToUInt32Bits(x):X8}): {who} 0x{actual:X4}, BCL 0x{expected:X4}");
    }

    private static float[] BuildTieInputs()
    {
        var list = new List<float>();
        for (int b = 0; b < 0x7C00; b++)
        {
            double lo = (double)BitConverter.UInt16BitsToHalf((ushort)b);
            double hi = b == 0x7BFF ? 65536 : (double)BitConverter.UInt16BitsToHalf((ushort)(b + 1));
            float mid = (float)((lo + hi) / 2);
            list.AddRange([(float)lo, MathF.BitDecrement(mid), mid, MathF.BitIncrement(mid)]);
        }

        return [.. list, .. list.Select(v => -v)];
    }

    [Property(MaxTest = 50)]
    public Property ToIndices_on_every_backend_equals_the_reference_on_ids_fractions_and_specials() =>
        Prop.ForAll(Gen.Choose(0, 100000).ToArbitrary(), seed =>
        {
            var r = new Random(seed);
            float[] specials = [0f, -0f, 1f, -1f, 0.5f, -0.5f, 16777216f, 16777217f, 2147483520f, 2147483648f, -2147483648f, -2147483904f, float.NaN, float.PositiveInfinity, float.NegativeInfinity, float.Epsilon, 3.0000002f];
            var x = Enumerable.Range(0, 300).Select(i => (i % 3) switch
            {
                0 => (float)r.Next(-70000, 70000),
                1 => specials[r.Next(specials.Length)],
                _ => BitConverter.Int32BitsToSingle(r.Next(int.MinValue, int.MaxValue)),
            }).ToArray();
            var expected = x.Select(CastReference.ToIndexReference).ToArray();
            var results = Devices.All.Select(d =>
            {
                using var xt = d.Upload(x);
                using var yt = d.Upload(new int[x.Length]);
                Cast.ToIndices(d.Kernels, xt.View<float>(), yt.View<int>());
                return (Device: Devices.Describe(d), Got: yt.ToHost<int>());
            }).ToList();
            return results.Aggregate(true.ToProperty(), (p, r2) => p.And(r2.Got.SequenceEqual(expected).Label($"{r2.Device}: first difference at {Enumerable.Range(0, x.Length).FirstOrDefault(i => r2.Got[i] != expected[i])}")));
        });

    [Fact]
    public void ToIndices_known_values()
    {
        float[] x = [0f, 3f, -2f, 65535f, 2.5f, float.NaN, 2147483648f, -2147483648f];
        using var xt = Devices.Cpu.Upload(x);
        using var yt = Devices.Cpu.Upload(new int[x.Length]);
        Cast.ToIndices(Devices.Cpu.Kernels, xt.View<float>(), yt.View<int>());
        Assert.Equal([0, 3, -2, 65535, int.MinValue, int.MinValue, int.MinValue, int.MinValue], yt.ToHost<int>());
    }
}
