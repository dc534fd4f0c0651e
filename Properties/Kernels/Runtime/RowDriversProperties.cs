namespace IlgpuTrain.Properties.Kernels.Runtime;

/// <summary>
/// The two drivers of element and row bodies run a body once per index in [0, n), whatever the
/// grid: ForEachDef's kernel on the CPU accelerator (any number of groups) and CpuLoops.ForEach on
/// the managed backend (any split over workers), and PtrElements.Of addresses the view's elements.
/// </summary>
public class RowDriversProperties
{
    // hits[i] += 1 + i: an index run twice, or not at all, shows in the result.
    internal readonly struct MarkBody<TI>(TI hits) : IElementBody
        where TI : struct, IElements<int>
    {
        public void Run(int i) => hits[i] += 1 + i;
    }

    private static readonly ForEachDef<MarkBody<ViewElements<int>>> MarkDef = new();

    [Property(MaxTest = 40)]
    public Property Each_index_runs_exactly_once_on_both_drivers() =>
        Prop.ForAll(Gen.OneOf(Gen.Choose(1, 70), Gen.Elements(4095, 4096, 70_001)).ToArbitrary(), Gen.Choose(1, 7).ToArbitrary(), (n, groups) =>
        {
            int[] Run(Device d, Action<KernelHost, ArrayView<int>> launch, KernelHost host)
            {
                using var t = d.Upload(new int[n]);
                launch(host, t.View<int>());
                return t.ToHost<int>();
            }

            var kernels = Devices.CpuKernels;
            var kernelHost = new KernelHost(kernels.Accelerator, kernels.Stream, kernels.Kernels.Launch with { MaxGroups = groups }, KernelBackend.CpuAccelerator);
            var cpu = Devices.Cpu;
            var managedHost = new KernelHost(cpu.Accelerator, cpu.Stream, cpu.Kernels.Launch with { MaxGroups = groups });
            var viaKernel = Run(kernels, (h, v) => MarkDef.Launch(h, n, new(new(v))), kernelHost);
            var viaManaged = Run(cpu, (h, v) => CpuLoops.ForEach(h, n, new MarkBody<PtrElements<int>>(PtrElements.Of(v))), managedHost);
            for (int i = 0; i < n; i++)
            {
                if (viaKernel[i] != 1 + i || viaManaged[i] != 1 + i)
                    return false.Label($"index {i} of {n}, {groups} groups: kernel {viaKernel[i]}, managed {viaManaged[i]}, expected {1 + i}");
            }

            return true.Label($"n {n}, {groups} groups");
        });
}
