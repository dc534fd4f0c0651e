using IlgpuTrain.Layers;
using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Layers;

/// <summary>
/// Freezing: frozen parameters get exactly zero gradient (even when the gradient tree reuses pool
/// memory), trainable ones get the unfrozen gradient, the tape skips frozen work, and the
/// optimizer side (ParamMask.From) agrees.
/// </summary>
public class FreezingProperties
{
    private static readonly string[][] Patterns = [["0.*"], ["2.*"], ["**.bias"], ["0.weight", "4.*"], ["*.weight"], ["4.bias"]];

    private static Gen<(int D, int H, int N, string[] Globs, bool Only, int Seed)> Case =>
        from d in Gens.Width
        from h in Gens.Width
        from n in Gen.Elements(1, 3, 5)
        from globs in Gen.Elements(Patterns)
        from only in Gen.Elements(false, true)
        from seed in Gens.LayerSeed
        select (d, h, n, globs, only, seed);

    private static readonly Sequential Model = new Dense(5) >> new Tanh() >> new Dense(4) >> new Tanh() >> new Dense(2);

    [Property(MaxTest = 40)]
    public Property Frozen_parameters_get_zero_gradient_and_trainable_ones_the_unfrozen_gradient() =>
        Prop.ForAll(Case.ToArbitrary(), c =>
        {
            var model = new Dense(c.H) >> new Tanh() >> new Dense(4) >> new Tanh() >> new Dense(2);
            var (p, s) = model.Init(Devices.Cpu, new Shape(c.D), Rng.Create((ulong)c.Seed));
            using (p)
            using (s)
            {
                var x = GradCheck.Values(c.Seed, c.N * c.D);
                var trainable = c.Only ? Freezing.TrainableOnly(c.Globs) : Freezing.Frozen(c.Globs);
                var frozenSet = ParamFilter.Glob(c.Globs);

                // The unfrozen run first, so its gradient buffer goes back to the pool and the frozen run may reuse it.
                var full = Grads(model, p, s, x, c.N, c.D, null, out _);
                var part = Grads(model, p, s, x, c.N, c.D, trainable, out var ops);
                var result = true.Label($"{(c.Only ? "only" : "frozen")} {string.Join(" ", c.Globs)}");
                foreach (var info in p.Layout.Params)
                {
                    bool trains = c.Only ? frozenSet.Matches(info.Path) : !frozenSet.Matches(info.Path);
                    var got = part[info.Path].Data;
                    result = trains
                        ? result.And(Close.All(got, full[info.Path].Data, 0, 0, $"trainable {info.Path} equals its unfrozen gradient"))
                        : result.And(got.All(v => v == 0 && !float.IsNegative(v)).Label($"frozen {info.Path} has exactly zero gradient"))
                            .And((!ops.Contains("param " + info.Path)).Label($"frozen {info.Path} is no tape leaf"));
                }

                return result;
            }
        });

    [Fact]
    public void A_frozen_prefix_records_no_backward_work()
    {
        var (p, s) = Model.Init(Devices.Cpu, new Shape(3), Rng.Create(1));
        using (p)
        using (s)
        {
            _ = Grads(Model, p, s, GradCheck.Values(1, 6), 2, 3, Freezing.Frozen("0.*"), out var ops);

            // Layer 0's Linear reads only the constant input and frozen parameters: nothing of it is recorded.
            Assert.Equal(2, ops.Count(o => o == "Linear"));
            Assert.DoesNotContain("param 0.weight", ops);
            _ = Grads(Model, p, s, GradCheck.Values(1, 6), 2, 3, Freezing.TrainableOnly("**"), out var all);
            Assert.Equal(3, all.Count(o => o == "Linear"));
        }
    }

