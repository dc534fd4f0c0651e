namespace IlgpuTrain.Properties.Kernels.Runtime;

/// <summary>
/// The two element accessors the shared op bodies run over: an ArrayView (what the kernels pass)
/// and a host pointer (what the managed loops pass) read and write the same element for an index.
/// </summary>
public unsafe class ElementsProperties
{
    [Property(MaxTest = 50)]
    public Property View_and_pointer_accessors_address_the_same_elements() =>
        Prop.ForAll(Gen.Choose(1, 300).ToArbitrary(), Gen.Choose(0, 1_000_000).ToArbitrary(), (n, seed) =>
        {
            var d = Devices.Cpu;
            var values = Gens.Random(seed, n, -10f, 10f);
            using var t = d.Upload(values);
            d.Synchronize();
            var view = new ViewElements<float>(t.View<float>());
            var ptr = new PtrElements<float>(CpuLoops.Ptr(t.View<float>()));
            for (int i = 0; i < n; i++)
            {
                if (BitConverter.SingleToInt32Bits(view[i]) != BitConverter.SingleToInt32Bits(ptr[i]) || view[i] != values[i])
                    return false.Label($"element {i} of {n}: view {view[i]}, pointer {ptr[i]}, uploaded {values[i]}");
            }

            // Writes through one are seen through the other, and land in the buffer.
            for (int i = 0; i < n; i += 2)
                ptr[i] = i;
            for (int i = 1; i < n; i += 2)
                view[i] = -i;
            var host = t.ToHost();
            for (int i = 0; i < n; i++)
            {
                float expected = i % 2 == 0 ? i : -i;
                if (host[i] != expected || view[i] != expected || ptr[i] != expected)
                    return false.Label($"after writes, element {i}: host {host[i]}, view {view[i]}, pointer {ptr[i]}, expected {expected}");
            }

            return true.Label($"n = {n}");
        });
}
