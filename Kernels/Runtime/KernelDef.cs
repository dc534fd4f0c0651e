using System.Reflection;

namespace IlgpuTrain.Kernels.Runtime;

/// <summary>
/// One kernel entry point: a static ILGPU method with its generic arguments closed, and the
/// launcher delegate type it loads as. Definitions live in <c>static readonly</c> fields of the
/// Kernels assembly, so <see cref="KernelCatalog"/> can enumerate every kernel (the offline
/// PTX/OpenCL compile test compiles all of them).
/// </summary>
/// <remarks>
/// A kernel of your own (for an op defined with <c>F.Custom</c>) is defined the same way, in a
/// <c>static readonly</c> field of your code, and loaded through the device's cache, which
/// compiles it once per device: <c>host.Load(def)(host.Stream, host.Launch.GridStride(n), args...)</c>
/// with <c>host = device.Kernels</c>. Write it as a grid-stride loop (any grid is then correct) and
/// launch it only for n &gt; 0. The ILGPU rules apply: value types, <c>ArrayView</c>s and structs
/// as arguments, no classes, exceptions or <c>System.Half</c>; use <c>XMath</c>.
/// </remarks>
public abstract class KernelDef
{
    /// <summary>Defines a kernel from a static kernel method of 1 to 14 parameters (ILGPU's limit), its generic arguments closed.</summary>
    /// <param name="entry">The kernel method, e.g. <c>KernelDef.Of&lt;ArrayView&lt;float&gt;, int&gt;(MyKernel)</c>.</param>
    /// <returns>The definition, to be stored in a <c>static readonly</c> field.</returns>
    public static KernelDef<Action<AcceleratorStream, KernelConfig, T1>> Of<T1>(Action<T1> entry)
        where T1 : struct => new(entry.Method);

    /// <inheritdoc cref="Of{T1}(Action{T1})"/>
    public static KernelDef<Action<AcceleratorStream, KernelConfig, T1, T2>> Of<T1, T2>(Action<T1, T2> entry)
        where T1 : struct where T2 : struct => new(entry.Method);

    /// <inheritdoc cref="Of{T1}(Action{T1})"/>
    public static KernelDef<Action<AcceleratorStream, KernelConfig, T1, T2, T3>> Of<T1, T2, T3>(Action<T1, T2, T3> entry)
        where T1 : struct where T2 : struct where T3 : struct => new(entry.Method);

    /// <inheritdoc cref="Of{T1}(Action{T1})"/>
    public static KernelDef<Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4>> Of<T1, T2, T3, T4>(Action<T1, T2, T3, T4> entry)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct => new(entry.Method);

    /// <inheritdoc cref="Of{T1}(Action{T1})"/>
    public static KernelDef<Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4, T5>> Of<T1, T2, T3, T4, T5>(Action<T1, T2, T3, T4, T5> entry)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct => new(entry.Method);

    /// <inheritdoc cref="Of{T1}(Action{T1})"/>
    public static KernelDef<Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4, T5, T6>> Of<T1, T2, T3, T4, T5, T6>(Action<T1, T2, T3, T4, T5, T6> entry)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct => new(entry.Method);

    /// <inheritdoc cref="Of{T1}(Action{T1})"/>
    public static KernelDef<Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4, T5, T6, T7>> Of<T1, T2, T3, T4, T5, T6, T7>(Action<T1, T2, T3, T4, T5, T6, T7> entry)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct => new(entry.Method);

    /// <inheritdoc cref="Of{T1}(Action{T1})"/>
    public static KernelDef<Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4, T5, T6, T7, T8>> Of<T1, T2, T3, T4, T5, T6, T7, T8>(Action<T1, T2, T3, T4, T5, T6, T7, T8> entry)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct where T8 : struct => new(entry.Method);

    /// <inheritdoc cref="Of{T1}(Action{T1})"/>
    public static KernelDef<Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4, T5, T6, T7, T8, T9>> Of<T1, T2, T3, T4, T5, T6, T7, T8, T9>(Action<T1, T2, T3, T4, T5, T6, T7, T8, T9> entry)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct where T8 : struct where T9 : struct => new(entry.Method);

