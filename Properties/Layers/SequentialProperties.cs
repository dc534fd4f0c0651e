using IlgpuTrain.Layers;

namespace IlgpuTrain.Properties.Layers;

/// <summary>
/// Sequential: composition is associative (structure, parameter names, outputs), Then is &gt;&gt;,
/// names follow state_dict, Apply leaves its inputs alone, and the pipeline's VJP equals finite
/// differences of the composed float64 reference.
/// </summary>
public class SequentialProperties
{
    // Two float32 GEMMs and a tanh against float64.
    private const double Atol = 3e-4;
    private const double Rtol = 3e-3;

    private static readonly Func<Layer>[] Pieces =
    [
        () => new Dense(3),
        () => new Dense(5, UseBias: false),
        () => new Tanh(),
        () => new ReLU(),
        () => new Dense(4) >> new Sigmoid(),
        () => new Residual(new Dense(2)),
        () => new Flatten(),
    ];

    private static Gen<(Layer A, Layer B, Layer C, int D, int Seed)> Triple =>
        from a in Gen.Choose(0, Pieces.Length - 1)
        from b in Gen.Choose(0, Pieces.Length - 1)
        from c in Gen.Choose(0, Pieces.Length - 1)
        from d in Gens.Width
        from seed in Gens.LayerSeed
        select (Pieces[a](), Pieces[b](), Pieces[c](), d, seed);

    [Property(MaxTest = 40)]
    public Property Composition_is_associative_in_structure_names_and_outputs() =>
        Prop.ForAll(Triple.ToArbitrary(), t =>
        {
            var left = (t.A >> t.B) >> t.C;
            var right = t.A >> (t.B >> t.C);
            var sample = new Shape(2);
            bool shapesOk;
            try
            {
                _ = left.OutputShape(sample);
                shapesOk = true;
            }
            catch (LayerShapeException)
            {
                shapesOk = false;
            }

            var result = left.Equals(right).Label("(a >> b) >> c equals a >> (b >> c)")
                .And((left.GetHashCode() == right.GetHashCode()).Label("equal hash codes"))
                .And(left.Equals(t.A.Then(t.B).Then(t.C)).Label("Then is >>"))
                .And(left.Equals(t.A.Then(t.B.Then(t.C))).Label("Then is associative"));
            if (!shapesOk)
            {
                // Residual(Dense(2)) after a layer that changes the width: both sides must fail alike.
                var el = Record.Exception(() => left.OutputShape(sample));
                var er = Record.Exception(() => right.OutputShape(sample));
                return result.And((el?.Message == er?.Message).Label("same shape error on both sides"));
            }

            var (pl, sl) = left.Init(Devices.Cpu, sample, Rng.Create((ulong)t.Seed));
            var (pr, sr) = right.Init(Devices.Cpu, sample, Rng.Create((ulong)t.Seed));
            using (pl)
            using (sl)
            using (pr)
            using (sr)
            using (var step = Devices.Cpu.BeginStep())
            {
                var x = step.Upload(GradCheck.Values(t.Seed, 6), new Shape(3, 2));
                var yl = left.Predict(pl, sl, x).ToHost();
                var yr = right.Predict(pr, sr, x).ToHost();
                return result
                    .And(pl.Layout.Equals(pr.Layout).Label($"same parameter layout:\n{pl.Layout}\nversus\n{pr.Layout}"))
                    .And(pl.Flat().SequenceEqual(pr.Flat()).Label("same initial values"))
                    .And(yl.SequenceEqual(yr).Label("bitwise equal outputs"));
            }
        });

