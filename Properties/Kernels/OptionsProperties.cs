namespace IlgpuTrain.Properties.Kernels;

/// <summary>The user-facing options kept beside the kernels (Kernels/Options.cs): PyTorch's defaults, and where users find them.</summary>
public class OptionsProperties
{
    [Fact]
    public void Cross_entropy_defaults_are_pytorchs()
    {
        // torch.nn.CrossEntropyLoss(): reduction='mean', label_smoothing=0.0, ignore_index=-100.
        var o = CrossEntropyOptions.Default;
        Assert.Equal(LossReduction.Mean, o.Reduction);
        Assert.Equal(0f, o.Epsilon);
        Assert.Equal(-100, o.IgnoreIndex);
        Assert.Equal(CrossEntropyOptions.DefaultIgnoreIndex, o.IgnoreIndex);
        Assert.Equal(LabelSmoothing.Uniform, o.Smoothing);
        Assert.Equal(o, new CrossEntropyOptions());
    }

    [Fact]
    public void The_options_live_in_the_namespace_users_import()
    {
        foreach (var t in new[] { typeof(CrossEntropyOptions), typeof(LossReduction), typeof(LabelSmoothing), typeof(GeluApproximation), typeof(ReductionMode) })
            Assert.True(t.Namespace == "IlgpuTrain.Functional" && t.IsPublic, $"{t.FullName} should be public in IlgpuTrain.Functional");
        Assert.Equal(GeluApproximation.None, default(GeluApproximation));
        Assert.Equal(ReductionMode.Deterministic, default(ReductionMode));
    }
}
