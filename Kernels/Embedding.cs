using System.Numerics.Tensors;
using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Kernels;

// Embedding lookup (PyTorch's F.embedding) and its deterministic backward.
//
//   indices (N) int, W (V, D), y (N, D), dy (N, D), dW (V, D), errors (2) int
//   forward   y[n, :] = W[indices[n], :]
//   backward  dW[v, :] = sum over n with indices[n] == v of dy[n, :]   (in increasing n)
//             dW[padding_idx, :] = 0
//
// Out-of-range indices: kernels never read outside W. The check kernel counts indices outside
// [0, V) into errors[0] and records the first one's position n as errors[1] = N - n (0 when none),
// with integer atomics only (Add, Max): exact and deterministic. Forward writes NaN rows for them,
// backward gives them no row. The launchers only write the flag; F.Embedding reads it after the
// forward (one 8-byte read) and throws naming the position and the value.
//
// Bytes: forward reads 4 B of W and 4 B / D of indices, writes 4 B per output element. Backward
// (OVERWRITES dW): one thread per element of dW loops over all N indices in order, reading 4 B N
// per dW element (indices shared through the cache), O(V N D / threads) work: fine for
// vocabularies and batches of a few thousand on a GPU. The CPU adds whole rows of dy in one pass
// over the indices per block of rows (O(N D) adds), in the same order, so the sums are the same bits. A large vocabulary would stable-sort (index, n) by
// index (radix, O(N)) and reduce each run in order, O(N log N + N D), still deterministic; float
// atomics would be O(N D) but not deterministic.

/// <summary>Embedding lookup and its deterministic scatter-add backward: element bodies and checked launchers.</summary>
internal static class Embedding
{
    /// <summary>Length of the error flag the forward writes: [count of out-of-range indices, N - first such position (0 when none)].</summary>
    public const int ErrorsLength = 2;

    // ---------------------------------------------------------------- the element bodies, once
    // Run by the drivers of Runtime/RowDrivers.cs (ILGPU's Atomic is interlocked on the managed path).

    private static readonly ForEachDef<CheckBody<ViewElements<int>>> CheckDef = new();
    private static readonly ForEachDef<ForwardBody<ViewElements<float>, ViewElements<int>>> ForwardDef = new();
    private static readonly ForEachDef<BackwardBody<ViewElements<float>, ViewElements<int>>> BackwardDef = new();

    // Index i of N: when outside [0, V), counted into errors[0], and errors[1] keeps the largest N - i
    // (so N - the first such position). errors is zeroed before the launch.
    internal readonly struct CheckBody<TI>(TI indices, TI errors, int n, int v) : IElementBody
        where TI : struct, IElements<int>
    {
        public void Run(int i)
        {
            int k = indices[i];
            if (k < 0 || k >= v)
            {
                Atomic.Add(ref errors[0], 1);
                Atomic.Max(ref errors[1], n - i);
            }
        }
    }

    // y[e] = W[indices[e / D], e % D], NaN for an out-of-range index.
    internal readonly struct ForwardBody<TF, TI>(TI indices, TF weight, TF y, int v, int d) : IElementBody
        where TF : struct, IElements<float>
        where TI : struct, IElements<int>
    {
        public void Run(int e)
        {
            int row = e / d;
            int k = indices[row];
            y[e] = k >= 0 && k < v ? weight[(k * d) + (e - (row * d))] : float.NaN;
        }
    }

    // dW[e] = sum over n (in order) with indices[n] == e / D of dy[n, e % D]; 0 on the padding row
    // (paddingIdx -1: none).
    internal readonly struct BackwardBody<TF, TI>(TI indices, TF dy, TF dWeight, int n, int d, int paddingIdx) : IElementBody
        where TF : struct, IElements<float>
        where TI : struct, IElements<int>
    {
        public void Run(int e)
        {
            int v = e / d;
            int c = e - (v * d);
            float s = 0f;
            if (v != paddingIdx)
            {
                for (int r = 0; r < n; r++)
                {
                    if (indices[r] == v)
                        s += dy[(r * d) + c];
                }
            }

            dWeight[e] = s;
        }
    }

    // Rows [start, end) of dW on the CPU: the same sums in the same order as BackwardBody (each
    // element starts at 0 and adds dy[n, c] for n ascending), but one pass over the indices adds
    // whole rows of dy, instead of every element of dW scanning all N indices (V D N steps: a third
    // of a small language model's backward).
    internal readonly unsafe struct RowsBackwardBody(int* indices, float* dy, float* dWeight, int n, int d, int paddingIdx) : CpuLoops.IRange
    {
        public void Run(int start, int end)
        {
            new Span<float>(dWeight + ((long)start * d), (end - start) * d).Clear();
            for (int r = 0; r < n; r++)
            {
                int k = indices[r];
                if (k < start || k >= end || k == paddingIdx)
                    continue;
                var row = new Span<float>(dWeight + ((long)k * d), d);
                TensorPrimitives.Add(row, new ReadOnlySpan<float>(dy + ((long)r * d), d), row);
            }
        }
    }