    [Fact]
    public void Parameter_names_follow_state_dict()
    {
        var model = new Dense(4) >> new ReLU() >> new Dense(3) >> new Sequential(new Dense(2), new Tanh()) >> new Residual(new Dense(2) >> new Tanh(), new Dense(2, UseBias: false));
        var (p, s) = model.Init(Devices.Cpu, new Shape(5), Rng.Create(3));
        using (p)
        using (s)
        {
            Assert.Equal(
                ["0.weight", "0.bias", "2.weight", "2.bias", "3.weight", "3.bias", "5.block.0.weight", "5.block.0.bias", "5.shortcut.weight"],
                p.Layout.Params.Select(i => i.Path));
            Assert.Equal([4, 5], p.Layout["0.weight"].Shape.ToArray());
            Assert.Equal([2, 2], p.Layout["5.shortcut.weight"].Shape.ToArray());
        }

        var nested = new Sequential(new Dense(2), new Sequential(new Dense(3), new Tanh()));
        var (pn, sn) = nested.Init(Devices.Cpu, new Shape(1), Rng.Create(3));
        using (pn)
        using (sn)
            Assert.Equal(["0.weight", "0.bias", "1.0.weight", "1.0.bias"], pn.Layout.Params.Select(i => i.Path));
    }

    [Property(MaxTest = 20)]
    public Property Apply_never_changes_its_parameters_or_state() =>
        Prop.ForAll(Triple.ToArbitrary(), t =>
        {
            var model = new Dense(t.D) >> new Tanh() >> new Residual(new Dense(t.D) >> new Tanh()) >> new Dense(2) >> t.A;
            var sample = new Shape(3);
            var (p, s) = model.Init(Devices.Cpu, sample, Rng.Create((ulong)t.Seed));
            using (p)
            using (s)
            {
                var before = p.Snapshot();
                var stateBefore = s.Snapshot();
                using (var step = Devices.Cpu.BeginStep())
                {
                    var x = step.Upload(GradCheck.Values(t.Seed, 12), new Shape(4, 3));
                    var (loss, grads) = Autodiff.ValueAndGrad(step, p, q =>
                    {
                        var (y, _) = model.Apply(q, s, x, Mode.Train, Rng.Create(1));
                        return F.Mean(F.Mul(y, y));
                    });
                    grads.Dispose();
                    _ = model.Apply(Params.Bind(p, step), s, x, Mode.Eval, Rng.Create(1));
                }

                var after = p.Snapshot();
                var stateAfter = s.Snapshot();
                return before.Float32.SequenceEqual(after.Float32).Label("parameters unchanged, bit for bit")
                    .And(stateBefore.Float32.SequenceEqual(stateAfter.Float32).Label("state unchanged"))
                    .And(stateBefore.Int32.SequenceEqual(stateAfter.Int32).Label("int state unchanged"));
            }
        });

    [Property(MaxTest = 30)]
    public Property Small_pipeline_vjp_matches_finite_differences() =>
        Prop.ForAll((from n in Gens.Batch from d in Gens.Width from h in Gens.Width from f in Gens.Width from seed in Gens.LayerSeed select (n, d, h, f, seed)).ToArbitrary(), c =>
        {
            var model = new Dense(c.h) >> new Tanh() >> new Dense(c.f);
            double[] Reference(IReadOnlyDictionary<string, double[]> v)
            {
                var a = LayerReference.Dense(v[LayerGradCheck.InputName], v["0.weight"], v["0.bias"], c.d, c.h);
                return LayerReference.Dense(LayerReference.Map(a, Math.Tanh), v["2.weight"], v["2.bias"], c.h, c.f);
            }

            var device = c.seed % 3 == 0 ? Devices.CpuKernels : Devices.Cpu;
            return LayerGradCheck.Check(device, model, new Shape(c.d), c.n, c.seed, Reference, Atol, Rtol);
        });

    [Fact]
    public void An_empty_pipeline_is_the_identity_and_nulls_are_rejected()
    {
        var empty = new Sequential();
        Assert.Equal(new Shape(2, 3), empty.OutputShape(new Shape(2, 3)));
        Assert.Equal(0, empty.Count);
        Assert.Throws<ArgumentNullException>(() => new Sequential(new Tanh(), null!));
        var three = new Dense(2) >> new Tanh() >> new Dense(1);
        Assert.Equal(3, three.Count);
        Assert.Equal(new Tanh(), three[1]);
        Assert.Equal("Sequential(3 layers)", three.Describe());
    }
}
