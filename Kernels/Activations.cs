using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// Activation functions over flat float buffers of n elements (operators in ActivationOps.cs).
//
//   forward   y  = f(x)           reads 4 B, writes 4 B per element
//   backward  dx = dy * f'(x)     reads 8 B, writes 4 B per element; OVERWRITES dx (no accumulation)
//
//   Relu       f = max(x, 0)                                          f'(0) = 0, as PyTorch
//   LeakyRelu  f = x for x > 0, else slope * x   (slope 0.01)         f'(0) = slope, as PyTorch
//   Gelu       f = 0.5 x (1 + erf(x / sqrt 2))                        approximate='none'
//              f = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))    approximate='tanh'
//   Tanh       f = tanh(x)
//   Sigmoid    f = 1 / (1 + exp(-x))
//   Silu       f = x sigmoid(x)
//
// Backward takes the forward INPUT x, not the output. Outputs may alias inputs (y = x, dx = dy):
// each element is read and written by the same thread. On the CPU accelerator both directions run
// CpuLoops (managed loops calling the same operator structs, so bitwise equal to the kernels).
//
// Kernels compute in float through ActivationMath, which uses only XMath.Exp: PTX's tanh is
// tanh.approx.f32 (relative error ~5e-4), so no kernel calls XMath.Tanh.

/// <summary>Activation functions: ILGPU kernels and checked launchers.</summary>
internal static class Activations
{
    /// <summary>Bytes a forward activation (Relu, Gelu, ...) moves per element: reads x (4), writes y (4). Benchmarks report GB/s from it.</summary>
    public const int ForwardBytesPerElement = 8;

    // ---------------------------------------------------------------- ILGPU kernels
    // Forward is Elementwise.MapKernel<TOp>.

    // Kernel: dx[i] = dy[i] * op.Derivative(x[i]) over dx's length, grid-stride (dx may alias dy).
    public static void BackwardKernel<TOp>(ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dx, TOp op)
        where TOp : struct, IActivationOp
    {
        int n = dx.IntLength;
        // Grid and Group reads are thread-local on the CPU accelerator: read them once.
        int stride = Grid.DimX * Group.DimX;
        for (int i = Grid.GlobalIndex.X; i < n; i += stride)
            dx[i] = dy[i] * op.Derivative(new Lane1(x[i])).V;
    }

    internal static readonly ActivationKernels<ReluOp> ReluKernels = new();
    internal static readonly ActivationKernels<LeakyReluOp> LeakyReluKernels = new();
    internal static readonly ActivationKernels<GeluOp> GeluKernels = new();
    internal static readonly ActivationKernels<GeluTanhOp> GeluTanhKernels = new();
    internal static readonly ActivationKernels<TanhOp> TanhKernels = new();
    internal static readonly ActivationKernels<SigmoidOp> SigmoidKernels = new();
    internal static readonly ActivationKernels<SiluOp> SiluKernels = new();

    // ---------------------------------------------------------------- launchers

    // Every launcher takes x (forward input), y, dy, dx of one length n; y may alias x and dx may
    // alias dy; backwards overwrite dx.

    /// <summary>y = max(x, 0).</summary>
    public static void Relu(KernelHost host, ArrayView<float> x, ArrayView<float> y) =>
        Elementwise.Map(host, ReluKernels.Forward, x, y, default(ReluOp), nameof(Relu));

    /// <summary>dx = dy * (x &gt; 0 ? 1 : 0).</summary>
    public static void ReluBackward(KernelHost host, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dx) =>
        Backward(host, ReluKernels.Backward, x, dy, dx, default(ReluOp), nameof(ReluBackward));

    /// <summary>y = x for x &gt; 0, else negativeSlope * x (PyTorch LeakyReLU, default slope 0.01).</summary>
    public static void LeakyRelu(KernelHost host, ArrayView<float> x, ArrayView<float> y, float negativeSlope = LeakyReluOp.DefaultNegativeSlope) =>
        Elementwise.Map(host, LeakyReluKernels.Forward, x, y, new LeakyReluOp(negativeSlope), nameof(LeakyRelu));

    /// <summary>dx = dy * (x &gt; 0 ? 1 : negativeSlope).</summary>
    public static void LeakyReluBackward(KernelHost host, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dx, float negativeSlope = LeakyReluOp.DefaultNegativeSlope) =>
        Backward(host, LeakyReluKernels.Backward, x, dy, dx, new LeakyReluOp(negativeSlope), nameof(LeakyReluBackward));

