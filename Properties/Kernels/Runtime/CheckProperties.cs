using Check = IlgpuTrain.Kernels.Runtime.Check;

namespace IlgpuTrain.Properties.Kernels.Runtime;

/// <summary>Launcher argument checks: messages name the operation, the argument and both sizes.</summary>
public class CheckProperties
{
    [Property(MaxTest = 50)]
    public Property SameLength_passes_exactly_when_lengths_match() =>
        Prop.ForAll(Gen.Choose(0, 50).ToArbitrary(), Gen.Choose(0, 50).ToArbitrary(), (a, b) =>
        {
            using var ta = Devices.Cpu.Upload(new float[a]);
            using var tb = Devices.Cpu.Upload(new float[b]);
            var e = Record.Exception(() => Check.SameLength("Op", ta.View<float>(), "x", tb.View<float>(), "y"));
            if (a == b)
                return (e is null).Label("equal lengths pass");
            return (e is ArgumentException && e.Message.Contains("Op: x has " + a, StringComparison.Ordinal) && e.Message.Contains("y has " + b, StringComparison.Ordinal))
                .Label(e?.Message ?? "no exception");
        });

    [Fact]
    public void Length_and_AtLeast_and_Dimension_explain_the_requirement()
    {
        using var t = Devices.Cpu.Upload(new float[5]);
        var e1 = Assert.Throws<ArgumentException>(() => Check.Length("Gemm", t.View<float>(), "a", 6, "op(A) (M, K) = (2, 3)"));
        Assert.Contains("Gemm: a has 5 elements but op(A) (M, K) = (2, 3) needs 6", e1.Message);
        var e2 = Assert.Throws<ArgumentException>(() => Check.AtLeast("Sum", t.View<float>(), "scratch", 8, "the partials"));
        Assert.Contains("at least 8", e2.Message);
        var e3 = Assert.Throws<ArgumentOutOfRangeException>(() => Check.Dimension("Gemm", -1, "m"));
        Assert.Contains("zero or more", e3.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => Check.Dimension("Softmax", 0, "c", allowZero: false));
        Check.Length("ok", t.View<float>(), "t", 5, "(5,)");
        Check.Dimension("ok", 0, "n");
    }
}
