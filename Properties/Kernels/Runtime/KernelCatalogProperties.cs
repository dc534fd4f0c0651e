using ILGPU.Backends;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.OpenCL;
using ILGPU.Backends.PTX;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace IlgpuTrain.Properties.Kernels.Runtime;

/// <summary>
/// Every kernel compiles for PTX (sm_90, ISA 8.0) and OpenCL 2.0 through ILGPU's backends,
/// offline, with no GPU present. The CPU accelerator accepts constructs that GPU backends reject
/// (classes, exceptions, System.Half), so without this a CPU-only kernel could land.
/// </summary>
public class KernelCatalogProperties
{
    public static TheoryData<string> KernelNames()
    {
        var data = new TheoryData<string>();
        foreach (var k in KernelCatalog.All)
            data.Add(k.Name);
        return data;
    }

    [Fact]
    public void Catalog_is_not_empty_and_names_are_unique()
    {
        Assert.NotEmpty(KernelCatalog.All);
        var dupes = KernelCatalog.All.GroupBy(k => k.Name).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.True(dupes.Count == 0, "duplicate kernel names: " + string.Join(", ", dupes));
    }

    [Fact]
    public void Every_entry_point_has_a_definition()
    {
        var covered = KernelCatalog.All
            .Select(k => k.Method.IsGenericMethod ? k.Method.GetGenericMethodDefinition() : k.Method)
            .ToHashSet();
        var missing = KernelCatalog.EntryPoints.Where(m => !covered.Contains(m)).Select(m => $"{m.DeclaringType!.Name}.{m.Name}").ToList();
        Assert.True(missing.Count == 0, "kernel methods without a KernelDef (so never compiled offline): " + string.Join(", ", missing));
    }

    [Fact]
    public void Every_definition_is_a_kernel_entry_point()
    {
        var entries = KernelCatalog.EntryPoints.ToHashSet();
        var stray = KernelCatalog.All
            .Where(k => !entries.Contains(k.Method.IsGenericMethod ? k.Method.GetGenericMethodDefinition() : k.Method))
            .Select(k => k.Name).ToList();
        Assert.True(stray.Count == 0, "KernelDefs whose method is not named ...Kernel: " + string.Join(", ", stray));
    }

    [Theory]
    [MemberData(nameof(KernelNames))]
    public void Compiles_for_PTX_sm90(string name) => OfflineBackends.Compile(name, ptx: true);

    [Theory]
    [MemberData(nameof(KernelNames))]
    public void Compiles_for_OpenCL_2_0(string name) => OfflineBackends.Compile(name, ptx: false);
}

/// <summary>
/// PTX and OpenCL backends that compile without a device. Each has a context of its own, made
/// afresh after a failure, because one failed compile can poison a context.
/// </summary>
public static class OfflineBackends
{
    private static readonly object Gate = new();
    private static (Context Ctx, Backend Backend)? _ptx;
    private static (Context Ctx, Backend Backend)? _cl;

    /// <summary>Compiles the catalog's kernel <paramref name="name"/> offline; fails the test with the compiler's message.</summary>
    /// <param name="name">A <see cref="KernelDef.Name"/> of <see cref="KernelCatalog.All"/>.</param>
    /// <param name="ptx">PTX sm_90 when true, OpenCL 2.0 otherwise.</param>
    public static void Compile(string name, bool ptx) => Compile(KernelCatalog.All.Single(k => k.Name == name), ptx);

    /// <summary>Compiles <paramref name="def"/> (a library kernel or one of a user's) offline; fails the test with the compiler's message.</summary>
    /// <param name="def">The kernel.</param>
    /// <param name="ptx">PTX sm_90 when true, OpenCL 2.0 otherwise.</param>
    public static void Compile(KernelDef def, bool ptx)
    {
        string name = def.Name;
        lock (Gate)
        {
            var (ctx, backend) = ptx ? _ptx ??= CreatePtx() : _cl ??= CreateCl();
            _ = ctx;
            try
            {
                var entry = EntryPointDescription.FromExplicitlyGroupedKernel(def.Method);
                var compiled = backend.Compile(entry, default);
                string code = ptx ? ((PTXCompiledKernel)compiled).PTXAssembly : ((CLCompiledKernel)compiled).Source;
                Assert.False(string.IsNullOrWhiteSpace(code), $"{name}: empty {(ptx ? "PTX" : "OpenCL")} output");
            }
            catch (Exception e) when (e is not Xunit.Sdk.XunitException)
            {
                Reset(ptx);
                throw new Xunit.Sdk.XunitException($"{name} does not compile for {(ptx ? "PTX sm_90" : "OpenCL 2.0")}: {e.GetType().Name}: {e.Message} {e.InnerException?.Message}");
            }
        }
    }

    private static void Reset(bool ptx)
    {
        var old = ptx ? _ptx : _cl;
        if (ptx)
            _ptx = null;
        else
            _cl = null;
        old?.Backend.Dispose();
        old?.Ctx.Dispose();
    }

    private static (Context, Backend) CreatePtx()
    {
        var ctx = Context.Create(b => b.EnableAlgorithms());
        return (ctx, new PTXBackend(ctx, CudaArchitecture.SM_90, CudaInstructionSet.ISA_80, null!));
    }

    private static (Context, Backend) CreateCl()
    {
        var ctx = Context.Create(b => b.EnableAlgorithms());
        // A typical OpenCL 2.0 GPU: fp16, fp64, generic address space, 64-bit atomics, subgroups.
        var caps = new CLCapabilityContext(float16: true, float64: true, genericAddressSpace: true, int64_Atomics: true, subGroups: true);
        return (ctx, new CLBackend(ctx, caps, CLDeviceVendor.AMD, CLCVersion.CL20));
    }
}
