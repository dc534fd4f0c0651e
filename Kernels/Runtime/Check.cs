namespace IlgpuTrain.Kernels.Runtime;

/// <summary>Argument checks shared by launchers. Messages name the operation, the arguments and both sizes.</summary>
public static class Check
{
    /// <summary>Throws unless both views have the same length.</summary>
    /// <typeparam name="TA">Element type of the first view.</typeparam>
    /// <typeparam name="TB">Element type of the second view.</typeparam>
    /// <param name="op">The operation, for the message.</param>
    /// <param name="a">First view.</param>
    /// <param name="aName">Its name.</param>
    /// <param name="b">Second view.</param>
    /// <param name="bName">Its name.</param>
    public static void SameLength<TA, TB>(string op, ArrayView<TA> a, string aName, ArrayView<TB> b, string bName)
        where TA : unmanaged
        where TB : unmanaged
    {
        if (a.Length != b.Length)
            throw new ArgumentException($"{op}: {aName} has {a.Length} elements but {bName} has {b.Length}; they must be equal.", bName);
        Fits32(op, a, aName);
    }

    /// <summary>Throws unless the view has exactly <paramref name="expected"/> elements.</summary>
    /// <typeparam name="T">Element type.</typeparam>
    /// <param name="op">The operation.</param>
    /// <param name="view">The view.</param>
    /// <param name="name">Its name.</param>
    /// <param name="expected">Required length.</param>
    /// <param name="shape">The shape that implies the length, for the message, e.g. "(N, C) = (4, 10)".</param>
    public static void Length<T>(string op, ArrayView<T> view, string name, long expected, string shape)
        where T : unmanaged
    {
        if (view.Length != expected)
            throw new ArgumentException($"{op}: {name} has {view.Length} elements but {shape} needs {expected}.", name);
    }

    /// <summary>Throws unless the view has at least <paramref name="expected"/> elements.</summary>
    /// <typeparam name="T">Element type.</typeparam>
    /// <param name="op">The operation.</param>
    /// <param name="view">The view.</param>
    /// <param name="name">Its name.</param>
    /// <param name="expected">Minimum length.</param>
    /// <param name="why">What needs that length.</param>
    public static void AtLeast<T>(string op, ArrayView<T> view, string name, long expected, string why)
        where T : unmanaged
    {
        if (view.Length < expected)
            throw new ArgumentException($"{op}: {name} has {view.Length} elements but {why} needs at least {expected}.", name);
    }

    /// <summary>Throws unless <paramref name="value"/> is positive (or zero when allowed).</summary>
    /// <param name="op">The operation.</param>
    /// <param name="value">The value.</param>
    /// <param name="name">Its name.</param>
    /// <param name="allowZero">Whether zero is accepted.</param>
    public static void Dimension(string op, int value, string name, bool allowZero = true)
    {
        if (value < 0 || (!allowZero && value == 0))
            throw new ArgumentOutOfRangeException(name, value, $"{op}: {name} must be {(allowZero ? "zero or more" : "at least 1")}, got {value}.");
    }

    /// <summary>Throws if the view is too long for 32-bit kernel indexing.</summary>
    /// <typeparam name="T">Element type.</typeparam>
    /// <param name="op">The operation.</param>
    /// <param name="view">The view.</param>
    /// <param name="name">Its name.</param>
    public static void Fits32<T>(string op, ArrayView<T> view, string name)
        where T : unmanaged
    {
        if (view.Length > int.MaxValue)
            throw new ArgumentException($"{op}: {name} has {view.Length} elements; kernels index with 32-bit integers, so split it into buffers of at most {int.MaxValue} elements.", name);
    }
}
