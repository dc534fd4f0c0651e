using IlgpuTrain.Training;

namespace IlgpuTrain.Properties.Support;

/// <summary>Generators for safetensors and checkpoint properties.</summary>
public static partial class Gens
{
    private static readonly string[] TensorNames =
        ["0.weight", "0.bias", "3.running_mean", "3.num_batches_tracked", "layer.1.w", "optimizer/adamw/mu/0.weight", "naïve ✓", "quote\"and\\slash", "x", "<tag>&"];

    private static readonly SafeTensorDType[] RoundTripDTypes =
        [SafeTensorDType.F32, SafeTensorDType.F16, SafeTensorDType.I32, SafeTensorDType.F32, SafeTensorDType.U8, SafeTensorDType.BF16, SafeTensorDType.F64, SafeTensorDType.I64];

    /// <summary>Up to 6 tensors with distinct names, ranks 0 to 3 (dims 0 to 5) and random bytes, from a seed.</summary>
    public static Gen<SafeTensor[]> SafeTensorLists { get; } = Gen.Choose(0, int.MaxValue).Select(SafeTensorList);

    /// <summary>Tensors from a seed (see <see cref="SafeTensorLists"/>).</summary>
    /// <param name="seed">Seed.</param>
    /// <returns>The tensors.</returns>
    public static SafeTensor[] SafeTensorList(int seed)
    {
        var r = new Random(seed);
        int count = r.Next(0, 7);
        var names = TensorNames.OrderBy(_ => r.Next()).Take(count).ToArray();
        return names.Select(name =>
        {
            var dtype = RoundTripDTypes[r.Next(RoundTripDTypes.Length)];
            var shape = Enumerable.Range(0, r.Next(0, 4)).Select(_ => (long)(r.Next(0, 4) == 0 ? r.Next(0, 2) : r.Next(1, 6))).ToArray();
            long n = shape.Aggregate(1L, (a, d) => a * d);
            var data = new byte[n * SafeTensors.SizeOf(dtype)];
            r.NextBytes(data);
            return new SafeTensor(name, dtype, shape, data);
        }).ToArray();
    }

    /// <summary>String metadata (0 to 3 entries, some with quotes, unicode and JSON inside), from a seed.</summary>
    /// <param name="seed">Seed.</param>
    /// <returns>The metadata.</returns>
    public static Dictionary<string, string> SafeTensorMetadata(int seed)
    {
        var r = new Random(seed ^ 0x5A5A);
        string[] values = ["pt", "{\"a\": [1, 2.5, null]}", "ünï\u00e7ødé \"q\" \\ \n\t", string.Empty, new string('x', 300)];
        return Enumerable.Range(0, r.Next(0, 4)).ToDictionary(i => $"key{i}", _ => values[r.Next(values.Length)]);
    }
}
