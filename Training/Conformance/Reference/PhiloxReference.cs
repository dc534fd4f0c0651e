namespace IlgpuTrain.Training.Conformance;

/// <summary>The CPU reference (the spec) of the <c>Philox</c> kernels: plain loops, slow and obviously right.</summary>
internal static class PhiloxReference
{
    /// <summary>Reference: the Philox4x32-10 block function, written from the paper's round equations.</summary>
    /// <param name="counter">Four counter words.</param>
    /// <param name="key">Two key words.</param>
    /// <param name="output">Four output words.</param>
    public static void BlockReference(ReadOnlySpan<uint> counter, ReadOnlySpan<uint> key, Span<uint> output)
    {
        uint[] x = counter[..4].ToArray();
        uint[] k = key[..2].ToArray();
        for (int round = 0; round < Philox.Rounds; round++)
        {
            if (round > 0)
            {
                k[0] = unchecked(k[0] + Philox.W0);
                k[1] = unchecked(k[1] + Philox.W1);
            }
            ulong p0 = Math.BigMul(Philox.M0, x[0]);
            ulong p1 = Math.BigMul(Philox.M1, x[2]);
            uint[] next =
            [
                (uint)(p1 >> 32) ^ x[1] ^ k[0],
                (uint)p1,
                (uint)(p0 >> 32) ^ x[3] ^ k[1],
                (uint)p0,
            ];
            x = next;
        }
        x.CopyTo(output);
    }

    /// <summary>Reference: y[i] = word i % 4 of Philox((i / 4 low, i / 4 high, stream, counter), (seed low, seed high)).</summary>
    /// <param name="y">Output.</param>
    /// <param name="seed">The seed (the 64-bit key).</param>
    /// <param name="stream">Counter word 2.</param>
    /// <param name="counter">Counter word 3.</param>
    public static void BitsReference(Span<uint> y, ulong seed, uint stream, uint counter)
    {
        uint[] key = [(uint)seed, (uint)(seed >> 32)];
        var words = new uint[4];
        for (int i = 0; i < y.Length; i++)
        {
            ulong block = (ulong)i / 4;
            BlockReference([(uint)block, (uint)(block >> 32), stream, counter], key, words);
            y[i] = words[i % 4];
        }
    }

    /// <summary>Reference: y[i] = (Bits(i) &gt;&gt; 8) / 2^24, in [0, 1).</summary>
    /// <param name="y">Output.</param>
    /// <param name="seed">The seed.</param>
    /// <param name="stream">The stream.</param>
    /// <param name="counter">The counter.</param>
    public static void UniformReference(Span<float> y, ulong seed, uint stream, uint counter)
    {
        var bits = new uint[y.Length];
        BitsReference(bits, seed, stream, counter);
        for (int i = 0; i < y.Length; i++)
            y[i] = (float)((bits[i] >> 8) / 16777216.0);
    }

    /// <summary>Reference: y[i] = 1 if Uniform(i) &lt; p, else 0.</summary>
    /// <param name="y">Output.</param>
    /// <param name="p">Probability of a 1, in [0, 1].</param>
    /// <param name="seed">The seed.</param>
    /// <param name="stream">The stream.</param>
    /// <param name="counter">The counter.</param>
    public static void BernoulliReference(Span<float> y, float p, ulong seed, uint stream, uint counter)
    {
        var bits = new uint[y.Length];
        BitsReference(bits, seed, stream, counter);
        for (int i = 0; i < y.Length; i++)
            y[i] = (bits[i] >> 8) / 16777216.0 < p ? 1f : 0f;
    }

    /// <summary>Reference: y[i] = mean + std * z(i), with z(i) the Box-Muller normal of the header, in float64.</summary>
    /// <param name="y">Output.</param>
    /// <param name="seed">The seed.</param>
    /// <param name="stream">The stream.</param>
    /// <param name="counter">The counter.</param>
    /// <param name="mean">Mean.</param>
    /// <param name="std">Standard deviation.</param>
    public static void NormalReference(Span<float> y, ulong seed, uint stream, uint counter, float mean = 0f, float std = 1f)
    {
        // Whole blocks, so the pair partner of the last element exists even when it is not output.
        int padded = (y.Length + 3) / 4 * 4;
        var bits = new uint[padded];
        BitsReference(bits, seed, stream, counter);
        for (int i = 0; i < y.Length; i++)
        {
            int first = i & ~1;
            double u1 = ((bits[first] >> 8) + 1) / 16777216.0;
            double u2 = (bits[first + 1] >> 8) / 16777216.0;
            double r = Math.Sqrt(-2.0 * Math.Log(u1));
            double z = i % 2 == 0 ? r * Math.Cos(2.0 * Math.PI * u2) : r * Math.Sin(2.0 * Math.PI * u2);
            y[i] = (float)(mean + (std * z));
        }
    }
}
