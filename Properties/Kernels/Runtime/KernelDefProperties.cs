namespace IlgpuTrain.Properties.Kernels.Runtime;

/// <summary>Kernel definitions: readable names and refusal of methods ILGPU cannot load.</summary>
public class KernelDefProperties
{
    [Fact]
    public void Names_show_the_class_the_method_and_the_operator()
    {
        Assert.Equal("Elementwise.ZipKernel<AddOp>", Elementwise.AddDef.Name);
        Assert.Equal("Elementwise.ZipKernel<AxpyOp>", Elementwise.AxpyDef.Name);
        Assert.Equal("Elementwise.FillKernel", Elementwise.FillDef.Name);
        Assert.Equal(Elementwise.FillDef.Name, Elementwise.FillDef.ToString());
    }

    [Fact]
    public void Instance_methods_are_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => KernelDef.Of<ArrayView<float>>(new Holder().InstanceKernel));
        Assert.Contains("static", e.Message);
    }

    private sealed class Holder
    {
        private readonly float _offset = 1f;

        public void InstanceKernel(ArrayView<float> y) => y[0] = _offset;
    }
}
