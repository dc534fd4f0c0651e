using System.Runtime.Intrinsics;
using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// Inverted dropout with a counter-based mask (PyTorch's F.dropout in training mode).
//
//   x (n), y (n), dy (n), dx (n)
//   keep_i = Uniform(seed, stream, counter, i) < 1 - p        (Philox, see Philox.cs)
//   y_i    = keep_i ? x_i * s : 0,   s = 1 / (1 - p)           (s = 0 when p = 1)
//   dx_i   = keep_i ? dy_i * s : 0
//
// The mask is never stored: backward recomputes keep_i from the same key, so forward and
// backward are the same diagonal linear map, run by one kernel. Element i's mask depends only on
// (seed, stream, counter, i), never on the launch layout or the backend (the comparison is on
// 24-bit integers scaled exactly by 2^-24, so it is bitwise identical everywhere).
// p = 0 keeps everything (Uniform < 1 always) and scales by 1; p = 1 keeps nothing and writes
// zeros without dividing by zero. Dropped elements are written as 0 even when x is inf or NaN.
//
// Bytes per element: forward reads 4 B, writes 4 B; backward the same. One Philox block function
// per 4 elements (each thread handles a whole block, so no random word is computed twice).
// Backward OVERWRITES dx (which may alias dy).

/// <summary>Inverted dropout with a recomputed Philox mask: the element body, its AVX2 form and checked launchers.</summary>
internal static class Dropout
{
    // Block b (elements 4b to 4b + 3, those below n): one Philox call, then y = u < keep ? x * scale : 0
    // per element. Run by Elementwise.ForEachKernel over views, and on the managed path for what
    // MaskVectorBody leaves (the last partial block, or everything without AVX2).
    internal readonly struct MaskBody<TF>(TF x, TF y, int n, float keep, float scale, PhiloxStream key) : IElementBody
        where TF : struct, IElements<float>
    {
        public void Run(int b)
        {
            var w = key.Block(b);
            int i = b * 4;
            y[i] = Philox.ToUniform(w.X0) < keep ? x[i] * scale : 0f;
            if (i + 1 < n)
                y[i + 1] = Philox.ToUniform(w.X1) < keep ? x[i + 1] * scale : 0f;
            if (i + 2 < n)
                y[i + 2] = Philox.ToUniform(w.X2) < keep ? x[i + 2] * scale : 0f;
            if (i + 3 < n)
                y[i + 3] = Philox.ToUniform(w.X3) < keep ? x[i + 3] * scale : 0f;
        }
    }

    internal static readonly ForEachDef<MaskBody<ViewElements<float>>> MaskDef = new();

    // ---------------------------------------------------------------- launchers

    /// <summary>
    /// y = x * mask / (1 - p), mask ~ Bernoulli(1 - p) keyed by (seed, stream, counter, element),
    /// overwritten; y may alias x. p in [0, 1] (else ArgumentOutOfRangeException): 0 copies x, 1 writes zeros.
    /// </summary>
    public static void Forward(KernelHost host, ArrayView<float> x, ArrayView<float> y, float p, ulong seed, uint stream, uint counter) =>
        Launch(nameof(Forward), host, x, nameof(x), y, nameof(y), p, seed, stream, counter);

    /// <summary>dx = dy * mask / (1 - p), overwritten, with the forward's p and key (the mask is recomputed, nothing stored). dx may alias dy.</summary>
    public static void Backward(KernelHost host, ArrayView<float> dy, ArrayView<float> dx, float p, ulong seed, uint stream, uint counter) =>
        Launch(nameof(Backward), host, dy, nameof(dy), dx, nameof(dx), p, seed, stream, counter);

    /// <summary>Throws ArgumentOutOfRangeException naming <paramref name="op"/> unless <paramref name="p"/> is a probability in [0, 1] (NaN is rejected).</summary>
    public static void CheckP(string op, float p)
    {
        if (!(p >= 0f && p <= 1f))
            throw new ArgumentOutOfRangeException(nameof(p), p, $"Dropout.{op}: the drop probability p must be in [0, 1], got {p}.");
    }

    // 1 / (1 - p) in float, as PyTorch's scale; p = 1 keeps nothing, so the scale is never used.
    private static float ScaleOf(float p) => p >= 1f ? 0f : 1f / (1f - p);

    private static unsafe void Launch(string op, KernelHost host, ArrayView<float> x, string xName, ArrayView<float> y, string yName, float p, ulong seed, uint stream, uint counter)
    {
        ArgumentNullException.ThrowIfNull(host);
        CheckP(op, p);
        Check.SameLength("Dropout." + op, x, xName, y, yName);
        if (y.Length == 0)
            return;
        int n = y.IntLength, blocks = Philox.BlockCount(n);
        var key = new PhiloxStream(seed, stream, counter);
        if (host.RunsManaged)
        {
            var body = new MaskBody<PtrElements<float>>(new(x), new(y), n, 1f - p, ScaleOf(p), key);
            CpuLoops.For(host, blocks, new MaskVectorBody(CpuLoops.Ptr(x), CpuLoops.Ptr(y), n, 1f - p, ScaleOf(p), key, body), 4);
        }
        else
        {
            MaskDef.Launch(host, blocks, new(new(x), new(y), n, 1f - p, ScaleOf(p), key));
        }
    }

    // The managed mask: four whole blocks (16 elements) per Philox call (PhiloxSimd), then MaskBody.
    // ToUniform and the comparison as vectors: (w >> 8) is below 2^24, so its float conversion and
    // the power-of-two scale are exact, as in the scalar form; so the mask and values are bitwise
    // the kernel's.
    private readonly unsafe struct MaskVectorBody(float* x, float* y, int n, float keep, float scale, PhiloxStream key, MaskBody<PtrElements<float>> body) : CpuLoops.IRange
    {
        public void Run(int start, int end)
        {
            int b = PhiloxSimd.IsSupported ? Vectorized(x, y, n, keep, scale, key, start, end) : start;
            for (; b < end; b++)
                body.Run(b);
        }

        // Returns the first block left to the scalar body.
        private static int Vectorized(float* x, float* y, int n, float keep, float scale, PhiloxStream key, int start, int end)
        {
            uint* words = stackalloc uint[16];
            var vKeep = Vector256.Create(keep);
            var vScale = Vector256.Create(scale);
            var inv24 = Vector256.Create(Philox.Inv24);
            int b = start;
            for (; b + 4 <= end && (b + 4) * 4 <= n; b += 4)
            {
                PhiloxSimd.Blocks4(key.Seed, key.Stream, key.Counter, (ulong)b, words);
                int i0 = b * 4;
                for (int h = 0; h < 16; h += 8)
                {
                    var u = Vector256.ConvertToSingle((Vector256.Load(words + h) >>> 8).AsInt32()) * inv24;
                    var kept = Vector256.LessThan(u, vKeep);
                    var v = Vector256.Load(x + i0 + h) * vScale;
                    Vector256.ConditionalSelect(kept, v, Vector256<float>.Zero).Store(y + i0 + h);
                }
            }

            return b;
        }
    }
}
