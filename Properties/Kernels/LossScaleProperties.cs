using IlgpuTrain.Training.Conformance;

namespace IlgpuTrain.Properties.Kernels;

/// <summary>LossScale.Unscale: g *= 1/scale in place plus a sticky non-finite flag, in one kernel.</summary>
public class LossScaleProperties
{
    // fl(x * fl(1/s)) against the exact x / s: shared with the conformance suite.
    private const double UnscaleRtol = Tolerances.LossScale.UnscaleRtol;

    [Property(MaxTest = 40)]
    public Property Unscale_equals_reference_and_flags_exactly_the_poisoned_inputs() =>
        Prop.ForAll(Gens.PoisonedVector().ToArbitrary(), Gens.LossScaleValue.ToArbitrary(), (v, scale) =>
        {
            float inv = (float)(1.0 / scale);
            var expected = (float[])v.Values.Clone();
            bool refFinite = LossScaleReference.UnscaleReference(expected, inv);
            var prop = (refFinite == (v.Bad.Length == 0)).Label($"reference says all finite = {refFinite}");
            foreach (var d in Devices.All)
            {
                var (got, found) = RunUnscale(d, v.Values, inv, 0);
                // One multiply per element, correctly rounded on every backend: bitwise equal.
                prop = prop
                    .And(Bitwise(got, expected).Label($"{d}: values equal the reference bitwise"))
                    .And((found == (v.Bad.Length == 0 ? 0 : 1)).Label($"{d}: flag {found} for {v.Bad.Length} poisoned positions"));
            }
            return prop;
        });

    [Property(MaxTest = 30)]
    public Property Power_of_two_scales_undo_exactly() =>
        Prop.ForAll(Gens.ReductionVector().ToArbitrary(), Gen.Choose(0, 24).ToArbitrary(), (g, k) =>
        {
            float s = MathF.ScaleB(1f, k);
            var scaled = g.Select(x => x * s).ToArray();
            var (got, found) = RunUnscale(Devices.Cpu, scaled, 1f / s, 0);
            return Bitwise(got, g).Label($"(g * 2^{k}) / 2^{k} == g bitwise").And((found == 0).Label("finite input, flag stays 0"));
        });

    [Property(MaxTest = 30)]
    public Property Any_scale_unscales_within_two_roundings_of_the_exact_quotient() =>
        Prop.ForAll(Gens.ReductionVector().ToArbitrary(), Gens.Float(0.5f, 70000f).ToArbitrary(), (x, s) =>
        {
            var (got, found) = RunUnscale(Devices.Cpu, x, (float)(1.0 / s), 0);
            var exact = x.Select(v => v / (double)s).ToArray();
            return Close.All(got, exact, 0, UnscaleRtol, $"x / {s:R}").And((found == 0).Label("finite input, flag stays 0"));
        });

    [Property(MaxTest = 30)]
    public Property Scale_one_is_a_read_only_check() =>
        Prop.ForAll(Gens.PoisonedVector().ToArbitrary(), v =>
        {
            var values = (float[])v.Values.Clone();
            if (values.Length > 0)
                values[0] = -0f;
            var (got, found) = RunUnscale(Devices.Cpu, values, 1f, 0);
            return Bitwise(got, values).Label("values (NaN payloads, -0) unchanged bitwise")
                .And((found == (v.Bad.Length == 0 || v.Bad.SequenceEqual([0]) ? 0 : 1)).Label($"flag {found}"));
        });

    [Fact]
    public void The_flag_is_sticky_and_not_reset()
    {
        var (_, found) = RunUnscale(Devices.Cpu, [1f, 2f, 3f], 0.5f, 1);
        Assert.Equal(1, found);
        (_, found) = RunUnscale(Devices.Cpu, [], 0.5f, 0);
        Assert.Equal(0, found);
        (_, found) = RunUnscale(Devices.Cpu, [], 0.5f, 1);
        Assert.Equal(1, found);
    }

    [Fact]
    public void Unscaling_that_overflows_is_flagged()
    {
        // A scale that backed off below 1 multiplies: 3e38 * 2 is inf although the input is finite.
        float[] x = [1f, 3e38f, -2f];
        var expected = (float[])x.Clone();
        Assert.False(LossScaleReference.UnscaleReference(expected, 2f));
        var (got, found) = RunUnscale(Devices.Cpu, x, 2f, 0);
        Assert.Equal(1, found);
        Assert.Equal(expected, got);
        Assert.Equal(float.PositiveInfinity, got[1]);
    }

    [Fact]
    public void Bad_arguments_are_refused_with_clear_messages()
    {
        var d = Devices.Cpu;
        using var x = d.Upload([1f, 2f]);
        using var flags = d.Upload(new int[2]);
        var e = Assert.Throws<ArgumentException>(() => LossScale.Unscale(d.Kernels, x.View<float>(), 0.5f, flags.View<int>()));
        Assert.Contains("LossScale.Unscale", e.Message);
        Assert.Contains("found has 2 elements", e.Message);
        var one = flags.View<int>().SubView(0, 1);
        foreach (float bad in new[] { 0f, -1f, float.NaN, float.PositiveInfinity })
        {
            var r = Assert.Throws<ArgumentOutOfRangeException>(() => LossScale.Unscale(d.Kernels, x.View<float>(), bad, one));
            Assert.Contains("invScale", r.Message);
        }
    }

    private static (float[] Values, int Found) RunUnscale(Device d, float[] values, float inv, int flagBefore)
    {
        using var g = d.Upload(values);
        using var flag = d.Upload(new[] { flagBefore });
        LossScale.Unscale(d.Kernels, g.View<float>(), inv, flag.View<int>());
        return (g.ToHost(), flag.ToHost<int>()[0]);
    }

    private static Property Bitwise(float[] actual, float[] expected)
    {
        if (actual.Length != expected.Length)
            return false.Label($"length {actual.Length} versus {expected.Length}");
        for (int i = 0; i < actual.Length; i++)
        {
            if (BitConverter.SingleToInt32Bits(actual[i]) != BitConverter.SingleToInt32Bits(expected[i]))
                return false.Label($"[{i}] = {actual[i]:R} (0x{BitConverter.SingleToInt32Bits(actual[i]):X8}) but expected {expected[i]:R} (0x{BitConverter.SingleToInt32Bits(expected[i]):X8})");
        }
        return true.Label("bitwise");
    }
}
