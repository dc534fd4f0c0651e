using ILGPU;
using ILGPU.Runtime;
using IlgpuTrain.Kernels.Runtime;

namespace IlgpuTrain.Training.Conformance;

/// <summary>One comparison of a kernel with its CPU reference, as <see cref="Suite.Run(Device, SuiteOptions?)"/> reports it.</summary>
/// <param name="Family">The kernel family (Elementwise, Gemm, ...).</param>
/// <param name="Name">The check within the family.</param>
/// <param name="MaxError">Largest |kernel - reference| over the elements.</param>
/// <param name="Tolerance">atol + rtol * |reference| at the worst element (relative to its allowance).</param>
/// <param name="Passed">Whether every element was within its tolerance.</param>
/// <param name="Detail">The first failing element, or the exception, when failed.</param>
public sealed record CheckResult(string Family, string Name, double MaxError, double Tolerance, bool Passed, string? Detail);

/// <summary>The choices of one <see cref="Suite.Run(Device, SuiteOptions?)"/>.</summary>
public sealed record SuiteOptions
{
    /// <summary>Small sizes only (seconds on the CPU accelerator); the default runs sizes where a GPU's tiling and summation order show.</summary>
    public bool Quick { get; init; }

    /// <summary>Seed of the random inputs (default 1234).</summary>
    public int Seed { get; init; } = 1234;

    /// <summary>
    /// A self-test of the suite: the family (case-insensitive) whose reference is perturbed on its
    /// first element, so its checks must fail and the others still pass. Null (the default) in
    /// every real run.
    /// </summary>
    public string? PerturbReferenceOf { get; init; }
}

/// <summary>
/// Uploads inputs, reads results back and compares them with a reference; every check's result is
/// collected, and an exception inside a check becomes a failed result rather than ending the suite.
/// </summary>
internal sealed class Harness : IDisposable
{
    private readonly List<IDisposable> _buffers = [];

    public Harness(KernelHost host, bool quick, int seed, string? perturbFamily)
    {
        Host = host;
        Quick = quick;
        Rng = new Random(seed);
        PerturbFamily = perturbFamily;
    }

    public KernelHost Host { get; }

    public bool Quick { get; }

    public Random Rng { get; }

    /// <summary>The family whose reference is deliberately perturbed (a self-test of the suite).</summary>
    public string? PerturbFamily { get; }

    public List<CheckResult> Results { get; } = [];

    public string Family { get; set; } = "";

    public float[] Floats(int n, float lo = -1f, float hi = 1f)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++)
            a[i] = lo + ((hi - lo) * (float)Rng.NextDouble());
        return a;
    }

    public int[] Ints(int n, int lo, int hiExclusive)
    {
        var a = new int[n];
        for (int i = 0; i < n; i++)
            a[i] = Rng.Next(lo, hiExclusive);
        return a;
    }

    public ArrayView<T> Up<T>(T[] data)
        where T : unmanaged
    {
        var buffer = Host.Accelerator.Allocate1D(data);
        _buffers.Add(buffer);
        return buffer.View;
    }

    public ArrayView<T> Zeros<T>(long n)
        where T : unmanaged
    {
        var buffer = Host.Accelerator.Allocate1D<T>(n);
        buffer.MemSetToZero();
        Host.Accelerator.Synchronize();
        _buffers.Add(buffer);
        return buffer.View;
    }

    public T[] Down<T>(ArrayView<T> view)
        where T : unmanaged
    {
        Host.Synchronize();
        var a = new T[view.Length];
        view.CopyToCPU(a);
        return a;
    }

    /// <summary>Runs one check; exceptions become failures.</summary>
    public void Run(string name, Action body)
    {
        try
        {
            body();
        }
        catch (Exception e)
        {
            Results.Add(new CheckResult(Family, name, double.NaN, double.NaN, false, $"{e.GetType().Name}: {e.Message}"));
        }
        finally
        {
            foreach (var b in _buffers)
                b.Dispose();
            _buffers.Clear();
        }
    }

    public void Compare(string name, ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, double atol, double rtol)
    {
        var e = new double[expected.Length];
        for (int i = 0; i < e.Length; i++)
            e[i] = expected[i];
        Compare(name, actual, e, atol, rtol);
    }

    public void Compare(string name, ReadOnlySpan<float> actual, ReadOnlySpan<double> expected, double atol, double rtol)
    {
        var d = new double[actual.Length];
        for (int i = 0; i < d.Length; i++)
            d[i] = actual[i];
        Compare(name, (ReadOnlySpan<double>)d, expected, atol, rtol);
    }

    public void Compare(string name, ReadOnlySpan<double> actual, ReadOnlySpan<double> expected, double atol, double rtol)
    {
        if (actual.Length != expected.Length)
        {
            Results.Add(new CheckResult(Family, name, double.NaN, double.NaN, false, $"length {actual.Length} versus reference {expected.Length}"));
            return;
        }

        double maxErr = 0, worstRatio = -1, worstTol = atol;
        string? detail = null;
        bool corrupt = PerturbFamily != null && string.Equals(PerturbFamily, Family, StringComparison.OrdinalIgnoreCase);
        for (int i = 0; i < actual.Length; i++)
        {
            double r = expected[i] + (corrupt && i == 0 ? 1.0 + Math.Abs(expected[i]) : 0.0);
            double a = actual[i];
            if (a == r || (double.IsNaN(a) && double.IsNaN(r)))
                continue;
            double err = Math.Abs(a - r);
            double tol = atol + (rtol * Math.Abs(r));
            double ratio = double.IsNaN(err) ? double.PositiveInfinity : err / tol;
            if (double.IsNaN(err) || err > maxErr)
                maxErr = double.IsNaN(err) ? double.NaN : Math.Max(maxErr, err);
            if (ratio > worstRatio)
            {
                worstRatio = ratio;
                worstTol = tol;
            }

            if (!(err <= tol) && detail == null)
                detail = $"[{i}] = {a:R}, reference {r:R}";
        }

        Results.Add(new CheckResult(Family, name, maxErr, worstTol, detail == null, detail));
    }

    public void Dispose()
    {
        foreach (var b in _buffers)
            b.Dispose();
        _buffers.Clear();
    }
}
