namespace IlgpuTrain.Properties.Kernels.Runtime;

/// <summary>Launch shapes: grid-stride launches cover any n and never exceed the policy's caps.</summary>
public class LaunchPolicyProperties
{
    private static readonly Gen<LaunchPolicy> Policies =
        from g in Gen.Elements(1, 2, 16, 32, 256)
        from m in Gen.Choose(1, 512)
        select new LaunchPolicy(g, m, 16, m);

    [Property(MaxTest = 300)]
    public Property Grid_stride_launch_covers_n_within_the_caps() =>
        Prop.ForAll(Policies.ToArbitrary(), Gen.OneOf(Gen.Choose(1, 5000), Gen.Choose(1, int.MaxValue)).ToArbitrary(), (p, n) =>
        {
            var cfg = p.GridStride(n);
            long threads = (long)cfg.GridDim.X * cfg.GroupDim.X;
            bool caps = cfg.GridDim.X >= 1 && cfg.GridDim.X <= p.MaxGroups && cfg.GroupDim.X == p.GroupSize;
            // Either every element has its own thread, or the grid is full and threads loop.
            bool covers = threads >= n || cfg.GridDim.X == p.MaxGroups;
            bool noIdleGroups = (long)(cfg.GridDim.X - 1) * p.GroupSize < n;
            return caps.Label("caps").And(covers.Label("covers")).And(noIdleGroups.Label("no idle group"));
        });

    [Fact]
    public void Empty_launches_are_refused()
    {
        var p = LaunchPolicy.For(Devices.Cpu.Accelerator);
        Assert.Throws<ArgumentOutOfRangeException>(() => p.GridStride(0));
    }

    [Fact]
    public void Cpu_policy_runs_one_single_thread_group_per_core()
    {
        var p = LaunchPolicy.For(Devices.Cpu.Accelerator);
        Assert.Equal(1, p.GroupSize);
        Assert.Equal(Devices.Cpu.Accelerator.NumMultiprocessors, p.MaxGroups);
        var sim = LaunchPolicy.For(Devices.CpuKernels.Accelerator);
        Assert.Equal(16, sim.ReduceGroupSize);
        Assert.True(sim.ReduceGroupSize <= LaunchPolicy.MaxReduceGroupSize);
    }
}
