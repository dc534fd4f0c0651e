using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>ReduceOnPlateau: PyTorch ReduceLROnPlateau's lr sequences, the constant-loss closed form, updates, consumption.</summary>
public class ReduceOnPlateauProperties
{
    // lr·(factor·factor·…) here against ((lr·factor)·factor)·… in PyTorch: a few ulps.
    private const double HostRtol = 1e-14;

    // The updates are float32: -lr then ·scale, two roundings.
    private const double FloatRtol = 1e-6;

    private static readonly double[] FallingThenFlat = [1.0, 0.769231, 0.625, 0.526316, 0.454545, 0.4, 0.357143, 0.322581, 0.294118, 0.27027, 0.25, 0.232558, 0.217391, 0.204082, 0.192308, 0.192142, 0.193063, 0.192586, 0.193069, 0.193121, 0.193292, 0.190608, 0.192502, 0.191259, 0.191388, 0.193669, 0.192079, 0.191605, 0.192427, 0.193142, 0.193726, 0.19348, 0.193466, 0.192698, 0.193034, 0.192328, 0.191557, 0.191423, 0.190801, 0.193308, 0.191664, 0.191854, 0.193917, 0.190506, 0.190851, 0.193834, 0.19295, 0.191636, 0.19312, 0.193032, 0.193827, 0.190112, 0.191275, 0.193028, 0.190972, 0.192358, 0.190174, 0.193824, 0.191277, 0.190237, 0.191768, 0.19366, 0.192289, 0.190475, 0.192279, 0.191008, 0.191983, 0.190947, 0.191908, 0.191624, 0.193492, 0.191708, 0.191433, 0.191528, 0.190173, 0.190642, 0.192089, 0.192786, 0.190388, 0.191603];
    private static readonly double[] Accuracy = [0.5, 0.6, 0.62, 0.64, 0.66, 0.65, 0.7, 0.72, 0.71, 0.73, 0.74, 0.8, 0.79, 0.81, 0.8, 0.82, 0.83, 0.84, 0.86, 0.85, 0.84, 0.9, 0.88, 0.87, 0.9, 0.91];
    private static readonly double[] WithNonFinite = [3.0, 2.0, double.NaN, 2.5, 1.0, double.PositiveInfinity, 1.0, 0.95, 0.9, double.NaN, 0.5, 0.6, 0.7];

    // PyTorch 1.13: the lr after each scheduler.step(loss), i.e. the lr of the next epoch's updates.
    //   import torch
    //   from torch.optim.lr_scheduler import ReduceLROnPlateau
    //   def losses(n, seed):
    //       # a falling start, then a noisy plateau
    //       x, out = seed, []
    //       for t in range(n):
    //           x = (1103515245 * x + 12345) % 2**31
    //           out.append(round(1.0 / (1 + 0.3 * t) if t < 15 else 0.19 + 0.004 * (x / 2**31), 6))
    //       return out
    //   def run(lr, ls, **kw):
    //       o = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    //       s = ReduceLROnPlateau(o, **kw)
    //       out = []
    //       for l in ls:
    //           s.step(l); out.append(o.param_groups[0]['lr'])
    //       print(kw, "final best, num_bad_epochs, cooldown_counter:", s.best, s.num_bad_epochs, s.cooldown_counter)
    //       print("[" + ", ".join(repr(v) for v in out) + "]")
    //   A = losses(80, 1); print(A)
    //   run(0.1, A)
    //   run(0.1, A, factor=0.5, patience=2, cooldown=3, threshold=0.01, min_lr=0.01)
    //   acc = [0.5, 0.6, 0.62, 0.64, 0.66, 0.65, 0.7, 0.72, 0.71, 0.73, 0.74, 0.8, 0.79, 0.81, 0.8, 0.82, 0.83, 0.84, 0.86, 0.85, 0.84, 0.9, 0.88, 0.87, 0.9, 0.91]
    //   run(1.0, acc, mode='max', threshold_mode='abs', threshold=0.05, patience=1, factor=0.3, cooldown=1, eps=0.05)
    //   odd = [3.0, 2.0, float('nan'), 2.5, 1.0, float('inf'), 1.0, 0.95, 0.9, float('nan'), 0.5, 0.6, 0.7]
    //   run(0.3, odd, threshold_mode='abs', threshold=0.1, patience=0, factor=0.5)
    public static IEnumerable<object[]> PyTorchRuns() =>
    [
        [
            "defaults", 0.1, ReduceOnPlateau.ForLearningRate(0.1), FallingThenFlat,
            new double[] { 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.0010000000000000002, 0.0010000000000000002, 0.0010000000000000002, 0.0010000000000000002, 0.0010000000000000002, 0.0010000000000000002, 0.0010000000000000002, 0.0010000000000000002, 0.0010000000000000002, 0.0010000000000000002, 0.0010000000000000002, 0.00010000000000000003, 0.00010000000000000003, 0.00010000000000000003, 0.00010000000000000003, 0.00010000000000000003, 0.00010000000000000003, 0.00010000000000000003 },
            0.190112, 6, 0,
        ],
        [
            "factor 0.5, patience 2, cooldown 3, threshold 0.01, min_lr 0.01", 0.1,
            ReduceOnPlateau.ForLearningRate(0.1, factor: 0.5, patience: 2, cooldown: 3, threshold: 0.01, minLr: 0.01), FallingThenFlat,
            new double[] { 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.025, 0.025, 0.025, 0.0125, 0.0125, 0.0125, 0.0125, 0.0125, 0.0125, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01 },
            0.190112, 0, 2,
        ],
        [
            "max, abs threshold 0.05, patience 1, factor 0.3, cooldown 1, eps 0.05", 1.0,
            ReduceOnPlateau.ForLearningRate(1.0, PlateauMode.Max, factor: 0.3, patience: 1, threshold: 0.05, thresholdMode: ThresholdMode.Absolute, cooldown: 1, eps: 0.05), Accuracy,
            new double[] { 1.0, 1.0, 1.0, 0.3, 0.3, 0.3, 0.09, 0.09, 0.09, 0.027, 0.027, 0.027, 0.027, 0.027, 0.027, 0.027, 0.027, 0.027, 0.027, 0.027, 0.027, 0.027, 0.027, 0.027, 0.027, 0.027 },
            0.86, 1, 0,
        ],
        [
            "NaN and inf losses, abs threshold 0.1, patience 0, factor 0.5", 0.3,
            ReduceOnPlateau.ForLearningRate(0.3, factor: 0.5, patience: 0, threshold: 0.1, thresholdMode: ThresholdMode.Absolute), WithNonFinite,
            new double[] { 0.3, 0.3, 0.15, 0.075, 0.075, 0.0375, 0.01875, 0.009375, 0.0046875, 0.00234375, 0.00234375, 0.001171875, 0.0005859375 },
            0.5, 0, 0,
        ],
    ];

