using ILGPU.Algorithms;
using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// Counter-based random numbers: Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random
// numbers: as easy as 1, 2, 3", SC'11; the Random123 library).
//
// Block function: 128-bit counter (c0, c1, c2, c3) and 64-bit key (k0, k1) -> 4 words. Ten rounds
//   (hi0, lo0) = 0xD2511F53 * c0,  (hi1, lo1) = 0xCD9E8D57 * c2      (32x32 -> 64-bit products)
//   (c0, c1, c2, c3) <- (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
// with the key bumped by (0x9E3779B9, 0xBB67AE85) before every round but the first.
//
// Element mapping (the whole contract: the value of element i depends only on
// (seed, stream, counter, i), never on the launch layout or the backend):
//   key     = (seed & 0xFFFFFFFF, seed >> 32)
//   block   = i / 4,  j = i % 4
//   counter = (block & 0xFFFFFFFF, block >> 32, stream, counter)
//   Bits(i)      = word j of Philox(counter, key)
//   Uniform(i)   = (Bits(i) >> 8) * 2^-24                         in [0, 1), 24 random bits
//   Bernoulli(i) = Uniform(i) < p                                   P = ceil(p * 2^24) / 2^24
//   Normal(i)    = Box-Muller on the word pair (j & ~1, j | 1) of the same block:
//                  u1 = ((word[j & ~1] >> 8) + 1) * 2^-24  in (0, 1], so log never sees 0
//                  u2 = (word[j | 1] >> 8) * 2^-24          in [0, 1)
//                  r = sqrt(-2 ln u1),  theta = 2 pi u2
//                  (kernels take -ln u1 from its series for u1 > 1 - 2^-8: see NegLogOpenLeft)
//                  even j: r cos(theta),  odd j: r sin(theta)
//                  so elements 4b, 4b+1 share words 0, 1 and elements 4b+2, 4b+3 share words 2, 3;
//                  |Normal| <= sqrt(-2 ln 2^-24) = 5.77.
// Bits, Uniform and Bernoulli are integer-exact, hence bitwise identical on every backend. Normal
// goes through float log, sqrt, sin and cos, which differ by backend (PTX uses the approximate
// hardware instructions), so normals agree across backends to float tolerance, not bitwise.
// Use different streams or counters for different purposes: Uniform, Bernoulli and Normal at the
// same (seed, stream, counter) read the same words.
//
// Bytes per element: reads 0 B, writes 4 B (Bits, Uniform, Bernoulli, Normal); one block
// function (20 32x32->64-bit multiplies) per 4 elements. No backward: these are sources.

/// <summary>A Philox4x32 block: four 32-bit words (a counter, or the output of the block function).</summary>
/// <param name="X0">Word 0.</param>
/// <param name="X1">Word 1.</param>
/// <param name="X2">Word 2.</param>
/// <param name="X3">Word 3.</param>
public readonly record struct PhiloxWords(uint X0, uint X1, uint X2, uint X3)
{
    /// <summary>Word <paramref name="j"/> (0..3; anything else reads word 3).</summary>
    public uint Word(int j) => j == 0 ? X0 : (j == 1 ? X1 : (j == 2 ? X2 : X3));
}

/// <summary>A Philox stream: the key (seed) and the counter words 2 and 3 (stream, counter) that every element of one draw shares.</summary>
/// <param name="Seed">The seed (the key).</param>
/// <param name="Stream">Counter word 2.</param>
/// <param name="Counter">Counter word 3.</param>
public readonly record struct PhiloxStream(ulong Seed, uint Stream, uint Counter)
{
    /// <summary>The words of block <paramref name="block"/> (elements 4 block to 4 block + 3): <see cref="Philox.BlockAt"/>(Seed, Stream, Counter, block).</summary>
    public PhiloxWords Block(int block) => Philox.BlockAt(Seed, Stream, Counter, (ulong)block);
}

/// <summary>
/// Philox4x32-10 counter-based random numbers: device functions any kernel can call, element
/// bodies and launchers. Element i of every output depends only on
/// (seed, stream, counter, i); see the file header for the exact mapping.
/// </summary>
public static class Philox
{
    /// <summary>Multiplier of counter word 0 in each round.</summary>
    public const uint M0 = 0xD2511F53;

    /// <summary>Multiplier of counter word 2 in each round.</summary>
    public const uint M1 = 0xCD9E8D57;

    /// <summary>Weyl increment of key word 0 between rounds (the golden ratio).</summary>
    public const uint W0 = 0x9E3779B9;

    /// <summary>Weyl increment of key word 1 between rounds (sqrt(3) - 1).</summary>
    public const uint W1 = 0xBB67AE85;

    /// <summary>Number of rounds (Philox4x32-10).</summary>
    public const int Rounds = 10;

