using IlgpuTrain.Layers;
using IlgpuTrain.Training.Conformance;
using Kernel = IlgpuTrain.Kernels.BatchNorm;

namespace IlgpuTrain.Properties.Kernels;

/// <summary>
/// BatchNorm (Kernels/BatchNorm.cs, F.BatchNorm and Layers/BatchNorm.cs): each kernel equals its
/// float64 reference on both variants; the VJPs equal central finite differences of a float64
/// forward written here (train: mean and var are functions of x; eval: running stats are
/// constants); normalized channels have mean 0 and variance 1; the running statistics follow
/// PyTorch's update exactly (momentum 0.1, unbiased variance); the layer never modifies its
/// input state; and one small case equals PyTorch 1.13's numbers.
/// </summary>
public class BatchNormProperties
{
    // Kernel-versus-reference bounds, shared with the conformance suite (the reasoning is there).
    private const double StatisticsAtol = Tolerances.BatchNorm.StatisticsAtol;
    private const double StatisticsRtol = Tolerances.BatchNorm.StatisticsRtol;
    private const double ElementwiseAtol = Tolerances.BatchNorm.ElementwiseAtol;
    private const double ElementwiseRtol = Tolerances.BatchNorm.ElementwiseRtol;
    private const double SumAtolPerTerm = Tolerances.BatchNorm.SumAtolPerTerm;
    private const double SumRtol = Tolerances.BatchNorm.SumRtol;

    // Finite differences (step 1e-5, float64 forward, truncation ~1e-10) against float kernels
    // whose gradients are of order invstd <= 2 on the well-spread inputs of SmallChannelBatch.
    private const double GradAtol = 2e-4;
    private const double GradRtol = 2e-3;

    private const float Eps = 1e-5f;
    private const float Momentum = 0.1f;

    // ---------------------------------------------------------------- (a) kernels = references

    [Property(MaxTest = 40)]
    public Property Statistics_equals_reference_on_both_variants() =>
        Prop.ForAll(Gens.ChannelBatch.ToArbitrary(), b =>
        {
            var mean = new float[b.C];
            var var = new float[b.C];
            BatchNormReference.StatisticsReference(b.X, b.N, b.C, b.S, mean, var);
            var result = true.Label(b.ToString());
            foreach (var d in Devices.All)
            {
                using var x = d.Upload(b.X);
                using var m = d.Poisoned(b.C);
                using var v = d.Poisoned(b.C);
                Kernel.Statistics(d.Kernels, x.View<float>(), m.View<float>(), v.View<float>(), b.N, b.C, b.S);
                result = result
                    .And(Close.All(m.ToHost(), mean, StatisticsAtol, StatisticsRtol, $"mean on {Devices.Describe(d)}"))
                    .And(Close.All(v.ToHost(), var, StatisticsAtol, StatisticsRtol, $"var on {Devices.Describe(d)}"));
            }

            return result;
        });

    [Property(MaxTest = 40)]
    public Property Normalize_equals_reference_with_and_without_affine() =>
        Prop.ForAll(Gens.ChannelBatch.ToArbitrary(), Gen.Elements(0, 1, 2, 3).ToArbitrary(), (b, affine) =>
        {
            var (mean, var) = ChannelStats(b);
            var gamma = (affine & 1) != 0 ? Gens.Random(b.Seed, b.C, -2f, 2f) : [];
            var beta = (affine & 2) != 0 ? Gens.Random(b.Seed + 1, b.C, -2f, 2f) : [];
            var expected = new float[b.X.Length];
            BatchNormReference.NormalizeReference(b.X, mean, var, gamma, beta, expected, b.N, b.C, b.S, Eps);
            var result = true.Label($"{b}, gamma {gamma.Length > 0}, beta {beta.Length > 0}");
            foreach (var d in Devices.All)
            {
                using var x = d.Upload(b.X);
                using var tm = d.Upload(mean);
                using var tv = d.Upload(var);
                using var g = d.Upload(gamma);
                using var be = d.Upload(beta);
                using var y = d.Poisoned(b.X.Length);
                Kernel.Normalize(d.Kernels, x.View<float>(), tm.View<float>(), tv.View<float>(), gamma.Length > 0 ? g.View<float>() : null, beta.Length > 0 ? be.View<float>() : null, y.View<float>(), b.N, b.C, b.S, Eps);
                result = result.And(Close.All(y.ToHost(), expected, ElementwiseAtol, ElementwiseRtol, $"y on {Devices.Describe(d)}"));
            }

            return result;
        });

