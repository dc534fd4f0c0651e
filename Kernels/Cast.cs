using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// Casts between float32 and IEEE 754 binary16 (ILGPU.Half) over flat buffers of n elements.
//
//   ToHalf   y = half(x)    reads 4 B, writes 2 B per element
//            round to nearest, ties to even; |x| >= 65520 (half of the way from 65504 to 65536)
//            becomes +-inf; subnormal halves (2^-24 .. 2^-14) are rounded like any other;
//            NaN stays NaN (quiet, sign and top payload bits kept); the sign of zero is kept.
//   ToFloat  y = float(x)   reads 2 B, writes 4 B per element; exact (every half is a float);
//            NaN is quieted, keeping sign and payload.
//
// Both kernels work on the bits with integer arithmetic, so every backend gives the same bits.
// ILGPU's own (Half)x does not: on the CPU accelerator it is van der Zijp's table lookup, which
// truncates toward zero (and turns some NaNs into infinity), while PTX rounds with cvt.rn.
// Kernels that store halves should call Cast.FloatToHalf.
//
// Mixed-precision backward: the gradient of a cast is the opposite cast of dy.

/// <summary>float32 to binary16 and back: CPU references, ILGPU kernels and checked launchers.</summary>
public static class Cast
{
    // ---------------------------------------------------------------- CPU reference (the spec)

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

    // ---------------------------------------------------------------- device functions

    /// <summary>
    /// float to half, round to nearest even, in integer arithmetic: the same bits on every
    /// backend. Call it inside kernels instead of <c>(Half)x</c>, which truncates on the CPU
    /// accelerator.
    /// </summary>
    /// <param name="x">The value.</param>
    /// <returns>The nearest half.</returns>
    public static Half FloatToHalf(float x) => Interop.IntAsFloat((ushort)FloatToHalfBits(Interop.FloatAsInt(x)));

    /// <summary>half to float (exact), in integer arithmetic: the same bits on every backend.</summary>
    /// <param name="x">The half.</param>
    /// <returns>The same value as a float.</returns>
    public static float HalfToFloat(Half x) => Interop.IntAsFloat(HalfToFloatBits(Interop.FloatAsInt(x)));

    private static uint FloatToHalfBits(uint f)
    {
        uint sign = (f >> 16) & 0x8000u;
        uint a = f & 0x7FFFFFFFu;
        if (a >= 0x47800000u)
        {
            // |x| >= 65536, inf or NaN (a quiet NaN keeps its top payload bits).
            return sign | (a > 0x7F800000u ? 0x7E00u | ((a >> 13) & 0x3FFu) : 0x7C00u);
        }

        if (a >= 0x38800000u)
        {
            // |x| >= 2^-14, a normal half: rebias the exponent (127 -> 15) and drop 13 bits.
            // Adding 0xFFF plus the kept lowest bit carries into the kept bits exactly when the
            // dropped part is above one half, or is one half and the kept part is odd (ties to
            // even); a carry out of the mantissa bumps the exponent, up to inf from 65520 on.
            uint odd = (a >> 13) & 1u;
            return sign | ((a - 0x38000000u + 0xFFFu + odd) >> 13);
        }

        // A subnormal half (or zero): m * 2^-24 with m = significand >> (126 - e), rounded.
        uint e = a >> 23;
        if (e < 102)
            return sign; // |x| < 2^-25: below half the smallest subnormal
        uint significand = (a & 0x7FFFFFu) | 0x800000u;
        int shift = 126 - (int)e; // 14..24
        uint m = significand >> shift;
        uint rest = significand & ((1u << shift) - 1u);
        uint halfway = 1u << (shift - 1);
        if (rest > halfway || (rest == halfway && (m & 1u) != 0))
            m++; // m = 1024 is the smallest normal half's encoding
        return sign | m;
    }

    private static uint HalfToFloatBits(uint h)
    {
        uint sign = (h & 0x8000u) << 16;
        uint e = (h >> 10) & 0x1Fu;
        uint m = h & 0x3FFu;
        if (e == 31)
            return m == 0 ? sign | 0x7F800000u : sign | 0x7FC00000u | (m << 13);
        if (e != 0)
            return sign | ((e + 112u) << 23) | (m << 13);
        if (m == 0)
            return sign;

        // Subnormal: shift the leading one up to the implicit bit, lowering the exponent from 2^-14.
        uint exponent = 113u;
        while ((m & 0x400u) == 0)
        {
            m <<= 1;
            exponent--;
        }

        return sign | (exponent << 23) | ((m & 0x3FFu) << 13);
    }

    // ---------------------------------------------------------------- ILGPU kernels

    /// <summary>Kernel: y[i] = half(x[i]), round to nearest even, grid-stride.</summary>
    /// <param name="x">Input.</param>
    /// <param name="y">Output.</param>
    public static void ToHalfKernel(ArrayView<float> x, ArrayView<Half> y)
    {
        int n = y.IntLength;
        // Grid and Group reads are thread-local on the CPU accelerator: read them once.
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
            y[i] = FloatToHalf(x[i]);
    }

    /// <summary>Kernel: y[i] = float(x[i]), grid-stride.</summary>
    /// <param name="x">Input.</param>
    /// <param name="y">Output.</param>
    public static void ToFloatKernel(ArrayView<Half> x, ArrayView<float> y)
    {
        int n = y.IntLength;
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
            y[i] = HalfToFloat(x[i]);
    }

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<Half>>> ToHalfDef =
        KernelDef.Of<ArrayView<float>, ArrayView<Half>>(ToHalfKernel);

    internal static readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<Half>, ArrayView<float>>> ToFloatDef =
        KernelDef.Of<ArrayView<Half>, ArrayView<float>>(ToFloatKernel);

    // ---------------------------------------------------------------- launchers

    /// <summary>y = half(x): round to nearest even, +-inf from 65520 up, NaN stays NaN.</summary>
    /// <param name="host">Where to run.</param>
    /// <param name="x">Input (n).</param>
    /// <param name="y">Output (n).</param>
    public static void ToHalf(KernelHost host, ArrayView<float> x, ArrayView<Half> y)
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.SameLength(nameof(ToHalf), x, nameof(x), y, nameof(y));
        if (y.Length == 0)
            return;
        host.Load(ToHalfDef)(host.Stream, host.Launch.GridStride(y.Length), x, y);
    }

    /// <summary>y = float(x), exact.</summary>
    /// <param name="host">Where to run.</param>
    /// <param name="x">Input (n).</param>
    /// <param name="y">Output (n).</param>
    public static void ToFloat(KernelHost host, ArrayView<Half> x, ArrayView<float> y)
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.SameLength(nameof(ToFloat), x, nameof(x), y, nameof(y));
        if (y.Length == 0)
            return;
        host.Load(ToFloatDef)(host.Stream, host.Launch.GridStride(y.Length), x, y);
    }
}
