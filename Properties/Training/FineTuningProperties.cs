using IlgpuTrain.Layers;
using IlgpuTrain.Optimizers;
using IlgpuTrain.Training;
using Conv2d = IlgpuTrain.Layers.Conv2d;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// Fine-tuning in the library: a trainer with <see cref="TrainerOptions.Trainable"/> leaves frozen parameters
/// bit for bit unchanged whatever the optimizer (weight decay and momentum included, as PyTorch's optimizers
/// skip parameters without a gradient) and trains the same as the optimizer over the trainable parameters alone;
/// <see cref="Trainer.Init(ParamTree, ParamTree)"/> starts a run from loaded weights; and
/// <see cref="StateDictOptions.Keep"/> keeps a replaced head's initialization in a strict load.
/// </summary>
public sealed class FineTuningProperties
{
    private static Layer Model() =>
        new Conv2d(4, 2, Padding: 1) >> new BatchNorm2d() >> new ReLU() >> new Flatten() >> new Dense(5) >> new ReLU() >> new Dense(3);

    private static IGradientTransformation Optimizer(int which, double decay) => which switch
    {
        0 => new AdamW(1e-2, weightDecay: decay),
        1 => new Sgd(0.05, momentum: 0.9, weightDecay: decay),
        _ => new MultiSteps(new Adam(1e-2, weightDecay: decay), 2),
    };

    [Property(MaxTest = 6)]
    public Property Frozen_parameters_keep_their_bits_under_decay_and_momentum_and_the_rest_train() =>
        Prop.ForAll(Gen.Choose(0, 2).ToArbitrary(), Gen.Choose(0, 1000).ToArbitrary(), (which, seed) =>
        {
            var data = TrainerProperties.Blobs(96, 3, seed);
            var trainable = Freezing.Frozen("0.*", "4.*");
            var options = new TrainerOptions { Epochs = 2, BatchSize = 16, Seed = (ulong)seed, Trainable = trainable, WarmKernels = false };
            var trainer = new Trainer(Devices.Cpu, Model(), data.SampleShape, Optimizer(which, 0.1), options);
            using var start = trainer.Init();
            var before = start.Params.Snapshot();
            using var end = trainer.Fit(data, null, trainer.Init(start.Params.Clone(), start.State.Clone())).State;
            var after = end.Params.Snapshot();
            var rows = before.Layout.Params.Select(p => (p.Path, Same: before.Get(p.Path).SequenceEqual(after.Get(p.Path)))).ToList();
            var frozen = rows.Where(r => !trainable.Matches(r.Path)).ToList();
            var trained = rows.Where(r => trainable.Matches(r.Path)).ToList();
            return (frozen.Count == 4 && frozen.All(r => r.Same)).Label($"frozen unchanged: {string.Join(", ", frozen.Select(r => $"{r.Path} {r.Same}"))}")
                .And(trained.All(r => !r.Same).Label($"trainable moved: {string.Join(", ", trained.Select(r => $"{r.Path} {!r.Same}"))}"));
        });

    [Fact]
    public void A_trainable_filter_trains_as_the_optimizer_over_the_trainable_parameters_alone()
    {
        // The trainer's freezing equals the explicit Optax-style composition of the same optimizer.
        var data = TrainerProperties.Blobs(64, 3, 5);
        var trainable = Freezing.Frozen("0.*");
        var options = new TrainerOptions { Epochs = 1, BatchSize = 16, Seed = 3, Trainable = trainable, WarmKernels = false };
        var implicitly = new Trainer(Devices.Cpu, Model(), data.SampleShape, new AdamW(1e-2, weightDecay: 0.05), options);
        var explicitly = new Trainer(Devices.Cpu, Model(), data.SampleShape, Freeze.AllExcept(ParamMask.From(trainable), new AdamW(1e-2, weightDecay: 0.05)), options);
        using var a = implicitly.Fit(data).State;
        using var b = explicitly.Fit(data).State;
        Assert.Equal(a.Params.Snapshot().Float32, b.Params.Snapshot().Float32);
        Assert.IsType<Chain>(implicitly.Optimizer);
    }

    [Fact]
    public void Init_from_weights_starts_a_fresh_run_on_them_and_refuses_another_models()
    {
        var data = TrainerProperties.Blobs(32, 3, 1);
        var trainer = new Trainer(Devices.Cpu, Model(), data.SampleShape, new Sgd(0.1), new TrainerOptions { Epochs = 1, BatchSize = 16, WarmKernels = false });
        var (p, s) = Model().Init(Devices.Cpu, data.SampleShape, Rng.Create(99));
        var expected = p.Snapshot().Float32;
        using (var state = trainer.Init(p, s))
        {
            Assert.Equal(expected, state.Params.Snapshot().Float32);
            Assert.Equal(0, state.Step);
            Assert.Empty(state.History.Epochs);
        }

        var (op, os) = (new Flatten() >> new Dense(3)).Init(Devices.Cpu, data.SampleShape, Rng.Create(0));
        using (op)
        using (os)
        {
            var e = Assert.ThrowsAny<ArgumentException>(() => trainer.Init(op, os));
            Assert.Contains("Trainer.Init", e.Message);
        }
    }

    [Fact]
    public void Keep_leaves_a_replaced_head_initialized_in_a_strict_load()
    {
        // A "pretrained" file of the same backbone with a 7-class head; the model has 3 classes.
        var shape = new Shape(2, 2, 2);
        var pretrained = new Conv2d(4, 2, Padding: 1) >> new BatchNorm2d() >> new ReLU() >> new Flatten() >> new Dense(5) >> new ReLU() >> new Dense(7);
        var (fp, fs) = pretrained.Init(Devices.Cpu, shape, Rng.Create(1));
        var (mp, ms) = Model().Init(Devices.Cpu, shape, Rng.Create(2));
        using (fp)
        using (fs)
        using (mp)
        using (ms)
        {
            var f = fp.Snapshot();
            var st = fs.Snapshot();
            static long[] Dims(ParamInfo i) => [.. i.Shape.Select(d => (long)d)];
            var tensors = f.Layout.Params.Select(i => SafeTensor.Float32(i.Path, Dims(i), f.Get(i.Path))).ToList();
            foreach (var i in st.Layout.Params)
                tensors.Add(i.DType == DType.Float32 ? SafeTensor.Float32(i.Path, Dims(i), st.Get(i.Path)) : SafeTensor.Int32(i.Path, Dims(i), st.Int32.AsSpan((int)i.Offset, (int)i.Length)));
            var file = new SafeTensorsFile("pretrained", tensors, new Dictionary<string, string>());

            var e = Assert.Throws<CheckpointMismatchException>(() => StateDict.Load(file, mp, ms));
            Assert.Contains("\"6.weight\": the file has shape [7, 5] but the model has [3, 5]", e.Message);
            Assert.Contains("StateDictOptions.Keep", e.Message);

            var r = StateDict.Load(file, mp, ms, new StateDictOptions { Keep = ParamFilter.Glob("6.*") });
            using (r.Params)
            using (r.State)
            {
                Assert.Empty(r.MissingKeys);
                Assert.Empty(r.UnexpectedKeys);
                var loaded = r.Params.Snapshot();
                Assert.Equal(f.Get("0.weight"), loaded.Get("0.weight"));
                Assert.Equal(f.Get("4.bias"), loaded.Get("4.bias"));
                Assert.Equal(mp.Snapshot().Get("6.weight"), loaded.Get("6.weight"));
            }
        }
    }
}
