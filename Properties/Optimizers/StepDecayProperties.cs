using IlgpuTrain.Optimizers;

namespace IlgpuTrain.Properties.Optimizers;

/// <summary>StepLR, MultiStepLR, ExponentialLR: PyTorch's values, its recursive forms, bounds, argument checks.</summary>
public class StepDecayProperties
{
    // Rounding of one multiplication per step, compounded over at most 300 steps.
    private const double RecursiveRtol = 1e-12;

    // Below this the values are subnormal (or zero) and keep no relative precision.
    private const double Subnormal = 1e-300;

    private const int Horizon = 300;

    // Values from PyTorch 1.13 (torch.optim.lr_scheduler), lr read before each scheduler.step():
    //   import math, warnings, torch
    //   from torch.optim.lr_scheduler import *
    //   warnings.filterwarnings("ignore")
    //   STEPS = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 13, 16, 17, 20, 24, 25, 26, 29, 30, 31, 40, 49, 50, 51, 57, 60, 61, 69, 70, 71, 79, 80, 81, 99, 100, 101, 127, 150, 199, 200]
    //   def run(make, n=201, lr=1.0, adam=False):
    //       p = torch.zeros(1, requires_grad=True)
    //       o = torch.optim.Adam([p], lr=lr) if adam else torch.optim.SGD([p], lr=lr, momentum=0.9)
    //       s = make(o)
    //       lrs, moms = [], []
    //       for t in range(n):
    //           g = o.param_groups[0]
    //           lrs.append(g['lr']); moms.append(g['betas'][0] if adam else g['momentum'])
    //           o.step(); s.step()
    //       return lrs, moms
    //   def emit(name, vals, steps):
    //       print(f"// {name}")
    //       print("[" + ", ".join(repr(vals[t]) for t in steps) + "]")
    //   emit("StepLR(0.1, 7, 0.5)", run(lambda o: StepLR(o, 7, 0.5), lr=0.1)[0], STEPS)
    //   emit("StepLR(1.0, 30)", run(lambda o: StepLR(o, 30), lr=1.0)[0], STEPS)
    //   emit("MultiStepLR(0.05, [25, 10, 60, 25], 0.3)", run(lambda o: MultiStepLR(o, [25, 10, 60, 25], 0.3), lr=0.05)[0], STEPS)
    //   emit("MultiStepLR(0.1, [30, 80])", run(lambda o: MultiStepLR(o, [30, 80]), lr=0.1)[0], STEPS)
    //   emit("ExponentialLR(0.2, 0.97)", run(lambda o: ExponentialLR(o, 0.97), lr=0.2)[0], STEPS)
    [Property(MaxTest = 1)]
    public Property Known_values_from_PyTorch() =>
        Pins.Match(new StepLR(0.1, 7, 0.5), [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125, 0.0125, 0.0125, 0.00625, 0.00625, 0.00625, 0.003125, 0.00078125, 0.00078125, 0.00078125, 0.000390625, 0.000390625, 0.000390625, 0.0001953125, 9.765625e-05, 9.765625e-05, 4.8828125e-05, 4.8828125e-05, 4.8828125e-05, 6.103515625e-06, 6.103515625e-06, 6.103515625e-06, 3.814697265625e-07, 4.76837158203125e-08, 3.7252902984619143e-10, 3.7252902984619143e-10])
        .And(Pins.Match(new StepLR(1.0, 30), [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.0010000000000000002, 0.0010000000000000002, 0.0010000000000000002, 0.00010000000000000003, 1.0000000000000004e-05, 1.0000000000000004e-06, 1.0000000000000004e-06]))
        .And(Pins.Match(new MultiStepLR(0.05, [25, 10, 60, 25], 0.3), [0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.015, 0.015, 0.015, 0.015, 0.015, 0.015, 0.015, 0.0013499999999999999, 0.0013499999999999999, 0.0013499999999999999, 0.0013499999999999999, 0.0013499999999999999, 0.0013499999999999999, 0.0013499999999999999, 0.0013499999999999999, 0.0013499999999999999, 0.0013499999999999999, 0.0004049999999999999, 0.0004049999999999999, 0.0004049999999999999, 0.0004049999999999999, 0.0004049999999999999, 0.0004049999999999999, 0.0004049999999999999, 0.0004049999999999999, 0.0004049999999999999, 0.0004049999999999999, 0.0004049999999999999, 0.0004049999999999999, 0.0004049999999999999, 0.0004049999999999999, 0.0004049999999999999]))
        .And(Pins.Match(new MultiStepLR(0.1, [30, 80]), [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.010000000000000002, 0.0010000000000000002, 0.0010000000000000002, 0.0010000000000000002, 0.0010000000000000002, 0.0010000000000000002, 0.0010000000000000002, 0.0010000000000000002, 0.0010000000000000002, 0.0010000000000000002]))
        .And(Pins.Match(new ExponentialLR(0.2, 0.97), [0.2, 0.194, 0.18818000000000001, 0.18253460000000002, 0.177058562, 0.17174680514, 0.16659440098579997, 0.16159656895622598, 0.152046211730913, 0.1474848253789856, 0.14306028061761603, 0.1346054180331149, 0.12285073069253706, 0.11916520877176094, 0.10875886858534936, 0.09628344438234465, 0.09339494105087431, 0.09059309281934808, 0.08268186980271287, 0.08020141370863149, 0.07779537129737255, 0.05914245747982651, 0.044961933061321104, 0.04361307506948147, 0.04230468281739703, 0.035238616464292626, 0.03216133380431534, 0.031196493790185877, 0.0244500448457975, 0.023716543500423574, 0.023005047195410865, 0.018030052972954052, 0.01748915138376543, 0.01696447684225247, 0.009804640809361992, 0.009510501585081132, 0.009225186537528698, 0.004178690901350691, 0.0020739110978928296, 0.0004662352597929419, 0.0004522482019991536]));