    [Theory]
    [MemberData(nameof(PyTorchRuns))]
    public void Learning_rates_equal_PyTorch_ReduceLROnPlateau(string what, double lr, ReduceOnPlateau plateau, double[] losses, double[] torchLrs, double best, int bad, int cooldown)
    {
        var s = (ReduceOnPlateauState)plateau.Init(null!);
        for (int i = 0; i < losses.Length; i++)
        {
            s = plateau.Observe(s, losses[i]);
            double got = lr * s.Scale;
            Assert.True(Math.Abs(got - torchLrs[i]) <= HostRtol * torchLrs[i], $"{what}: after loss {i} ({losses[i]}) lr = {got:R}, PyTorch {torchLrs[i]:R}");
        }
        Assert.Equal(best, s.Best);
        Assert.Equal(bad, s.NumBadEpochs);
        Assert.Equal(cooldown, s.CooldownCounter);
        Assert.Equal(losses[^1], s.LastLoss);
    }

    [Fact]
    public void Updates_in_a_chain_follow_PyTorch_when_the_loss_comes_with_the_next_epoch()
    {
        // Two updates per epoch; the validation loss of epoch e comes with the first update of epoch e + 1,
        // so that update already uses the lr PyTorch sets in scheduler.step(val_loss) after epoch e.
        var (_, lr, plateau, losses, torchLrs, _, _, _) = Unpack(PyTorchRuns().ElementAt(1));
        using var p = ParamTree.FromHost(Devices.Cpu, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([3], [1f, 1f, 1f]) });
        var opt = new Chain(new ScaleByLearningRate(lr), plateau);
        var state = opt.Init(p);
        for (int epoch = 0; epoch <= losses.Length; epoch++)
        {
            double expected = epoch == 0 ? lr : torchLrs[epoch - 1];
            for (int k = 0; k < 2; k++)
            {
                var context = k == 0 && epoch > 0 ? new UpdateContext(losses[epoch - 1]) : UpdateContext.None;
                var (u, next) = opt.Update(p.Clone(), state, p, context);
                state = next;
                var got = u.Flat();
                u.Dispose();
                Assert.True(got.All(x => Math.Abs(x + expected) <= FloatRtol * expected), $"epoch {epoch}, update {k}: {got[0]:R}, PyTorch lr {expected:R}");
            }
        }
        state.Dispose();
    }

    private static readonly Gen<(int Patience, int Cooldown, int N, float Factor)> ConstantLossRuns =
        from patience in Gen.Choose(0, 5)
        from cooldown in Gen.Choose(0, 4)
        from n in Gen.Choose(1, 40)
        from factor in Gens.Float(0.05f, 0.95f)
        select (patience, cooldown, n, factor);

    [Property(MaxTest = 60)]
    public Property A_constant_loss_reduces_every_patience_plus_cooldown_plus_one_losses() =>
        Prop.ForAll(ConstantLossRuns.ToArbitrary(), run =>
        {
            var (patience, cooldown, n, factor) = run;
            // The first loss improves on +inf; every later one is a bad epoch. Reduction k comes at
            // loss k·(patience + 1 + cooldown) − cooldown (0-based): patience + 1 bad epochs, then
            // cooldown ignored ones.
            var plateau = new ReduceOnPlateau(Factor: factor, Patience: patience, Cooldown: cooldown, Eps: 0);
            var s = (ReduceOnPlateauState)plateau.Init(null!);
            int reductions = 0;
            for (int i = 0; i < n; i++)
            {
                s = plateau.Observe(s, 0.5);
                if (i > 0 && (i + cooldown) % (patience + 1 + cooldown) == 0)
                    reductions++;
                double expected = Math.Pow(factor, reductions);
                if (!(Math.Abs(s.Scale - expected) <= HostRtol * expected))
                    return false.Label($"after loss {i}: scale {s.Scale:R}, expected factor^{reductions} = {expected:R}");
            }
            return true.Label($"{n} losses");
        });

    [Property(MaxTest = 60)]
    public Property The_scale_never_rises_nor_falls_below_the_minimum() =>
        Prop.ForAll(Gens.Floats(60, 0f, 1f).ToArbitrary(), Gens.Float(0f, 0.5f).ToArbitrary(), Gen.Elements(PlateauMode.Min, PlateauMode.Max).ToArbitrary(), (losses, minScale, mode) =>
        {
            var plateau = new ReduceOnPlateau(mode, Factor: 0.5, Patience: 1, MinScale: minScale);
            var s = (ReduceOnPlateauState)plateau.Init(null!);
            foreach (float loss in losses)
            {
                double before = s.Scale;
                s = plateau.Observe(s, loss);
                if (!(s.Scale <= before && s.Scale >= minScale))
                    return false.Label($"scale {before:R} -> {s.Scale:R} with min {minScale}");
            }
            return true.Label("monotone and floored");
        });

    [Fact]
    public void Updates_without_a_loss_keep_the_state_and_apply_the_scale()
    {
        using var p = ParamTree.FromHost(Devices.Cpu, new Dictionary<string, (int[] Shape, float[] Data)> { ["w"] = ([2], [2f, -4f]) });
        var plateau = new ReduceOnPlateau(Factor: 0.5, Patience: 0);
        OptState state = new ReduceOnPlateauState(0.25, 0.1, 0, 0, 0.3);
        var g = p.Clone();
        var (u, next) = plateau.Update(g, state, p, UpdateContext.None);
        Assert.Equal([0.5f, -1f], u.Flat());
        Assert.Equal(new ReduceOnPlateauState(0.25, 0.1, 0, 0, 0.3), next);
        Assert.Throws<ConsumedValueException>(() => g.Flat32);
        Assert.Throws<ConsumedValueException>(() => plateau.Update(u, state, p, UpdateContext.None));
        // A worse loss with patience 0 halves the scale at once, for this very update.
        var (u2, next2) = plateau.Update(u, next, p, new UpdateContext(0.2));
        Assert.Equal([0.0625f, -0.125f], u2.Flat());
        Assert.Equal(new ReduceOnPlateauState(0.125, 0.1, 0, 0, 0.2), next2);
        u2.Dispose();
    }

    [Fact]
    public void Bad_arguments_name_the_PyTorch_argument()
    {
        Assert.Contains("factor", Assert.Throws<ArgumentOutOfRangeException>(() => new ReduceOnPlateau(Factor: 1.0).Init(null!)).Message);
        Assert.Contains("patience", Assert.Throws<ArgumentOutOfRangeException>(() => new ReduceOnPlateau(Patience: -1).Init(null!)).Message);
        Assert.Contains("threshold", Assert.Throws<ArgumentOutOfRangeException>(() => new ReduceOnPlateau(Threshold: -1e-4).Init(null!)).Message);
        Assert.Contains("cooldown", Assert.Throws<ArgumentOutOfRangeException>(() => new ReduceOnPlateau(Cooldown: -1).Init(null!)).Message);
        Assert.Contains("min_lr", Assert.Throws<ArgumentOutOfRangeException>(() => new ReduceOnPlateau(MinScale: double.NaN).Init(null!)).Message);
        Assert.Contains("eps", Assert.Throws<ArgumentOutOfRangeException>(() => new ReduceOnPlateau(Eps: -1).Init(null!)).Message);
        Assert.Contains("learning rate", Assert.Throws<ArgumentOutOfRangeException>(() => ReduceOnPlateau.ForLearningRate(0)).Message);
    }

    private static (string What, double Lr, ReduceOnPlateau Plateau, double[] Losses, double[] TorchLrs, double Best, int Bad, int Cooldown) Unpack(object[] run) =>
        ((string)run[0], (double)run[1], (ReduceOnPlateau)run[2], (double[])run[3], (double[])run[4], (double)run[5], (int)run[6], (int)run[7]);
}
