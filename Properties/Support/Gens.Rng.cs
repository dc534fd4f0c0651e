namespace IlgpuTrain.Properties.Support;

/// <summary>Generators for counter-based random numbers: seeds, stream and counter words, probabilities.</summary>
public static partial class Gens
{
    /// <summary>A 32-bit word: the edges 0, 1 and 2^32 - 1 a third of the time, otherwise any.</summary>
    public static Gen<uint> Word32 { get; } = Gen.Frequency(
        (1, Gen.Elements(0u, 1u, uint.MaxValue)),
        (2, Gen.Choose(int.MinValue, int.MaxValue).Select(v => unchecked((uint)v))));

    /// <summary>A 64-bit seed: edges (0, 1, 2^32 - 1, 2^32, 2^64 - 1) a third of the time, otherwise any.</summary>
    public static Gen<ulong> Seed { get; } = Gen.Frequency(
        (1, Gen.Elements(0UL, 1UL, 0xFFFF_FFFFUL, 0x1_0000_0000UL, ulong.MaxValue)),
        (2, from hi in Word32 from lo in Word32 select ((ulong)hi << 32) | lo));

    /// <summary>A (seed, stream, counter) triple.</summary>
    public static Gen<StreamKey> StreamKey { get; } =
        from seed in Seed
        from stream in Word32
        from counter in Word32
        select new StreamKey(seed, stream, counter);

    /// <summary>A probability: 0, 1, 1/2 or 2^-24 a third of the time, otherwise uniform in [0, 1].</summary>
    public static Gen<float> Probability { get; } = Gen.Frequency(
        (1, Gen.Elements(0f, 1f, 0.5f, 1f / 16777216f)),
        (2, Float(0f, 1f)));
}

/// <summary>The arguments that select a random stream: the Philox key and counter words 2 and 3.</summary>
/// <param name="Seed">The seed.</param>
/// <param name="Stream">The stream.</param>
/// <param name="Counter">The counter.</param>
public sealed record StreamKey(ulong Seed, uint Stream, uint Counter)
{
    /// <inheritdoc/>
    public override string ToString() => $"(seed 0x{Seed:X16}, stream 0x{Stream:X8}, counter 0x{Counter:X8})";
}
