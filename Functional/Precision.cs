namespace IlgpuTrain.Functional;

/// <summary>
/// The numeric policy of a step (<see cref="StepScope.Precision"/>): which F ops compute with
/// binary16 operands. Float32 (the default) runs everything in float32.
/// </summary>
/// <remarks>
/// <para>Float16 is mixed precision as SEMANTICS.md defines it: fp16 compute and storage of the
/// GEMM operands and outputs, fp32 master weights and optimizer moments, fp32 losses and reductions.
/// Exactly these ops change, in their forward and their VJP:</para>
/// <list type="bullet">
/// <item><see cref="F.MatMul"/>: C = round16(half(op(A)) half(op(B))).</item>
/// <item><see cref="F.Linear"/>: y = round16(half(x) half(W)ᵀ) + b.</item>
/// <item><see cref="F.Conv2d"/>: y = round16(half(W) half(im2col(x))) + b, per image.</item>
/// </list>
/// <para>half(·) is a binary16 copy in the step arena (round to nearest even; |v| ≥ 65520 becomes ±inf;
/// below 2⁻²⁵ it flushes to ±0): the fp32 tensor, a master weight included, is not changed.
/// The GEMM widens the halves exactly and accumulates in float32 (GemmHalf), as fp16 tensor cores with
/// fp32 accumulation do. round16(·) stores the GEMM output as fp16 values in a float tensor, so a
/// product beyond 65504 becomes inf exactly as in an fp16 output register. The bias is added after, in fp32.</para>
/// <para>Backward: dY is cast to half (gradients below 2⁻²⁵ ≈ 3e-8 underflow to 0, which is what loss
/// scaling exists for: seed the backward with the scale, <see cref="GradOptions.Seed"/>), the backward
/// GEMMs take the half copies of dY, X and W, and write float32 gradients: the weight gradient lands
/// unrounded in the fp32 flat gradient buffer, and the input gradient is float32 too. The bias gradient
/// is a float32 reduction of the float32 dY.</para>
/// <para>Everything else (bias add, activations, BatchNorm, LayerNorm, pooling, dropout, softmax,
/// losses, reductions, optimizer updates) stays float32 under both policies; an op reading an fp16-valued
/// activation computes with it in float32.</para>
/// <para>Float32 runs the float32 GEMMs: bit for bit what the ops did before the policy existed.</para>
/// <para>Compare PyTorch's autocast (torch.autocast(device_type="cuda", dtype=torch.float16)), which
/// runs matmul, linear and conv in fp16 and keeps losses and reductions in fp32.</para>
/// </remarks>
public enum Precision
{
    /// <summary>Everything in float32 (the default).</summary>
    Float32,

    /// <summary>MatMul, Linear and Conv2d take binary16 operands, accumulate in float32 and round their GEMM output to fp16 values; everything else stays float32.</summary>
    Float16,
}
