namespace IlgpuTrain.Functional;

/// <summary>
/// Thrown when a value is used after an operation consumed it. IlgpuTrain's values are
/// immutable by donation: an operation documented as consuming its input reuses that input's
/// device buffers for its result, and the input may not be touched again.
/// </summary>
public sealed class ConsumedValueException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="what">The kind of value, e.g. "ParamTree".</param>
    /// <param name="consumedBy">What consumed it, e.g. "ApplyUpdates".</param>
    public ConsumedValueException(string what, string consumedBy)
        : base($"This {what} was consumed by {consumedBy}: its device memory now belongs to the value that call returned (immutability by donation). " +
               $"Use the returned value instead, or call Clone() (device copy) or Snapshot() (host copy) before {consumedBy} to keep this one.")
    {
        What = what;
        ConsumedBy = consumedBy;
    }

    /// <summary>Creates the exception with a default message.</summary>
    public ConsumedValueException()
        : this("value", "an earlier operation")
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    /// <param name="message">The message.</param>
    public ConsumedValueException(string message)
        : base(message)
    {
        What = "value";
        ConsumedBy = "an earlier operation";
    }

    /// <summary>Creates the exception with a message and an inner exception.</summary>
    /// <param name="message">The message.</param>
    /// <param name="inner">The cause.</param>
    public ConsumedValueException(string message, Exception inner)
        : base(message, inner)
    {
        What = "value";
        ConsumedBy = "an earlier operation";
    }

    /// <summary>The kind of value that was consumed.</summary>
    public string What { get; }

    /// <summary>The operation that consumed it.</summary>
    public string ConsumedBy { get; }
}
