using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using ILGPU.Algorithms;

namespace IlgpuTrain.Kernels.Runtime;

// Lanes: the arithmetic an elementwise operator's math is written in, once, as a generic method
// over T : ILanes<T>. Lane1 (one float) is what ILGPU kernels and the scalar tails of the managed
// loops run; Lane8 (a Vector256<float>) is the managed loop's body. Every operation is one IEEE
// operation per lane, or a bit operation, with the same definition in both (no FMA, no x86
// min/max, no approximate reciprocal), so an operator's scalar and vector results are bitwise
// equal by construction, not by a second hand-written form kept in step by tests.
//
// A mask is a T whose lanes are all-ones bits (true) or zero (false), as the comparisons return it;
// Select reads it. The *Bits operations treat a lane's 32 bits as an int (two's complement).

/// <summary>
/// The arithmetic of one or more float lanes: an operator written once as a generic method over
/// <typeparamref name="T"/> runs as <see cref="Lane1"/> in ILGPU kernels and as <see cref="Lane8"/>
/// in the managed CPU loop, with bitwise equal results per lane.
/// </summary>
/// <typeparam name="T">The lane type itself.</typeparam>
public interface ILanes<T>
    where T : struct, ILanes<T>
{
    /// <summary>Every lane = <paramref name="value"/>.</summary>
    /// <param name="value">The value of every lane.</param>
    static abstract implicit operator T(float value);

    /// <summary>a + b per lane.</summary>
    /// <param name="a">Left.</param>
    /// <param name="b">Right.</param>
    static abstract T operator +(T a, T b);

    /// <summary>a - b per lane.</summary>
    /// <param name="a">Left.</param>
    /// <param name="b">Right.</param>
    static abstract T operator -(T a, T b);

    /// <summary>a * b per lane.</summary>
    /// <param name="a">Left.</param>
    /// <param name="b">Right.</param>
    static abstract T operator *(T a, T b);

    /// <summary>a / b per lane (IEEE division, not a reciprocal estimate).</summary>
    /// <param name="a">Dividend.</param>
    /// <param name="b">Divisor.</param>
    static abstract T operator /(T a, T b);

    /// <summary>-x per lane (flips the sign bit, NaN included).</summary>
    /// <param name="x">Operand.</param>
    static abstract T operator -(T x);

    /// <summary>Bitwise and of the lanes' bits (masks, sign bits).</summary>
    /// <param name="a">Left.</param>
    /// <param name="b">Right.</param>
    static abstract T operator &(T a, T b);

    /// <summary>Bitwise or of the lanes' bits.</summary>
    /// <param name="a">Left.</param>
    /// <param name="b">Right.</param>
    static abstract T operator |(T a, T b);

    /// <summary>Every lane = the float whose bits are <paramref name="bits"/>.</summary>
    /// <param name="bits">The bit pattern of every lane.</param>
    static abstract T Bits(uint bits);

    /// <summary>Mask of a &lt; b (false where either is NaN).</summary>
    /// <param name="a">Left.</param>
    /// <param name="b">Right.</param>
    static abstract T Less(T a, T b);

    /// <summary>Mask of a &lt;= b (false where either is NaN).</summary>
    /// <param name="a">Left.</param>
    /// <param name="b">Right.</param>
    static abstract T LessOrEqual(T a, T b);

    /// <summary>Mask of a &gt; b (false where either is NaN).</summary>
    /// <param name="a">Left.</param>
    /// <param name="b">Right.</param>
    static abstract T Greater(T a, T b);

    /// <summary>Mask of a == b (false where either is NaN; -0 == +0).</summary>
    /// <param name="a">Left.</param>
    /// <param name="b">Right.</param>
    static abstract T Equal(T a, T b);

    /// <summary>Per lane: a where <paramref name="mask"/> is true, else b.</summary>
    /// <param name="mask">A comparison's mask.</param>
    /// <param name="a">Taken where the mask is true.</param>
    /// <param name="b">Taken where the mask is false.</param>
    static abstract T Select(T mask, T a, T b);

    /// <summary>|x| per lane (clears the sign bit, NaN included).</summary>
    /// <param name="x">Operand.</param>
    static abstract T Abs(T x);

    /// <summary>Correctly rounded square root per lane.</summary>
    /// <param name="x">Operand.</param>
    static abstract T Sqrt(T x);

    /// <summary>a + b on the lanes' bits as 32-bit ints, wrapping.</summary>
    /// <param name="a">Left.</param>
    /// <param name="b">Right.</param>
    static abstract T AddBits(T a, T b);

    /// <summary>Mask of a &gt; b on the lanes' bits as signed 32-bit ints.</summary>
    /// <param name="a">Left.</param>
    /// <param name="b">Right.</param>
    static abstract T GreaterBits(T a, T b);

    /// <summary>The lanes' bits shifted left by <paramref name="count"/> (0 to 31), zeros in.</summary>
    /// <param name="x">Operand.</param>
    /// <param name="count">Shift count.</param>
    static abstract T ShiftLeft(T x, int count);

    /// <summary>The lanes' bits shifted right by <paramref name="count"/> (0 to 31), zeros in.</summary>
    /// <param name="x">Operand.</param>
    /// <param name="count">Shift count.</param>
    static abstract T ShiftRightLogical(T x, int count);
}

