namespace IlgpuTrain.Training.Conformance;

/// <summary>
/// Tolerances of a float kernel against its CPU reference, |kernel - reference| &lt;= atol + rtol·|reference|,
/// for the ops whose conformance check (<see cref="Suite"/>) and property (Properties/Kernels) make
/// the same comparison. One definition, so a tolerance cannot be widened in one place and not the
/// other. Where the suite allows a GPU more (its own transcendentals, another summation order), it
/// keeps its own bound, and the comment there says why.
/// </summary>
public static class Tolerances
{
    /// <summary>Softmax forward.</summary>
    public static class Softmax
    {
        /// <summary>
        /// Float32 exp of arguments in [-20, 0] and a float row sum of up to 257 terms in [0, 1]
        /// against a float64 reference: a few ulp of the largest term.
        /// </summary>
        public const double ForwardAtol = 1e-6;

        /// <summary>Relative part of the forward bound (see <see cref="ForwardAtol"/>).</summary>
        public const double ForwardRtol = 1e-5;
    }

    /// <summary>Masked softmax forward (causal, key lengths or mask, additive bias).</summary>
    public static class MaskedSoftmax
    {
        /// <summary>Float32 exp against float64 over the kept entries: a few ulp of each probability.</summary>
        public const double ForwardAtol = 1e-6;

        /// <summary>Relative part of the forward bound (see <see cref="ForwardAtol"/>).</summary>
        public const double ForwardRtol = 1e-5;
    }

    /// <summary>Scaled dot-product attention, forward (o) and backward (dq, dk, dv, dS), against the float64 reference.</summary>
    public static class Attention
    {
        /// <summary>
        /// Float32 dot products over D and Dv, exps, and online-softmax sums over up to ~150 keys of
        /// magnitude ~1 (a tile at a time, rescaled), against the float64 matrix-at-once reference.
        /// </summary>
        public const double Atol = 1e-4;

        /// <summary>Relative part of the attention bound (see <see cref="Atol"/>).</summary>
        public const double Rtol = 1e-3;
    }

    /// <summary>Cross-entropy (fused log-softmax and negative log-likelihood), per-row losses.</summary>
    public static class CrossEntropy
    {
        /// <summary>
        /// Row losses reach ~20 + log C. The float kernel rounds (m - x_y) and lse to a few ulp of 20,
        /// and the eps/C-weighted sum over all C classes of (m - x_k) (terms up to 20) adds a few ulp
        /// of its own size divided by C.
        /// </summary>
        public const double LossAtol = 2e-5;

        /// <summary>Relative part of the row-loss bound (see <see cref="LossAtol"/>).</summary>
        public const double LossRtol = 2e-6;

        /// <summary>
        /// Row losses against class probabilities: C products of a float target and a float nll
        /// (lse + m - x), each a few ulp off.
        /// </summary>
        public const double SoftLossAtol = 1e-5;

        /// <summary>Relative part of the probability-target row-loss bound (see <see cref="SoftLossAtol"/>).</summary>
        public const double SoftLossRtol = 1e-5;

        /// <summary>Probability-target gradient (p - t') g: a float softmax (a few ulp of 1) times |g| &lt;= 2.</summary>
        public const double SoftGradAtol = 2e-6;

        /// <summary>Relative part of the probability-target gradient bound (see <see cref="SoftGradAtol"/>).</summary>
        public const double SoftGradRtol = 1e-5;
    }

    /// <summary>LayerNorm forward and backward over rows of D features.</summary>
    public static class LayerNorm
    {
        /// <summary>
        /// Row sums of D floats (|x| &lt;= 5), a float rsqrt, outputs of order 3 (x̂) times |gamma| &lt;= 2.
        /// Holds for D &lt;= 257; the suite scales it by D/64 beyond 64 features.
        /// </summary>
        public const double ForwardAtol = 3e-5;

        /// <summary>Relative part of the forward bound.</summary>
        public const double ForwardRtol = 2e-5;

        /// <summary>
        /// Input gradient: two float row sums of D terms of order 2·2·3, then a cancellation; the
        /// error scales with D through the row means (the suite scales it by D/64).
        /// </summary>
        public const double InputGradAtol = 5e-5;

        /// <summary>Relative part of the input-gradient bound.</summary>
        public const double InputGradRtol = 5e-5;

        /// <summary>Parameter gradients: column sums over N rows of |dy·x̂| &lt;= 6; float rounding grows with N (times N).</summary>
        public const double SumAtolPerTerm = 2e-6;

        /// <summary>Relative part of the parameter-gradient bound.</summary>
        public const double SumRtol = 2e-5;
    }

