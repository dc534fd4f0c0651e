namespace IlgpuTrain.Kernels.Runtime;

/// <summary>Argument checks shared by launchers: op names the operation and each name its argument; messages give both sizes.</summary>
public static class Check
{
    /// <summary>Throws unless both views have the same length.</summary>
    public static void SameLength<TA, TB>(string op, ArrayView<TA> a, string aName, ArrayView<TB> b, string bName)
        where TA : unmanaged
        where TB : unmanaged
    {
        if (a.Length != b.Length)
            throw new ArgumentException($"{op}: {aName} has {a.Length} elements but {bName} has {b.Length}; they must be equal.", bName);
        Fits32(op, a, aName);
    }

    /// <summary>Throws unless the view has exactly <paramref name="expected"/> elements; <paramref name="shape"/> names what implies that length, e.g. "(N, C) = (4, 10)".</summary>
    public static void Length<T>(string op, ArrayView<T> view, string name, long expected, string shape)
        where T : unmanaged
    {
        if (view.Length != expected)
            throw new ArgumentException($"{op}: {name} has {view.Length} elements but {shape} needs {expected}.", name);
    }

    /// <summary>Throws unless the view has at least <paramref name="expected"/> elements; <paramref name="why"/> names what needs them.</summary>
    public static void AtLeast<T>(string op, ArrayView<T> view, string name, long expected, string why)
        where T : unmanaged
    {
        if (view.Length < expected)
            throw new ArgumentException($"{op}: {name} has {view.Length} elements but {why} needs at least {expected}.", name);
    }

    /// <summary>Throws unless <paramref name="value"/> is positive (or zero when allowed).</summary>
    public static void Dimension(string op, int value, string name, bool allowZero = true)
    {
        if (value < 0 || (!allowZero && value == 0))
            throw new ArgumentOutOfRangeException(name, value, $"{op}: {name} must be {(allowZero ? "zero or more" : "at least 1")}, got {value}.");
    }

    /// <summary>Throws if the view is too long for 32-bit kernel indexing.</summary>
    public static void Fits32<T>(string op, ArrayView<T> view, string name)
        where T : unmanaged
    {
        if (view.Length > int.MaxValue)
            throw new ArgumentException($"{op}: {name} has {view.Length} elements; kernels index with 32-bit integers, so split it into buffers of at most {int.MaxValue} elements.", name);
    }
}
