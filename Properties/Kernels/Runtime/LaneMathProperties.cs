using System.Runtime.Intrinsics;

namespace IlgpuTrain.Properties.Kernels.Runtime;

/// <summary>
/// LaneMath.Exp is within one ulp of float64 exp over the whole float range with exact
/// overflow, underflow, NaN and infinities, and every function written over lanes gives the same
/// bits on one lane (kernels) as on eight (the managed loop).
/// </summary>
public class LaneMathProperties
{
    // Edges: zeros, tiny, the overflow and underflow thresholds and their neighbours, the subnormal
    // range, the reduction's rounding boundaries (n ln 2 +- ln 2 / 2), infinities and NaN.
    private static readonly float[] Edges =
    [
        0f, -0f, 1e-45f, -1e-45f, 1e-30f, -1e-30f, 1f, -1f, 0.34657359f, -0.34657359f, 0.34657362f, 1.0397208f,
        88.72283f, 88.722832f, 88.72284f, 88.7229f, 89f, 100f, 1e10f, float.MaxValue,
        -87.33654f, -87.3366f, -87.5f, -100f, -103.278929f, -103.972076f, -103.97208f, -103.9721f, -104f, -200f, -float.MaxValue,
        float.PositiveInfinity, float.NegativeInfinity, float.NaN,
    ];

    // Random bit patterns (every exponent, NaN payloads), values across exp's finite range and
    // near zero, and the edges with their neighbours.
    private static float[] Values(int seed, int n)
    {
        var r = new Random(seed);
        var v = new float[n];
        for (int i = 0; i < n; i++)
        {
            v[i] = (i % 4) switch
            {
                0 => BitConverter.Int32BitsToSingle(r.Next(int.MinValue, int.MaxValue)),
                1 => (float)((r.NextDouble() * 200) - 106),
                2 => (float)((r.NextDouble() * 2) - 1) * MathF.Pow(2, -r.Next(30)),
                _ => Edges[r.Next(Edges.Length)] is var e && float.IsFinite(e) ? BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(e) + r.Next(-3, 4)) : e,
            };
        }

