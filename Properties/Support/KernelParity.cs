namespace IlgpuTrain.Properties.Support;

/// <summary>
/// Checks a launcher's managed path (the Managed backend) against the ILGPU kernel it replaces:
/// the launch runs on Devices.Cpu (managed) and on Devices.CpuKernels (the CpuAccelerator backend,
/// which runs the ILGPU CPU kernels), on fresh uploads of the same inputs, and every buffer, inputs
/// included (they are often outputs), must be equal bit for bit.
/// </summary>
public static class KernelParity
{
    private static readonly float[] Specials = [float.NaN, float.PositiveInfinity, float.NegativeInfinity, -0f, 0f, 1e-40f, -1e-40f];

    /// <summary>Uniform values in [lo, hi] with up to 4 specials (NaN, infinities, signed zeros, subnormals) when asked.</summary>
    /// <param name="seed">Seed.</param>
    /// <param name="n">Length.</param>
    /// <param name="lo">Lower bound.</param>
    /// <param name="hi">Upper bound.</param>
    /// <param name="specials">Whether to sprinkle special values in.</param>
    /// <returns>The values.</returns>
    public static float[] Values(int seed, int n, float lo, float hi, bool specials)
    {
        var v = Gens.Random(seed, n, lo, hi);
        if (specials && n > 0)
        {
            var r = new Random(seed);
            for (int k = 0; k < Math.Min(n, 4); k++)
                v[r.Next(n)] = Specials[r.Next(Specials.Length)];
        }

        return v;
    }

    /// <summary>As the overload with Int32 buffers, for launches over float buffers only.</summary>
    /// <param name="what">Label.</param>
    /// <param name="floats">Float buffers (copied per run).</param>
    /// <param name="launch">The launch on the host and the views of the buffers, in order.</param>
    /// <returns>The property.</returns>
    public static Property Same(string what, float[][] floats, Action<KernelHost, ArrayView<float>[]> launch) =>
        Same(what, floats, [], (h, f, _) => launch(h, f));

    /// <summary>Runs <paramref name="launch"/> managed, then on the kernels, and compares all buffers bitwise.</summary>
    /// <param name="what">Label.</param>
    /// <param name="floats">Float buffers (copied per run).</param>
    /// <param name="ints">Int32 buffers (copied per run).</param>
    /// <param name="launch">The launch on the host and the views of the buffers, in order.</param>
    /// <returns>The property.</returns>
    public static Property Same(string what, float[][] floats, int[][] ints, Action<KernelHost, ArrayView<float>[], ArrayView<int>[]> launch)
    {
        (float[][] F, int[][] I) Go(bool kernels)
        {
            var d = kernels ? Devices.CpuKernels : Devices.Cpu;
            var ft = floats.Select(d.Upload).ToArray();
            var it = ints.Select(d.Upload).ToArray();
            try
            {
                var fv = ft.Select(t => t.View<float>()).ToArray();
                var iv = it.Select(t => t.View<int>()).ToArray();
                launch(d.Kernels, fv, iv);

                return (ft.Select(t => t.ToHost()).ToArray(), it.Select(t => t.ToHost<int>()).ToArray());
            }
            finally
            {
                foreach (var t in ft.Concat(it))
                    t.Dispose();
            }
        }

        var managed = Go(false);
        var kernel = Go(true);
        for (int b = 0; b < managed.F.Length; b++)
        {
            for (int i = 0; i < managed.F[b].Length; i++)
            {
                int mb = BitConverter.SingleToInt32Bits(managed.F[b][i]), kb = BitConverter.SingleToInt32Bits(kernel.F[b][i]);
                if (!Bits.Equal(managed.F[b][i], kernel.F[b][i]))
                    return false.Label($"{what}: float buffer {b} element {i} of {managed.F[b].Length}: managed {managed.F[b][i]:R} (0x{mb:x8}), kernel {kernel.F[b][i]:R} (0x{kb:x8})");
            }
        }

        for (int b = 0; b < managed.I.Length; b++)
        {
            for (int i = 0; i < managed.I[b].Length; i++)
            {
                if (managed.I[b][i] != kernel.I[b][i])
                    return false.Label($"{what}: int buffer {b} element {i} of {managed.I[b].Length}: managed {managed.I[b][i]}, kernel {kernel.I[b][i]}");
            }
        }

        return true.Label(what);
    }
}
