namespace IlgpuTrain.Properties.Kernels.Runtime;

/// <summary>
/// The fork-join pool of the managed CPU paths runs every index exactly once, whatever the
/// parallelism, rethrows a body's exception after the join, and runs nested and concurrent forks
/// inline instead of deadlocking.
/// </summary>
public class CpuWorkersProperties
{
    [Property(MaxTest = 100)]
    public Property Every_index_runs_exactly_once() =>
        Prop.ForAll(Gen.Choose(0, 300).ToArbitrary(), Gen.Choose(1, 9).ToArbitrary(), (count, parallelism) =>
        {
            var hits = new int[count];
            CpuWorkers.For(count, parallelism, i => Interlocked.Increment(ref hits[i]));
            int wrong = Array.FindIndex(hits, h => h != 1);
            return (wrong < 0).Label(wrong < 0 ? $"{count} indices" : $"index {wrong} ran {hits[wrong]} times of {count}");
        });

    [Fact]
    public void A_body_exception_is_rethrown_after_every_other_index_ran()
    {
        int ran = 0;
        var e = Assert.Throws<InvalidOperationException>(() => CpuWorkers.For(64, 4, i =>
        {
            Interlocked.Increment(ref ran);
            if (i == 17)
                throw new InvalidOperationException("index 17");
        }));
        Assert.Equal("index 17", e.Message);
        Assert.Equal(64, ran);

        // The pool still works afterwards.
        int after = 0;
        CpuWorkers.For(10, 2, _ => Interlocked.Increment(ref after));
        Assert.Equal(10, after);
    }

    [Fact]
    public void Nested_and_concurrent_forks_complete_with_every_index()
    {
        var hits = new int[8 * 16];
        CpuWorkers.For(8, 2, outer => CpuWorkers.For(16, 2, inner => Interlocked.Increment(ref hits[(outer * 16) + inner])));
        Assert.All(hits, h => Assert.Equal(1, h));

        var concurrent = new int[4 * 1000];
        Parallel.For(0, 4, t => CpuWorkers.For(1000, 2, i => Interlocked.Increment(ref concurrent[(t * 1000) + i])));
        Assert.All(concurrent, h => Assert.Equal(1, h));
    }
}
