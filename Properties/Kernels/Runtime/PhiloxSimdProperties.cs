namespace IlgpuTrain.Properties.Kernels.Runtime;

/// <summary>The AVX2 Philox of the managed CPU paths gives the scalar Philox's words, bit for bit.</summary>
public class PhiloxSimdProperties
{
    [Property(MaxTest = 200)]
    public Property Simd_blocks_equal_the_scalar_blocks_bitwise() =>
        Prop.ForAll(
            Gen.Choose(int.MinValue, int.MaxValue).Two().ToArbitrary(),
            Gen.Choose(int.MinValue, int.MaxValue).ToArbitrary(),
            Gen.OneOf(Gen.Choose(0, 1000).Select(b => (ulong)b), Gen.Choose(-8, 8).Select(d => (ulong)((1L << 32) + d)), Gen.Choose(int.MinValue, int.MaxValue).Select(b => (ulong)(uint)b * 977UL)).ToArbitrary(),
            (seedParts, streamCounter, block) =>
            {
                if (!PhiloxSimd.IsSupported)
                    return true.Label("no AVX2: the scalar path runs");
                ulong seed = ((ulong)(uint)seedParts.Item1 << 32) | (uint)seedParts.Item2;
                uint stream = (uint)streamCounter, counter = (uint)streamCounter * 2654435761u;
                var words = new uint[16];
                unsafe
                {
                    fixed (uint* w = words)
                        PhiloxSimd.Blocks4(seed, stream, counter, block, w);
                }

                for (int j = 0; j < 4; j++)
                {
                    var expected = Philox.BlockAt(seed, stream, counter, block + (ulong)j);
                    for (int k = 0; k < 4; k++)
                    {
                        if (words[(4 * j) + k] != expected.Word(k))
                            return false.Label($"block {block} + {j} word {k}: {words[(4 * j) + k]:x8} vs {expected.Word(k):x8}");
                    }
                }

                return true.Label($"seed {seed:x16} block {block}");
            });
}
