using System.Collections;

namespace IlgpuTrain.Functional;

/// <summary>
/// An immutable tensor shape, row-major (the last dimension is contiguous). Compares by value
/// and prints as PyTorch does: <c>(128, 784)</c>.
/// </summary>
public sealed class Shape : IEquatable<Shape>, IReadOnlyList<int>
{
    private readonly int[] _dims;

    /// <summary>Creates a shape; every dimension must be zero or more.</summary>
    /// <param name="dims">The dimensions, outermost first.</param>
    public Shape(params int[] dims)
    {
        ArgumentNullException.ThrowIfNull(dims);
        long n = 1;
        for (int i = 0; i < dims.Length; i++)
        {
            if (dims[i] < 0)
                throw new ArgumentException($"Shape {Format(dims)} has a negative dimension {dims[i]} at axis {i}; dimensions must be zero or more.", nameof(dims));
            n = checked(n * dims[i]);
        }
        _dims = (int[])dims.Clone();
        Length = n;
    }

    /// <summary>The scalar shape ().</summary>
    public static Shape Scalar { get; } = new();

    /// <summary>Number of dimensions.</summary>
    public int Rank => _dims.Length;

    /// <summary>Number of elements (the product of the dimensions; 1 for a scalar).</summary>
    public long Length { get; }

    /// <inheritdoc/>
    public int Count => _dims.Length;

    /// <summary>Dimension <paramref name="axis"/>; negative axes count from the end.</summary>
    /// <param name="axis">The axis.</param>
    public int this[int axis] => _dims[Axis(axis)];

    /// <summary>A copy of the dimensions.</summary>
    /// <returns>The dimensions.</returns>
    public int[] ToArray() => (int[])_dims.Clone();

    /// <summary>Normalizes a possibly negative axis, with a clear error when out of range.</summary>
    /// <param name="axis">The axis.</param>
    /// <returns>The axis in [0, Rank).</returns>
    public int Axis(int axis)
    {
        int a = axis < 0 ? axis + Rank : axis;
        if (a < 0 || a >= Rank)
            throw new ArgumentOutOfRangeException(nameof(axis), axis, $"Axis {axis} is out of range for shape {this} of rank {Rank}.");
        return a;
    }

    /// <summary>Throws an <see cref="ArgumentException"/> naming both shapes unless they are equal.</summary>
    /// <param name="op">The operation, for the message.</param>
    /// <param name="a">First shape.</param>
    /// <param name="aName">Its name.</param>
    /// <param name="b">Second shape.</param>
    /// <param name="bName">Its name.</param>
    public static void RequireEqual(string op, Shape a, string aName, Shape b, string bName)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (!a.Equals(b))
            throw new ArgumentException($"{op}: shape mismatch: {aName} has shape {a} but {bName} has shape {b}.", bName);
    }

    /// <inheritdoc/>
    public bool Equals(Shape? other) => other is not null && _dims.AsSpan().SequenceEqual(other._dims);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is Shape s && Equals(s);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var h = new HashCode();
        foreach (var d in _dims)
            h.Add(d);
        return h.ToHashCode();
    }

    /// <summary>Value equality.</summary>
    /// <param name="a">Left.</param>
    /// <param name="b">Right.</param>
    /// <returns>Whether the shapes are equal.</returns>
    public static bool operator ==(Shape? a, Shape? b) => a is null ? b is null : a.Equals(b);

    /// <summary>Value inequality.</summary>
    /// <param name="a">Left.</param>
    /// <param name="b">Right.</param>
    /// <returns>Whether the shapes differ.</returns>
    public static bool operator !=(Shape? a, Shape? b) => !(a == b);

    /// <summary>Converts dimensions to a shape.</summary>
    /// <param name="dims">The dimensions.</param>
    public static implicit operator Shape(int[] dims) => new(dims);

    /// <inheritdoc/>
    public override string ToString() => Format(_dims);

    /// <inheritdoc/>
    public IEnumerator<int> GetEnumerator() => ((IEnumerable<int>)_dims).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => _dims.GetEnumerator();

    private static string Format(int[] dims) => dims.Length == 1 ? $"({dims[0]},)" : $"({string.Join(", ", dims)})";
}