/// <summary>One float lane: what ILGPU kernels and the scalar tails of the managed loops run.</summary>
/// <param name="v">The lane's value.</param>
public readonly struct Lane1(float v) : ILanes<Lane1>
{
    /// <summary>The lane's value.</summary>
    public readonly float V = v;

    private const MethodImplOptions Inline = MethodImplOptions.AggressiveInlining;

    [MethodImpl(Inline)]
    private static Lane1 Mask(bool b) => new(Interop.IntAsFloat(b ? 0xFFFFFFFFu : 0u));

    [MethodImpl(Inline)]
    private static Lane1 FromBits(uint b) => new(Interop.IntAsFloat(b));

    private uint AsBits => Interop.FloatAsInt(V);

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static implicit operator Lane1(float value) => new(value);

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane1 operator +(Lane1 a, Lane1 b) => new(a.V + b.V);

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane1 operator -(Lane1 a, Lane1 b) => new(a.V - b.V);

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane1 operator *(Lane1 a, Lane1 b) => new(a.V * b.V);

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane1 operator /(Lane1 a, Lane1 b) => new(a.V / b.V);

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane1 operator -(Lane1 x) => new(-x.V);

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane1 operator &(Lane1 a, Lane1 b) => FromBits(a.AsBits & b.AsBits);

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane1 operator |(Lane1 a, Lane1 b) => FromBits(a.AsBits | b.AsBits);

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane1 Bits(uint bits) => FromBits(bits);

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane1 Less(Lane1 a, Lane1 b) => Mask(a.V < b.V);

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane1 LessOrEqual(Lane1 a, Lane1 b) => Mask(a.V <= b.V);

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane1 Greater(Lane1 a, Lane1 b) => Mask(a.V > b.V);

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane1 Equal(Lane1 a, Lane1 b) => Mask(a.V == b.V);

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane1 Select(Lane1 mask, Lane1 a, Lane1 b) => mask.AsBits != 0 ? a : b;

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane1 Abs(Lane1 x) => FromBits(x.AsBits & 0x7FFFFFFFu);

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane1 Sqrt(Lane1 x) => new(XMath.Sqrt(x.V));

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane1 AddBits(Lane1 a, Lane1 b) => FromBits(a.AsBits + b.AsBits);

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane1 GreaterBits(Lane1 a, Lane1 b) => Mask((int)a.AsBits > (int)b.AsBits);

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane1 ShiftLeft(Lane1 x, int count) => FromBits(x.AsBits << count);

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane1 ShiftRightLogical(Lane1 x, int count) => FromBits(x.AsBits >> count);
}

/// <summary>Eight float lanes in a <see cref="Vector256{T}"/>: the managed CPU loop's body.</summary>
/// <param name="v">The lanes.</param>
public readonly struct Lane8(Vector256<float> v) : ILanes<Lane8>
{
    /// <summary>The lanes.</summary>
    public readonly Vector256<float> V = v;

    private const MethodImplOptions Inline = MethodImplOptions.AggressiveInlining;

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static implicit operator Lane8(float value) => new(Vector256.Create(value));

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane8 operator +(Lane8 a, Lane8 b) => new(a.V + b.V);

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane8 operator -(Lane8 a, Lane8 b) => new(a.V - b.V);

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane8 operator *(Lane8 a, Lane8 b) => new(a.V * b.V);

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane8 operator /(Lane8 a, Lane8 b) => new(a.V / b.V);

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane8 operator -(Lane8 x) => new(-x.V);

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane8 operator &(Lane8 a, Lane8 b) => new(a.V & b.V);

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane8 operator |(Lane8 a, Lane8 b) => new(a.V | b.V);

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane8 Bits(uint bits) => new(Vector256.Create(bits).AsSingle());

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane8 Less(Lane8 a, Lane8 b) => new(Vector256.LessThan(a.V, b.V));

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane8 LessOrEqual(Lane8 a, Lane8 b) => new(Vector256.LessThanOrEqual(a.V, b.V));

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane8 Greater(Lane8 a, Lane8 b) => new(Vector256.GreaterThan(a.V, b.V));

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane8 Equal(Lane8 a, Lane8 b) => new(Vector256.Equals(a.V, b.V));

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane8 Select(Lane8 mask, Lane8 a, Lane8 b) => new(Vector256.ConditionalSelect(mask.V, a.V, b.V));

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane8 Abs(Lane8 x) => new((x.V.AsUInt32() & Vector256.Create(0x7FFFFFFFu)).AsSingle());

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane8 Sqrt(Lane8 x) => new(Vector256.Sqrt(x.V));

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane8 AddBits(Lane8 a, Lane8 b) => new((a.V.AsInt32() + b.V.AsInt32()).AsSingle());

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane8 GreaterBits(Lane8 a, Lane8 b) => new(Vector256.GreaterThan(a.V.AsInt32(), b.V.AsInt32()).AsSingle());

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane8 ShiftLeft(Lane8 x, int count) => new(Vector256.ShiftLeft(x.V.AsUInt32(), count).AsSingle());

    /// <inheritdoc/>
    [MethodImpl(Inline)]
    public static Lane8 ShiftRightLogical(Lane8 x, int count) => new(Vector256.ShiftRightLogical(x.V.AsUInt32(), count).AsSingle());
}
