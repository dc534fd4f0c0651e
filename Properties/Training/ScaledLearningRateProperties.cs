using IlgpuTrain.Optimizers;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// --scale-lr: k = batch × accumulate / base batch, the peak rate k·lr, the schedule's own warmup
/// or Goyal et al.'s gradual warmup from lr (5 epochs, at most half the run, or --warmup), and a run
/// resumed from a checkpoint of a scaled run ends bitwise where the straight run ends.
/// </summary>
public class ScaledLearningRateProperties
{
    private static readonly Gen<RunConfig> Configs =
        from batch in Gen.Choose(1, 4096)
        from accumulate in Gen.Choose(1, 8)
        from baseBatch in Gen.Choose(1, 1024)
        from lr in Gen.Choose(1, 1000).Select(k => k * 1e-4)
        from schedule in Gen.Elements(Recipes.Schedules.ToArray())
        from epochs in Gen.Choose(1, 30)
        from warmup in Gen.Elements(0, 0, 7)
        select new RunConfig { ScaleLr = true, BatchSize = batch, Accumulate = accumulate, BaseBatchSize = baseBatch, LearningRate = lr, Schedule = schedule, Epochs = epochs, WarmupSteps = warmup };

    [Property(MaxTest = 300)]
    public Property The_schedule_peaks_at_k_times_lr_after_warming_up_from_lr() =>
        Prop.ForAll(Configs.ToArbitrary(), Gen.Choose(1, 500).ToArbitrary(), (c, perEpoch) =>
        {
            long total = (long)c.Epochs * perEpoch;
            var s = ScaledLearningRate.For(c, total)!;
            double k = (double)(c.BatchSize * c.Accumulate) / c.BaseBatchSize;
            var schedule = s.Schedule(c.Schedule, total, c.WarmupSteps);
            bool factor = Math.Abs(s.Factor - k) <= 1e-12 * k && Math.Abs(s.LearningRate - (k * c.LearningRate)) <= 1e-12 * k * c.LearningRate;
            bool own = c.Schedule is "onecycle" or "warmup-cosine" or "wsd";
            int w = s.WarmupUpdates;
            int expectedW = own || k <= 1 ? 0 : c.WarmupSteps > 0 ? (int)Math.Min(c.WarmupSteps, total) : (int)Math.Min(5L * Math.Max(1, total / c.Epochs), total / 2);
            bool warmupOk = w == expectedW;
            bool ramp = w == 0 || (Close(schedule.At(0), c.LearningRate) && Close(schedule.At(w), k * c.LearningRate) && Enumerable.Range(0, w).All(t => schedule.At(t) <= schedule.At(t + 1) + 1e-15));
            bool plain = w > 0 || schedule == Recipes.LearningRateSchedule(c.Schedule, k * c.LearningRate, total, c.WarmupSteps);
            return (factor && warmupOk && ramp && plain).Label($"k {k}, W {w} (expected {expectedW}), total {total}, lr(0) {schedule.At(0)}, lr(W) {schedule.At(w)}");
        });

    private static bool Close(double a, double b) => Math.Abs(a - b) <= 1e-12 * Math.Abs(b);

    [Fact]
    public void Known_factors_and_warmups()
    {
        var c = new RunConfig { ScaleLr = true, BatchSize = 512, Accumulate = 2, LearningRate = 0.1, Schedule = "cosine", Epochs = 90 };
        var s = ScaledLearningRate.For(c, 90 * 100)!;
        Assert.Equal(8, s.Factor);
        Assert.Equal(0.8, s.LearningRate, 15);
        Assert.Equal(500, s.WarmupUpdates); // 5 epochs of 100 updates, as Goyal et al.
        var schedule = s.Schedule("cosine", 9000, 0);
        Assert.Equal(0.1, schedule.At(0), 15);
        Assert.Equal(0.45, schedule.At(250), 12);
        Assert.Equal(0.8, schedule.At(500), 15);
        Assert.Equal(0.4, schedule.At(500 + 4250), 12); // half-way through the cosine over the other 8500
        Assert.Contains("lr 0.1 -> 0.8", s.Describe());

        // A short run warms up over half of it; one-cycle warms up on its own; a smaller batch scales down with no warmup.
        Assert.Equal(50, ScaledLearningRate.For(c with { Epochs = 5 }, 100)!.WarmupUpdates);
        var one = ScaledLearningRate.For(c with { Schedule = "onecycle" }, 9000)!;
        Assert.Equal(0, one.WarmupUpdates);
        Assert.Equal(new OneCycleLR(0.8, 9000), one.Schedule("onecycle", 9000, 0));
        var smaller = ScaledLearningRate.For(c with { BatchSize = 32, Accumulate = 1 }, 9000)!;
        Assert.Equal(0.025, smaller.LearningRate, 15);
        Assert.Equal(0, smaller.WarmupUpdates);
        Assert.Null(ScaledLearningRate.For(c with { ScaleLr = false }, 9000));

        // The optimizer a run builds uses the scaled schedule; without --scale-lr it is unchanged.
        Assert.Equal(new OneCycleLR(6e-3, 1000), ((AdamW)Recipes.Optimizer(new RunConfig { ScaleLr = true, BatchSize = 256, Clip = 0 }, 1000)).LearningRate);
        Assert.Equal(new OneCycleLR(3e-3, 1000), ((AdamW)Recipes.Optimizer(new RunConfig { BatchSize = 256, Clip = 0 }, 1000)).LearningRate);
        Assert.Contains("lr 0.006 = 0.003 scaled to batch 256", Recipes.Describe(new RunConfig { ScaleLr = true, BatchSize = 256 }));
    }