    [Property(MaxTest = 30)]
    public Property Running_and_Increment_equal_reference() =>
        Prop.ForAll(Gens.ChannelBatch.ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), (b, count) =>
        {
            var (mean, var) = ChannelStats(b);
            var rm = Gens.Random(b.Seed, b.C, -3f, 3f);
            var rv = Gens.Random(b.Seed + 1, b.C, 0.1f, 3f);
            int m = Math.Max(2, b.M);
            var em = new float[b.C];
            var ev = new float[b.C];
            BatchNormReference.RunningReference(mean, var, m, Momentum, rm, rv, em, ev);
            var d = Devices.Cpu;
            using var tm = d.Upload(mean);
            using var tv = d.Upload(var);
            using var trm = d.Upload(rm);
            using var trv = d.Upload(rv);
            using var nm = d.Poisoned(b.C);
            using var nv = d.Poisoned(b.C);
            using var nbt = d.Upload(new[] { count });
            using var next = d.Upload(new[] { -1 });
            Kernel.Running(d.Kernels, tm.View<float>(), tv.View<float>(), m, Momentum, trm.View<float>(), trv.View<float>(), nm.View<float>(), nv.View<float>());
            Kernel.Increment(d.Kernels, nbt.View<int>(), next.View<int>());
            return Close.All(nm.ToHost(), em, ElementwiseAtol, ElementwiseRtol, "running_mean'")
                .And(Close.All(nv.ToHost(), ev, ElementwiseAtol, ElementwiseRtol, "running_var'"))
                .And((next.ToHost<int>()[0] == count + 1).Label($"num_batches_tracked' = {next.ToHost<int>()[0]}, expected {count + 1}"))
                .And((nbt.ToHost<int>()[0] == count).Label("num_batches_tracked itself unchanged"))
                .Label($"{b}, m {m}");
        });

    [Property(MaxTest = 40)]
    public Property ParamGrads_equals_reference_on_both_variants() =>
        Prop.ForAll(Gens.ChannelBatch.ToArbitrary(), b =>
        {
            var (mean, var) = ChannelStats(b);
            var dg = new float[b.C];
            var db = new float[b.C];
            BatchNormReference.ParamGradsReference(b.X, b.Dy, mean, var, dg, db, b.N, b.C, b.S, Eps);
            double atol = SumAtolPerTerm * Math.Max(1, b.M);
            var result = true.Label(b.ToString());
            foreach (var d in Devices.All)
            {
                using var x = d.Upload(b.X);
                using var dy = d.Upload(b.Dy);
                using var tm = d.Upload(mean);
                using var tv = d.Upload(var);
                using var tdg = d.Poisoned(b.C);
                using var tdb = d.Poisoned(b.C);
                Kernel.ParamGrads(d.Kernels, x.View<float>(), dy.View<float>(), tm.View<float>(), tv.View<float>(), tdg.View<float>(), tdb.View<float>(), b.N, b.C, b.S, Eps);
                result = result
                    .And(Close.All(tdg.ToHost(), dg, atol, SumRtol, $"dgamma on {Devices.Describe(d)}"))
                    .And(Close.All(tdb.ToHost(), db, atol, SumRtol, $"dbeta on {Devices.Describe(d)}"));
            }

            return result;
        });

    [Property(MaxTest = 40)]
    public Property InputGrad_equals_reference_in_train_and_eval() =>
        Prop.ForAll(Gens.ChannelBatch.ToArbitrary(), Gen.Elements(true, false).ToArbitrary(), Gen.Elements(true, false).ToArbitrary(), (b, training, affine) =>
        {
            var (mean, var) = ChannelStats(b);
            var gamma = affine ? Gens.Random(b.Seed, b.C, -2f, 2f) : [];
            var dg = new float[b.C];
            var db = new float[b.C];
            BatchNormReference.ParamGradsReference(b.X, b.Dy, mean, var, dg, db, b.N, b.C, b.S, Eps);
            var expected = new float[b.X.Length];
            BatchNormReference.InputGradReference(b.X, b.Dy, mean, var, gamma, dg, db, expected, b.N, b.C, b.S, Eps, training);
            var result = true.Label($"{b}, training {training}, affine {affine}");
            foreach (var d in Devices.All)
            {
                using var x = d.Upload(b.X);
                using var dy = d.Upload(b.Dy);
                using var tm = d.Upload(mean);
                using var tv = d.Upload(var);
                using var g = d.Upload(gamma);
                using var tdg = d.Upload(dg);
                using var tdb = d.Upload(db);
                using var dx = d.Poisoned(b.X.Length);
                Kernel.InputGrad(d.Kernels, x.View<float>(), dy.View<float>(), tm.View<float>(), tv.View<float>(), affine ? g.View<float>() : null, tdg.View<float>(), tdb.View<float>(), dx.View<float>(), b.N, b.C, b.S, Eps, training);
                result = result.And(Close.All(dx.ToHost(), expected, ElementwiseAtol, ElementwiseRtol, $"dx on {Devices.Describe(d)}"));
            }

            return result;
        });

    // ---------------------------------------------------------------- (b) the math, independently

    [Property(MaxTest = 25)]
    public Property Train_vjp_matches_finite_differences_of_a_float64_forward() =>
        Prop.ForAll(Gens.SmallChannelBatch.ToArbitrary(), Gen.Elements(true, false).ToArbitrary(), (b, image) =>
        {
            var xShape = image ? new Shape(b.N, b.C, b.S, 1) : b.S == 1 ? new Shape(b.N, b.C) : new Shape(b.N, b.C, b.S);
            var inputs = new[]
            {
                new GradInput("x", xShape, b.X),
                new GradInput("weight", new Shape(b.C), Gens.Random(b.Seed + 2, b.C, 0.5f, 2f)),
                new GradInput("bias", new Shape(b.C), Gens.Random(b.Seed + 3, b.C, -1f, 1f)),
            };
            double[] Reference(double[][] p) => Forward64(p[0], null, null, p[1], p[2], b.N, b.C, b.S);
            var result = true.Label($"{b}, x {xShape}");
            foreach (var d in Devices.All)
            {
                result = result.And(GradCheck.Check(
                    d,
                    inputs,
                    (_, p) => F.BatchNorm(p("x"), p("weight"), p("bias"), null, Mode.Train),
                    Reference,
                    b.Dy,
                    GradAtol,
                    GradRtol).Label($"on {Devices.Describe(d)}"));
            }

            return result;
        });

    [Property(MaxTest = 25)]
    public Property Eval_vjp_matches_finite_differences_with_running_stats_as_constants() =>
        Prop.ForAll(Gens.SmallChannelBatch.ToArbitrary(), b =>
        {
            var rm = Gens.Random(b.Seed + 4, b.C, -1f, 1f);
            var rv = Gens.Random(b.Seed + 5, b.C, 0.3f, 2f);
            var inputs = new[]
            {
                new GradInput("x", new Shape(b.N, b.C, b.S), b.X),
                new GradInput("weight", new Shape(b.C), Gens.Random(b.Seed + 2, b.C, -2f, 2f)),
                new GradInput("bias", new Shape(b.C), Gens.Random(b.Seed + 3, b.C, -1f, 1f)),
            };
            double[] Reference(double[][] p) => Forward64(p[0], rm, rv, p[1], p[2], b.N, b.C, b.S);
            var result = true.Label(b.ToString());
            foreach (var d in Devices.All)
            {
                result = result.And(GradCheck.Check(
                    d,
                    inputs,
                    (step, p) => F.BatchNorm(p("x"), p("weight"), p("bias"), new BatchNormStats(step.Upload(rm, new Shape(b.C)), step.Upload(rv, new Shape(b.C))), Mode.Eval),
                    Reference,
                    b.Dy,
                    GradAtol,
                    GradRtol).Label($"on {Devices.Describe(d)}"));
            }

            return result;
        });

    [Property(MaxTest = 30)]
    public Property Train_output_has_zero_mean_and_unit_variance_per_channel() =>
        Prop.ForAll(Gens.ChannelBatch.ToArbitrary(), b =>
        {
            if (b.M < 2)
                return true.Label("fewer than 2 values per channel: training is undefined");
            var d = Devices.Cpu;
            using var step = d.BeginStep();
            var y = F.BatchNorm(step.Upload(b.X, new Shape(b.N, b.C, b.S)), null, null, null, Mode.Train).ToHost();
            var result = true.Label(b.ToString());
            for (int ch = 0; ch < b.C; ch++)
            {
                var v = Channel(y, b, ch);
                double mu = v.Average();
                double var = v.Sum(t => (t - mu) * (t - mu)) / v.Length;
                var xs = Channel(b.X, b, ch).Select(t => (double)t).ToArray();
                double muX = xs.Average();
                double varX = xs.Sum(t => (t - muX) * (t - muX)) / xs.Length;
                // The float sums round at about u Σ|x|; x̂ divides that by the channel's std, so a
                // channel of nearly equal values is ill conditioned.
                double atol = 1e-6 + (4 * 6e-8 * xs.Sum(Math.Abs) / Math.Sqrt(varX + Eps));
                // var(x̂) = var / (var + eps): 1 minus eps/var, plus float rounding.
                result = result
                    .And(Close.Scalar(mu, 0, atol, 0, $"channel {ch} mean"))
                    .And(Close.Scalar(var, varX / (varX + Eps), atol, 1e-5, $"channel {ch} variance"));
            }

            return result;
        });

    [Property(MaxTest = 30)]
    public Property Running_statistics_use_momentum_and_the_unbiased_variance() =>
        Prop.ForAll(Gens.ChannelBatch.ToArbitrary(), b =>
        {
            if (b.M < 2)
                return true.Label("fewer than 2 values per channel");
            var rm = Gens.Random(b.Seed, b.C, -3f, 3f);
            var rv = Gens.Random(b.Seed + 1, b.C, 0.1f, 3f);
            var d = Devices.Cpu;
            using var step = d.BeginStep();
            var shape = new Shape(b.C);
            var running = new BatchNormStats(step.Upload(rm, shape), step.Upload(rv, shape), step.Upload(new[] { 41 }, Shape.Scalar));
            var updated = new BatchNormStats(step.Allocate(shape), step.Allocate(shape), step.Allocate(Shape.Scalar, DType.Int32));
            F.BatchNorm(step.Upload(b.X, new Shape(b.N, b.C, b.S)), null, null, running, Mode.Train, updated: updated);
            var result = true.Label(b.ToString());
            for (int ch = 0; ch < b.C; ch++)
            {
                var xs = Channel(b.X, b, ch).Select(t => (double)t).ToArray();
                double mu = xs.Average();
                double unbiased = xs.Sum(t => (t - mu) * (t - mu)) / (xs.Length - 1);
                result = result
                    .And(Close.Scalar(updated.Mean.ToHost()[ch], (0.9 * rm[ch]) + (0.1 * mu), StatisticsAtol, StatisticsRtol, $"running_mean'[{ch}]"))
                    .And(Close.Scalar(updated.Var.ToHost()[ch], (0.9 * rv[ch]) + (0.1 * unbiased), StatisticsAtol, StatisticsRtol, $"running_var'[{ch}]"));
            }

            return result
                .And(Close.All(running.Mean.ToHost(), rm, 0, 0, "input running_mean untouched"))
                .And(Close.All(running.Var.ToHost(), rv, 0, 0, "input running_var untouched"))
                .And((updated.NumBatchesTracked!.ToHost<int>()[0] == 42).Label("num_batches_tracked' = 42"))
                .And((running.NumBatchesTracked!.ToHost<int>()[0] == 41).Label("num_batches_tracked untouched"));
        });

    [Property(MaxTest = 20)]
    public Property Layer_apply_returns_new_state_and_leaves_the_input_state_untouched() =>
        Prop.ForAll(Gens.SmallChannelBatch.ToArbitrary(), b =>
        {
            var d = Devices.Cpu;
            Layer layer = b.S == 1 ? new BatchNorm1d() : new BatchNorm2d();
            var sample = b.S == 1 ? new Shape(b.C) : new Shape(b.C, b.S, 1);
            var (p, s0) = layer.Init(d, sample, Rng.Create(1));
            using var ps = p;
            using var state0 = s0;
            var before = state0.Snapshot();
            var xShape = new Shape([b.N, .. sample]);
            using var step = d.BeginStep();
            var x = step.Upload(b.X, xShape);
            var (y1, s1) = layer.Apply(Params.Bind(p, step), state0, x, Mode.Train, Rng.Create(2));
            using var state1 = s1;
            var (_, s2) = layer.Apply(Params.Bind(p, step), state1, x, Mode.Train, Rng.Create(3));
            using var state2 = s2;
            var (yEval, s3) = layer.Apply(Params.Bind(p, step), state2, x, Mode.Eval, Rng.Create(4));
            var after = state0.Snapshot();
            var snap1 = state1.Snapshot();
            var snap2 = state2.Snapshot();

            var rm1 = snap1.Get("running_mean");
            var rv1 = snap1.Get("running_var");
            var expectedEval = Forward64(b.X.Select(t => (double)t).ToArray(), snap2.Get("running_mean"), snap2.Get("running_var"), null, null, b.N, b.C, b.S);
            var result = (!ReferenceEquals(state1, state0)).Label("Train returns a new state tree")
                .And(ReferenceEquals(s3, state2).Label("Eval returns its input state"))
                .And(before.Float32.AsSpan().SequenceEqual(after.Float32).Label("input float buffers untouched"))
                .And(before.Int32.AsSpan().SequenceEqual(after.Int32).Label("input num_batches_tracked untouched"))
                .And((Nbt(before) == 0 && Nbt(snap1) == 1 && Nbt(snap2) == 2).Label($"num_batches_tracked 0, 1, 2: {Nbt(before)}, {Nbt(snap1)}, {Nbt(snap2)}"))
                .And(Close.All(yEval.ToHost(), expectedEval, ElementwiseAtol, ElementwiseRtol, "eval output uses the running statistics"))
                .And((y1.Shape == xShape).Label("output shape"));
            for (int ch = 0; ch < b.C; ch++)
            {
                var xs = Channel(b.X, b, ch).Select(t => (double)t).ToArray();
                double mu = xs.Average();
                double unbiased = xs.Sum(t => (t - mu) * (t - mu)) / (xs.Length - 1);
                result = result
                    .And(Close.Scalar(rm1[ch], 0.1 * mu, StatisticsAtol, StatisticsRtol, $"running_mean[{ch}] after one step"))
                    .And(Close.Scalar(rv1[ch], 0.9 + (0.1 * unbiased), StatisticsAtol, StatisticsRtol, $"running_var[{ch}] after one step"));
            }

            return result.Label(b.ToString());
        });

    // PyTorch 1.13.1, /usr/bin/python3:
    //   x = torch.tensor([[[[1.,2.],[3.,5.]],[[-1.,0.5],[2.,-3.]]],[[[0.,-2.],[4.,1.]],[[1.5,1.],[-0.5,2.5]]]])  # (2, 2, 2, 2)
    //   bn = torch.nn.BatchNorm2d(2); bn.weight = [1.5, -0.5]; bn.bias = [0.25, 1.0]; bn.train()
    //   y = bn(x); y.backward(torch.arange(16.).reshape(2, 2, 2, 2) / 10 - 0.7); bn.eval(); bn(x)
    [Fact]
    public void BatchNorm2d_matches_pytorch_on_a_small_case()
    {
        float[] x = [1, 2, 3, 5, -1, 0.5f, 2, -3, 0, -2, 4, 1, 1.5f, 1, -0.5f, 2.5f];
        float[] y = [-0.28405117988586426f, 0.4280170202255249f, 1.140085220336914f, 2.5642216205596924f, 1.4065710306167603f, 0.963038980960846f, 0.5195069909095764f, 1.9979469776153564f, -0.9961193799972534f, -2.420255661010742f, 1.8521534204483032f, -0.28405117988586426f, 0.6673510074615479f, 0.8151949644088745f, 1.258726954460144f, 0.371662974357605f];
        float[] runningMean = [0.17499999701976776f, 0.03750000149011612f];
        float[] runningVar = [1.4071428775787354f, 1.226785659790039f];
        float[] dx = [-0.4232292175292969f, -0.3099001348018646f, -0.19657108187675476f, -0.04111974686384201f, 0.12263793498277664f, 0.13669508695602417f, 0.1507522314786911f, -0.02423638291656971f, 0.10430312156677246f, 0.09126541763544083f, 0.415205717086792f, 0.36004582047462463f, -0.04120256006717682f, -0.08531331270933151f, -0.1585080772638321f, -0.1008249819278717f];
        float[] dWeight = [-0.996895432472229f, 1.3305960893630981f];
        float[] dBias = [-1.1999998092651367f, 2.0f];
        float[] yEval = [1.2932168245315552f, 2.5577220916748047f, 3.8222274780273438f, 6.351237773895264f, 1.4683516025543213f, 0.7912167310714722f, 0.11408185958862305f, 2.3711979389190674f, 0.028711581602692604f, -2.5002989768981934f, 5.086732864379883f, 1.2932168245315552f, 0.33979347348213196f, 0.5655050873756409f, 1.2426398992538452f, -0.11162975430488586f];
        var dy = Enumerable.Range(0, 16).Select(i => (i / 10f) - 0.7f).ToArray();

        foreach (var d in Devices.All)
        {
            var layer = new BatchNorm2d();
            var (p0, state) = layer.Init(d, new Shape(2, 2, 2), Rng.Create(0));
            using var s0 = state;
            using var p = ParamTree.FromHost(d, [KeyValuePair.Create("weight", (new[] { 2 }, new[] { 1.5f, -0.5f })), KeyValuePair.Create("bias", (new[] { 2 }, new[] { 0.25f, 1f }))]);
            p0.Dispose();
            using var step = d.BeginStep();
            var xt = step.Upload(x, new Shape(2, 2, 2, 2));
            ParamTree? s1 = null;
            float[]? yTrain = null;
            var (_, grads) = Autodiff.ValueAndGrad(step, p, ps =>
            {
                var (yt, next) = layer.Apply(ps, s0, xt, Mode.Train, Rng.Create(1));
                s1 = next;
                yTrain = yt.ToHost();
                return F.Sum(F.Mul(yt, step.Upload(dy, yt.Shape)));
            });
            using var g = grads;
            using var state1 = s1!;
            var gh = g.ToHost();
            var snap = state1.Snapshot();
            var ye = layer.Predict(p, state1, xt).ToHost();
            Assert.True(Close.Check(yTrain!, y, 1e-5, 1e-5, "y").Ok, $"{Devices.Describe(d)}: {Close.Check(yTrain!, y, 1e-5, 1e-5, "y").Label}");
            Assert.True(Close.Check(snap.Get("running_mean"), runningMean, 1e-6, 1e-6, "running_mean").Ok);
            Assert.True(Close.Check(snap.Get("running_var"), runningVar, 1e-6, 1e-6, "running_var").Ok);
            Assert.Equal(1, Nbt(snap));
            Assert.True(Close.Check(gh["weight"].Data, dWeight, 1e-5, 1e-5, "dweight").Ok, Close.Check(gh["weight"].Data, dWeight, 1e-5, 1e-5, "dweight").Label);
            Assert.True(Close.Check(gh["bias"].Data, dBias, 1e-5, 1e-5, "dbias").Ok);
            Assert.True(Close.Check(ye, yEval, 1e-5, 1e-5, "eval y").Ok, Close.Check(ye, yEval, 1e-5, 1e-5, "eval y").Label);

            // dx: x as the only differentiable input, the same forward through F.
            var (_, dxs) = GradCheck.Vjp(
                d,
                [new GradInput("x", new Shape(2, 2, 2, 2), x)],
                (st, q) => F.BatchNorm(q("x"), st.Upload(new[] { 1.5f, -0.5f }, new Shape(2)), st.Upload(new[] { 0.25f, 1f }, new Shape(2)), null, Mode.Train),
                dy);
            Assert.True(Close.Check(dxs["x"], dx, 1e-5, 1e-5, "dx").Ok, Close.Check(dxs["x"], dx, 1e-5, 1e-5, "dx").Label);
        }
    }

    [Fact]
    public void Shapes_and_modes_are_checked_with_clear_messages()
    {
        var d = Devices.Cpu;
        using var step = d.BeginStep();
        var one = step.Upload(new[] { 1f, 2f, 3f }, new Shape(1, 3));
        var e = Assert.Throws<ArgumentException>(() => F.BatchNorm(one, null, null, null, Mode.Train));
        Assert.Contains("more than 1 value per channel", e.Message);
        var x = step.Upload(new float[12], new Shape(4, 3));
        var wrong = step.Upload(new float[2], new Shape(2));
        e = Assert.Throws<ArgumentException>(() => F.BatchNorm(x, wrong, null, null, Mode.Train));
        Assert.Contains("(4, 3)", e.Message);
        Assert.Contains("(2,)", e.Message);
        Assert.Throws<ArgumentException>(() => F.BatchNorm(x, null, null, null, Mode.Eval));
        Assert.Throws<LayerShapeException>(() => new BatchNorm2d().OutputShape(new Shape(3, 4)));
        Assert.Throws<LayerShapeException>(() => new BatchNorm1d().OutputShape(new Shape(3, 4, 5)));
        var specs = new BatchNorm2d().Buffers(new Shape(3, 4, 4));
        Assert.Equal(["running_mean", "running_var", "num_batches_tracked"], specs.Select(s => s.Name));
        Assert.Equal(DType.Int32, specs[2].DType);
        Assert.Empty(new BatchNorm1d(Affine: false).Parameters(new Shape(5)));
    }

    // ---------------------------------------------------------------- (c) managed CPU path against the ILGPU kernels

    // The usual edges (C around multiples of 4, S around multiples of 8: the managed path walks
    // 4 channels side by side and 8 lanes at a time), and now and then a shape large enough that
    // CpuLoops splits it over threads.
    private static Gen<(int N, int C, int S)> ParityShapes { get; } = Gen.Frequency(
        (5, from n in Gen.Elements(0, 1, 2, 3, 17)
            from c in Gen.Elements(1, 3, 4, 5, 8, 17)
            from s in Gen.Elements(1, 2, 7, 8, 9, 17)
            select (n, c, s)),
        (1, Gen.Elements((5, 7, 1999), (9, 32, 256), (2100, 33, 1))));

    private static Arbitrary<((int N, int C, int S) Shape, int Seed, bool Specials)> ParityCases =>
        (from shape in ParityShapes
         from seed in Gen.Choose(0, 1_000_000)
         from specials in Gen.Elements(false, false, true)
         select (shape, seed, specials)).ToArbitrary();

    // The per-channel sums are two algorithms (one loop per channel managed; a shared-memory tree
    // per channel in the kernels), so they agree within twice the float-sum bound, (m + 10) u per
    // unit of Σ|term|, computed here in float64 from the data. A channel with a non-finite value
    // is non-finite on both, the same way (NaN, or the same infinity).
    [Property(MaxTest = 30)]
    public Property Statistics_managed_and_kernels_agree_within_the_sum_bound() =>
        Prop.ForAll(ParityCases, p =>
        {
            var (n, c, s) = p.Shape;
            float[] x = KernelParity.Values(p.Seed, n * c * s, -5f, 5f, p.Specials);
            (float[] Mean, float[] Var) Run(Device d)
            {
                using var tx = d.Upload(x);
                using var mean = d.Poisoned(c);
                using var var = d.Poisoned(c);
                Kernel.Statistics(d.Kernels, tx.View<float>(), mean.View<float>(), var.View<float>(), n, c, s);
                return (mean.ToHost(), var.ToHost());
            }

            var (mm, mv) = Run(Devices.Cpu);
            var (km, kv) = Run(Devices.CpuKernels);
            var result = true.Label($"Statistics {p}");
            for (int ch = 0; ch < c; ch++)
            {
                var values = Channel(x, n, c, s, ch);
                int m = values.Length;
                double exact = values.Sum() / m;
                double unit = 2 * (m + 10) * U / Math.Max(1, m);
                double meanBound = unit * values.Sum(Math.Abs);
                double varBound = (2 * unit * values.Sum(v => (v - exact) * (v - exact))) + (2 * meanBound * values.Sum(v => Math.Abs(v - exact)) / Math.Max(1, m)) + (meanBound * meanBound);
                result = result.And(Agree(mm[ch], km[ch], meanBound, $"mean[{ch}]")).And(Agree(mv[ch], kv[ch], varBound, $"var[{ch}]"));
            }

            return result;
        });

    [Property(MaxTest = 30)]
    public Property Normalize_managed_equals_kernel() =>
        Prop.ForAll(ParityCases, Gen.Elements(0, 1, 2, 3).ToArbitrary(), Gen.Elements(false, true).ToArbitrary(), (p, affine, inPlace) =>
        {
            var (n, c, s) = p.Shape;
            float[][] bufs =
            [
                KernelParity.Values(p.Seed, n * c * s, -5f, 5f, p.Specials), Gens.Random(p.Seed + 1, c, -1f, 1f), Gens.Random(p.Seed + 2, c, 0f, 4f),
                Gens.Random(p.Seed + 3, c, -2f, 2f), Gens.Random(p.Seed + 4, c, -2f, 2f), new float[n * c * s],
            ];
            return KernelParity.Same($"Normalize {p}, affine {affine}, in place {inPlace}", bufs, [], (h, f, _) =>
                Kernel.Normalize(h, f[0], f[1], f[2], (affine & 1) != 0 ? f[3] : null, (affine & 2) != 0 ? f[4] : null, inPlace ? f[0] : f[5], n, c, s, Eps));
        });

    [Property(MaxTest = 30)]
    public Property ParamGrads_managed_and_kernels_agree_within_the_sum_bound() =>
        Prop.ForAll(ParityCases, p =>
        {
            var (n, c, s) = p.Shape;
            int total = n * c * s;
            float[] x = KernelParity.Values(p.Seed, total, -5f, 5f, p.Specials), dy = KernelParity.Values(p.Seed + 1, total, -2f, 2f, p.Specials);
            float[] mean = Gens.Random(p.Seed + 2, c, -1f, 1f), var = Gens.Random(p.Seed + 3, c, 0f, 4f);
            (float[] DGamma, float[] DBeta) Run(Device d)
            {
                using var tx = d.Upload(x);
                using var tdy = d.Upload(dy);
                using var tm = d.Upload(mean);
                using var tv = d.Upload(var);
                using var dg = d.Poisoned(c);
                using var db = d.Poisoned(c);
                Kernel.ParamGrads(d.Kernels, tx.View<float>(), tdy.View<float>(), tm.View<float>(), tv.View<float>(), dg.View<float>(), db.View<float>(), n, c, s, Eps);
                return (dg.ToHost(), db.ToHost());
            }

            var (mg, mb) = Run(Devices.Cpu);
            var (kg, kb) = Run(Devices.CpuKernels);
            var result = true.Label($"ParamGrads {p}");
            for (int ch = 0; ch < c; ch++)
            {
                double[] xs = Channel(x, n, c, s, ch), gs = Channel(dy, n, c, s, ch);
                double unit = 2 * (xs.Length + 12) * U;
                double invstd = 1 / Math.Sqrt(var[ch] + (double)Eps);
                double gammaBound = unit * invstd * xs.Zip(gs, (v, g) => Math.Abs(g) * (Math.Abs(v) + Math.Abs(mean[ch]))).Sum();
                result = result.And(Agree(mg[ch], kg[ch], gammaBound, $"dgamma[{ch}]")).And(Agree(mb[ch], kb[ch], unit * gs.Sum(Math.Abs), $"dbeta[{ch}]"));
            }

            return result;
        });

    // InputGrad is elementwise: given the same statistics and parameter gradients, one float
    // formula per element on both backends, so bit for bit.
    [Property(MaxTest = 30)]
    public Property InputGrad_managed_equals_kernel() =>
        Prop.ForAll(ParityCases, Gen.Choose(0, 7).ToArbitrary(), (p, flags) =>
        {
            bool training = (flags & 1) != 0, hasGamma = (flags & 2) != 0, inPlace = (flags & 4) != 0;
            var (n, c, s) = p.Shape;
            int total = n * c * s;
            float[][] bufs =
            [
                KernelParity.Values(p.Seed, total, -5f, 5f, p.Specials), KernelParity.Values(p.Seed + 1, total, -2f, 2f, p.Specials),
                Gens.Random(p.Seed + 2, c, -1f, 1f), Gens.Random(p.Seed + 3, c, 0f, 4f), Gens.Random(p.Seed + 4, c, -2f, 2f),
                Gens.Random(p.Seed + 5, c, -50f, 50f), Gens.Random(p.Seed + 6, c, -50f, 50f), new float[total],
            ];
            return KernelParity.Same($"InputGrad {p}, training {training}, gamma {hasGamma}, in place {inPlace}", bufs, [], (h, f, _) =>
                Kernel.InputGrad(h, f[0], f[1], f[2], f[3], hasGamma ? f[4] : null, f[5], f[6], inPlace ? f[1] : f[7], n, c, s, Eps, training));
        });

    [Property(MaxTest = 20)]
    public Property Running_and_Increment_managed_equal_kernels() =>
        Prop.ForAll(ParityCases, Gen.Choose(2, 100_000).ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), (p, m, count) =>
        {
            int c = p.Shape.C;
            float[][] bufs =
            [
                KernelParity.Values(p.Seed, c, -3f, 3f, p.Specials), Gens.Random(p.Seed + 1, c, 0f, 4f), Gens.Random(p.Seed + 2, c, -3f, 3f),
                Gens.Random(p.Seed + 3, c, 0.1f, 3f), new float[c], new float[c],
            ];
            return KernelParity.Same($"Running + Increment {p}, m {m}, count {count}", bufs, [[count], [-1]], (h, f, i) =>
            {
                Kernel.Running(h, f[0], f[1], m, Momentum, f[2], f[3], f[4], f[5]);
                Kernel.Increment(h, i[0], i[1]);
            });
        });

    // ---------------------------------------------------------------- helpers

    private const double U = 1.0 / (1 << 24);

    private static double[] Channel(float[] x, int n, int c, int s, int ch)
    {
        var values = new double[n * s];
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < s; j++)
                values[(i * s) + j] = x[(((i * c) + ch) * s) + j];
        }

        return values;
    }

    private static Property Agree(float managed, float kernel, double bound, string what)
    {
        if (!float.IsFinite(managed) || !float.IsFinite(kernel))
            return (float.IsNaN(managed) ? float.IsNaN(kernel) : managed == kernel).Label($"{what}: managed {managed:R}, kernels {kernel:R}");
        double err = Math.Abs((double)managed - kernel);
        return (err <= bound).Label($"{what}: managed {managed:R}, kernels {kernel:R}, |diff| {err:E3} > bound {bound:E3}");
    }


    private static (float[] Mean, float[] Var) ChannelStats(ChannelBatch b)
    {
        var mean = new float[b.C];
        var var = new float[b.C];
        if (b.M > 0)
            BatchNormReference.StatisticsReference(b.X, b.N, b.C, b.S, mean, var);
        else
            Array.Fill(var, 1f);
        return (mean, var);
    }

    private static float[] Channel(float[] x, ChannelBatch b, int ch)
    {
        var v = new float[b.M];
        for (int i = 0; i < b.N; i++)
        {
            for (int j = 0; j < b.S; j++)
                v[(i * b.S) + j] = x[(((i * b.C) + ch) * b.S) + j];
        }

        return v;
    }

    private static int Nbt(ParamSnapshot s) => s.Int32[(int)s.Layout["num_batches_tracked"].Offset];

    /// <summary>
    /// float64 forward written independently of the kernels: with rm/rv null, the batch mean and
    /// biased variance of each channel (functions of x); otherwise the given running statistics.
    /// </summary>
    private static double[] Forward64(double[] x, float[]? rm, float[]? rv, double[]? w, double[]? bias, int n, int c, int s)
    {
        var y = new double[x.Length];
        for (int ch = 0; ch < c; ch++)
        {
            var idx = new List<int>();
            for (int i = 0; i < n; i++)
            {
                for (int j = 0; j < s; j++)
                    idx.Add((((i * c) + ch) * s) + j);
            }

            double mu = rm?[ch] ?? idx.Average(k => x[k]);
            double var = rv?[ch] ?? idx.Sum(k => (x[k] - mu) * (x[k] - mu)) / idx.Count;
            foreach (int k in idx)
                y[k] = ((w?[ch] ?? 1) * (x[k] - mu) / Math.Sqrt(var + Eps)) + (bias?[ch] ?? 0);
        }

        return y;
    }
}
