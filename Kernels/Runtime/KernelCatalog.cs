using System.Reflection;

namespace IlgpuTrain.Kernels.Runtime;

/// <summary>
/// Every kernel of the Kernels assembly: the values of all static fields of type
/// <see cref="KernelDef"/> or <see cref="IKernelSet"/>. Tests compile each entry for PTX and
/// OpenCL offline, and check that every method named <c>...Kernel</c> has an entry.
/// </summary>
public static class KernelCatalog
{
    private static readonly Lazy<IReadOnlyList<KernelDef>> AllDefs = new(Collect);

    /// <summary>All kernel definitions, de-duplicated by method, ordered by name.</summary>
    public static IReadOnlyList<KernelDef> All => AllDefs.Value;

    /// <summary>
    /// Every static method of the assembly named <c>...Kernel</c> (generic definitions left
    /// open): the entry points that <see cref="All"/> must cover.
    /// </summary>
    public static IReadOnlyList<MethodInfo> EntryPoints { get; } = typeof(KernelCatalog).Assembly
        .GetTypes()
        .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
        .Where(m => m.Name.EndsWith("Kernel", StringComparison.Ordinal) && m.ReturnType == typeof(void) && !m.IsSpecialName)
        .Where(m => !m.Name.Contains('<', StringComparison.Ordinal))
        .OrderBy(m => m.DeclaringType!.FullName + "." + m.Name, StringComparer.Ordinal)
        .ToList();

    private static IReadOnlyList<KernelDef> Collect()
    {
        var defs = new List<KernelDef>();
        foreach (var type in typeof(KernelCatalog).Assembly.GetTypes())
        {
            if (type.ContainsGenericParameters)
                continue;
            foreach (var f in type.GetFields(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            {
                if (typeof(KernelDef).IsAssignableFrom(f.FieldType) && f.GetValue(null) is KernelDef d)
                    defs.Add(d);
                else if (typeof(IKernelSet).IsAssignableFrom(f.FieldType) && f.GetValue(null) is IKernelSet s)
                    defs.AddRange(s.Kernels);
            }
        }
        return defs.GroupBy(d => d.Method).Select(g => g.First()).OrderBy(d => d.Name, StringComparer.Ordinal).ToList();
    }
}
