namespace IlgpuTrain.Training;

/// <summary>
/// Builds the <see cref="InvalidDataException"/> (a sealed type) thrown for a data file that is
/// truncated, corrupt or of the wrong kind: the message names the file, what was expected and what
/// was found, and what to do about it.
/// </summary>
public static class DataFormat
{
    /// <summary>The exception "file: message".</summary>
    /// <param name="file">The file (or stream name) that failed to parse.</param>
    /// <param name="message">What was expected and what was found.</param>
    /// <param name="inner">The underlying error, if any (for example a corrupt gzip stream).</param>
    /// <returns>The exception, to throw.</returns>
    public static InvalidDataException Error(string file, string message, Exception? inner = null) =>
        new($"{file}: {message}", inner);
}

/// <summary>
/// Files of a data set are missing. The message says which files are missing in which folder and
/// how to get them.
/// </summary>
public sealed class DataSetNotFoundException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="dataSet">The data set, such as "Fashion-MNIST".</param>
    /// <param name="directory">The folder searched.</param>
    /// <param name="missing">The file names that are missing there.</param>
    /// <param name="howToGet">How to get them, one or more sentences.</param>
    public DataSetNotFoundException(string dataSet, string directory, IReadOnlyList<string> missing, string howToGet)
        : base($"{dataSet}: {missing.Count} file(s) missing in {directory}: {string.Join(", ", missing)}. {howToGet}")
    {
        DataSet = dataSet;
        Directory = directory;
        Missing = missing;
    }

    /// <summary>The data set, such as "Fashion-MNIST".</summary>
    public string DataSet { get; }

    /// <summary>The folder searched.</summary>
    public string Directory { get; }

    /// <summary>The missing file names.</summary>
    public IReadOnlyList<string> Missing { get; }
}
