using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using IlgpuTrain.Cli.Benchmarks;

namespace IlgpuTrain.Properties.Cli;

/// <summary>
/// <c>bench</c>'s rounds, merged: each row's median time and its range, the peer's likewise, the
/// ratio as the median of the rounds' own ratios, throughput that follows the median time, and
/// rows measured once (startup) as they were. The medians here are computed by sorting, not by
/// the code under test.
/// </summary>
public class BenchMergeProperties
{
    private static double Median(IEnumerable<double> values)
    {
        var v = values.ToList();
        v.Sort();
        return v.Count % 2 == 1 ? v[v.Count / 2] : (v[(v.Count / 2) - 1] + v[v.Count / 2]) / 2;
    }

    private static readonly Gen<double> Time = Gen.Choose(1, 100_000).Select(i => i / 1000.0);

    [Property(MaxTest = 200)]
    public Property Merged_rows_are_the_medians_and_ranges_of_the_rounds()
    {
        var gen =
            from rounds in Gen.Choose(2, 6)
            from ours in Gen.ArrayOf(Time, rounds)
            from theirs in Gen.ArrayOf(Time, rounds)
            from peerRan in Gen.ArrayOf(Gen.Elements(true, true, false), rounds)
            from memory in Gen.ArrayOf(Time, rounds)
            select (ours, theirs, peerRan, memory);
        return Prop.ForAll(gen.ToArbitrary(), t =>
        {
            var (ours, theirs, peerRan, memory) = t;
            const double Work = 2e9; // a GEMM's flops: GFLOP/s = Work / (ms * 1e6)
            var rounds = ours.Select((ms, i) => (IReadOnlyList<BenchRow>)
            [
                new BenchRow("gemm", "g", ms, Work / (ms * 1e6), "GFLOP/s", "n") { PeerMs = peerRan[i] ? theirs[i] : null },
                new BenchRow("memory", "m", null, memory[i], "MiB", "n"),
            ]).ToList();
            var first = new BenchRow("startup", "s", 5, 0.005, "s", "once");
            rounds[0] = [first, .. rounds[0]];

            var merged = BenchRunner.Merge(rounds);
            Assert.Equal(["s", "g", "m"], merged.Select(r => r.Name));
            Assert.Same(first, merged[0]);

            var g = merged[1];
            Assert.Equal(Median(ours), g.Ms!.Value, 12);
            Assert.Equal(new Spread(Median(ours), ours.Min(), ours.Max(), ours.Length), g.MsSpread);
            Assert.Equal(Work / (g.Ms.Value * 1e6), g.Value!.Value, 9);
            var peers = theirs.Where((_, i) => peerRan[i]).ToList();
            var ratios = ours.Select((ms, i) => (ms, i)).Where(p => peerRan[p.i]).Select(p => p.ms / theirs[p.i]).ToList();
            if (peers.Count == 0)
            {
                Assert.Null(g.PeerMs);
                Assert.Null(g.Ratio);
            }
            else
            {
                Assert.Equal(Median(peers), g.PeerMs!.Value, 12);
                Assert.Equal(peers.Count, g.PeerSpread!.Count);
                Assert.Equal(Median(ratios), g.Ratio!.Value, 12);
                Assert.Equal((ratios.Min(), ratios.Max()), (g.RatioSpread!.Min, g.RatioSpread.Max));
            }

            var m = merged[2];
            Assert.Null(m.Ms);
            Assert.Equal(Median(memory), m.Value!.Value, 12);
        });
    }

    [Fact]
    public void A_spread_needs_a_value()
    {
        Assert.Throws<ArgumentException>(() => Spread.Of([]));
        Assert.Equal(new Spread(2, 1, 3, 3), Spread.Of([3, 1, 2]));
        Assert.Equal(new Spread(2.5, 1, 4, 4), Spread.Of([4, 1, 3, 2]));
    }
}
