namespace IlgpuTrain.Layers;

/// <summary>Which initialization a Dense or Conv2d weight gets.</summary>
public enum WeightInit
{
    /// <summary>PyTorch's default: kaiming_uniform_(a = sqrt 5), which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)).</summary>
    Default,

    /// <summary>kaiming_normal_(mode fan_in, relu): N(0, 2 / fan_in), for deep ReLU nets.</summary>
    KaimingNormal,

    /// <summary>kaiming_uniform_(a = 0, relu): U(-sqrt(6 / fan_in), sqrt(6 / fan_in)).</summary>
    KaimingUniform,

    /// <summary>xavier_uniform_: U(-b, b), b = sqrt(6 / (fan_in + fan_out)), for tanh and sigmoid nets.</summary>
    XavierUniform,

    /// <summary>xavier_normal_: N(0, 2 / (fan_in + fan_out)).</summary>
    XavierNormal,
}

/// <summary>Maps <see cref="WeightInit"/> to initializers.</summary>
public static class WeightInits
{
    /// <summary>The initializer for a weight with <paramref name="fans"/>.</summary>
    /// <param name="scheme">The scheme.</param>
    /// <param name="fans">The weight's fans.</param>
    /// <returns>The initializer.</returns>
    public static Initializer For(this WeightInit scheme, Fans fans) => scheme switch
    {
        WeightInit.Default => Initializer.KaimingUniform(fans),
        WeightInit.KaimingNormal => Initializer.KaimingNormal(fans),
        WeightInit.KaimingUniform => Initializer.KaimingUniform(fans, a: 0),
        WeightInit.XavierUniform => Initializer.XavierUniform(fans),
        WeightInit.XavierNormal => Initializer.XavierNormal(fans),
        _ => throw new ArgumentOutOfRangeException(nameof(scheme), scheme, "Unknown weight initialization."),
    };
}
