using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace IlgpuTrain.Kernels.Runtime;

// Philox4x32-10 for managed CPU-accelerator paths, four counter blocks at a time.
//
// Each 64-bit lane of a Vector256<ulong> holds one 32-bit word of one block, zero-extended, so
// AVX2's vpmuludq (Avx2.Multiply on the even 32-bit lanes) is the round's 32 x 32 -> 64 multiply;
// the high and low halves are a shift and a mask. The arithmetic is integer and exact, so the
// words equal Philox.Block's bit for bit; the 16 words come out in element order (block j word k
// at 4j + k), as the kernels consume them.

/// <summary>Philox words of consecutive counter blocks, vectorized with AVX2.</summary>
internal static unsafe class PhiloxSimd
{
    /// <summary>Whether <see cref="Blocks4"/> can run (AVX2).</summary>
    internal static bool IsSupported => Avx2.IsSupported;

    /// <summary>
    /// The words of blocks <paramref name="block"/> to <paramref name="block"/> + 3 of stream
    /// (seed, stream, counter): words[4j + k] = Philox.BlockAt(seed, stream, counter, block + j).Word(k).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Blocks4(ulong seed, uint stream, uint counter, ulong block, uint* words)
    {
        var low = Vector256.Create(0xFFFF_FFFFUL);
        var index = Vector256.Create(block) + Vector256.Create(0UL, 1UL, 2UL, 3UL);
        var c0 = index & low;
        var c1 = index >>> 32;
        var c2 = Vector256.Create((ulong)stream);
        var c3 = Vector256.Create((ulong)counter);
        var m0 = Vector256.Create((ulong)Philox.M0).AsUInt32();
        var m1 = Vector256.Create((ulong)Philox.M1).AsUInt32();
        uint k0 = (uint)seed, k1 = (uint)(seed >> 32);
        for (int round = 0; round < Philox.Rounds; round++)
        {
            var p0 = Avx2.Multiply(m0, c0.AsUInt32());
            var p1 = Avx2.Multiply(m1, c2.AsUInt32());
            var n0 = (p1 >>> 32) ^ c1 ^ Vector256.Create((ulong)k0);
            var n2 = (p0 >>> 32) ^ c3 ^ Vector256.Create((ulong)k1);
            c0 = n0;
            c1 = p1 & low;
            c2 = n2;
            c3 = p0 & low;
            k0 += Philox.W0;
            k1 += Philox.W1;
        }

        // Block j's four words side by side: lane j of lo01 holds words 0 and 1 (c0 low, c1 high), of
        // lo23 words 2 and 3; interleaving the 64-bit lanes (within 128-bit halves, then across) puts
        // blocks 0, 1 in the first vector and 2, 3 in the second.
        var lo01 = c0 | (c1 << 32);
        var lo23 = c2 | (c3 << 32);
        var even = Avx2.UnpackLow(lo01, lo23);                                  // blocks 0 and 2
        var odd = Avx2.UnpackHigh(lo01, lo23);                                  // blocks 1 and 3
        Avx2.Permute2x128(even, odd, 0x20).AsUInt32().Store(words);
        Avx2.Permute2x128(even, odd, 0x31).AsUInt32().Store(words + 8);
    }
}