    /// <inheritdoc cref="Of{T1}(Action{T1})"/>
    public static KernelDef<Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10>> Of<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10>(Action<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10> entry)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct where T8 : struct where T9 : struct where T10 : struct => new(entry.Method);

    /// <inheritdoc cref="Of{T1}(Action{T1})"/>
    public static KernelDef<Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11>> Of<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11>(Action<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11> entry)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct where T8 : struct where T9 : struct where T10 : struct where T11 : struct => new(entry.Method);

    /// <inheritdoc cref="Of{T1}(Action{T1})"/>
    public static KernelDef<Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12>> Of<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12>(Action<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12> entry)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct where T8 : struct where T9 : struct where T10 : struct where T11 : struct where T12 : struct => new(entry.Method);

    /// <inheritdoc cref="Of{T1}(Action{T1})"/>
    public static KernelDef<Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13>> Of<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13>(Action<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13> entry)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct where T8 : struct where T9 : struct where T10 : struct where T11 : struct where T12 : struct where T13 : struct => new(entry.Method);

    /// <inheritdoc cref="Of{T1}(Action{T1})"/>
    public static KernelDef<Action<AcceleratorStream, KernelConfig, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14>> Of<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14>(Action<T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14> entry)
        where T1 : struct where T2 : struct where T3 : struct where T4 : struct where T5 : struct where T6 : struct where T7 : struct where T8 : struct where T9 : struct where T10 : struct where T11 : struct where T12 : struct where T13 : struct where T14 : struct => new(entry.Method);

    private protected KernelDef(MethodInfo method)
    {
        ArgumentNullException.ThrowIfNull(method);
        if (!method.IsStatic)
            throw new ArgumentException($"Kernel entry point {method.Name} must be static.", nameof(method));
        if (method.ContainsGenericParameters)
            throw new ArgumentException($"Kernel entry point {method.Name} has open generic parameters.", nameof(method));
        Method = method;
        Name = FormatName(method);
    }

    /// <summary>The closed static method ILGPU compiles.</summary>
    public MethodInfo Method { get; }

    /// <summary>Readable name, e.g. <c>Elementwise.MapKernel&lt;ReluOp&gt;</c>.</summary>
    public string Name { get; }

    internal abstract Delegate Load(Accelerator accelerator);

    /// <inheritdoc/>
    public override string ToString() => Name;

    private static string FormatName(MethodInfo m)
    {
        var owner = m.DeclaringType?.Name ?? "?";
        if (!m.IsGenericMethod)
            return $"{owner}.{m.Name}";
        var args = string.Join(", ", m.GetGenericArguments().Select(ArgumentName));
        return $"{owner}.{m.Name}<{args}>";
    }

    // An operator's name (AddOp); a generic element body by its owner (RmsUpdate.StepBody), since
    // several launchers name their bodies alike, with its operator arguments (Losses.ForwardBody<MseLossOp>);
    // the (generic) accessor arguments say nothing new.
    private static string ArgumentName(Type t) =>
        !t.IsGenericType ? t.Name : $"{(t.DeclaringType is { } d ? d.Name + "." : "")}{t.Name[..t.Name.IndexOf('`', StringComparison.Ordinal)]}"
            + (t.GetGenericArguments().Where(a => !a.IsGenericType).Select(a => a.Name).ToList() is [_, ..] ops ? $"<{string.Join(", ", ops)}>" : "");
}

/// <summary>A kernel definition whose loaded launcher has the type <typeparamref name="TLauncher"/>.</summary>
/// <typeparam name="TLauncher"><c>Action&lt;AcceleratorStream, KernelConfig, ...&gt;</c>.</typeparam>
public sealed class KernelDef<TLauncher> : KernelDef
    where TLauncher : Delegate
{
    internal KernelDef(MethodInfo method)
        : base(method)
    {
    }

    internal override Delegate Load(Accelerator accelerator) =>
        accelerator.LoadKernel<TLauncher>(Method);
}

/// <summary>
/// A set of kernel definitions held together (for example the forward and backward kernels of
/// one activation). Static fields of this type are enumerated by <see cref="KernelCatalog"/>.
/// </summary>
public interface IKernelSet
{
    /// <summary>Every definition in the set.</summary>
    IEnumerable<KernelDef> Kernels { get; }
}
