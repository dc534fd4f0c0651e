namespace IlgpuTrain.Properties.Functional;

/// <summary>The caching pool and the per-step arena.</summary>
public class MemoryPoolProperties
{
    [Property(MaxTest = 200)]
    public Property Size_class_holds_the_request_and_at_most_a_third_of_it_is_slack() =>
        Prop.ForAll(Gen.Choose(0, int.MaxValue).Select(x => (long)x * 3).ToArbitrary(), bytes =>
        {
            long c = MemoryPool.SizeClass(bytes);
            // Classes are 2^k and 1.5 * 2^k, so the class is at most 1.5x the request (slack <= c/3).
            return (c >= bytes && (c == 256 || c * 2 <= bytes * 3)).Label($"{bytes} -> {c}");
        });

    [Fact]
    public void High_water_mark_is_flat_over_200_arena_steps()
    {
        using var d = Device.Create(DeviceKind.Cpu);
        var sizes = new[] { new Shape(128, 784), new Shape(128, 256), new Shape(256, 784), new Shape(128, 10), new Shape(7), new Shape(0) };
        MemoryPoolStats afterFirst = default;
        for (int step = 0; step < 200; step++)
        {
            using (var s = d.BeginStep())
            {
                foreach (var shape in sizes)
                {
                    var t = s.Allocate(shape);
                    if (t.Length > 0)
                        Elementwise.Fill(d.Kernels, t.View<float>(), step);
                }
                _ = s.Scratch<float>(1000);
                _ = s.Zeros(new Shape(3, 3), DType.Float16);
            }
            if (step == 0)
                afterFirst = d.Pool.Stats;
        }
        d.Synchronize();
        var last = d.Pool.Stats;
        Assert.Equal(0, last.BytesInUse);
        Assert.Equal(afterFirst.PeakBytesInUse, last.PeakBytesInUse);
        Assert.Equal(afterFirst.PeakBytesReserved, last.PeakBytesReserved);
        Assert.Equal(afterFirst.DeviceAllocations, last.DeviceAllocations);
        Assert.True(last.CacheHits >= 199 * (sizes.Length + 2), $"cache hits {last.CacheHits}");
    }

    [Fact]
    public void Scope_tensors_are_released_when_the_step_ends()
    {
        var d = Devices.Cpu;
        Tensor t;
        using (var s = d.BeginStep())
        {
            t = s.Zeros(new Shape(4, 4));
            Assert.Equal(16, t.ToHost().Length);
        }
        var e = Assert.Throws<ConsumedValueException>(() => t.ToHost());
        Assert.Contains("StepScope", e.Message);
    }

    [Fact]
    public void Returned_buffers_are_reused_and_counted()
    {
        using var d = Device.Create(DeviceKind.Cpu);
        var a = d.Pool.Rent(1000);
        Assert.Equal(MemoryPool.SizeClass(1000), d.Pool.Stats.BytesInUse);
        a.Dispose();
        a.Dispose(); // idempotent
        Assert.Equal(0, d.Pool.Stats.BytesInUse);
        Assert.Equal(MemoryPool.SizeClass(1000), d.Pool.Stats.BytesCached);
        using var b = d.Pool.Rent(900);
        Assert.Equal(1, d.Pool.Stats.CacheHits);
        Assert.Equal(1, d.Pool.Stats.DeviceAllocations);
        d.Pool.Trim();
        Assert.Equal(0, d.Pool.Stats.BytesCached);
        Assert.Throws<ObjectDisposedException>(() => a.View<float>(1));
    }

    [Fact]
    public void Views_outside_the_buffer_are_refused()
    {
        using var b = Devices.Cpu.Pool.Rent(16);
        Assert.Equal(4, b.View<float>(4).Length);
        Assert.Throws<ArgumentOutOfRangeException>(() => b.View<float>(5));
        Assert.Throws<ArgumentOutOfRangeException>(() => b.View<float>(1, 2));
    }
}
