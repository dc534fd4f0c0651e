namespace IlgpuTrain.Properties.Kernels;

/// <summary>Top-k hits: the kernel equals its reference; k = 1 agrees with a sort-based argmax on distinct logits; k = C always hits.</summary>
public class MetricsProperties
{
    private static Gen<(int N, int C, int K, int Seed)> Case =>
        from n in Gens.Dim
        from c in Gen.Choose(1, 20)
        from k in Gen.Choose(1, 6)
        from seed in Gen.Choose(0, 100000)
        select (n, c, k, seed);

    [Property(MaxTest = 50)]
    public Property TopK_hits_equal_reference_and_a_sort_based_rank() =>
        Prop.ForAll(Case.ToArbitrary(), p =>
        {
            var r = new Random(p.Seed);
            // Coarse logits make ties common; a NaN now and then must be a miss.
            var logits = Enumerable.Range(0, p.N * p.C).Select(_ => r.Next(20) == 0 ? float.NaN : r.Next(-3, 4)).ToArray();
            var targets = Enumerable.Range(0, p.N).Select(_ => r.Next(p.C)).ToArray();
            var expected = new float[p.N];
            MetricsReference.TopKHitsReference(logits, targets, expected, p.N, p.C, p.K);

            // Independent: rank = 1 + number of classes strictly above, from a sorted copy of the row.
            var ranked = new float[p.N];
            for (int i = 0; i < p.N; i++)
            {
                var row = logits.AsSpan(i * p.C, p.C).ToArray();
                float v = row[targets[i]];
                int above = float.IsNaN(v) ? int.MaxValue : row.OrderByDescending(x => float.IsNaN(x) ? float.NegativeInfinity : x).TakeWhile(x => x > v).Count();
                ranked[i] = above < p.K ? 1 : 0;
            }

            var result = Close.All(expected, ranked, 0, 0, "reference vs sorted rank");
            foreach (var d in Devices.All)
            {
                using var l = d.Upload(logits);
                using var t = d.Upload(targets);
                using var h = d.Poisoned(p.N);
                Metrics.TopKHits(d.Kernels, l.View<float>(), t.View<int>(), h.View<float>(), p.N, p.C, p.K);
                result = result.And(Close.All(h.ToHost(), expected, 0, 0, $"on {Devices.Describe(d)}"));
            }

            return result.Label($"(N, C, k) = ({p.N}, {p.C}, {p.K})");
        });

    [Fact]
    public void K_equal_to_C_always_hits_finite_targets_and_bad_k_is_refused()
    {
        var d = Devices.Cpu;
        using var l = d.Upload([1f, 2f, 3f, -1f, 0f, 5f]);
        using var t = d.Upload([0, 1]);
        using var h = d.Poisoned(2);
        Metrics.TopKHits(d.Kernels, l.View<float>(), t.View<int>(), h.View<float>(), 2, 3, 3);
        Assert.Equal([1f, 1f], h.ToHost());
        Metrics.TopKHits(d.Kernels, l.View<float>(), t.View<int>(), h.View<float>(), 2, 3, 1);
        Assert.Equal([0f, 0f], h.ToHost());
        Assert.Throws<ArgumentOutOfRangeException>(() => Metrics.TopKHits(d.Kernels, l.View<float>(), t.View<int>(), h.View<float>(), 2, 3, 0));
    }
}
