using IlgpuTrain.Layers;
using IlgpuTrain.Optimizers;
using IlgpuTrain.Training;
using IlgpuTrain.Training.Distributed;

namespace IlgpuTrain.Properties.Distributed;

/// <summary>
/// The gradient all-reduce overlapped with the backward (<see cref="DistributedOptions.OverlapBackward"/>),
/// in one process over a recording one-rank group: with small buckets, every bucket starts in the
/// plan's order (last parameters first), the first ones while the backward still runs (MPI's
/// progress is driven between them, before the first wait); without overlap, all start after the
/// backward; the updated parameters are the same bits either way.
/// </summary>
public class OverlapProperties
{
    [Property(MaxTest = 4)]
    public Property Buckets_start_in_plan_order_during_the_backward_and_the_update_is_the_same_bits() =>
        Prop.ForAll(Gen.Choose(0, 1000).ToArbitrary(), Gen.Elements(64L, 128L, 400L).ToArbitrary(), (seed, bytes) =>
        {
            var batch = new HostBatch(0, 16, new Shape(16, 2, 2, 2), GradCheck.Values(seed, 16 * 8), [.. Enumerable.Range(0, 16).Select(i => i % 3)]);
            var (withOverlap, overlapEvents, plan, offsets) = Step(batch, seed, bytes, overlap: true);
            var (without, plainEvents, _, _) = Step(batch, seed, bytes, overlap: false);

            int firstWait = overlapEvents.IndexOf("wait");
            var starts = overlapEvents.Where(e => e.StartsWith("start ", StringComparison.Ordinal)).ToList();
            bool inPlanOrder = offsets.SequenceEqual(plan.Select(b => b.Offset));
            bool progressBeforeWait = overlapEvents.Take(firstWait).Contains("test") && overlapEvents.IndexOf("test") > overlapEvents.IndexOf(starts[0]);
            bool plainAfter = !plainEvents.Contains("test") || plainEvents.IndexOf("test") > plainEvents.FindLastIndex(e => e.StartsWith("start ", StringComparison.Ordinal));
            return withOverlap.AsSpan().SequenceEqual(without).Label("the same parameters after the step")
                .And(plan.Count > 1).Label($"{plan.Count} buckets of {bytes} bytes")
                .And(inPlanOrder).Label($"started in the plan's order: {string.Join(", ", offsets)}")
                .And(progressBeforeWait).Label($"progress during the backward: {string.Join(" ", overlapEvents)}")
                .And(plainAfter).Label($"no overlap: {string.Join(" ", plainEvents)}");
        });

    // DDP's no_sync: with accumulation over k micro-batches, only each group's last micro-batch all-reduces, carrying
    // the rank's accumulated sum; one rank gives the bits of a run with no group at all.
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Accumulating_ranks_all_reduce_once_per_group_and_train_the_bits_of_one_process(bool overlap)
    {
        const int k = 3, steps = 7;
        var batches = Enumerable.Range(0, steps)
            .Select(i => new HostBatch(i, 16, new Shape(16, 2, 2, 2), GradCheck.Values(100 + i, 16 * 8), [.. Enumerable.Range(0, 16).Select(j => (i + j) % 3)]))
            .ToList();
        float[] Run(ProcessGroup? group, out int plan)
        {
            var options = new TrainerOptions { Epochs = 1, BatchSize = 16, Seed = 5, WarmKernels = false, Distributed = group is null ? null : new DistributedOptions(group) { BucketBytes = 128, OverlapBackward = overlap } };
            var model = new Flatten() >> new Dense(12) >> new ReLU() >> new Dense(8) >> new ReLU() >> new Dense(3);
            var trainer = new Trainer(Devices.Cpu, model, new Shape(2, 2, 2), new MultiSteps(new Sgd(0.1, momentum: 0.9), k), options);
            var s = trainer.Init();
            plan = GradientBuckets.Plan(s.Params.Layout, 128).Count;
            foreach (var batch in batches)
                (s, _) = trainer.Step(s, batch);
            using (s)
                return s.Params.Snapshot().Float32;
        }

        using var group = new RecordingGroup();
        var distributed = Run(group, out int buckets);
        var alone = Run(null, out _);
        Assert.True(buckets > 1, $"{buckets} bucket(s)");
        Assert.Equal(alone, distributed);
        // 7 micro-batches in groups of 3: two groups complete, so two all-reduces of every bucket, none for the other five.
        Assert.Equal(2 * buckets, group.Events.Count(e => e.StartsWith("start ", StringComparison.Ordinal)));
    }

    private static (float[] Params, List<string> Events, IReadOnlyList<GradientBucket> Plan, long[] Offsets) Step(HostBatch batch, int seed, long bytes, bool overlap)
    {
        using var group = new RecordingGroup();
        var options = new TrainerOptions { Epochs = 1, BatchSize = 16, Seed = (ulong)seed, WarmKernels = false, Distributed = new DistributedOptions(group) { BucketBytes = bytes, OverlapBackward = overlap } };
        var model = new Flatten() >> new Dense(12) >> new ReLU() >> new Dense(8) >> new ReLU() >> new Dense(3);
        var trainer = new Trainer(Devices.Cpu, model, new Shape(2, 2, 2), new Sgd(0.1), options);
        var s = trainer.Init();
        var plan = GradientBuckets.Plan(s.Params.Layout, bytes);
        var (next, _) = trainer.Step(s, batch);
        using (next)
            return (next.Params.Snapshot().Float32, group.Events, plan, [.. group.Addresses.Select(a => (long)(a - group.Addresses.Min()) / sizeof(float))]);
    }

    /// <summary>A one-rank group that records the gradient all-reduces' starts (and their addresses), MPI_Test polls and waits.</summary>
    private sealed class RecordingGroup() : ProcessGroup(TimeSpan.FromSeconds(30))
    {
        public List<string> Events { get; } = new();

        public override int Rank => 0;

        public override int WorldSize => 1;

        public override int LocalRank => 0;

        public override DistributedBackend Backend => DistributedBackend.Mpi;

        internal override PendingCollective Start(nint data, int count, ElementKind kind, ReduceOp op, string what)
        {
            if (!what.StartsWith("the gradients", StringComparison.Ordinal))
                return DoneCollective.Instance;
            Events.Add($"start {Addresses.Count}");
            Addresses.Add(data);
            return new Recorded(this);
        }

        internal override PendingCollective StartBroadcast(nint data, int count, ElementKind kind, int root, string what) => DoneCollective.Instance;

        internal override unsafe PendingCollective StartAllGather(nint send, nint receive, int count, ElementKind kind, string what)
        {
            int size = kind switch { ElementKind.Float64 => 8, ElementKind.Byte => 1, _ => 4 };
            Buffer.MemoryCopy((void*)send, (void*)receive, (long)count * size, (long)count * size);
            return DoneCollective.Instance;
        }

        internal override PendingCollective StartBarrier(string what) => DoneCollective.Instance;

        internal override void Abort(string message) => throw new InvalidOperationException(message);

        protected override void Dispose(bool disposing)
        {
        }

        /// <summary>The started buckets' addresses, in order (the plan's last bucket, at offset 0, is the lowest).</summary>
        public List<nint> Addresses { get; } = new();

        private sealed class Recorded(RecordingGroup group) : PendingCollective
        {
            private int _polls;

            // Finishes after two polls, as a message in flight would.
            public override bool Test()
            {
                group.Events.Add("test");
                return ++_polls > 2;
            }

            public override void Wait()
            {
                group.Events.Add("wait");
            }
        }
    }
}
