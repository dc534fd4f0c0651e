namespace IlgpuTrain.Properties.Support;

/// <summary>Bit-for-bit comparison of float buffers (signed zeros included; any NaN matches any NaN).</summary>
public static class Bits
{
    /// <summary>Whether <paramref name="actual"/> and <paramref name="expected"/> have the same length and bits.</summary>
    /// <param name="actual">The result under test.</param>
    /// <param name="expected">The result it must equal.</param>
    /// <param name="what">What is compared, for the label.</param>
    /// <returns>The property, labelled with the first differing element.</returns>
    public static Property Same(float[] actual, float[] expected, string what)
    {
        if (actual.Length != expected.Length)
            return false.Label($"{what}: {actual.Length} elements vs {expected.Length}");
        for (int i = 0; i < actual.Length; i++)
        {
            int a = BitConverter.SingleToInt32Bits(actual[i]), e = BitConverter.SingleToInt32Bits(expected[i]);
            if (!Equal(actual[i], expected[i]))
                return false.Label($"{what}: element {i} of {actual.Length}: {actual[i]:R} (0x{a:x8}) vs {expected[i]:R} (0x{e:x8})");
        }

        return true.Label(what);
    }

    /// <summary>
    /// Whether two floats have the same bits, except that any NaN matches any NaN: IEEE 754 leaves
    /// open which NaN an operation on two NaNs returns, and the JIT may order a commutative
    /// operation's operands either way.
    /// </summary>
    /// <param name="a">One value.</param>
    /// <param name="b">The other.</param>
    /// <returns>True when they are the same float.</returns>
    public static bool Equal(float a, float b) =>
        BitConverter.SingleToInt32Bits(a) == BitConverter.SingleToInt32Bits(b) || (float.IsNaN(a) && float.IsNaN(b));
}