    [Fact]
    public void Report_lists_each_parameter_with_its_flag_and_the_totals()
    {
        var (p, s) = Model.Init(Devices.Cpu, new Shape(3), Rng.Create(1));
        using (p)
        using (s)
        {
            var report = Freezing.Report(p.Layout, Freezing.Frozen("0.*", "2.bias"));
            Assert.Equal(["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"], report.Rows.Select(r => r.Path));
            Assert.Equal([false, false, true, false, true, true], report.Rows.Select(r => r.Trainable));
            Assert.Equal(20 + 10, report.TrainableCount);
            Assert.Equal(15 + 5 + 4, report.FrozenCount);
            Assert.Equal(p.Count, report.TrainableCount + report.FrozenCount);
            string text = report.ToString();
            Assert.Contains("Trainable: 30 of 54 values (frozen 24)", text, StringComparison.Ordinal);
            Assert.Contains(text.Split('\n'), l => l.StartsWith("0.weight", StringComparison.Ordinal) && l.TrimEnd().EndsWith("frozen", StringComparison.Ordinal));
            Assert.Equal(p.Count, Freezing.Report(p.Layout).TrainableCount);

            Freezing.RequireMatches(p.Layout, "0.*", "**.bias");
            var e = Assert.Throws<ArgumentException>(() => Freezing.RequireMatches(p.Layout, "layer0.*"));
            Assert.Contains("layer0.*", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void The_optimizer_mask_selects_what_the_filter_selects_and_frozen_parameters_keep_their_bits()
    {
        var (p, s) = Model.Init(Devices.Cpu, new Shape(3), Rng.Create(1));
        using (s)
        {
            var trainable = Freezing.Frozen("0.*");
            Assert.Equal(trainable.Select(p.Layout), ParamMask.From(trainable).Select(p.Layout).Select(i => i.Path));
            var before = p.ToHost();
            var grads = Grads(Model, p, s, GradCheck.Values(1, 6), 2, 3, null, out _);
            using var g = ParamTree.FromHost(Devices.Cpu, grads);
            var sgd = Freeze.AllExcept(ParamMask.From(trainable), new Sgd(0.5));
            var state = sgd.Init(p);
            var (next, _) = sgd.Step(p, g, state);
            using (next)
            {
                var after = next.ToHost();
                Assert.Equal(before["0.weight"].Data, after["0.weight"].Data);
                Assert.Equal(before["0.bias"].Data, after["0.bias"].Data);
                Assert.NotEqual(before["2.weight"].Data, after["2.weight"].Data);
            }
        }
    }

    [Fact]
    public void Filters_describe_themselves_and_plug_into_grad_options()
    {
        var options = Freezing.Frozen("0.*").AsGradOptions(seed: 4f);
        Assert.Equal(4f, options.Seed);
        Assert.Equal("all but 0.*", options.Trainable!.Description);
        Assert.False(options.Trainable.Matches("0.weight"));
        Assert.True(options.Trainable.Matches("10.weight"));
        Assert.True(Freezing.TrainableOnly("**.bias").Matches("3.block.0.bias"));
        Assert.False(Freezing.TrainableOnly("*.bias").Matches("3.block.0.bias"));
        Assert.Throws<ArgumentException>(() => Freezing.Frozen());
    }

    /// <summary>d mean(model(x)^2) / d params with a trainable filter, and the ops the tape recorded.</summary>
    private static Dictionary<string, (int[] Shape, float[] Data)> Grads(Layer model, ParamTree p, ParamTree s, float[] x, int n, int d, ParamFilter? trainable, out List<string> ops)
    {
        using var step = Devices.Cpu.BeginStep();
        var xt = step.Upload(x, new Shape(n, d));
        List<string>? recorded = null;
        var (_, grads) = Autodiff.ValueAndGrad(step, p, q =>
        {
            var (y, _) = model.Apply(q, s, xt, Mode.Train, Rng.Create(1));
            var loss = F.Mean(F.Mul(y, y));
            recorded = step.Tape!.Ops.ToList();
            return loss;
        }, trainable?.AsGradOptions());
        ops = recorded!;
        using (grads)
            return grads.ToHost();
    }
}
