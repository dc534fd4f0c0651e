namespace IlgpuTrain.Properties.Support;

/// <summary>Generators for 2-D convolution: valid geometries (output at least 1x1) with their operands.</summary>
public static partial class Gens
{
    /// <summary>
    /// A convolution case for the im2col/col2im kernels: batch 0 to 3, channels 0 to 5, spatial
    /// sides around the 16-wide group (1, 2, 3, 7, 15, 16, 17, or 1 to 20), kernels 1 to 4, strides
    /// 1 to 3, padding 0 to 2, dilation 1 to 3. Inputs too small for the dilated kernel are grown to fit.
    /// </summary>
    public static Gen<ConvCase> ConvKernelCase { get; } = ConvCaseOf(
        Gen.Elements(0, 1, 2, 3),
        Gen.Elements(0, 1, 2, 3, 5),
        Gen.Elements(1, 2, 3),
        Gen.OneOf(Gen.Elements(1, 2, 3, 7, 15, 16, 17), Gen.Choose(1, 20)),
        Gen.Choose(1, 4),
        Gen.Choose(1, 3),
        Gen.Choose(0, 2),
        Gen.Choose(1, 3));

    /// <summary>
    /// A convolution case for the CPU accelerator's per-image paths: batch 0 to 20 (more than the
    /// 8 fixed dW image groups, and enough work to split over threads), channels 0 to 4, output
    /// channels 0 to 6, sides 1 to 17, kernels 1 to 3, strides 1 to 2, padding 0 to 2, dilation 1 to 2.
    /// </summary>
    public static Gen<ConvCase> ConvBatchCase { get; } = ConvCaseOf(
        Gen.OneOf(Gen.Elements(0, 1, 8, 9, 17), Gen.Choose(0, 20)),
        Gen.Choose(0, 4),
        Gen.Choose(0, 6),
        Gen.OneOf(Gen.Elements(1, 15, 16, 17), Gen.Choose(1, 17)),
        Gen.Choose(1, 3),
        Gen.Choose(1, 2),
        Gen.Choose(0, 2),
        Gen.Choose(1, 2));

    /// <summary>
    /// A small convolution case for gradient checks (finite differences cost two reference
    /// forwards per input element): batch 1 to 2, channels 1 to 3, output channels 1 to 3, sides
    /// 1 to 7, kernels 1 to 3, strides 1 to 2, padding 0 to 2, dilation 1 to 2.
    /// </summary>
    public static Gen<ConvCase> ConvGradCase { get; } = ConvCaseOf(
        Gen.Choose(1, 2),
        Gen.Choose(1, 3),
        Gen.Choose(1, 3),
        Gen.Choose(1, 7),
        Gen.Choose(1, 3),
        Gen.Choose(1, 2),
        Gen.Choose(0, 2),
        Gen.Choose(1, 2));

    private static Gen<ConvCase> ConvCaseOf(Gen<int> batch, Gen<int> channels, Gen<int> outChannels, Gen<int> side, Gen<int> kernel, Gen<int> stride, Gen<int> padding, Gen<int> dilation) =>
        from n in batch
        from c in channels
        from o in outChannels
        from h in side
        from w in side
        from kh in kernel
        from kw in kernel
        from sh in stride
        from sw in stride
        from ph in padding
        from pw in padding
        from dh in dilation
        from dw in dilation
        from seed in Gen.Choose(0, 1 << 30)
        let hh = Math.Max(h, (dh * (kh - 1)) + 1 - (2 * ph))
        let ww = Math.Max(w, (dw * (kw - 1)) + 1 - (2 * pw))
        select new ConvCase(n, c, o, Math.Max(1, hh), Math.Max(1, ww), kh, kw, sh, sw, ph, pw, dh, dw, seed);
}

/// <summary>One convolution problem: x (N, C, H, W), w (O, C, kh, kw), stride, padding, dilation, and a seed for the values.</summary>
/// <param name="N">Batch.</param>
/// <param name="C">Input channels.</param>
/// <param name="O">Output channels.</param>
/// <param name="H">Input height.</param>
/// <param name="W">Input width.</param>
/// <param name="KH">Kernel height.</param>
/// <param name="KW">Kernel width.</param>
/// <param name="SH">Vertical stride.</param>
/// <param name="SW">Horizontal stride.</param>
/// <param name="PH">Vertical padding.</param>
/// <param name="PW">Horizontal padding.</param>
/// <param name="DH">Vertical dilation.</param>
/// <param name="DW">Horizontal dilation.</param>
/// <param name="Seed">Seed of the operand values.</param>
public sealed record ConvCase(int N, int C, int O, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW, int DH, int DW, int Seed)
{
    /// <summary>The kernels' geometry.</summary>
    public Conv2dGeometry Geometry => new(N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW);

    /// <summary>x (N, C, H, W).</summary>
    public Shape XShape => new(N, C, H, W);

    /// <summary>w (O, C, kh, kw).</summary>
    public Shape WShape => new(O, C, KH, KW);

    /// <inheritdoc/>
    public override string ToString() =>
        $"x ({N}, {C}, {H}, {W}), w ({O}, {C}, {KH}, {KW}), stride ({SH}, {SW}), padding ({PH}, {PW}), dilation ({DH}, {DW}), seed {Seed}";
}