    // The closed forms equal the recursions PyTorch's chainable schedulers run: lr(t) = lr(t − 1)·γ^k,
    // k = 1 at multiples of step_size (StepLR), the number of milestones equal to t (MultiStepLR), 1 (ExponentialLR).
    [Property(MaxTest = 40)]
    public Property StepLR_equals_its_recursion() =>
        Prop.ForAll(Gens.StepLR.ToArbitrary(), s => Recursion(s, t => t % s.StepSize == 0 ? s.Gamma : 1.0, s.BaseLr));

    [Property(MaxTest = 40)]
    public Property MultiStepLR_equals_its_recursion() =>
        Prop.ForAll(Gens.MultiStepLR.ToArbitrary(), s =>
            Recursion(s, t => Math.Pow(s.Gamma, s.Milestones.Count(m => m == t)), s.BaseLr * Math.Pow(s.Gamma, s.Milestones.Count(m => m == 0))));

    [Property(MaxTest = 40)]
    public Property ExponentialLR_equals_its_recursion() =>
        Prop.ForAll(Gens.ExponentialLR.ToArbitrary(), s => Recursion(s, _ => s.Gamma, s.BaseLr));

    [Property(MaxTest = 40)]
    public Property Decays_never_rise_above_the_base_nor_fall_below_zero() =>
        Prop.ForAll(Gen.OneOf(Gens.StepLR.Select(s => (Schedule)s), Gens.MultiStepLR.Select(s => (Schedule)s), Gens.ExponentialLR.Select(s => (Schedule)s)).ToArbitrary(), s =>
        {
            double lr0 = s.At(0), previous = lr0;
            for (int t = 1; t < Horizon; t++)
            {
                double lr = s.At(t);
                if (!(lr <= previous && lr >= 0))
                    return false.Label($"{s}: lr({t}) = {lr:R} after lr({t - 1}) = {previous:R}");
                previous = lr;
            }
            return true.Label(s.ToString());
        });

    [Fact]
    public void Bad_arguments_name_the_PyTorch_argument()
    {
        Assert.Contains("step_size", Assert.Throws<ArgumentOutOfRangeException>(() => new StepLR(0.1, 0)).Message);
        Assert.Contains("gamma", Assert.Throws<ArgumentOutOfRangeException>(() => new StepLR(0.1, 3, -0.5)).Message);
        Assert.Contains("lr", Assert.Throws<ArgumentOutOfRangeException>(() => new StepLR(double.NaN, 3)).Message);
        Assert.Contains("milestone", Assert.Throws<ArgumentOutOfRangeException>(() => new MultiStepLR(0.1, [5, -1])).Message);
        Assert.Contains("gamma", Assert.Throws<ArgumentOutOfRangeException>(() => new ExponentialLR(0.1, 0)).Message);
        // with-expressions skip the constructor; At checks again.
        var bad = new StepLR(0.1, 3) with { StepSize = 0 };
        Assert.Contains("step_size", Assert.Throws<ArgumentOutOfRangeException>(() => bad.At(1)).Message);
    }

    [Fact]
    public void MultiStepLR_copies_its_milestones_and_compares_them_by_value()
    {
        int[] ms = [3, 8];
        var s = new MultiStepLR(1, ms, 0.5);
        ms[0] = 100;
        Assert.Equal(0.5, s.At(3));
        Assert.Equal(new MultiStepLR(1, [3, 8], 0.5), s);
        Assert.Equal(new MultiStepLR(1, [3, 8], 0.5).GetHashCode(), s.GetHashCode());
        Assert.NotEqual(new MultiStepLR(1, [3, 9], 0.5), s);
        Assert.Equal("MultiStepLR { BaseLr = 1, Milestones = [3, 8], Gamma = 0.5 }", s.ToString());
    }

    private static Property Recursion(Schedule s, Func<int, double> factorAt, double lr0)
    {
        double lr = lr0;
        for (int t = 0; t < Horizon; t++)
        {
            if (t > 0)
                lr *= factorAt(t);
            double got = s.At(t);
            if (!(Math.Abs(got - lr) <= Subnormal + (RecursiveRtol * Math.Abs(lr))))
                return false.Label($"{s}: lr({t}) = {got:R}, recursion {lr:R}");
        }
        return true.Label(s.ToString());
    }
}
