using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
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
//   ToIndex  y = int(x)     reads 4 B, writes 4 B per element: float token ids (as a data set's
//            float samples carry them) to Int32 indices; x must be a whole number in int range,
//            anything else (a fraction, +-inf, NaN, |x| >= 2^31) becomes int.MinValue, which no
//            index range holds, so the op that reads the indices reports it.
//
// The kernels work on the bits with integer arithmetic, so every backend gives the same bits.
// ILGPU's own (Half)x does not: on the CPU accelerator it is van der Zijp's table lookup, which
// truncates toward zero (and turns some NaNs into infinity), while PTX rounds with cvt.rn.
// Kernels that store halves should call Cast.FloatToHalf. On the managed backend the launchers run
// System.Numerics.Tensors' ConvertToHalf / ConvertToSingle: the same IEEE conversions, bit for bit
// (CastProperties checks managed == kernel == BCL, exhaustively for halves). The gradient of a
// cast is the opposite cast of dy.

/// <summary>float32 to binary16 and back: bit routines, element bodies, managed loops and checked launchers.</summary>
internal static class Cast
{
    // ---------------------------------------------------------------- device functions

    /// <summary>
    /// float to half, round to nearest even, in integer arithmetic: the same bits on every
    /// backend. Call it inside kernels instead of <c>(Half)x</c>, which truncates on the CPU
    /// accelerator.
    /// </summary>
    public static Half FloatToHalf(float x) => Interop.IntAsFloat((ushort)FloatToHalfBits(Interop.FloatAsInt(x)));

    /// <summary>half to float (exact), in integer arithmetic: the same bits on every backend.</summary>
    public static float HalfToFloat(Half x) => Interop.IntAsFloat(HalfToFloatBits(Interop.FloatAsInt(x)));

    internal static uint FloatToHalfBits(uint f)
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

    internal static uint HalfToFloatBits(uint h)
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

    /// <summary>A whole number x in int range as that int; anything else (a fraction, NaN, +-inf, out of range) as <see cref="int.MinValue"/>.</summary>
    /// <param name="x">A float token id.</param>
    /// <returns>The index, or int.MinValue.</returns>
    public static int ToIndex(float x)
    {
        if (!(x >= -2147483648f && x < 2147483648f))
            return int.MinValue;
        int t = (int)x;
        return t == x ? t : int.MinValue;
    }

    // ---------------------------------------------------------------- ILGPU element bodies
    // Run by the row driver (Runtime/RowDrivers.cs); the managed side of the half casts is ToHalfBody /
    // ToFloatBody (the BCL's conversions, bitwise these), of ToIndex the body itself.

    private static readonly ForEachDef<ToHalfElements<ViewElements<float>, ViewElements<Half>>> ToHalfDef = new();
    private static readonly ForEachDef<ToFloatElements<ViewElements<Half>, ViewElements<float>>> ToFloatDef = new();

    // y[i] = half(x[i]), round to nearest even.
    internal readonly struct ToHalfElements<TF, TH>(TF x, TH y) : IElementBody
        where TF : struct, IElements<float>
        where TH : struct, IElements<Half>
    {
        public void Run(int i) => y[i] = FloatToHalf(x[i]);
    }

    private static readonly ForEachDef<ToIndexElements<ViewElements<float>, ViewElements<int>>> ToIndexDef = new();

    // y[i] = ToIndex(x[i]).
    internal readonly struct ToIndexElements<TF, TI>(TF x, TI y) : IElementBody
        where TF : struct, IElements<float>
        where TI : struct, IElements<int>
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Run(int i) => y[i] = ToIndex(x[i]);
    }

    // y[i] = float(x[i]).
    internal readonly struct ToFloatElements<TH, TF>(TH x, TF y) : IElementBody
        where TH : struct, IElements<Half>
        where TF : struct, IElements<float>
    {
        public void Run(int i) => y[i] = HalfToFloat(x[i]);
    }

    // ---------------------------------------------------------------- launchers

    /// <summary>y = half(x): round to nearest even, +-inf from 65520 up, NaN stays NaN.</summary>
    public static unsafe void ToHalf(KernelHost host, ArrayView<float> x, ArrayView<Half> y)
    {
        if (!Work(host, nameof(ToHalf), x, y))
            return;
        if (host.RunsManaged)
            Each(host, y.Length, new ToHalfBody(CpuLoops.Ptr(x), (ushort*)CpuLoops.Ptr(y)));
        else
            ToHalfDef.Launch(host, y.IntLength, new(new(x), new(y)));
    }

    /// <summary>y = float(x), exact.</summary>
    public static unsafe void ToFloat(KernelHost host, ArrayView<Half> x, ArrayView<float> y)
    {
        if (!Work(host, nameof(ToFloat), x, y))
            return;
        if (host.RunsManaged)
            Each(host, y.Length, new ToFloatBody((ushort*)CpuLoops.Ptr(x), CpuLoops.Ptr(y)));
        else
            ToFloatDef.Launch(host, y.IntLength, new(new(x), new(y)));
    }

    /// <summary>y = <see cref="ToIndex(float)"/>(x): float token ids to Int32 indices, int.MinValue where x is not a whole number in int range.</summary>
    /// <param name="host">The device's kernel host.</param>
    /// <param name="x">Float ids.</param>
    /// <param name="y">Int32 indices, x's length.</param>
    public static void ToIndices(KernelHost host, ArrayView<float> x, ArrayView<int> y)
    {
        if (!Work(host, nameof(ToIndices), x, y))
            return;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, y.Length, new ToIndexElements<PtrElements<float>, PtrElements<int>>(new(x), new(y)));
        else
            ToIndexDef.Launch(host, y.IntLength, new(new(x), new(y)));
    }

    // The checks of every cast (host, equal lengths that fit 32 bits); whether there is work.
    private static bool Work<TX, TY>(KernelHost host, string op, ArrayView<TX> x, ArrayView<TY> y)
        where TX : unmanaged
        where TY : unmanaged
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.SameLength(op, x, nameof(x), y, nameof(y));
        return y.Length != 0;
    }

    // ---------------------------------------------------------------- managed CPU paths

    // A cast moves 6 B per element at about 0.2 ns (one core, SIMD): below this many elements a
    // fork-join onto a second core costs more than it saves.
    private const int ParallelMin = 1 << 18;

    /// <summary>Waits for the stream, then runs a cast body over [0, n), split over threads from <see cref="ParallelMin"/> elements.</summary>
    internal static void Each<TBody>(KernelHost host, long n, TBody body)
        where TBody : struct, CpuLoops.IRange
    {
        if (n >= ParallelMin)
        {
            CpuLoops.For(host, n, body);
            return;
        }

        host.Stream.Synchronize();
        body.Run(0, checked((int)n));
    }

    // y[i] = half(x[i]) for i in [start, end).
    internal readonly unsafe struct ToHalfBody(float* x, ushort* y) : CpuLoops.IRange
    {
        public void Run(int start, int end) =>
            TensorPrimitives.ConvertToHalf(new ReadOnlySpan<float>(x + start, end - start), new Span<System.Half>(y + start, end - start));
    }

    // y[i] = float(x[i]) for i in [start, end).
    internal readonly unsafe struct ToFloatBody(ushort* x, float* y) : CpuLoops.IRange
    {
        public void Run(int start, int end) =>
            TensorPrimitives.ConvertToSingle(new ReadOnlySpan<System.Half>(x + start, end - start), new Span<float>(y + start, end - start));
    }
}