    /// <summary>
    /// y = 0.5 x (1 + erf(x / sqrt 2)), or with <see cref="GeluApproximation.Tanh"/>
    /// y = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (PyTorch GELU). y may alias x.
    /// </summary>
    public static void Gelu(KernelHost host, ArrayView<float> x, ArrayView<float> y, GeluApproximation approximate = GeluApproximation.None)
    {
        switch (approximate)
        {
            case GeluApproximation.None:
                Elementwise.Map(host, GeluKernels.Forward, x, y, default(GeluOp), nameof(Gelu));
                break;
            case GeluApproximation.Tanh:
                Elementwise.Map(host, GeluTanhKernels.Forward, x, y, default(GeluTanhOp), nameof(Gelu));
                break;
            default:
                throw UnknownApproximation(nameof(Gelu), approximate);
        }
    }

    /// <summary>dx = dy * gelu'(x).</summary>
    public static void GeluBackward(KernelHost host, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dx, GeluApproximation approximate = GeluApproximation.None)
    {
        switch (approximate)
        {
            case GeluApproximation.None:
                Backward(host, GeluKernels.Backward, x, dy, dx, default(GeluOp), nameof(GeluBackward));
                break;
            case GeluApproximation.Tanh:
                Backward(host, GeluTanhKernels.Backward, x, dy, dx, default(GeluTanhOp), nameof(GeluBackward));
                break;
            default:
                throw UnknownApproximation(nameof(GeluBackward), approximate);
        }
    }

    /// <summary>y = tanh(x).</summary>
    public static void Tanh(KernelHost host, ArrayView<float> x, ArrayView<float> y) =>
        Elementwise.Map(host, TanhKernels.Forward, x, y, default(TanhOp), nameof(Tanh));

    /// <summary>dx = dy * (1 - tanh^2(x)).</summary>
    public static void TanhBackward(KernelHost host, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dx) =>
        Backward(host, TanhKernels.Backward, x, dy, dx, default(TanhOp), nameof(TanhBackward));

    /// <summary>y = 1 / (1 + exp(-x)).</summary>
    public static void Sigmoid(KernelHost host, ArrayView<float> x, ArrayView<float> y) =>
        Elementwise.Map(host, SigmoidKernels.Forward, x, y, default(SigmoidOp), nameof(Sigmoid));

    /// <summary>dx = dy * sigmoid(x) sigmoid(-x).</summary>
    public static void SigmoidBackward(KernelHost host, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dx) =>
        Backward(host, SigmoidKernels.Backward, x, dy, dx, default(SigmoidOp), nameof(SigmoidBackward));

    /// <summary>y = x sigmoid(x).</summary>
    public static void Silu(KernelHost host, ArrayView<float> x, ArrayView<float> y) =>
        Elementwise.Map(host, SiluKernels.Forward, x, y, default(SiluOp), nameof(Silu));

    /// <summary>dx = dy * sigmoid(x) (1 + x sigmoid(-x)).</summary>
    public static void SiluBackward(KernelHost host, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dx) =>
        Backward(host, SiluKernels.Backward, x, dy, dx, default(SiluOp), nameof(SiluBackward));

    private static void Backward<TOp>(KernelHost host, KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, TOp>> def, ArrayView<float> x, ArrayView<float> dy, ArrayView<float> dx, TOp op, string what)
        where TOp : struct, IActivationOp
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.SameLength(what, x, nameof(x), dy, nameof(dy));
        Check.SameLength(what, x, nameof(x), dx, nameof(dx));
        if (dx.Length == 0)
            return;
        if (host.RunsManaged)
            CpuLoops.ActivationBackward(host, x, dy, dx, op);
        else
            host.Load(def)(host.Stream, host.Launch.GridStride(dx.Length), x, dy, dx, op);
    }

    private static ArgumentOutOfRangeException UnknownApproximation(string what, GeluApproximation approximate) =>
        new("approximate", approximate, $"{what}: approximate must be None or Tanh, got {approximate}.");
}

// The forward (Elementwise.MapKernel) and backward (Activations.BackwardKernel) kernels of one activation.
internal sealed class ActivationKernels<TOp> : IKernelSet
    where TOp : struct, IActivationOp
{
    public readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, TOp>> Forward =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, TOp>(Elementwise.MapKernel);

    public readonly KernelDef<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, TOp>> Backward =
        KernelDef.Of<ArrayView<float>, ArrayView<float>, ArrayView<float>, TOp>(Activations.BackwardKernel);

    public IEnumerable<KernelDef> Kernels => [Forward, Backward];
}
