using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>ScaleByLearningRate: u = -lr(t) g with t the count before the update.</summary>
public class ScaleByLearningRateProperties
{
    [Property(MaxTest = 20)]
    public Property Update_t_uses_the_schedule_at_t_minus_one() =>
        Prop.ForAll(Gen.Choose(1, 6).ToArbitrary(), Gens.Float(0.001f, 1f).ToArbitrary(), Gens.Float(0f, 0.5f).ToArbitrary(), (steps, lr, decay) =>
        {
            var d = Devices.Cpu;
            using var p = ParamTree.FromHost(d, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([3], [1f, -2f, 4f]) });
            var schedule = new InverseTimeDecay(lr, decay);
            var opt = new ScaleByLearningRate(schedule);
            var s = opt.Init(p);
            float[] last = [];
            for (int t = 0; t < steps; t++)
            {
                var (u, next) = opt.Update(p.Clone(), s, p, UpdateContext.None);
                last = u.Flat();
                u.Dispose();
                s = next;
            }
            double used = schedule.At(steps - 1);
            var st = s.Find<ScaleByLearningRateState>();
            bool stateOk = st.Count == steps && st.LastLearningRate == used && st.NextLearningRate == schedule.At(steps);
            s.Dispose();
            return Close.All(last, new[] { 1.0, -2.0, 4.0 }.Select(g => -used * g).ToArray(), 0, 1e-6).And(stateOk.Label("count and learning rates"));
        });

    [Fact]
    public void Plain_numbers_are_constant_schedules_and_round_trip_through_json()
    {
        Schedule s = 0.25;
        Assert.Equal(0.25, s.At(0));
        Assert.Equal(0.25, s.At(1_000_000));
        Assert.Equal(s, Schedule.FromJson(s.ToJson()));
        var inv = new InverseTimeDecay(0.1, 0.01);
        Assert.Equal(inv, Schedule.FromJson(inv.ToJson()));
        Assert.Equal(0.1 / 1.5, inv.At(50), 15);
        Assert.Throws<FormatException>(() => Schedule.FromJson("{\"type\":\"nope\"}"));
        Assert.Throws<ArgumentOutOfRangeException>(() => s.At(-1));
    }

    // A constant learning rate is checked when the state is made, as the named optimizers check
    // theirs: NaN or infinity would poison every parameter, and a negative one climbs the loss.
    [Fact]
    public void A_constant_learning_rate_that_is_negative_or_not_finite_is_refused_at_init()
    {
        using var p = ParamTree.FromHost(Devices.Cpu, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([2], [1f, 2f]) });
        foreach (double lr in new[] { -0.1, double.NaN, double.PositiveInfinity })
        {
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => new ScaleByLearningRate(lr).Init(p));
            Assert.Contains("finite and at least 0", e.Message);
            Assert.Contains("FlipSign: false", e.Message);
            Assert.Throws<ArgumentOutOfRangeException>(() => new Chain(new ScaleByAdam(), new ScaleByLearningRate(lr)).Init(p));
        }

        new ScaleByLearningRate(0.0).Init(p).Dispose();
    }
}
