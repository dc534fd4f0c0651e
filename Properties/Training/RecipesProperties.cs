using IlgpuTrain.Optimizers;
using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Training;

/// <summary>
/// Recipes from names: each schedule name is the schedule its documentation promises, the
/// optimizer chain has clipping, plateau reduction and accumulation exactly when asked, and
/// unknown names are refused with the list of known ones.
/// </summary>
public class RecipesProperties
{
    private static readonly Gen<int> Totals = Gen.OneOf(Gen.Elements(1, 2, 3, 19, 20, 21, 100), Gen.Choose(1, 50_000));

    private static readonly Gen<double> Rates = Gen.Choose(1, 10_000).Select(k => k * 1e-4);

    [Property(MaxTest = 100)]
    public Property Schedule_names_are_the_documented_schedules() =>
        Prop.ForAll(Rates.ToArbitrary(), Totals.ToArbitrary(), (lr, total) =>
            (Recipes.LearningRateSchedule("onecycle", lr, total) == new OneCycleLR(lr, total)).Label("onecycle")
                .And((Recipes.LearningRateSchedule("cosine", lr, total) == new CosineAnnealingLR(lr, total)).Label("cosine"))
                .And((Recipes.LearningRateSchedule("step", lr, total) == new StepLR(lr, Math.Max(1, total / 3))).Label("step"))
                .And((Recipes.LearningRateSchedule("constant", lr, total) == new Constant(lr)).Label("constant"))
                .And((Recipes.LearningRateSchedule("plateau", lr, total) == new Constant(lr)).Label("plateau")));

    // warmup-cosine and wsd: 0 at the start, the peak right after warmup (5% of the run unless given),
    // wsd holds the peak over 70% of the rest, and both decay to 0 at the end of the run.
    [Property(MaxTest = 100)]
    public Property Warmup_schedules_rise_to_the_peak_hold_it_and_decay_to_zero() =>
        Prop.ForAll(Rates.ToArbitrary(), Gen.Choose(40, 50_000).ToArbitrary(), Gen.Choose(0, 30).ToArbitrary(), (lr, total, warmupGiven) =>
        {
            int warmup = warmupGiven > 0 ? warmupGiven : Math.Max(1, total / 20);
            int stable = (total - warmup) * 7 / 10;
            var wc = Recipes.LearningRateSchedule("warmup-cosine", lr, total, warmupGiven);
            var wsd = Recipes.LearningRateSchedule("wsd", lr, total, warmupGiven);
            return Close.Scalar(wc.At(0), 0, 1e-12, 0, "warmup-cosine lr(0)")
                .And(Close.Scalar(wc.At(warmup), lr, 0, 1e-12, "warmup-cosine at the end of warmup"))
                .And(Close.Scalar(wc.At(total), 0, 1e-12 * lr, 0, "warmup-cosine at the end"))
                .And(Close.Scalar(wsd.At(warmup), lr, 0, 1e-12, "wsd at the end of warmup"))
                .And(Close.Scalar(wsd.At(warmup + stable), lr, 0, 1e-12, "wsd at the end of the plateau"))
                .And(Close.Scalar(wsd.At(total), 0, 1e-12 * lr, 0, "wsd at the end"))
                .Label($"total {total}, warmup {warmup}, stable {stable}");
        });

    [Property(MaxTest = 100)]
    public Property The_chain_clips_reduces_and_accumulates_exactly_when_asked() =>
        Prop.ForAll(
            (from optimizer in Gen.Elements(Recipes.Optimizers.ToArray())
             from schedule in Gen.Elements(Recipes.Schedules.ToArray())
             from clip in Gen.Elements(0.0, 0.5, 1.0)
             from accumulate in Gen.Elements(1, 2, 7)
             select (optimizer, schedule, clip, accumulate)).ToArbitrary(),
            t =>
            {
                var (optimizer, schedule, clip, accumulate) = t;
                var c = new RunConfig { Optimizer = optimizer, Schedule = schedule, Clip = clip, Accumulate = accumulate };
                var opt = Recipes.Optimizer(c, 1000);
                var inner = opt is MultiSteps m ? m.Inner : opt;
                var steps = inner is Chain chain && inner.GetType() == typeof(Chain) ? chain.Children : [inner];
                var core = steps[clip > 0 ? 1 : 0];
                var expectedCore = optimizer switch
                {
                    "sgd" or "momentum" or "nesterov" => typeof(Sgd),
                    "adam" => typeof(Adam),
                    _ => typeof(AdamW),
                };
                return (opt is MultiSteps == accumulate > 1).Label("MultiSteps iff accumulating")
                    .And((opt is not MultiSteps ms || ms.EveryK == accumulate).Label("every k"))
                    .And((steps[0] is ClipByGlobalNorm == clip > 0).Label("clipping first iff clip > 0"))
                    .And((core.GetType() == expectedCore).Label($"core {core.GetType().Name}"))
                    .And((steps[^1] is ReduceOnPlateau == (schedule == "plateau")).Label("plateau reduction last iff plateau"))
                    .And((steps.Count == 1 + (clip > 0 ? 1 : 0) + (schedule == "plateau" ? 1 : 0)).Label($"{steps.Count} steps"));
            });

    [Fact]
    public void Total_updates_count_batches_per_epoch_over_accumulation()
    {
        var c = new RunConfig { Epochs = 3, BatchSize = 64, Accumulate = 2 };
        Assert.Equal(3 * 8 / 2, Recipes.TotalUpdates(c, 500)); // 500 samples: 8 batches, the last one short
        Assert.Equal(3 * 8, Recipes.TotalUpdates(c with { Accumulate = 1 }, 512));
    }

    [Fact]
    public void Describe_names_the_chain()
    {
        var d = Recipes.Describe(new RunConfig { Optimizer = "nesterov", LearningRate = 0.05, Schedule = "cosine", Accumulate = 4 });
        Assert.Equal("clip 1 -> nesterov (lr 0.05, cosine, weight decay 0.01, momentum 0.9), accumulating 4 batches", d);
    }

    [Fact]
    public void Unknown_names_are_refused_with_the_known_ones()
    {
        var s = Assert.Throws<ArgumentException>(() => Recipes.LearningRateSchedule("linear", 0.1, 10));
        Assert.Contains("linear", s.Message);
        Assert.Contains("warmup-cosine", s.Message);
        var o = Assert.Throws<ArgumentException>(() => Recipes.Optimizer(new RunConfig { Optimizer = "lamb" }, 10));
        Assert.Contains("lamb", o.Message);
        Assert.Contains("nesterov", o.Message);
        var d = Assert.Throws<ArgumentException>(() => Recipes.LoadData(new RunConfig { Dataset = "imagenet" }));
        Assert.Contains("imagenet", d.Message);
        Assert.Contains("cifar10", d.Message);
        var dev = Assert.Throws<ArgumentException>(() => Recipes.CreateDevice(new RunConfig { Device = "tpu" }));
        Assert.Contains("tpu", dev.Message);
    }
}
