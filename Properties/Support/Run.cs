namespace IlgpuTrain.Properties.Support;

/// <summary>Small helpers to move test data through a device.</summary>
public static class Run
{
    /// <summary>Uploads host data to a new pooled buffer wrapped in a tensor.</summary>
    /// <param name="device">The device.</param>
    /// <param name="data">The data.</param>
    /// <returns>A Float32 tensor of shape (n,).</returns>
    public static Tensor Upload(this Device device, float[] data) => Tensor.FromHost(device, data.AsSpan(), new Shape(data.Length));

    /// <summary>Uploads integer data.</summary>
    /// <param name="device">The device.</param>
    /// <param name="data">The data.</param>
    /// <returns>An Int32 tensor of shape (n,).</returns>
    public static Tensor Upload(this Device device, int[] data) => Tensor.FromHost(device, data.AsSpan(), new Shape(data.Length));

    /// <summary>Allocates a Float32 tensor of n elements filled with NaN, so unwritten outputs show.</summary>
    /// <param name="device">The device.</param>
    /// <param name="n">Elements.</param>
    /// <returns>The tensor.</returns>
    public static Tensor Poisoned(this Device device, int n)
    {
        var data = new float[n];
        Array.Fill(data, float.NaN);
        return device.Upload(data);
    }
}
