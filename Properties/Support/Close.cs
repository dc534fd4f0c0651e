namespace IlgpuTrain.Properties.Support;

/// <summary>
/// Tolerance comparisons: |a - r| &lt;= atol + rtol * |r|. Never compare floats from a kernel with
/// exact equality unless the property is bitwise determinism itself.
/// </summary>
public static class Close
{
    /// <summary>Whether every element is within tolerance; the label names the first mismatch.</summary>
    /// <param name="actual">Values under test.</param>
    /// <param name="expected">Reference values.</param>
    /// <param name="atol">Absolute tolerance.</param>
    /// <param name="rtol">Relative tolerance.</param>
    /// <param name="what">What is compared, for the label.</param>
    /// <returns>A labelled property.</returns>
    public static Property All(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, double atol, double rtol, string what = "values")
    {
        var (ok, label) = Check(actual, expected, atol, rtol, what);
        return ok.Label(label);
    }

    /// <summary>As <see cref="All(ReadOnlySpan{float}, ReadOnlySpan{float}, double, double, string)"/> against a double reference.</summary>
    /// <param name="actual">Values under test.</param>
    /// <param name="expected">Reference values.</param>
    /// <param name="atol">Absolute tolerance.</param>
    /// <param name="rtol">Relative tolerance.</param>
    /// <param name="what">What is compared.</param>
    /// <returns>A labelled property.</returns>
    public static Property All(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected, double atol, double rtol, string what = "values")
    {
        var e = new float[expected.Length];
        if (actual.Length != expected.Length)
            return false.Label($"{what}: length {actual.Length} versus expected {expected.Length}");
        for (int i = 0; i < actual.Length; i++)
        {
            double err = Math.Abs(actual[i] - expected[i]);
            if (actual[i] == expected[i])
                continue; // also equal infinities, where err would be NaN
            if (!(err <= atol + (rtol * Math.Abs(expected[i]))) && !(double.IsNaN(actual[i]) && double.IsNaN(expected[i])))
                return false.Label($"{what}[{i}] = {actual[i]:R} but expected {expected[i]:R} (|err| {err:E3} > {atol} + {rtol}*|r|)");
        }
        return true.Label(what);
    }

    /// <summary>Scalar comparison.</summary>
    /// <param name="actual">Value under test.</param>
    /// <param name="expected">Reference.</param>
    /// <param name="atol">Absolute tolerance.</param>
    /// <param name="rtol">Relative tolerance.</param>
    /// <param name="what">What is compared.</param>
    /// <returns>A labelled property.</returns>
    public static Property Scalar(double actual, double expected, double atol, double rtol, string what = "value")
    {
        double err = Math.Abs(actual - expected);
        bool ok = err <= atol + (rtol * Math.Abs(expected)) || (double.IsNaN(actual) && double.IsNaN(expected)) || actual.Equals(expected);
        return ok.Label($"{what} = {actual:R}, expected {expected:R} (|err| {err:E3}, atol {atol}, rtol {rtol})");
    }

    /// <summary>The check behind <see cref="All(ReadOnlySpan{float}, ReadOnlySpan{float}, double, double, string)"/>.</summary>
    /// <param name="actual">Values under test.</param>
    /// <param name="expected">Reference values.</param>
    /// <param name="atol">Absolute tolerance.</param>
    /// <param name="rtol">Relative tolerance.</param>
    /// <param name="what">What is compared.</param>
    /// <returns>Whether all match, and a label.</returns>
    public static (bool Ok, string Label) Check(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, double atol, double rtol, string what)
    {
        if (actual.Length != expected.Length)
            return (false, $"{what}: length {actual.Length} versus expected {expected.Length}");
        for (int i = 0; i < actual.Length; i++)
        {
            double a = actual[i], r = expected[i];
            if (double.IsNaN(a) && double.IsNaN(r))
                continue;
            if (a.Equals(r))
                continue;
            double err = Math.Abs(a - r);
            if (!(err <= atol + (rtol * Math.Abs(r))))
                return (false, $"{what}[{i}] = {a:R} but expected {r:R} (|err| {err:E3} > {atol} + {rtol}*|r|)");
        }
        return (true, what);
    }
}