        return v;
    }

    // Distance in representable floats between two non-negative results (+inf counts as the float
    // after float.MaxValue), so 1 means adjacent.
    private static long Steps(float a, float b) => Math.Abs((long)BitConverter.SingleToInt32Bits(a) - BitConverter.SingleToInt32Bits(b));

    [Property(MaxTest = 40)]
    public Property Exp_is_within_one_ulp_of_float64_exp_over_the_float_range() =>
        Prop.ForAll(Gen.Choose(0, int.MaxValue).ToArbitrary(), seed =>
        {
            foreach (float x in Values(seed, 4096).Concat(Edges))
            {
                float got = LaneMath.Exp(new Lane1(x)).V;
                float want = (float)Math.Exp(x); // float64 exp, rounded once to float
                if (float.IsNaN(x) ? !float.IsNaN(got) : (got < 0 || float.IsNaN(got) || Steps(got, want) > 1))
                    return false.Label($"exp({x:R}) = {got:R} (0x{BitConverter.SingleToInt32Bits(got):x8}), float64 gives {want:R} (0x{BitConverter.SingleToInt32Bits(want):x8})");
            }

            return true.Label("exp within 1 ulp");
        });

    [Fact]
    public void Exp_is_exact_at_zero_infinities_NaN_overflow_and_underflow()
    {
        static float Exp(float x) => LaneMath.Exp(new Lane1(x)).V;
        Assert.Equal(1f, Exp(0f));
        Assert.Equal(1f, Exp(-0f));
        Assert.True(float.IsNaN(Exp(float.NaN)));
        Assert.Equal(float.PositiveInfinity, Exp(float.PositiveInfinity));
        Assert.Equal(float.PositiveInfinity, Exp(88.7229f));
        Assert.Equal(float.PositiveInfinity, Exp(1e30f));
        Assert.True(float.IsFinite(Exp(88.7228f)), "e^88.7228 is below float.MaxValue");
        Assert.Equal(0f, Exp(float.NegativeInfinity));
        Assert.Equal(0f, Exp(-104f));
        Assert.Equal(0f, Exp(-1e30f));
        // Gradual underflow: e^-100 = 3.72e-44 is a subnormal (26 steps of 2^-149), not flushed.
        Assert.Equal((float)Math.Exp(-100), Exp(-100f));
        Assert.True(Exp(-100f) > 0f && Exp(-100f) < 1.17549435e-38f);
        Assert.Equal(float.Epsilon, Exp(-103.2789f));
    }

    // One function over lanes, for the bitwise property.
    private interface IProbe
    {
        T Run<T>(T x)
            where T : struct, ILanes<T>;
    }

    private readonly struct Exp : IProbe
    {
        public T Run<T>(T x)
            where T : struct, ILanes<T> => LaneMath.Exp(x);
    }

    private readonly struct Erf : IProbe
    {
        public T Run<T>(T x)
            where T : struct, ILanes<T> => ActivationMath.Erf(x);
    }

    private readonly struct Forward<TOp>(TOp op) : IProbe
        where TOp : struct, IUnaryOp
    {
        public T Run<T>(T x)
            where T : struct, ILanes<T> => op.Apply(x);
    }

    private readonly struct Backward<TOp>(TOp op) : IProbe
        where TOp : struct, IActivationOp
    {
        public T Run<T>(T x)
            where T : struct, ILanes<T> => op.Derivative(x);
    }

    private readonly struct Second<TOp>(TOp op, float b) : IProbe
        where TOp : struct, IBinaryOp
    {
        public T Run<T>(T x)
            where T : struct, ILanes<T> => op.Apply(x, (T)b) - op.Apply((T)b, x);
    }

    private static Property SameOnOneAndEightLanes<TProbe>(string what, TProbe probe, float[] x)
        where TProbe : struct, IProbe
    {
        for (int i = 0; i + 8 <= x.Length; i += 8)
        {
            var eight = probe.Run(new Lane8(Vector256.Create(x, i))).V;
            for (int l = 0; l < 8; l++)
            {
                float one = probe.Run(new Lane1(x[i + l])).V;
                if (!Bits.Equal(one, eight[l]))
                    return false.Label($"{what}({x[i + l]:R}): one lane {one:R} (0x{BitConverter.SingleToInt32Bits(one):x8}), lane {l} of eight {eight[l]:R} (0x{BitConverter.SingleToInt32Bits(eight[l]):x8})");
            }
        }

        return true.Label(what);
    }

    private static Property Activation<TOp>(string what, TOp op, float[] x)
        where TOp : struct, IActivationOp =>
        SameOnOneAndEightLanes(what, new Forward<TOp>(op), x).And(SameOnOneAndEightLanes(what + "'", new Backward<TOp>(op), x));

    [Property(MaxTest = 30)]
    public Property Every_function_over_lanes_gives_the_same_bits_on_one_lane_and_on_eight() =>
        Prop.ForAll(Gen.Choose(0, int.MaxValue).ToArbitrary(), seed =>
        {
            var x = Values(seed, 1024).Concat(Edges).Concat(Edges.Select(e => e / 16)).ToArray();
            return SameOnOneAndEightLanes("exp", default(Exp), x)
                .And(SameOnOneAndEightLanes("erf", default(Erf), x))
                .And(Activation("relu", default(ReluOp), x))
                .And(Activation("leaky_relu", new LeakyReluOp(0.2f), x))
                .And(Activation("gelu", default(GeluOp), x))
                .And(Activation("gelu_tanh", default(GeluTanhOp), x))
                .And(Activation("tanh", default(TanhOp), x))
                .And(Activation("sigmoid", default(SigmoidOp), x))
                .And(Activation("silu", default(SiluOp), x))
                .And(SameOnOneAndEightLanes("scale", new Forward<ScaleOp>(new ScaleOp(-1.5f)), x))
                .And(SameOnOneAndEightLanes("clamp", new Forward<ClampOp>(new ClampOp(-2f, 3f)), x))
                .And(SameOnOneAndEightLanes("axpy", new Second<AxpyOp>(new AxpyOp(0.7f), 1.25f), x))
                .And(SameOnOneAndEightLanes("add", new Second<AddOp>(default, -3.5f), x))
                .And(SameOnOneAndEightLanes("sub", new Second<SubOp>(default, 3.5f), x))
                .And(SameOnOneAndEightLanes("mul", new Second<MulOp>(default, 0.1f), x));
        });
}
