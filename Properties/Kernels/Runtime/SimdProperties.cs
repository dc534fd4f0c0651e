using System.Runtime.Intrinsics;

namespace IlgpuTrain.Properties.Kernels.Runtime;

/// <summary>The AVX 8 x 8 transpose of the managed CPU paths moves element (r, c) to (c, r) and nothing else.</summary>
public class SimdProperties
{
    [Property(MaxTest = 100)]
    public Property Transpose_moves_each_element_to_its_mirror_and_twice_is_the_identity() =>
        Prop.ForAll(Gen.Choose(int.MinValue, int.MaxValue).ToArbitrary(), seed =>
        {
            if (!System.Runtime.Intrinsics.X86.Avx.IsSupported)
                return true.Label("no AVX: the managed paths use their scalar loops");
            // Random bit patterns, NaN payloads included: a transpose only moves bits.
            var r = new Random(seed);
            var m = Enumerable.Range(0, 64).Select(_ => BitConverter.Int32BitsToSingle(r.Next(int.MinValue, int.MaxValue))).ToArray();
            var v = Enumerable.Range(0, 8).Select(i => Vector256.Create(m, i * 8)).ToArray();
            Simd.Transpose(ref v[0], ref v[1], ref v[2], ref v[3], ref v[4], ref v[5], ref v[6], ref v[7]);
            for (int i = 0; i < 8; i++)
            {
                for (int j = 0; j < 8; j++)
                {
                    if (BitConverter.SingleToInt32Bits(v[i].GetElement(j)) != BitConverter.SingleToInt32Bits(m[(j * 8) + i]))
                        return false.Label($"element ({i}, {j}) is not input ({j}, {i})");
                }
            }

            Simd.Transpose(ref v[0], ref v[1], ref v[2], ref v[3], ref v[4], ref v[5], ref v[6], ref v[7]);
            var back = v.SelectMany(x => Enumerable.Range(0, 8).Select(j => x.GetElement(j))).ToArray();
            return Bits.Same(back, m, "transposed twice");
        });
}
