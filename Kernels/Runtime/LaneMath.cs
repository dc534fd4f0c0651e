using System.Runtime.CompilerServices;

namespace IlgpuTrain.Kernels.Runtime;

/// <summary>
/// Functions written once over <see cref="ILanes{T}"/>: the same IEEE operations per lane for
/// <see cref="Lane1"/> (kernels) and <see cref="Lane8"/> (the managed loop), so bitwise equal.
/// </summary>
public static class LaneMath
{
    // 1.5 * 2^23: x + M - M rounds x to an integer (ties to even) for |x| < 2^22, and the low bits
    // of x + M are that integer.
    private const float RoundMagic = 12582912f;
    private const uint RoundMagicBits = 0x4B400000u;

    private const float Log2E = 1.44269504f;

    // ln 2 = Ln2Hi + Ln2Lo, Ln2Hi with 15 significant bits, so n * Ln2Hi is exact for |n| < 512.
    private const float Ln2Hi = 0.693145751953125f;
    private const float Ln2Lo = 1.42860677e-6f;

    // Beyond these exp is +inf (e^88.73 > float.MaxValue) or rounds to 0 (e^-103.98 < 2^-150).
    private const float ExpHi = 89f;
    private const float ExpLo = -104f;

    // (e^r - 1 - r) / r^2 on |r| <= 0.35: interpolated at the 5 Chebyshev nodes in double, rounded to float.
    private const float E0 = 0.5f;
    private const float E1 = 0.166665733f;
    private const float E2 = 0.0416665487f;
    private const float E3 = 0.00836376660f;
    private const float E4 = 0.00139269186f;

    /// <summary>a &lt; b ? a : b per lane: b where either is NaN.</summary>
    /// <typeparam name="T">The lane type.</typeparam>
    /// <param name="a">Left.</param>
    /// <param name="b">Right.</param>
    /// <returns>The smaller.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Min<T>(T a, T b)
        where T : struct, ILanes<T> => T.Select(T.Less(a, b), a, b);

    /// <summary>a &gt; b ? a : b per lane: b where either is NaN.</summary>
    /// <typeparam name="T">The lane type.</typeparam>
    /// <param name="a">Left.</param>
    /// <param name="b">Right.</param>
    /// <returns>The larger.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static T Max<T>(T a, T b)
        where T : struct, ILanes<T> => T.Select(T.Greater(a, b), a, b);

    /// <summary>
    /// e^x per lane, within 1 ulp of the correctly rounded float over the whole float range:
    /// +inf from x &gt;= 88.73 (and for +inf), gradual underflow to subnormals below x = -87.34,
    /// exactly 0 below -103.98 (and for -inf), NaN for NaN.
    /// </summary>
    /// <typeparam name="T">The lane type.</typeparam>
    /// <param name="x">Exponent.</param>
    /// <returns>e^x.</returns>
    /// <remarks>
    /// Cody-Waite reduction x = n ln 2 + r, n = round(x log2 e), |r| &lt;= 0.35 (ln 2 split in a
    /// high part exact in n * Ln2Hi and a low part), then e^r = 1 + r + r^2 q(r) with q a degree-4
    /// polynomial, and e^x = e^r 2^a 2^(n-a), a = round(n / 2): two exact power-of-two factors
    /// built from bits, so the result rounds once, also into the subnormals, and overflows to +inf
    /// by itself. No FMA, no table: the same bits on every backend. Measured against float64 exp
    /// over random and edge inputs (LaneMathProperties).
    /// </remarks>
    public static T Exp<T>(T x)
        where T : struct, ILanes<T>
    {
        // NaN compares false and stays NaN through both selects and everything below.
        x = T.Select(T.Greater(x, ExpHi), ExpHi, x);
        x = T.Select(T.Less(x, ExpLo), ExpLo, x);
        T n = ((x * Log2E) + RoundMagic) - RoundMagic;
        T r = (x - (n * Ln2Hi)) - (n * Ln2Lo);
        T q = (E4 * r) + E3;
        q = (q * r) + E2;
        q = (q * r) + E1;
        q = (q * r) + E0;
        T p = 1f + (r + (r * r * q));
        T a = ((n * 0.5f) + RoundMagic) - RoundMagic;
        return p * Pow2(a) * Pow2(n - a);
    }

    // 2^k for a whole number k in [-126, 127] (an integer-valued lane): k + M carries k in its low bits.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static T Pow2<T>(T k)
        where T : struct, ILanes<T> =>
        T.ShiftLeft(T.AddBits(k + RoundMagic, T.Bits(unchecked(127u - RoundMagicBits))), 23);
}
