using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Support;

/// <summary>Generators for loss scaling, ApplyIfFinite and MultiSteps.</summary>
public static partial class Gens
{
    /// <summary>The non-finite values injected into gradients: NaN (default and a custom payload), +inf, −inf.</summary>
    public static readonly float[] NonFinite = [float.NaN, BitConverter.Int32BitsToSingle(0x7FC0_1234), float.PositiveInfinity, float.NegativeInfinity];

    /// <summary>
    /// A finite vector of generated length with inf/NaN injected: at no position (a quarter of the
    /// time), at the last element only, at random positions, or at random positions and the last.
    /// </summary>
    /// <returns>The generator.</returns>
    public static Gen<Poisoned> PoisonedVector() =>
        from n in Length
        from seed in Gen.Choose(int.MinValue, int.MaxValue)
        from mode in Gen.Choose(0, 3)
        select Poison(Random(seed, n, -1000f, 1000f), mode, seed);

    /// <summary>Loss scales: 1 (the pure check), powers of two from 2⁻⁴ to 2²⁴, or any value in [0.5, 70000].</summary>
    public static Gen<float> LossScaleValue { get; } = Gen.OneOf(
        Gen.Constant(1f),
        Gen.Choose(-4, 24).Select(k => MathF.ScaleB(1f, k)),
        Float(0.5f, 70000f));

    /// <summary>Injects non-finite values into <paramref name="values"/> (in place) by mode 0 none, 1 last, 2 random, 3 random and last.</summary>
    /// <param name="values">Finite values.</param>
    /// <param name="mode">Where to inject.</param>
    /// <param name="seed">Seed for positions and kinds.</param>
    /// <returns>The poisoned vector and its bad positions.</returns>
    public static Poisoned Poison(float[] values, int mode, int seed)
    {
        var rng = new Random(seed ^ 0x5bd1e995);
        var bad = new SortedSet<int>();
        int n = values.Length;
        if (n > 0 && (mode == 1 || mode == 3))
            bad.Add(n - 1);
        if (n > 0 && mode >= 2)
        {
            int count = 1 + rng.Next(Math.Min(n, 4));
            for (int i = 0; i < count; i++)
                bad.Add(rng.Next(n));
        }
        foreach (int i in bad)
            values[i] = NonFinite[rng.Next(NonFinite.Length)];
        return new Poisoned(values, bad.ToArray());
    }
}

/// <summary>A vector with non-finite values at <paramref name="Bad"/>.</summary>
/// <param name="Values">The values.</param>
/// <param name="Bad">Positions holding inf or NaN, ascending.</param>
public sealed record Poisoned(float[] Values, int[] Bad)
{
    /// <inheritdoc/>
    public override string ToString() => $"Poisoned(n {Values.Length}, bad at [{string.Join(", ", Bad)}])";
}

/// <summary>
/// A test-only transformation with device moments and a count: b ← μ·b + g, u ← b. It stands in
/// for SGD momentum and Adam (built elsewhere) where a property must show that a skipped step
/// leaves moments and counts bitwise unchanged.
/// </summary>
/// <param name="Mu">Momentum μ.</param>
public sealed record MomentumProbe(float Mu) : IGradientTransformation
{
    /// <inheritdoc/>
    public string Name => "momentum_probe";

    /// <inheritdoc/>
    public OptState Init(ParamTree parameters) => new MomentumProbeState(parameters.ZerosLike(), 0);

    /// <inheritdoc/>
    public UpdateResult Update(ParamTree grads, OptState state, ParamTree parameters, UpdateContext context)
    {
        var s = Chain.Expect<MomentumProbeState>(state, this);
        var k = grads.Device.Kernels;
        var b = s.Momentum.Flat32;
        Elementwise.Scale(k, b, Mu, b);
        Elementwise.Axpy(k, 1f, grads.Flat32, b);
        Transfer.Copy(grads.Device.Stream, b, grads.Flat32);
        var moved = s.Momentum.Consume(Name);
        s.MarkConsumed(Name + ".Update");
        return new UpdateResult(grads.Consume(Name), new MomentumProbeState(moved, s.Count + 1));
    }

    /// <summary>The same rule on the host, in float: b ← μ·b + g; returns b.</summary>
    /// <param name="b">Momentum, updated.</param>
    /// <param name="g">Gradient.</param>
    /// <param name="mu">μ.</param>
    /// <returns>A copy of the new b.</returns>
    public static float[] Host(float[] b, float[] g, float mu)
    {
        for (int i = 0; i < b.Length; i++)
            b[i] = (mu * b[i]) + g[i];
        return (float[])b.Clone();
    }
}

/// <summary>The state of <see cref="MomentumProbe"/>.</summary>
/// <param name="Momentum">b.</param>
/// <param name="Count">Updates done.</param>
public sealed record MomentumProbeState(ParamTree Momentum, long Count) : OptState
{
    /// <inheritdoc/>
    public override void Dispose()
    {
        Momentum.Dispose();
        base.Dispose();
    }
}
