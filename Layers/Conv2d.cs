namespace IlgpuTrain.Layers;

/// <summary>
/// 2-D convolution layer, torch.nn.Conv2d with groups = 1 and zero padding.
/// </summary>
/// <remarks>
/// y[n, o, oy, ox] = b[o] + Σ_{c, i, j} w[o, c, i, j] x[n, c, oy sh − ph + i dh, ox sw − pw + j dw]
/// Ho = ⌊(H + 2 ph − dh (kh − 1) − 1) / sh⌋ + 1, Wo likewise.
/// weight (O, C, kh, kw), bias (O). Per-sample input (C, H, W), output (O, Ho, Wo).
/// Init (PyTorch's default): W ~ U(−1/√fan_in, 1/√fan_in) (kaiming_uniform_ with a = √5), b ~ U(−1/√fan_in, 1/√fan_in), fan_in = C kh kw.
/// Defaults: stride 1, padding 0, dilation 1, bias on. Square sizes come from the positional
/// arguments; <see cref="KernelHW"/>, <see cref="StrideHW"/>, <see cref="PaddingHW"/> and
/// <see cref="DilationHW"/> give (h, w) pairs that override them.
/// PyTorch's page: torch.nn.Conv2d.
/// </remarks>
/// <param name="OutChannels">Output channels O.</param>
/// <param name="KernelSize">Kernel side (kh = kw), unless <see cref="KernelHW"/> is set.</param>
/// <param name="Stride">Stride in both directions, unless <see cref="StrideHW"/> is set.</param>
/// <param name="Padding">Zero padding on every side, unless <see cref="PaddingHW"/> is set.</param>
/// <param name="Dilation">Dilation in both directions, unless <see cref="DilationHW"/> is set.</param>
/// <param name="UseBias">Whether the layer has a bias.</param>
/// <param name="WeightInit">Weight initialization.</param>
public sealed record Conv2d(int OutChannels, int KernelSize, int Stride = 1, int Padding = 0, int Dilation = 1, bool UseBias = true, WeightInit WeightInit = WeightInit.Default) : Layer
{
    /// <summary>A non-square kernel (kh, kw); null for (<see cref="KernelSize"/>, <see cref="KernelSize"/>).</summary>
    public (int H, int W)? KernelHW { get; init; }

    /// <summary>A non-square stride (sh, sw); null for (<see cref="Stride"/>, <see cref="Stride"/>).</summary>
    public (int H, int W)? StrideHW { get; init; }

    /// <summary>A non-square padding (ph, pw); null for (<see cref="Padding"/>, <see cref="Padding"/>).</summary>
    public (int H, int W)? PaddingHW { get; init; }

    /// <summary>A non-square dilation (dh, dw); null for (<see cref="Dilation"/>, <see cref="Dilation"/>).</summary>
    public (int H, int W)? DilationHW { get; init; }

    /// <summary>The kernel (kh, kw) in effect.</summary>
    public (int H, int W) Kernel => KernelHW ?? (KernelSize, KernelSize);

    /// <summary>The stride (sh, sw) in effect.</summary>
    public (int H, int W) Strides => StrideHW ?? (Stride, Stride);

    /// <summary>The padding (ph, pw) in effect.</summary>
    public (int H, int W) Paddings => PaddingHW ?? (Padding, Padding);

    /// <summary>The dilation (dh, dw) in effect.</summary>
    public (int H, int W) Dilations => DilationHW ?? (Dilation, Dilation);

    /// <inheritdoc/>
    public override string Describe()
    {
        var parts = new List<string> { $"{OutChannels}", $"{Kernel.H}x{Kernel.W}" };
        if (Strides != (1, 1))
            parts.Add($"stride {Pair(Strides)}");
        if (Paddings != (0, 0))
            parts.Add($"padding {Pair(Paddings)}");
        if (Dilations != (1, 1))
            parts.Add($"dilation {Pair(Dilations)}");
        if (!UseBias)
            parts.Add("no bias");
        return $"Conv2d({string.Join(", ", parts)})";
    }

    /// <inheritdoc/>
    public override IReadOnlyList<ParamSpec> Parameters(Shape input)
    {
        int c = InChannels(input);
        var w = new Shape(OutChannels, c, Kernel.H, Kernel.W);
        var fans = Fans.Of(w);
        return UseBias
            ? [new ParamSpec("weight", w, WeightInit.For(fans)), new ParamSpec("bias", new Shape(OutChannels), Initializer.FanInBias(fans))]
            : [new ParamSpec("weight", w, WeightInit.For(fans))];
    }

    /// <inheritdoc/>
    public override Shape OutputShape(Shape input)
    {
        _ = InChannels(input);
        var (kh, kw) = Kernel;
        var (sh, sw) = Strides;
        var (ph, pw) = Paddings;
        var (dh, dw) = Dilations;
        long spanH = ((long)dh * (kh - 1)) + 1, spanW = ((long)dw * (kw - 1)) + 1;
        if (input[1] + (2L * ph) < spanH || input[2] + (2L * pw) < spanW)
            throw ShapeError(input, $"(C, H, W) with H + 2*{ph} >= {spanH} and W + 2*{pw} >= {spanW}, the span of its kernel {Pair(Kernel)} with dilation {Pair(Dilations)}");
        int ho = (int)((input[1] + (2L * ph) - spanH) / sh) + 1;
        int wo = (int)((input[2] + (2L * pw) - spanW) / sw) + 1;
        return new Shape(OutChannels, ho, wo);
    }

    /// <inheritdoc/>
    public override Tensor Forward(LayerContext ctx, Tensor x)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        return F.Conv2d(x, ctx.Param("weight"), UseBias ? ctx.Param("bias") : null, Strides, Paddings, Dilations);
    }

    private static string Pair((int H, int W) p) => p.H == p.W ? $"{p.H}" : $"({p.H}, {p.W})";

    private int InChannels(Shape input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (OutChannels < 1)
            throw new ArgumentOutOfRangeException(nameof(OutChannels), OutChannels, $"Conv2d needs at least 1 output channel, got {OutChannels}.");
        if (Kernel.H < 1 || Kernel.W < 1)
            throw new ArgumentOutOfRangeException(nameof(KernelSize), Kernel, $"Conv2d needs a kernel of at least (1, 1), got {Pair(Kernel)}.");
        if (Strides.H < 1 || Strides.W < 1)
            throw new ArgumentOutOfRangeException(nameof(Stride), Strides, $"Conv2d needs a stride of at least 1, got {Pair(Strides)}.");
        if (Dilations.H < 1 || Dilations.W < 1)
            throw new ArgumentOutOfRangeException(nameof(Dilation), Dilations, $"Conv2d needs a dilation of at least 1, got {Pair(Dilations)}.");
        if (Paddings.H < 0 || Paddings.W < 0)
            throw new ArgumentOutOfRangeException(nameof(Padding), Paddings, $"Conv2d needs a padding of 0 or more, got {Pair(Paddings)}.");
        if (input.Rank != 3)
            throw ShapeError(input, "(C, H, W) per sample (rank 3, NCHW without the batch)");
        return input[0];
    }
}