    /// <summary>BatchNorm statistics, normalization and parameter gradients.</summary>
    public static class BatchNorm
    {
        /// <summary>
        /// Per-channel float sums of m values of |x| &lt;= 5 against float64: the mean's error is about
        /// m·u·max|x| / m, and the centered pass adds as much relative to the variance.
        /// </summary>
        public const double StatisticsAtol = 2e-5;

        /// <summary>Relative part of the statistics bound.</summary>
        public const double StatisticsRtol = 2e-5;

        /// <summary>
        /// The elementwise stages (normalization, running statistics; the input gradient on the
        /// properties' small batches): a float rsqrt (a few ulp) times values of order 10.
        /// </summary>
        public const double ElementwiseAtol = 2e-5;

        /// <summary>Relative part of the elementwise bound.</summary>
        public const double ElementwiseRtol = 2e-5;

        /// <summary>Σ dy and Σ dy·x̂ over m terms of magnitude &lt;= 6: float rounding grows with m (times m).</summary>
        public const double SumAtolPerTerm = 2e-6;

        /// <summary>Relative part of the parameter-gradient bound.</summary>
        public const double SumRtol = 2e-5;
    }

    /// <summary>The elementwise losses (MSE, L1, Huber, smooth L1, BCE with logits).</summary>
    public static class Losses
    {
        /// <summary>
        /// Per-element float32 losses against float64: a few roundings of values up to ~100, plus
        /// BCE's log(1 + exp(-|x|)), whose float32 argument rounds at 6e-8.
        /// </summary>
        public const double ForwardAtol = 2e-6;

        /// <summary>Relative part of the per-element bound.</summary>
        public const double ForwardRtol = 4e-6;

        /// <summary>The mean or sum of the float32 losses (compensated) against a float64 sum (the suite multiplies the atol by n for a sum).</summary>
        public const double ReduceAtol = 1e-5;

        /// <summary>Relative part of the reduction bound.</summary>
        public const double ReduceRtol = 1e-5;

        /// <summary>Backward: one float32 derivative times dLoss (and 1/n).</summary>
        public const double BackwardAtol = 1e-6;

        /// <summary>Relative part of the backward bound.</summary>
        public const double BackwardRtol = 4e-6;
    }

    /// <summary>GEMM-shaped sums: GEMM and the convolution's forward and gradients.</summary>
    public static class Gemm
    {
        /// <summary>
        /// Float32 dot products of up to ~80 products of values in [-1, 1] against float64, in any
        /// order. The suite scales it by K/64 for longer dot products.
        /// </summary>
        public const double Atol = 1e-4;

        /// <summary>Relative part of the GEMM bound.</summary>
        public const double Rtol = 1e-4;
    }

    /// <summary>On-device augmentation.</summary>
    public static class Augment
    {
        /// <summary>
        /// Rotation: float cos, sin and floor against float64; bilinear sampling is continuous, so a
        /// coordinate error of a few ulp of H moves a value by about 1e-6·|x|.
        /// </summary>
        public const double RotateAtol = 2e-5;

        /// <summary>Brightness and contrast jitter: a float gray mean over the image against float64.</summary>
        public const double JitterAtol = 1e-5;

        /// <summary>Relative part of the jitter bound.</summary>
        public const double JitterRtol = 1e-5;

        /// <summary>
        /// Colour jitter on pixels in [0, 1]: up to four float stages (blends and the HSV round
        /// trip, each a few roundings of values at most 1) against float64; clamping is 1-Lipschitz.
        /// </summary>
        public const double ColorAtol = 2e-5;

        /// <summary>Bilinear resampling: float source coordinates and weights against float64, values of order 1.</summary>
        public const double ResampleAtol = 1e-5;

        /// <summary>Normalize: one float subtraction and one division against float64, each rounded once.</summary>
        public const double NormalizeRtol = 2.5e-7;

        /// <summary>MixUp: two float products and a sum against float64, values of order 1.</summary>
        public const double MixAtol = 1e-6;
    }

    /// <summary>Weight averaging, a = lerp(a, w, t).</summary>
    public static class WeightAverage
    {
        /// <summary>
        /// torch.lerp's two forms each round three times (w - a, the product, the sum); each rounding
        /// is at most half an ulp of a value no larger than |a| + |w|: the bound is this times |a| + |w|.
        /// </summary>
        public const double LerpRtol = 4e-7;
    }

    /// <summary>Loss-scale unscaling.</summary>
    public static class LossScale
    {
        /// <summary>fl(x·fl(1/s)) against the exact x/s: two roundings of at most 2^-24 relative each.</summary>
        public const double UnscaleRtol = 1.5e-7;
    }
}