    // 2^-24: a 24-bit integer times this is exact in float.
    internal const float Inv24 = 1f / 16777216f;
    private const float TwoPi = 6.28318530717958647692f;

    // ---------------------------------------------------------------- device functions (any kernel may call these)

    /// <summary>The Philox4x32-10 block function: four random words from ten rounds on the 128-bit <paramref name="counter"/> under key (k0, k1).</summary>
    public static PhiloxWords Block(PhiloxWords counter, uint k0, uint k1)
    {
        uint c0 = counter.X0, c1 = counter.X1, c2 = counter.X2, c3 = counter.X3;
        for (int round = 0; round < Rounds; round++)
        {
            // 32x32 -> 64-bit products in ulong: ILGPU has no mulhi intrinsic, and PTX and OpenCL
            // both lower a widened multiply to a single wide multiply.
            ulong p0 = (ulong)M0 * c0;
            ulong p1 = (ulong)M1 * c2;
            uint n0 = (uint)(p1 >> 32) ^ c1 ^ k0;
            uint n2 = (uint)(p0 >> 32) ^ c3 ^ k1;
            c0 = n0;
            c1 = (uint)p1;
            c2 = n2;
            c3 = (uint)p0;
            k0 += W0;
            k1 += W1;
        }
        return new PhiloxWords(c0, c1, c2, c3);
    }

    /// <summary>
    /// The words of elements 4 block .. 4 block + 3 of stream (seed, stream, counter):
    /// Philox((block low, block high, stream, counter), (seed low, seed high)).
    /// </summary>
    public static PhiloxWords BlockAt(ulong seed, uint stream, uint counter, ulong block) =>
        Block(new PhiloxWords((uint)block, (uint)(block >> 32), stream, counter), (uint)seed, (uint)(seed >> 32));

    /// <summary>The raw 32-bit word of element <paramref name="element"/> (zero or more): word element % 4 of block element / 4.</summary>
    /// <param name="seed">The seed (the key).</param>
    /// <param name="stream">The stream (counter word 2), e.g. one per layer or rank.</param>
    /// <param name="counter">The counter (counter word 3), e.g. the training step.</param>
    /// <param name="element">The element index.</param>
    public static uint BitsAt(ulong seed, uint stream, uint counter, long element)
    {
        ulong e = (ulong)element;
        return BlockAt(seed, stream, counter, e >> 2).Word((int)(e & 3));
    }

    /// <summary>A uniform float in [0, 1) for element <paramref name="element"/> of (seed, stream, counter) as <see cref="BitsAt"/>: (Bits &gt;&gt; 8) * 2^-24.</summary>
    public static float UniformAt(ulong seed, uint stream, uint counter, long element) =>
        ToUniform(BitsAt(seed, stream, counter, element));

    /// <summary>A Bernoulli(p) bit for element <paramref name="element"/>: UniformAt(...) &lt; p (p 0 never and 1 always gives true).</summary>
    public static bool BernoulliAt(ulong seed, uint stream, uint counter, long element, float p) =>
        UniformAt(seed, stream, counter, element) < p;

    /// <summary>A standard normal for element <paramref name="element"/>, finite, |z| &lt;= 5.77 (Box-Muller on a word pair; see the file header).</summary>
    public static float NormalAt(ulong seed, uint stream, uint counter, long element)
    {
        ulong e = (ulong)element;
        var w = BlockAt(seed, stream, counter, e >> 2);
        int j = (int)(e & 3);
        BoxMuller(w.Word(j & ~1), w.Word(j | 1), out float z0, out float z1);
        return (j & 1) == 0 ? z0 : z1;
    }

    /// <summary>A word's top 24 bits as a float in [0, 1): (word &gt;&gt; 8) * 2^-24 (exact).</summary>
    public static float ToUniform(uint word) => (word >> 8) * Inv24;

    /// <summary>A word's top 24 bits as a float in (0, 1]: ((word &gt;&gt; 8) + 1) * 2^-24 (exact, never 0), safe for log.</summary>
    public static float ToUniformOpenLeft(uint word) => ((word >> 8) + 1) * Inv24;

    /// <summary>-ln u1 (zero or more) for u1 = <see cref="ToUniformOpenLeft"/>(word), accurate to float rounding on every backend.</summary>
    public static float NegLogOpenLeft(uint word)
    {
        // Near u1 = 1 PTX's log (lg2.approx) is only accurate to ~2^-22 absolute, which can make
        // -ln u1 negative and the radius NaN. There, with v = 1 - u1 (exact: the complement's top
        // 24 bits), -ln(1 - v) = v + v^2/2 + v^3/3 + ... and the dropped v^4/4 is below float
        // rounding for v < 2^-8.
        float v = ToUniform(~word);
        if (v < 1f / 256f)
            return v * (1f + (v * (0.5f + (v * (1f / 3f)))));
        return -XMath.Log(ToUniformOpenLeft(word));
    }

