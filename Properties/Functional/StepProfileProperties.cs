namespace IlgpuTrain.Properties.Functional;

/// <summary>
/// StepProfile: every op the tape records is counted once per forward and once per VJP, under the
/// tape's own name; time spent inside an op lands on that op (a sleeping user op shows its sleep);
/// the pieces timed outside the tape add up; and profiling changes no result.
/// </summary>
public class StepProfileProperties
{
    private static ParamTree Tree(Device d, int seed, params (string Name, int[] Shape)[] entries) =>
        ParamTree.FromHost(d, entries.Select((e, i) => KeyValuePair.Create(e.Name, (e.Shape, GradCheck.Values(seed + i, e.Shape.Aggregate(1, (a, b) => a * b))))));

    private static (float[] Grads, List<string> TapeOps) Step(Device d, ParamTree p, float[] x, StepProfile? profile, Func<Tensor, Tensor>? extra = null)
    {
        using var step = d.BeginStep();
        step.Profile = profile;
        var input = step.Upload(x, new Shape(4, 8));
        List<string> ops = [];
        var (_, g) = Autodiff.ValueAndGrad(step, p, q =>
        {
            var h = F.Relu(F.Linear(input, q["w1"], q["b1"]));
            if (extra is not null)
                h = extra(h);
            var loss = F.Sum(F.Linear(h, q["w2"], q["b2"]));
            ops = step.Tape!.Ops.Where(o => !o.StartsWith("param ", StringComparison.Ordinal)).ToList();
            return loss;
        });
        using (g)
            return (Transfer.ToHost(d.Stream, g.Flat32), ops);
    }

    [Fact]
    public void Each_recorded_op_is_counted_once_forward_and_once_backward_per_step_and_results_do_not_change()
    {
        var d = Devices.Cpu;
        using var p = Tree(d, 7, ("w1", [6, 8]), ("b1", [6]), ("w2", [3, 6]), ("b2", [3]));
        var x = GradCheck.Values(99, 32);
        var profile = new StepProfile();
        const int Steps = 3;
        float[] plain = Step(d, p, x, null).Grads;
        List<string> tapeOps = [];
        for (int i = 0; i < Steps; i++)
        {
            var (grads, ops) = Step(d, p, x, profile);
            profile.EndStep();
            Assert.Equal(plain, grads); // bit for bit: the profile only reads clocks
            tapeOps = ops;
        }

        Assert.Equal(Steps, profile.Steps);
        var expected = tapeOps.GroupBy(o => o).ToDictionary(g => g.Key, g => g.Count() * Steps);
        var byOp = profile.Ops.Where(o => o.Op != "upload").ToDictionary(o => o.Op);
        Assert.Equal(expected.Keys.Order(), byOp.Keys.Order());
        foreach (var (op, calls) in expected)
        {
            Assert.Equal(calls, byOp[op].ForwardCalls);
            Assert.Equal(calls, byOp[op].BackwardCalls);
            Assert.True(byOp[op].ForwardMs >= 0 && byOp[op].BackwardMs >= 0);
        }

        var upload = Assert.Single(profile.Ops, o => o.Op == "upload");
        Assert.Equal(Steps, upload.OtherCalls);
        Assert.Equal(profile.Ops.Sum(o => o.ForwardMs + o.BackwardMs + o.OtherMs), profile.TotalMs, 9);
    }

    [Fact]
    public void Time_inside_an_op_lands_on_that_op_forward_and_backward()
    {
        var d = Devices.Cpu;
        using var p = Tree(d, 3, ("w1", [6, 8]), ("b1", [6]), ("w2", [3, 6]), ("b2", [3]));
        var x = GradCheck.Values(5, 32);
        // The identity with a 30 ms forward and a 20 ms backward, as a user op.
        Tensor Slow(Tensor h) => F.Custom("Slow", [h], _ =>
        {
            Thread.Sleep(30);
            return F.Scale(h, 1f);
        }, g =>
        {
            Thread.Sleep(20);
            g.Accumulate(h, F.Scale(g.OutputGradTensor, 1f));
        });

        var profile = new StepProfile();
        for (int i = 0; i < 2; i++)
        {
            Step(d, p, x, profile, Slow);
            profile.EndStep();
        }

        var slow = Assert.Single(profile.Ops, o => o.Op == "Slow");
        Assert.InRange(slow.ForwardMs / 2, 30, 30 + 500);
        Assert.InRange(slow.BackwardMs / 2, 20, 20 + 500);

        // The ops around it do not absorb its sleep: each of them is far below the 20 ms slept.
        foreach (var other in profile.Ops.Where(o => o.Op != "Slow"))
            Assert.True(other.ForwardMs / 2 < 20 && other.BackwardMs / 2 < 20, $"{other.Op}: {other.ForwardMs / 2:F1} + {other.BackwardMs / 2:F1} ms");

        // The table has each op per step and the step's total.
        string table = profile.Table();
        Assert.Contains("Slow", table);
        Assert.Contains("step", table);
    }

    [Fact]
    public void Time_adds_named_pieces_outside_the_tape()
    {
        var d = Devices.Cpu;
        var profile = new StepProfile();
        profile.Time("optimizer", d, () => Thread.Sleep(15));
        profile.Time("optimizer", d, () => Thread.Sleep(15));
        profile.EndStep();
        profile.EndStep();
        var opt = Assert.Single(profile.Ops);
        Assert.Equal(("optimizer", 2, 0, 0), (opt.Op, opt.OtherCalls, opt.ForwardCalls, opt.BackwardCalls));
        Assert.True(opt.OtherMs >= 30, $"{opt.OtherMs} ms");
        Assert.Equal(opt.OtherMs, profile.TotalMs, 12);
        Assert.Throws<ArgumentNullException>(() => profile.Time(null!, d, () => { }));
    }
}
