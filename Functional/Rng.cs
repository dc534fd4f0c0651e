namespace IlgpuTrain.Functional;

/// <summary>
/// A counter-based random number generator as an immutable value: a Philox4x32-10 key
/// (<see cref="Seed"/>) and the two counter words <see cref="Stream"/> and <see cref="Counter"/>.
/// Element i of every tensor it makes depends only on (Seed, Stream, Counter, i), so the numbers
/// are the same on every backend and launch layout, and a run is reproducible.
/// </summary>
/// <remarks>
/// <para>Nothing is consumed or advanced implicitly: drawing twice from the same value gives the
/// same numbers. Derive a new value for each use:</para>
/// <list type="bullet">
/// <item><see cref="At"/> / <see cref="Next"/> move the step counter (e.g. one per training step);</item>
/// <item><see cref="Fold"/> / <see cref="Split"/> derive independent child generators (e.g. one
/// per layer, per rank or per purpose). A child's seed is a Philox hash of the parent's
/// (Seed, Stream, Counter) and the folded value, so folds compose:
/// <c>rng.Fold(rank).Fold(layer)</c> differs from <c>rng.Fold(layer).Fold(rank)</c> and from every
/// single fold.</item>
/// </list>
/// <para><see cref="Uniform"/>, <see cref="Normal"/> and <see cref="Bernoulli"/> at the same value
/// read the same random words; fold a different value for each purpose.</para>
/// <para>Exactly: <c>rng.Uniform(device, shape)</c> equals
/// <c>Philox.Uniform(host, y, rng.Seed, rng.Stream, rng.Counter)</c>; see Kernels/Philox.cs for
/// the mapping of (seed, stream, counter, i) to bits.</para>
/// </remarks>
/// <param name="Seed">The 64-bit Philox key.</param>
/// <param name="Stream">Philox counter word 2: the value last folded in (0 for a root).</param>
/// <param name="Counter">Philox counter word 3: the step counter.</param>
public sealed record Rng(ulong Seed, uint Stream, uint Counter)
{
    // Counter word 3 of the derivation block tells Fold and Split apart, so Split(n)[i] is not Fold(i).
    private const uint FoldTag = 0x466F6C64; // "Fold"
    private const uint SplitTag = 0x53706C74; // "Splt"

    /// <summary>A root generator: stream 0, counter 0.</summary>
    /// <param name="seed">The seed.</param>
    /// <returns>The generator.</returns>
    public static Rng Create(ulong seed) => new(seed, 0, 0);

    /// <summary>The same generator at step counter <paramref name="counter"/>.</summary>
    /// <param name="counter">The counter, for example the training step.</param>
    /// <returns>The generator.</returns>
    public Rng At(uint counter) => this with { Counter = counter };

    /// <summary>The same generator at the next step counter.</summary>
    /// <returns>The generator with <see cref="Counter"/> + 1.</returns>
    /// <exception cref="OverflowException">The counter is already <see cref="uint.MaxValue"/>; wrapping would repeat numbers.</exception>
    public Rng Next()
    {
        if (Counter == uint.MaxValue)
            throw new OverflowException($"Rng.Next: the counter is at {uint.MaxValue}; wrapping around would repeat earlier numbers. Fold a new stream instead.");
        return this with { Counter = Counter + 1 };
    }

    /// <summary>
    /// An independent child generator for <paramref name="data"/> (a layer index, a rank, a
    /// purpose): seed = Philox((Stream, Counter, data, "Fold"), Seed) words 0 and 1, stream =
    /// <paramref name="data"/>, counter 0. Deterministic: the same parent and data give the same child.
    /// </summary>
    /// <param name="data">The value to fold in.</param>
    /// <returns>The child.</returns>
    public Rng Fold(uint data) => Derive(data, FoldTag);

    /// <summary>
    /// <paramref name="count"/> independent children, as <see cref="Fold"/> with a different tag:
    /// child i has seed Philox((Stream, Counter, i, "Splt"), Seed) and stream i. Split(n) is a
    /// prefix of Split(m) for n &lt;= m.
    /// </summary>
    /// <param name="count">Number of children (zero or more).</param>
    /// <returns>The children.</returns>
    public Rng[] Split(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var children = new Rng[count];
        for (int i = 0; i < count; i++)
            children[i] = Derive((uint)i, SplitTag);
        return children;
    }

    /// <summary>A new tensor of uniform floats in [0, 1) (24 random bits each).</summary>
    /// <param name="device">The device.</param>
    /// <param name="shape">The shape.</param>
    /// <returns>A Float32 tensor; element i depends only on (Seed, Stream, Counter, i).</returns>
    public Tensor Uniform(Device device, Shape shape) =>
        Fill(device, shape, (host, y) => Philox.Uniform(host, y, Seed, Stream, Counter));

    /// <summary>A new tensor of normal floats, mean + std * z with z standard normal (Box-Muller).</summary>
    /// <param name="device">The device.</param>
    /// <param name="shape">The shape.</param>
    /// <param name="mean">Mean.</param>
    /// <param name="std">Standard deviation (zero or more).</param>
    /// <returns>A Float32 tensor; element i depends only on (Seed, Stream, Counter, i).</returns>
    public Tensor Normal(Device device, Shape shape, float mean = 0f, float std = 1f) =>
        Fill(device, shape, (host, y) => Philox.Normal(host, y, Seed, Stream, Counter, mean, std));

    /// <summary>A new tensor of Bernoulli(p) draws: 1 with probability <paramref name="p"/>, else 0.</summary>
    /// <param name="device">The device.</param>
    /// <param name="shape">The shape.</param>
    /// <param name="p">Probability of a 1, in [0, 1].</param>
    /// <returns>A Float32 tensor of ones and zeros; element i depends only on (Seed, Stream, Counter, i).</returns>
    public Tensor Bernoulli(Device device, Shape shape, float p) =>
        Fill(device, shape, (host, y) => Philox.Bernoulli(host, y, p, Seed, Stream, Counter));

    /// <inheritdoc/>
    public override string ToString() => $"Rng(seed 0x{Seed:X16}, stream {Stream}, counter {Counter})";

    private Rng Derive(uint data, uint tag)
    {
        var w = Philox.Block(new PhiloxWords(Stream, Counter, data, tag), (uint)Seed, (uint)(Seed >> 32));
        return new Rng(w.X0 | ((ulong)w.X1 << 32), data, 0);
    }

    private static Tensor Fill(Device device, Shape shape, Action<KernelHost, ArrayView<float>> launch)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(shape);
        var t = Tensor.Empty(device, shape);
        try
        {
            launch(device.Kernels, t.View<float>());
            return t;
        }
        catch
        {
            t.Dispose();
            throw;
        }
    }
}