    /// <summary>
    /// Box-Muller: two independent standard normals z0 = sqrt(-2 ln u1) cos(2 pi u2) and
    /// z1 = sqrt(-2 ln u1) sin(2 pi u2), with u1 in (0, 1] from w1 and u2 in [0, 1) from w2.
    /// </summary>
    public static void BoxMuller(uint w1, uint w2, out float z0, out float z1)
    {
        float r = XMath.Sqrt(2f * NegLogOpenLeft(w1));
        float theta = TwoPi * ToUniform(w2);
        z0 = r * XMath.Cos(theta);
        z1 = r * XMath.Sin(theta);
    }

    // ---------------------------------------------------------------- element bodies
    // One block of 4 elements per index b (each thread handles a whole block, so no random word is
    // computed twice), run by Elementwise.ForEachKernel over views and CpuLoops.ForEach over host
    // pointers. The last block of a buffer whose length is not a multiple of 4 is partial.

    // The values of a block's 4 elements from its words: one struct per distribution.
    internal interface IBlockValues<T>
        where T : unmanaged
    {
        void Values(PhiloxWords w, out T v0, out T v1, out T v2, out T v3);
    }

    // y[4b + j] = value j of block b, for the elements below n.
    internal readonly struct SourceBody<T, TE, TV>(TE y, int n, PhiloxStream key, TV values) : IElementBody
        where T : unmanaged
        where TE : struct, IElements<T>
        where TV : struct, IBlockValues<T>
    {
        public void Run(int b)
        {
            values.Values(key.Block(b), out T v0, out T v1, out T v2, out T v3);
            Store<T, TE>(y, b, n, v0, v1, v2, v3);
        }
    }

    // Word j.
    internal readonly struct BitsValues : IBlockValues<uint>
    {
        public void Values(PhiloxWords w, out uint v0, out uint v1, out uint v2, out uint v3) => (v0, v1, v2, v3) = (w.X0, w.X1, w.X2, w.X3);
    }

    // Uniform of word j.
    internal readonly struct UniformValues : IBlockValues<float>
    {
        public void Values(PhiloxWords w, out float v0, out float v1, out float v2, out float v3) =>
            (v0, v1, v2, v3) = (ToUniform(w.X0), ToUniform(w.X1), ToUniform(w.X2), ToUniform(w.X3));
    }

    // 1 where Uniform of word j < p, else 0.
    internal readonly struct BernoulliValues(float p) : IBlockValues<float>
    {
        public void Values(PhiloxWords w, out float v0, out float v1, out float v2, out float v3) =>
            (v0, v1, v2, v3) = (ToUniform(w.X0) < p ? 1f : 0f, ToUniform(w.X1) < p ? 1f : 0f, ToUniform(w.X2) < p ? 1f : 0f, ToUniform(w.X3) < p ? 1f : 0f);
    }

    // mean + std * Normal: two Box-Muller pairs per block.
    internal readonly struct NormalValues(float mean, float std) : IBlockValues<float>
    {
        public void Values(PhiloxWords w, out float v0, out float v1, out float v2, out float v3)
        {
            BoxMuller(w.X0, w.X1, out float z0, out float z1);
            BoxMuller(w.X2, w.X3, out float z2, out float z3);
            (v0, v1, v2, v3) = (mean + (std * z0), mean + (std * z1), mean + (std * z2), mean + (std * z3));
        }
    }

    // y[4b..4b+3] = Philox(counters[4b..4b+3], keys[2b..2b+1]).
    internal readonly struct BlockBody<TE>(TE counters, TE keys, TE y) : IElementBody
        where TE : struct, IElements<uint>
    {
        public void Run(int b)
        {
            int c = b * 4;
            var w = Block(new PhiloxWords(counters[c], counters[c + 1], counters[c + 2], counters[c + 3]), keys[b * 2], keys[(b * 2) + 1]);
            Store<uint, TE>(y, b, c + 4, w.X0, w.X1, w.X2, w.X3);
        }
    }

    // ceil(n / 4) blocks cover n elements, written without n + 3 so that n near int.MaxValue cannot overflow.
    internal static int BlockCount(int n) => (n >> 2) + ((n & 3) != 0 ? 1 : 0);

    // The elements of block b that lie below n.
    private static void Store<T, TE>(TE y, int b, int n, T v0, T v1, T v2, T v3)
        where T : unmanaged
        where TE : struct, IElements<T>
    {
        int i = b * 4;
        y[i] = v0;
        if (i + 1 < n)
            y[i + 1] = v1;
        if (i + 2 < n)
            y[i + 2] = v2;
        if (i + 3 < n)
            y[i + 3] = v3;
    }

