namespace IlgpuTrain.Layers;

/// <summary>Fan-in and fan-out of a weight, as PyTorch's <c>_calculate_fan_in_and_fan_out</c>: for (F, D, k...) fan_in = D prod(k), fan_out = F prod(k).</summary>
/// <param name="In">fan_in.</param>
/// <param name="Out">fan_out.</param>
public readonly record struct Fans(int In, int Out)
{
    /// <summary>The fans of a weight of <paramref name="shape"/> (rank at least 2).</summary>
    /// <param name="shape">(F, D, k...).</param>
    /// <returns>The fans.</returns>
    public static Fans Of(Shape shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (shape.Rank < 2)
            throw new ArgumentException($"Fans need a weight of rank 2 or more, but the shape is {shape}.", nameof(shape));
        long receptive = 1;
        for (int i = 2; i < shape.Rank; i++)
            receptive *= shape[i];
        return new Fans(checked((int)(shape[1] * receptive)), checked((int)(shape[0] * receptive)));
    }
}

/// <summary>
/// How a parameter is initialized. Values are drawn from the counter-based generator on the host,
/// so a seed gives the same model on every device.
/// </summary>
public abstract record Initializer
{
    /// <summary>Draws the values.</summary>
    /// <param name="shape">The parameter's shape.</param>
    /// <param name="rng">Its own randomness.</param>
    /// <returns>shape.Length values, row-major.</returns>
    public abstract float[] Sample(Shape shape, Rng rng);

    /// <summary>All zeros.</summary>
    public static Initializer Zeros { get; } = new ConstantInit(0f);

    /// <summary>All ones.</summary>
    public static Initializer Ones { get; } = new ConstantInit(1f);

    /// <summary>U(-bound, bound).</summary>
    /// <param name="bound">Half-width.</param>
    /// <returns>The initializer.</returns>
    public static Initializer Uniform(double bound) => new UniformInit(-bound, bound);

    /// <summary>N(0, std^2).</summary>
    /// <param name="std">Standard deviation.</param>
    /// <returns>The initializer.</returns>
    public static Initializer Normal(double std) => new NormalInit(std);

    /// <summary>
    /// PyTorch's default for Linear and Conv weights: kaiming_uniform_(a = sqrt 5), i.e.
    /// U(-b, b) with b = gain sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2)), which is 1 / sqrt(fan_in).
    /// </summary>
    /// <param name="fans">The weight's fans.</param>
    /// <param name="a">Negative slope of the rectifier after the layer (sqrt 5 in PyTorch's default).</param>
    /// <returns>The initializer.</returns>
    public static Initializer KaimingUniform(Fans fans, double a = 2.23606797749979) =>
        Uniform(Math.Sqrt(2.0 / (1 + (a * a))) * Math.Sqrt(3.0 / Math.Max(1, fans.In)));

    /// <summary>kaiming_normal_(mode fan_in, nonlinearity relu): N(0, 2 / fan_in).</summary>
    /// <param name="fans">The weight's fans.</param>
    /// <returns>The initializer.</returns>
    public static Initializer KaimingNormal(Fans fans) => Normal(Math.Sqrt(2.0 / Math.Max(1, fans.In)));

    /// <summary>xavier_uniform_: U(-b, b), b = gain sqrt(6 / (fan_in + fan_out)).</summary>
    /// <param name="fans">The weight's fans.</param>
    /// <param name="gain">Gain (1).</param>
    /// <returns>The initializer.</returns>
    public static Initializer XavierUniform(Fans fans, double gain = 1) => Uniform(gain * Math.Sqrt(6.0 / Math.Max(1, fans.In + fans.Out)));

    /// <summary>xavier_normal_: N(0, gain^2 2 / (fan_in + fan_out)).</summary>
    /// <param name="fans">The weight's fans.</param>
    /// <param name="gain">Gain (1).</param>
    /// <returns>The initializer.</returns>
    public static Initializer XavierNormal(Fans fans, double gain = 1) => Normal(gain * Math.Sqrt(2.0 / Math.Max(1, fans.In + fans.Out)));

    /// <summary>PyTorch's default bias of Linear and Conv: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).</summary>
    /// <param name="fans">The weight's fans.</param>
    /// <returns>The initializer.</returns>
    public static Initializer FanInBias(Fans fans) => Uniform(fans.In > 0 ? 1.0 / Math.Sqrt(fans.In) : 0);
}

/// <summary>Every value equals <paramref name="Value"/>.</summary>
/// <param name="Value">The value.</param>
public sealed record ConstantInit(float Value) : Initializer
{
    /// <inheritdoc/>
    public override float[] Sample(Shape shape, Rng rng)
    {
        var v = new float[shape.Length];
        Array.Fill(v, Value);
        return v;
    }
}

/// <summary>U(Low, High) from Philox words.</summary>
/// <param name="Low">Lower bound.</param>
/// <param name="High">Upper bound.</param>
public sealed record UniformInit(double Low, double High) : Initializer
{
    /// <inheritdoc/>
    public override float[] Sample(Shape shape, Rng rng)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(rng);
        var v = new float[shape.Length];
        for (int i = 0; i < v.Length; i++)
            v[i] = (float)(Low + ((High - Low) * Philox.UniformAt(rng.Seed, rng.Stream, rng.Counter, i)));
        return v;
    }
}

/// <summary>N(0, Std^2) from Philox words (Box-Muller).</summary>
/// <param name="Std">Standard deviation.</param>
public sealed record NormalInit(double Std) : Initializer
{
    /// <inheritdoc/>
    public override float[] Sample(Shape shape, Rng rng)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(rng);
        var v = new float[shape.Length];
        for (int i = 0; i < v.Length; i++)
            v[i] = (float)(Std * Philox.NormalAt(rng.Seed, rng.Stream, rng.Counter, i));
        return v;
    }
}
