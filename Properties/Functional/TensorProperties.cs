namespace IlgpuTrain.Properties.Functional;

/// <summary>Tensor: host round trips, shapes and dtypes with clear errors, donation.</summary>
public class TensorProperties
{
    [Property(MaxTest = 30)]
    public Property Float32_round_trip_is_exact() =>
        Prop.ForAll(Gens.Vector(-1e30f, 1e30f).ToArbitrary(), v =>
        {
            using var t = Tensor.FromHost(Devices.Cpu, v, v.Length);
            return (t.ToHost().AsSpan().SequenceEqual(v) && t.Shape == new Shape(v.Length)).Label($"n = {v.Length}");
        });

    [Property(MaxTest = 30)]
    public Property Int32_round_trip_is_exact() =>
        Prop.ForAll(Gen.ArrayOf(Gen.Choose(int.MinValue, int.MaxValue)).ToArbitrary(), v =>
        {
            using var t = Tensor.FromHost(Devices.Cpu, v, v.Length);
            return t.ToHost<int>().AsSpan().SequenceEqual(v) && t.DType == DType.Int32;
        });

    [Property(MaxTest = 30)]
    public Property Float16_upload_rounds_once_to_nearest_half() =>
        Prop.ForAll(Gens.Vector(-70000f, 70000f).ToArbitrary(), v =>
        {
            using var t = Tensor.FromHost(Devices.Cpu, v, new Shape(v.Length), DType.Float16);
            var got = t.ToHost();
            // System.Half is the independent IEEE binary16 implementation.
            var expected = v.Select(x => (float)(System.Half)x).ToArray();
            return got.AsSpan().SequenceEqual(expected).Label($"n = {v.Length}");
        });

    [Fact]
    public void Data_length_must_match_shape_and_the_error_names_both()
    {
        var e = Assert.Throws<ArgumentException>(() => Tensor.FromHost(Devices.Cpu, new float[5], 2, 3));
        Assert.Contains("(2, 3)", e.Message);
        Assert.Contains("6", e.Message);
        Assert.Contains("5", e.Message);
    }

    [Fact]
    public void Wrong_dtype_view_names_both_dtypes()
    {
        using var t = Tensor.FromHost(Devices.Cpu, new int[6], 2, 3);
        var e = Assert.Throws<InvalidOperationException>(() => t.View<float>());
        Assert.Contains("Int32", e.Message);
        Assert.Contains("Float32", e.Message);
        Assert.Contains("(2, 3)", e.Message);
    }

    [Fact]
    public void Shape_mismatch_error_names_both_shapes()
    {
        var e = Assert.Throws<ArgumentException>(() => Shape.RequireEqual("Add", new Shape(2, 3), "a", new Shape(3, 2), "b"));
        Assert.Contains("a has shape (2, 3)", e.Message);
        Assert.Contains("b has shape (3, 2)", e.Message);
    }

    [Fact]
    public void Reshape_consumes_its_input()
    {
        var t = Tensor.FromHost(Devices.Cpu, [1f, 2, 3, 4, 5, 6], 2, 3);
        using var r = t.Reshape(new Shape(3, 2));
        Assert.Equal([1f, 2, 3, 4, 5, 6], r.ToHost());
        Assert.True(t.IsConsumed);
        var e = Assert.Throws<ConsumedValueException>(() => t.ToHost());
        Assert.Contains("Reshape", e.Message);
        Assert.Contains("Clone()", e.Message);
        Assert.Throws<ConsumedValueException>(() => t.View<float>());
        t.Dispose(); // disposing a consumed tensor is harmless
    }

    [Fact]
    public void Reshape_to_a_different_length_is_refused_and_nothing_is_lost()
    {
        using var t = Tensor.FromHost(Devices.Cpu, [1f, 2, 3, 4, 5, 6], 2, 3);
        var e = Assert.Throws<ArgumentException>(() => t.Reshape(new Shape(4, 2)));
        Assert.Contains("(2, 3)", e.Message);
        Assert.Contains("(4, 2)", e.Message);
        Assert.Equal([1f, 2, 3, 4, 5, 6], t.ToHost());
    }

    [Property(MaxTest = 20)]
    public Property Clone_is_independent_of_the_original() =>
        Prop.ForAll(Gens.Vector().ToArbitrary(), v =>
        {
            var d = Devices.Cpu;
            using var t = d.Upload(v);
            using var c = t.Clone();
            Elementwise.Fill(d.Kernels, t.View<float>(), 42f);
            return c.ToHost().AsSpan().SequenceEqual(v) && c.Snapshot().Data is float[];
        });

    [Fact]
    public void Zeros_are_zero_in_every_dtype()
    {
        foreach (var dt in Enum.GetValues<DType>())
        {
            using var t = Tensor.Zeros(Devices.Cpu, new Shape(3, 5), dt);
            var s = t.Snapshot();
            Assert.Equal(15, s.Data.Length);
            foreach (var x in s.Data)
                Assert.Equal(0.0, Convert.ToDouble(x is Half h ? (float)h : x));
        }
    }

    [Fact]
    public void Negative_dimension_is_refused_with_its_axis()
    {
        var e = Assert.Throws<ArgumentException>(() => new Shape(2, -1));
        Assert.Contains("axis 1", e.Message);
    }

    [Fact]
    public void Shapes_compare_by_value_and_print_like_pytorch()
    {
        Assert.Equal(new Shape(2, 3), new Shape(2, 3));
        Assert.NotEqual(new Shape(2, 3), new Shape(3, 2));
        Assert.Equal("(128, 784)", new Shape(128, 784).ToString());
        Assert.Equal("(5,)", new Shape(5).ToString());
        Assert.Equal("()", Shape.Scalar.ToString());
        Assert.Equal(1, Shape.Scalar.Length);
        Assert.Equal(0, new Shape(3, 0).Length);
        Assert.Equal(3, new Shape(2, 3)[-1]);
        Assert.Throws<ArgumentOutOfRangeException>(() => new Shape(2, 3)[2]);
    }
}
