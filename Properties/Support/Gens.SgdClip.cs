using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Support;

/// <summary>SGD hyperparameters (PyTorch's valid combinations).</summary>
/// <param name="Lr">Learning rate.</param>
/// <param name="Momentum">μ (0: no momentum buffer).</param>
/// <param name="Dampening">τ (0 whenever Nesterov is set).</param>
/// <param name="WeightDecay">Coupled weight decay λ.</param>
/// <param name="Nesterov">Nesterov momentum (only with μ &gt; 0).</param>
public sealed record SgdHyper(double Lr, double Momentum, double Dampening, double WeightDecay, bool Nesterov)
{
    /// <summary>The optimizer with these hyperparameters.</summary>
    /// <param name="mask">Which parameters decay.</param>
    /// <returns>The optimizer.</returns>
    public Sgd ToSgd(ParamMask? mask = null) => new(Lr, Momentum, Dampening, WeightDecay, Nesterov, mask);
}

/// <summary>Generators for SGD, clipping and masking properties.</summary>
public static partial class Gens
{
    /// <summary>
    /// Valid SGD hyperparameters: momentum 0 (plain SGD), common values or uniform; dampening
    /// and weight decay 0 half of the time; Nesterov only where PyTorch allows it.
    /// </summary>
    public static Gen<SgdHyper> SgdHypers { get; } =
        from lr in Gen.OneOf(Gen.Constant(0.1), Gen.Choose(1, 500).Select(k => k / 1000.0))
        from mu in Gen.OneOf(Gen.Elements(0.0, 0.5, 0.9), Gen.Choose(1, 990).Select(k => k / 1000.0))
        from damp in Gen.OneOf(Gen.Constant(0.0), Gen.Elements(0.1, 0.5, 1.0))
        from wd in Gen.OneOf(Gen.Constant(0.0), Gen.Elements(1e-3, 0.1, 0.5))
        from nesterov in Gen.Elements(false, true)
        select new SgdHyper(lr, mu, nesterov && mu > 0 ? 0 : damp, wd, nesterov && mu > 0);

    /// <summary>
    /// Parameter masks over <see cref="Trees.Layouts"/>: everything, nothing, contiguous
    /// (layer 0), scattered (weights only, biases only) and complements.
    /// </summary>
    public static Gen<ParamMask> ParamMasks { get; } = Gen.Elements(
        ParamMask.All,
        ParamMask.None,
        ParamMask.ByName("0.*"),
        ParamMask.ByName("0.*").Not(),
        ParamMask.ByRank(2),
        ParamMask.ByName("*.bias"),
        ParamMask.ByName("1.*", "3.weight"));
}
