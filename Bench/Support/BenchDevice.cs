using IlgpuTrain.Functional;

namespace IlgpuTrain.Bench.Support;

/// <summary>The device benchmarks run on: ILGPUTRAIN_DEVICE, else the best available.</summary>
public static class BenchDevice
{
    /// <summary>Creates the device and prints what it is.</summary>
    /// <returns>The device.</returns>
    public static ComputeDevice Create()
    {
        var d = ComputeDevice.Create();
        Console.WriteLine($"// IlgpuTrain device: {d}");
        return d;
    }

    /// <summary>Deterministic uniform floats in [-1, 1).</summary>
    /// <param name="n">Length.</param>
    /// <param name="seed">Seed.</param>
    /// <returns>The values.</returns>
    public static float[] Random(int n, int seed)
    {
        var r = new Random(seed);
        var v = new float[n];
        for (int i = 0; i < n; i++)
            v[i] = (float)((r.NextDouble() * 2) - 1);
        return v;
    }
}
