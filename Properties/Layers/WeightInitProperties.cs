using IlgpuTrain.Layers;

namespace IlgpuTrain.Properties.Layers;

/// <summary>
/// Each WeightInit scheme on a Dense weight: PyTorch's default bounds (every weight and bias within
/// 1/sqrt(fan_in), variance bound^2/3), Kaiming and Xavier statistics; two layers of one shape get
/// different draws.
/// </summary>
public class WeightInitProperties
{
    // The sample variance of n draws has a relative standard error of sqrt(2 / n) for a normal
    // and sqrt(0.8 / n) for a uniform (its kurtosis is 9/5). Weights here have 16k to 65k draws,
    // so a fixed 3 % would be only 2.7 standard errors at 16k (a failure in a few hundred runs);
    // 5.5 standard errors (about 4e-8 per case) still tells every scheme from the others.
    private static double VarianceRtol(int n, bool normal) => 5.5 * Math.Sqrt((normal ? 2.0 : 0.8) / n);

    private static Gen<(WeightInit Scheme, int D, int F, int Seed)> Case =>
        from scheme in Gen.Elements(Enum.GetValues<WeightInit>())
        from d in Gen.Elements(128, 256, 300)
        from f in Gen.Elements(128, 217)
        from seed in Gens.LayerSeed
        select (scheme, d, f, seed);

    [Property(MaxTest = 15)]
    public Property Dense_weights_follow_their_scheme() =>
        Prop.ForAll(Case.ToArbitrary(), c =>
        {
            var (p, s) = new Dense(c.F, WeightInit: c.Scheme).Init(Devices.Cpu, new Shape(c.D), Rng.Create((ulong)c.Seed));
            using (p)
            using (s)
            {
                var host = p.ToHost();
                var w = host["weight"].Data;
                var b = host["bias"].Data;
                var (_, variance) = InitializerProperties.Moments(w);
                double fanIn = c.D, fanOut = c.F;
                double biasBound = 1 / Math.Sqrt(fanIn);
                // Bounds are compared in float32, as the initializer computes them: U(-b, b) drawn as -b + 2b u can
                // land exactly on -b, and (float)b may round above the double b by half an ulp.
                var biasOk = b.All(v => Math.Abs(v) <= (float)biasBound).Label("bias within 1/sqrt(fan_in) (PyTorch's default for every scheme)");
                Property Uniform(double bound) =>
                    w.All(v => Math.Abs(v) <= (float)bound).Label($"weights within {bound}")
                        .And(Close.Scalar(variance, bound * bound / 3, 0, VarianceRtol(w.Length, normal: false), "variance bound^2/3"));
                var weights = c.Scheme switch
                {
                    WeightInit.Default => Uniform(1 / Math.Sqrt(fanIn)),
                    WeightInit.KaimingUniform => Uniform(Math.Sqrt(6 / fanIn)),
                    WeightInit.XavierUniform => Uniform(Math.Sqrt(6 / (fanIn + fanOut))),
                    WeightInit.KaimingNormal => Close.Scalar(variance, 2 / fanIn, 0, VarianceRtol(w.Length, normal: true), "variance 2/fan_in"),
                    WeightInit.XavierNormal => Close.Scalar(variance, 2 / (fanIn + fanOut), 0, VarianceRtol(w.Length, normal: true), "variance 2/(fan_in + fan_out)"),
                    _ => false.Label($"untested scheme {c.Scheme}"),
                };
                return weights.And(biasOk).Label($"{c.Scheme} on ({c.F}, {c.D})");
            }
        });

    [Property(MaxTest = 20)]
    public Property Every_dense_of_a_model_is_within_its_fan_in_bound_and_twins_differ() =>
        Prop.ForAll((from d in Gens.Width from h in Gens.Width from seed in Gens.LayerSeed select (d, h, seed)).ToArbitrary(), c =>
        {
            var model = new Dense(c.h) >> new ReLU() >> new Dense(c.h) >> new ReLU() >> new Dense(c.h);
            var (p, s) = model.Init(Devices.Cpu, new Shape(c.d), Rng.Create((ulong)c.seed));
            using (p)
            using (s)
            {
                var host = p.ToHost();
                var result = true.Label($"D {c.d}, H {c.h}");
                foreach (var (path, (shape, data)) in host)
                {
                    int fanIn = path.EndsWith(".weight", StringComparison.Ordinal) ? shape[1] : host[path.Replace(".bias", ".weight", StringComparison.Ordinal)].Shape[1];
                    result = result.And(data.All(v => Math.Abs(v) <= (float)(1 / Math.Sqrt(fanIn))).Label($"{path} within 1/sqrt({fanIn})"));
                }

                // Layers 2 and 4 have the same shapes; they must not be initialized alike.
                return result.And((!host["2.weight"].Data.SequenceEqual(host["4.weight"].Data)).Label("same-shaped layers get different draws"));
            }
        });
}