    [Fact]
    public void A_scaled_run_resumed_from_its_checkpoint_ends_bitwise_where_the_straight_run_ends()
    {
        if (!File.Exists(Path.Combine(FashionMnist.DefaultDirectory, "train-images-idx3-ubyte.gz")))
            Assert.Fail("Fashion-MNIST is not installed: `apt-get install dataset-fashion-mnist` (CI does).");

        // k = 2 with the cosine schedule: a gradual warmup over half the run, then the cosine.
        var config = new RunConfig { ScaleLr = true, BatchSize = 64, BaseBatchSize = 32, Schedule = "cosine", Epochs = 2, TrainLimit = 192, Seed = 5, Device = "cpu" };
        var data = Recipes.LoadData(config);
        var d = Devices.Cpu;
        var (straightTrainer, _, _) = Recipes.BuildTrainer(config, d, data.Train);
        using var straight = straightTrainer.Fit(data.Train).State;
        Assert.Equal(3, ScaledLearningRate.For(config, Recipes.TotalUpdates(config, data.Train.Count))!.WarmupUpdates);

        string dir = Directory.CreateTempSubdirectory("ilgpu-scaled-resume-").FullName;
        try
        {
            var (firstTrainer, _, _) = Recipes.BuildTrainer(config, d, data.Train, [new StopAfterFirstEpoch(), new CheckpointCallback(dir, config.ToJson(), saveBest: null)]);
            firstTrainer.Fit(data.Train).State.Dispose();
            var (resumedTrainer, _, optimizer) = Recipes.BuildTrainer(config, d, data.Train);
            var from = Resuming.Resume(Path.Combine(dir, "last.safetensors"), d, resumedTrainer, optimizer, config, NullProgress.Instance);
            Assert.Equal(1, from.Epoch);
            using var resumed = resumedTrainer.Fit(data.Train, null, from).State;
            Assert.Equal(straight.Params.Snapshot().Float32, resumed.Params.Snapshot().Float32);
            Assert.Equal(straight.History.Epochs.Select(e => e.TrainLoss), resumed.History.Epochs.Select(e => e.TrainLoss));
            Assert.Equal(straight.LearningRate, resumed.LearningRate);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void A_resume_with_other_learning_rate_scaling_is_refused_naming_the_options_to_use()
    {
        var scaled = new RunConfig { ScaleLr = true, BaseBatchSize = 64, BatchSize = 256 };
        Assert.Null(Resuming.Incompatibility(scaled, scaled with { Output = "elsewhere" }));
        Assert.Contains("resume with --scale-lr --base-batch-size 64", Resuming.Incompatibility(scaled, scaled with { ScaleLr = false }));
        Assert.Contains("resume with --scale-lr --base-batch-size 64", Resuming.Incompatibility(scaled, scaled with { BaseBatchSize = 128 }));
        Assert.Contains("resume with no --scale-lr", Resuming.Incompatibility(new RunConfig(), new RunConfig { ScaleLr = true }));
        Assert.Null(Resuming.Incompatibility(new RunConfig(), new RunConfig { BaseBatchSize = 32 }));
    }

    private sealed class StopAfterFirstEpoch : TrainingCallback
    {
        public override EpochVerdict OnEpochEnd(EpochInfo info) => new(true, "stopped after epoch 1");
    }
}
