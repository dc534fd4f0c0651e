namespace IlgpuTrain.Kernels.Runtime;

/// <summary>
/// Chooses launch shapes. Every IlgpuTrain kernel is a grid-stride loop, so any grid is correct;
/// the policy only decides what is fast on the accelerator at hand.
/// </summary>
/// <remarks>
/// GPU: <see cref="GroupSize"/> threads per group and enough groups to fill every multiprocessor
/// a few times over. CPU accelerator: one group of one thread per core, so each OS thread runs a
/// plain loop. An auto-grouped launch on the CPU accelerator is about 500x slower, and reading
/// <c>Grid</c>/<c>Group</c> properties inside the loop is about 50x slower (they are thread-local
/// reads there); kernels hoist the stride out of the loop.
/// </remarks>
/// <param name="GroupSize">Threads per group for grid-stride kernels.</param>
/// <param name="MaxGroups">Upper bound on groups for grid-stride kernels.</param>
/// <param name="ReduceGroupSize">Threads per group for shared-memory tree reductions (a power of two, at most <see cref="MaxReduceGroupSize"/>).</param>
/// <param name="MaxReduceGroups">Partial results per reduction pass (the deterministic scratch length).</param>
public sealed record LaunchPolicy(int GroupSize, int MaxGroups, int ReduceGroupSize, int MaxReduceGroups)
{
    /// <summary>Shared-memory capacity of the tree reduction kernels, in elements.</summary>
    public const int MaxReduceGroupSize = 256;

    /// <summary>Partial results of a deterministic flat reduction on the CPU accelerator (its <see cref="MaxReduceGroups"/>).</summary>
    public const int CpuReducePartials = 256;

    /// <summary>The policy for <paramref name="accelerator"/>.</summary>
    /// <param name="accelerator">The accelerator kernels will run on.</param>
    /// <returns>A policy that fills the GPU, or runs one thread per core on the CPU accelerator.</returns>
    public static LaunchPolicy For(Accelerator accelerator)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        // Tree reductions run in the accelerator's groups (on the CPU accelerator, barriers simulated with OS threads).
        int reduceGroup = LargestPowerOfTwoAtMost(Math.Min(accelerator.MaxNumThreadsPerGroup, MaxReduceGroupSize));
        if (accelerator.AcceleratorType == AcceleratorType.CPU)
        {
            // The managed flat reduction keeps one partial per chain: a fixed count (not the core
            // count) gives the same deterministic sums on every CPU, and 256 independent chains
            // let it vectorize and split them over threads.
            return new LaunchPolicy(1, Math.Max(1, accelerator.NumMultiprocessors), reduceGroup, CpuReducePartials);
        }

        int group = Math.Min(256, accelerator.MaxNumThreadsPerGroup);
        int perSm = Math.Max(1, accelerator.MaxNumThreadsPerMultiprocessor / group);
        return new LaunchPolicy(group, Math.Max(1, accelerator.NumMultiprocessors * perSm * 2), reduceGroup, Math.Max(1, accelerator.NumMultiprocessors * perSm));
    }

    /// <summary>A grid-stride launch over <paramref name="n"/> work items.</summary>
    /// <param name="n">Number of independent work items (elements, rows, ...); at least 1.</param>
    /// <returns>Enough groups to cover <paramref name="n"/>, capped at <see cref="MaxGroups"/>.</returns>
    public KernelConfig GridStride(long n)
    {
        if (n < 1)
            throw new ArgumentOutOfRangeException(nameof(n), n, "A launch needs at least one work item; launchers return early on empty inputs.");
        long groups = Math.Min((n + GroupSize - 1) / GroupSize, MaxGroups);
        return new KernelConfig((int)groups, GroupSize);
    }

    private static int LargestPowerOfTwoAtMost(int n)
    {
        int p = 1;
        while (p * 2 <= n)
            p *= 2;
        return p;
    }
}
