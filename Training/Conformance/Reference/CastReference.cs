using ILGPU;
using Half = ILGPU.Half;

namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>Cast</c> kernels: plain loops, slow and obviously right.</summary>
internal static class CastReference
{
    /// <summary>Reference float to half: round(|x| / quantum) with ties to even, in float64.</summary>
    /// <param name="x">The value.</param>
    /// <returns>The nearest half (ties to even), +-inf from 65520 up, NaN for NaN.</returns>
    public static Half ToHalfReference(float x)
    {
        uint fbits = BitConverter.SingleToUInt32Bits(x);
        int sign = (int)(fbits >> 16) & 0x8000;
        if (float.IsNaN(x))
            return HalfFromBits(sign | 0x7E00 | (int)((fbits >> 13) & 0x3FF));
        double a = Math.Abs((double)x);
        if (a >= 65520)
            return HalfFromBits(sign | 0x7C00);

        // Halves in the binade [2^e, 2^(e+1)) are 1024 steps of 2^(e-10); below 2^-14 the steps
        // stay 2^-24 (subnormals). Scaling by a power of two is exact, so r is exact.
        int e = Math.Max(Math.ILogB(a), -14);
        double r = Math.Round(Math.ScaleB(a, 10 - e), MidpointRounding.ToEven);
        // r = 2048 lands on the next binade's first half: its bits are the next exponent, mantissa 0.
        int magnitude = r < 1024 ? (int)r : ((e + 15) << 10) + (int)r - 1024;
        return HalfFromBits(sign | magnitude);
    }

    /// <summary>Reference float id to index, in float64: a whole number in [-2^31, 2^31) is that int, anything else (fractions, NaN, +-inf, out of range) int.MinValue.</summary>
    /// <param name="x">The id.</param>
    /// <returns>The index, or int.MinValue.</returns>
    public static int ToIndexReference(float x)
    {
        double d = x;
        return double.IsFinite(d) && Math.Floor(d) == d && d >= int.MinValue && d <= int.MaxValue ? (int)d : int.MinValue;
    }

    /// <summary>Reference half to float: (-1)^s * 2^(e-15) * 1.m, or 2^-14 * 0.m for subnormals.</summary>
    /// <param name="x">The half.</param>
    /// <returns>The same value as a float (NaN quieted, keeping sign and payload).</returns>
    public static float ToFloatReference(Half x)
    {
        int bits = Interop.FloatAsInt(x);
        bool negative = (bits & 0x8000) != 0;
        int e = (bits >> 10) & 0x1F;
        int m = bits & 0x3FF;
        if (e == 31 && m != 0)
            return BitConverter.UInt32BitsToSingle((negative ? 0x80000000u : 0u) | 0x7FC00000u | ((uint)m << 13));
        double magnitude = e == 31 ? double.PositiveInfinity
            : e == 0 ? Math.ScaleB(m, -24)
            : Math.ScaleB(1024 + m, e - 25);
        return (float)(negative ? -magnitude : magnitude);
    }

    /// <summary>Reference: y[i] = half(x[i]).</summary>
    /// <param name="x">Input.</param>
    /// <param name="y">Output.</param>
    public static void ToHalfReference(ReadOnlySpan<float> x, Span<Half> y)
    {
        for (int i = 0; i < y.Length; i++)
            y[i] = ToHalfReference(x[i]);
    }

    /// <summary>Reference: y[i] = float(x[i]).</summary>
    /// <param name="x">Input.</param>
    /// <param name="y">Output.</param>
    public static void ToFloatReference(ReadOnlySpan<Half> x, Span<float> y)
    {
        for (int i = 0; i < y.Length; i++)
            y[i] = ToFloatReference(x[i]);
    }

    private static Half HalfFromBits(int bits) => Interop.IntAsFloat((ushort)bits);
}
