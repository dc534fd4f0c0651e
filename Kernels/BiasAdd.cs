using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// Bias add: a bias vector broadcast over the rows of a row-major matrix, or over the channels of NCHW.
//
//   y[n, f] = x[n, f] + b[f]          Forward: x (N,F), b (F), y (N,F)
//   y[n, c, s] = x[n, c, s] + b[c]    ForwardChannels: x (N,C,S) with S = H*W, a per-channel bias (convolutions)
//   reads 4 B of x per element plus b (re-read from cache), writes 4 B per element
//
// Both are one element body, y[i] = x[i] + b[(i / S) mod C] (Forward is S = 1, C = F), run by the
// ILGPU row driver. On the CPU accelerator the launchers run CpuLoops instead (row by row or plane
// by plane, Vector256, x + b as the body: bitwise equal). y may alias x (in-place): each element is
// read and written by the same thread.
//
// Backward: dx = dy (nothing to compute; pass dy on) and db[f] = sum over n of dy[n, f], the column
// sum of dy, which the Reductions kernels provide. Neither is computed here.

/// <summary>Bias add over the rows of a matrix or the channels of NCHW: element body and checked launchers.</summary>
internal static class BiasAdd
{
    private static readonly ForEachDef<AddBody<ViewElements<float>>> AddDef = new();

    /// <summary>y[n, f] = x[n, f] + b[f]. y may alias x.</summary>
    public static void Forward(KernelHost host, ArrayView<float> x, ArrayView<float> b, ArrayView<float> y, int n, int f)
    {
        const string op = nameof(BiasAdd) + "." + nameof(Forward);
        Check.Dimension(op, f, nameof(f));
        Add(host, op, x, b, y, n, f, 1, $"(N, F) = ({n}, {f})", $"(F) = ({f})");
    }

    /// <summary>y[n, c, s] = x[n, c, s] + b[c] for x (N, C, S): a per-channel bias over NCHW with S = H*W. y may alias x.</summary>
    public static void ForwardChannels(KernelHost host, ArrayView<float> x, ArrayView<float> b, ArrayView<float> y, int n, int c, int s)
    {
        const string op = nameof(BiasAdd) + "." + nameof(ForwardChannels);
        Check.Dimension(op, c, nameof(c));
        Check.Dimension(op, s, nameof(s));
        Add(host, op, x, b, y, n, c, s, $"(N, C, S) = ({n}, {c}, {s})", $"(C) = ({c})");
    }

    // y[i] = x[i] + b[(i / s) % c] over x (N, C, S), after the checks both launchers share.
    private static void Add(KernelHost host, string op, ArrayView<float> x, ArrayView<float> b, ArrayView<float> y, int n, int c, int s, string shape, string biasShape)
    {
        ArgumentNullException.ThrowIfNull(host);
        Check.Dimension(op, n, nameof(n));
        long total = (long)n * c * s;
        Check.Length(op, x, nameof(x), total, shape);
        Check.Length(op, b, nameof(b), c, biasShape);
        Check.Length(op, y, nameof(y), total, shape);
        Check.Fits32(op, y, nameof(y));
        if (total == 0)
            return;
        if (!host.RunsManaged)
            AddDef.Launch(host, y.IntLength, new(new(x), new(b), new(y), c, s));
        else if (s == 1)
            CpuLoops.BiasRows(host, x, b, y, c);
        else
            CpuLoops.BiasPlanes(host, x, b, y, c, s);
    }

    // y[i] = x[i] + b[(i / s) % c]: each element is read and written by the same thread.
    internal readonly struct AddBody<TF>(TF x, TF b, TF y, int c, int s) : IElementBody
        where TF : struct, IElements<float>
    {
        // S = 1 (every Forward launch, uniform across threads) skips an integer division per element.
        public void Run(int i) => y[i] = x[i] + b[(s == 1 ? i : i / s) % c];
    }
}
