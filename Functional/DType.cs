namespace IlgpuTrain.Functional;

/// <summary>Element type of a tensor or of a parameter group.</summary>
public enum DType
{
    /// <summary>IEEE 754 binary32.</summary>
    Float32,

    /// <summary>IEEE 754 binary16, stored as <see cref="ILGPU.Half"/>; kernels compute in float.</summary>
    Float16,

    /// <summary>Signed 32-bit integer (class labels, indices, counters).</summary>
    Int32,
}

/// <summary>Sizes and host types of <see cref="DType"/> values.</summary>
public static class DTypeExtensions
{
    /// <summary>Bytes per element.</summary>
    /// <param name="dtype">The element type.</param>
    /// <returns>4, 2 or 4.</returns>
    public static int SizeInBytes(this DType dtype) => dtype switch
    {
        DType.Float32 => 4,
        DType.Float16 => 2,
        DType.Int32 => 4,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Unknown dtype."),
    };

    /// <summary>The dtype whose elements are <typeparamref name="T"/>.</summary>
    /// <typeparam name="T">float, ILGPU.Half or int.</typeparam>
    /// <returns>The matching dtype.</returns>
    public static DType Of<T>()
        where T : unmanaged
    {
        if (typeof(T) == typeof(float))
            return DType.Float32;
        if (typeof(T) == typeof(Half))
            return DType.Float16;
        if (typeof(T) == typeof(int))
            return DType.Int32;
        throw new NotSupportedException($"{typeof(T).Name} is not a tensor element type; use float, ILGPU.Half or int.");
    }
}