    // ---------------------------------------------------------------- launchers

    /// <summary>
    /// y (N, D)[n, :] = W (V, D)[indices[n], :], and the out-of-range flag (<see cref="ErrorsLength"/> ints):
    /// errors[0] = number of indices outside [0, V), errors[1] = N - (first such position), 0 when none.
    /// Rows of out-of-range indices are NaN. Nothing is read back: <see cref="DescribeErrors"/> reports the flag.
    /// </summary>
    public static void Forward(KernelHost host, ArrayView<int> indices, ArrayView<float> weight, ArrayView<float> y, int v, int d, ArrayView<int> errors)
    {
        const string op = "Embedding.Forward";
        ArgumentNullException.ThrowIfNull(host);
        CheckShapes(op, indices, weight, nameof(weight), y, nameof(y), v, d);
        Check.Length(op, errors, nameof(errors), ErrorsLength, "the error flag [count, N - first position]");
        errors.MemSetToZero(host.Stream);
        int n = indices.IntLength;
        if (n > 0 && host.RunsManaged)
        {
            var pi = PtrElements.Of(indices);
            CpuLoops.ForEach(host, n, new CheckBody<PtrElements<int>>(pi, PtrElements.Of(errors), n, v));
            CpuLoops.ForEach(host, y.Length, new ForwardBody<PtrElements<float>, PtrElements<int>>(pi, PtrElements.Of(weight), PtrElements.Of(y), v, d));
        }
        else if (n > 0)
        {
            CheckDef.Launch(host, n, new(new(indices), new(errors), n, v));
            if (y.Length > 0)
                ForwardDef.Launch(host, y.IntLength, new(new(indices), new(weight), new(y), v, d));
        }
    }

    /// <summary>
    /// dW[v, :] = sum of dy[n, :] over n with indices[n] == v, summed in increasing n (deterministic);
    /// the padding row (paddingIdx in [-V, V), negative from the end, as PyTorch; null: none) and rows no
    /// index names get 0; out-of-range indices contribute nothing.
    /// </summary>
    public static unsafe void Backward(KernelHost host, ArrayView<int> indices, ArrayView<float> dy, ArrayView<float> dWeight, int v, int d, int? paddingIdx = null)
    {
        const string op = "Embedding.Backward";
        ArgumentNullException.ThrowIfNull(host);
        CheckShapes(op, indices, dWeight, nameof(dWeight), dy, nameof(dy), v, d);
        int padding = NormalizePadding(op, paddingIdx, v) ?? -1;
        int n = indices.IntLength;
        if (dWeight.Length > 0 && host.RunsManaged)
            CpuLoops.For(host, v, new RowsBackwardBody(CpuLoops.Ptr(indices), CpuLoops.Ptr(dy), CpuLoops.Ptr(dWeight), n, d, padding), Math.Max(1, (n + d) * 4));
        else if (dWeight.Length > 0)
            BackwardDef.Launch(host, dWeight.IntLength, new(new(indices), new(dy), new(dWeight), n, d, padding));
    }

    /// <summary>PyTorch's padding_idx rule: null stays null; p in [-V, V) becomes p, or V + p when negative.</summary>
    /// <exception cref="ArgumentOutOfRangeException">paddingIdx is outside [-V, V).</exception>
    public static int? NormalizePadding(string op, int? paddingIdx, int v)
    {
        if (paddingIdx is not int p)
            return null;
        if (p < -v || p >= v)
            throw new ArgumentOutOfRangeException(nameof(paddingIdx), p, $"{op}: padding_idx must be in [-{v}, {v}) for a vocabulary of V = {v}, got {p}.");
        return p < 0 ? v + p : p;
    }

    /// <summary>The message for a nonzero error flag (count = errors[0], firstFromEnd = errors[1], value = the index at the first position), or null when every index was in range.</summary>
    public static string? DescribeErrors(string op, int count, int firstFromEnd, int n, int value, int v) =>
        count == 0 ? null : $"{op}: {count} of the {n} indices are outside [0, {v}) for a weight of V = {v} rows; the first is indices[{n - firstFromEnd}] (flat position) = {value}{(value == int.MinValue ? " (a float id that is not a whole number in int range, converted by F.Indices)" : string.Empty)}.";

    private static void CheckShapes(string op, ArrayView<int> indices, ArrayView<float> weight, string weightName, ArrayView<float> rows, string rowsName, int v, int d)
    {
        Check.Dimension(op, v, nameof(v));
        Check.Dimension(op, d, nameof(d));
        Check.Fits32(op, indices, nameof(indices));
        Check.Length(op, weight, weightName, (long)v * d, $"(V, D) = ({v}, {d})");
        Check.Length(op, rows, rowsName, indices.Length * d, $"(N, D) = ({indices.Length}, {d})");
        Check.Fits32(op, rows, rowsName);
    }
}