    internal static readonly ForEachDef<SourceBody<uint, ViewElements<uint>, BitsValues>> BitsDef = new();
    internal static readonly ForEachDef<SourceBody<float, ViewElements<float>, UniformValues>> UniformDef = new();
    internal static readonly ForEachDef<SourceBody<float, ViewElements<float>, BernoulliValues>> BernoulliDef = new();
    internal static readonly ForEachDef<SourceBody<float, ViewElements<float>, NormalValues>> NormalDef = new();
    internal static readonly ForEachDef<BlockBody<ViewElements<uint>>> BlockDef = new();

    // ---------------------------------------------------------------- launchers

    /// <summary>y[i] = <see cref="BitsAt"/>(seed, stream, counter, i), the raw 32-bit word of element i.</summary>
    public static void Bits(KernelHost host, ArrayView<uint> y, ulong seed, uint stream, uint counter) =>
        Source(host, nameof(Bits), BitsDef, y, new(seed, stream, counter), default(BitsValues));

    /// <summary>y[i] = <see cref="UniformAt"/>(seed, stream, counter, i), a uniform float in [0, 1) (24 random bits).</summary>
    public static void Uniform(KernelHost host, ArrayView<float> y, ulong seed, uint stream, uint counter) =>
        Source(host, nameof(Uniform), UniformDef, y, new(seed, stream, counter), default(UniformValues));

    /// <summary>y[i] = 1 with probability <paramref name="p"/> in [0, 1], else 0 (1 where Uniform(i) &lt; p: p 0 gives all zeros, 1 all ones).</summary>
    public static void Bernoulli(KernelHost host, ArrayView<float> y, float p, ulong seed, uint stream, uint counter)
    {
        if (!(p >= 0f && p <= 1f))
            throw new ArgumentOutOfRangeException(nameof(p), p, $"{nameof(Bernoulli)}: p is a probability and must be in [0, 1], got {p}.");
        Source(host, nameof(Bernoulli), BernoulliDef, y, new(seed, stream, counter), new BernoulliValues(p));
    }

    /// <summary>y[i] = mean + std * <see cref="NormalAt"/>(seed, stream, counter, i), with mean finite and std finite, zero or more.</summary>
    public static void Normal(KernelHost host, ArrayView<float> y, ulong seed, uint stream, uint counter, float mean = 0f, float std = 1f)
    {
        if (!float.IsFinite(mean))
            throw new ArgumentOutOfRangeException(nameof(mean), mean, $"{nameof(Normal)}: mean must be finite, got {mean}.");
        if (!(std >= 0f && float.IsFinite(std)))
            throw new ArgumentOutOfRangeException(nameof(std), std, $"{nameof(Normal)}: std must be finite and zero or more, got {std}.");
        Source(host, nameof(Normal), NormalDef, y, new(seed, stream, counter), new NormalValues(mean, std));
    }

    /// <summary>
    /// The block function on B explicit (counter, key) pairs, for known-answer tests and callers with
    /// their own counter layout: y[4b..4b+3] = Philox(counters[4b..4b+3], keys[2b..2b+1]), y and counters 4B words, keys 2B.
    /// </summary>
    public static void Blocks(KernelHost host, ArrayView<uint> counters, ArrayView<uint> keys, ArrayView<uint> y)
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.SameLength(nameof(Blocks), counters, nameof(counters), y, nameof(y));
        if (counters.Length % 4 != 0)
            throw new ArgumentException($"{nameof(Blocks)}: {nameof(counters)} has {counters.Length} elements, not a multiple of 4 (four words per block).", nameof(counters));
        Check.Length(nameof(Blocks), keys, nameof(keys), counters.Length / 2, $"B = {counters.Length / 4} blocks (2 words each)");
        if (y.Length == 0)
            return;
        int blocks = y.IntLength / 4;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, blocks, new BlockBody<PtrElements<uint>>(new(counters), new(keys), new(y)));
        else
            BlockDef.Launch(host, blocks, new(new(counters), new(keys), new(y)));
    }

    // The launch of every source: y (n) gets the values of key's blocks.
    private static void Source<T, TV>(KernelHost host, string op, ForEachDef<SourceBody<T, ViewElements<T>, TV>> def, ArrayView<T> y, PhiloxStream key, TV values)
        where T : unmanaged
        where TV : struct, IBlockValues<T>
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.Fits32(op, y, nameof(y));
        if (y.Length == 0)
            return;
        int n = y.IntLength;
        if (host.RunsManaged)
            CpuLoops.ForEach(host, BlockCount(n), new SourceBody<T, PtrElements<T>, TV>(new(y), n, key, values));
        else
            def.Launch(host, BlockCount(n), new(new(y), n, key, values));
    }
}
